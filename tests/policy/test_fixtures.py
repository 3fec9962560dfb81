"""The pack on whole programs: insecure configurations spelled the way real programs spell
them are each caught by the guardrail named for them; secure-but-unusual programs (and secure
versions of the capabilities being built: CVM, fleet provisioning, replication) pass; and
`pulumi preview`'s unknowns never let a violation through unreported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pulumi_policy import EnforcementLevel, StackValidationPolicy

from tools import policy_check as check
from policy.pack import ALL_POLICIES

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SECURE = FIXTURES / "secure_reference"
INSECURE = FIXTURES / "insecure_realistic"
STACK_POLICIES = {p.name for p in ALL_POLICIES if isinstance(p, StackValidationPolicy)}

# resource (logical name) -> guardrails it must trip; "" is the stack itself.
EXPECTED: dict[str, set[str]] = {
    "pass-star": {"iam-no-wildcard-actions", "iam-no-privilege-escalation"},
    "casing": {"iam-no-wildcard-actions"},
    "not-resource": {"iam-no-allow-notresource"},
    "not-action": {"iam-no-allow-notaction", "iam-no-full-admin"},
    "single-statement": {"iam-no-wildcard-actions"},
    "question-mark": {"iam-no-wildcard-actions", "iam-no-privilege-escalation"},
    "kms-decrypt-all": {"iam-no-kms-decrypt-all-keys"},
    "attach-poweruser": {"iam-no-admin-managed-policies"},
    "iam-user": {"iam-no-users"},
    "iam-user-key": {"iam-no-users"},
    "github-trust": {"iam-trust-policy-scoped"},
    "cognito-trust-unauth": {"iam-trust-policy-scoped"},
    "cognito-trust-any-pool": {"iam-trust-policy-scoped"},
    "cross-account-trust": {"iam-trust-policy-scoped"},
    "condition-star": {"iam-trust-policy-scoped"},
    "numeric-condition": {"sqs-cmk-encryption", "sqs-ssl-only"},
    "numeric-condition-policy": {"sqs-no-public-policy"},
    "case-keys": {"sns-cmk-encryption", "sns-ssl-only"},
    "case-keys-policy": {"sns-no-public-policy"},
    "bucket-public": {"s3-public-access-block", "s3-cmk-encryption", "s3-versioning", "s3-ssl-only"},
    "bucket-public-acl": {"s3-no-public-acl"},
    "bucket-public-policy": {"s3-no-public-policy"},
    "secret-public": {"secretsmanager-cmk-encryption", "secretsmanager-rotation"},
    "secret-public-policy": {"secretsmanager-no-public-policy"},
    "secret-in-state": {"secretsmanager-no-value-in-state"},
    "dynamodb-policy": {"dynamodb-resource-policy-not-public"},
    "kms-not-principal": {"kms-no-wildcard-principal"},
    "event-bus": {"events-bus-policy-not-public"},
    "logs-policy": {"logs-resource-policy-scoped"},
    "env-secrets": {"lambda-no-secrets-in-env", "lambda-environment-cmk", "lambda-async-failure-destination"},
    "lambda-url": {"lambda-function-url-auth"},
    "lambda-public-perm": {"lambda-permission-scoped"},
    "lambda-wild-source": {"lambda-permission-scoped"},
    "layer-public": {"lambda-layer-not-public"},
    "api-open": {"apigateway-method-authorization"},
    "api-registration-unguarded": {"apigateway-method-authorization", "apigateway-request-validation"},
    "http-route": {"apigatewayv2-route-authorization"},
    "cognito-self-signup": {"cognito-admin-only-sign-up", "cognito-password-policy", "cognito-mfa-required",
                            "cognito-threat-protection"},
    "identity-classic": {"cognito-identity-pool-no-classic-flow"},
    "identity-guest-role": {"cognito-no-unauthenticated-identities"},
    "device-topicfilter": {"iot-policy-device-isolation"},
    "device-prefix": {"iot-policy-device-isolation"},
    "device-clientid-unbound": {"iot-policy-device-isolation", "iot-connect-bound-to-thing"},
    "device-region-wildcard": {"iot-policy-no-wildcard-resource", "iot-policy-device-isolation"},
    "device-notresource": {"iot-policy-no-wildcard-resource"},
    "device-partial-action": {"iot-policy-no-wildcard-action"},
    "template-no-hook": {"iot-provisioning-template-pre-provisioning-hook", "iot-provisioning-template-policy-scoped"},
    "template-param-policy": {"iot-provisioning-template-policy-scoped"},
    "authorizer-unsigned": {"iot-authorizer-signing-enabled"},
    "rule-no-error": {"iot-topic-rule-error-action"},
    "pipe-no-logs": {"pipes-logging"},
    "waf-empty": {"wafv2-web-acl-has-rules"},
    "provider-keys": {"aws-provider-no-static-credentials"},
    "": {"iot-logging-enabled-every-region"},
}


def _config(program: Path) -> dict:
    return json.loads((program / "policy-config.json").read_text())


@pytest.fixture(scope="module")
def insecure_up() -> check.Report:
    return check.check_program(INSECURE, "test", policy_config=_config(INSECURE))


@pytest.fixture(scope="module")
def insecure_preview() -> check.Report:
    return check.check_program(INSECURE, "test", policy_config=_config(INSECURE), preview=True)


def _name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1] if urn else ""


def _fired(report: check.Report, level: EnforcementLevel = EnforcementLevel.MANDATORY) -> dict[str, set[str]]:
    by_resource: dict[str, set[str]] = {}
    for v in report.violations:
        if v.judged and v.level == level:
            by_resource.setdefault(_name(v.urn), set()).add(v.policy)
    return by_resource


def test_each_insecure_configuration_trips_its_guardrail(insecure_up):
    fired = _fired(insecure_up)
    missing = {name: sorted(expected - fired.get(name, set()))
               for name, expected in EXPECTED.items() if expected - fired.get(name, set())}
    assert not missing, f"not caught: {missing}\n{check.violation_lines(insecure_up)}"


def test_every_insecure_resource_is_listed(insecure_up):
    """The fixture tests what its names say: every non-helper resource has expectations."""
    helpers = {"app", "api", "devices", "registration", "http-api", "insecure-realistic-test"}
    resources = {_name(v.urn) for v in insecure_up.violations} - {""}
    assert resources - set(EXPECTED) - helpers == set()


def test_secure_reference_passes_with_nothing_to_justify():
    report = check.check_program(SECURE, "test", policy_config=_config(SECURE))
    assert report.resources > 50
    assert report.violations == [], check.violation_lines(report)


def test_secure_reference_at_preview_has_no_violation_only_unjudged_policies():
    report = check.check_program(SECURE, "test", policy_config=_config(SECURE), preview=True)
    assert report.preview
    assert [v for v in report.violations if v.judged] == [], check.violation_lines(report)
    assert report.not_judged  # outputs such as ARNs are unknown before the first deployment
    assert all(v.level == EnforcementLevel.ADVISORY and "during preview" in v.message for v in report.not_judged)


def test_preview_never_lets_a_violation_through_unreported(insecure_up, insecure_preview):
    """Everything `pulumi up` rejects is, at preview, either rejected too or reported as
    "can't run policy ... during preview" (stack policies: for the whole stack)."""
    not_judged = {(v.policy, v.urn) for v in insecure_preview.not_judged}
    not_judged_stack = {v.policy for v in insecure_preview.not_judged if not v.urn}
    judged = {(v.policy, v.urn) for v in insecure_preview.mandatory}
    silent = sorted((v.policy, _name(v.urn)) for v in insecure_up.mandatory
                    if (v.policy, v.urn) not in judged and (v.policy, v.urn) not in not_judged
                    and not (v.policy in STACK_POLICIES and v.policy in not_judged_stack))
    assert silent == []
    assert insecure_preview.not_judged and len(insecure_preview.mandatory) < len(insecure_up.mandatory)


def test_the_same_guardrail_judges_the_known_value_during_up(insecure_up, insecure_preview):
    """The queue policy is built from the queue's ARN: unknown at preview, known at up."""
    urn = next(v.urn for v in insecure_up.violations if _name(v.urn) == "numeric-condition-policy")
    at_preview = [v for v in insecure_preview.violations if v.urn == urn and v.policy == "sqs-no-public-policy"]
    assert [(v.level, v.judged) for v in at_preview] == [(EnforcementLevel.ADVISORY, False)]
    assert at_preview[0].message.startswith(
        "can't run policy 'sqs-no-public-policy' from policy pack 'iot-multi-region-guardrails@v")
    assert "string value at .policy can't be known during preview" in at_preview[0].message
    at_up = [v for v in insecure_up.violations if v.urn == urn and v.policy == "sqs-no-public-policy"]
    assert [(v.level, v.judged) for v in at_up] == [(EnforcementLevel.MANDATORY, True)]
    assert "principal '*'" in at_up[0].message


def test_cli_preview_flag(capsys):
    assert check.main(["--stack", "test", "--program", str(SECURE), "--config", str(SECURE / "policy-config.json"),
                       "--preview"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("Summary: stack test (preview): 0 mandatory, 0 advisory violation(s), ")
    assert "not judged at preview" in last
