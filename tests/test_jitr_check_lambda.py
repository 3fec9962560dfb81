"""The certificate check's plain functions and its handler (no AWS)."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from lambdas.contracts.environment import EnvironmentProblem
from lambdas.contracts.inventory import timestamp
from lambdas.jitr_certificate_check import app
from lambdas.jitr_certificate_check.config import Config
from lambdas.jitr_certificate_check.checks import check_certificate, issued_by, load_ca_certificates
from tests.support.certificates import CLIENT_AUTH, NOW, SERVER_AUTH, Issued, device_key_usage, issue
from tools import pki
from tools.local.emulation.lambdas import LambdaContext

CONTEXT = LambdaContext("check", "arn:aws:lambda:eu-west-1:123456789012:function:check", float("inf"))


@pytest.fixture(scope="module")
def ca() -> Issued:
    return issue("Issuing CA", issue("Root", ca=True), ca=True)


def test_accepts_a_device_certificate_of_our_ca(ca: Issued) -> None:
    device = issue("sensor-1:a_b", ca)
    result = check_certificate(device.pem, [ca.cert], NOW)
    assert result.valid and result.thing_name == "sensor-1:a_b"
    assert result.not_after == timestamp(device.cert.not_valid_after_utc)


def test_rejects_same_issuer_name_signed_by_another_key(ca: Issued) -> None:
    impostor_ca = Issued(ec.generate_private_key(ec.SECP256R1()), ca.cert)  # our name, other key
    forged = issue("sensor-1", impostor_ca)
    assert forged.cert.issuer == ca.cert.subject
    assert not issued_by(forged.cert, ca.cert)
    assert "not issued by our CA" in check_certificate(forged.pem, [ca.cert], NOW).reason


def test_accepts_either_ca_during_rotation(ca: Issued) -> None:
    new_ca = issue("Issuing CA 2", ca=True)
    device = issue("sensor-2", new_ca)
    assert check_certificate(device.pem, [ca.cert, new_ca.cert], NOW).valid
    assert not check_certificate(device.pem, [ca.cert], NOW).valid


@pytest.mark.parametrize("cn, valid", [("a", True), ("A" * 128, True), ("x" * 129, False),
                                       ("has space", False), ("new\nline", False), ("é", False),
                                       ("a.b", False)])
def test_cn_must_be_a_thing_name(ca: Issued, cn: str, valid: bool) -> None:
    assert check_certificate(issue(cn, ca).pem, [ca.cert], NOW).valid is valid


def test_rejects_not_yet_valid_expired_and_ca_certificates(ca: Issued) -> None:
    future = issue("sensor-f", ca, not_before=NOW + dt.timedelta(days=1))
    expired = issue("sensor-e", ca, not_before=NOW - dt.timedelta(days=10), days=5)
    sub_ca = issue("sensor-ca", ca, ca=True)
    assert "not valid before" in check_certificate(future.pem, [ca.cert], NOW).reason
    assert "expired" in check_certificate(expired.pem, [ca.cert], NOW).reason
    assert "CA certificate" in check_certificate(sub_ca.pem, [ca.cert], NOW).reason


def test_garbage_pem_is_rejected_not_raised(ca: Issued) -> None:
    result = check_certificate("-----BEGIN CERTIFICATE-----\nnope\n", [ca.cert], NOW)
    assert not result.valid and "PEM" in result.reason


def test_malformed_extensions_are_rejected_not_raised(ca: Issued) -> None:
    """A certificate whose AuthorityKeyIdentifier was turned into a second
    SubjectKeyIdentifier: cryptography parses extensions lazily and raises on the duplicate."""
    der = issue("sensor-9", ca).cert.public_bytes(serialization.Encoding.DER)
    aki_oid, ski_oid = bytes.fromhex("0603551d23"), bytes.fromhex("0603551d0e")
    assert der.count(aki_oid) == 1
    pem = ("-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der.replace(aki_oid, ski_oid)).decode()
           + "-----END CERTIFICATE-----\n")
    result = check_certificate(pem, [ca.cert], NOW)
    assert not result.valid and "malformed extensions" in result.reason


def test_load_ca_certificates_reports_bad_pem() -> None:
    with pytest.raises(ValueError, match="CA certificate PEM"):
        load_ca_certificates("not a pem")


@pytest.mark.parametrize("event", [None, "text", [], {}, {"certificatePem": 5},
                                   {"certificatePem": ""}])
def test_bad_event_gives_an_error_result(ca: Issued, event: object) -> None:
    result = app.evaluate(event, Config([ca.cert]), NOW)
    assert result["error"] == "InvalidEvent" and result["valid"] is False
    assert set(result) == {"valid", "reason", "thingName", "notAfter", "subjectThingName", "error"}


def test_missing_or_bad_ca_configuration_is_reported(ca: Issued) -> None:
    device = issue("sensor-3", ca)
    for environment in ({}, {"CA_CERTIFICATE_PEM": ""}, {"CA_CERTIFICATE_PEM": "junk"}):
        with pytest.raises((EnvironmentProblem, ValueError)) as problem:
            Config.from_environment(environment)
        result = app.evaluate({"certificatePem": device.pem}, problem.value, NOW)
        assert result["error"] == "Misconfigured" and result["valid"] is False


def test_handler_returns_every_key(ca: Issued, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CA_CERTIFICATE_PEM", ca.pem)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    device = issue("sensor-4", ca)
    result = app.handler({"certificatePem": device.pem}, CONTEXT)
    assert result == {"valid": True, "reason": result["reason"], "thingName": "sensor-4",
                      "notAfter": result["notAfter"], "subjectThingName": "sensor-4", "error": None}
    assert app.handler({"wrong": 1}, CONTEXT)["error"] == "InvalidEvent"


# --- device certificates only (class 4) ----------------------------------------------------

def _key_usage(**set_bits: bool) -> x509.KeyUsage:
    bits = dict(digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False)
    bits.update(set_bits)
    return x509.KeyUsage(**bits)


DEVICE_USAGES: list[tuple[str, list[x509.ObjectIdentifier] | None, x509.KeyUsage | None, str | None]] = [
    ("no usage extensions", None, None, None),
    ("clientAuth + digitalSignature", [CLIENT_AUTH], device_key_usage(), None),
    ("clientAuth and serverAuth", [CLIENT_AUTH, SERVER_AUTH], device_key_usage(), None),
    ("server certificate", [SERVER_AUTH], device_key_usage(), "lacks clientAuth"),
    ("code signing only", [ExtendedKeyUsageOID.CODE_SIGNING], None, "lacks clientAuth"),
    ("keyCertSign on a leaf", [CLIENT_AUTH],
     _key_usage(digital_signature=True, key_cert_sign=True), "keyCertSign"),
    ("no digitalSignature", [CLIENT_AUTH], _key_usage(key_encipherment=True),
     "lacks digitalSignature"),
]


@pytest.mark.parametrize("ekus, key_usage, problem", [c[1:] for c in DEVICE_USAGES],
                         ids=[c[0] for c in DEVICE_USAGES])
def test_only_device_certificates_are_accepted(ca: Issued, ekus: list[x509.ObjectIdentifier] | None,
                                               key_usage: x509.KeyUsage | None,
                                               problem: str | None) -> None:
    cert = issue("sensor-usage", ca, extended_key_usages=ekus, key_usage=key_usage)
    result = check_certificate(cert.pem, [ca.cert], NOW)
    if problem is None:
        assert result.valid, result.reason
    else:
        assert not result.valid and problem in result.reason
        assert result.thing_name is None
        # The CN is still reported, for the inventory look-up before a revocation.
        assert result.subject_thing_name == "sensor-usage"


def test_the_pki_tools_server_certificate_never_passes_but_its_device_certificate_does(
        ca: Issued) -> None:
    """What `tools/pki.py` really issues from our CA: server-cert is refused, device-cert is
    accepted (so the rule is about usages, not about how the tool names things)."""
    issuing_ca = pki.CertifiedKey(ca.key, ca.cert)
    server = pki.create_server_cert(issuing_ca, "iot.example.com")
    device = pki.create_device_cert(issuing_ca, "sensor-from-pki")

    inside_validity = device.cert.not_valid_before_utc + dt.timedelta(minutes=1)
    refused = check_certificate(pem(server.cert), [ca.cert], inside_validity)
    accepted = check_certificate(pem(device.cert), [ca.cert], inside_validity)

    assert not refused.valid and "lacks clientAuth" in refused.reason
    assert accepted.valid and accepted.thing_name == "sensor-from-pki"


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()
