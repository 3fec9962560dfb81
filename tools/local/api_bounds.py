"""The API model's bounds AWS enforces and botocore does not: botocore checks only `min` on the
client (botocore/validate.py), AWS also refuses a value past `max` (a length, a count, a
range) or outside a string enum, with a 400 before doing anything. moto accepts them all, so
a call AWS refuses (a 37-character DynamoDB ClientRequestToken, 1-36 in
TransactWriteItems' API reference) passed every test. docs/emulation.md, "Every call".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.model import ListShape, MapShape, Shape, StructureShape

# The error each protocol's services answer a constraint violation with; AWS IoT's APIs
# document InvalidRequestException for it, the JSON APIs ValidationException.
_CODES = {"iot": "InvalidRequestException", "iot-data-plane": "InvalidRequestException"}


def error_code(service: str) -> str:
    return _CODES.get(service, "ValidationException")


def bound_problems(value: Any, shape: Shape | None, name: str) -> list[str]:
    """AWS's "failed to satisfy constraint" lines for `value` against `shape`."""
    if shape is None:
        return []
    limit = shape.metadata.get("max")
    if isinstance(shape, StructureShape):
        if not isinstance(value, Mapping) or shape.is_document_type:
            return []
        return [p for key, item in value.items() if key in shape.members
                for p in bound_problems(item, shape.members[key], f"{name}.{key}" if name else key)]
    problems = []
    if isinstance(value, (str, bytes, bytearray, list, tuple, Mapping)) and not isinstance(value, bool) \
            and shape.type_name in ("string", "blob", "list", "map") and limit is not None \
            and len(value) > limit:
        unit = "length" if shape.type_name in ("string", "blob") else "number of members"
        problems.append(f"Value at '{name}' failed to satisfy constraint: Member must have "
                        f"{unit} less than or equal to {limit}")
    if shape.type_name in ("integer", "long", "double", "float") and isinstance(value, (int, float)) \
            and not isinstance(value, bool) and limit is not None and value > limit:
        problems.append(f"Value '{value}' at '{name}' failed to satisfy constraint: Member must "
                        f"have value less than or equal to {limit}")
    enum = shape.metadata.get("enum")
    if shape.type_name == "string" and isinstance(value, str) and enum and value not in enum:
        problems.append(f"Value '{value}' at '{name}' failed to satisfy constraint: Member must "
                        f"satisfy enum value set: [{', '.join(enum)}]")
    if isinstance(shape, ListShape) and isinstance(value, (list, tuple)):
        problems += [p for i, item in enumerate(value) for p in bound_problems(item, shape.member, f"{name}.{i + 1}")]
    if isinstance(shape, MapShape) and isinstance(value, Mapping):
        problems += [p for key, item in value.items()
                     for p in bound_problems(key, shape.key, f"{name}.key") + bound_problems(item, shape.value, f"{name}.{key}")]
    return problems
