"""Device-organisation replication decisions (no AWS here: the ports are `data.py`'s classes
or fakes). The same discipline as the shadows (`logic.py`), for the registry's organisation
of a thing: its attributes and thing type, and its static thing-group memberships.

Capture (a registry event of this region: `$aws/events/thing/<thing>/created|updated`, or
`$aws/events/thingGroupMembership/thingGroup/<group>/thing/<thing>/added|removed`): the event
names one element's new value (the description, or one membership); it replaces that
element of the thing's record when it is newer than the element the record holds.
Apply (a record another region wrote, from this region's replica stream): make this
region's registry hold the table's *current* record, touching only the elements it names.

Echo suppression, by convergence: registry events carry no client token, so a change this
code applies is published like any other. Applying an element makes the registry publish an
event whose content *equals* the record's element (one UpdateThing call for attributes and
type together, one call per membership), and a captured element equal to the record's is
never written. Conflict rule and its limits: components/shadow_replication/README.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from lambdas.contracts.organisation import (
    MAX_GROUPS,
    Description,
    LocalOrganisation,
    Membership,
    OrganisationRecord,
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
        ports.registry.describe_thing(record.thing_name, wanted.attributes, wanted.thing_type,
                                      had_type=bool(local.thing_type))
        changed = True
    # Leave before joining: a thing belongs to at most MAX_GROUPS groups.
    for group, membership in sorted(record.groups.items()):
        if not membership.member and group in local.groups:
            ports.registry.leave(record.thing_name, group)
            changed = True
    for group, membership in sorted(record.groups.items()):
        if membership.member and group not in local.groups:
            ports.registry.join(record.thing_name, group)
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
        if description is not None or groups:
            merged = current.with_changes(region=ports.region, description=description,
                                          groups=groups, version=current.version + 1,
                                          now_ms=int(ports.now() * 1000))
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
    if operation == "DELETED":
        return "ORG_IGNORED"  # the thing's existence is the registry replication's
    key = order_key(_whole(event.get("timestamp"), "timestamp"), ports.region)
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
    for _ in range(CAPTURE_ATTEMPTS):
        current = ports.table.get(thing)
        base = current or OrganisationRecord.empty(thing, ports.region)
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
                                        version=base.version + 1,
                                        now_ms=int(ports.now() * 1000))
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
                                        version=base.version + 1,
                                        now_ms=int(ports.now() * 1000))
            if len(updated.member_of) > MAX_GROUPS:
                raise RecordProblem(f"{thing} would belong to {len(updated.member_of)} groups "
                                    f"across the regions; at most {MAX_GROUPS}")
        else:  # unreachable: an event is a THING or a MEMBERSHIP one
            raise RecordProblem(f"unknown event kind {kind!r}")
        if ports.table.put(updated, current.version if current else None):
            return "ORG_RECORDED"
    raise Busy(f"{thing}: the organisation record changed {CAPTURE_ATTEMPTS} times while "
               f"capturing")
