"""Stack config: every problem reported at once, one clear line each, before any resource."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from components.config import (
    DEFAULT_TLS_SECURITY_POLICY,
    ConfigError,
    StackConfig,
    parse_stack_config,
)
from tools.harness import ProgramFailed, evaluate_program

PROJECT_DIR = Path(__file__).resolve().parent.parent
CA_FILE = "certs/example-intermediate-ca.pem"
NOW = dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc)


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
    return parse_stack_config(raw, project_dir=PROJECT_DIR, now=NOW)


def test_valid_config_parses_to_typed_values() -> None:
    config = parse(valid_raw(regions='["eu-west-1", "us-west-2", "us-east-1"]'))
    assert config.regions == ("eu-west-1", "us-west-2", "us-east-1")
    assert config.replica_regions == ("us-west-2", "us-east-1")
    assert config.tls_security_policy == DEFAULT_TLS_SECURITY_POLICY
    assert config.ca_certificate_pem.startswith("-----BEGIN CERTIFICATE-----")
    assert config.resource_name("x") == "iotmr-dev-x"
    assert not config.is_prod


# (changes to a valid config, the key every error line must name, a phrase of the fix)
BAD_CONFIGS: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown region", {"regions": ["eu-west-1", "eu-wes-2"]}, "regions", "did you mean 'eu-west-2'"),
    ("duplicate region", {"regions": ["eu-west-1", "eu-west-1"]}, "regions", "listed twice"),
    ("primary not in regions", {"primaryRegion": "us-east-1"}, "primaryRegion", "not in regions"),
    ("empty domain", {"deviceDomain": ""}, "deviceDomain", "missing"),
    ("domain not a subdomain", {"deviceDomain": "example"}, "deviceDomain", "iot.example.com"),
    ("bad zone id", {"hostedZoneId": "zone-1"}, "hostedZoneId", "Z0123456789ABCDEFGHIJ"),
    ("missing regions", {"regions": None}, "regions", "pulumi config set"),
    ("missing app name", {"appName": None}, "appName", "pulumi config set"),
    ("regions wrong type", {"regions": "eu-west-1"}, "regions", "list of region names"),
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
            "eu-west-1": "arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012",
            "us-west-2": "arn:aws:acm:us-west-2:123456789012:certificate/12345678-1234-1234-1234-123456789012",
        }}, "importedServerCertificateArns", "ACM certificates are regional"),
    ("CA file missing", {"caCertificatePemFile": "certs/nope.pem"}, "caCertificatePemFile", "cannot read"),
    ("no CA at all", {"caCertificatePemFile": None}, "caCertificatePemFile", "pulumi config set"),
    ("CA not a certificate", {"caCertificatePemFile": None, "caCertificatePem": "hello"},
     "caCertificatePem", "not a PEM X.509 certificate"),
    ("CA private key given", {"caCertificatePemFile": None,
                              "caCertificatePem": "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----"},
     "caCertificatePem", "must never enter Pulumi config"),
]


@pytest.mark.parametrize("label,changes,key,fix", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_names_key_and_fix(label: str, changes: dict[str, Any], key: str, fix: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(valid_raw(**changes))
    problems = caught.value.problems
    assert problems, label
    assert all("\n" not in line for line in problems), "one line per problem"
    matching = [line for line in problems if line.startswith(f"iot-multi-region:{key}:")]
    assert matching, f"no problem names {key}: {problems}"
    assert any(fix in line for line in matching), f"{fix!r} not in {matching}"


def test_every_problem_is_reported_at_once() -> None:
    raw = valid_raw(regions=["eu-west-1", "mars-north-1"], primaryRegion="us-east-1",
                    hostedZoneId="bad", environment="qa", appName=None)
    with pytest.raises(ConfigError) as caught:
        parse(raw)
    keys = {line.split(":")[1] for line in caught.value.problems}
    assert {"regions", "primaryRegion", "hostedZoneId", "environment", "appName"} <= keys


def _make_cert(path: Path, *, ca: bool, not_after: dt.datetime) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(not_after - dt.timedelta(days=400)).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(Encoding.PEM))


def test_ca_that_is_not_a_ca_is_refused(tmp_path: Path) -> None:
    pem = tmp_path / "leaf.pem"
    _make_cert(pem, ca=False, not_after=NOW + dt.timedelta(days=30))
    with pytest.raises(ConfigError) as caught:
        parse(valid_raw(caCertificatePemFile=str(pem)))
    assert any("is not a CA" in p for p in caught.value.problems)


def test_expired_ca_is_refused(tmp_path: Path) -> None:
    pem = tmp_path / "old.pem"
    _make_cert(pem, ca=True, not_after=NOW - dt.timedelta(days=1))
    with pytest.raises(ConfigError) as caught:
        parse(valid_raw(caCertificatePemFile=str(pem)))
    assert any("expired on" in p for p in caught.value.problems)


@pytest.mark.parametrize("overrides,drop", [
    ({"regions": ["eu-west-1", "eu-west-1"], "hostedZoneId": "nope"}, ()),
    ({}, ("deviceDomain",)),
    ({"caCertificatePemFile": "certs/missing.pem"}, ()),
])
def test_bad_stack_config_registers_no_resource(overrides: dict[str, Any], drop: tuple[str, ...]) -> None:
    """The program refuses bad config before declaring anything, without a traceback."""
    import pulumi

    with pytest.raises(ProgramFailed) as caught:
        evaluate_program(PROJECT_DIR, "dev", config_overrides=overrides, drop_keys=drop)
    assert isinstance(caught.value.error, pulumi.RunError)
    assert "problem(s)" in str(caught.value.error)
    assert caught.value.graph.resources == []


def test_region_list_matches_boto3() -> None:
    import boto3

    from components.config import iot_regions

    assert iot_regions() == frozenset(boto3.session.Session().get_available_regions("iot"))
    assert "eu-west-1" in iot_regions()
