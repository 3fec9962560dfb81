"""How fleet-provisioning allow-list entries live in the shared provisioning table.

The table (key `deviceUid`) also holds the certificate vending machine's device records,
keyed by the device's own uid. Fleet entries never collide with them: their key is
`fleet#<serial>` and they carry `kind = FLEET_SERIAL`; both are checked on every read
and in every conditional write. The recorder Lambda keeps a copy of these constants (a
Lambda package imports nothing from another); a test asserts the copies agree.
"""

from __future__ import annotations

import re

KEY_PREFIX = "fleet#"
KIND = "FLEET_SERIAL"

# Allow-list entry states (attribute `state`):
ALLOWED = "ALLOWED"  # an operator allowed the serial; no claim yet
CLAIMED = "CLAIMED"  # the hook allowed one certificate; the recorder has not confirmed it
PROVISIONED = "PROVISIONED"  # the recorder saw the device provisioned and recorded it
CONFLICT = "CONFLICT"  # the recorder found another device under this thing name

# AWS IoT thing names; the serial *is* the thing name (fullmatch: no trailing newline).
SERIAL_PATTERN = re.compile(r"[a-zA-Z0-9:_-]{1,128}")


def allow_list_key(serial: str) -> str:
    return f"{KEY_PREFIX}{serial}"
