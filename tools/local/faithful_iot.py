"""Make moto's AWS IoT registry behave like AWS where our code depends on it (used by the
local run and, through tests/support/faithful_iot.py, by the tests).

moto 5.2 is kinder than AWS IoT in ways that would let a wrong state machine pass. While
`faithful_iot()` is active (inside `mock_aws`), these moto seams behave as AWS documents:

| API | moto 5.2 | AWS (and this fabric) |
| --- | --- | --- |
| `UpdateCertificate` | any status change, also out of `REVOKED` | `REVOKED` is final: any other `newStatus` fails with `CertificateStateException`; `PENDING_ACTIVATION`/`PENDING_TRANSFER` as `newStatus` fail with `InvalidRequestException` ("used internally by IoT", API reference). `REVOKED` -> `REVOKED` is accepted here (a no-op). |
| `AttachThingPrincipal` | ignores `thingPrincipalType` | `EXCLUSIVE_THING`: "the thing will be the only thing that's attached to the principal", so attaching a principal that is attached to another thing fails, and a principal attached exclusively cannot join a second thing. Error: `InvalidRequestException` (the only client error the API documents for it). |
| `CreateThing` | an existing name is silently *replaced* (new thing id, new attributes) | "If this call is made multiple times using the same thing name and configuration, the call will succeed. If [...] the same thing name but different configuration a `ResourceAlreadyExistsException` is thrown." Configuration = thing type, attributes, billing group. The existing thing is returned unchanged. |
| `DeleteThing` | `expectedVersion` ignored | `expectedVersion` different from the thing's version fails with `VersionConflictException`. (moto already refuses to delete a thing with principals attached, as AWS does.) |
| `DescribeCertificate` | omits `caCertificateId` | returns `caCertificateId` for a certificate registered with a CA (`RegisterCertificate` with `caCertificatePem`, or JITR auto-registration). |
| `CreateCertificateFromCsr` | certifies a *fresh* key and throws the CSR's key away | certifies the CSR's public key and subject (the point of the CSR path), signed here by a stand-in Amazon issuer (`faithful_csr_issuance`, also on its own). |

Use it as a context manager (tests also have the `faithful_iot_registry` fixture):

    with mock_aws(), faithful_iot():
        ...

It patches moto's IoT response/backend classes (process-wide, undone on exit), so every
boto3 client in the test - and the Step Functions adapter's aws-sdk tasks - see it.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from unittest import mock

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from moto.iot import models as iot_models
from moto.iot import responses as iot_responses
from moto.iot.exceptions import (
    CertificateStateException,
    InvalidRequestException,
    ResourceAlreadyExistsException,
    VersionConflictException,
)

# Statuses AWS IoT reserves for itself (UpdateCertificate API reference).
INTERNAL_STATUSES = frozenset({"PENDING_ACTIVATION", "PENDING_TRANSFER"})

_Backend = iot_models.IoTBackend
_Response = iot_responses.IoTResponse

# principal ARN -> thing name, per backend: which principals were attached EXCLUSIVE_THING.
_EXCLUSIVE_ATTRIBUTE = "_faithful_exclusive_principals"


def _exclusive(backend: Any) -> dict[str, str]:
    found: dict[str, str] | None = getattr(backend, _EXCLUSIVE_ATTRIBUTE, None)
    if found is None:
        found = {}
        setattr(backend, _EXCLUSIVE_ATTRIBUTE, found)
    return found


def _things_of(backend: Any, principal_arn: str) -> list[str]:
    return [thing for (principal, thing) in backend.principal_things if principal == principal_arn]


def _update_certificate(original: Any) -> Any:
    def update_certificate(self: Any, certificate_id: str, new_status: str) -> None:
        certificate = self.describe_certificate(certificate_id)
        if new_status in INTERNAL_STATUSES:
            raise InvalidRequestException(f"{new_status} is used internally by AWS IoT")
        if certificate.status == "REVOKED" and new_status != "REVOKED":
            raise CertificateStateException("Certificate is revoked; its status cannot change.",
                                            certificate_id)
        original(self, certificate_id=certificate_id, new_status=new_status)
    return update_certificate


def _attach_thing_principal(self: Any) -> Any:
    thing_name = self._get_param("thingName")
    principal = self.headers.get("x-amzn-principal")
    principal_type = self._get_param("thingPrincipalType") or "NON_EXCLUSIVE_THING"
    backend = self.iot_backend
    backend.describe_thing(thing_name)  # ResourceNotFoundException first, as AWS
    others = [t for t in _things_of(backend, principal) if t != thing_name]
    exclusive = _exclusive(backend)
    if principal in exclusive and exclusive[principal] != thing_name:
        raise InvalidRequestException(
            f"Principal {principal} is attached exclusively to thing {exclusive[principal]}")
    if principal_type == "EXCLUSIVE_THING" and others:
        raise InvalidRequestException(
            f"Principal {principal} is already attached to thing(s) {', '.join(others)}; "
            "EXCLUSIVE_THING needs it attached to no other thing")
    backend.attach_thing_principal(thing_name=thing_name, principal_arn=principal)
    if principal_type == "EXCLUSIVE_THING":
        exclusive[principal] = thing_name
    return iot_responses.EmptyResult()


def _detach_thing_principal(original: Any) -> Any:
    def detach_thing_principal(self: Any, thing_name: str, principal_arn: str) -> None:
        original(self, thing_name=thing_name, principal_arn=principal_arn)
        if _exclusive(self).get(principal_arn) == thing_name:
            del _exclusive(self)[principal_arn]
    return detach_thing_principal


def _create_thing(original: Any) -> Any:
    def create_thing(self: Any, thing_name: str, thing_type_name: str,
                     attribute_payload: dict[str, Any] | None,
                     billing_group_name: str | None = None) -> Any:
        existing = [t for t in self.things.values() if t.thing_name == thing_name]
        if existing:
            thing = existing[0]
            attributes = (attribute_payload or {}).get("attributes") or {}
            same = (
                (thing.thing_type.thing_type_name if thing.thing_type else None)
                == (thing_type_name or None)
                and dict(thing.attributes or {}) == dict(attributes)
                and (thing.billing_group_name or None) == (billing_group_name or None))
            if not same:
                raise ResourceAlreadyExistsException(
                    f"Thing {thing_name} already exists with different configuration",
                    thing.thing_id, thing.arn)
            return thing
        return original(self, thing_name=thing_name, thing_type_name=thing_type_name,
                        attribute_payload=attribute_payload,
                        billing_group_name=billing_group_name)
    return create_thing


def _delete_thing(self: Any) -> Any:
    thing_name = self._get_param("thingName")
    expected = self._get_param("expectedVersion")
    backend = self.iot_backend
    thing = backend.describe_thing(thing_name)
    if expected is not None and int(expected) != int(thing.version):
        raise VersionConflictException(thing_name)
    backend.delete_thing(thing_name=thing_name)
    return iot_responses.EmptyResult()


def _describe_certificate(self: Any) -> Any:
    certificate = self.iot_backend.describe_certificate(
        certificate_id=self._get_param("certificateId"))
    description = certificate.to_description_dict()
    if certificate.ca_certificate_id:
        description["caCertificateId"] = certificate.ca_certificate_id
    return iot_responses.ActionResult({"certificateDescription": description})


# --- CreateCertificateFromCsr: the CSR's key, as AWS does ----------------------------------

_AMAZON_ISSUER = x509.Name([
    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Amazon Web Services O=Amazon.com Inc. "
                       "L=Seattle ST=Washington C=US")])


@functools.lru_cache(maxsize=1)
def _issuer_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _certificate_from_csr(self: Any, csr: str, set_as_active: bool) -> Any:
    request = x509.load_pem_x509_csr(csr.encode())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(request.subject).issuer_name(_AMAZON_ISSUER)
            .public_key(request.public_key())  # the device's key, as AWS does
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc))
            .sign(_issuer_key(), hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return self.register_certificate(pem, ca_certificate_pem=None, set_as_active=set_as_active,
                                     status="INACTIVE")


@contextmanager
def faithful_csr_issuance() -> Iterator[None]:
    """CreateCertificateFromCsr certifies the CSR's own key (part of `faithful_iot`)."""
    with mock.patch.object(_Backend, "create_certificate_from_csr", _certificate_from_csr):
        yield


@contextmanager
def faithful_iot() -> Iterator[None]:
    """Patch moto's IoT registry to behave as described in this module's docstring."""
    with ExitStack() as stack:
        stack.enter_context(faithful_csr_issuance())
        stack.enter_context(mock.patch.object(
            _Backend, "update_certificate", _update_certificate(_Backend.update_certificate)))
        stack.enter_context(mock.patch.object(
            _Backend, "detach_thing_principal",
            _detach_thing_principal(_Backend.detach_thing_principal)))
        stack.enter_context(mock.patch.object(
            _Backend, "create_thing", _create_thing(_Backend.create_thing)))
        stack.enter_context(mock.patch.object(
            _Response, "attach_thing_principal", _attach_thing_principal))
        stack.enter_context(mock.patch.object(_Response, "delete_thing", _delete_thing))
        stack.enter_context(mock.patch.object(
            _Response, "describe_certificate", _describe_certificate))
        yield
