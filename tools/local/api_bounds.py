"""What AWS refuses before acting that botocore and moto let through. The API model's bounds: botocore checks only `min` on the
client (botocore/validate.py), AWS also refuses a value past `max` (a length, a count, a
range) or outside a string enum, with a 400 before doing anything. moto accepts them all, so
a call AWS refuses (a 37-character DynamoDB ClientRequestToken, 1-36 in
TransactWriteItems' API reference) passed every test. And DynamoDB's placeholders: every
one an expression does not use is refused, in every operation and transaction item (moto
checks only UpdateItem's values). docs/emulation.md, "moto made faithful".
"""

from __future__ import annotations

import re
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


_PLACEHOLDERS = {"ExpressionAttributeValues": re.compile(r":[A-Za-z0-9_]+"),
                 "ExpressionAttributeNames": re.compile(r"#[A-Za-z0-9_]+")}


def unused_placeholder_problems(params: Any) -> list[str]:
    """A DynamoDB request's placeholders no expression beside them uses ('Expression
    attribute values': "Value provided in ExpressionAttributeValues unused in expressions");
    a transaction's items are checked one by one, as each carries its own."""
    if isinstance(params, (list, tuple)):
        return [p for item in params for p in unused_placeholder_problems(item)]
    if not isinstance(params, Mapping):
        return []
    problems = []
    expressions = " ".join(str(v) for k, v in params.items() if k.endswith("Expression"))
    for field, pattern in _PLACEHOLDERS.items():
        given = params.get(field)
        unused = sorted(set(given) - set(pattern.findall(expressions))) if isinstance(given, Mapping) else []
        if unused:
            problems.append(f"Value provided in {field} unused in expressions: keys: {{{', '.join(unused)}}}")
    return problems + [p for k, v in params.items() if not k.startswith("Expression")
                       for p in unused_placeholder_problems(v)]
