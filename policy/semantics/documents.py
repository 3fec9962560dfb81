"""Policy documents as AWS reads them, whatever their spelling.

`Statement` may be one object or a list; `Action`, `Resource`, principals and condition
values may be one string or a list; keys of `Condition` blocks are case-insensitive; JSON
numbers, booleans and nulls are legal condition values. Documents arrive as JSON text or as
(read-only) mappings from the engine.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class DocumentError(ValueError):
    """The text is not a JSON policy document."""


def strings(value: Any) -> tuple[str, ...]:
    """One value or a list of values as strings (numbers and booleans spelled as JSON does;
    nested objects, which AWS refuses here, are dropped)."""
    if value is None:
        return ()
    items: Sequence[Any]
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        items = [value]
    else:
        items = value
    out = []
    for item in items:
        text = scalar_text(item)
        if text is not None:
            out.append(text)
    return tuple(out)


def scalar_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # the engine hands JSON numbers over as floats
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return None


def parse(value: Any) -> Mapping[str, Any] | None:
    """A policy document from JSON text or a mapping; None when absent (None/"")."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError) as error:
            raise DocumentError(f"not valid JSON: {error}") from None
        if not isinstance(parsed, Mapping):
            raise DocumentError(f"a policy document is a JSON object, not {type(parsed).__name__}")
        return parsed
    raise DocumentError(f"a policy document is JSON text or an object, not {type(value).__name__}")


@dataclass(frozen=True)
class Condition:
    operator: str          # as written, e.g. "ForAnyValue:StringLikeIfExists"
    base: str              # lower-case, without set qualifier and IfExists: "stringlike"
    set_qualifier: str     # "", "foranyvalue" or "forallvalues"
    if_exists: bool
    key: str               # lower-case: condition keys are case-insensitive
    values: tuple[str, ...]

    @property
    def negated(self) -> bool:
        return "not" in self.base

    @property
    def positive_match(self) -> bool:
        """A condition that only admits requests whose key has one of `values`: equality or
        pattern operators, not negated, not IfExists, not ForAllValues (which holds for a
        request without the key)."""
        return (not self.negated and not self.if_exists and self.set_qualifier != "forallvalues"
                and self.base in POSITIVE_OPERATORS)


POSITIVE_OPERATORS = frozenset({
    "stringequals", "stringequalsignorecase", "stringlike", "arnequals", "arnlike",
    "numericequals", "dateequals", "bool", "binaryequals", "ipaddress",
})


def conditions(statement: Mapping[str, Any]) -> tuple[Condition, ...]:
    block = statement.get("Condition")
    if not isinstance(block, Mapping):
        return ()
    out = []
    for operator, entries in block.items():
        if not isinstance(entries, Mapping):
            continue
        op = str(operator)
        qualifier, _, rest = op.rpartition(":")
        base = rest.lower()
        if_exists = base.endswith("ifexists")
        if if_exists:
            base = base[: -len("ifexists")]
        for key, values in entries.items():
            out.append(Condition(op, base, qualifier.lower(), if_exists, str(key).lower(),
                                 strings(values)))
    return tuple(out)


@dataclass(frozen=True)
class Statement:
    index: int
    sid: str
    effect: str                          # "allow", "deny" or what was written, lower-case
    actions: tuple[str, ...] | None      # None when the statement uses NotAction
    not_actions: tuple[str, ...] | None
    resources: tuple[str, ...] | None
    not_resources: tuple[str, ...] | None
    principal: Mapping[str, tuple[str, ...]] | None   # {"AWS": (...)}; "*" -> {"*": ("*",)}
    not_principal: Mapping[str, tuple[str, ...]] | None
    conditions: tuple[Condition, ...]
    raw: Mapping[str, Any]

    @property
    def allows(self) -> bool:
        return self.effect == "allow"

    @property
    def denies(self) -> bool:
        return self.effect == "deny"

    @property
    def where(self) -> str:
        return f"Statement[{self.index}]" + (f" ({self.sid})" if self.sid else "")

    def condition(self, *keys: str) -> list[Condition]:
        wanted = {k.lower() for k in keys}
        return [c for c in self.conditions if c.key in wanted]


def _principals(value: Any) -> Mapping[str, tuple[str, ...]] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return {"*": (value,)} if value.strip() == "*" else {"AWS": (value,)}
    if isinstance(value, Mapping):
        return {str(kind): strings(ids) for kind, ids in value.items()}
    return {"AWS": strings(value)}


def statements(document: Mapping[str, Any] | None) -> tuple[Statement, ...]:
    if document is None:
        return ()
    raw = document.get("Statement")
    items: Sequence[Any]
    if isinstance(raw, Mapping):
        items = [raw]  # a single statement object is legal
    elif isinstance(raw, Sequence) and not isinstance(raw, (str, bytes)):
        items = raw
    else:
        items = []
    out = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            continue
        out.append(Statement(
            index=index,
            sid=scalar_text(item.get("Sid")) or "",
            effect=(scalar_text(item.get("Effect")) or "").strip().lower(),
            actions=strings(item.get("Action")) if "Action" in item else None,
            not_actions=strings(item.get("NotAction")) if "NotAction" in item else None,
            resources=strings(item.get("Resource")) if "Resource" in item else None,
            not_resources=strings(item.get("NotResource")) if "NotResource" in item else None,
            principal=_principals(item.get("Principal")) if "Principal" in item else None,
            not_principal=_principals(item.get("NotPrincipal")) if "NotPrincipal" in item else None,
            conditions=conditions(item),
            raw=item,
        ))
    return tuple(out)


def plain(value: Any) -> Any:
    """Engine proxies -> plain dicts/lists (json.dumps, third-party analyzers)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [plain(v) for v in value]
    return value
