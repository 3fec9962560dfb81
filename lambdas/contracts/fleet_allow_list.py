"""The fleet-provisioning allow-list entry, from `fleet_allow_list.json` (the one source the
installer web app builds from too).

Entries live in the shared provisioning table under `fleet#<serial>` with `kind =
FLEET_SERIAL`; the serial is the AWS IoT thing name. Administrators write them with the
conditional writes below (the installer CLI and the web app's allow-list view); the
pre-provisioning hook and the recorder move `state` on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_CONTRACT: Mapping[str, Any] = json.loads(
    (Path(__file__).with_name("fleet_allow_list.json")).read_text(encoding="utf-8"))

KEY_ATTRIBUTE: str = _CONTRACT["table"]["keyAttribute"]
KEY_PREFIX: str = _CONTRACT["table"]["keyPrefix"]
KIND: str = _CONTRACT["kind"]
SERIAL_PATTERN = re.compile(_CONTRACT["serial"]["pattern"])  # use with fullmatch
SERIAL_RULE: str = _CONTRACT["serial"]["rule"]

ALLOWED: str = _CONTRACT["states"]["allowed"]
CLAIMED: str = _CONTRACT["states"]["claimed"]
PROVISIONED: str = _CONTRACT["states"]["provisioned"]
CONFLICT: str = _CONTRACT["states"]["conflict"]

INDEX_NAME: str = _CONTRACT["index"]["name"]
INDEX_PARTITION_KEY: str = _CONTRACT["index"]["partitionKey"]
INDEX_SORT_KEY: str = _CONTRACT["index"]["sortKey"]
INDEX_PROJECTED: tuple[str, ...] = tuple(_CONTRACT["index"]["projected"])

WRITES = ("enable", "enableAndReset", "disable")


class SerialError(ValueError):
    """A serial that cannot be a thing name; the message says the rule."""


def serial_problem(serial: str) -> str | None:
    if isinstance(serial, str) and SERIAL_PATTERN.fullmatch(serial):
        return None
    return f"serial {serial!r} is not valid: use {SERIAL_RULE}"


def checked_serial(serial: str) -> str:
    problem = serial_problem(serial)
    if problem:
        raise SerialError(problem)
    return serial


def key(serial: str) -> dict[str, str]:
    return {KEY_ATTRIBUTE: f"{KEY_PREFIX}{checked_serial(serial)}"}


def _used(values: Mapping[str, Any], expressions: str) -> dict[str, Any]:
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
        "ExpressionAttributeNames": _used(_CONTRACT["writes"]["names"], expressions),
        "ExpressionAttributeValues": _used({**_CONTRACT["writes"]["values"], ":now": now},
                                           expressions),
    }
