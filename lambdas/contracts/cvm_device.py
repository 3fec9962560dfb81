"""A certificate vending machine device record: one item of the shared provisioning table.

The table (key `deviceUid`) also holds the fleet allow-list (`fleet_allow_list.py`): its keys
begin with `fleet#`, which no device uid can (`things.device_uid_problem`: no `#`), so a key
that passes the uid rule always names a device record. Every writer checks a uid with that
rule before it reads or writes (the function's request model, the tool's `checked_uid`).

Writers: the manufacturer's tool (`tools/manufacturer.py`: import with `new_record`, enable,
disable, rotate-salt's rekey, revoke, reissue) and the registration function (claim, release,
commit, rotation: `lambdas/cvm_registration/dal/aws.py`). Readers: both, and the local run's
CVM journey. `problems(item)` states every rule; the tests check what each real writer stored
with it. The states and the flow: components/cvm/README.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .fleet_allow_list import KEY_ATTRIBUTE, used_placeholders
from .inventory import certificate_id_problem, region_problem
from .things import THING_NAME_PATTERN, device_uid_problem

TABLE_KEY = KEY_ATTRIBUTE
# A batch names the salt that derives its devices' tokens (the salts secret's keys).
BATCH_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # fullmatch
BATCH_RULE = "1-64 of A-Z a-z 0-9 _ . -"
# The second identifier a device may have been imported with (a MAC address, ...).
UID2_PATTERN = r"^[A-Za-z0-9:_.-]+$"
UID2_MAX_LENGTH = 128


class Attr:
    DEVICE_UID = KEY_ATTRIBUTE
    DEVICE_UID_2 = "deviceUid2"
    BATCH = "batch"
    SALT_VERSION = "saltVersion"
    ENABLED = "enabled"  # BOOL (the seed stored "1" and compared 1)
    STATE = "registrationState"
    IMPORTED_AT = "importedAt"
    UPDATED_AT = "updatedAt"  # the last operator change
    CLAIM_ID = "claimId"
    CLAIMED_AT = "claimedAt"  # epoch milliseconds (compared as numbers)
    CLAIM_REGION = "claimRegion"
    ATTEMPTS = "attempts"
    THING_NAME = "thingName"
    CERTIFICATE_ID = "certificateId"
    REGISTERED_AT = "registeredAt"
    REGISTERED_REGION = "registeredRegion"
    REOPENED_FROM = "reopenedFrom"  # the certificate an operator's reissue revoked
    PREVIOUS_CERTIFICATE_ID = "previousCertificateId"  # the certificate a rotation replaced
    ROTATED_AT = "rotatedAt"


class State:
    UNREGISTERED = "UNREGISTERED"
    CLAIMED = "CLAIMED"  # a request holds the record; others get 409 until it ends
    REGISTERED = "REGISTERED"
    REVOKED = "REVOKED"  # an operator revoked the device: it may never register again
    ALL = (UNREGISTERED, CLAIMED, REGISTERED, REVOKED)


CLAIM_ATTRIBUTES = (Attr.CLAIM_ID, Attr.CLAIMED_AT, Attr.CLAIM_REGION)
REGISTERED_ATTRIBUTES = (Attr.THING_NAME, Attr.CERTIFICATE_ID, Attr.REGISTERED_AT,
                         Attr.REGISTERED_REGION)
# attribute -> its DynamoDB type
TYPES: Mapping[str, str] = {
    Attr.DEVICE_UID: "S", Attr.DEVICE_UID_2: "S", Attr.BATCH: "S", Attr.SALT_VERSION: "N",
    Attr.ENABLED: "BOOL", Attr.STATE: "S", Attr.IMPORTED_AT: "S", Attr.UPDATED_AT: "S",
    Attr.CLAIM_ID: "S", Attr.CLAIMED_AT: "N", Attr.CLAIM_REGION: "S", Attr.ATTEMPTS: "N",
    Attr.THING_NAME: "S", Attr.CERTIFICATE_ID: "S", Attr.REGISTERED_AT: "S",
    Attr.REGISTERED_REGION: "S", Attr.REOPENED_FROM: "S", Attr.PREVIOUS_CERTIFICATE_ID: "S",
    Attr.ROTATED_AT: "S"}
_UID2 = re.compile(UID2_PATTERN)  # fullmatch: `$` alone also matches before a final "\n"
# The placeholder every writer's expressions use for each attribute.
PLACEHOLDERS: Mapping[str, str] = {
    "#uid": Attr.DEVICE_UID, "#uid2": Attr.DEVICE_UID_2, "#batch": Attr.BATCH,
    "#version": Attr.SALT_VERSION, "#enabled": Attr.ENABLED, "#state": Attr.STATE,
    "#updatedAt": Attr.UPDATED_AT, "#claim": Attr.CLAIM_ID, "#claimedAt": Attr.CLAIMED_AT,
    "#claimRegion": Attr.CLAIM_REGION, "#attempts": Attr.ATTEMPTS, "#thing": Attr.THING_NAME,
    "#certificateId": Attr.CERTIFICATE_ID, "#registeredAt": Attr.REGISTERED_AT,
    "#registeredRegion": Attr.REGISTERED_REGION, "#reopened": Attr.REOPENED_FROM,
    "#previous": Attr.PREVIOUS_CERTIFICATE_ID, "#rotatedAt": Attr.ROTATED_AT}


class RecordError(ValueError):
    """A uid or batch no device record can have; the message names it and the rule."""


def checked_uid(uid: str, prefix: str = "") -> str:
    """`uid`, or RecordError naming the rule (with the stack's thing-name prefix, which counts
    in the thing name's length)."""
    problem = device_uid_problem(uid, prefix)
    if problem:
        raise RecordError(f"device_uid {uid[:40]!r} {problem}")
    return uid


def batch_problem(batch: object) -> str | None:
    if isinstance(batch, str) and BATCH_PATTERN.fullmatch(batch):
        return None
    return f"batch {batch!r} must be {BATCH_RULE}"


def uid2_problem(uid2: object) -> str | None:
    if isinstance(uid2, str) and _UID2.fullmatch(uid2) and len(uid2) <= UID2_MAX_LENGTH:
        return None
    return f"device_uid_2 {uid2!r} must be 1-{UID2_MAX_LENGTH} of A-Z a-z 0-9 : _ . -"


def expression_names(*expressions: str) -> dict[str, str]:
    """ExpressionAttributeNames for the placeholders the expressions use (DynamoDB refuses
    unused ones)."""
    return used_placeholders(PLACEHOLDERS, " ".join(expressions))


def expressions(update: str | None, condition: str | None = None) -> dict[str, Any]:
    """UpdateExpression / ConditionExpression (those given) with the names their placeholders
    stand for: the arguments of an UpdateItem, PutItem or a transaction's Update."""
    given = {k: v for k, v in (("UpdateExpression", update), ("ConditionExpression", condition)) if v}
    return {**given, "ExpressionAttributeNames": expression_names(*given.values())}


def key(uid: str, prefix: str = "") -> dict[str, dict[str, str]]:
    """The record's key (low-level client types); RecordError for a uid no device under the
    thing-name `prefix` can have."""
    return {TABLE_KEY: {"S": checked_uid(uid, prefix)}}


def new_record(uid: str, batch: str, salt_version: int, imported_at: str,
               uid2: str | None = None, *, enabled: bool = True) -> dict[str, Any]:
    """The item an import writes (low-level client types): UNREGISTERED, enabled."""
    for problem in (batch_problem(batch), None if uid2 is None else uid2_problem(uid2)):
        if problem:
            raise RecordError(problem)
    item: dict[str, Any] = {
        **key(uid), Attr.BATCH: {"S": batch}, Attr.SALT_VERSION: {"N": str(salt_version)},
        Attr.ENABLED: {"BOOL": enabled}, Attr.STATE: {"S": State.UNREGISTERED},
        Attr.IMPORTED_AT: {"S": imported_at}}
    if uid2 is not None:
        item[Attr.DEVICE_UID_2] = {"S": uid2}
    return item


def value(item: Mapping[str, Any], name: str) -> Any:
    """The attribute's plain value in a low-level item (None: absent or not of its type)."""
    held = item.get(name)
    return held.get(TYPES[name]) if isinstance(held, Mapping) else None


def problems(item: Mapping[str, Any]) -> list[str]:
    """Every way a stored record (low-level client types) breaks the contract."""
    found = [f"{name}: is not an attribute of a device record" for name in sorted(set(item) - set(TYPES))]
    found += [f"{name}: must be of type {TYPES[name]}, got {item[name]!r}" for name in sorted(set(item) & set(TYPES))
              if not (isinstance(item[name], Mapping) and set(item[name]) == {TYPES[name]})]
    uid_problem = device_uid_problem(value(item, Attr.DEVICE_UID))
    if uid_problem:
        found.append(f"{Attr.DEVICE_UID}: {uid_problem}")
    problem = batch_problem(value(item, Attr.BATCH))
    if problem:
        found.append(f"{Attr.BATCH}: {problem}")
    if Attr.DEVICE_UID_2 in item and (problem := uid2_problem(value(item, Attr.DEVICE_UID_2))):
        found.append(f"{Attr.DEVICE_UID_2}: {problem}")
    for name in (Attr.SALT_VERSION, Attr.CLAIMED_AT, Attr.ATTEMPTS):
        number = value(item, name)
        if name in item and not (isinstance(number, str) and number.isdigit()):
            found.append(f"{name}: {number!r} is not a whole number")
    if not isinstance(value(item, Attr.ENABLED), bool):
        found.append(f"{Attr.ENABLED}: missing or not a BOOL")
    state = value(item, Attr.STATE)
    if state not in State.ALL:
        found.append(f"{Attr.STATE}: {state!r} is not one of {', '.join(State.ALL)}")
    required = [Attr.SALT_VERSION, Attr.IMPORTED_AT]
    if state == State.CLAIMED:
        required += CLAIM_ATTRIBUTES
    if state == State.REGISTERED:
        required += REGISTERED_ATTRIBUTES
    found += [f"{name}: missing (state {state})" for name in required if name not in item]
    if state == State.REVOKED and value(item, Attr.ENABLED) is not False:
        found.append(f"{Attr.ENABLED}: a REVOKED record is disabled")
    checks = {Attr.CERTIFICATE_ID: certificate_id_problem, Attr.REOPENED_FROM: certificate_id_problem,
              Attr.PREVIOUS_CERTIFICATE_ID: certificate_id_problem, Attr.CLAIM_REGION: region_problem,
              Attr.REGISTERED_REGION: region_problem}
    found += [f"{name}: {problem}" for name, check in checks.items()
              if name in item and (problem := check(value(item, name)))]
    if Attr.THING_NAME in item and not THING_NAME_PATTERN.fullmatch(str(value(item, Attr.THING_NAME))):
        found.append(f"{Attr.THING_NAME}: {value(item, Attr.THING_NAME)!r} is not a thing name")
    return found
