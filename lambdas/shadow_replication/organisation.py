"""Device-organisation replication decisions (no AWS here: the ports are `data.py`'s classes
or fakes). The same discipline as the shadows (`logic.py`), for the registry's organisation
of a thing: its attributes and thing type, and its static thing-group memberships.

Capture (a registry event of this region: `$aws/events/thing/<thing>/created|updated`, or
`$aws/events/thingGroupMembership/thingGroup/<group>/thing/<thing>/added|removed`): the event
names one element's new value (the description, or one membership); it replaces that
element of the thing's record when it is newer than the element the record holds.
Apply (a record another region wrote, from this region's replica stream): make this
region's registry hold the table's *current* record, touching only the elements it names.

Echo suppression: registry events carry no client token, so a change this code applies is
published like any other. Before each registry call the apply writes what it is about to make
the registry publish (element, value) into this region's applied log; the capture drops an
event equal to a pending entry and consumes that entry (one entry per event, conditional
write), so a later real change, even to the same value, is captured. Comparing with the
record alone is not enough: an echo of an older value can carry a newer timestamp than the
record's next value and would win. Convergence (an event equal to the record changes
nothing) stays as the second line. A thing's deletion tombstones its whole organisation
(`deleted`): nothing from before it is ever applied to a re-created thing of that name.
Conflict rule and its limits: components/shadow_replication/README.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from lambdas.contracts.organisation import (
    DESCRIPTION_ELEMENT,
    MAX_GROUPS,
    AppliedLog,
    Description,
    LocalOrganisation,
    Membership,
    OrganisationRecord,
    PendingApply,
    membership_element,
    membership_value,
    order_key,
    organisation_attributes,
)
from lambdas.contracts.shadows import RecordProblem

CAPTURE_ATTEMPTS = 3
THING_OPERATIONS = ("CREATED", "UPDATED", "DELETED")
MEMBERSHIP_OPERATIONS = ("ADDED", "REMOVED")


class Busy(Exception):
    """A conditional write kept losing to concurrent writers: retried by the caller."""


class OrganisationTable(Protocol):
    def get(self, thing_name: str) -> OrganisationRecord | None:
        """The current record (consistent read) or None."""

    def put(self, record: OrganisationRecord, expected_version: int | None) -> bool:
        """Write `record` if the item's version is still `expected_version` (None: absent)."""


class AppliedLogs(Protocol):
    def get(self, thing_name: str) -> AppliedLog:
        """This region's applied log of the thing (consistent read; empty when absent)."""

    def put(self, log: AppliedLog) -> bool:
        """Write `log` if the item is still at `log.version - 1` (0: absent)."""


class NoAppliedLogs:
    """For callers that apply without a table (none today keeps it; tests)."""

    def get(self, thing_name: str) -> AppliedLog:
        return AppliedLog(thing_name, "")

    def put(self, log: AppliedLog) -> bool:
        return True


class Registry(Protocol):
    def describe(self, thing_name: str) -> LocalOrganisation | None:
        """The thing's attributes, type and groups here; None when the thing is not here."""

    def describe_thing(self, thing_name: str, attributes: Mapping[str, str],
                       thing_type: str, had_type: bool) -> None:
        """One UpdateThing: exactly these attributes and this type ("" = none)."""

    def join(self, thing_name: str, group: str) -> None: ...

    def leave(self, thing_name: str, group: str) -> None: ...


@dataclass(frozen=True)
class OrganisationPorts:
    region: str
    table: OrganisationTable
    registry: Registry
    now: Callable[[], float]
    applied: AppliedLogs = NoAppliedLogs()

    def now_ms(self) -> int:
        return int(self.now() * 1000)


def _whole(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RecordProblem(f"{name} must be a whole number >= 0 (epoch ms), got {value!r}")
    return value


def _name(event: Mapping[str, Any], field: str) -> str:
    value = event.get(field)
    if not isinstance(value, str) or not value:
        raise RecordProblem(f"{field} must be a name, got {value!r}")
    return value


def is_registry_event(event: Any) -> bool:
    return isinstance(event, Mapping) and event.get("kind") in ("THING", "MEMBERSHIP")


# --- apply (also used by capture when this region's change lost) ------------------------------

def _change_log(ports: OrganisationPorts, thing: str, entry: PendingApply, add: bool) -> None:
    for _ in range(CAPTURE_ATTEMPTS):
        log = ports.applied.get(thing)
        changed = log.with_entry(entry) if add else log.without(entry)
        if changed is None or ports.applied.put(changed):
            return
    raise Busy(f"{thing}: the applied log changed {CAPTURE_ATTEMPTS} times")


def _applying(ports: OrganisationPorts, thing: str, element: str, value: str, key: str,
              call: Callable[[], None]) -> None:
    """Log the change before the registry call (its event may be captured before the call
    returns); take the entry back when the call fails (no event will come)."""
    entry = PendingApply(element, value, key, ports.now_ms())
    _change_log(ports, thing, entry, add=True)
    try:
        call()
    except Exception:
        _change_log(ports, thing, entry, add=False)
        raise


def converge(record: OrganisationRecord, ports: OrganisationPorts) -> str:
    """Make this region's registry hold `record`'s elements (no call for an element that
    already does). A thing not here yet is WAITING: the registry replication creates it, and
    its `created` event pulls this record (`capture`); nothing is lost meanwhile."""
    local = ports.registry.describe(record.thing_name)
    if local is None:
        return "ORG_WAITING"
    changed = False
    wanted = record.description
    if wanted is not None and (organisation_attributes(local.attributes), local.thing_type) != \
            (dict(wanted.attributes), wanted.thing_type):
        _applying(ports, record.thing_name, DESCRIPTION_ELEMENT, wanted.content, wanted.order_key,
                  lambda: ports.registry.describe_thing(
                      record.thing_name, wanted.attributes, wanted.thing_type,
                      had_type=bool(local.thing_type)))
        changed = True
    # Leave before joining: a thing belongs to at most MAX_GROUPS groups.
    for member in (False, True):
        for group, membership in sorted(record.groups.items()):
            if membership.member != member or (group in local.groups) != (not member):
                continue
            action = ports.registry.join if member else ports.registry.leave
            _applying(ports, record.thing_name, membership_element(group),
                      membership_value(member), membership.order_key,
                      lambda a=action, g=group: a(record.thing_name, g))  # type: ignore[misc]
            changed = True
    return "ORG_APPLIED" if changed else "ORG_IN_SYNC"


def _lenient(image: Mapping[str, Any] | None) -> OrganisationRecord | None:
    if not image:
        return None
    try:
        return OrganisationRecord.from_attribute_values(image)
    except RecordProblem:
        return None


def _newer_elements(mine: OrganisationRecord, current: OrganisationRecord
                    ) -> tuple[Description | None, dict[str, Membership]]:
    description = mine.description if mine.description is not None and (
        current.description is None
        or mine.description.order_key > current.description.order_key) else None
    groups = {g: m for g, m in mine.groups.items()
              if g not in current.groups or m.order_key > current.groups[g].order_key}
    # Elements older than the current record's deletion stay in: `with_changes` turns them
    # into its tombstones, so every region also takes them out of its registry.
    return description, groups


def apply(new_image: Mapping[str, Any] | None, old_image: Mapping[str, Any] | None,
          ports: OrganisationPorts) -> str:
    """One stream record of an organisation item -> outcome. RecordProblem: dead-lettered."""
    if not new_image:
        raise RecordProblem("the stream record has no new image")
    incoming = OrganisationRecord.from_attribute_values(new_image)
    if incoming.writer_region == ports.region:
        return "ORG_OWN"
    current = ports.table.get(incoming.thing_name)
    if current is None:
        return "ORG_GONE"
    previous = _lenient(old_image)
    if previous is not None and previous.writer_region == ports.region:
        # DynamoDB's last writer replaced our write: put back the elements of ours that are
        # newer by the rule (the merge both regions then converge to).
        description, groups = _newer_elements(previous, current)
        deleted = previous.deleted if previous.deleted is not None and (
            current.deleted is None or previous.deleted > current.deleted) else None
        if description is not None or groups or deleted is not None:
            merged = current.with_changes(region=ports.region, description=description,
                                          groups=groups, version=current.version + 1,
                                          now_ms=ports.now_ms(), deleted=deleted)
            if not ports.table.put(merged, current.version):
                raise Busy(f"{incoming.thing_name}: record changed while re-asserting")
            converge(merged, ports)
            return "ORG_REASSERTED"
    if current.writer_region == ports.region:
        return "ORG_OWN_CURRENT"
    if current.version > incoming.version:
        return "ORG_SUPERSEDED"  # the newer record's own stream record applies it
    return converge(current, ports)


# --- capture ---------------------------------------------------------------------------------

def capture(event: Mapping[str, Any], ports: OrganisationPorts) -> str:
    """One registry event of this region -> outcome. RecordProblem: malformed."""
    kind = event.get("kind")
    thing = _name(event, "thingName")
    operation = event.get("operation")
    allowed = THING_OPERATIONS if kind == "THING" else MEMBERSHIP_OPERATIONS
    if operation not in allowed:
        raise RecordProblem(f"operation of a {kind} event must be one of {allowed}, "
                            f"got {operation!r}")
    key = order_key(_whole(event.get("timestamp"), "timestamp"), ports.region)
    if operation == "DELETED":
        return _capture_deletion(thing, key, ports)
    description: Description | None = None
    membership: tuple[str, Membership] | None = None
    if kind == "THING":
        attributes = event.get("attributes") or {}
        if not isinstance(attributes, Mapping):
            raise RecordProblem(f"attributes must be an object, got {attributes!r}")
        attributes = organisation_attributes(attributes)
        # Validated like a record's element (names, values, the attribute quota).
        description = OrganisationRecord.create(
            thing_name=thing, description={"attributes": dict(attributes),
                                           "thingTypeName": event.get("thingTypeName") or "",
                                           "orderKey": key},
            groups={}, writer_region=ports.region).description
    else:
        membership = (_name(event, "groupName"), Membership(operation == "ADDED", key))
    # The apply never creates a thing: only an `updated` event can echo its description.
    if _consumed_echo(thing, description if operation == "UPDATED" else None, membership,
                      event.get("eventId"), ports):
        return "ORG_ECHO"
    for _ in range(CAPTURE_ATTEMPTS):
        current = ports.table.get(thing)
        base = current or OrganisationRecord.empty(thing, ports.region)
        if base.before_deletion(key):
            return "ORG_BEFORE_DELETION"  # of a thing deleted since: never recorded
        if description is not None:
            held = base.description
            if operation == "CREATED" and not description.attributes \
                    and not description.thing_type:
                # A bare creation (the registry replication creating the thing here: only
                # its marker; or a new device) states no organisation: pull the record's.
                if current is None or current.writer_region == ports.region:
                    return "ORG_NOTHING"
                return "ORG_PULLED" if converge(current, ports) == "ORG_APPLIED" \
                    else "ORG_IN_SYNC"
            if held is not None and held.content == description.content:
                return "ORG_UNCHANGED"  # an echo of an applied record, or a duplicate
            if held is not None and held.order_key >= description.order_key:
                converge(base, ports)  # this change is older than the record: back to it
                return "ORG_LOST_CONVERGED"
            updated = base.with_changes(region=ports.region, description=description,
                                        version=base.version + 1, now_ms=ports.now_ms())
        elif membership is not None:
            group, change = membership
            held_membership = base.groups.get(group)
            # A removal the record knows nothing of is still recorded (its tombstone keeps an
            # older "added" delivered late from resurrecting it).
            if held_membership is not None and held_membership.member == change.member:
                return "ORG_UNCHANGED"
            if held_membership is not None and held_membership.order_key >= change.order_key:
                converge(base, ports)
                return "ORG_LOST_CONVERGED"
            updated = base.with_changes(region=ports.region, groups={group: change},
                                        version=base.version + 1, now_ms=ports.now_ms())
            if len(updated.member_of) > MAX_GROUPS:
                raise RecordProblem(f"{thing} would belong to {len(updated.member_of)} groups "
                                    f"across the regions; at most {MAX_GROUPS}")
        else:  # unreachable: an event is a THING or a MEMBERSHIP one
            raise RecordProblem(f"unknown event kind {kind!r}")
        if ports.table.put(updated, current.version if current else None):
            return "ORG_RECORDED"
    raise Busy(f"{thing}: the organisation record changed {CAPTURE_ATTEMPTS} times while "
               f"capturing")


def _consumed_echo(thing: str, description: Description | None,
                   membership: tuple[str, Membership] | None, event_id: Any,
                   ports: OrganisationPorts) -> bool:
    """True when the event is the echo of a change this region's apply made: its pending
    entry is consumed (conditionally: two deliveries of one echo consume one entry)."""
    if description is not None:
        element, value = DESCRIPTION_ELEMENT, description.content
    elif membership is not None:
        element, value = membership_element(membership[0]), membership_value(membership[1].member)
    else:
        return False
    event_id = event_id if isinstance(event_id, str) else ""
    for _ in range(CAPTURE_ATTEMPTS):
        found = ports.applied.get(thing).match(element, value, event_id, ports.now_ms())
        if found is None:
            return False
        _, consumed = found
        if consumed is None or ports.applied.put(consumed):
            return True
    raise Busy(f"{thing}: the applied log changed {CAPTURE_ATTEMPTS} times while capturing")


def _capture_deletion(thing: str, key: str, ports: OrganisationPorts) -> str:
    """The thing was deleted here: tombstone its whole organisation at the deletion's order
    key (every element older is void everywhere), so a re-created thing of the same name,
    another device, never gets the old groups or attributes back."""
    for _ in range(CAPTURE_ATTEMPTS):
        current = ports.table.get(thing)
        if current is not None and current.deleted is not None and current.deleted >= key:
            return "ORG_UNCHANGED"  # a duplicate, or a later deletion is already recorded
        base = current or OrganisationRecord.empty(thing, ports.region)
        updated = base.with_changes(region=ports.region, version=base.version + 1,
                                    now_ms=ports.now_ms(), deleted=key)
        if ports.table.put(updated, current.version if current else None):
            # A thing re-created here before this event arrived may have pulled the old
            # record: take it out of the groups the deletion voided.
            local = ports.registry.describe(thing)
            for group in sorted(local.groups if local else ()):
                membership = updated.groups.get(group)
                if membership is not None and not membership.member \
                        and membership.order_key == key:
                    _applying(ports, thing, membership_element(group), membership_value(False),
                              key, lambda g=group: ports.registry.leave(thing, g))  # type: ignore[misc]
            return "ORG_DELETED"
    raise Busy(f"{thing}: the organisation record changed {CAPTURE_ATTEMPTS} times while "
               f"deleting")
