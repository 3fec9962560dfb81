"""Stack config: every problem reported at once, one clear line each, before any resource.

Each key's parser is tested on its own (PARSER_CASES), then the whole parser end to end
(BAD_CONFIGS), then what the program does with a bad config or a device domain at the apex.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest

from components import config as cfg
from components.config import (
    DEFAULT_TLS_SECURITY_POLICY,
    KEYS,
    ConfigError,
    KeyParser,
    ParseContext,
    StackConfig,
    all_known_keys,
    parse_stack_config,
)
from components.capabilities import CAPABILITIES
from components.dns import device_domain_zone_problem
from components.edge.settings import IotAccountSettings
from components.installer_web.settings import InstallerWebSettings
from components.monitoring.settings import AlertSettings, Subscription
from tests.support.certificates import issue
from tools.harness import ProgramFailed, evaluate_program

PROJECT_DIR = Path(__file__).resolve().parent.parent
CA_FILE = "certs/example-intermediate-ca.pem"
NOW = dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc)
ARN = "arn:aws:acm:{}:123456789012:certificate/12345678-1234-1234-1234-123456789012"


def valid_raw(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "appName": "iotmr",
        "environment": "dev",
        "regions": ["eu-west-1", "us-west-2"],
        "primaryRegion": "eu-west-1",
        "deviceDomain": "iot.example.com",
        "hostedZoneId": "Z0123456789ABCDEFGHIJ",
        "caCertificatePemFile": CA_FILE,
    }
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return raw


def parse(raw: dict[str, Any]) -> StackConfig:
    return parse_stack_config(raw, capabilities=CAPABILITIES, project_dir=PROJECT_DIR, now=NOW)


def problems_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(raw)
    return caught.value.problems


# --- one parser at a time -----------------------------------------------------------------

def run_parser(parser: KeyParser, value: Any, **parsed: Any) -> tuple[Any, list[tuple[str | None, str]]]:
    """The parser's result and what it reported: (other key or None, message)."""
    reported: list[tuple[str | None, str]] = []

    def report(message: str, *, key: str | None = None) -> None:
        reported.append((key, message))

    context = ParseContext(project_dir=PROJECT_DIR, now=NOW, parsed=parsed,
                           capabilities=CAPABILITIES)
    return parser(value, context, report), reported


REGIONS = ("eu-west-1", "us-west-2")
ALL_CAPABILITIES = tuple(c.name for c in CAPABILITIES)

# (parser, value, results of earlier keys, expected result, fragment of the one problem or None)
PARSER_CASES: list[tuple[KeyParser, Any, dict[str, Any], Any, str | None]] = [
    (cfg.parse_app_name, "iotmr", {}, "iotmr", None),
    (cfg.parse_app_name, "IoT_App", {}, None, "lowercase"),
    (cfg.parse_app_name, 42, {}, None, "must be a string, got int 42"),
    (cfg.parse_environment, "prod", {}, "prod", None),
    (cfg.parse_environment, "staging", {}, None, "'dev' or 'prod'"),
    (cfg.parse_regions, ["eu-west-1", "us-west-2", "eu-west-1"], {}, REGIONS, "listed twice"),
    (cfg.parse_regions, ["eu-west-1", "us-west-2"], {}, REGIONS, None),
    (cfg.parse_regions, [], {}, None, "at least one region"),
    (cfg.parse_regions, ["eu-wes-2"], {}, ("eu-wes-2",), "did you mean 'eu-west-2'"),
    (cfg.parse_primary_region, "us-west-2", {"regions": REGIONS}, "us-west-2", None),
    (cfg.parse_primary_region, "us-east-1", {"regions": REGIONS}, None, "not in regions"),
    (cfg.parse_primary_region, "us-east-1", {"regions": None}, "us-east-1", None),
    (cfg.parse_device_domain, "IoT.Example.com.", {}, "iot.example.com", None),
    (cfg.parse_device_domain, "example.com", {}, None, "not a valid subdomain name"),
    (cfg.parse_device_domain, "iot.-bad.com", {}, None, "not a valid subdomain name"),
    (cfg.parse_hosted_zone_id, "Z0123456789ABCDEFGHIJ", {}, "Z0123456789ABCDEFGHIJ", None),
    (cfg.parse_hosted_zone_id, "zone-1", {}, None, "Z0123456789ABCDEFGHIJ"),
    (cfg.parse_hosted_zone_name, None, {"deviceDomain": "iot.example.com"}, None, None),
    (cfg.parse_hosted_zone_name, "Example.com.", {"deviceDomain": "iot.example.com"},
     "example.com", None),
    (cfg.parse_hosted_zone_name, "com", {"deviceDomain": "iot.example.com"}, None,
     "not a DNS zone name"),
    (cfg.parse_tags, None, {}, {}, None),
    (cfg.parse_tags, {"owner": "me"}, {}, {"owner": "me"}, None),
    (cfg.parse_tags, {"aws:owner": "x"}, {}, None, "reserved"),
    (cfg.parse_tags, {"owner": 1}, {}, None, "values must be strings"),
    (cfg.parse_tags, "owner=me", {}, None, "got the plain string 'owner=me'"),
    (cfg.parse_log_retention_days, None, {}, 365, None),
    (cfg.parse_log_retention_days, "30", {}, 30, None),
    (cfg.parse_log_retention_days, True, {}, None, "not a CloudWatch Logs retention"),
    (cfg.parse_log_retention_days, 10, {}, None, "one of 1, 3, 5"),
    (cfg.parse_tls_security_policy, None, {}, DEFAULT_TLS_SECURITY_POLICY, None),
    (cfg.parse_tls_security_policy, "IoTSecurityPolicy_TLS12_1_0_2016_01", {}, None, "TLS 1.2+"),
    (cfg.parse_server_certificate_mode, None, {}, "acm", None),
    (cfg.parse_server_certificate_mode, "private", {}, None, "'acm'"),
    (cfg.parse_imported_server_certificate_arns, None,
     {"serverCertificateMode": "acm", "regions": REGIONS}, {}, None),
    (cfg.parse_imported_server_certificate_arns, {r: ARN.format(r) for r in REGIONS},
     {"serverCertificateMode": "imported", "regions": REGIONS},
     {r: ARN.format(r) for r in REGIONS}, None),
    (cfg.parse_imported_server_certificate_arns, {"eu-west-1": ARN.format("eu-west-1")},
     {"serverCertificateMode": "imported", "regions": REGIONS}, None,
     "needs an ACM certificate ARN for 'us-west-2'"),
    (cfg.parse_imported_server_certificate_arns, {"eu-west-1": ARN.format("eu-west-1")},
     {"serverCertificateMode": "acm", "regions": REGIONS}, None, "serverCertificateMode is 'acm'"),
    (cfg.parse_imported_validation_certificate_arns, {"us-west-2": ARN.format("us-west-2")},
     {"serverCertificateMode": "imported", "regions": REGIONS},
     {"us-west-2": ARN.format("us-west-2")}, None),
    (cfg.parse_imported_validation_certificate_arns, {"us-west-2": ARN.format("us-east-1")},
     {"serverCertificateMode": "imported", "regions": REGIONS}, None,
     "request the certificate in 'us-west-2'"),
    (cfg.parse_ca_certificate_pem, None, {}, None, None),
    (cfg.parse_ca_certificate_pem, 7, {}, None, "must be a string"),
    (cfg.parse_ca_certificate_pem_file, CA_FILE, {"caCertificatePem": None},
     (PROJECT_DIR / CA_FILE).read_text(), None),
    (cfg.parse_ca_certificate_pem_file, None, {"caCertificatePem": None}, None,
     "`pulumi config set caCertificatePemFile <path-to-ca.pem>`"),
    (cfg.parse_ca_certificate_pem_file, "certs/nope.pem", {"caCertificatePem": None}, None,
     "cannot read 'certs/nope.pem'"),
    (cfg.parse_capabilities, None, {}, ALL_CAPABILITIES, None),
    (cfg.parse_capabilities, [], {}, (), None),
    (cfg.parse_capabilities, ["jitr", "jitr"], {}, None, "listed twice"),
    (cfg.parse_capabilities, ["jirt"], {}, None, "did you mean 'jitr'"),
    (cfg.parse_iot_account_settings, None, {}, IotAccountSettings(), None),
    (cfg.parse_iot_account_settings, {"loggingOptions": "manage"}, {},
     IotAccountSettings(logging_options="manage"), None),
    (cfg.parse_iot_account_settings, {"loggingOptions": "adopt"}, {}, IotAccountSettings(),
     "'adopt' is not one of manage, leave"),
    (cfg.parse_iot_account_settings, {"auditConfiguration": "adopt"}, {},
     IotAccountSettings(audit_configuration="adopt"), None),
    (cfg.parse_ca_certificates, None, {}, None, None),
    (cfg.parse_ca_certificates, [{"name": "ca", "pem": "x", "state": "current"}], {},
     False, "'current' is not one of issuing, previous, retiring, retired"),
    (cfg.parse_alerts, None, {}, AlertSettings(), None),
    (cfg.parse_alerts, {"subscriptions": [{"protocol": "email", "endpoint": "ops@example.com"}]},
     {}, AlertSettings((Subscription("email", "ops@example.com"),)), None),
    (cfg.parse_alerts, {"subscriptions": [{"protocol": "https", "endpoint": "http://x.io"}]},
     {}, AlertSettings(), "is not an https:// URL"),
    (cfg.parse_alerts, {"subscriptions": [{"protocol": "sms", "endpoint": "+15555550100"}]},
     {}, AlertSettings(), "'sms' is not one of"),
    (cfg.parse_alerts, {"subscription": []}, {}, AlertSettings(), "unknown setting"),
    (cfg.parse_allowed_account_ids, None, {}, (), None),
    (cfg.parse_allowed_account_ids, ["123456789012"], {}, ("123456789012",), None),
    (cfg.parse_allowed_account_ids, [123456789012], {}, None, "not a 12-digit account id string"),
    (cfg.parse_allowed_account_ids, "123456789012", {}, None, "non-empty list"),
    (cfg.parse_allowed_account_ids, [], {}, None, "non-empty list"),
    (cfg.parse_allowed_account_ids, ["12345"], {}, None, "'12345'"),
    (cfg.parse_allowed_account_ids, ["123456789012"] * 2, {}, None, "twice"),
    (cfg.parse_installer_web, None, {}, None, None),
    (cfg.parse_installer_web, {"enabled": True}, {"capabilities": ("fleet_provisioning",)},
     InstallerWebSettings(enabled=True), None),
    (cfg.parse_installer_web, {"enabled": True}, {"capabilities": ("jitr",)}, None,
     "capability 'fleet_provisioning' is not"),
]


@pytest.mark.parametrize("parser,value,parsed,expected,problem", PARSER_CASES,
                         ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(PARSER_CASES)])
def test_key_parser(parser: KeyParser, value: Any, parsed: dict[str, Any], expected: Any,
                    problem: str | None) -> None:
    result, reported = run_parser(parser, value, **parsed)
    assert result == expected
    if problem is None:
        assert reported == []
    else:
        assert len(reported) == 1, reported
        assert problem in reported[0][1]
        assert "\n" not in reported[0][1]


def test_every_key_parser_has_a_passing_and_a_failing_case() -> None:
    passing = {c[0] for c in PARSER_CASES if c[4] is None}
    failing = {c[0] for c in PARSER_CASES if c[4] is not None}
    untested = [k.name for k in KEYS if k.parse not in passing or k.parse not in failing]
    assert untested == []


def test_a_region_list_given_as_a_string_shows_both_ways_to_set_it() -> None:
    result, [(_, message)] = run_parser(cfg.parse_regions, "eu-west-1,us-west-2")
    assert result is None
    assert "got the plain string 'eu-west-1,us-west-2'" in message
    assert ("pulumi config set --path 'regions[0]' eu-west-1 && "
            "pulumi config set --path 'regions[1]' us-west-2") in message
    assert """--set 'regions=["eu-west-1","us-west-2"]'""" in message


@pytest.mark.parametrize("region,partition", [
    ("cn-north-1", "AWS China"), ("cn-northwest-1", "AWS China"),
    ("us-gov-west-1", "AWS GovCloud (US)"), ("us-iso-east-1", "AWS ISO (US)"),
])
def test_other_partitions_are_not_supported_rather_than_misspelt(region: str, partition: str) -> None:
    _, [(_, message)] = run_parser(cfg.parse_regions, ["eu-west-1", region])
    assert message.startswith(f"{region!r} is in {partition}")
    assert "not support" in message
    assert "did you mean" not in message


def test_capabilities_given_as_a_string_shows_both_ways_to_set_it() -> None:
    _, [(_, message)] = run_parser(cfg.parse_capabilities, "jitr")
    assert "got the plain string 'jitr'" in message
    assert "pulumi config set --path 'capabilities[0]' jitr" in message
    assert """--set 'capabilities=["jitr"]'""" in message


def test_ca_problems_are_reported_under_the_key_that_holds_the_certificate() -> None:
    _, both = run_parser(cfg.parse_ca_certificate_pem_file, CA_FILE,
                         caCertificatePem="-----BEGIN CERTIFICATE-----")
    assert [key for key, _ in both] == ["caCertificatePem"]
    assert "not both" in both[0][1]
    _, private = run_parser(cfg.parse_ca_certificate_pem_file, None,
                            caCertificatePem="-----BEGIN PRIVATE KEY-----\nabc\n")
    assert [key for key, _ in private] == ["caCertificatePem"]
    assert "must never enter Pulumi config" in private[0][1]


def test_a_pem_bundle_is_refused_naming_the_file_and_the_count(tmp_path: Path) -> None:
    start = NOW - dt.timedelta(days=1)
    root = issue("Root", ca=True, not_before=start, days=3650)
    intermediate = issue("Issuing CA", root, ca=True, not_before=start, days=3650)
    bundle = tmp_path / "bundle.pem"
    bundle.write_text(intermediate.pem + root.pem)
    result, reported = run_parser(cfg.parse_ca_certificate_pem_file, str(bundle),
                                  caCertificatePem=None)
    assert result is None
    [(key, message)] = reported
    assert key == "caCertificatePemFile"
    assert f"file {str(bundle)!r} holds 2 certificates" in message
    assert "give only the intermediate CA certificate" in message
    # The same intermediate on its own is accepted.
    single = tmp_path / "intermediate.pem"
    single.write_text(intermediate.pem)
    accepted, none = run_parser(cfg.parse_ca_certificate_pem_file, str(single),
                                caCertificatePem=None)
    assert none == [] and accepted == intermediate.pem


@pytest.mark.parametrize("domain,zone,problem", [
    ("iot.example.com", "example.com", None),
    ("IoT.Example.com.", "example.com.", None),
    ("devices.eu.example.com", "example.com", None),
    ("example.com", "example.com", "is the apex of hosted zone 'example.com'"),
    ("iot.example.com", "iot.example.com", "a CNAME record cannot sit at a zone apex"),
    ("iot.example.org", "example.com", "is not inside hosted zone 'example.com'"),
    ("iot.notexample.com", "example.com", "is not inside hosted zone"),
])
def test_device_domain_must_be_strictly_below_its_zone(domain: str, zone: str,
                                                       problem: str | None) -> None:
    found = device_domain_zone_problem(domain, zone)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_zone_problems_are_reported_under_device_domain() -> None:
    result, reported = run_parser(cfg.parse_hosted_zone_name, "iot.example.com",
                                  deviceDomain="iot.example.com")
    assert result is None
    assert reported == [("deviceDomain", device_domain_zone_problem("iot.example.com",
                                                                    "iot.example.com"))]


# --- the whole config ---------------------------------------------------------------------

def test_valid_config_parses_to_typed_values() -> None:
    config = parse(valid_raw(regions='["eu-west-1", "us-west-2", "us-east-1"]',
                             hostedZoneName="example.com"))
    assert config.regions == ("eu-west-1", "us-west-2", "us-east-1")
    assert config.replica_regions == ("us-west-2", "us-east-1")
    assert config.tls_security_policy == DEFAULT_TLS_SECURITY_POLICY
    assert config.ca_certificate_pem.startswith("-----BEGIN CERTIFICATE-----")
    assert config.hosted_zone_name == "example.com"
    assert config.capabilities == ALL_CAPABILITIES
    assert config.resource_name("x") == "iotmr-dev-x"
    assert not config.is_prod


# (changes to a valid config, the key every error line must name, a phrase of the fix)
BAD_CONFIGS: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown region", {"regions": ["eu-west-1", "eu-wes-2"]}, "regions", "did you mean 'eu-west-2'"),
    ("China region", {"regions": ["eu-west-1", "cn-north-1"]}, "regions", "not support"),
    ("duplicate region", {"regions": ["eu-west-1", "eu-west-1"]}, "regions", "listed twice"),
    ("replication where Pipes is not offered", {"regions": ["eu-west-1", "il-central-1"]}, "regions",
     "il-central-1 does not offer pipes, which capability 'replication' needs"),
    ("primary not in regions", {"primaryRegion": "us-east-1"}, "primaryRegion", "not in regions"),
    ("empty domain", {"deviceDomain": ""}, "deviceDomain", "missing"),
    ("domain not a subdomain", {"deviceDomain": "example"}, "deviceDomain", "iot.example.com"),
    ("domain at the zone apex", {"deviceDomain": "iot.example.com",
                                 "hostedZoneName": "iot.example.com"}, "deviceDomain", "apex"),
    ("domain outside the zone", {"hostedZoneName": "example.org"}, "deviceDomain",
     "not inside hosted zone 'example.org'"),
    ("provisioning domain outside the zone", {"hostedZoneName": "example.com",
                                              "cvm": {"provisioningDomain": "provision.example.org"}},
     "cvm.provisioningDomain", "not inside hosted zone 'example.com'"),
    ("bad zone id", {"hostedZoneId": "zone-1"}, "hostedZoneId", "Z0123456789ABCDEFGHIJ"),
    ("missing regions", {"regions": None}, "regions", "pulumi config set"),
    ("missing app name", {"appName": None}, "appName", "pulumi config set"),
    ("regions wrong type", {"regions": "eu-west-1"}, "regions", "list of region names"),
    ("regions as a string", {"regions": "eu-west-1,us-west-2"}, "regions",
     """--set 'regions=["eu-west-1","us-west-2"]'"""),
    ("regions empty", {"regions": []}, "regions", "at least one region"),
    ("environment wrong value", {"environment": "staging"}, "environment", "'dev' or 'prod'"),
    ("app name wrong type", {"appName": 42}, "appName", "must be a string"),
    ("app name bad chars", {"appName": "IoT_App"}, "appName", "lowercase"),
    ("unknown key (typo)", {"primaryRegoin": "eu-west-1"}, "primaryRegoin", "did you mean 'primaryRegion'"),
    ("tags wrong type", {"tags": ["a"]}, "tags", "map of tag name"),
    ("reserved tag prefix", {"tags": {"aws:owner": "x"}}, "tags", "reserved"),
    ("bad log retention", {"logRetentionDays": 10}, "logRetentionDays", "one of 1, 3, 5"),
    ("weak TLS policy", {"tlsSecurityPolicy": "IoTSecurityPolicy_TLS12_1_0_2016_01"},
     "tlsSecurityPolicy", "TLS 1.2+"),
    ("imported mode without ARNs", {"serverCertificateMode": "imported"},
     "importedServerCertificateArns", "needs an ACM certificate ARN for 'eu-west-1'"),
    ("imported ARN in wrong region", {
        "serverCertificateMode": "imported",
        "importedServerCertificateArns": {
            "eu-west-1": ARN.format("us-east-1"), "us-west-2": ARN.format("us-west-2")}},
     "importedServerCertificateArns", "ACM certificates are regional"),
    ("validation ARN without imported mode", {
        "importedValidationCertificateArns": {"us-west-2": ARN.format("us-west-2")}},
     "importedValidationCertificateArns", "only used with serverCertificateMode 'imported'"),
    ("CA file missing", {"caCertificatePemFile": "certs/nope.pem"}, "caCertificatePemFile", "cannot read"),
    ("no CA at all", {"caCertificatePemFile": None}, "caCertificatePemFile", "pulumi config set"),
    ("CA not a certificate", {"caCertificatePemFile": None, "caCertificatePem": "hello"},
     "caCertificatePem", "not a PEM X.509 certificate"),
    ("CA private key given", {"caCertificatePemFile": None,
                              "caCertificatePem": "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----"},
     "caCertificatePem", "must never enter Pulumi config"),
    ("capability section of a disabled capability", {"capabilities": [], "jitr": {}}, "jitr",
     "is not enabled"),
]


@pytest.mark.parametrize("label,changes,key,fix", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_names_key_and_fix(label: str, changes: dict[str, Any], key: str, fix: str) -> None:
    problems = problems_of(valid_raw(**changes))
    assert problems, label
    assert all("\n" not in line for line in problems), "one line per problem"
    matching = [line for line in problems if line.startswith(f"iot-multi-region:{key}:")]
    assert matching, f"no problem names {key}: {problems}"
    assert any(fix in line for line in matching), f"{fix!r} not in {matching}"


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_required_key_is_one_problem(blank: str) -> None:
    assert problems_of(valid_raw(deviceDomain=blank)) == [
        "iot-multi-region:deviceDomain: missing; set it with `pulumi config set deviceDomain "
        "<value>` (see README, 'Stack configuration')"]


def test_every_problem_is_reported_at_once() -> None:
    raw = valid_raw(regions=["eu-west-1", "mars-north-1"], primaryRegion="us-east-1",
                    hostedZoneId="bad", environment="qa", appName=None)
    keys = {line.split(":")[1] for line in problems_of(raw)}
    assert {"regions", "primaryRegion", "hostedZoneId", "environment", "appName"} <= keys


def test_ca_that_is_not_a_ca_is_refused(tmp_path: Path) -> None:
    pem = tmp_path / "leaf.pem"
    pem.write_text(issue("device-1", not_before=NOW - dt.timedelta(days=1)).pem)
    assert any("is not a CA" in p for p in problems_of(valid_raw(caCertificatePemFile=str(pem))))


def test_expired_ca_is_refused(tmp_path: Path) -> None:
    pem = tmp_path / "old.pem"
    pem.write_text(issue("Old CA", ca=True, not_before=NOW - dt.timedelta(days=400),
                         days=399).pem)
    assert any("expired on" in p for p in problems_of(valid_raw(caCertificatePemFile=str(pem))))


def test_region_list_matches_boto3() -> None:
    import boto3

    from components.config import iot_regions

    assert iot_regions() == frozenset(boto3.session.Session().get_available_regions("iot"))
    assert "eu-west-1" in iot_regions()


def test_readme_documents_every_accepted_key() -> None:
    readme = (PROJECT_DIR / "README.md").read_text()
    section = readme.split("## Stack configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Za-z.:]+)` \|", section, flags=re.MULTILINE))
    assert sorted(set(all_known_keys(CAPABILITIES)) - documented) == []
    assert sorted(documented - set(all_known_keys(CAPABILITIES))) == []


# --- what the program does with it --------------------------------------------------------

@pytest.mark.parametrize("overrides,drop", [
    ({"regions": ["eu-west-1", "eu-west-1"], "hostedZoneId": "nope"}, ()),
    ({}, ("deviceDomain",)),
])
def test_bad_stack_config_registers_no_resource(overrides: dict[str, Any], drop: tuple[str, ...]) -> None:
    """The program refuses bad config before declaring anything, without a traceback."""
    import pulumi

    with pytest.raises(ProgramFailed) as caught:
        evaluate_program(PROJECT_DIR, "dev", config_overrides=overrides, drop_keys=drop)
    assert isinstance(caught.value.error, pulumi.RunError)
    assert "problem(s)" in str(caught.value.error)
    assert caught.value.graph.resources == []
    errors = [m for level, m in caught.value.graph.diagnostics if level == "ERROR"]
    assert errors and all(m.startswith("iot-multi-region:") for m in errors)


def test_a_der_ca_file_is_named_with_the_conversion(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    der = tmp_path / "ca.cer"
    der.write_bytes(x509.load_pem_x509_certificate((PROJECT_DIR / CA_FILE).read_bytes())
                    .public_bytes(Encoding.DER))
    [problem] = problems_of(valid_raw(caCertificatePemFile=str(der)))
    assert problem.startswith("iot-multi-region:caCertificatePemFile: ")
    assert "is not PEM text (DER?)" in problem and "openssl x509 -inform DER" in problem


@pytest.mark.parametrize("key,value,named", [
    ("iot-multi-regoin:logRetentionDays", 30, "iot-multi-regoin:logRetentionDays: unknown namespace "
     "'iot-multi-regoin'; this project's keys are 'iot-multi-region:<key>': did you mean "
     "'iot-multi-region:logRetentionDays'?"),
    ("aws:allowedAccountId", '["123456789012"]',
     "aws:allowedAccountId: unknown key; did you mean 'aws:allowedAccountIds'?"),
], ids=["misspelt project namespace", "misspelt account guard"])
def test_a_near_miss_of_our_namespace_or_the_account_guard_stops_the_program(
        key: str, value: Any, named: str) -> None:
    """Other namespaces are the providers' (aws:region...), but a near-miss of ours would
    leave the stack on a default, and of the account guard, unguarded."""
    with pytest.raises(ProgramFailed) as caught:
        evaluate_program(PROJECT_DIR, "dev", config_overrides={key: value})
    errors = [m for level, m in caught.value.graph.diagnostics if level == "ERROR"]
    assert errors == [named]
    assert caught.value.graph.resources == []


GET_ZONE = "aws:route53/getZone:getZone"


def test_without_zone_name_the_zone_is_looked_up_and_an_apex_domain_stops_the_program() -> None:
    import pulumi

    with pytest.raises(ProgramFailed) as caught:
        evaluate_program(PROJECT_DIR, "dev", drop_keys=("hostedZoneName",),
                         invoke_answers={GET_ZONE: {"name": "iot.dev.example.com."}})
    assert isinstance(caught.value.error, pulumi.RunError)
    message = str(caught.value.error)
    assert message.startswith("iot-multi-region:deviceDomain: 'iot.dev.example.com' is the apex")
    assert "Z0123456789DEVEXAMPLE" in message and "\n" not in message


def test_without_zone_name_a_provisioning_domain_outside_the_zone_stops_the_program() -> None:
    import pulumi

    with pytest.raises(ProgramFailed) as caught:
        evaluate_program(PROJECT_DIR, "dev", drop_keys=("hostedZoneName",),
                         config_overrides={"cvm": {"provisioningDomain": "provision.example.org"}},
                         invoke_answers={GET_ZONE: {"name": "dev.example.com."}})
    assert isinstance(caught.value.error, pulumi.RunError)
    message = str(caught.value.error)
    assert message.startswith("iot-multi-region:cvm.provisioningDomain: 'provision.example.org' "
                              "is not inside hosted zone 'dev.example.com'"), message


def test_a_configured_zone_name_is_checked_offline_instead_of_looked_up() -> None:
    # The zone lookup would say "apex"; with hostedZoneName set the program does not ask.
    graph = evaluate_program(PROJECT_DIR, "dev", config_overrides={"hostedZoneName": "example.com"},
                             invoke_answers={GET_ZONE: {"name": "iot.dev.example.com"}})
    assert graph.outputs["deviceDomain"] == "iot.dev.example.com"



def test_config_parsing_knows_only_the_registry_it_is_given() -> None:
    """The registry is an argument (no import circle config -> capabilities -> ... ->
    config): a stack naming a capability of another registry is refused."""
    only_jitr = [c for c in CAPABILITIES if c.name == "jitr"]
    context = ParseContext(project_dir=PROJECT_DIR, now=NOW, parsed={},
                           capabilities=only_jitr)
    reported: list[str] = []
    assert cfg.parse_capabilities(None, context, lambda m, key=None: reported.append(m)) == \
        ("jitr",)
    assert cfg.parse_capabilities(["cvm"], context, lambda m, key=None: reported.append(m)) \
        is None
    assert reported == ["'cvm' is not a capability; use one of jitr"]


def test_config_imports_neither_the_registry_nor_a_capability() -> None:
    """Not even inside a function: that is how the old circle was hidden."""
    import ast

    from components import capabilities

    tree = ast.parse((PROJECT_DIR / "components" / "config.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | \
        {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
         for alias in node.names}
    forbidden = {capabilities.__name__} | {f"components.{c.name}" for c in CAPABILITIES}
    assert {m for m in imported if m and m.split(".")[:2] in
            [f.split(".")[:2] for f in forbidden]} == set()
