"""The function's plain pieces without AWS: token matching, the salts cache, the undo stack,
CSR and signature checks, request parsing."""

from __future__ import annotations

import base64
import hmac
import json
import re
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from lambdas.cvm_registration.dal.aws import SecretSalts
from lambdas.cvm_registration.dal.ports import AwsFailure
from lambdas.cvm_registration.logic import crypto, tokens
from lambdas.cvm_registration.logic.compensation import Compensation
from lambdas.cvm_registration.logic.errors import BadField
from lambdas.cvm_registration.logic.tokens import SaltBook, SaltBookError, SaltRef, match_salt
from lambdas.cvm_registration.models.requests import (
    MalformedRequest,
    RegistrationRequest,
    parse_body,
)
from tests.support.certificates import issue
from tests.support.cvm import new_csr, token

BOOK = SaltBook({SaltRef("A", 1): "salt-a1", SaltRef("A", 2): "salt-a2",
                 SaltRef("B", 1): "salt-b1"})


def test_the_token_names_its_batch_and_salt_version() -> None:
    assert match_salt(BOOK, "dev-1", None, token("salt-a2", "dev-1")) == SaltRef("A", 2)
    assert match_salt(BOOK, "dev-1", None, token("salt-b1", "dev-1").upper()) == SaltRef("B", 1)
    assert match_salt(BOOK, "dev-1", "mac", token("salt-b1", "dev-1", "mac")) == SaltRef("B", 1)
    assert match_salt(BOOK, "dev-1", None, token("salt-b1", "dev-2")) is None
    assert match_salt(BOOK, "dev-1", None, token("salt-b1", "dev-1", "mac")) is None


def test_every_salt_is_compared_whether_or_not_one_matches(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    compared: list[bytes] = []
    original = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append(a)
        return original(a, b)

    monkeypatch.setattr(tokens.hmac, "compare_digest", counting)
    match_salt(BOOK, "dev-1", None, token("salt-a1", "dev-1"))  # the first one matches
    match_salt(BOOK, "dev-1", None, "0" * 64)
    assert len(compared) == 2 * len(BOOK.salts)


@pytest.mark.parametrize("text", ["", "[]", '{"batches": []}', '{"batches": {"bad name": {}}}',
                                  '{"batches": {"A": {"salts": {"x": "s"}}}}',
                                  '{"batches": {"A": {"salts": {"1": ""}}}}'])
def test_a_malformed_salts_secret_is_refused_without_echoing_it(text: str) -> None:
    with pytest.raises(SaltBookError) as refused:
        SaltBook.from_secret(text)
    assert "salt" in str(refused.value) and "bad name" not in str(refused.value)


class FakeSecrets:
    def __init__(self) -> None:
        self.reads = 0
        self.fail: str | None = None
        self.document = {"batches": {"A": {"current": 1, "salts": {"1": "s"}}}}

    def get_secret_value(self, SecretId: str) -> dict[str, Any]:  # noqa: N803 - boto3's name
        self.reads += 1
        if self.fail:
            raise ClientError({"Error": {"Code": self.fail, "Message": ""}}, "GetSecretValue")
        return {"SecretString": json.dumps(self.document)}


def test_salts_are_cached_and_refreshes_are_rate_limited() -> None:
    client, now = FakeSecrets(), [0.0]
    salts = SecretSalts(client, "arn", ttl=300, min_refresh_interval=60, clock=lambda: now[0])
    first = salts.book()
    assert salts.book() is first and salts.refreshed() is first and client.reads == 1
    now[0] = 61
    client.document["batches"]["B"] = {"current": 1, "salts": {"1": "t"}}
    assert SaltRef("B", 1) in salts.refreshed().salts and client.reads == 2
    now[0] = 400
    client.fail = "ThrottlingException"
    assert SaltRef("B", 1) in salts.book().salts  # stale but serving
    assert client.reads == 3


def test_no_salts_at_all_is_a_failure_and_no_value_yet_is_an_empty_book() -> None:
    client = FakeSecrets()
    client.fail = "AccessDeniedException"
    with pytest.raises(AwsFailure) as failure:
        SecretSalts(client, "arn").book()
    assert failure.value.code == "AccessDeniedException"
    client.fail = "ResourceNotFoundException"
    assert SecretSalts(client, "arn").book().salts == {}


def test_undo_runs_every_step_newest_first_and_reports_failures() -> None:
    ran: list[str] = []
    failed: list[str] = []
    undo = Compensation(lambda step, error: failed.append(f"{step}: {error}"))
    undo.push("first", lambda: ran.append("first"))
    undo.push("broken", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    undo.push("last", lambda: ran.append("last"))
    undo.run()
    assert ran == ["last", "first"] and failed == ["broken: boom"]
    undo.run()  # a second run has nothing left to do
    assert ran == ["last", "first"]


def _csr(key: Any) -> str:
    return (x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "d")]))
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())


def test_csr_checks() -> None:
    crypto.checked_csr(new_csr()[1])
    crypto.checked_csr(_csr(rsa.generate_private_key(65537, 2048)))
    with pytest.raises(BadField, match="2048-4096 bits"):
        crypto.checked_csr(_csr(rsa.generate_private_key(65537, 1024)))
    with pytest.raises(BadField, match="P-256"):
        crypto.checked_csr(_csr(ec.generate_private_key(ec.SECP256K1())))
    pem = new_csr()[1]
    body = "".join(pem.splitlines()[1:-1])
    der = bytearray(base64.b64decode(body))
    der[-5] ^= 0xFF  # break the self-signature
    tampered = ("-----BEGIN CERTIFICATE REQUEST-----\n" + base64.b64encode(bytes(der)).decode()
                + "\n-----END CERTIFICATE REQUEST-----\n")
    with pytest.raises(BadField) as refused:
        crypto.checked_csr(tampered)
    assert refused.value.field == "csr"


def test_a_csr_aws_iot_would_refuse_is_a_bad_field_not_a_retry_later() -> None:
    """CreateCertificateFromCsr's refusal would be an AWS failure (503, retried for ever):
    SHA-224 or RSA-PSS signatures and text around the PEM block are named first."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "d")]))
    sha224 = builder.sign(key, hashes.SHA224()).public_bytes(serialization.Encoding.PEM).decode()
    pss = builder.sign(rsa.generate_private_key(65537, 2048), hashes.SHA256(),
                       rsa_padding=padding.PSS(padding.MGF1(hashes.SHA256()), 32)
                       ).public_bytes(serialization.Encoding.PEM).decode()
    good = new_csr()[1]
    for pem, says in [(sha224, "SHA-256"), (pss, "PKCS#1"), (good + "trailing", "nothing around it"),
                      (good + good, "exactly one")]:
        with pytest.raises(BadField, match=re.escape(says)) as refused:
            crypto.checked_csr(pem)
        assert refused.value.field == "csr"
    crypto.checked_csr("\n" + good + "\n")  # whitespace around it is fine


def test_rotation_signatures_verify_with_ec_and_rsa_keys() -> None:
    message = crypto.rotation_message("dev-1", 1700000000, "CSR")
    assert message.decode().startswith("cvm-rotation\ndev-1\n1700000000\n")
    ec_device = issue("dev-1")
    ec_signature = base64.b64encode(ec_device.key.sign(message, ec.ECDSA(hashes.SHA256())))
    assert crypto.signature_verifies(ec_device.pem, message, ec_signature.decode())
    assert not crypto.signature_verifies(ec_device.pem, message + b"x", ec_signature.decode())
    assert not crypto.signature_verifies(ec_device.pem, message, "not base64!")
    rsa_key = rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dev-1")])
    rsa_cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(rsa_key.public_key()).serial_number(1)
                .not_valid_before(ec_device.cert.not_valid_before_utc)
                .not_valid_after(ec_device.cert.not_valid_after_utc)
                .sign(rsa_key, hashes.SHA256()))
    rsa_pem = rsa_cert.public_bytes(serialization.Encoding.PEM).decode()
    rsa_signature = base64.b64encode(rsa_key.sign(message, padding.PKCS1v15(), hashes.SHA256()))
    assert crypto.signature_verifies(rsa_pem, message, rsa_signature.decode())


def test_parsing_names_the_field_and_never_echoes_the_value() -> None:
    with pytest.raises(MalformedRequest) as refused:
        parse_body('{"device_uid": "D", "device_token": "secret-looking-value"}',
                   RegistrationRequest)
    assert refused.value.field == "device_token"
    assert "secret-looking-value" not in str(refused.value)
    with pytest.raises(MalformedRequest, match="larger than"):
        parse_body('{"device_uid": "' + "a" * 20000 + '"}', RegistrationRequest)
    parsed = parse_body('{"device_uid": "D", "device_token": "%s"}' % ("A" * 64),
                        RegistrationRequest)
    assert parsed.csr is None and parsed.device_uid_2 is None
