"""The device-state record: one item per device shadow (classic or named) in the device-data
global table, written by the region where the shadow changed and applied by every other
region (lambdas/shadow_replication, components/shadow_replication/README.md).

Key: `pk` = `shadow#<thingName>`, `sk` = `classic` or `named#<shadowName>`.

Conflict rule (per shadow document, not per key): the record with the greatest `orderKey`
wins everywhere. `orderKey` = origin shadow-service timestamp (epoch seconds, the
`timestamp` of the shadow's `/documents` or `/delete/accepted` message in the writer
region), then the writer region's name, then the writer region's shadow `version`. All three
are fixed width, so the string orders as the tuple: the last writer by the origin's clock,
ties broken by region name (greater wins), then by that region's own version (the shadow
service serialises one region's writes).

Standard library only (shipped in the Lambda layer, imported by the tools and the tests).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .inventory import REGION_PATTERN
from .things import THING_NAME_PATTERN

KEY_PREFIX = "shadow#"
CLASSIC_SORT_KEY = "classic"
NAMED_SORT_PREFIX = "named#"
# A tombstone stays this long so every region can tell the shadow was deleted (TTL then
# removes it; the table's TTL attribute is `expiresAt`, like the inventory's tombstones).
TOMBSTONE_SECONDS = 30 * 24 * 3600

# Every shadow write the replication makes carries a client token with this prefix; the
# capture rules drop documents that carry it (echo suppression). AWS IoT echoes the request's
# clientToken in the /documents message. 64 bytes is the token's limit (Device Shadow
# service documents, "Client tokens"); ours is far below.
REPLICA_TOKEN_PREFIX = "iotmr-replica:"
CLIENT_TOKEN_MAX_BYTES = 64

# Thing names: 1-128 of [a-zA-Z0-9:_-]; shadow names: 1-64 of [$a-zA-Z0-9:_-]
# (GetThingShadow / UpdateThingShadow, URI parameters thingName and shadowName).
_SHADOW_NAME = re.compile(r"[$a-zA-Z0-9:_-]{1,64}")
# A shadow's desired + reported state is at most 8 KB ('Diagnosing problems with shadows'),
# so a record fits a DynamoDB item easily.
MAX_STATE_BYTES = 8 * 1024
_WIDTH = 12


class Status:
    PRESENT = "PRESENT"
    DELETED = "DELETED"
    ALL = (PRESENT, DELETED)


class Attr:
    PK = "pk"
    SK = "sk"
    THING_NAME = "thingName"
    SHADOW_NAME = "shadowName"  # "" for the classic shadow
    STATUS = "status"
    STATE = "state"  # JSON text {"desired": ..., "reported": ...}; absent when DELETED
    ORIGIN_TIMESTAMP = "originTimestamp"
    ORIGIN_VERSION = "originVersion"
    WRITER_REGION = "writerRegion"
    ORDER_KEY = "orderKey"
    VERSION = "version"  # the item's own version: +1 per write, conditional on the read one
    EXPIRES_AT = "expiresAt"


class RecordProblem(ValueError):
    """A record or a captured message that breaks the contract (goes to the DLQ)."""


def partition_key(thing_name: str) -> str:
    return f"{KEY_PREFIX}{thing_name}"


def sort_key(shadow_name: str) -> str:
    return CLASSIC_SORT_KEY if not shadow_name else f"{NAMED_SORT_PREFIX}{shadow_name}"


def order_key(timestamp: int, region: str, origin_version: int) -> str:
    return f"{timestamp:0{_WIDTH}d}#{region}#{origin_version:0{_WIDTH}d}"


def replica_client_token(writer_region: str, item_version: int) -> str:
    token = f"{REPLICA_TOKEN_PREFIX}{writer_region}:{item_version}"
    if len(token.encode()) > CLIENT_TOKEN_MAX_BYTES:
        raise ValueError(f"client token {token!r} exceeds {CLIENT_TOKEN_MAX_BYTES} bytes")
    return token


def is_replica_token(token: object) -> bool:
    return isinstance(token, str) and token.startswith(REPLICA_TOKEN_PREFIX)


def update_request(state: Mapping[str, Any], client_token: str, expected_version: int | None) -> str:
    """The UpdateThingShadow payload the replication sends, compact. AWS counts the state
    document sent against the 8 KB quota as well as the shadow it leaves ('Diagnosing
    problems with shadows'); `fits` reads the less permissive way: the whole payload."""
    request: dict[str, Any] = {"state": dict(state), "clientToken": client_token}
    if expected_version is not None:
        request["version"] = expected_version
    return json.dumps(request, separators=(",", ":"), ensure_ascii=False)


def fits(request: str) -> bool:
    return len(request.encode()) <= MAX_STATE_BYTES


def _whole(value: Any, name: str, problems: list[str]) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str, Decimal)):
        problems.append(f"{name} must be a whole number >= 0, got {value!r}")
        return 0
    try:
        number = int(str(value))
    except ValueError:
        problems.append(f"{name} must be a whole number >= 0, got {value!r}")
        return 0
    if number < 0 or number >= 10 ** _WIDTH:
        problems.append(f"{name} must be between 0 and {10 ** _WIDTH - 1}, got {number}")
    return number


def _state(value: Any, problems: list[str]) -> dict[str, Any] | None:
    if not isinstance(value, Mapping):
        problems.append(f"state must be an object with desired/reported, got {type(value).__name__}")
        return None
    unknown = set(value) - {"desired", "reported"}
    if unknown:
        problems.append(f"state may hold only desired and reported, not {sorted(unknown)}")
    for section in ("desired", "reported"):
        if section in value and not isinstance(value[section], Mapping):
            problems.append(f"state.{section} must be an object")
    text = canonical_json(value)
    if len(text.encode()) > MAX_STATE_BYTES:
        problems.append(f"state is {len(text.encode())} bytes; a shadow holds at most "
                        f"{MAX_STATE_BYTES}")
    return {k: dict(v) for k, v in value.items() if k in ("desired", "reported")
            and isinstance(v, Mapping)}


def canonical_json(value: Any) -> str:
    # UTF-8, not \u escapes: the quota counts bytes, and an escape is up to 6 for one character.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class ShadowRecord:
    """One shadow's replicated state. Construct through `create` (checks every rule)."""

    thing_name: str
    shadow_name: str  # "" = classic
    status: str
    state: Mapping[str, Any] | None  # {"desired": {...}, "reported": {...}} when PRESENT
    origin_timestamp: int
    origin_version: int
    writer_region: str
    version: int = 0  # the item's version; 0 = not yet written
    expires_at: int | None = None

    @classmethod
    def create(cls, *, thing_name: Any, shadow_name: Any, status: Any, state: Any,
               origin_timestamp: Any, origin_version: Any, writer_region: Any,
               version: Any = 0, expires_at: Any = None) -> ShadowRecord:
        problems: list[str] = []
        if not isinstance(thing_name, str) or not THING_NAME_PATTERN.fullmatch(thing_name):
            problems.append(f"thingName must be 1-128 of [a-zA-Z0-9:_-], got {thing_name!r}")
        if not isinstance(shadow_name, str) or (shadow_name and
                                                not _SHADOW_NAME.fullmatch(shadow_name)):
            problems.append(f"shadowName must be '' (classic) or 1-64 of [$a-zA-Z0-9:_-], "
                            f"got {shadow_name!r}")
        if status not in Status.ALL:
            problems.append(f"status must be one of {Status.ALL}, got {status!r}")
        parsed_state = None
        if status == Status.PRESENT:
            parsed_state = _state(state, problems)
        elif state is not None:
            problems.append("a DELETED record carries no state")
        if not isinstance(writer_region, str) or not REGION_PATTERN.fullmatch(writer_region):
            problems.append(f"writerRegion must be an AWS region name, got {writer_region!r}")
        timestamp = _whole(origin_timestamp, "originTimestamp", problems)
        origin = _whole(origin_version, "originVersion", problems)
        item_version = _whole(version, "version", problems)
        expiry = None if expires_at is None else _whole(expires_at, "expiresAt", problems)
        if status == Status.DELETED and expires_at is None and item_version > 0:
            problems.append("a DELETED record needs expiresAt (its tombstone's TTL)")
        if problems:
            raise RecordProblem("; ".join(problems))
        return cls(thing_name=thing_name, shadow_name=shadow_name, status=status,
                   state=parsed_state, origin_timestamp=timestamp, origin_version=origin,
                   writer_region=writer_region, version=item_version, expires_at=expiry)

    @property
    def key(self) -> dict[str, str]:
        return {Attr.PK: partition_key(self.thing_name), Attr.SK: sort_key(self.shadow_name)}

    @property
    def order_key(self) -> str:
        return order_key(self.origin_timestamp, self.writer_region, self.origin_version)

    @property
    def content(self) -> tuple[str, str]:
        """What a shadow holds, for equality: status and canonical state."""
        return self.status, canonical_json(self.state or {})

    def newer_than(self, other: ShadowRecord | None) -> bool:
        return other is None or self.order_key > other.order_key

    def written(self, *, version: int, expires_at: int | None) -> ShadowRecord:
        return ShadowRecord(thing_name=self.thing_name, shadow_name=self.shadow_name,
                            status=self.status, state=self.state,
                            origin_timestamp=self.origin_timestamp,
                            origin_version=self.origin_version,
                            writer_region=self.writer_region, version=version,
                            expires_at=expires_at)

    def to_plain(self) -> dict[str, Any]:
        """The item as plain values (boto3 resource / Table API)."""
        item: dict[str, Any] = {
            **self.key, Attr.THING_NAME: self.thing_name, Attr.SHADOW_NAME: self.shadow_name,
            Attr.STATUS: self.status, Attr.ORIGIN_TIMESTAMP: self.origin_timestamp,
            Attr.ORIGIN_VERSION: self.origin_version, Attr.WRITER_REGION: self.writer_region,
            Attr.ORDER_KEY: self.order_key, Attr.VERSION: self.version}
        if self.state is not None:
            item[Attr.STATE] = canonical_json(self.state)
        if self.expires_at is not None:
            item[Attr.EXPIRES_AT] = self.expires_at
        return item

    @classmethod
    def from_plain(cls, item: Mapping[str, Any]) -> ShadowRecord:
        state_text = item.get(Attr.STATE)
        state: Any = None
        if state_text is not None:
            try:
                state = json.loads(str(state_text))
            except ValueError as err:
                raise RecordProblem(f"state is not JSON: {err}") from None
        record = cls.create(
            thing_name=item.get(Attr.THING_NAME), shadow_name=item.get(Attr.SHADOW_NAME),
            status=item.get(Attr.STATUS), state=state,
            origin_timestamp=item.get(Attr.ORIGIN_TIMESTAMP),
            origin_version=item.get(Attr.ORIGIN_VERSION),
            writer_region=item.get(Attr.WRITER_REGION), version=item.get(Attr.VERSION, 0),
            expires_at=item.get(Attr.EXPIRES_AT))
        if item.get(Attr.PK) != record.key[Attr.PK] or item.get(Attr.SK) != record.key[Attr.SK]:
            raise RecordProblem(f"key {item.get(Attr.PK)!r}/{item.get(Attr.SK)!r} does not name "
                                f"{record.thing_name!r}/{record.shadow_name!r}")
        if item.get(Attr.ORDER_KEY) not in (None, record.order_key):
            raise RecordProblem(f"orderKey {item.get(Attr.ORDER_KEY)!r} does not match "
                                f"{record.order_key!r}")
        return record

    @classmethod
    def from_attribute_values(cls, image: Mapping[str, Mapping[str, Any]]) -> ShadowRecord:
        """From a stream image / low-level item ({"S": ...}, {"N": ...})."""
        return cls.from_plain(plain_values(image))


def plain_values(image: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A stream image / low-level item of string and number attributes as plain values
    (every device-state record is made of those)."""
    plain: dict[str, Any] = {}
    for name, value in image.items():
        if not isinstance(value, Mapping) or len(value) != 1:
            raise RecordProblem(f"attribute {name!r} is not a DynamoDB attribute value")
        (kind, raw), = value.items()
        if kind not in ("S", "N"):
            raise RecordProblem(f"attribute {name!r} has type {kind}; expected S or N")
        plain[name] = raw
    return plain
