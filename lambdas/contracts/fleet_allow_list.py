"""A fleet-provisioning allow-list entry: one item of the shared provisioning table.

What the installer web app needs too (key, kind, states, the serial rule, the index, the
administrators' conditional writes) is in `fleet_allow_list.json`, which the app builds
from; this module reads it and adds the rest for the Python writers and readers.

The table (key `deviceUid`) also holds the certificate vending machine's device records,
keyed by the device's own uid. Allow-list entries never collide with them: their key is
`fleet#<serial>` (IAM pins the fleet functions to those keys with `dynamodb:LeadingKeys`)
and they carry `kind = FLEET_SERIAL`, checked on every read and conditional write.

Writers: administrators (`tools/installer.py admin allow-serial | disable-serial` and the web
app's allow-list view, both with `new_entry` / `update`: the entry starts ALLOWED), the
pre-provisioning hook (ALLOWED -> CLAIMED, with the claim attributes; in the same transaction
the records of the serial the new certificate and the claim certificate hold,
`fleet#certificate#<id>` and `fleet#claim#<id>`, `holding_problems`), the recorder
(CLAIMED -> PROVISIONED or CONFLICT, `certificateId` and `settledAt`). Readers: the hook,
the recorder's stream filter (declared by components/fleet_provisioning from `Attr`, `KIND`
and `State`), the recorder and the web app. `problems(entry)` states every rule; the tests
check what each real writer stored with it.

Timestamps are compared as strings in conditions (`claimedAt < :stale`), so they have
exactly one format: `timestamp()`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .inventory import CERTIFICATE_ID_PATTERN, certificate_id_problem, region_problem

_CONTRACT: Mapping[str, Any] = json.loads(
    (Path(__file__).with_name("fleet_allow_list.json")).read_text(encoding="utf-8"))

KEY_ATTRIBUTE: str = _CONTRACT["table"]["keyAttribute"]
TABLE_KEY = KEY_ATTRIBUTE
KEY_PREFIX: str = _CONTRACT["table"]["keyPrefix"]
IAM_LEADING_KEYS = f"{KEY_PREFIX}*"  # dynamodb:LeadingKeys pattern of every entry
KIND: str = _CONTRACT["kind"]
SERIAL_PATTERN = re.compile(_CONTRACT["serial"]["pattern"])  # use with fullmatch
SERIAL_RULE: str = _CONTRACT["serial"]["rule"]
SERIAL_MAX_LENGTH: int = _CONTRACT["serial"]["maxLength"]
# A claim connects as <prefix><serial>; AWS IoT client ids are at most 128 characters
# ("AWS IoT Core endpoints and quotas", message broker: client ID size), so prefix and serial
# lengths are bounded together. The stack's prefix follows this pattern (config check).
CLAIM_PREFIX_PATTERN = re.compile(_CONTRACT["claimClientIdPrefix"]["pattern"])
CLAIM_PREFIX_MAX_LENGTH: int = _CONTRACT["claimClientIdPrefix"]["maxLength"]
DEFAULT_CLAIM_PREFIX: str = _CONTRACT["claimClientIdPrefix"]["default"]
CLIENT_ID_MAX_LENGTH = 128
if SERIAL_MAX_LENGTH + CLAIM_PREFIX_MAX_LENGTH > CLIENT_ID_MAX_LENGTH:
    raise ValueError("fleet_allow_list.json: serial and claim prefix exceed a client id")
# One certificate holds one serial: the hook writes `fleet#certificate#<id>` (kind
# FLEET_CERTIFICATE, the serial) in the claim's transaction, only if absent or for the same
# serial; the recorder checks it in the transaction that records the device. The key is under
# `fleet#` (the functions' IAM leading keys) and can never be an entry's (serials have no '#').
CERTIFICATE_KEY_PREFIX: str = _CONTRACT["certificate"]["keyPrefix"]
CERTIFICATE_KIND: str = _CONTRACT["certificate"]["kind"]
# One claim, one device: the hook writes `fleet#claim#<claimCertificateId>` (kind FLEET_CLAIM,
# the serial) in the same transaction, only if absent or for the same serial, so a claim
# holder cannot take every other allow-listed serial within the claim's five minutes.
CLAIM_KEY_PREFIX: str = _CONTRACT["claimCertificate"]["keyPrefix"]
CLAIM_KIND: str = _CONTRACT["claimCertificate"]["kind"]
# The two items that record which serial a certificate holds: kind -> key prefix.
HOLDING_KEY_PREFIXES: Mapping[str, str] = {CERTIFICATE_KIND: CERTIFICATE_KEY_PREFIX,
                                           CLAIM_KIND: CLAIM_KEY_PREFIX}
# One window for the hook, the recorder and the docs (the contract's `claim.rule`): a claim
# this old may pass to another certificate only if AWS IoT's registry shows it never
# provisioned; the recorder stops waiting for it. It is the certificate ownership token's life
# ("Device provisioning MQTT API": the token expires after one hour), after which the claimed
# certificate can no longer be used with RegisterThing.
CLAIM_STALE_AFTER = dt.timedelta(seconds=int(_CONTRACT["claim"]["staleAfterSeconds"]))
CLAIM_RULE: str = _CONTRACT["claim"]["rule"]
# The provisioning template's parameter that carries the serial (the device sends it with
# RegisterThing; the hook pins it with `parameterOverrides`; the thing is named after it).
SERIAL_PARAMETER = "SerialNumber"

INDEX_NAME: str = _CONTRACT["index"]["name"]
INDEX_PARTITION_KEY: str = _CONTRACT["index"]["partitionKey"]
INDEX_SORT_KEY: str = _CONTRACT["index"]["sortKey"]
INDEX_PROJECTED: tuple[str, ...] = tuple(_CONTRACT["index"]["projected"])

WRITES = ("enable", "enableAndReset", "disable")


class Attr:
    DEVICE_UID = KEY_ATTRIBUTE  # fleet#<serial>
    KIND = "kind"  # FLEET_SERIAL
    SERIAL_NUMBER = "serialNumber"
    ENABLED = "enabled"  # BOOL: an administrator may switch an entry off
    STATE = "state"
    ALLOWED_AT = "allowedAt"
    CLAIM_CERTIFICATE_ID = "claimCertificateId"
    CLAIM_CERTIFICATE_PEM = "claimCertificatePem"
    CLAIM_CLIENT_ID = "claimClientId"
    CLAIMED_AT = "claimedAt"
    CLAIM_REGION = "claimRegion"
    CERTIFICATE_ID = "certificateId"  # the certificate the recorder settled the entry with
    SETTLED_AT = "settledAt"


class State:
    ALLOWED: str = _CONTRACT["states"]["allowed"]  # allowed; no claim yet
    CLAIMED: str = _CONTRACT["states"]["claimed"]  # the hook allowed one certificate
    PROVISIONED: str = _CONTRACT["states"]["provisioned"]  # the recorder recorded the device
    CONFLICT: str = _CONTRACT["states"]["conflict"]  # another device holds the thing name
    ALL = (ALLOWED, CLAIMED, PROVISIONED, CONFLICT)
    SETTLED = (PROVISIONED, CONFLICT)


# The items recording the serial a certificate (FLEET_CERTIFICATE) or a claim certificate
# (FLEET_CLAIM) holds: `holding_problems` states their rules.
HOLDING_ATTRIBUTES = (Attr.DEVICE_UID, Attr.KIND, Attr.SERIAL_NUMBER, Attr.CLAIMED_AT)

CLAIM_ATTRIBUTES = (Attr.CLAIM_CERTIFICATE_ID, Attr.CLAIM_CERTIFICATE_PEM, Attr.CLAIM_CLIENT_ID,
                    Attr.CLAIMED_AT, Attr.CLAIM_REGION)
SETTLED_ATTRIBUTES = (Attr.CERTIFICATE_ID, Attr.SETTLED_AT)
ATTRIBUTES = (Attr.DEVICE_UID, Attr.KIND, Attr.SERIAL_NUMBER, Attr.ENABLED, Attr.STATE,
              Attr.ALLOWED_AT, *CLAIM_ATTRIBUTES, *SETTLED_ATTRIBUTES)
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00")


class SerialError(ValueError):
    """A serial that cannot be a thing name; the message says the rule."""


def timestamp(moment: dt.datetime) -> str:
    """The one format of the entry's times (the writes' `:now`): UTC, milliseconds, `+00:00`
    (string order is time order)."""
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds")


def serial_problem(serial: object, claim_prefix: str | None = None) -> str | None:
    """Why `serial` can never be provisioned, or None. The serial *is* the thing name and the
    device's client id; with `claim_prefix` (the stack's claim client-id prefix) a serial that
    begins with it is refused too: every claim holder may connect as `<prefix>*`."""
    if not (isinstance(serial, str) and SERIAL_PATTERN.fullmatch(serial)):
        return f"serial {serial!r} is not valid: use {SERIAL_RULE}"
    if claim_prefix and serial.startswith(claim_prefix):
        return (f"serial {serial!r} begins with the claim client-id prefix {claim_prefix!r}: "
                "claim holders may connect as any such client id; choose another serial")
    return None


def claim_prefix_problem(prefix: object) -> str | None:
    if isinstance(prefix, str) and CLAIM_PREFIX_PATTERN.fullmatch(prefix):
        return None
    return (f"claim client-id prefix {prefix!r} is not valid: use 1 to "
            f"{CLAIM_PREFIX_MAX_LENGTH} characters of [A-Za-z0-9_-]")


def checked_serial(serial: str, claim_prefix: str | None = None) -> str:
    problem = serial_problem(serial, claim_prefix)
    if problem:
        raise SerialError(problem)
    return serial


def certificate_key(certificate_id: str) -> dict[str, str]:
    """The key of the item that records which serial a certificate holds."""
    if not CERTIFICATE_ID_PATTERN.fullmatch(certificate_id):
        raise ValueError(f"{certificate_id!r} is not an AWS IoT certificate id")
    return {KEY_ATTRIBUTE: f"{CERTIFICATE_KEY_PREFIX}{certificate_id}"}


def claim_key(claim_certificate_id: str) -> dict[str, str]:
    """The key of the item that records which serial a claim certificate holds."""
    if not CERTIFICATE_ID_PATTERN.fullmatch(claim_certificate_id):
        raise ValueError(f"{claim_certificate_id!r} is not an AWS IoT certificate id")
    return {KEY_ATTRIBUTE: f"{CLAIM_KEY_PREFIX}{claim_certificate_id}"}


def entry_key(serial: str) -> str:
    """`fleet#<serial>`, the entry's key value (SerialError for a serial that can never be
    provisioned)."""
    return f"{KEY_PREFIX}{checked_serial(serial)}"


def key(serial: str) -> dict[str, str]:
    """The entry's key (resource API types)."""
    return {KEY_ATTRIBUTE: entry_key(serial)}


def serial_of(key_value: str) -> str | None:
    """The serial an entry key names, or None for a key that is not an allow-list entry
    (e.g. a certificate's or a claim's record: `fleet#certificate#...`, `fleet#claim#...`)."""
    if not key_value.startswith(KEY_PREFIX):
        return None
    serial = key_value[len(KEY_PREFIX):]
    return None if serial_problem(serial) else serial


def used_placeholders(values: Mapping[str, Any], expressions: str) -> dict[str, Any]:
    """Only the placeholders the expressions use (DynamoDB rejects unused ones)."""
    return {token: value for token, value in values.items()
            if re.search(re.escape(token) + r"\b", expressions)}


def new_entry(serial: str, now: str) -> dict[str, Any]:
    """PutItem arguments (resource API types) that create the entry, only if absent."""
    values = {**_CONTRACT["writes"]["values"], ":now": now, ":serial": checked_serial(serial)}
    item = {**key(serial), **{attribute: values[token]
                              for attribute, token in _CONTRACT["writes"]["create"]["item"].items()}}
    return {"Item": item, "ConditionExpression": _CONTRACT["writes"]["create"]["condition"]}


def update(name: str, serial: str, now: str) -> dict[str, Any]:
    """UpdateItem arguments (resource API types) for one of WRITES."""
    if name not in WRITES:
        raise ValueError(f"no allow-list write {name!r}; one of {', '.join(WRITES)}")
    spec = _CONTRACT["writes"][name]
    expressions = f"{spec['update']} {spec['condition']}"
    return {
        "Key": key(serial),
        "UpdateExpression": spec["update"],
        "ConditionExpression": spec["condition"],
        "ExpressionAttributeNames": used_placeholders(_CONTRACT["writes"]["names"], expressions),
        "ExpressionAttributeValues": used_placeholders({**_CONTRACT["writes"]["values"], ":now": now},
                                                       expressions),
    }


def problems(entry: Mapping[str, Any]) -> list[str]:
    """Every way a stored entry (boto3 resource form) breaks the contract."""
    found = [f"{name}: is not an attribute of an allow-list entry"
             for name in sorted(set(entry) - set(ATTRIBUTES))]
    serial = entry.get(Attr.SERIAL_NUMBER)
    problem = serial_problem(serial)
    if problem:
        found.append(f"{Attr.SERIAL_NUMBER}: {problem}")
    elif entry.get(Attr.DEVICE_UID) != entry_key(str(serial)):
        found.append(f"{Attr.DEVICE_UID}: {entry.get(Attr.DEVICE_UID)!r} must be "
                     f"{entry_key(str(serial))!r}")
    if entry.get(Attr.KIND) != KIND:
        found.append(f"{Attr.KIND}: must be {KIND!r}, got {entry.get(Attr.KIND)!r}")
    if not isinstance(entry.get(Attr.ENABLED), bool):
        found.append(f"{Attr.ENABLED}: must be a boolean, got {entry.get(Attr.ENABLED)!r}")
    state = entry.get(Attr.STATE)
    if state not in State.ALL:
        found.append(f"{Attr.STATE}: {state!r} is not one of {', '.join(State.ALL)}")
    required = [Attr.ALLOWED_AT]
    if state == State.CLAIMED or state in State.SETTLED:
        required += CLAIM_ATTRIBUTES
    if state in State.SETTLED:
        required += SETTLED_ATTRIBUTES
    found += [f"{name}: missing (state {state})" for name in required if name not in entry]
    for name in (Attr.ALLOWED_AT, Attr.CLAIMED_AT, Attr.SETTLED_AT):
        if name in entry and not (isinstance(entry[name], str)
                                  and _TIMESTAMP.fullmatch(entry[name])):
            found.append(f"{name}: {entry[name]!r} is not a timestamp() "
                         "(YYYY-MM-DDTHH:MM:SS.mmm+00:00)")
    checks = {Attr.CLAIM_CERTIFICATE_ID: certificate_id_problem, Attr.CERTIFICATE_ID: certificate_id_problem,
              Attr.CLAIM_REGION: region_problem}
    found += [f"{name}: {problem}" for name, check in checks.items()
              if name in entry and (problem := check(entry[name]))]
    for name in (Attr.CLAIM_CERTIFICATE_PEM, Attr.CLAIM_CLIENT_ID):
        if name in entry and not (isinstance(entry[name], str) and entry[name]):
            found.append(f"{name}: must be a non-empty string")
    return found


def holding_problems(item: Mapping[str, Any]) -> list[str]:
    """Every way a stored certificate's or claim's record (boto3 resource form) breaks the
    contract: `<prefix of its kind><certificate id>`, a valid serial, when it was written."""
    found = [f"{name}: is not an attribute of a {' or '.join(HOLDING_KEY_PREFIXES)} item"
             for name in sorted(set(item) - set(HOLDING_ATTRIBUTES))]
    kind = item.get(Attr.KIND)
    prefix = HOLDING_KEY_PREFIXES.get(str(kind))
    if prefix is None:
        found.append(f"{Attr.KIND}: must be one of {', '.join(HOLDING_KEY_PREFIXES)}, "
                     f"got {kind!r}")
    else:
        key_value = str(item.get(Attr.DEVICE_UID, ""))
        if not (key_value.startswith(prefix)
                and CERTIFICATE_ID_PATTERN.fullmatch(key_value[len(prefix):])):
            found.append(f"{Attr.DEVICE_UID}: {item.get(Attr.DEVICE_UID)!r} must be "
                         f"'{prefix}<certificate id>' for kind {kind}")
    problem = serial_problem(item.get(Attr.SERIAL_NUMBER))
    if problem:
        found.append(f"{Attr.SERIAL_NUMBER}: {problem}")
    claimed_at = item.get(Attr.CLAIMED_AT)
    if not (isinstance(claimed_at, str) and _TIMESTAMP.fullmatch(claimed_at)):
        found.append(f"{Attr.CLAIMED_AT}: {claimed_at!r} is not a timestamp() "
                     "(YYYY-MM-DDTHH:MM:SS.mmm+00:00)")
    return found
