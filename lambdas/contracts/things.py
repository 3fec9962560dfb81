"""AWS IoT thing names: the one rule every function, component and tool checks them with.

AWS IoT API reference, CreateThing (and ThingAttribute): `thingName` has 1-128 characters
matching `[a-zA-Z0-9:_-]+`. A JITR certificate's CN, a fleet serial and a CVM thing name
(prefix + device uid) all become thing names, so all are checked with this rule.
"""

from __future__ import annotations

import re

THING_NAME_MAX_LENGTH = 128
THING_NAME_CHARACTERS = "a-z A-Z 0-9 : _ -"
# fullmatch only: `$` would let a trailing newline through.
THING_NAME_PATTERN = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
# Thing group and thing type names follow the same rule (CreateThingGroup, CreateThingType);
# attribute names are 1-128 of [a-zA-Z0-9_.,@/:#-] (AttributePayload).
NAME_PATTERN = THING_NAME_PATTERN
ATTRIBUTE_NAME_PATTERN = re.compile(r"[a-zA-Z0-9_.,@/:#-]{1,128}")


def thing_name_problem(value: object) -> str | None:
    """Why `value` cannot be an AWS IoT thing name, or None when it can."""
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if not value:
        return "must not be empty"
    if len(value) > THING_NAME_MAX_LENGTH:
        return f"has {len(value)} characters; a thing name has at most {THING_NAME_MAX_LENGTH}"
    if not THING_NAME_PATTERN.fullmatch(value):
        return f"may only contain {THING_NAME_CHARACTERS}"
    return None


def is_thing_name(value: object) -> bool:
    return thing_name_problem(value) is None


# --- CVM devices: the device UID becomes the thing name `<thingNamePrefix><device_uid>` -------
# One rule for the function (lambdas/cvm_registration), the operator's tool
# (tools/manufacturer.py) and the API's JSON schema (its pattern is DEVICE_UID_PATTERN).
DEVICE_UID_PATTERN = r"^[A-Za-z0-9:_-]+$"
_DEVICE_UID_CHARACTERS = re.compile(r"[A-Za-z0-9:_-]+")


def device_thing_name(prefix: str, device_uid: str) -> str:
    return prefix + device_uid


def device_uid_problem(device_uid: object, prefix: str = "") -> str | None:
    """Why `device_uid` cannot name a device's thing under `prefix`, or None when it can."""
    if not isinstance(device_uid, str) or not device_uid:
        return "must be a non-empty string"
    if not _DEVICE_UID_CHARACTERS.fullmatch(device_uid):
        return f"may only contain {THING_NAME_CHARACTERS}"
    room = THING_NAME_MAX_LENGTH - len(prefix)
    if len(device_uid) > room:
        return (f"has {len(device_uid)} characters; with the thing-name prefix {prefix!r} "
                f"a device UID may have at most {room} (a thing name has at most "
                f"{THING_NAME_MAX_LENGTH})")
    return None
