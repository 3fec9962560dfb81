"""A small IAM / IoT policy evaluator for the emulations (not a general one).

Explicit Deny wins, then any Allow. Actions match case-insensitively with `*` and `?`;
resources and ARN conditions case-sensitively. `${variable}` in a resource is replaced from
`context` (IoT policy variables); a statement with a variable the context lacks never
matches. Conditions: String/Arn Equals/Like (and their Not forms) and Bool; a condition key
missing from `context` fails the condition, as on AWS.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

_VARIABLE = re.compile(r"\$\{([^}]+)\}")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def document(value: str | Mapping[str, Any]) -> Mapping[str, Any]:
    return json.loads(value) if isinstance(value, str) else value


def _substitute(pattern: str, context: Mapping[str, str]) -> str | None:
    missing = False

    def replace(match: re.Match[str]) -> str:
        nonlocal missing
        if match.group(1) not in context:
            missing = True
            return ""
        return context[match.group(1)]

    result = _VARIABLE.sub(replace, pattern)
    return None if missing else result


def _matches_any(patterns: Iterable[str], value: str, context: Mapping[str, str], *,
                 case: bool) -> bool:
    for pattern in patterns:
        concrete = _substitute(str(pattern), context)
        if concrete is None:
            continue
        if fnmatch.fnmatchcase(value, concrete) if case else \
                fnmatch.fnmatchcase(value.lower(), concrete.lower()):
            return True
    return False


def _condition_holds(operator: str, key: str, expected: Any, context: Mapping[str, str]) -> bool:
    if key not in context:
        return operator.startswith("StringNot") or operator.startswith("ArnNot")
    actual = context[key]
    values = [str(v) for v in _as_list(expected)]
    if operator == "Bool":
        return actual.lower() in [v.lower() for v in values]
    base = operator.replace("Not", "")
    if base in ("StringEquals", "ArnEquals"):
        hit = actual in values
    elif base in ("StringLike", "ArnLike"):
        hit = any(fnmatch.fnmatchcase(actual, v) for v in values)
    elif base == "StringEqualsIgnoreCase":
        hit = actual.lower() in [v.lower() for v in values]
    else:
        return False  # an operator this evaluator does not know never grants
    return not hit if "Not" in operator else hit


def _conditions_hold(conditions: Mapping[str, Mapping[str, Any]] | None,
                     context: Mapping[str, str]) -> bool:
    for operator, entries in (conditions or {}).items():
        for key, expected in entries.items():
            if not _condition_holds(operator, key, expected, context):
                return False
    return True


def _statement_applies(statement: Mapping[str, Any], action: str, resource: str | None,
                       context: Mapping[str, str], principal_service: str | None) -> bool:
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
    if principal_service is not None:
        principal = statement.get("Principal") or {}
        services = _as_list(principal.get("Service")) if isinstance(principal, Mapping) else []
        if principal_service not in services and principal != "*":
            return False
    return _conditions_hold(statement.get("Condition"), context)


def allows(documents: Iterable[str | Mapping[str, Any]], action: str, resource: str | None, *,
           context: Mapping[str, str] | None = None, principal_service: str | None = None) -> bool:
    """Do the documents grant `action` on `resource` (None: a trust policy, no resource)?"""
    context = dict(context or {})
    allowed = False
    for doc in documents:
        for statement in _as_list(document(doc).get("Statement")):
            if not _statement_applies(statement, action, resource, context, principal_service):
                continue
            if statement.get("Effect") == "Deny":
                return False
            if statement.get("Effect") == "Allow":
                allowed = True
    return allowed
