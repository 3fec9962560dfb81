"""The hook's decision: plain functions over what the tables say, deny by default.

A serial may be provisioned when all of these hold:

* the request is for this template and its client id is `<claim prefix><serial>`;
* no parameter names one of AWS's own values (`AWS::*`, e.g. `AWS::IoT::Certificate::Id`:
  AWS IoT fills those in and documents no precedence over a device's, so any is refused);
* the serial keeps the allow-list contract's serial rule (valid thing name, short enough
  for `<prefix><serial>` to be a client id, not itself beginning with the claim prefix) and
  has an allow-list entry (`kind = FLEET_SERIAL`)
  that keeps its contract (lambdas/contracts/fleet_allow_list.py) and is enabled;
* the inventory item, if any, keeps its contract (lambdas/contracts/inventory.py);
* the inventory holds no live device under that thing name (`ACTIVE`/`INACTIVE`: already
  provisioned; `REVOKED`: never again; a `DELETED` tombstone does not block);
* the entry is not `PROVISIONED`/`CONFLICT`, and not `CLAIMED` by another certificate less
  than `claim_stale_after` ago (the same certificate retrying RegisterThing is allowed);
* a claim by another certificate older than that (the allow-list contract's one window,
  `CLAIM_STALE_AFTER`, the ownership token's life) passes to this certificate only if AWS
  IoT's registry, the authoritative record, shows the claimed device never provisioned: no
  certificate attached to the thing `<serial>` and the claimed certificate not ACTIVE (a
  device whose recorder lagged or failed keeps its name: `PROVISIONED_UNRECORDED`); and only
  a claim made in this region (`claimRegion`) passes on here: another region's device is in
  its registry, which this hook cannot read, so only the hook in the claim's region may pass
  the serial on (`CLAIMED_IN_ANOTHER_REGION`);
* the claim certificate (`claimCertificateId`, an AWS IoT certificate id) holds no other
  serial: one claim, one device (a claim holder asking for further allow-listed serials
  within the claim's five minutes is refused, `CLAIM_HOLDS_ANOTHER_SERIAL`);
* the conditional claim write that records the certificate wins; the same transaction
  records that the certificate holds this serial, only if it holds no other one (one
  certificate, one device: reconnecting with the same ownership token as another serial's
  client id is refused, `CERTIFICATE_HOLDS_ANOTHER_SERIAL`), and that the claim certificate
  holds it, on the same terms (`CLAIM_RACE` when either loses a race).

Anything else — unknown, disabled, revoked, a table that does not answer in time — denies.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from lambdas.contracts import fleet_allow_list as allow_list
from lambdas.contracts.fleet_allow_list import Attr, State
from lambdas.contracts.inventory import (
    CERTIFICATE_ID_PATTERN,
    ContractViolation,
    InventoryItem,
    Status,
)

from .models import PreProvisioningRequest

SERIAL_PARAMETER = allow_list.SERIAL_PARAMETER


class StoreUnavailable(Exception):
    """The tables could not answer inside the hook's time budget."""


@dataclass(frozen=True)
class Records:
    allow_list: Mapping[str, Any] | None  # the `fleet#<serial>` item of the provisioning table
    inventory: InventoryItem | None  # the inventory item of thing `<serial>`
    # the serial the request's certificate was allowed before (`fleet#certificate#<id>`)
    certificate_serial: str | None = None
    # the serial the request's claim certificate was allowed before (`fleet#claim#<id>`)
    claim_serial: str | None = None
    # what was wrong with either of those two items (their contract: holding_problems)
    holding_problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Claim:
    serial: str
    certificate_id: str
    certificate_pem: str
    client_id: str
    claim_certificate_id: str  # the claim (CreateProvisioningClaim) the device connected with
    claimed_at: dt.datetime
    stale_before: dt.datetime  # an older claim by another certificate may be replaced


class Registry(Protocol):
    def holds_device(self, serial: str, certificate_id: str) -> bool:
        """AWS IoT shows the claimed device provisioned (or provisioning): a certificate is
        attached to the thing `serial`, or `certificate_id` is ACTIVE. StoreUnavailable when
        it cannot answer in time (the hook then denies)."""
        ...


class AllowListStore(Protocol):
    def read(self, serial: str, certificate_id: str, claim_certificate_id: str) -> Records: ...

    def claim(self, claim: Claim) -> bool:
        """Record the claim, and that the certificate and the claim certificate hold this
        serial, if the entry still permits it and neither holds another serial; False if a
        condition failed."""
        ...


@dataclass(frozen=True)
class HookConfig:
    template_arn: str
    claim_client_id_prefix: str
    claim_stale_after: dt.timedelta  # fleet_allow_list.CLAIM_STALE_AFTER
    region: str  # this hook's region: its registry is the only one it reads


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  # ALLOWED or why not, one word (metric dimension and log field)
    serial: str | None = None
    overrides: Mapping[str, str] = field(default_factory=dict)
    detail: tuple[str, ...] = ()  # for the log: what was wrong with a stored item
    # the certificate of a stale claim this decision would replace (the registry decides)
    takes_over: str | None = None

    def as_response(self) -> dict[str, Any]:
        """What AWS IoT reads: `allowProvisioning` (a JSON boolean) and `parameterOverrides`."""
        return {"allowProvisioning": self.allowed, "parameterOverrides": dict(self.overrides)}


def deny(reason: str, serial: str | None = None, detail: tuple[str, ...] = ()) -> Decision:
    return Decision(allowed=False, reason=reason, serial=serial, detail=detail)


def _claimed_at(entry: Mapping[str, Any]) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(entry[Attr.CLAIMED_AT]))
    except (KeyError, ValueError):
        return None


def check(request: PreProvisioningRequest, records: Records, config: HookConfig,
          now: dt.datetime) -> Decision:
    """Everything but the final claim write: may this request claim the serial?"""
    serial = request.parameters.get(SERIAL_PARAMETER, "")
    entry, device = records.allow_list, records.inventory
    if records.holding_problems:
        return deny("INVALID_ENTRY", serial, records.holding_problems)
    if records.certificate_serial is not None and records.certificate_serial != serial:
        return deny("CERTIFICATE_HOLDS_ANOTHER_SERIAL", serial)
    if records.claim_serial is not None and records.claim_serial != serial:
        return deny("CLAIM_HOLDS_ANOTHER_SERIAL", serial,
                    (f"claimCertificateId {request.claimCertificateId} provisioned serial "
                     f"{records.claim_serial}: one claim, one device; create a new claim "
                     f"for {serial}",))
    if entry is None or entry.get(Attr.KIND) != allow_list.KIND:
        return deny("UNKNOWN_SERIAL", serial)
    problems = allow_list.problems(entry)
    if problems:
        return deny("INVALID_ENTRY", serial, tuple(problems))
    if entry[Attr.ENABLED] is not True:
        return deny("DISABLED", serial)
    status = device.status if device is not None else None
    if status == Status.REVOKED:
        return deny("REVOKED", serial)
    if status in Status.LIVE:
        return deny("ALREADY_PROVISIONED", serial)
    state = entry[Attr.STATE]
    if state in State.SETTLED:
        return deny("ALREADY_PROVISIONED", serial)
    if state == State.CLAIMED and entry[Attr.CLAIM_CERTIFICATE_ID] != request.certificateId:
        claimed_at = _claimed_at(entry)
        if claimed_at is None or now - claimed_at < config.claim_stale_after:
            return deny("CLAIM_IN_PROGRESS", serial)
        claim_region = str(entry[Attr.CLAIM_REGION])
        if claim_region != config.region:
            return deny("CLAIMED_IN_ANOTHER_REGION", serial, (
                f"{Attr.CLAIM_REGION}: {claim_region}: the stale claim was made there and only "
                f"the hook in {claim_region} may pass it on (this region's registry cannot "
                f"show whether that device provisioned); provision the device in {claim_region}",))
        return Decision(allowed=True, reason="ALLOWED", serial=serial,
                        overrides={SERIAL_PARAMETER: serial},
                        takes_over=str(entry[Attr.CLAIM_CERTIFICATE_ID]))
    if state not in (State.ALLOWED, State.CLAIMED):
        return deny("UNKNOWN_STATE", serial)
    return Decision(allowed=True, reason="ALLOWED", serial=serial,
                    overrides={SERIAL_PARAMETER: serial})


AWS_PARAMETER_PREFIX = "AWS::"  # AWS IoT's own parameters (provisioning templates)


def request_problem(request: PreProvisioningRequest, config: HookConfig) -> str | None:
    """Checks needing no table: a reason to deny, or None."""
    if request.templateArn != config.template_arn:
        return "WRONG_TEMPLATE"
    if any(name.upper().startswith(AWS_PARAMETER_PREFIX.upper()) for name in request.parameters):
        return "RESERVED_PARAMETER"
    if not CERTIFICATE_ID_PATTERN.fullmatch(request.certificateId):
        return "INVALID_CERTIFICATE_ID"
    if not CERTIFICATE_ID_PATTERN.fullmatch(request.claimCertificateId):
        return "INVALID_CLAIM_CERTIFICATE_ID"  # it keys the claim's record
    serial = request.parameters.get(SERIAL_PARAMETER)
    if serial is None or allow_list.serial_problem(serial, config.claim_client_id_prefix):
        return "INVALID_SERIAL"
    if request.clientId != f"{config.claim_client_id_prefix}{serial}":
        return "CLIENT_ID_MISMATCH"
    return None


def decide(request: PreProvisioningRequest, store: AllowListStore, registry: Registry,
           config: HookConfig, now: dt.datetime) -> Decision:
    """The whole decision; never raises for a table problem (that denies)."""
    problem = request_problem(request, config)
    serial = request.parameters.get(SERIAL_PARAMETER)
    if problem is not None or serial is None:
        return deny(problem or "INVALID_SERIAL", serial)
    try:
        records = store.read(serial, request.certificateId, request.claimCertificateId)
        decision = check(request, records, config, now)
        if not decision.allowed:
            return decision
        if decision.takes_over is not None \
                and registry.holds_device(serial, decision.takes_over):
            return deny("PROVISIONED_UNRECORDED", serial)
        claim = Claim(serial=serial, certificate_id=request.certificateId,
                      certificate_pem=request.certificatePem, client_id=request.clientId,
                      claim_certificate_id=request.claimCertificateId, claimed_at=now, stale_before=now - config.claim_stale_after)
        if not store.claim(claim):
            # the entry, the device or a certificate's record changed between read and write
            return deny("CLAIM_RACE", serial)
    except StoreUnavailable:
        return deny("TABLE_UNAVAILABLE", serial)
    except ContractViolation as broken:
        return deny("INVALID_INVENTORY_ITEM", serial, broken.problems)
    return decision
