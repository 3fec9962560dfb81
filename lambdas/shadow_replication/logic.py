"""Shadow replication decisions (no AWS here: the ports are `data.py`'s classes or fakes).

Capture (this region's shadow changed; an IoT rule invoked us with the shadow's `/documents`
or `/delete/accepted` message): record it in the device-data table as the newest state of
that shadow, unless it is an echo of a write applied from elsewhere or older than the record.
Apply (the table's stream in this region carries a record another region wrote): make this
region's shadow equal to the table's *current* record.

Rules (components/shadow_replication/README.md):
* Winner: the greatest `orderKey` (origin timestamp, then region name, then origin version).
  A change captured in the same second as a record this region already holds from elsewhere
  takes that second + 1 (a Lamport step): made after seeing it, it is ordered after it.
* Echo suppression: a write this code makes carries a `iotmr-replica:` client token (the
  rules' SQL drops those documents, `capture` checks again); a captured state equal to the
  current record written elsewhere is the shadow reflecting an applied write (deletes carry
  no token) and is dropped too. So an applied write is never re-exported.
* A local write that lost DynamoDB's last-writer race but wins by the rule is re-asserted
  (the stream's old image shows it), so every region converges on the rule's winner.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from lambdas.contracts.shadows import (
    TOMBSTONE_SECONDS,
    RecordProblem,
    ShadowRecord,
    Status,
    fits,
    is_replica_token,
    replica_client_token,
    update_request,
)

CAPTURE_ATTEMPTS = 3


class Busy(Exception):
    """A conditional write kept losing to concurrent writers: retried by the caller."""


class VersionConflict(Exception):
    """The local shadow changed between our read and our write: retried by the caller."""


@dataclass(frozen=True)
class LocalShadow:
    state: Mapping[str, Any]  # {"desired": {...}, "reported": {...}}
    version: int


class ShadowTable(Protocol):
    def get(self, thing_name: str, shadow_name: str) -> ShadowRecord | None:
        """The current record (consistent read) or None."""

    def put(self, record: ShadowRecord, expected_version: int | None) -> bool:
        """Write `record` if the item's version is still `expected_version` (None: absent)."""


class ShadowService(Protocol):
    def get(self, thing_name: str, shadow_name: str) -> LocalShadow | None: ...

    def update(self, thing_name: str, shadow_name: str, state: Mapping[str, Any],
               expected_version: int | None, client_token: str) -> None:
        """UpdateThingShadow; VersionConflict when `expected_version` is stale."""

    def delete(self, thing_name: str, shadow_name: str) -> bool:
        """DeleteThingShadow; False when there was no shadow."""


@dataclass(frozen=True)
class Ports:
    region: str
    table: ShadowTable
    shadows: ShadowService
    now: Callable[[], float]


# --- capture ---------------------------------------------------------------------------------

def captured_record(event: Mapping[str, Any], region: str) -> ShadowRecord:
    """The rule's message (components/shadow_replication/rules.py shapes it) as a record."""
    if not isinstance(event, Mapping):
        raise RecordProblem(f"event must be an object, got {type(event).__name__}")
    operation = event.get("operation")
    if operation not in ("UPDATE", "DELETE"):
        raise RecordProblem(f"operation must be UPDATE or DELETE, got {operation!r}")
    state: Any = None
    origin_version = event.get("version")
    if operation == "DELETE" and isinstance(origin_version, int) and \
            not isinstance(origin_version, bool):
        # /delete/accepted names the version deleted: the delete comes after that update
        # (same second, same region: the order key must still put the delete last).
        origin_version += 1
    if operation == "UPDATE":
        raw = event.get("state")
        # The /documents message's `current.state` holds desired and reported; anything
        # else the service may add (e.g. delta) is derived and never replicated.
        state = ({k: v for k, v in raw.items() if k in ("desired", "reported")}
                 if isinstance(raw, Mapping) else raw)
    return ShadowRecord.create(
        thing_name=event.get("thingName"), shadow_name=event.get("shadowName", ""),
        status=Status.PRESENT if operation == "UPDATE" else Status.DELETED, state=state,
        origin_timestamp=event.get("timestamp"), origin_version=origin_version,
        writer_region=region)


def capture(event: Mapping[str, Any], ports: Ports) -> str:
    """One captured shadow change -> outcome. RecordProblem: malformed (caller dead-letters)."""
    if isinstance(event, Mapping) and is_replica_token(event.get("clientToken")):
        return "ECHO"
    candidate = captured_record(event, ports.region)
    for _ in range(CAPTURE_ATTEMPTS):
        current = ports.table.get(candidate.thing_name, candidate.shadow_name)
        if current is not None and current.writer_region != ports.region \
                and current.content == candidate.content:
            return "ECHO"  # the shadow now equals a record applied from elsewhere
        if current is not None and current.writer_region != ports.region \
                and candidate.origin_timestamp == current.origin_timestamp \
                and not candidate.newer_than(current):
            # Made here within the same second as a record this region already holds from
            # elsewhere: a Lamport step orders it after that record instead of the region
            # tie-break reverting it (an operator deleting, in A, what B wrote a moment ago).
            candidate = dataclasses.replace(candidate,
                                            origin_timestamp=current.origin_timestamp + 1)
        if current is not None and current.writer_region == ports.region \
                and candidate.origin_version > current.origin_version \
                and candidate.origin_timestamp < current.origin_timestamp:
            # The shadow service numbers one region's changes in order: a later change of
            # ours follows our record even where that record took a Lamport step.
            candidate = dataclasses.replace(candidate,
                                            origin_timestamp=current.origin_timestamp)
        if current is not None and not candidate.newer_than(current):
            if current.writer_region == ports.region:
                return "SUPERSEDED"  # late or duplicate delivery of our own older change
            # A record from elsewhere wins by the rule: this region converges to it.
            converge(current, ports)
            return "LOST_CONVERGED"
        expected = current.version if current is not None else None
        expires = int(ports.now()) + TOMBSTONE_SECONDS \
            if candidate.status == Status.DELETED else None
        if ports.table.put(candidate.written(version=(expected or 0) + 1, expires_at=expires),
                           expected):
            return "RECORDED"
    raise Busy(f"{candidate.thing_name}/{candidate.shadow_name or 'classic'}: the record "
               f"changed {CAPTURE_ATTEMPTS} times while capturing")


# --- apply -----------------------------------------------------------------------------------

def replacement(local: Mapping[str, Any], target: Mapping[str, Any]) -> dict[str, Any]:
    """The partial update that turns `local` into `target`: target's values, and null for
    every key `local` has and `target` lacks (UpdateThingShadow deletes a key set to null).
    Empty when they are equal."""
    update: dict[str, Any] = {}
    for key in local:
        if key not in target:
            update[key] = None
    for key, value in target.items():
        mine = local.get(key, _MISSING)
        if isinstance(value, Mapping) and isinstance(mine, Mapping):
            nested = replacement(mine, value)
            if nested:
                update[key] = nested
        elif mine is _MISSING or mine != value or type(mine) is not type(value):
            update[key] = value
    return update


_MISSING = object()


def state_update(local: Mapping[str, Any], target: Mapping[str, Any]) -> dict[str, Any]:
    """Per section (desired, reported): a section the target lacks is deleted whole."""
    update: dict[str, Any] = {}
    for section in ("desired", "reported"):
        mine = local.get(section) or {}
        wanted = target.get(section)
        if not wanted:
            if mine:
                update[section] = None
            continue
        changes = replacement(mine, wanted)
        if changes:
            update[section] = changes
    return update


def converge(record: ShadowRecord, ports: Ports) -> str:
    """Make this region's shadow hold `record` (idempotent: no call when it already does)."""
    if record.status == Status.DELETED:
        return "DELETED" if ports.shadows.delete(record.thing_name, record.shadow_name) \
            else "IN_SYNC"
    local = ports.shadows.get(record.thing_name, record.shadow_name)
    update = state_update(local.state if local else {}, record.state or {})
    if not update:
        return "IN_SYNC"
    token = replica_client_token(record.writer_region, record.version)
    version = local.version if local else None
    if local and not fits(update_request(update, token, version)):
        # Values plus nulls for the keys to drop can exceed the quota although both shadows
        # fit: clear the changed sections, then write them whole (the second step is
        # conditional on the first; a device writing in between makes the record retry).
        ports.shadows.update(record.thing_name, record.shadow_name,
                             {section: None for section in update}, version, token)
        version = local.version + 1  # the shadow service adds one per accepted update
        update = {section: (record.state or {})[section] for section in update
                  if (record.state or {}).get(section)}
        if not update:
            return "APPLIED"
    ports.shadows.update(record.thing_name, record.shadow_name, update, version, token)
    return "APPLIED"


def _lenient(image: Mapping[str, Any] | None) -> ShadowRecord | None:
    if not image:
        return None
    try:
        return ShadowRecord.from_attribute_values(image)
    except RecordProblem:
        return None


def apply(new_image: Mapping[str, Any] | None, old_image: Mapping[str, Any] | None,
          ports: Ports) -> str:
    """One stream record of the table -> outcome. RecordProblem: malformed (dead-lettered)."""
    if not new_image:
        raise RecordProblem("the stream record has no new image")
    incoming = ShadowRecord.from_attribute_values(new_image)
    if incoming.writer_region == ports.region:
        return "OWN"  # the mapping's filter keeps these away
    current = ports.table.get(incoming.thing_name, incoming.shadow_name)
    if current is None:
        return "GONE"  # the tombstone expired
    if current.writer_region == ports.region:
        return "OWN_CURRENT"  # our newer write (or re-assertion) is the record now
    previous = _lenient(old_image)
    if previous is not None and previous.writer_region == ports.region \
            and previous.newer_than(current):
        # Our write lost DynamoDB's last-writer race to an older one: put it back.
        expires = int(ports.now()) + TOMBSTONE_SECONDS \
            if previous.status == Status.DELETED else None
        if not ports.table.put(previous.written(version=current.version + 1,
                                                expires_at=expires), current.version):
            raise Busy(f"{incoming.thing_name}: record changed while re-asserting")
        return "REASSERTED"
    if current.order_key > incoming.order_key:
        return "SUPERSEDED"  # the newer record's own stream record applies it
    return converge(current, ports)
