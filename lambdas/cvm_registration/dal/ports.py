"""What the flows need from AWS, as protocols and plain values (implemented in `aws.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from lambdas.contracts.cvm_device import State
from lambdas.contracts.inventory import InventoryItem

from ..logic.tokens import SaltBook, SaltRef

# Device record states (lambdas/contracts/cvm_device.py).
UNREGISTERED, CLAIMED, REGISTERED, REVOKED = State.UNREGISTERED, State.CLAIMED, State.REGISTERED, State.REVOKED

# AWS IoT certificate statuses we set. (The inventory item: lambdas/contracts/inventory.py.)
CERTIFICATE_ACTIVE, CERTIFICATE_INACTIVE, CERTIFICATE_REVOKED = "ACTIVE", "INACTIVE", "REVOKED"


class AwsFailure(Exception):
    """An AWS call failed for a reason other than a condition we asked for (throttling,
    outage, permissions...). Carries the operation and error code only, never the request."""

    def __init__(self, operation: str, code: str) -> None:
        super().__init__(f"{operation} failed: {code}")
        self.operation = operation
        self.code = code


@dataclass(frozen=True)
class DeviceRecord:
    device_uid: str
    batch: str | None = None
    salt_version: int | None = None
    device_uid_2: str | None = None
    enabled: bool = False
    state: str = UNREGISTERED
    claim_id: str | None = None
    claimed_at_ms: int | None = None
    attempts: int = 0
    thing_name: str | None = None
    certificate_id: str | None = None
    # Set by the operator's `reissue`: the certificate revoked so the device may register again.
    reopened_from: str | None = None
    # Set by a rotation: the certificate it replaced (an identical retry is proven with it).
    previous_certificate_id: str | None = None


@dataclass(frozen=True)
class Certificate:
    certificate_id: str
    arn: str
    pem: str
    public_key_pem: str | None = None  # CreateKeysAndCertificate only
    private_key_pem: str | None = None  # CreateKeysAndCertificate only


class ClaimRefused(Exception):
    """The conditional claim failed; `current` is the record as it was (None: no record);
    `inventory`: the thing's inventory item is ACTIVE or REVOKED (`item`, as it was);
    `claimable`: only the item refused (the record met every condition; it is not returned)."""

    def __init__(self, current: DeviceRecord | None, *, inventory: bool = False,
                 item: InventoryItem | None = None, claimable: bool = False) -> None:
        super().__init__("claim refused")
        self.claimable = claimable
        self.current = current
        self.inventory = inventory
        self.item = item


class CommitRefused(Exception):
    """The commit transaction's condition failed: `inventory` (someone else's item is there)
    and/or `record` (our claim was taken over)."""

    def __init__(self, *, inventory: bool, record: bool) -> None:
        super().__init__(f"commit refused (inventory={inventory}, record={record})")
        self.inventory = inventory
        self.record = record


@dataclass(frozen=True)
class Claim:
    device_uid: str
    claim_id: str
    salt: SaltRef
    device_uid_2: str | None
    now_ms: int
    stale_before_ms: int  # a claim of this region older than this is dead
    region: str
    # A claim of another region older than this is dead: later than `stale_before_ms` by
    # more than replication takes, so its commit, if any, has reached us.
    foreign_stale_before_ms: int = 0


@dataclass(frozen=True)
class NewInventoryVersion:
    """What the commit writes to the inventory item (lambdas/contracts/inventory.py): the
    first version, or the next version of `previous`, the item read."""

    thing_name: str
    certificate: Certificate
    not_after: str
    writer_region: str
    updated_at: str
    previous: InventoryItem | None  # None: first write (version 1)
    revoke: frozenset[str] = field(default_factory=frozenset)  # add to revokedCertificateIds


class SaltSource(Protocol):
    def book(self) -> SaltBook: ...

    def refreshed(self) -> SaltBook:
        """A fresh copy if the cached one may be stale (rate-limited: returns the cached
        book when it was fetched very recently)."""
        ...


class DeviceTables(Protocol):
    def claim(self, thing_name: str, claim: Claim) -> DeviceRecord: ...

    def release(self, device_uid: str, claim_id: str) -> bool: ...

    def read_record(self, device_uid: str) -> DeviceRecord | None: ...

    def read_inventory(self, thing_name: str) -> InventoryItem | None: ...

    def commit_registration(self, claim: Claim, version: NewInventoryVersion) -> None: ...

    def commit_rotation(self, device_uid: str, version: NewInventoryVersion) -> None: ...


class Registry(Protocol):
    """AWS IoT in this region."""

    def create_thing(self, thing_name: str, attributes: Mapping[str, str]) -> bool:
        """True when created, False when a thing of that name already exists."""
        ...

    def create_certificate_from_csr(self, csr_pem: str) -> Certificate: ...

    def create_keys_and_certificate(self) -> Certificate: ...

    def attach_thing_principal(self, thing_name: str, certificate_arn: str) -> None: ...

    def attach_policy(self, policy_name: str, certificate_arn: str) -> None: ...

    def detach_policy(self, policy_name: str, certificate_arn: str) -> None: ...

    def list_thing_principals(self, thing_name: str) -> list[str]: ...

    def detach_thing_principal(self, thing_name: str, certificate_arn: str) -> None: ...

    def set_certificate_status(self, certificate_id: str, status: str) -> None: ...

    def certificate_pem(self, certificate_id: str) -> str | None:
        """The certificate's PEM (whatever its status), None when it does not exist here."""
        ...

    def delete_certificate(self, certificate_id: str) -> None: ...

    def delete_thing(self, thing_name: str) -> None: ...
