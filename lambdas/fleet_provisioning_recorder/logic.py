"""From a confirmed claim to the inventory item (lambdas/contracts/inventory.py). Plain
functions, no AWS.

The pre-provisioning hook writes the claim (serial, certificate id and PEM) into the
allow-list entry before AWS IoT provisions the device; the recorder reads it from the
provisioning table's stream, waits until AWS IoT shows the certificate ACTIVE and attached
to the thing, then writes the inventory item here.

Nothing stale wins: the inventory write is one transaction with the allow-list settle and a
check of the certificate's record, so it happens only over the inventory version the plan
read, only while the entry is still CLAIMED by this certificate (a redelivered record from
before a deletion or a re-claim writes nothing: STALE), and only if the certificate holds
this serial and no other (one certificate, one device).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography import x509

from lambdas.contracts import fleet_allow_list as allow_list
from lambdas.contracts.fleet_allow_list import Attr, State
from lambdas.contracts.inventory import (
    CERTIFICATE_ID_PATTERN,
    InventoryItem,
    Issuer,
    Onboarding,
    Status,
    timestamp,
)


@dataclass(frozen=True)
class Claim:
    serial: str  # = the thing name
    certificate_id: str
    certificate_pem: str
    claimed_at: dt.datetime
    region: str


def claim_from_image(image: Mapping[str, Any] | None, region: str) -> Claim | None:
    """The claim an allow-list stream image carries, if it is a fresh claim made here."""
    if not image or image.get(Attr.KIND) != allow_list.KIND \
            or image.get(Attr.STATE) != State.CLAIMED or image.get(Attr.CLAIM_REGION) != region:
        return None
    serial = allow_list.serial_of(str(image.get(Attr.DEVICE_UID, ""))) or ""
    certificate_id = str(image.get(Attr.CLAIM_CERTIFICATE_ID, ""))
    pem = str(image.get(Attr.CLAIM_CERTIFICATE_PEM, ""))
    try:
        claimed_at = dt.datetime.fromisoformat(str(image.get(Attr.CLAIMED_AT)))
    except ValueError:
        return None
    if allow_list.serial_problem(serial) or not CERTIFICATE_ID_PATTERN.fullmatch(certificate_id) \
            or not pem:
        return None
    return Claim(serial=serial, certificate_id=certificate_id, certificate_pem=pem,
                 claimed_at=claimed_at, region=region)


def not_after(certificate_pem: str) -> str:
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
    return timestamp(certificate.not_valid_after_utc)


@dataclass(frozen=True)
class Write:
    """What to do with the inventory: `kind` is CREATE (first write), REVIVE (over a
    tombstone: the next version of the item read, `replaces`), RECORDED (this certificate is
    already there) or CONFLICT (a live or revoked device holds the thing name: nothing is
    written)."""

    kind: str
    item: InventoryItem | None = None
    replaces: InventoryItem | None = None


def plan(existing: InventoryItem | None, claim: Claim, now: dt.datetime) -> Write:
    certificate = {"certificate_id": claim.certificate_id,
                   "certificate_pem": claim.certificate_pem,
                   # issued by AWS IoT: other regions use RegisterCertificateWithoutCA
                   "issuer": Issuer.AMAZON, "onboarding": Onboarding.FLEET,
                   "not_after": not_after(claim.certificate_pem)}
    if existing is None:
        return Write("CREATE", InventoryItem.first(thing_name=claim.serial, region=claim.region,
                                                   updated_at=timestamp(now), **certificate))
    if existing.certificate_id == claim.certificate_id and existing.status in Status.LIVE:
        return Write("RECORDED")
    if existing.status == Status.DELETED:
        return Write("REVIVE", existing.changed(writer_region=claim.region,
                                                updated_at=timestamp(now), status=Status.ACTIVE,
                                                **certificate), replaces=existing)
    return Write("CONFLICT")


class NotYetProvisioned(Exception):
    """AWS IoT has not (yet) provisioned the claimed certificate; retry the record later."""


class InventoryBusy(Exception):
    """The inventory item kept changing under us; retry the record later."""


class Registry(Protocol):
    def provisioned(self, claim: Claim) -> bool:
        """The claimed certificate is ACTIVE and attached to the thing named after the serial."""
        ...

    def attach_exclusively(self, claim: Claim) -> bool:
        """Make the certificate's attachment to the thing EXCLUSIVE_THING (a provisioning
        template documents no attachment type, so AWS IoT attaches it NON_EXCLUSIVE_THING);
        False if the certificate is attached to another thing too (it would be usable as
        that thing: never recorded)."""
        ...

    def evict(self, claim: Claim) -> None:
        """End an intruder: the claim's certificate INACTIVE, then detached from the thing
        (it holds a name another device owns, or several things)."""
        ...


class Committed:
    WRITTEN = "WRITTEN"
    ITEM_CHANGED = "ITEM_CHANGED"  # the inventory item is no longer the version read
    STALE_CLAIM = "STALE_CLAIM"  # the entry is no longer CLAIMED by this certificate, or
    #                              the certificate holds another serial


class Inventory(Protocol):
    def get(self, thing_name: str) -> InventoryItem | None: ...

    def put(self, item: InventoryItem, replaces: InventoryItem | None, claim: Claim,
            now: dt.datetime) -> str:
        """In one transaction: write `item` over `replaces` (None: a first write) and settle
        the entry PROVISIONED, only while the claim is current. A `Committed` value."""
        ...


class AllowList(Protocol):
    def settle(self, claim: Claim, state: str, now: dt.datetime) -> None:
        """Move the entry from this claim to `state` (no-op if it moved on already)."""
        ...

    def holder(self, serial: str) -> str | None:
        """The certificate the entry is claimed by now (strongly consistent), if any."""
        ...


@dataclass(frozen=True)
class Timing:
    wait_seconds: float  # how long to poll AWS IoT inside one invocation
    poll_seconds: float
    give_up_after: dt.timedelta  # a claim this old that never provisioned is not retried


def record(claim: Claim, registry: Registry, inventory: Inventory, allow_list: AllowList,
           timing: Timing, now: Callable[[], dt.datetime],
           sleep: Callable[[float], None]) -> str:
    """Confirm with AWS IoT, write the inventory item, settle the allow-list entry.
    Returns the outcome (CREATE, REVIVE, RECORDED, CONFLICT, UNCONFIRMED, STALE,
    SUPERSEDED, SHARED_CERTIFICATE)."""
    waited = 0.0
    while not registry.provisioned(claim):
        if now() - claim.claimed_at > timing.give_up_after:
            return "UNCONFIRMED"  # provisioning failed; the hook lets the serial retry
        if waited >= timing.wait_seconds:
            raise NotYetProvisioned(f"{claim.serial}: certificate {claim.certificate_id} "
                                    "not provisioned yet")
        sleep(timing.poll_seconds)
        waited += timing.poll_seconds
    if not registry.attach_exclusively(claim):
        registry.evict(claim)
        allow_list.settle(claim, State.CONFLICT, now())
        return "SHARED_CERTIFICATE"
    for _ in range(3):
        write = plan(inventory.get(claim.serial), claim, now())
        if write.kind == "CONFLICT":
            registry.evict(claim)  # the detector ends the conflict, not only reports it
            allow_list.settle(claim, State.CONFLICT, now())
            return write.kind
        if write.item is None:
            allow_list.settle(claim, State.PROVISIONED, now())
            return write.kind
        committed = inventory.put(write.item, write.replaces, claim, now())
        if committed == Committed.WRITTEN:
            return write.kind
        if committed == Committed.STALE_CLAIM:
            holder = allow_list.holder(claim.serial)
            if holder is not None and holder != claim.certificate_id:
                # A newer claim owns the serial (the hook passed a stale claim on while this
                # device's provisioning was still in flight): this certificate is the
                # intruder now, whatever order the two records arrive in.
                registry.evict(claim)
                return "SUPERSEDED"
            return "STALE"
    raise InventoryBusy(f"{claim.serial}: the inventory item changed three times")
