"""The device-inventory item: the replication contract (docs/data-model.md says why).

One item per device (key `thingName`) in the inventory global table. Every writer builds
its items here and nowhere else:

* first write: `InventoryItem.first(...)`, sent with `put_request(table, item)`
  (condition `attribute_not_exists(thingName)`);
* any change: `item.changed(...)` / `item.tombstone(...)` of the item the writer *read*,
  sent with `put_request(table, new, replaces=read)` (condition `version = :read`);

and every reader parses with `InventoryItem.from_attribute_values` (low-level client,
stream images) or `from_plain` (boto3 resource), which refuse an item that breaks the
contract with `ContractViolation`, naming each attribute and what is wrong with it.
Constructing an `InventoryItem` checks it, so no writer can build an item that breaks the
rules below.

The rules (`problems`): every attribute in `ATTRIBUTES` and nothing else; the types and
value sets given there; `caCertificateId` exactly when `issuer` is `OWN_CA`; `expiresAt`
exactly on a `DELETED` tombstone; `version` >= 1; timestamps ISO 8601 in UTC. The rules of a
change (`changed`): `version` + 1, `writerRegion` = the writer's region, `originRegion`
never changes, `REVOKED` is final (only `DELETED` may follow it), revoked certificate ids
only accumulate.

State machines cannot import this module: tests/test_contracts_writers.py executes the
declared JITR machine and checks what it wrote with `from_attribute_values`, and checks
every inventory attribute any declared machine reads against `ATTRIBUTES`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .certificates import id_mismatch
from .things import thing_name_problem

# A tombstone stays this long, then TTL removes it (TTL removals are not replicated).
TOMBSTONE_LIFETIME_SECONDS = 30 * 24 * 3600


class Attr:
    """The attribute names (what declared filters, conditions and machines refer to)."""

    THING_NAME = "thingName"
    CERTIFICATE_ID = "certificateId"
    CERTIFICATE_PEM = "certificatePem"
    ISSUER = "issuer"
    CA_CERTIFICATE_ID = "caCertificateId"
    ORIGIN_REGION = "originRegion"
    WRITER_REGION = "writerRegion"
    STATUS = "status"
    ONBOARDING = "onboarding"
    NOT_AFTER = "notAfter"
    VERSION = "version"
    UPDATED_AT = "updatedAt"
    REVOKED_CERTIFICATE_IDS = "revokedCertificateIds"
    EXPIRES_AT = "expiresAt"


class Status:
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"  # disabled; may come back
    REVOKED = "REVOKED"  # never usable again, anywhere
    DELETED = "DELETED"  # tombstone
    ALL = (ACTIVE, INACTIVE, REVOKED, DELETED)
    LIVE = (ACTIVE, INACTIVE)


class Issuer:
    OWN_CA = "OWN_CA"  # our intermediate CA: RegisterCertificate with the CA elsewhere
    AMAZON = "AMAZON"  # AWS IoT issued it: RegisterCertificateWithoutCA elsewhere
    ALL = (OWN_CA, AMAZON)


class Onboarding:
    JITR = "JITR"
    CVM = "CVM"
    FLEET = "FLEET"
    OPERATOR = "OPERATOR"
    ALL = (JITR, CVM, FLEET, OPERATOR)


@dataclass(frozen=True)
class Attribute:
    name: str
    type: str  # DynamoDB attribute type: S, N or SS
    presence: str  # "always", "OWN_CA only", "DELETED only" or "optional"
    meaning: str


ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute(Attr.THING_NAME, "S", "always",
              "partition key; the AWS IoT thing name (for our CA: the certificate's CN)"),
    Attribute(Attr.CERTIFICATE_ID, "S", "always",
              "AWS IoT certificate id (SHA-256 of the DER certificate: the same in every "
              "region)"),
    Attribute(Attr.CERTIFICATE_PEM, "S", "always",
              "the device certificate, so another region can register it without the device"),
    Attribute(Attr.ISSUER, "S", "always",
              "`OWN_CA` (our intermediate CA: registered elsewhere with `RegisterCertificate` "
              "+ the CA) or `AMAZON` (issued by AWS IoT: `RegisterCertificateWithoutCA`)"),
    Attribute(Attr.CA_CERTIFICATE_ID, "S", "OWN_CA only",
              "our CA's id as *described* on the certificate in the writer region"),
    Attribute(Attr.ORIGIN_REGION, "S", "always",
              "region where the device first registered (never changes)"),
    Attribute(Attr.WRITER_REGION, "S", "always",
              "region that wrote *this version*; replication applies only items whose "
              "`writerRegion` is another region"),
    Attribute(Attr.STATUS, "S", "always",
              "`ACTIVE`, `INACTIVE` (disabled, may come back), `REVOKED` (never usable again, "
              "anywhere) or `DELETED` (tombstone)"),
    Attribute(Attr.ONBOARDING, "S", "always", "`JITR`, `CVM`, `FLEET` or `OPERATOR`"),
    Attribute(Attr.NOT_AFTER, "S", "always", "certificate expiry (ISO 8601, UTC)"),
    Attribute(Attr.VERSION, "N", "always",
              "1 on the first write, +1 on every change (conditional write "
              "`version = :read`)"),
    Attribute(Attr.UPDATED_AT, "S", "always", "time of the last change (ISO 8601, UTC)"),
    Attribute(Attr.REVOKED_CERTIFICATE_IDS, "SS", "optional",
              "certificates of this thing revoked by rotation or re-issue: revoked in every "
              "region; only ever grows"),
    Attribute(Attr.EXPIRES_AT, "N", "DELETED only",
              "epoch seconds after which TTL removes the tombstone (TTL removals are not "
              "replicated into the registry)"),
)
ATTRIBUTE_TYPES: Mapping[str, str] = {a.name: a.type for a in ATTRIBUTES}
TABLE_KEY = Attr.THING_NAME
TTL_ATTRIBUTE = Attr.EXPIRES_AT

# InventoryItem field -> attribute name.
_FIELD_ATTRIBUTES: Mapping[str, str] = {
    "thing_name": "thingName", "certificate_id": "certificateId",
    "certificate_pem": "certificatePem", "issuer": Attr.ISSUER,
    "ca_certificate_id": "caCertificateId", "origin_region": "originRegion",
    "writer_region": "writerRegion", "status": Attr.STATUS, "onboarding": Attr.ONBOARDING,
    "not_after": "notAfter", "version": Attr.VERSION, "updated_at": "updatedAt",
    "revoked_certificate_ids": "revokedCertificateIds", "expires_at": "expiresAt",
}

CERTIFICATE_ID_PATTERN = re.compile(r"[0-9a-f]{64}")  # AWS IoT ids: lowercase hex SHA-256
# Every partition's region names (botocore's partitions: aws, aws-us-gov, aws-iso*).
REGION_PATTERN = re.compile(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}")
PEM_BEGIN, PEM_END = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"


class ContractViolation(ValueError):
    """An item that breaks the contract; `problems` names each attribute and what is wrong."""

    def __init__(self, problems: Iterable[str], thing_name: object = None) -> None:
        self.problems = tuple(problems)
        who = f"inventory item {thing_name!r}" if thing_name else "inventory item"
        super().__init__(f"{who} breaks the contract: " + "; ".join(self.problems))


def utc_timestamp_problem(value: object) -> str | None:
    """Why `value` is not an ISO 8601 time in UTC, or None."""
    if not isinstance(value, str):
        return f"must be an ISO 8601 string, got {type(value).__name__}"
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return f"{value!r} is not an ISO 8601 time"
    if moment.utcoffset() != dt.timedelta(0):
        return f"{value!r} is not in UTC (end it with Z or +00:00)"
    return None


def timestamp(moment: dt.datetime) -> str:
    """How Python writers stamp `updatedAt` and `notAfter`: UTC, milliseconds, `Z` (the
    form of Step Functions' `$$.State.EnteredTime`, which the JITR machine writes)."""
    utc = moment.astimezone(dt.timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _text_problem(value: object) -> str | None:
    return None if isinstance(value, str) and value else "must be a non-empty string"


def _one_of(allowed: tuple[str, ...]) -> Any:
    def check(value: object) -> str | None:
        return None if value in allowed else f"{value!r} is not one of {', '.join(allowed)}"
    return check


def certificate_id_problem(value: object) -> str | None:
    if isinstance(value, str) and CERTIFICATE_ID_PATTERN.fullmatch(value):
        return None
    return f"{value!r} is not an AWS IoT certificate id (64 lowercase hex digits)"


def region_problem(value: object) -> str | None:
    if isinstance(value, str) and REGION_PATTERN.fullmatch(value):
        return None
    return f"{value!r} is not an AWS region name"


def _pem_problem(value: object) -> str | None:
    if isinstance(value, str) and value.lstrip().startswith(PEM_BEGIN) and PEM_END in value:
        return None
    return "is not a PEM certificate (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----)"


def _positive_int_problem(value: object) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return None
    return f"{value!r} is not a whole number >= 1"


_VALUE_CHECKS: Mapping[str, Any] = {
    "thing_name": thing_name_problem,
    "certificate_id": certificate_id_problem,
    "certificate_pem": _pem_problem,
    "issuer": _one_of(Issuer.ALL),
    "origin_region": region_problem,
    "writer_region": region_problem,
    "status": _one_of(Status.ALL),
    "onboarding": _one_of(Onboarding.ALL),
    "not_after": utc_timestamp_problem,
    "version": _positive_int_problem,
    "updated_at": utc_timestamp_problem,
}


@dataclass(frozen=True)
class InventoryItem:
    """One version of a device's inventory item; constructing one checks the contract."""

    thing_name: str
    certificate_id: str
    certificate_pem: str
    issuer: str
    origin_region: str
    writer_region: str
    status: str
    onboarding: str
    not_after: str
    version: int
    updated_at: str
    ca_certificate_id: str | None = None
    revoked_certificate_ids: frozenset[str] = frozenset()
    expires_at: int | None = None

    def __post_init__(self) -> None:
        found = problems(self)
        if found:
            raise ContractViolation(found, self.thing_name)

    # --- the writers' operations ----------------------------------------------------------

    @classmethod
    def first(cls, *, thing_name: str, certificate_id: str, certificate_pem: str, issuer: str,
              onboarding: str, region: str, not_after: str, updated_at: str,
              ca_certificate_id: str | None = None) -> InventoryItem:
        """Version 1 of a new device, written in `region` (its origin and writer)."""
        return cls(thing_name=thing_name, certificate_id=certificate_id,
                   certificate_pem=certificate_pem, issuer=issuer, origin_region=region,
                   writer_region=region, status=Status.ACTIVE, onboarding=onboarding,
                   not_after=not_after, version=1, updated_at=updated_at,
                   ca_certificate_id=ca_certificate_id)

    def changed(self, *, writer_region: str, updated_at: str, status: str | None = None,
                certificate_id: str | None = None, certificate_pem: str | None = None,
                issuer: str | None = None, ca_certificate_id: str | None = None,
                onboarding: str | None = None, not_after: str | None = None,
                revoke: Iterable[str] = ()) -> InventoryItem:
        """The next version of this item as written in `writer_region`.

        A new certificate brings its own issuer (and CA id, for OWN_CA); omitted fields keep
        their value; `revoke` adds certificate ids to `revokedCertificateIds`. Leaving
        `DELETED` drops `expiresAt`; `REVOKED` may only become `DELETED`.
        """
        new_status = self.status if status is None else status
        if self.status == Status.REVOKED and new_status not in (Status.REVOKED, Status.DELETED):
            raise ContractViolation([f"status: REVOKED is final, it cannot become "
                                     f"{new_status}"], self.thing_name)
        new_issuer = self.issuer if issuer is None else issuer
        if certificate_id is not None and certificate_id != self.certificate_id:
            ca_id = ca_certificate_id  # a new certificate: its own CA id, or none
        else:
            ca_id = self.ca_certificate_id if ca_certificate_id is None else ca_certificate_id
        return dataclasses.replace(
            self, writer_region=writer_region, updated_at=updated_at, status=new_status,
            certificate_id=self.certificate_id if certificate_id is None else certificate_id,
            certificate_pem=self.certificate_pem if certificate_pem is None else certificate_pem,
            issuer=new_issuer, ca_certificate_id=ca_id if new_issuer == Issuer.OWN_CA else None,
            onboarding=self.onboarding if onboarding is None else onboarding,
            not_after=self.not_after if not_after is None else not_after,
            version=self.version + 1,
            revoked_certificate_ids=self.revoked_certificate_ids | frozenset(revoke),
            expires_at=self.expires_at if new_status == Status.DELETED else None)

    def tombstone(self, *, writer_region: str, updated_at: str, now_epoch: int) -> InventoryItem:
        """The `DELETED` version: every region deletes the device; TTL removes the item
        `TOMBSTONE_LIFETIME_SECONDS` later."""
        return dataclasses.replace(
            self.changed(writer_region=writer_region, updated_at=updated_at),
            status=Status.DELETED, expires_at=now_epoch + TOMBSTONE_LIFETIME_SECONDS)

    # --- representations -------------------------------------------------------------------

    def to_plain(self) -> dict[str, Any]:
        """As the boto3 resource API takes it (numbers as int, string sets as set)."""
        item: dict[str, Any] = {}
        for field_name, attribute in _FIELD_ATTRIBUTES.items():
            value = getattr(self, field_name)
            if value is None or value == frozenset():
                continue
            item[attribute] = set(value) if isinstance(value, frozenset) else value
        return item

    def to_attribute_values(self) -> dict[str, dict[str, Any]]:
        """As the low-level client and streams carry it."""
        item: dict[str, dict[str, Any]] = {}
        for attribute, value in self.to_plain().items():
            kind = ATTRIBUTE_TYPES[attribute]
            item[attribute] = {"SS": sorted(value)} if kind == "SS" else \
                {"N": str(value)} if kind == "N" else {"S": value}
        return item

    @classmethod
    def from_plain(cls, item: Mapping[str, Any]) -> InventoryItem:
        """From the boto3 resource API (numbers may be Decimal); refuses a broken item."""
        found = [f"{name}: is not an attribute of the inventory item"
                 for name in sorted(set(item) - set(ATTRIBUTE_TYPES))]
        values: dict[str, Any] = {}
        for field_name, attribute in _FIELD_ATTRIBUTES.items():
            if attribute not in item:
                continue
            value, kind = item[attribute], ATTRIBUTE_TYPES[attribute]
            if kind == "N":
                if isinstance(value, Decimal) and value == value.to_integral_value():
                    value = int(value)
                if not isinstance(value, int) or isinstance(value, bool):
                    found.append(f"{attribute}: must be a number (N), got {value!r}")
                    continue
            elif kind == "SS":
                if not isinstance(value, (set, frozenset, list, tuple)) or \
                        not all(isinstance(v, str) for v in value):
                    found.append(f"{attribute}: must be a string set (SS)")
                    continue
                value = frozenset(value)
            elif not isinstance(value, str):
                found.append(f"{attribute}: must be a string (S), got {type(value).__name__}")
                continue
            values[field_name] = value
        return cls._build(values, found, item.get(TABLE_KEY))

    @classmethod
    def from_attribute_values(cls, item: Mapping[str, Any]) -> InventoryItem:
        """From the low-level client or a stream image; refuses a broken item."""
        found: list[str] = []
        plain: dict[str, Any] = {}
        for attribute, typed in item.items():
            kind = ATTRIBUTE_TYPES.get(attribute)
            if kind is None:
                found.append(f"{attribute}: is not an attribute of the inventory item")
                continue
            if not isinstance(typed, Mapping) or set(typed) != {kind}:
                got = "/".join(sorted(typed)) if isinstance(typed, Mapping) else repr(typed)
                found.append(f"{attribute}: must be of DynamoDB type {kind}, got {got}")
                continue
            value = typed[kind]
            if kind == "N":
                try:
                    value = int(str(value))
                except ValueError:
                    found.append(f"{attribute}: {value!r} is not a whole number")
                    continue
            plain[attribute] = value
        if found:
            raise ContractViolation(found, plain.get(TABLE_KEY))
        return cls.from_plain(plain)

    @classmethod
    def _build(cls, values: dict[str, Any], found: list[str], thing_name: object
               ) -> InventoryItem:
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING]
        found += [f"{_FIELD_ATTRIBUTES[f]}: missing" for f in required if f not in values]
        if found:
            raise ContractViolation(found, thing_name)
        return cls(**values)


def problems(item: InventoryItem) -> list[str]:
    """Every way `item` breaks the contract (empty when it keeps it)."""
    found = []
    for field_name, check in _VALUE_CHECKS.items():
        problem = check(getattr(item, field_name))
        if problem:
            found.append(f"{_FIELD_ATTRIBUTES[field_name]}: {problem}")
    if not found:
        # The id every reader acts on is the PEM's (replication registers the PEM, quarantine
        # deactivates what it registered): an item naming another certificate is refused.
        mismatch = id_mismatch(item.certificate_id, item.certificate_pem)
        if mismatch:
            found.append(f"certificateId: {mismatch}")
    if item.issuer == Issuer.OWN_CA:
        if item.ca_certificate_id is None:
            found.append("caCertificateId: missing (required when issuer is OWN_CA)")
        elif certificate_id_problem(item.ca_certificate_id):
            found.append(f"caCertificateId: {item.ca_certificate_id!r} is not an AWS IoT CA "
                         "certificate id (64 lowercase hex digits)")
    elif item.ca_certificate_id is not None:
        found.append(f"caCertificateId: only OWN_CA items carry it (issuer is {item.issuer})")
    if item.status == Status.DELETED:
        if item.expires_at is None:
            found.append("expiresAt: missing (every DELETED tombstone expires)")
        elif _positive_int_problem(item.expires_at):
            found.append(f"expiresAt: {item.expires_at!r} is not epoch seconds")
    elif item.expires_at is not None:
        found.append(f"expiresAt: only DELETED tombstones expire (status is {item.status})")
    if not isinstance(item.revoked_certificate_ids, frozenset):
        found.append("revokedCertificateIds: must be a set of certificate ids")
    else:
        found += [f"revokedCertificateIds: {problem}" for problem in
                  filter(None, map(certificate_id_problem, sorted(item.revoked_certificate_ids)))]
    return found


def put_request(table: str, item: InventoryItem, *,
                replaces: InventoryItem | None = None) -> dict[str, Any]:
    """The PutItem parameters (low-level client; a TransactWriteItems `Put` alike) that write
    `item`: a first write only if no item exists, a change only over the version it was made
    from, so a writer that read a stale item writes nothing."""
    request: dict[str, Any] = {"TableName": table, "Item": item.to_attribute_values()}
    if replaces is None:
        if item.version != 1:
            raise ContractViolation([f"version: a first write is version 1, not {item.version}"],
                                    item.thing_name)
        request["ConditionExpression"] = f"attribute_not_exists({TABLE_KEY})"
        return request
    if item.thing_name != replaces.thing_name or item.version != replaces.version + 1 \
            or item.origin_region != replaces.origin_region:
        raise ContractViolation([f"version: a change of {replaces.thing_name} v"
                                 f"{replaces.version} is v{replaces.version + 1} of the same "
                                 "thing and origin"], item.thing_name)
    request.update({"ConditionExpression": "#version = :read",
                    "ExpressionAttributeNames": {"#version": Attr.VERSION},
                    "ExpressionAttributeValues": {":read": {"N": str(replaces.version)}}})
    return request


def plain_put_request(item: InventoryItem, *,
                      replaces: InventoryItem | None = None) -> dict[str, Any]:
    """`put_request` for the boto3 resource API (`Table.put_item(**...)`)."""
    request = put_request("", item, replaces=replaces)
    request.pop("TableName")
    request["Item"] = item.to_plain()
    if replaces is not None:
        request["ExpressionAttributeValues"] = {":read": replaces.version}
    return request


def markdown_table() -> str:
    """The attribute table of docs/data-model.md (a test keeps the document equal to it)."""
    rows = ["| attribute | type | present | meaning |", "|---|---|---|---|"]
    rows += [f"| `{a.name}` | {a.type} | {a.presence} | {a.meaning} |" for a in ATTRIBUTES]
    return "\n".join(rows)
