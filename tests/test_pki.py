"""Tests for tools/pki.py. EC keys everywhere except where RSA itself is under test."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from tools import pki

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
AT = T0 + dt.timedelta(days=1)
DOMAIN = "iot.example.com"
T0_ARG = ["--not-before", "2026-01-01T00:00:00Z"]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def root() -> pki.CertifiedKey:
    return pki.create_root_ca(not_before=T0)


@pytest.fixture(scope="module")
def inter(root: pki.CertifiedKey) -> pki.CertifiedKey:
    return pki.create_intermediate_ca(root, not_before=T0)


@pytest.fixture(scope="module")
def other_inter() -> pki.CertifiedKey:
    """A complete, unrelated PKI with identical names, to prove trust is key-based."""
    other_root = pki.create_root_ca(not_before=T0)
    return pki.create_intermediate_ca(other_root, not_before=T0)


@pytest.fixture
def ca_files(tmp_path: Path) -> dict[str, Path]:
    """Root + intermediate created through the CLI, as a user would."""
    ca_dir = tmp_path / "ca"
    assert pki.main(["root-ca", "--out-dir", str(ca_dir), *T0_ARG]) == 0
    rc = pki.main(
        [
            "intermediate-ca",
            "--root-cert", str(ca_dir / pki.ROOT_CERT_FILE),
            "--root-key", str(ca_dir / pki.ROOT_KEY_FILE),
            "--out-dir", str(ca_dir),
            *T0_ARG,
        ]
    )
    assert rc == 0
    return {
        "root_cert": ca_dir / pki.ROOT_CERT_FILE,
        "root_key": ca_dir / pki.ROOT_KEY_FILE,
        "ca_cert": ca_dir / pki.INTERMEDIATE_CERT_FILE,
        "ca_key": ca_dir / pki.INTERMEDIATE_KEY_FILE,
    }


@pytest.fixture
def umask_077() -> Iterator[None]:
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def _eku(cert: x509.Certificate) -> x509.ExtendedKeyUsage:
    return cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value


def _cn(cert: x509.Certificate) -> str:
    value = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert isinstance(value, str)
    return value


def _spki(key: object) -> bytes:
    assert isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey))
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _client_verify(leaf: x509.Certificate, inter: x509.Certificate, root: x509.Certificate) -> list[x509.Certificate]:
    """Independent of pki.verify_certificate so a bug there cannot hide a bad cert."""
    ee = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
    )
    verifier = (
        PolicyBuilder()
        .store(Store([root]))
        .time(AT)
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee)
        .build_client_verifier()
    )
    return verifier.verify(leaf, [inter]).chain


# --------------------------------------------------------------------------- CA certs


def test_root_and_intermediate_ca_extensions(root: pki.CertifiedKey, inter: pki.CertifiedKey) -> None:
    for ca, pathlen in ((root, None), (inter, 0)):
        bc = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert bc.critical and bc.value.ca and bc.value.path_length == pathlen
        ku = ca.cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
        assert not ku.value.digital_signature
        ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        assert ski == x509.SubjectKeyIdentifier.from_public_key(ca.key.public_key())
    assert root.cert.subject == root.cert.issuer
    root.cert.verify_directly_issued_by(root.cert)
    inter.cert.verify_directly_issued_by(root.cert)
    aki = inter.cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    root_ski = root.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == root_ski.digest


def test_default_validity_periods(root: pki.CertifiedKey, inter: pki.CertifiedKey) -> None:
    assert root.cert.not_valid_before_utc == T0
    assert root.cert.not_valid_after_utc - T0 == dt.timedelta(days=pki.DEFAULT_ROOT_DAYS)
    assert inter.cert.not_valid_after_utc - T0 == dt.timedelta(days=pki.DEFAULT_INTERMEDIATE_DAYS)
    server = pki.create_server_cert(inter, DOMAIN, not_before=T0)
    assert server.cert.not_valid_after_utc - T0 == dt.timedelta(days=397)
    assert pki.DEFAULT_ROOT_DAYS >= 20 * 365 and pki.DEFAULT_DEVICE_DAYS >= 10 * 365


def test_leaf_validity_is_clamped_to_issuer_expiry(inter: pki.CertifiedKey) -> None:
    later = T0 + dt.timedelta(days=30)
    dev = pki.create_device_cert(inter, "clamped", not_before=later)
    assert dev.cert.not_valid_before_utc == later
    assert dev.cert.not_valid_after_utc == inter.cert.not_valid_after_utc


@pytest.mark.parametrize(
    ("key_type", "expected"),
    [("ec-p256", "secp256r1"), ("rsa-2048", 2048), ("rsa-3072", 3072), ("rsa-4096", 4096)],
)
def test_key_types_are_as_requested(key_type: pki.KeyType, expected: object) -> None:
    ca = pki.create_root_ca(key_type=key_type, not_before=T0)
    for key in (ca.key, ca.cert.public_key()):
        if isinstance(expected, int):
            assert isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey))
            assert key.key_size == expected
        else:
            assert isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey))
            assert key.curve.name == expected
    ca.cert.verify_directly_issued_by(ca.cert)


# --------------------------------------------------------------------------- server cert


@pytest.mark.parametrize("key_type", ["ec-p256", "rsa-2048"])
def test_server_chain_verifies(
    root: pki.CertifiedKey, inter: pki.CertifiedKey, key_type: pki.KeyType
) -> None:
    server = pki.create_server_cert(inter, DOMAIN, key_type=key_type, not_before=T0)
    chain = pki.server_chain(inter.cert, root.cert)
    assert chain == [inter.cert, root.cert]
    assert 1 + len(chain) <= 5

    verifier = PolicyBuilder().store(Store([root.cert])).time(AT).build_server_verifier(x509.DNSName(DOMAIN))
    built = verifier.verify(server.cert, [inter.cert])
    assert built == [server.cert, inter.cert, root.cert]
    assert len(built) <= 5
    # The library wrapper must agree with the raw verifier.
    assert pki.verify_certificate(server.cert, chain, purpose="server", dns_name=DOMAIN, at=AT) == built

    assert ExtendedKeyUsageOID.SERVER_AUTH in _eku(server.cert)
    assert ExtendedKeyUsageOID.CLIENT_AUTH not in _eku(server.cert)
    san = server.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [DOMAIN]
    pub = server.cert.public_key()
    assert (isinstance(pub, rsa.RSAPublicKey) and pub.key_size == 2048) or (
        isinstance(pub, ec.EllipticCurvePublicKey) and pub.curve.name == "secp256r1"
    )
    assert _spki(pub) == _spki(server.key.public_key())


def test_server_cert_does_not_verify_for_other_name(root: pki.CertifiedKey, inter: pki.CertifiedKey) -> None:
    server = pki.create_server_cert(inter, DOMAIN, not_before=T0)
    with pytest.raises(pki.ChainVerificationError):
        pki.verify_certificate(
            server.cert, [inter.cert, root.cert], purpose="server", dns_name="evil.example.com", at=AT
        )


@pytest.mark.parametrize("key_type", ["rsa-3072", "rsa-4096"])
def test_server_rejects_key_types_aws_does_not_accept(inter: pki.CertifiedKey, key_type: pki.KeyType) -> None:
    with pytest.raises(pki.PkiError, match=r"rsa-2048 or ec-p256"):
        pki.create_server_cert(inter, DOMAIN, key_type=key_type, not_before=T0)


@pytest.mark.parametrize("domain", ["*.example.com", "localhost", "bad_domain.com", "-a.example.com", "ex ample.com"])
def test_server_rejects_bad_domains(inter: pki.CertifiedKey, domain: str) -> None:
    with pytest.raises(pki.PkiError, match="invalid domain"):
        pki.create_server_cert(inter, domain, not_before=T0)


# --------------------------------------------------------------------------- device cert


def test_device_cert_properties_and_chain(
    root: pki.CertifiedKey, inter: pki.CertifiedKey, other_inter: pki.CertifiedKey
) -> None:
    dev = pki.create_device_cert(inter, "sensor-01:eu_west", not_before=T0)
    assert _cn(dev.cert) == "sensor-01:eu_west"
    assert list(_eku(dev.cert)) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ku = dev.cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    assert not dev.cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert isinstance(dev.key, ec.EllipticCurvePrivateKey) and dev.key.curve.name == "secp256r1"

    assert _client_verify(dev.cert, inter.cert, root.cert) == [dev.cert, inter.cert, root.cert]
    pki.verify_certificate(dev.cert, [inter.cert, root.cert], purpose="client", at=AT)

    # Same subject names, different keys: must not verify against our chain.
    foreign = pki.create_device_cert(other_inter, "sensor-01", not_before=T0)
    assert foreign.cert.issuer == dev.cert.issuer
    with pytest.raises(VerificationError):
        _client_verify(foreign.cert, inter.cert, root.cert)
    with pytest.raises(pki.ChainVerificationError):
        pki.verify_certificate(foreign.cert, [inter.cert, root.cert], purpose="client", at=AT)


def test_device_cert_not_valid_outside_its_period(root: pki.CertifiedKey, inter: pki.CertifiedKey) -> None:
    dev = pki.create_device_cert(inter, "sensor-02", days=10, not_before=T0)
    for when in (T0 - dt.timedelta(seconds=1), T0 + dt.timedelta(days=10, seconds=1)):
        with pytest.raises(pki.ChainVerificationError):
            pki.verify_certificate(dev.cert, [inter.cert, root.cert], purpose="client", at=when)


@pytest.mark.parametrize("name", ["bad name!", "a" * 129, "", "thing\n", "thing/../x", "ünïcode"])
def test_invalid_thing_names_rejected(inter: pki.CertifiedKey, name: str) -> None:
    with pytest.raises(pki.PkiError, match="invalid thing name"):
        pki.create_device_cert(inter, name, not_before=T0)
    with pytest.raises(pki.PkiError, match="invalid thing name"):
        pki.create_device_csr(name)


def test_valid_thing_name_boundaries() -> None:
    for name in ("a", "a" * 128, "A-z_0:9"):
        assert pki.validate_thing_name(name) == name


# --------------------------------------------------------------------------- CSR flow


def test_csr_flow_yields_verifying_cert_with_csr_key(root: pki.CertifiedKey, inter: pki.CertifiedKey) -> None:
    kc = pki.create_device_csr("csr-thing")
    assert kc.csr.is_signature_valid
    cert = pki.sign_device_csr(inter, kc.csr, expected_thing_name="csr-thing", not_before=T0)
    assert _spki(cert.public_key()) == _spki(kc.csr.public_key()) == _spki(kc.key.public_key())
    assert _cn(cert) == "csr-thing"
    assert ExtendedKeyUsageOID.CLIENT_AUTH in _eku(cert)
    _client_verify(cert, inter.cert, root.cert)


def test_sign_csr_rejects_tampered_signature(inter: pki.CertifiedKey) -> None:
    der = bytearray(pki.create_device_csr("t1").csr.public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # last byte is inside the signature value
    csr = x509.load_der_x509_csr(bytes(der))
    with pytest.raises(pki.PkiError, match="signature is invalid"):
        pki.sign_device_csr(inter, csr, not_before=T0)


def test_sign_csr_rejects_bad_or_mismatched_cn(inter: pki.CertifiedKey) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    bad = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bad name!")]))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(pki.PkiError, match="invalid thing name"):
        pki.sign_device_csr(inter, bad, not_before=T0)
    good = pki.create_device_csr("t1").csr
    with pytest.raises(pki.PkiError, match="does not match"):
        pki.sign_device_csr(inter, good, expected_thing_name="t2", not_before=T0)


def test_sign_csr_ignores_requested_ca_extension(inter: pki.CertifiedKey) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "greedy")]))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert = pki.sign_device_csr(inter, csr, not_before=T0)
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


# --------------------------------------------------------------------------- files


def test_key_files_0600_and_certs_0644_even_with_strict_umask(tmp_path: Path, umask_077: None) -> None:
    assert pki.main(["root-ca", "--out-dir", str(tmp_path), *T0_ARG]) == 0
    assert _mode(tmp_path / pki.ROOT_KEY_FILE) == 0o600
    assert _mode(tmp_path / pki.ROOT_CERT_FILE) == 0o644


def test_existing_file_is_not_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert pki.main(["root-ca", "--out-dir", str(tmp_path), *T0_ARG]) == 0
    key_path, cert_path = tmp_path / pki.ROOT_KEY_FILE, tmp_path / pki.ROOT_CERT_FILE
    before = {p: p.read_bytes() for p in (key_path, cert_path)}
    capsys.readouterr()

    assert pki.main(["root-ca", "--out-dir", str(tmp_path), *T0_ARG]) == 2
    err = capsys.readouterr().err
    assert str(key_path) in err and "--force" in err
    assert {p: p.read_bytes() for p in before} == before


def test_partial_existing_outputs_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cert_path = tmp_path / pki.ROOT_CERT_FILE
    cert_path.write_bytes(b"keep me")
    assert pki.main(["root-ca", "--out-dir", str(tmp_path)]) == 2
    assert str(cert_path) in capsys.readouterr().err
    assert cert_path.read_bytes() == b"keep me"
    assert not (tmp_path / pki.ROOT_KEY_FILE).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [pki.ROOT_CERT_FILE]


def test_force_overwrites_and_resets_key_mode(tmp_path: Path) -> None:
    key_path, cert_path = tmp_path / pki.ROOT_KEY_FILE, tmp_path / pki.ROOT_CERT_FILE
    key_path.write_bytes(b"old key")
    key_path.chmod(0o644)
    cert_path.write_bytes(b"old cert")
    assert pki.main(["root-ca", "--out-dir", str(tmp_path), "--force", *T0_ARG]) == 0
    key = pki.load_private_key(key_path)
    cert = pki.load_certificate(cert_path)
    assert _spki(cert.public_key()) == _spki(key.public_key())
    assert _mode(key_path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([key_path.name, cert_path.name])


def test_write_outputs_rejects_existing_before_writing(tmp_path: Path) -> None:
    first, second = tmp_path / "a.pem", tmp_path / "b.pem"
    second.write_bytes(b"x")
    with pytest.raises(pki.PkiError, match="already exists"):
        pki.write_outputs([pki.OutputFile(first, b"1"), pki.OutputFile(second, b"2")])
    assert not first.exists() and second.read_bytes() == b"x"


# --------------------------------------------------------------------------- CLI


def test_cli_happy_path(tmp_path: Path, ca_files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    issuer = ["--ca-cert", str(ca_files["ca_cert"]), "--ca-key", str(ca_files["ca_key"])]
    srv_dir, dev_dir = tmp_path / "srv", tmp_path / "dev"

    rc = pki.main(["server-cert", "--domain", DOMAIN, *issuer, "--root-cert", str(ca_files["root_cert"]),
                   "--out-dir", str(srv_dir), *T0_ARG])
    assert rc == 0
    chain = x509.load_pem_x509_certificates((srv_dir / f"{DOMAIN}.chain.pem").read_bytes())
    assert chain == [pki.load_certificate(ca_files["ca_cert"]), pki.load_certificate(ca_files["root_cert"])]
    assert _mode(srv_dir / f"{DOMAIN}.key") == 0o600

    assert pki.main(["device-cert", "--thing-name", "dev-1", *issuer, "--out-dir", str(dev_dir), *T0_ARG]) == 0
    assert _mode(dev_dir / "dev-1.key") == 0o600
    assert pki.main(["device-csr", "--thing-name", "dev-2", "--out-dir", str(dev_dir)]) == 0
    assert pki.main(["sign-csr", "--csr", str(dev_dir / "dev-2.csr.pem"), "--thing-name", "dev-2", *issuer,
                     "--out-dir", str(dev_dir), *T0_ARG]) == 0
    csr = x509.load_pem_x509_csr((dev_dir / "dev-2.csr.pem").read_bytes())
    signed = pki.load_certificate(dev_dir / "dev-2.cert.pem")
    assert _spki(signed.public_key()) == _spki(csr.public_key())
    capsys.readouterr()

    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(ca_files["ca_cert"].read_bytes() + ca_files["root_cert"].read_bytes())
    at = ["--at", AT.isoformat()]
    for cert in (dev_dir / "dev-1.cert.pem", dev_dir / "dev-2.cert.pem", srv_dir / f"{DOMAIN}.cert.pem"):
        assert pki.main(["verify", "--cert", str(cert), "--chain", str(bundle), *at]) == 0
        assert capsys.readouterr().out.startswith("OK:")


def test_cli_intermediate_prints_pulumi_config_command(
    tmp_path: Path, ca_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # Stack config resolves relative paths against the project dir, so print relative to it.
    (tmp_path / "Pulumi.yaml").write_text("name: t\n")
    out = tmp_path / "certs" / "prod"
    rc = pki.main(["intermediate-ca", "--root-cert", str(ca_files["root_cert"]),
                   "--root-key", str(ca_files["root_key"]), "--out-dir", str(out), "--stack", "prod"])
    assert rc == 0
    stdout = capsys.readouterr().out
    expected = f"pulumi config set caCertificatePemFile certs/prod/{pki.INTERMEDIATE_CERT_FILE} -s prod"
    assert expected in stdout, stdout
    assert "Never put" in stdout and pki.INTERMEDIATE_KEY_FILE in stdout
    # The printed command must reference the certificate, never the key.
    config_line = next(line for line in stdout.splitlines() if "pulumi config set" in line)
    assert pki.INTERMEDIATE_KEY_FILE not in config_line


def test_cli_verify_foreign_device_fails(
    tmp_path: Path, ca_files: dict[str, Path], other_inter: pki.CertifiedKey, capsys: pytest.CaptureFixture[str]
) -> None:
    foreign = pki.create_device_cert(other_inter, "intruder", not_before=T0)
    cert_path = tmp_path / "intruder.cert.pem"
    cert_path.write_bytes(pki.pem_certs(foreign.cert))
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(ca_files["ca_cert"].read_bytes() + ca_files["root_cert"].read_bytes())
    capsys.readouterr()
    assert pki.main(["verify", "--cert", str(cert_path), "--chain", str(bundle), "--at", AT.isoformat()]) == 1
    assert capsys.readouterr().out.startswith("FAILED:")


def _assert_one_line_error(capsys: pytest.CaptureFixture[str], *needles: str) -> None:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)


def test_cli_invalid_thing_name(tmp_path: Path, ca_files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dev"
    for name in ("bad name!", "x" * 129):
        capsys.readouterr()
        rc = pki.main(["device-cert", "--thing-name", name, "--ca-cert", str(ca_files["ca_cert"]),
                       "--ca-key", str(ca_files["ca_key"]), "--out-dir", str(out)])
        assert rc == 2
        _assert_one_line_error(capsys, "invalid thing name", repr(name))
    assert not out.exists()


def test_cli_server_wrong_key_type(tmp_path: Path, ca_files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    rc = pki.main(["server-cert", "--domain", DOMAIN, "--key-type", "rsa-4096",
                   "--ca-cert", str(ca_files["ca_cert"]), "--ca-key", str(ca_files["ca_key"]),
                   "--root-cert", str(ca_files["root_cert"]), "--out-dir", str(tmp_path / "srv")])
    assert rc == 2
    _assert_one_line_error(capsys, "rsa-4096", "--key-type rsa-2048 or ec-p256")
    assert not (tmp_path / "srv").exists()


def test_cli_missing_ca_file(tmp_path: Path, ca_files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.pem"
    capsys.readouterr()
    rc = pki.main(["device-cert", "--thing-name", "t", "--ca-cert", str(missing),
                   "--ca-key", str(ca_files["ca_key"]), "--out-dir", str(tmp_path / "dev")])
    assert rc == 2
    _assert_one_line_error(capsys, "not found", str(missing), "--ca-cert")
    assert not (tmp_path / "dev").exists()


def test_cli_not_a_pem_certificate(tmp_path: Path, ca_files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    # A private key where a certificate is expected is an easy real-world mix-up.
    rc = pki.main(["device-cert", "--thing-name", "t", "--ca-cert", str(ca_files["ca_key"]),
                   "--ca-key", str(ca_files["ca_key"]), "--out-dir", str(tmp_path / "dev")])
    assert rc == 2
    _assert_one_line_error(capsys, "not a PEM certificate", str(ca_files["ca_key"]))


def test_cli_ca_key_mismatch(tmp_path: Path, ca_files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    rc = pki.main(["device-cert", "--thing-name", "t", "--ca-cert", str(ca_files["ca_cert"]),
                   "--ca-key", str(ca_files["root_key"]), "--out-dir", str(tmp_path / "dev")])
    assert rc == 2
    _assert_one_line_error(capsys, "does not match", str(ca_files["root_key"]), "--ca-key")
    assert not (tmp_path / "dev").exists()


def test_cli_non_ca_issuer_rejected(tmp_path: Path, ca_files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    dev_dir = tmp_path / "dev"
    assert pki.main(["device-cert", "--thing-name", "leaf", "--ca-cert", str(ca_files["ca_cert"]),
                     "--ca-key", str(ca_files["ca_key"]), "--out-dir", str(dev_dir)]) == 0
    capsys.readouterr()
    rc = pki.main(["device-cert", "--thing-name", "t", "--ca-cert", str(dev_dir / "leaf.cert.pem"),
                   "--ca-key", str(dev_dir / "leaf.key"), "--out-dir", str(tmp_path / "x")])
    assert rc == 2
    _assert_one_line_error(capsys, "not a CA certificate")


@pytest.mark.parametrize("command", ["root-ca", "intermediate-ca", "server-cert", "device-cert",
                                     "device-csr", "sign-csr", "verify"])
def test_cli_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        pki.main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: python -m tools.pki {command}" in out
    if command != "verify":
        assert "--out-dir" in out and "--force" in out


def _plain_ca(name: str, issuer: pki.CertifiedKey | None) -> pki.CertifiedKey:
    """CA without a path length limit, built directly so deep chains are possible."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(T0)
        .not_valid_after(T0 + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    return pki.CertifiedKey(key, builder.sign(issuer.key if issuer else key, hashes.SHA256()))


@pytest.mark.parametrize(("intermediates", "ok"), [(3, True), (4, False)])
def test_verify_enforces_total_chain_depth_of_five(intermediates: int, ok: bool) -> None:
    cas = [_plain_ca("root", None)]
    for n in range(intermediates):
        cas.append(_plain_ca(f"ca{n}", cas[-1]))
    server = pki.create_server_cert(cas[-1], DOMAIN, not_before=T0)
    chain = [c.cert for c in reversed(cas)]
    if ok:
        built = pki.verify_certificate(server.cert, chain, purpose="server", dns_name=DOMAIN, at=AT)
        assert len(built) == 5
    else:
        with pytest.raises(pki.ChainVerificationError, match="depth"):
            pki.verify_certificate(server.cert, chain, purpose="server", dns_name=DOMAIN, at=AT)


def test_cli_misc_bad_inputs_are_one_line_errors(
    tmp_path: Path, ca_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    not_dir = tmp_path / "file"
    not_dir.write_bytes(b"")
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    cases: list[tuple[list[str], tuple[str, ...]]] = [
        (["device-csr", "--thing-name", "t", "--out-dir", str(not_dir)], ("not a directory",)),
        (["root-ca", "--common-name", "x" * 65, "--out-dir", str(tmp_path / "r")], ("--common-name",)),
        (["verify", "--cert", str(ca_files["ca_cert"]), "--chain", str(garbage)], (str(garbage), "--chain")),
        (["verify", "--cert", str(ca_files["ca_cert"]), "--chain", str(ca_files["root_cert"]),
          "--dns-name", "bad name"], ("invalid domain",)),
        (["sign-csr", "--csr", str(ca_files["ca_cert"]), "--ca-cert", str(ca_files["ca_cert"]),
          "--ca-key", str(ca_files["ca_key"]), "--out-dir", str(tmp_path / "s")], ("CSR", "not a PEM")),
    ]
    for argv, needles in cases:
        capsys.readouterr()
        assert pki.main(argv) == 2, argv
        _assert_one_line_error(capsys, *needles)
    assert not (tmp_path / "r").exists() and not (tmp_path / "s").exists()


@pytest.mark.parametrize("days", ["0", "-1", "36501", "ten"])
def test_cli_days_out_of_range(tmp_path: Path, days: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        pki.main(["root-ca", "--days", days, "--out-dir", str(tmp_path)])
    assert exc.value.code == 2
    assert "--days" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_config_path_outside_a_project_is_absolute(tmp_path: Path) -> None:
    cert = tmp_path / "ca.pem"
    assert pki.config_path(cert) == str(cert.resolve())
    (tmp_path / "Pulumi.yaml").write_text("name: t\n")
    assert pki.config_path(cert) == "ca.pem"


# --------------------------------------------------------------------------- newcomer's path


def test_intermediate_ca_writes_the_verify_chain(ca_files: dict[str, Path]) -> None:
    chain_file = ca_files["ca_cert"].parent / pki.CA_CHAIN_FILE
    chain = x509.load_pem_x509_certificates(chain_file.read_bytes())
    assert chain == [pki.load_certificate(ca_files["ca_cert"]), pki.load_certificate(ca_files["root_cert"])]
    assert _mode(chain_file) == 0o644


def test_device_steps_key_and_csr_then_signed_certificate_then_verify(
    tmp_path: Path, ca_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's device steps, as a user runs them."""
    dev_dir = tmp_path / "devices"
    chain = ca_files["ca_cert"].parent / pki.CA_CHAIN_FILE
    issuer = ["--ca-cert", str(ca_files["ca_cert"]), "--ca-key", str(ca_files["ca_key"])]
    assert pki.main(["device-csr", "--thing-name", "sensor-1", "--out-dir", str(dev_dir)]) == 0
    assert pki.main(["sign-csr", "--csr", str(dev_dir / "sensor-1.csr.pem"), "--thing-name", "sensor-1",
                     *issuer, "--out-dir", str(dev_dir)]) == 0
    capsys.readouterr()
    assert pki.main(["verify", "--cert", str(dev_dir / "sensor-1.cert.pem"), "--chain", str(chain)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: client certificate: CN=sensor-1 -> CN=IoT Device Issuing CA -> CN=IoT Root CA")


def test_every_option_of_every_command_has_help() -> None:
    parser = pki.build_parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    missing = [
        f"{name} {action.option_strings[0]}"
        for name, sub in commands.choices.items()
        for action in sub._actions
        if action.option_strings and action.dest != "help" and not action.help
    ]
    assert missing == []
    assert len(commands.choices) == 7


def test_cn_mismatch_is_reported_before_an_existing_output(
    tmp_path: Path, ca_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    dev_dir = tmp_path / "dev"
    assert pki.main(["device-csr", "--thing-name", "dev-2", "--out-dir", str(dev_dir)]) == 0
    (dev_dir / "dev-2.cert.pem").write_text("an earlier certificate")
    capsys.readouterr()
    rc = pki.main(["sign-csr", "--csr", str(dev_dir / "dev-2.csr.pem"), "--thing-name", "dev-3",
                   "--ca-cert", str(ca_files["ca_cert"]), "--ca-key", str(ca_files["ca_key"]),
                   "--out-dir", str(dev_dir)])
    assert rc == 2
    _assert_one_line_error(capsys, "does not match --thing-name 'dev-3'")
    assert (dev_dir / "dev-2.cert.pem").read_text() == "an earlier certificate"


def test_wrong_root_key_is_reported_before_existing_outputs(
    tmp_path: Path, ca_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    rc = pki.main(["intermediate-ca", "--root-cert", str(ca_files["root_cert"]),
                   "--root-key", str(ca_files["ca_key"]), "--out-dir", str(ca_files["ca_cert"].parent)])
    assert rc == 2
    _assert_one_line_error(capsys, "does not match", "--root-key")


def test_an_expired_ca_is_refused(tmp_path: Path, ca_files: dict[str, Path],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    old = tmp_path / "old"
    assert pki.main(["intermediate-ca", "--root-cert", str(ca_files["root_cert"]),
                     "--root-key", str(ca_files["root_key"]), "--out-dir", str(old),
                     "--not-before", "2026-01-01T00:00:00Z", "--days", "30"]) == 0
    capsys.readouterr()
    rc = pki.main(["device-cert", "--thing-name", "t", "--ca-cert", str(old / pki.INTERMEDIATE_CERT_FILE),
                   "--ca-key", str(old / pki.INTERMEDIATE_KEY_FILE), "--out-dir", str(tmp_path / "dev")])
    assert rc == 2
    _assert_one_line_error(capsys, "intermediate CA certificate", "expired on 2026-01-31",
                           "create a new one with `intermediate-ca`")
    assert not (tmp_path / "dev").exists()
    # An expired root cannot make a new intermediate either.
    expired_root = tmp_path / "root"
    assert pki.main(["root-ca", "--out-dir", str(expired_root), "--not-before", "2025-01-01T00:00:00Z",
                     "--days", "30"]) == 0
    capsys.readouterr()
    rc = pki.main(["intermediate-ca", "--root-cert", str(expired_root / pki.ROOT_CERT_FILE),
                   "--root-key", str(expired_root / pki.ROOT_KEY_FILE), "--out-dir", str(tmp_path / "i")])
    assert rc == 2
    _assert_one_line_error(capsys, "root CA certificate", "expired on 2025-01-31", "`root-ca`")
