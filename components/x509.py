"""X.509 facts the program, the PKI tool and the tests share (cryptography only, no I/O).

One definition of "is this a CA", "is it self-signed", "does it carry this EKU", so the
stack-config check and the PKI tool can never disagree about a certificate.
"""

from __future__ import annotations

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
