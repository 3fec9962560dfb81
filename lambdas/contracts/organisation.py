"""The device-organisation record: one item per thing in the device-data global table holding
what AWS IoT's registry says about how the thing is organised (its attributes, its thing
type, the static thing groups it belongs to), written by the region where that changed and
applied by every other region (lambdas/shadow_replication/organisation.py,
components/shadow_replication/README.md, "Device organisation").

Key: `pk` = `shadow#<thingName>` (the thing's device-state partition, so the replication
function's `dynamodb:LeadingKeys` condition scopes it too), `sk` = `organisation`.

Conflict rule: per *element*, last writer by the origin registry's clock. The elements are
the thing's description (attributes and thing type together: AWS IoT's thing event carries
both, and a type decides how many attributes the thing may have) and each group membership
on its own. Each element keeps its own `orderKey` = origin event timestamp (epoch ms, fixed
width) then writer region (greater wins a tie). So an attribute changed in A and a group
joined in B within the replication delay both survive; two changes of the same element keep
the later one. A removal is kept as an element with `member: false` (a tombstone) so an
older "added" delivered late cannot resurrect it. A deletion of the thing is a record-wide
tombstone, `deleted` = the deletion's order key: every element ordered before it is void
(attributes none, no groups), whoever writes it later, so a re-created thing of the same name
(another device) never inherits the old groups and their policies.

Applied log (`sk` = `applied#<region>`, same partition): what the apply side of <region> is
about to make its registry publish (per element: the value and the record's order key),
written before each registry call; the capture of that region consumes one matching entry
per registry event and drops the event as its echo (registry events carry no client token).
It has no `writerRegion`, so the replica-stream filter never hands it to a function.

Standard library only (shipped in the Lambda layer, imported by the tools and the tests).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from lambdas.contracts.inventory import REGION_PATTERN
from lambdas.contracts.shadows import RecordProblem, canonical_json, partition_key, plain_values
from lambdas.contracts.things import ATTRIBUTE_NAME_PATTERN, NAME_PATTERN

SORT_KEY = "organisation"
# Thing and group names: 1-128 of [a-zA-Z0-9:_-] (CreateThing, AddThingToThingGroup);
# attribute names 1-128 of [a-zA-Z0-9_.,@/:#-], values up to 800 of [a-zA-Z0-9_.,@/:#=[]-]
# (AttributePayload); thing type names 1-128 of [a-zA-Z0-9:_-] (CreateThingType).
_ATTRIBUTE_VALUE = re.compile(r"[a-zA-Z0-9_.,@/:#=\[\]-]{0,800}")
_ORDER_KEY = re.compile(r"\d{15}#[a-z0-9-]{1,32}")
# AWS IoT Core quotas (https://docs.aws.amazon.com/general/latest/gr/iot-core.html) and the
# thing-groups guide: a thing belongs to at most 10 thing groups; a thing without a thing
# type has at most 3 attributes, with one at most 50.
MAX_GROUPS = 10
MAX_ATTRIBUTES = {False: 3, True: 50}
# Removed memberships are kept this long (so a late "added" stays older), then pruned.
TOMBSTONE_MILLISECONDS = 30 * 24 * 3600 * 1000
_WIDTH = 15
# The registry replication marks the things it creates with this attribute (its CreateThing
# in components/replication/replication.asl.json: success means the thing is new). It is
# that machine's, not the device's organisation: never captured, never compared.
REPLICATION_MARKER = "replicatedBy"


# An applied entry not consumed within this long (its echo never came: the call failed after
# the entry was written, or events were off) is pruned, so it cannot swallow a later real
# change of the same value for longer than that.
PENDING_MILLISECONDS = 3600 * 1000
APPLIED_PREFIX = "applied#"
DESCRIPTION_ELEMENT = "thing"


def membership_element(group: str) -> str:
    return f"group:{group}"


def membership_value(member: bool) -> str:
    return "added" if member else "removed"


def organisation_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """A thing's attributes without the registry replication's marker."""
    return {k: v for k, v in attributes.items() if k != REPLICATION_MARKER}


class Attr:
    PK = "pk"
    SK = "sk"
    THING_NAME = "thingName"
    ORGANISATION = "organisation"  # JSON text {"thing": {...}, "groups": {...}}
    WRITER_REGION = "writerRegion"  # the region of the item's last write (stream filter)
    VERSION = "version"  # the item's own version: +1 per write, conditional on the read one
    APPLIED = "applied"  # applied log: JSON list of pending entries
    EXPIRES_AT = "expiresAt"  # the table's TTL attribute (applied log: an hour after its last entry)


def order_key(timestamp_ms: int, region: str) -> str:
    return f"{timestamp_ms:0{_WIDTH}d}#{region}"


def order_timestamp(key: str) -> int:
    return int(key.split("#", 1)[0])


@dataclass(frozen=True)
class Description:
    """The thing's attributes and thing type ("" = none), one element."""

    attributes: Mapping[str, str]
    thing_type: str
    order_key: str

    @property
    def content(self) -> str:
        return canonical_json({"attributes": dict(self.attributes), "type": self.thing_type})


@dataclass(frozen=True)
class Membership:
    member: bool
    order_key: str


def _problems_of_description(value: Any, problems: list[str]) -> Description | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        problems.append("thing must be an object with attributes, thingTypeName, orderKey")
        return None
    attributes = value.get("attributes") or {}
    thing_type = value.get("thingTypeName") or ""
    key = value.get("orderKey")
    if not isinstance(attributes, Mapping):
        problems.append("thing.attributes must be an object of strings")
        attributes = {}
    for name, text in attributes.items():
        if not isinstance(name, str) or not ATTRIBUTE_NAME_PATTERN.fullmatch(name):
            problems.append(f"attribute name {name!r}: 1-128 of [a-zA-Z0-9_.,@/:#-]")
        if not isinstance(text, str) or not _ATTRIBUTE_VALUE.fullmatch(text):
            problems.append(f"attribute {name}={text!r}: up to 800 of [a-zA-Z0-9_.,@/:#=[]-]")
    if not isinstance(thing_type, str) or (thing_type and not NAME_PATTERN.fullmatch(thing_type)):
        problems.append(f"thingTypeName must be '' or 1-128 of [a-zA-Z0-9:_-], got {thing_type!r}")
        thing_type = ""
    if len(attributes) > MAX_ATTRIBUTES[bool(thing_type)]:
        problems.append(f"{len(attributes)} attributes: a thing "
                        f"{'with' if thing_type else 'without'} a thing type has at most "
                        f"{MAX_ATTRIBUTES[bool(thing_type)]}")
    if not isinstance(key, str) or not _ORDER_KEY.fullmatch(key):
        problems.append(f"thing.orderKey must be <15-digit ms>#<region>, got {key!r}")
    return Description(attributes={str(k): str(v) for k, v in attributes.items()},
                       thing_type=str(thing_type), order_key=str(key))


@dataclass(frozen=True)
class OrganisationRecord:
    """One thing's replicated organisation. Construct through `create` (checks every rule)."""

    thing_name: str
    description: Description | None  # None: never captured (nothing to apply)
    groups: Mapping[str, Membership]  # group name -> membership (member false: removed)
    writer_region: str
    version: int = 0  # the item's version; 0 = not yet written
    deleted: str | None = None  # order key of the thing's last deletion: older elements void

    @classmethod
    def create(cls, *, thing_name: Any, description: Any, groups: Any, writer_region: Any,
               version: Any = 0, deleted: Any = None) -> OrganisationRecord:
        problems: list[str] = []
        if deleted is not None and (not isinstance(deleted, str)
                                    or not _ORDER_KEY.fullmatch(deleted)):
            problems.append(f"deleted must be <15-digit ms>#<region> or null, got {deleted!r}")
        if not isinstance(thing_name, str) or not NAME_PATTERN.fullmatch(thing_name):
            problems.append(f"thingName must be 1-128 of [a-zA-Z0-9:_-], got {thing_name!r}")
        if isinstance(description, Description):  # checked like a stored one
            description = {"attributes": dict(description.attributes),
                           "thingTypeName": description.thing_type,
                           "orderKey": description.order_key}
        parsed = _problems_of_description(description, problems)
        memberships: dict[str, Membership] = {}
        if not isinstance(groups, Mapping):
            problems.append("groups must be an object of group name -> {member, orderKey}")
            groups = {}
        for name, value in groups.items():
            if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
                problems.append(f"group name {name!r}: 1-128 of [a-zA-Z0-9:_-]")
                continue
            if isinstance(value, Membership):
                value = {"member": value.member, "orderKey": value.order_key}
            if not isinstance(value, Mapping) or not isinstance(value.get("member"), bool) \
                    or not isinstance(value.get("orderKey"), str) \
                    or not _ORDER_KEY.fullmatch(value["orderKey"]):
                problems.append(f"groups.{name} must be {{member: bool, orderKey: "
                                f"<15-digit ms>#<region>}}, got {value!r}")
                continue
            memberships[name] = Membership(member=value["member"], order_key=value["orderKey"])
        if sum(m.member for m in memberships.values()) > MAX_GROUPS:
            problems.append(f"a thing belongs to at most {MAX_GROUPS} thing groups")
        if not isinstance(writer_region, str) or not REGION_PATTERN.fullmatch(writer_region):
            problems.append(f"writerRegion must be an AWS region name, got {writer_region!r}")
        if isinstance(version, bool) or not isinstance(version, (int, Decimal, str)) \
                or not str(version).isdigit():
            problems.append(f"version must be a whole number >= 0, got {version!r}")
            version = 0
        if problems:
            raise RecordProblem("; ".join(problems))
        return cls(thing_name=thing_name, description=parsed, groups=memberships,
                   writer_region=writer_region, version=int(str(version)), deleted=deleted)

    @property
    def key(self) -> dict[str, str]:
        return {Attr.PK: partition_key(self.thing_name), Attr.SK: SORT_KEY}

    @property
    def member_of(self) -> frozenset[str]:
        return frozenset(g for g, m in self.groups.items() if m.member)

    def document(self) -> dict[str, Any]:
        thing = None if self.description is None else {
            "attributes": dict(self.description.attributes),
            "thingTypeName": self.description.thing_type,
            "orderKey": self.description.order_key}
        document: dict[str, Any] = {
            "thing": thing, "groups": {g: {"member": m.member, "orderKey": m.order_key}
                                       for g, m in sorted(self.groups.items())}}
        if self.deleted is not None:
            document["deleted"] = self.deleted
        return document

    def with_changes(self, *, region: str, description: Description | None = None,
                     groups: Mapping[str, Membership] | None = None,
                     version: int, now_ms: int, deleted: str | None = None
                     ) -> OrganisationRecord:
        """This record with the given elements replaced, written by `region`; every element
        ordered before the last deletion void (no attributes, not a member: the deletion's
        tombstone); removed memberships older than the tombstone period are pruned."""
        gone = max((k for k in (self.deleted, deleted) if k is not None), default=None)
        merged = {**self.groups, **(groups or {})}
        thing = description or self.description
        if gone is not None:
            merged = {g: m if m.order_key > gone else Membership(False, gone)
                      for g, m in merged.items()}
            if thing is None or thing.order_key <= gone:
                thing = Description(attributes={}, thing_type="", order_key=gone)
        # A deletion's tombstone is pruned with the removals it made (it has no age of its
        # own to keep: a re-created thing's elements are newer).
        kept = {g: m for g, m in merged.items()
                if m.member or now_ms - order_timestamp(m.order_key) < TOMBSTONE_MILLISECONDS}
        # Through `create`: a record is checked by the same rules when written as when read.
        return OrganisationRecord.create(thing_name=self.thing_name, description=thing,
                                         groups=kept, writer_region=region, version=version,
                                         deleted=gone)

    def before_deletion(self, key: str) -> bool:
        """An element ordered by `key` was made before the thing's last deletion."""
        return self.deleted is not None and key <= self.deleted

    def to_plain(self) -> dict[str, Any]:
        return {**self.key, Attr.THING_NAME: self.thing_name,
                Attr.ORGANISATION: canonical_json(self.document()),
                Attr.WRITER_REGION: self.writer_region, Attr.VERSION: self.version}

    @classmethod
    def empty(cls, thing_name: str, region: str) -> OrganisationRecord:
        return cls.create(thing_name=thing_name, description=None, groups={},
                          writer_region=region)

    @classmethod
    def from_plain(cls, item: Mapping[str, Any]) -> OrganisationRecord:
        try:
            document = json.loads(str(item.get(Attr.ORGANISATION)))
        except ValueError as err:
            raise RecordProblem(f"organisation is not JSON: {err}") from None
        if not isinstance(document, Mapping):
            raise RecordProblem("organisation must be an object with thing and groups")
        record = cls.create(thing_name=item.get(Attr.THING_NAME),
                            description=document.get("thing"),
                            groups=document.get("groups", {}),
                            writer_region=item.get(Attr.WRITER_REGION),
                            version=item.get(Attr.VERSION, 0),
                            deleted=document.get("deleted"))
        if item.get(Attr.PK) != record.key[Attr.PK] or item.get(Attr.SK) != SORT_KEY:
            raise RecordProblem(f"key {item.get(Attr.PK)!r}/{item.get(Attr.SK)!r} does not "
                                f"name {record.thing_name!r}/{SORT_KEY}")
        return record

    @classmethod
    def from_attribute_values(cls, image: Mapping[str, Mapping[str, Any]]) -> OrganisationRecord:
        return cls.from_plain(plain_values(image))


@dataclass(frozen=True)
class PendingApply:
    """One registry change the apply side is about to make in its region."""

    element: str  # DESCRIPTION_ELEMENT or membership_element(group)
    value: str  # Description.content, or membership_value(member)
    order_key: str  # the record element's order key (why it was applied)
    applied_ms: int  # when (the function's clock): pruned PENDING_MILLISECONDS later
    echo: str = ""  # the registry event's eventId that consumed it ("": still pending); kept
    #                 so a second delivery of that same event is recognised too


@dataclass(frozen=True)
class AppliedLog:
    """`applied#<region>`: the changes the apply side made in `region` whose registry event
    has not been seen yet (a multiset: the same value applied twice is expected twice)."""

    thing_name: str
    region: str
    entries: tuple[PendingApply, ...] = ()
    version: int = 0  # the item's version (0: absent), conditional writes

    def with_entry(self, entry: PendingApply) -> AppliedLog:
        return AppliedLog(self.thing_name, self.region,
                          (*self._fresh(entry.applied_ms), entry), self.version + 1)

    def without(self, entry: PendingApply) -> AppliedLog | None:
        """This log with one `entry` (the first equal) taken out; None if it has none."""
        if entry not in self.entries:
            return None
        rest = list(self.entries)
        rest.remove(entry)
        return AppliedLog(self.thing_name, self.region, tuple(rest), self.version + 1)

    def match(self, element: str, value: str, event_id: str, now_ms: int
              ) -> tuple[PendingApply, AppliedLog | None] | None:
        """(the entry this registry event is the echo of, the log with it consumed: None
        when this very event consumed it before, a duplicate delivery); None: not an echo."""
        fresh = self._fresh(now_ms)
        if event_id:
            seen = next((e for e in fresh if e.echo == event_id
                         and (e.element, e.value) == (element, value)), None)
            if seen is not None:
                return seen, None
        entry = next((e for e in fresh if not e.echo
                      and (e.element, e.value) == (element, value)), None)
        if entry is None:
            return None
        rest = list(fresh)
        rest[rest.index(entry)] = PendingApply(entry.element, entry.value, entry.order_key,
                                               entry.applied_ms, event_id or "consumed")
        return entry, AppliedLog(self.thing_name, self.region, tuple(rest), self.version + 1)

    @property
    def pending(self) -> tuple[PendingApply, ...]:
        return tuple(e for e in self.entries if not e.echo)

    def _fresh(self, now_ms: int) -> tuple[PendingApply, ...]:
        return tuple(e for e in self.entries if now_ms - e.applied_ms < PENDING_MILLISECONDS)

    @property
    def key(self) -> dict[str, str]:
        return {Attr.PK: partition_key(self.thing_name), Attr.SK: APPLIED_PREFIX + self.region}

    def to_plain(self) -> dict[str, Any]:
        newest = max((e.applied_ms for e in self.entries), default=0)
        return {**self.key, Attr.THING_NAME: self.thing_name, Attr.VERSION: self.version,
                Attr.APPLIED: canonical_json([
                    {"element": e.element, "value": e.value, "orderKey": e.order_key,
                     "appliedMs": e.applied_ms, "echo": e.echo} for e in self.entries]),
                Attr.EXPIRES_AT: (newest + PENDING_MILLISECONDS) // 1000 + 1}

    @classmethod
    def from_plain(cls, item: Mapping[str, Any], thing_name: str, region: str) -> AppliedLog:
        try:
            raw = json.loads(str(item.get(Attr.APPLIED)))
            entries = tuple(PendingApply(str(e["element"]), str(e["value"]),
                                         str(e["orderKey"]), int(e["appliedMs"]),
                                         str(e.get("echo") or "")) for e in raw)
            version = int(str(item.get(Attr.VERSION)))
        except (ValueError, TypeError, KeyError) as err:
            raise RecordProblem(f"applied log of {thing_name} in {region} is malformed: "
                                f"{err}") from None
        return cls(thing_name, region, entries, version)


def is_applied_image(image: Mapping[str, Any] | None) -> bool:
    """A stream image of an applied log (never replicated work: ignored everywhere else)."""
    sk = (image or {}).get(Attr.SK)
    return str(sk.get("S") if isinstance(sk, Mapping) else sk).startswith(APPLIED_PREFIX)


def is_organisation_image(image: Mapping[str, Any] | None) -> bool:
    """A stream image (or plain item) of an organisation record, not a shadow record."""
    if not image:
        return False
    sk = image.get(Attr.SK)
    return (sk.get("S") if isinstance(sk, Mapping) else sk) == SORT_KEY


@dataclass(frozen=True)
class LocalOrganisation:
    """What this region's registry says now (DescribeThing + ListThingGroupsForThing)."""

    attributes: Mapping[str, str]
    thing_type: str
    groups: frozenset[str] = field(default_factory=frozenset)
