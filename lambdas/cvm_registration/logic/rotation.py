"""Certificate rotation for a registered device, with proof of possession.

The device sends a CSR for a *new* key, a timestamp, and its signature (made with the key of
its current certificate) over `crypto.rotation_message`. We verify it against the current
certificate in the inventory item (the same in every region), then issue from the CSR,
attach, and commit one transaction: the inventory item's next version (new certificate,
`revokedCertificateIds` + the old one, writerRegion = here) and the record's certificate id.
Only after the commit is the old certificate revoked here; replication revokes it in every
other region when the item reaches them. A commit whose answer is lost may have landed: the
record says whether it did, and a commit that landed is never undone.

Replays are harmless: after a rotation the current certificate carries the CSR's key, so a
replayed request no longer verifies, and a CSR for the current key is refused.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lambdas.contracts.inventory import Issuer, Status

from ..config import Config
from ..dal.ports import (
    CERTIFICATE_ACTIVE,
    CERTIFICATE_REVOKED,
    REGISTERED,
    AwsFailure,
    Certificate,
    CommitRefused,
    DeviceTables,
    NewInventoryVersion,
    Registry,
)
from ..models.requests import RotationRequest
from ..models.responses import REFUSED_MESSAGE, Issued
from .compensation import Compensation, OnUndoFailure
from .crypto import (
    certificate_public_key_der,
    checked_csr,
    csr_public_key_der,
    not_after,
    rotation_message,
    signature_verifies,
)
from .errors import BadField, Conflict, Forbidden, Unavailable
from .registration import UNAVAILABLE_MESSAGE, discard_certificate, iso, thing_name_for


@lru_cache(maxsize=1)
def _stand_in_certificate() -> str:
    """Verified against when the device has no usable certificate, so an unknown device costs
    the same signature check as a known one (no timing oracle)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stand-in")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass(frozen=True)
class Rotated:
    issued: Issued
    revoked_certificate_id: str
    redelivered: bool = False  # the answer to an identical retry of a committed rotation


class Rotator:
    def __init__(self, config: Config, tables: DeviceTables, registry: Registry, *,
                 on_undo_failure: OnUndoFailure,
                 clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._tables = tables
        self._registry = registry
        self._on_undo_failure = on_undo_failure
        self._clock = clock

    def _identical_retry(self, request: RotationRequest, csr: x509.CertificateSigningRequest,
                         current_pem: str, previous_id: str | None) -> bool:
        """A rotation committed and its answer was lost: the device, still holding only its
        old key, sends the same request again. It is the same request when the CSR's key is
        the one the current certificate certifies and the signature verifies with the
        certificate that rotation replaced (fresh, as any rotation). The answer is the
        current certificate again: nothing is issued or revoked."""
        if previous_id is None or \
                csr_public_key_der(csr) != certificate_public_key_der(current_pem):
            return False
        try:
            previous_pem = self._registry.certificate_pem(previous_id)
        except AwsFailure:
            raise Unavailable(UNAVAILABLE_MESSAGE) from None
        return previous_pem is not None and signature_verifies(
            previous_pem, rotation_message(request.device_uid, request.timestamp, request.csr),
            request.signature)

    def _retire_previous(self, thing_name: str, previous_id: str,
                         previous_arn: str | None = None) -> None:
        """Revoke the replaced certificate here and detach it from the thing (its ARN found
        on the thing when not known): after the commit, and again on an identical retry, whose
        first answer may have been lost before these ran; the replication never revokes in
        the region that wrote the row. Idempotent; a failed step is reported (alarm) and does
        not fail the rotation."""
        registry = self._registry

        def detach() -> None:
            arns = [previous_arn] if previous_arn else [
                p for p in registry.list_thing_principals(thing_name) if p.endswith(f"/{previous_id}")]
            for arn in arns:
                registry.detach_thing_principal(thing_name, arn)

        for step, action in (
                ("revoke previous certificate",
                 lambda: registry.set_certificate_status(previous_id, CERTIFICATE_REVOKED)),
                ("detach previous certificate", detach)):
            try:
                action()
            except Exception as error:  # noqa: BLE001 - reported; the rotation stands
                self._on_undo_failure(step, error)

    def _commit_landed(self, device_uid: str, certificate: Certificate,
                       undo: Compensation) -> bool:
        """The commit failed, yet it may have landed: its answer was lost (every SDK attempt
        failed: AwsFailure) or the SDK's retry met the condition its own first attempt had
        already changed (CommitRefused). The record names the new certificate only if the
        commit landed (one transaction writes it with the inventory item): then the rotation
        stands and must not be undone, which would delete the certificate the inventory
        item names. When the record cannot be read either, nothing is undone (AwsFailure,
        reported for the operator): the device's identical retry gets the certificate if
        the commit landed (`_identical_retry`)."""
        try:
            record = self._tables.read_record(device_uid)
        except AwsFailure as error:
            undo.abandon()
            self._on_undo_failure("keep new certificate: rotation commit outcome unknown",
                                  error)
            raise
        return record is not None and record.certificate_id == certificate.certificate_id

    def rotate(self, request: RotationRequest) -> Rotated:
        config = self._config
        thing_name = thing_name_for(config, request.device_uid)
        csr = checked_csr(request.csr)
        try:
            record = self._tables.read_record(request.device_uid)
            item = self._tables.read_inventory(thing_name)
        except AwsFailure:
            raise Unavailable(UNAVAILABLE_MESSAGE) from None
        usable = (record is not None and item is not None and record.enabled
                  and record.state == REGISTERED and item.status == Status.ACTIVE
                  and item.issuer == Issuer.AMAZON
                  and item.certificate_id == record.certificate_id)
        current_pem = item.certificate_pem if usable and item is not None \
            else _stand_in_certificate()
        signed = signature_verifies(current_pem, rotation_message(
            request.device_uid, request.timestamp, request.csr), request.signature)
        fresh = abs(self._clock() - request.timestamp) <= config.rotation_clock_skew_seconds
        if usable and fresh and not signed and item is not None and record is not None:
            again = self._identical_retry(request, csr, item.certificate_pem,
                                          record.previous_certificate_id)
            if again:
                self._retire_previous(thing_name, str(record.previous_certificate_id))
                return Rotated(Issued(thing_name, item.certificate_id, item.certificate_pem),
                               str(record.previous_certificate_id), redelivered=True)
        if not (usable and signed and fresh) or item is None:
            raise Forbidden(REFUSED_MESSAGE)
        if csr_public_key_der(csr) == certificate_public_key_der(item.certificate_pem):
            raise BadField("csr", "must carry a new key (it carries the current one)")

        registry = self._registry
        undo = Compensation(self._on_undo_failure)
        now = self._clock()
        try:
            certificate = registry.create_certificate_from_csr(request.csr)
            undo.push("delete certificate",
                      lambda: discard_certificate(registry, certificate.certificate_id))
            registry.attach_thing_principal(thing_name, certificate.arn)
            undo.push("detach certificate",
                      lambda: registry.detach_thing_principal(thing_name, certificate.arn))
            registry.attach_policy(config.device_policy_name, certificate.arn)
            undo.push("detach policy", lambda: registry.detach_policy(
                config.device_policy_name, certificate.arn))
            registry.set_certificate_status(certificate.certificate_id, CERTIFICATE_ACTIVE)
            try:
                self._tables.commit_rotation(request.device_uid, NewInventoryVersion(
                    thing_name=thing_name, certificate=certificate,
                    not_after=not_after(certificate.pem), writer_region=config.region,
                    updated_at=iso(now), previous=item,
                    revoke=frozenset({item.certificate_id})))
            except (AwsFailure, CommitRefused):
                if not self._commit_landed(request.device_uid, certificate, undo):
                    raise
        except AwsFailure:
            undo.run()
            raise Unavailable(UNAVAILABLE_MESSAGE) from None
        except CommitRefused:
            undo.run()
            raise Conflict("the device's certificate changed meanwhile; retry") from None
        except BaseException:
            undo.run()
            raise

        # Committed: the new certificate is the device's; the replication revokes the old
        # one in every other region.
        self._retire_previous(thing_name, item.certificate_id,
                              f"{certificate.arn.rsplit('/', 1)[0]}/{item.certificate_id}")
        return Rotated(Issued(thing_name, certificate.certificate_id, certificate.pem),
                       item.certificate_id)
