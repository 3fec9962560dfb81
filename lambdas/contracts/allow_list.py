"""A fleet-provisioning allow-list entry: one item of the shared provisioning table.

The table (key `deviceUid`) also holds the certificate vending machine's device records,
keyed by the device's own uid. Allow-list entries never collide with them: their key is
`fleet#<serial>` (IAM pins the fleet functions to those keys with `dynamodb:LeadingKeys`)
and they carry `kind = FLEET_SERIAL`, checked on every read and conditional write.

Writers: `tools/installer.py admin allow-serial | disable-serial` (`allowed_entry`, the
entry's life starts ALLOWED), the pre-provisioning hook (ALLOWED -> CLAIMED, with the claim
attributes), the recorder (CLAIMED -> PROVISIONED or CONFLICT, `certificateId` and
`settledAt`). Readers: the hook, the recorder's stream filter (declared by
components/fleet_provisioning from `Attr`, `KIND` and `State`) and the recorder.
`problems(entry)` states every rule; tests run each real writer and check what it stored.

Timestamps are compared as strings in conditions (`claimedAt < :stale`), so they have
exactly one format: `timestamp()`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from .inventory import CERTIFICATE_ID_PATTERN, REGION_PATTERN
from .things import thing_name_problem

TABLE_KEY = "deviceUid"
KEY_PREFIX = "fleet#"
IAM_LEADING_KEYS = f"{KEY_PREFIX}*"  # dynamodb:LeadingKeys pattern of every entry
KIND = "FLEET_SERIAL"
# The provisioning template's parameter that carries the serial (the device sends it with
# RegisterThing; the hook pins it with `parameterOverrides`; the thing is named after it).
SERIAL_PARAMETER = "SerialNumber"


class Attr:
    DEVICE_UID = TABLE_KEY  # fleet#<serial>
    KIND = "kind"  # FLEET_SERIAL
    SERIAL_NUMBER = "serialNumber"
    ENABLED = "enabled"  # BOOL: an operator may switch an entry off
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
    ALLOWED = "ALLOWED"  # an operator allowed the serial; no claim yet
    CLAIMED = "CLAIMED"  # the hook allowed one certificate; the recorder has not confirmed it
    PROVISIONED = "PROVISIONED"  # the recorder saw the device provisioned and recorded it
    CONFLICT = "CONFLICT"  # the recorder found another device under this thing name
    ALL = (ALLOWED, CLAIMED, PROVISIONED, CONFLICT)
    SETTLED = (PROVISIONED, CONFLICT)


CLAIM_ATTRIBUTES = (Attr.CLAIM_CERTIFICATE_ID, Attr.CLAIM_CERTIFICATE_PEM, Attr.CLAIM_CLIENT_ID,
                    Attr.CLAIMED_AT, Attr.CLAIM_REGION)
SETTLED_ATTRIBUTES = (Attr.CERTIFICATE_ID, Attr.SETTLED_AT)
ATTRIBUTES = (Attr.DEVICE_UID, Attr.KIND, Attr.SERIAL_NUMBER, Attr.ENABLED, Attr.STATE,
              Attr.ALLOWED_AT, *CLAIM_ATTRIBUTES, *SETTLED_ATTRIBUTES)
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00")


def timestamp(moment: dt.datetime) -> str:
    """The one format of the entry's times: UTC, milliseconds, `+00:00` (string order is
    time order)."""
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds")


def key(serial: str) -> str:
    return f"{KEY_PREFIX}{serial}"


def serial_of(entry_key: str) -> str | None:
    """The serial an entry key names, or None for a key that is not an allow-list entry."""
    return entry_key[len(KEY_PREFIX):] if entry_key.startswith(KEY_PREFIX) else None


def serial_problem(serial: object) -> str | None:
    """Why `serial` can never be provisioned, or None. The serial *is* the thing name."""
    problem = thing_name_problem(serial)
    return None if problem is None else f"serial {serial!r} {problem} (it is the thing name)"


def allowed_entry(serial: str, now: dt.datetime) -> dict[str, Any]:
    """A new entry: the serial may be provisioned once (boto3 resource form)."""
    entry = {Attr.DEVICE_UID: key(serial), Attr.KIND: KIND, Attr.SERIAL_NUMBER: serial,
             Attr.ENABLED: True, Attr.STATE: State.ALLOWED, Attr.ALLOWED_AT: timestamp(now)}
    found = problems(entry)
    if found:
        raise ValueError("; ".join(found))
    return entry


def problems(entry: Mapping[str, Any]) -> list[str]:
    """Every way a stored entry (boto3 resource form) breaks the contract."""
    found = [f"{name}: is not an attribute of an allow-list entry"
             for name in sorted(set(entry) - set(ATTRIBUTES))]
    serial = entry.get(Attr.SERIAL_NUMBER)
    problem = serial_problem(serial)
    if problem:
        found.append(f"{Attr.SERIAL_NUMBER}: {problem}")
    elif entry.get(Attr.DEVICE_UID) != key(str(serial)):
        found.append(f"{Attr.DEVICE_UID}: {entry.get(Attr.DEVICE_UID)!r} must be "
                     f"{key(str(serial))!r}")
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
    for name in (Attr.CLAIM_CERTIFICATE_ID, Attr.CERTIFICATE_ID):
        if name in entry and not (isinstance(entry[name], str)
                                  and CERTIFICATE_ID_PATTERN.fullmatch(entry[name])):
            found.append(f"{name}: {entry[name]!r} is not an AWS IoT certificate id")
    if Attr.CLAIM_REGION in entry and not (isinstance(entry[Attr.CLAIM_REGION], str)
                                           and REGION_PATTERN.fullmatch(entry[Attr.CLAIM_REGION])):
        found.append(f"{Attr.CLAIM_REGION}: {entry[Attr.CLAIM_REGION]!r} is not a region")
    for name in (Attr.CLAIM_CERTIFICATE_PEM, Attr.CLAIM_CLIENT_ID):
        if name in entry and not (isinstance(entry[name], str) and entry[name]):
            found.append(f"{name}: must be a non-empty string")
    return found
