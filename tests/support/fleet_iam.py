"""A small evaluator for IAM and AWS IoT policy documents, enough to prove what a declared
policy allows: Allow/Deny statements, Action/Resource wildcards (`*`, `?`), and the condition
operators our documents use (String/Arn Equals/Like, Bool, ForAnyValue/ForAllValues).

Not AWS's evaluator: no NotAction/NotResource, no policy variables, no permission
boundaries or SCPs. A key missing from the request context fails the condition (as in AWS,
except ForAllValues, which AWS treats as true on an empty set, as here).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

Context = Mapping[str, Any]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@lru_cache(maxsize=None)
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{regex}$", re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def like(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    return bool(_wildcard(pattern, ignore_case).match(value))


def _single(operator: str, expected: list[str], actual: str) -> bool:
    if operator in ("StringEquals", "ArnEquals"):
        return actual in expected
    if operator in ("StringLike", "ArnLike"):
        return any(like(p, actual) for p in expected)
    if operator == "StringNotEquals":
        return actual not in expected
    if operator == "Bool":
        return actual.lower() in [e.lower() for e in expected]
    raise NotImplementedError(f"condition operator {operator}")


def _condition_holds(operator: str, key: str, expected: Any, context: Context) -> bool:
    wanted = [str(v) for v in _as_list(expected)]
    qualifier, _, base = operator.rpartition(":")
    if key not in context:
        return qualifier == "ForAllValues"
    values = [str(v) for v in _as_list(context[key])]
    if qualifier == "ForAnyValue":
        return any(_single(base, wanted, v) for v in values)
    if qualifier == "ForAllValues":
        return all(_single(base, wanted, v) for v in values)
    return len(values) == 1 and _single(operator, wanted, values[0])


def statement_matches(statement: Mapping[str, Any], action: str, resource: str,
                      context: Context) -> bool:
    if not any(like(a, action, ignore_case=True) for a in _as_list(statement["Action"])):
        return False
    if not any(like(r, resource) for r in _as_list(statement.get("Resource", "*"))):
        return False
    return all(_condition_holds(op, key, expected, context)
               for op, block in statement.get("Condition", {}).items()
               for key, expected in block.items())


def document(policy: str | Mapping[str, Any]) -> Mapping[str, Any]:
    return json.loads(policy) if isinstance(policy, str) else policy


def allowed(policy: str | Mapping[str, Any], action: str, resource: str,
            context: Context | None = None) -> bool:
    """Explicit deny wins; otherwise any matching Allow allows; otherwise implicit deny."""
    statements = _as_list(document(policy)["Statement"])
    ctx = context or {}
    if any(s["Effect"] == "Deny" and statement_matches(s, action, resource, ctx)
           for s in statements):
        return False
    return any(s["Effect"] == "Allow" and statement_matches(s, action, resource, ctx)
               for s in statements)


def trust_allows(policy: str | Mapping[str, Any], principal: tuple[str, str], action: str,
                 context: Context | None = None) -> bool:
    """May `principal` (kind, value), e.g. ("Federated", "cognito-identity.amazonaws.com"),
    perform `action` (sts:AssumeRole...) under this trust policy?"""
    kind, value = principal
    for statement in _as_list(document(policy)["Statement"]):
        principals = statement.get("Principal", {})
        if statement["Effect"] != "Allow" or value not in _as_list(principals.get(kind, [])):
            continue
        if statement_matches({**statement, "Resource": "*"}, action, "*", context or {}):
            return True
    return False
