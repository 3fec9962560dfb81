"""The one certificate factory of the test suite.

`tools.pki` issues only well-formed certificates (it refuses bad CNs, expired CAs, ...);
tests also need the odd ones: foreign CAs, over-long CNs, server certificates, missing or
wrong key usages. `issue` builds any of them with `cryptography` directly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = dt.datetime.now(dt.timezone.utc)

CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH


@dataclass(frozen=True)
class Issued:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()


def issue(cn: str, issuer: Issued | None = None, *, ca: bool = False,
          not_before: dt.datetime | None = None, days: int = 365,
          extended_key_usages: Sequence[x509.ObjectIdentifier] | None = None,
          key_usage: x509.KeyUsage | None = None) -> Issued:
    """A certificate for `cn`, self-signed unless `issuer` is given.

    `extended_key_usages` / `key_usage` are added only when given (None = extension absent).
    """
    key = ec.generate_private_key(ec.SECP256R1())
    # _validate=False: an over-long CN is one of the bad inputs under test.
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn, _validate=False)])
    start = not_before or NOW - dt.timedelta(days=1)
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer.cert.subject if issuer else subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(start)
               .not_valid_after(start + dt.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False))
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), False)
    if extended_key_usages is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(extended_key_usages)), False)
    if key_usage is not None:
        builder = builder.add_extension(key_usage, True)
    return Issued(key, builder.sign(issuer.key if issuer else key, hashes.SHA256()))


def device_key_usage() -> x509.KeyUsage:
    """digitalSignature only: what a device's client certificate needs."""
    return x509.KeyUsage(digital_signature=True, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=False, crl_sign=False, encipher_only=False,
                         decipher_only=False)
