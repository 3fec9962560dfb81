"""X.509 facts the program, the PKI tool and the tests share (cryptography only, no I/O).

One definition of "is this a CA", "is it self-signed", "does it carry this EKU", and of
"can this PEM be our device CA", so the stack-config check and the PKI tool can never
disagree about a certificate.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.exceptions import InvalidSignature


def is_ca_certificate(cert: x509.Certificate) -> bool:
    """True when basicConstraints says CA:TRUE (absent means not a CA)."""
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def is_self_signed(cert: x509.Certificate) -> bool:
    if cert.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def has_extended_key_usage(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> bool:
    try:
        return oid in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False


def ca_certificate_problems(pem: str, key: str, now: dt.datetime, source: str = "") -> list[str]:
    """Why `pem` cannot be registered as our device CA (empty when it can).

    `key` is the full config key the problems are reported under, `source` names where the
    PEM came from (a file) for the messages.
    """
    where = f"{source} " if source else ""
    try:
        certs = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        return [f"{key}: {where}is not a PEM X.509 certificate; give the intermediate CA's "
                "certificate (`python -m tools.pki intermediate-ca` writes one)"]
    if len(certs) > 1:
        return [f"{key}: {where or 'the PEM '}holds {len(certs)} certificates, but only the first "
                "would be registered; give only the intermediate CA certificate (the one that "
                "signs device certificates), not a chain or bundle"]
    [cert] = certs
    problems: list[str] = []
    if not is_ca_certificate(cert):
        problems.append(f"{key}: certificate '{cert.subject.rfc4514_string()}' is not a CA "
                        "(basicConstraints CA:TRUE missing); give the intermediate CA certificate, "
                        "not a device or server certificate")
    if cert.not_valid_after_utc <= now:
        problems.append(f"{key}: CA certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}; "
                        "issue a new intermediate CA and update the stack config")
    elif cert.not_valid_before_utc > now:
        problems.append(f"{key}: CA certificate is not valid before "
                        f"{cert.not_valid_before_utc:%Y-%m-%d}; check the issuing clock")
    return problems
