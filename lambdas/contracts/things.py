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
