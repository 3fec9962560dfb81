"""moto made as strict as AWS where our code depends on it (docs/emulation.md, "moto").

Patched process-wide while `faithful_moto()` is active: IoT's registry rules and limits, the
CSR path of CreateCertificateFromCsr, DynamoDB's per-item atomic writes, and one write clock
that stamps every stream record (global tables decide the last writer by it).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from unittest import mock

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX, DynamodbException
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models import table as dynamodb_table
from moto.iot import models as iot_models
from moto.iot import responses as iot_responses
from moto.iot.exceptions import (
    CertificateStateException,
    DeleteConflictException,
    InvalidRequestException,
    IoTClientError,
    ResourceAlreadyExistsException,
    ThingStillAttached,
    VersionConflictException,
)

_Backend = iot_models.IoTBackend
_Response = iot_responses.IoTResponse

# UpdateCertificate: "PENDING_TRANSFER and PENDING_ACTIVATION ... used internally by AWS IoT".
INTERNAL_STATUSES = frozenset({"PENDING_ACTIVATION", "PENDING_TRANSFER"})
# CreateThing / AttributePayload (API reference) and the AWS IoT Core quotas: a thing without
# a thing type has at most 3 attributes, with one at most 50.
THING_NAME = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
ATTRIBUTE_NAME = re.compile(r"[a-zA-Z0-9_.,@/:#-]{1,128}")
ATTRIBUTE_VALUE = re.compile(r"[a-zA-Z0-9_.,@/:#=\[\]-]{0,800}")
MAX_ATTRIBUTES = {False: 3, True: 50}  # by "has a thing type"


def thing_problems(name: str, attributes: dict[str, Any], typed: bool) -> list[str]:
    """Why AWS IoT refuses this thing (CreateThing's limits), empty when it accepts it."""
    problems = [] if THING_NAME.fullmatch(name) else [
        f"thing name {name!r}: 1-128 characters of [a-zA-Z0-9:_-]"]
    if len(attributes) > MAX_ATTRIBUTES[typed]:
        problems.append(f"{len(attributes)} attributes: a thing {'with' if typed else 'without'} "
                        f"a thing type may have {MAX_ATTRIBUTES[typed]}")
    problems += [f"attribute name {k!r}: 1-128 of [a-zA-Z0-9_.,@/:#-]" for k in attributes
                 if not ATTRIBUTE_NAME.fullmatch(str(k))]
    problems += [f"attribute {k}={v!r}: up to 800 of [a-zA-Z0-9_.,@/:#=[]-]"
                 for k, v in attributes.items() if not ATTRIBUTE_VALUE.fullmatch(str(v))]
    return problems


def _thing(backend: Any, name: str) -> Any:
    return backend.things.get(f"arn:aws:iot:{backend.region_name}:{backend.account_id}:thing/{name}")


def _exclusive(backend: Any) -> dict[str, str]:
    """principal ARN -> the thing it was attached to EXCLUSIVE_THING."""
    if not hasattr(backend, "_exclusive_principals"):
        backend._exclusive_principals = {}
    found: dict[str, str] = backend._exclusive_principals
    return found


def _things_of(backend: Any, principal: str) -> list[str]:
    return [t for (p, t) in backend.principal_things if p == principal]


def wrapping(owner: Any, name: str, wrapper: Callable[..., Any]) -> Any:
    """A patch of the method `owner.name` that calls `wrapper(original, self, ...)`."""
    original = getattr(owner, name)
    return mock.patch.object(owner, name, functools.wraps(original)(
        lambda *args, **kwargs: wrapper(original, *args, **kwargs)))


def _create_thing(original: Callable[..., Any], self: Any, thing_name: str, thing_type_name: str,
                  attribute_payload: dict[str, Any] | None, billing_group_name: str | None = None) -> Any:
    attributes = dict((attribute_payload or {}).get("attributes") or {})
    problems = thing_problems(thing_name, attributes, bool(thing_type_name))
    if problems:
        raise InvalidRequestException("; ".join(problems))
    thing = _thing(self, thing_name)
    if thing is None:
        return original(self, thing_name=thing_name, thing_type_name=thing_type_name,
                        attribute_payload=attribute_payload, billing_group_name=billing_group_name)
    # Same name and configuration succeeds (returns the thing); another configuration
    # is ResourceAlreadyExistsException (CreateThing API reference).
    same = ((thing.thing_type.thing_type_name if thing.thing_type else None)
            == (thing_type_name or None) and dict(thing.attributes or {}) == attributes
            and (thing.billing_group_name or None) == (billing_group_name or None))
    if not same:
        raise ResourceAlreadyExistsException(f"Thing {thing_name} already exists with different configuration",
                                             thing.thing_id, thing.arn)
    return thing


# Static thing groups (developer guide, "Static thing groups"; AWS IoT Core quotas): a thing
# belongs to at most 10 thing groups.
MAX_THING_GROUPS = 10


def _update_thing(original: Callable[..., Any], self: Any, thing_name: str, thing_type_name: str,
                  attribute_payload: dict[str, Any] | None, remove_thing_type: bool) -> None:
    """The attribute quota holds for the thing UpdateThing leaves (moto checks nothing)."""
    thing = self.describe_thing(thing_name)
    attributes = dict(thing.attributes or {})
    payload = attribute_payload or {}
    if "attributes" in payload:
        if not payload.get("merge", False):
            attributes = {}
        attributes.update(payload["attributes"] or {})
        attributes = {k: v for k, v in attributes.items() if v}
    typed = bool(thing_type_name) or (thing.thing_type is not None and not remove_thing_type)
    problems = thing_problems(thing_name, attributes, typed)
    if problems:
        raise InvalidRequestException("; ".join(problems))
    original(self, thing_name=thing_name, thing_type_name=thing_type_name,
             attribute_payload=attribute_payload, remove_thing_type=remove_thing_type)


def _root(backend: Any, group: Any) -> str:
    by_name = {g.thing_group_name: g for g in backend.thing_groups.values()}
    while group.parent_group_name and group.parent_group_name in by_name:
        group = by_name[group.parent_group_name]
    return str(group.thing_group_name)


def _add_thing_to_thing_group(original: Callable[..., Any], self: Any, thing_group_name: str,
                              thing_group_arn: str | None, thing_name: str, thing_arn: str | None) -> None:
    group = self._identify_thing_group(thing_group_name, thing_group_arn)
    thing = self._identify_thing(thing_name, thing_arn)
    groups = [g for g in self.thing_groups.values() if thing.arn in g.things]
    if thing.arn not in group.things and len(groups) >= MAX_THING_GROUPS:
        raise InvalidRequestException(f"{thing.thing_name} already belongs to {MAX_THING_GROUPS} thing groups")
    # "You can't add a thing to more than one group in the same hierarchy."
    root = _root(self, group)
    clash = [g.thing_group_name for g in groups if g is not group and _root(self, g) == root]
    if clash:
        raise InvalidRequestException(f"{thing.thing_name} is already in {clash[0]}, in the same hierarchy as "
                                      f"{group.thing_group_name}")
    original(self, thing_group_name=thing_group_name, thing_group_arn=thing_group_arn,
             thing_name=thing_name, thing_arn=thing_arn)


def _update_certificate(original: Callable[..., Any], self: Any, certificate_id: str, new_status: str) -> None:
    certificate = self.describe_certificate(certificate_id)
    if new_status in INTERNAL_STATUSES:
        raise InvalidRequestException(f"{new_status} is used internally by AWS IoT")
    if certificate.status == "REVOKED":  # final; REVOKED again is refused too (undocumented:
        # the less permissive reading, docs/emulation.md)
        raise CertificateStateException("Certificate is revoked; its status cannot change.", certificate_id)
    original(self, certificate_id=certificate_id, new_status=new_status)


def _attach_thing_principal(self: Any) -> Any:
    thing_name = self._get_param("thingName")
    principal = self.headers.get("x-amzn-principal")
    exclusive = self._get_param("thingPrincipalType") == "EXCLUSIVE_THING"
    backend = self.iot_backend
    backend.describe_thing(thing_name)  # ResourceNotFoundException first, as AWS
    others = [t for t in _things_of(backend, principal) if t != thing_name]
    owner = _exclusive(backend).get(principal)
    if owner is not None and owner != thing_name:
        raise InvalidRequestException(f"Principal {principal} is attached exclusively to {owner}")
    if exclusive and others:
        raise InvalidRequestException(f"Principal {principal} is attached to {', '.join(others)}; "
                                      "EXCLUSIVE_THING needs it attached to no other thing")
    backend.attach_thing_principal(thing_name=thing_name, principal_arn=principal)
    if exclusive:
        _exclusive(backend)[principal] = thing_name
    return iot_responses.EmptyResult()


def _propagating(backend: Any) -> set[tuple[str, str]]:
    """("certificate", id) and ("thing", name) whose detachment has not propagated yet."""
    if not hasattr(backend, "_detaching"):
        backend._detaching = set()
    found: set[tuple[str, str]] = backend._detaching
    return found


def _detach_thing_principal(original: Callable[..., Any], self: Any, thing_name: str, principal_arn: str) -> None:
    """DetachThingPrincipal "is asynchronous. It might take several seconds for the detachment
    to propagate": the next delete of the certificate and of the thing that would otherwise
    succeed is refused once (DeleteCertificate, DeleteThing below), the one after succeeds."""
    original(self, thing_name=thing_name, principal_arn=principal_arn)
    if _exclusive(self).get(principal_arn) == thing_name:
        del _exclusive(self)[principal_arn]
    if ":cert/" in principal_arn:
        _propagating(self).add(("certificate", self._get_principal(principal_arn).certificate_id))
    _propagating(self).add(("thing", thing_name))


def _delete_certificate(original: Callable[..., Any], self: Any, certificate_id: str, force_delete: bool) -> None:
    """A detachment not yet propagated: `DeleteConflictException` (DeleteCertificate's error for
    a certificate still attached), after moto's own checks so only a delete that would
    otherwise succeed meets it."""
    self._validation_delete(self.describe_certificate(certificate_id), force_delete)
    if ("certificate", certificate_id) in _propagating(self):
        _propagating(self).discard(("certificate", certificate_id))
        raise DeleteConflictException(f"Certificate {certificate_id}: a detachment from its thing is still "
                                      "propagating; retry")
    original(self, certificate_id=certificate_id, force_delete=force_delete)


def _delete_thing_propagating(original: Callable[..., Any], self: Any, thing_name: str) -> None:
    """A detachment not yet propagated leaves the thing attached: `InvalidRequestException`
    ("still attached", as for any attached thing: DeleteThing has no DeleteConflictException)."""
    self.describe_thing(thing_name)
    attached = any(t == thing_name for (_, t) in self.principal_things)
    if not attached and ("thing", thing_name) in _propagating(self):
        _propagating(self).discard(("thing", thing_name))
        raise ThingStillAttached(thing_name)
    original(self, thing_name=thing_name)


def _delete_thing(self: Any) -> Any:
    thing_name, expected = self._get_param("thingName"), self._get_param("expectedVersion")
    thing = self.iot_backend.describe_thing(thing_name)
    if expected is not None and int(expected) != int(thing.version):
        raise VersionConflictException(thing_name)
    self.iot_backend.delete_thing(thing_name=thing_name)
    return iot_responses.EmptyResult()


class CertificateValidationException(IoTClientError):
    def __init__(self, msg: str):
        super().__init__("CertificateValidationException", msg)


class LimitExceededException(IoTClientError):
    code = 410  # AttachPolicy's LimitExceededException: "HTTP Status Code: 410"

    def __init__(self, msg: str):
        super().__init__("LimitExceededException", msg)


def _der(pem: str) -> bytes:
    return x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)


def _register_certificate(original: Callable[..., Any], self: Any, certificate_pem: str,
                          ca_certificate_pem: str | None, set_as_active: bool, status: str) -> Any:
    """With a CA: it is "the CA certificate used to sign the device certificate" and "you must
    register the signing CA with AWS IoT" in the region: else CertificateValidationException."""
    if ca_certificate_pem is not None:
        try:
            device, ca = (x509.load_pem_x509_certificate(pem.encode())
                          for pem in (certificate_pem, ca_certificate_pem))
        except ValueError:
            raise CertificateValidationException("The certificate or the CA certificate is not valid PEM") from None
        der = ca.public_bytes(serialization.Encoding.DER)
        if not any(_der(c.certificate_pem) == der for c in self.ca_certificates.values()):
            raise CertificateValidationException(f"The CA certificate is not registered in {self.region_name}")
        try:
            device.verify_directly_issued_by(ca)
        except Exception:  # another issuer name, a signature this CA's key did not make
            raise CertificateValidationException("The certificate is not signed by the given CA") from None
    return original(self, certificate_pem=certificate_pem, ca_certificate_pem=ca_certificate_pem,
                    set_as_active=set_as_active, status=status)


# AWS IoT Core quotas: at most 10 policies attached to one certificate, Cognito identity or
# thing group ("target").
MAX_ATTACHED_POLICIES = 10


def _within_policy_quota(self: Any, policy_name: str, target: str) -> None:
    attached = {p for (t, p) in self.principal_policies if t == target}
    if policy_name not in attached and len(attached) >= MAX_ATTACHED_POLICIES:
        self._get_principal(target)  # ResourceNotFoundException first
        self.get_policy(policy_name)
        raise LimitExceededException(f"{target} already has {MAX_ATTACHED_POLICIES} policies attached")


def _attach_policy(original: Callable[..., Any], self: Any, policy_name: str, target: str) -> None:
    _within_policy_quota(self, policy_name, target)
    original(self, policy_name=policy_name, target=target)


def _attach_principal_policy(original: Callable[..., Any], self: Any, policy_name: str, principal_arn: str) -> None:
    """The deprecated AttachPrincipalPolicy: the same quota."""
    _within_policy_quota(self, policy_name, principal_arn)
    original(self, policy_name=policy_name, principal_arn=principal_arn)


def _describe_certificate(self: Any) -> Any:
    certificate = self.iot_backend.describe_certificate(self._get_param("certificateId"))
    description = certificate.to_description_dict()
    if certificate.ca_certificate_id:
        description["caCertificateId"] = certificate.ca_certificate_id
    return iot_responses.ActionResult({"certificateDescription": description})


_AMAZON_ISSUER = x509.Name([x509.NameAttribute(
    NameOID.ORGANIZATIONAL_UNIT_NAME,
    "Amazon Web Services O=Amazon.com Inc. L=Seattle ST=Washington C=US")])


@functools.lru_cache(maxsize=1)
def _issuer_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@functools.lru_cache(maxsize=1)
def amazon_issuer_pem() -> str:
    """A CA certificate for the issuer above, so the local device endpoint can trust
    Amazon-issued device certificates the way AWS IoT does (its own CA, not registered)."""
    key = _issuer_key()
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(_AMAZON_ISSUER).issuer_name(_AMAZON_ISSUER)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(days=1))
                   .not_valid_after(dt.datetime(2050, 1, 1, tzinfo=dt.timezone.utc))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                   .sign(key, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def amazon_issued(subject: x509.Name, public_key: Any) -> str:
    """A certificate for `public_key` from the Amazon issuer above, as AWS IoT issues them."""
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(subject)
                   .issuer_name(_AMAZON_ISSUER).public_key(public_key)
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=1))
                   .not_valid_after(dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc))
                   .sign(_issuer_key(), hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def csr_problem(request: x509.CertificateSigningRequest) -> str | None:
    """What CreateCertificateFromCsr refuses: an RSA key under 2048 bits or an EC key off
    P-256/384/521, and a signature outside the algorithms AWS IoT supports (SHA-256/384/512
    with RSA PKCS#1 v1.5 or ECDSA; applying the certificates' list to the CSR is the less
    permissive reading). An invalid self-signature: refused too (undocumented; the same)."""
    key = request.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
        return f"RSA key of {key.key_size} bits (at least 2048)"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in ("secp256r1", "secp384r1", "secp521r1"):
        return f"EC curve {key.curve.name} (P-256, P-384 or P-521)"
    if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        return f"{type(key).__name__} (RSA or EC)"
    try:
        valid = request.is_signature_valid
    except Exception:  # an algorithm cryptography cannot verify
        valid = False
    if not valid or not isinstance(request.signature_hash_algorithm, (hashes.SHA256, hashes.SHA384, hashes.SHA512)) \
            or isinstance(request.signature_algorithm_parameters, padding.PSS):
        return "signature algorithm or signature not supported"
    return None


def _certificate_from_csr(self: Any, csr: str, set_as_active: bool) -> Any:
    """The CSR's own public key and subject, as AWS certifies them (moto certifies a new key),
    if AWS would accept the CSR."""
    try:
        request = x509.load_pem_x509_csr(csr.encode())
    except ValueError:
        raise InvalidRequestException("The certificate signing request is not valid") from None
    problem = csr_problem(request)
    if problem:
        raise InvalidRequestException(f"The certificate signing request is not valid: {problem}")
    return self.register_certificate(amazon_issued(request.subject, request.public_key()),
                                     ca_certificate_pem=None, set_as_active=set_as_active, status="INACTIVE")


def _generated_certificate(self: Any, domain_name: str, subject: x509.Name, key: Any = None) -> str:
    """CreateKeysAndCertificate's certificate: Amazon-issued (moto self-signs it), so a
    device endpoint that trusts the Amazon issuer accepts it as AWS IoT does."""
    if key is None:
        raise ValueError("moto generates a certificate without a key only for the CSR path, patched above")
    return amazon_issued(subject, key.public_key())


# --- DynamoDB ------------------------------------------------------------------------------

_ITEM_LOCK = threading.RLock()
_ATOMIC = ("put_item", "update_item", "delete_item", "get_item", "transact_write_items",
           "transact_get_items", "batch_write_item")


def _atomic(original: Callable[..., Any]) -> Callable[..., Any]:
    """AWS serialises writes per item; moto checks a condition and writes in two steps."""
    @functools.wraps(original)
    def run(*args: Any, **kwargs: Any) -> Any:
        with _ITEM_LOCK:
            return original(*args, **kwargs)
    return run


# TransactWriteItems: "If you submit a request with the same client token but a change in other
# parameters within the 10-minute idempotency window, DynamoDB returns an
# IdempotentParameterMismatch exception."
IDEMPOTENCY_WINDOW_SECONDS = 600.0


class IdempotentParameterMismatchException(DynamodbException):
    def __init__(self, message: str):
        super().__init__(ERROR_TYPE_PREFIX + "IdempotentParameterMismatchException", message=message)


def _transact_write_items(original: Callable[..., Any], self: Any) -> Any:
    """A `ClientRequestToken` seen within 10 minutes with other parameters (any member but the
    token) is refused. The token is kept from the first request that reaches moto, whatever
    its outcome (undocumented for a failed request: the less permissive reading). The
    identical replay is re-executed, as moto does: AWS answers it as the first call."""
    token = self.body.get("ClientRequestToken")
    if token is None:
        return original(self)
    digest = hashlib.sha256(json.dumps({k: v for k, v in self.body.items() if k != "ClientRequestToken"},
                                       sort_keys=True).encode()).hexdigest()
    backend = self.dynamodb_backend  # one per (account, region)
    if not hasattr(backend, "_client_tokens"):
        backend._client_tokens = {}
    tokens: dict[str, tuple[str, float]] = backend._client_tokens
    with _ITEM_LOCK:
        now = time.time()
        seen = tokens.get(token)
        if seen is not None and now - seen[1] < IDEMPOTENCY_WINDOW_SECONDS:
            if seen[0] != digest:
                raise IdempotentParameterMismatchException(
                    f"ClientRequestToken {token} was used within 10 minutes with other parameters")
        else:
            tokens[token] = (digest, now)
    return original(self)


class WriteClock:
    """One clock for every table of every region, strictly increasing in the milliseconds a
    stream record carries: the order of writes is the order of their records' times."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def __call__(self) -> dt.datetime:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns() // 1_000_000)
            return dt.datetime.fromtimestamp(self._last / 1e3, dt.timezone.utc).replace(tzinfo=None)


# --- speed only (same answers): moto makes an RSA key for every symmetric KMS key, and
# imports its one Cognito signing key afresh for every user pool (~0.4 s each).

@functools.lru_cache(maxsize=8)
def _jwk(text: str) -> Any:
    from joserfc import jwk

    return jwk.RSAKey.import_key(json.loads(text))


class _CachedJwk:
    class RSAKey:
        @staticmethod
        def import_key(data: Any) -> Any:
            return _jwk(json.dumps(data, sort_keys=True))


@functools.lru_cache(maxsize=1)
def _symmetric_key_material(original: Callable[..., Any]) -> Any:
    return original("SYMMETRIC_DEFAULT")


def _kms_private_key(original: Callable[..., Any]) -> Callable[..., Any]:
    """moto makes an RSA-2048 key even for a symmetric KMS key (0.15 s of CPU each): one per
    process serves every symmetric key of every world (their material is never compared)."""
    return lambda spec: _symmetric_key_material(original) if spec == "SYMMETRIC_DEFAULT" else original(spec)


def _update_health_check(original: Callable[..., Any], self: Any) -> Any:
    """UpdateHealthCheck refuses a stale `HealthCheckVersion` (HealthCheckVersionMismatch) and
    bumps the version (API UpdateHealthCheck: "increments by 1 each time you update"). It keeps
    a CALCULATED check's children unless the request names new ones or resets them
    (`ResetElements`); moto dropped them on any update, e.g. of the threshold alone."""
    from moto.route53.exceptions import Route53ClientError

    check = self.backend.get_health_check(self._get_param("HealthCheckId"))
    expected = self._get_param("HealthCheckVersion")
    if expected is not None and int(expected) != check.health_check_version:
        raise Route53ClientError("HealthCheckVersionMismatch", f"version {expected} is not the health check's "
                                 f"{check.health_check_version}: read it again")
    children = check.children
    answer = original(self)
    if self._get_param("ChildHealthChecks") is None and \
            "ChildHealthChecks" not in (self._get_param("ResetElements") or []):
        check.children = children
    check.health_check_version += 1
    return answer


@contextmanager
def faithful_moto(clock: WriteClock | None = None) -> Iterator[None]:
    """Patch moto as this module describes, undone on exit."""
    from moto.cognitoidp import models as cognito_models
    from moto.dynamodb.responses import DynamoHandler
    from moto.kms import models as kms_models
    from moto.route53.responses import Route53 as Route53Response

    with ExitStack() as stack:
        patch = stack.enter_context
        patch(mock.patch.object(cognito_models, "jwk", _CachedJwk))
        patch(mock.patch.object(kms_models, "generate_private_key",
                                _kms_private_key(kms_models.generate_private_key)))
        patch(mock.patch.object(_Backend, "create_certificate_from_csr", _certificate_from_csr))
        patch(mock.patch.object(_Backend, "_generate_certificate_pem", _generated_certificate))
        # A certificate's id is the SHA-256 of its DER, as AWS IoT names it (moto's default
        # hashes the PEM text: ids no AWS region would give, lambdas/contracts/certificates.py).
        patch(mock.patch.object(iot_models, "iot_use_valid_cert", lambda: True))
        for name, wrapper in (("update_certificate", _update_certificate),
                              ("detach_thing_principal", _detach_thing_principal),
                              ("delete_certificate", _delete_certificate),
                              ("delete_thing", _delete_thing_propagating),
                              ("register_certificate", _register_certificate),
                              ("attach_policy", _attach_policy),
                              ("attach_principal_policy", _attach_principal_policy),
                              ("create_thing", _create_thing),
                              ("update_thing", _update_thing),
                              ("add_thing_to_thing_group", _add_thing_to_thing_group)):
            patch(wrapping(_Backend, name, wrapper))
        for name, replacement in (("attach_thing_principal", _attach_thing_principal),
                                  ("delete_thing", _delete_thing),
                                  ("describe_certificate", _describe_certificate)):
            patch(mock.patch.object(_Response, name, replacement))
        for name in _ATOMIC:
            patch(mock.patch.object(DynamoDBBackend, name, _atomic(getattr(DynamoDBBackend, name))))
        patch(mock.patch.object(dynamodb_table, "utcnow", clock or WriteClock()))
        patch(wrapping(DynamoHandler, "transact_write_items", _transact_write_items))
        patch(wrapping(Route53Response, "update_health_check", _update_health_check))
        yield
