"""Registration: prove the identity, claim the record, issue, commit; undo on any failure.

1. The token names the batch (see `tokens.match_salt`); no match -> 403.
2. **Claim** the provisioning record with one conditional UpdateItem (enabled, unregistered,
   batch/salt version and second identifier as proven). Exactly one concurrent request wins;
   the others read the record as it was and get 409 (registered / in progress) or 403.
3. CreateThing, CreateCertificateFromCsr (or CreateKeysAndCertificate for a legacy batch),
   AttachThingPrincipal (EXCLUSIVE_THING), AttachPolicy (the region's device policy).
4. **Commit**: one DynamoDB transaction writes the inventory item (the replication contract:
   version 1 with `attribute_not_exists`, issuer AMAZON, writerRegion = originRegion = this
   region, onboarding CVM) and marks the record REGISTERED, only while the claim is ours.

Six AWS calls on the CSR path (the salts are cached). Any failure after the claim undoes, newest
first: detach the policy and the thing, deactivate + delete the certificate, delete the thing
if this attempt created it, release the claim; the device gets 503 (or 409) and a retry
starts from a clean slate.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from lambdas.contracts.inventory import InventoryItem, Issuer, Status, timestamp
from lambdas.contracts.things import (
    THING_NAME_MAX_LENGTH,
    device_thing_name,
    device_uid_problem,
)

from ..config import Config
from ..dal.ports import (
    CERTIFICATE_ACTIVE,
    CERTIFICATE_INACTIVE,
    CERTIFICATE_REVOKED,
    CLAIMED,
    REGISTERED,
    REVOKED,
    AwsFailure,
    Certificate,
    Claim,
    ClaimRefused,
    CommitRefused,
    DeviceRecord,
    DeviceTables,
    NewInventoryVersion,
    Registry,
    SaltSource,
)
from ..models.requests import RegistrationRequest
from ..models.responses import REFUSED_MESSAGE, Issued
from .compensation import Compensation, OnUndoFailure
from .crypto import certificate_public_key_der, checked_csr, csr_public_key_der, not_after
from .errors import BadField, Conflict, Forbidden, Refusal, Unavailable
from .tokens import SaltRef, match_salt

THING_NAME_MAX = THING_NAME_MAX_LENGTH
# A claim written by another region is taken over only this much later than one of ours: the
# other region's commit (if any) replicates within seconds (DynamoDB global tables,
# ReplicationLatency), so by then this region has seen it and the claim's inventory check or
# the record's state refuses.
FOREIGN_CLAIM_MARGIN_SECONDS = 300
UNAVAILABLE_MESSAGE = "registration is temporarily unavailable; nothing was kept, retry later"
IN_PROGRESS = "a registration for this device is in progress; retry later"


@dataclass(frozen=True)
class Registered:
    issued: Issued
    batch: str
    path: str  # "csr" | "legacy"
    attempts: int  # claims this record has seen, this one included (KPI: attempts per device)
    redelivered: bool = False  # the certificate issued earlier to the same key, sent again


class _AlreadyIssued(Exception):
    """The claim was refused because the device is registered; `item`: the certificate it
    holds, when the request proved the same key."""

    def __init__(self, item: InventoryItem | None) -> None:
        super().__init__("already issued")
        self.item = item


def thing_name_for(config: Config, device_uid: str) -> str:
    """The contract the operator's tool imports devices with (lambdas/contracts/things.py)."""
    problem = device_uid_problem(device_uid, config.thing_name_prefix)
    if problem is not None:
        raise BadField("device_uid", problem)
    return device_thing_name(config.thing_name_prefix, device_uid)


def iso(epoch_seconds: float) -> str:
    return timestamp(dt.datetime.fromtimestamp(epoch_seconds, dt.timezone.utc))


def discard_certificate(registry: Registry, certificate_id: str) -> None:
    registry.set_certificate_status(certificate_id, CERTIFICATE_INACTIVE)
    registry.delete_certificate(certificate_id)


class Registrar:
    def __init__(self, config: Config, salts: SaltSource, tables: DeviceTables,
                 registry: Registry, *, on_undo_failure: OnUndoFailure,
                 clock: Callable[[], float] = time.time,
                 new_claim_id: Callable[[], str] = lambda: uuid.uuid4().hex) -> None:
        self._config = config
        self._salts = salts
        self._tables = tables
        self._registry = registry
        self._on_undo_failure = on_undo_failure
        self._clock = clock
        self._new_claim_id = new_claim_id

    # --- 1. identity ----------------------------------------------------------------------

    def prove(self, uid: str, uid2: str | None, token: str) -> SaltRef:
        """The batch salt this token was made with, or Forbidden (same for every reason)."""
        try:
            book = self._salts.book()
            found = match_salt(book, uid, uid2, token)
            if found is None:
                fresh = self._salts.refreshed()  # a batch imported after our last read
                if fresh is not book:
                    found = match_salt(fresh, uid, uid2, token)
        except AwsFailure:
            raise Unavailable(UNAVAILABLE_MESSAGE) from None
        if found is None:
            raise Forbidden(REFUSED_MESSAGE)
        return found

    @staticmethod
    def refusal(current: DeviceRecord | None, salt: SaltRef, uid2: str | None) -> Refusal:
        """Why the claim failed, as the device may learn it: it has proven the token, so it
        may hear "registered" or "in progress"; everything else is the one 403."""
        if (current is None or current.batch != salt.batch
                or current.salt_version != salt.version or current.device_uid_2 != uid2
                or not current.enabled or current.state == REVOKED):
            return Forbidden(REFUSED_MESSAGE)
        if current.state == REGISTERED:
            return Conflict("device is already registered")
        if current.state == CLAIMED:
            return Conflict(IN_PROGRESS, retry_after=2)
        return Forbidden(REFUSED_MESSAGE)

    def _claim(self, thing_name: str, claim: Claim, salt: SaltRef,
               request: RegistrationRequest) -> DeviceRecord:
        try:
            return self._tables.claim(thing_name, claim)
        except ClaimRefused as refused:
            current = refused.current
            if current is not None and current.claim_id == claim.claim_id \
                    and current.state == CLAIMED:
                # An SDK retry of our own claim after its answer was lost: the record is ours.
                return current
            held = refused.item if refused.inventory else None
            if refused.claimable:  # only the inventory item refused
                refusal: Refusal = Conflict("device is already registered") \
                    if held is not None and held.status == Status.ACTIVE \
                    else Forbidden(REFUSED_MESSAGE)
            else:
                refusal = self.refusal(current, salt, request.device_uid_2)
            if isinstance(refusal, Conflict) and refusal.retry_after is None \
                    and request.csr is not None:
                item = refused.item if refused.inventory else None
                raise _AlreadyIssued(self._issued_to_this_key(
                    thing_name, current, item, request.csr)) from None
            raise refusal from None
        except AwsFailure:
            # The claim's answer is lost, so it may have landed: give it back now (only if it
            # is ours and still a claim) so the device's retry is not held for the stale time.
            try:
                self._tables.release(claim.device_uid, claim.claim_id)
            except AwsFailure:
                pass  # the claim goes stale after claim_stale_seconds
            raise Unavailable(UNAVAILABLE_MESSAGE) from None

    def _issued_to_this_key(self, thing_name: str, record: DeviceRecord | None,
                            item: InventoryItem | None, csr_pem: str) -> InventoryItem | None:
        """The device is registered and asks again with a CSR (its answer was lost): the
        ACTIVE certificate already issued to the CSR's key, if there is one. The CSR's
        signature proves the key, the token proved the identity: the retry gets the same
        certificate, never a second one (idempotent registration)."""
        try:
            item = item or self._tables.read_inventory(thing_name)
        except AwsFailure:
            return None
        if item is None or item.status != Status.ACTIVE or item.issuer != Issuer.AMAZON \
                or (record is not None and record.state == REGISTERED
                    and record.certificate_id != item.certificate_id):
            return None
        same_key = (csr_public_key_der(checked_csr(csr_pem))
                    == certificate_public_key_der(item.certificate_pem))
        return item if same_key else None

    # --- the flow -------------------------------------------------------------------------

    def register(self, request: RegistrationRequest) -> Registered:
        config = self._config
        thing_name = thing_name_for(config, request.device_uid)
        if request.csr is not None:
            checked_csr(request.csr)
        salt = self.prove(request.device_uid, request.device_uid_2, request.device_token)
        if request.csr is None and salt.batch not in config.legacy_batches:
            raise BadField("csr", "is required: this device's batch does not allow "
                           "cloud-generated keys")
        now = self._clock()
        now_ms = int(now * 1000)
        claim = Claim(device_uid=request.device_uid, claim_id=self._new_claim_id(), salt=salt,
                      device_uid_2=request.device_uid_2, now_ms=now_ms,
                      stale_before_ms=now_ms - config.claim_stale_seconds * 1000,
                      region=config.region,
                      foreign_stale_before_ms=now_ms - (config.claim_stale_seconds
                                                        + FOREIGN_CLAIM_MARGIN_SECONDS) * 1000)
        try:
            record = self._claim(thing_name, claim, salt, request)
        except _AlreadyIssued as again:
            if again.item is None:
                raise Conflict("device is already registered") from None
            item = again.item
            return Registered(Issued(thing_name, item.certificate_id, item.certificate_pem),
                              salt.batch, "csr", 0, redelivered=True)

        undo = Compensation(self._on_undo_failure)
        undo.push("release claim", lambda: self._tables.release(claim.device_uid, claim.claim_id))
        try:
            certificate = self._issue(claim, record, thing_name, request.csr, now, undo)
        except AwsFailure:
            undo.run()
            raise Unavailable(UNAVAILABLE_MESSAGE) from None
        except CommitRefused as refused:
            undo.run()
            # The record may have changed under our claim (an operator revoked or disabled
            # it, or a claim took over a slow invocation), whichever condition refused:
            # answer from the record as it is now, so a revoked device hears the one 403.
            try:
                current = self._tables.read_record(claim.device_uid)
            except AwsFailure:
                raise Unavailable(UNAVAILABLE_MESSAGE) from None
            if refused.inventory and current is not None and current.enabled \
                    and current.state != REVOKED:
                raise Conflict("device is already registered") from None
            raise self.refusal(current, salt, request.device_uid_2) from None
        except BaseException:
            undo.run()
            raise
        issued = Issued(thing_name, certificate.certificate_id, certificate.pem,
                        certificate.public_key_pem, certificate.private_key_pem)
        return Registered(issued, salt.batch, "legacy" if request.csr is None else "csr",
                          record.attempts)

    def _issue(self, claim: Claim, record: DeviceRecord, thing_name: str, csr_pem: str | None,
               now: float, undo: Compensation) -> Certificate:
        registry = self._registry
        # A thing without a thing type may have 3 attributes (AWS IoT quotas); `onboarding`
        # is the inventory item's. `claim` differs per attempt, so CreateThing on a leftover
        # thing says "exists" instead of succeeding: we never delete a thing this attempt
        # did not create.
        created = registry.create_thing(thing_name, {
            "deviceUid": claim.device_uid, "batch": claim.salt.batch, "claim": claim.claim_id})
        if created:
            undo.push("delete thing", lambda: registry.delete_thing(thing_name))
        previous: InventoryItem | None = None
        if not created or record.reopened_from:
            previous = self._previous_item(self._tables.read_inventory(thing_name), record)
        if not created:
            self._revoke_leftovers(thing_name)

        if csr_pem is not None:
            certificate = registry.create_certificate_from_csr(csr_pem)
        else:
            certificate = registry.create_keys_and_certificate()
        undo.push("delete certificate",
                  lambda: discard_certificate(registry, certificate.certificate_id))
        registry.attach_thing_principal(thing_name, certificate.arn)
        undo.push("detach certificate",
                  lambda: registry.detach_thing_principal(thing_name, certificate.arn))
        policy = self._config.device_policy_name
        registry.attach_policy(policy, certificate.arn)
        undo.push("detach policy", lambda: registry.detach_policy(policy, certificate.arn))
        # Created inactive (a lost creation answer leaves no usable orphan): activate now, just
        # before the commit; the undo deactivates and deletes it.
        registry.set_certificate_status(certificate.certificate_id, CERTIFICATE_ACTIVE)

        revoke = frozenset({previous.certificate_id}) if previous is not None \
            and previous.certificate_id != certificate.certificate_id else frozenset()
        try:
            self._tables.commit_registration(claim, NewInventoryVersion(
                thing_name=thing_name, certificate=certificate,
                not_after=not_after(certificate.pem), writer_region=self._config.region,
                updated_at=iso(now), previous=previous, revoke=revoke))
        except AwsFailure:
            if self._commit_landed(claim, certificate, undo):
                return certificate
            raise
        return certificate

    def _commit_landed(self, claim: Claim, certificate: Certificate,
                       undo: Compensation) -> bool:
        """The commit's answer is lost (every SDK attempt failed): did it land? Releasing our
        claim first settles it: the commit is conditional on our claim, so once released it
        can never land late; if the claim is no longer ours, the record says who won. When
        neither answers, nothing is undone (undoing a commit that landed would delete the
        device's certificate): the claim goes stale and the next claim cleans up."""
        try:
            if self._tables.release(claim.device_uid, claim.claim_id):
                return False
            record = self._tables.read_record(claim.device_uid)
        except AwsFailure:
            undo.abandon()
            return False
        return (record is not None and record.state == REGISTERED
                and record.certificate_id == certificate.certificate_id)

    @staticmethod
    def _previous_item(item: InventoryItem | None, record: DeviceRecord) -> InventoryItem | None:
        """The inventory item this registration may replace. An ACTIVE item means the device
        (or another with its thing name) is registered, here or in another region: 409."""
        if item is None:
            return None
        if item.status == Status.ACTIVE:
            raise Conflict("device is already registered")
        if item.status == Status.REVOKED:
            raise Forbidden(REFUSED_MESSAGE)
        if item.status == Status.DELETED or (item.status == Status.INACTIVE
                                             and record.reopened_from == item.certificate_id):
            return item
        raise Conflict("device is already registered")

    def _revoke_leftovers(self, thing_name: str) -> None:
        """Certificates still on an existing thing were never delivered (an invocation died
        before answering) or were revoked by the operator's reissue: revoke, take the device
        policy off, detach. Kept, REVOKED (a record of what was issued), not deleted."""
        for principal in self._registry.list_thing_principals(thing_name):
            if ":cert/" not in principal:
                continue
            self._registry.set_certificate_status(principal.rsplit("/", 1)[1],
                                                  CERTIFICATE_REVOKED)
            self._registry.detach_policy(self._config.device_policy_name, principal)
            self._registry.detach_thing_principal(thing_name, principal)
