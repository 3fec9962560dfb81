"""Is a device certificate one JITR may activate? Plain functions, no AWS, no I/O.

A certificate is acceptable when it was issued by one of our CA certificates (issuer name,
authority key identifier and signature all agree), is a *device* certificate (not a CA; when
it has an extended key usage it includes clientAuth; when it has a key usage it includes
digitalSignature and never keyCertSign), is inside its validity period, and its subject CN
is a valid AWS IoT thing name (the CN *is* the thing name, see components/jitr/README.md).

Our CA also issues the custom domain's *server* certificate (`tools/pki.py server-cert`:
EKU serverAuth only). Its CN is the device domain, which is not a thing name anyway, but
the EKU rule rejects it whatever its CN: a server certificate never becomes a device.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lambdas.contracts.inventory import timestamp
from lambdas.contracts.things import THING_NAME_CHARACTERS, thing_name_problem

_EKU_NAMES = {ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
              ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
              ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
              ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
              ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning"}


@dataclass(frozen=True)
class CheckResult:
    valid: bool
    reason: str
    thing_name: str | None = None
    not_after: str | None = None
    # The subject CN when it is a valid thing name, whether or not the certificate is
    # acceptable: the state machine looks a rejected certificate up in the inventory under
    # it and never revokes one the inventory names as its thing's ACTIVE certificate.
    subject_thing_name: str | None = None

    def as_payload(self) -> dict[str, object]:
        """The Lambda result; every key always present (the state machine selects them)."""
        return {"valid": self.valid, "reason": self.reason, "thingName": self.thing_name,
                "notAfter": self.not_after, "subjectThingName": self.subject_thing_name,
                "error": None}


def load_ca_certificates(pem: str) -> list[x509.Certificate]:
    """Our CA certificate(s); more than one while a CA is being rotated."""
    try:
        cas = x509.load_pem_x509_certificates(pem.encode())
    except ValueError as err:
        raise ValueError(f"CA certificate PEM is unreadable: {err}") from None
    if not cas:
        raise ValueError("CA certificate PEM holds no certificate")
    return cas


def _key_identifier(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> bytes | None:
    try:
        value = cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    if isinstance(value, x509.SubjectKeyIdentifier):
        return value.digest
    if isinstance(value, x509.AuthorityKeyIdentifier):
        return value.key_identifier
    return None


def issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """Issuer name and AKI match the CA, and the CA's key verifies the signature."""
    if cert.issuer != ca.subject:
        return False
    aki = _key_identifier(cert, x509.AuthorityKeyIdentifier)
    ski = _key_identifier(ca, x509.SubjectKeyIdentifier)
    if aki is not None and ski is not None and aki != ski:
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def device_usage_problem(cert: x509.Certificate) -> str | None:
    """Why the key usages make `cert` something other than a device (TLS client)
    certificate, or None. An absent extension does not restrict the key (RFC 5280)."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    if eku is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        names = ", ".join(_EKU_NAMES.get(oid, oid.dotted_string) for oid in eku)
        return f"extended key usage ({names}) lacks clientAuth: not a device certificate"
    try:
        key_usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    if key_usage.key_cert_sign:
        return "key usage includes keyCertSign: a certificate that can sign certificates"
    if not key_usage.digital_signature:
        return "key usage lacks digitalSignature, which a TLS client key needs"
    return None


def common_name(cert: x509.Certificate) -> str | None:
    """The subject's single CN, or None when there is none or more than one."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1:
        return None
    value = names[0].value
    return value if isinstance(value, str) else None


def check_certificate(certificate_pem: str, cas: list[x509.Certificate],
                      now: dt.datetime) -> CheckResult:
    try:
        cert = x509.load_pem_x509_certificate(certificate_pem.encode())
    except ValueError:
        return CheckResult(False, "not a PEM X.509 certificate")
    try:
        cert.extensions  # parsed lazily: a forged certificate's would raise in the checks below
    except (ValueError, x509.DuplicateExtension) as err:
        return CheckResult(False, f"malformed extensions ({err})")
    return replace(_check(cert, cas, now), subject_thing_name=_subject_thing_name(cert))


def _subject_thing_name(cert: x509.Certificate) -> str | None:
    """The CN when it is a valid thing name (an unreadable subject: None)."""
    try:
        name = common_name(cert)
    except ValueError:
        return None
    return name if name is not None and not thing_name_problem(name) else None


def _check(cert: x509.Certificate, cas: list[x509.Certificate], now: dt.datetime) -> CheckResult:
    not_after = timestamp(cert.not_valid_after_utc)  # goes into the inventory item
    if not any(issued_by(cert, ca) for ca in cas):
        return CheckResult(False, f"not issued by our CA (issuer '{cert.issuer.rfc4514_string()}')",
                           not_after=not_after)
    if _is_ca(cert):
        return CheckResult(False, "is a CA certificate, not a device certificate",
                           not_after=not_after)
    usage_problem = device_usage_problem(cert)
    if usage_problem is not None:
        return CheckResult(False, usage_problem, not_after=not_after)
    if now < cert.not_valid_before_utc:
        return CheckResult(False, f"not valid before {cert.not_valid_before_utc.isoformat()}",
                           not_after=not_after)
    if now >= cert.not_valid_after_utc:
        return CheckResult(False, f"expired at {not_after}", not_after=not_after)
    name = common_name(cert)
    if name is None:
        return CheckResult(False, "subject must have exactly one CN (the thing name)",
                           not_after=not_after)
    if thing_name_problem(name):
        return CheckResult(False, f"CN {name!r} is not a valid thing name "
                           f"(1-128 of {THING_NAME_CHARACTERS})", not_after=not_after)
    return CheckResult(True, "issued by our CA, a device certificate, valid, CN is a thing name", thing_name=name,
                       not_after=not_after)
