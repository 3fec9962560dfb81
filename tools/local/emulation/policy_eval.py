"""A small IAM / IoT policy evaluator for the emulations and the tests (not a general one).

Explicit Deny wins, then any Allow, else implicit deny. Actions match case-insensitively
with `*` and `?`; resources and ARN/String conditions case-sensitively (only `*` and `?` are
wildcards, as in IAM). `${variable}` in a resource is replaced from `context` (IoT policy
variables); a statement with a variable the context lacks never matches. Conditions:
String/Arn Equals/Like (and their Not forms), StringEqualsIgnoreCase and Bool, each
optionally qualified `ForAnyValue:` / `ForAllValues:` over a multi-valued key (a context
value may be a list). A key missing from `context` fails the condition, except for the
negated operators and `ForAllValues` (true on an empty set), as on AWS. An operator this
evaluator does not know never grants.

Trust policies are evaluated with `resource=None` and the calling principal
(`principal=("Service", "iot.amazonaws.com")`, `("Federated", "cognito-identity...")`).
Not AWS's evaluator: no NotPrincipal, no permission boundaries or SCPs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

_VARIABLE = re.compile(r"\$\{([^}]+)\}")

Context = Mapping[str, Any]  # key -> a string, or a list of strings (multi-valued keys)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def document(value: str | Mapping[str, Any]) -> Mapping[str, Any]:
    return json.loads(value) if isinstance(value, str) else value


@lru_cache(maxsize=None)
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{regex}$", re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def like(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM's wildcard match: `*` any run of characters, `?` one character."""
    return bool(_wildcard(pattern, ignore_case).match(value))


def _substitute(pattern: str, context: Context) -> str | None:
    missing = False

    def replace(match: re.Match[str]) -> str:
        nonlocal missing
        value = context.get(match.group(1))
        if not isinstance(value, str):
            missing = True
            return ""
        return value

    result = _VARIABLE.sub(replace, pattern)
    return None if missing else result


def _matches_any(patterns: Iterable[str], value: str, context: Context, *, case: bool) -> bool:
    for pattern in patterns:
        concrete = _substitute(str(pattern), context)
        if concrete is not None and like(concrete, value, ignore_case=not case):
            return True
    return False


def _single(operator: str, expected: list[str], actual: str) -> bool | None:
    """One value against the operator (None: an operator this evaluator does not know)."""
    if operator == "Bool":
        return actual.lower() in [v.lower() for v in expected]
    negated = "Not" in operator
    base = operator.replace("Not", "")
    if base in ("StringEquals", "ArnEquals"):
        hit = actual in expected
    elif base in ("StringLike", "ArnLike"):
        hit = any(like(v, actual) for v in expected)
    elif base == "StringEqualsIgnoreCase":
        hit = actual.lower() in [v.lower() for v in expected]
    else:
        return None
    return not hit if negated else hit


def _condition_holds(operator: str, key: str, expected: Any, context: Context) -> bool:
    qualifier, _, base = operator.rpartition(":")
    wanted = [str(v) for v in _as_list(expected)]
    if key not in context:
        return qualifier == "ForAllValues" or "Not" in base
    values = [str(v) for v in _as_list(context[key])]
    results = [_single(base, wanted, v) for v in values]
    if any(r is None for r in results):
        return False  # unknown operator: never grants
    if qualifier == "ForAnyValue":
        return any(results)
    if qualifier == "ForAllValues":
        return all(results)
    return len(results) == 1 and bool(results[0])


def _conditions_hold(conditions: Mapping[str, Mapping[str, Any]] | None, context: Context) -> bool:
    return all(_condition_holds(operator, key, expected, context)
               for operator, entries in (conditions or {}).items()
               for key, expected in entries.items())


def _principal_matches(statement: Mapping[str, Any], principal: tuple[str, str]) -> bool:
    declared = statement.get("Principal")
    if declared == "*":
        return True
    kind, value = principal
    return isinstance(declared, Mapping) and value in _as_list(declared.get(kind))


def _statement_applies(statement: Mapping[str, Any], action: str, resource: str | None,
                       context: Context, principal: tuple[str, str] | None) -> bool:
    if "Action" in statement and not _matches_any(_as_list(statement["Action"]), action, {},
                                                  case=False):
        return False
    if "NotAction" in statement and _matches_any(_as_list(statement["NotAction"]), action, {},
                                                 case=False):
        return False
    if resource is not None:
        if "Resource" in statement and not _matches_any(_as_list(statement["Resource"]),
                                                        resource, context, case=True):
            return False
        if "NotResource" in statement and _matches_any(_as_list(statement["NotResource"]),
                                                       resource, context, case=True):
            return False
    if principal is not None and not _principal_matches(statement, principal):
        return False
    return _conditions_hold(statement.get("Condition"), context)


def allows(documents: Iterable[str | Mapping[str, Any]], action: str, resource: str | None, *,
           context: Context | None = None, principal_service: str | None = None,
           principal: tuple[str, str] | None = None) -> bool:
    """Do the documents grant `action` on `resource` (None: a trust policy, no resource)?
    `principal_service` is short for `principal=("Service", <service>)`."""
    if principal_service is not None:
        principal = ("Service", principal_service)
    context = dict(context or {})
    allowed = False
    for doc in documents:
        for statement in _as_list(document(doc).get("Statement")):
            if not _statement_applies(statement, action, resource, context, principal):
                continue
            if statement.get("Effect") == "Deny":
                return False
            if statement.get("Effect") == "Allow":
                allowed = True
    return allowed


def allowed(policy: str | Mapping[str, Any], action: str, resource: str,
            context: Context | None = None) -> bool:
    """One identity (or IoT) policy document: does it grant `action` on `resource`?"""
    return allows([policy], action, resource, context=context)


def trust_allows(policy: str | Mapping[str, Any], principal: tuple[str, str], action: str,
                 context: Context | None = None) -> bool:
    """One trust policy: may `principal` (kind, value), e.g. ("Federated",
    "cognito-identity.amazonaws.com"), perform `action` (sts:AssumeRole...)?"""
    return allows([policy], action, None, context=context, principal=principal)
