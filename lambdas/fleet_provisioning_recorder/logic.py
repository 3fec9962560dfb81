"""From a confirmed claim to the inventory item (the replication contract, see
docs/data-model.md). Plain functions, no AWS.

The pre-provisioning hook writes the claim (serial, certificate id and PEM) into the
allow-list entry before AWS IoT provisions the device; the recorder reads it from the
provisioning table's stream, waits until AWS IoT shows the certificate ACTIVE and attached
to the thing, then writes the inventory item here.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography import x509

# Copies of lambdas/fleet_provisioning_hook/items.py (a Lambda package imports no other);
# tests/test_fleet_provisioning_lambdas.py asserts they agree.
KEY_PREFIX = "fleet#"
KIND = "FLEET_SERIAL"
CLAIMED = "CLAIMED"
PROVISIONED = "PROVISIONED"
CONFLICT = "CONFLICT"
ALLOWED = "ALLOWED"

THING_NAME = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
CERTIFICATE_ID = re.compile(r"[0-9a-f]{64}")
TOMBSTONE = "DELETED"
LIVE = ("ACTIVE", "INACTIVE")


@dataclass(frozen=True)
class Claim:
    serial: str  # = the thing name
    certificate_id: str
    certificate_pem: str
    claimed_at: dt.datetime
    region: str


def claim_from_image(image: Mapping[str, Any] | None, region: str) -> Claim | None:
    """The claim an allow-list stream image carries, if it is a fresh claim made here."""
    if not image or image.get("kind") != KIND or image.get("state") != CLAIMED \
            or image.get("claimRegion") != region:
        return None
    key = str(image.get("deviceUid", ""))
    serial = key[len(KEY_PREFIX):] if key.startswith(KEY_PREFIX) else ""
    certificate_id = str(image.get("claimCertificateId", ""))
    pem = str(image.get("claimCertificatePem", ""))
    try:
        claimed_at = dt.datetime.fromisoformat(str(image.get("claimedAt")))
    except ValueError:
        return None
    if not THING_NAME.fullmatch(serial) or not CERTIFICATE_ID.fullmatch(certificate_id) or not pem:
        return None
    return Claim(serial=serial, certificate_id=certificate_id, certificate_pem=pem,
                 claimed_at=claimed_at, region=region)


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds")


def not_after(certificate_pem: str) -> str:
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
    return iso(certificate.not_valid_after_utc)


@dataclass(frozen=True)
class Write:
    """What to do with the inventory: `kind` is CREATE (first write), REVIVE (over a
    tombstone, version + 1), RECORDED (this certificate is already there) or CONFLICT
    (a live or revoked device holds the thing name: nothing is written)."""

    kind: str
    item: Mapping[str, Any] | None = None
    expected_version: int | None = None


def plan(existing: Mapping[str, Any] | None, claim: Claim, now: dt.datetime) -> Write:
    base = {
        "thingName": claim.serial,
        "certificateId": claim.certificate_id,
        "certificatePem": claim.certificate_pem,
        "issuer": "AMAZON",  # issued by AWS IoT: other regions use RegisterCertificateWithoutCA
        "writerRegion": claim.region,
        "status": "ACTIVE",
        "onboarding": "FLEET",
        "notAfter": not_after(claim.certificate_pem),
        "updatedAt": iso(now),
    }
    if existing is None:
        return Write("CREATE", {**base, "originRegion": claim.region, "version": 1})
    if existing.get("certificateId") == claim.certificate_id and existing.get("status") in LIVE:
        return Write("RECORDED")
    if existing.get("status") == TOMBSTONE:
        version = int(existing["version"])
        origin = existing.get("originRegion") or claim.region  # never changes
        return Write("REVIVE", {**base, "originRegion": origin, "version": version + 1},
                     expected_version=version)
    return Write("CONFLICT")


class NotYetProvisioned(Exception):
    """AWS IoT has not (yet) provisioned the claimed certificate; retry the record later."""


class InventoryBusy(Exception):
    """The inventory item kept changing under us; retry the record later."""


class Registry(Protocol):
    def provisioned(self, claim: Claim) -> bool:
        """The claimed certificate is ACTIVE and attached to the thing named after the serial."""
        ...


class Inventory(Protocol):
    def get(self, thing_name: str) -> Mapping[str, Any] | None: ...

    def put(self, write: Write) -> bool:
        """Apply CREATE/REVIVE with its condition; False if the condition failed."""
        ...


class AllowList(Protocol):
    def settle(self, claim: Claim, state: str, now: dt.datetime) -> None:
        """Move the entry from this claim to `state` (no-op if it moved on already)."""
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
    Returns the outcome (CREATE, REVIVE, RECORDED, CONFLICT, UNCONFIRMED)."""
    waited = 0.0
    while not registry.provisioned(claim):
        if now() - claim.claimed_at > timing.give_up_after:
            return "UNCONFIRMED"  # provisioning failed; the hook lets the serial retry
        if waited >= timing.wait_seconds:
            raise NotYetProvisioned(f"{claim.serial}: certificate {claim.certificate_id} "
                                    "not provisioned yet")
        sleep(timing.poll_seconds)
        waited += timing.poll_seconds
    for _ in range(3):
        write = plan(inventory.get(claim.serial), claim, now())
        if write.kind == "CONFLICT":
            allow_list.settle(claim, CONFLICT, now())
            return write.kind
        if write.kind == "RECORDED" or inventory.put(write):
            allow_list.settle(claim, PROVISIONED, now())
            return write.kind
    raise InventoryBusy(f"{claim.serial}: the inventory item changed three times")
