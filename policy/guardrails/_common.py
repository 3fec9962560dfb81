"""Building blocks shared by the guardrail modules.

Props reach a policy as the engine sends them: read-only `Mapping`/`Sequence` proxies (never
`dict`/`list`), numbers as floats (protobuf `Value`), JSON documents usually as strings. The
helpers here accept all of those shapes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import pulumi
from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

MANDATORY = EnforcementLevel.MANDATORY
ADVISORY = EnforcementLevel.ADVISORY

# Policy name -> the external rule ids it mirrors (also spelled out in its description).
ANCHORS: dict[str, tuple[str, ...]] = {}

ResourceCheck = Callable[[ResourceValidationArgs], Iterable[str]]
StackCheck = Callable[[StackValidationArgs], Iterable[tuple[str, str | None]]]


def _describe(summary: str, anchors: Sequence[str]) -> str:
    return f"{summary} (anchors: {', '.join(anchors)})"


def resource_guardrail(name: str, summary: str, anchors: Sequence[str], types: Iterable[str] | None,
                       check: ResourceCheck, *, level: EnforcementLevel = MANDATORY,
                       severity: Severity = Severity.HIGH,
                       config_schema: PolicyConfigSchema | None = None) -> ResourceValidationPolicy:
    """A resource policy that runs `check` on resources of `types`; each message it yields is
    one violation of that resource. `types=None` means every resource type."""
    wanted = None if types is None else frozenset(types)

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if wanted is not None and args.resource_type not in wanted:
            return
        for message in check(args):
            report_violation(message, None)

    ANCHORS[name] = tuple(anchors)
    return ResourceValidationPolicy(name=name, description=_describe(summary, anchors),
                                    validate=validate, enforcement_level=level, severity=severity,
                                    config_schema=config_schema)


def stack_guardrail(name: str, summary: str, anchors: Sequence[str], check: StackCheck, *,
                    level: EnforcementLevel = MANDATORY, severity: Severity = Severity.HIGH,
                    config_schema: PolicyConfigSchema | None = None) -> StackValidationPolicy:
    """A stack policy; `check` yields (message, urn of the offending resource or None)."""

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        for message, urn in check(args):
            report_violation(message, urn)

    ANCHORS[name] = tuple(anchors)
    return StackValidationPolicy(name=name, description=_describe(summary, anchors),
                                 validate=validate, enforcement_level=level, severity=severity,
                                 config_schema=config_schema)


# --- shapes ---------------------------------------------------------------------------------

def as_list(value: Any) -> list[Any]:
    """`None` -> [], a scalar -> [scalar], a sequence (not a string) -> its items."""
    if value is None:
        return []
    if isinstance(value, (str, bytes, Mapping)):
        return [value]
    if isinstance(value, Sequence):
        return list(value)
    return [value]


def get(props: Mapping[str, Any] | None, *path: str) -> Any:
    """`props[a][b]...`, or None where any step is missing."""
    value: Any = props
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def truthy(value: Any) -> bool:
    """Booleans may arrive as strings from some providers' state."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def policy_document(value: Any) -> Mapping[str, Any] | None:
    """An IAM/IoT/KMS policy document from a JSON string or an object; None if absent."""
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str) and value.strip():
        parsed = json.loads(value)  # ValueError for malformed JSON: callers decide
        return parsed if isinstance(parsed, Mapping) else None
    return None


def statements(document: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    if document is None:
        return []
    return [s for s in as_list(document.get("Statement")) if isinstance(s, Mapping)]


def allows(statement: Mapping[str, Any]) -> bool:
    return statement.get("Effect") == "Allow"


def actions(statement: Mapping[str, Any]) -> list[str]:
    return [a for a in as_list(statement.get("Action")) if isinstance(a, str)]


def resources(statement: Mapping[str, Any]) -> list[str]:
    return [r for r in as_list(statement.get("Resource")) if isinstance(r, str)]


def condition_keys(statement: Mapping[str, Any]) -> set[str]:
    """Lower-cased condition keys of a statement, across all operators."""
    keys: set[str] = set()
    condition = statement.get("Condition")
    if isinstance(condition, Mapping):
        for block in condition.values():
            if isinstance(block, Mapping):
                keys.update(str(k).lower() for k in block)
    return keys


def principal_values(statement: Mapping[str, Any]) -> dict[str, list[str]]:
    """{"AWS": [...], "Service": [...], ...}; a bare "*" principal is {"*": ["*"]}."""
    principal = statement.get("Principal")
    if isinstance(principal, str):
        return {"*": [principal]}
    if isinstance(principal, Mapping):
        return {str(k): [str(v) for v in as_list(vs)] for k, vs in principal.items()}
    return {}


def parsed_documents(props: Mapping[str, Any], keys: Iterable[str]) -> Iterator[
        tuple[str, Mapping[str, Any] | None, str | None]]:
    """(key, document, parse error) for each policy-document property present in props."""
    for key in keys:
        value = props.get(key)
        if value is None or value == "":
            continue
        try:
            yield key, policy_document(value), None
        except ValueError as error:
            yield key, None, f"{key} is not valid JSON: {error}"


# --- where and what -------------------------------------------------------------------------

GLOBAL_MODULES = frozenset({"iam", "route53", "cloudfront", "organizations", "budgets"})


def module_of(resource_type: str) -> str:
    """`dynamodb` for `aws:dynamodb/table:Table`."""
    return resource_type.split(":")[1].split("/")[0] if resource_type.count(":") >= 2 else ""


def region_of(resource_type: str, props: Mapping[str, Any], provider_props: Any) -> str | None:
    """The region an AWS resource lands in: its own `region` (pulumi-aws v7), else its provider's;
    None for global services, components and non-AWS resources."""
    if not resource_type.startswith("aws:") or module_of(resource_type) in GLOBAL_MODULES:
        return None
    region = props.get("region")
    if isinstance(region, str) and region:
        return region
    if isinstance(provider_props, Mapping):
        region = provider_props.get("region")
        if isinstance(region, str) and region:
            return region
    return None


def resource_region(resource: PolicyResource) -> str | None:
    provider_props = resource.provider.props if resource.provider is not None else None
    return region_of(resource.resource_type, resource.props, provider_props)


def config(args: ResourceValidationArgs | StackValidationArgs, key: str, default: Any) -> Any:
    value = args.get_config().get(key)
    return default if value is None else value


def environment(args: ResourceValidationArgs | StackValidationArgs,
                tags: Mapping[str, Any] | None = None) -> str:
    """Which environment we validate: the policy config's `environment`, else the resource's
    `environment` tag, else the stack name (`prod`, `production`, `app-prod`... mean prod)."""
    configured = args.get_config().get("environment")
    if isinstance(configured, str) and configured:
        return configured
    tagged = tags.get("environment") if isinstance(tags, Mapping) else None
    if isinstance(tagged, str) and tagged:
        return tagged
    stack = pulumi.get_stack() or ""
    parts = re.split(r"[-_./]", stack.lower())
    return "prod" if ("prod" in parts or "production" in parts) else "dev"


def is_prod(env: str) -> bool:
    return env.lower() in ("prod", "production")


ENVIRONMENT_SCHEMA: dict[str, Any] = {
    "type": "string",
    "description": "dev or prod; when unset, the resource's `environment` tag, then the stack "
                   "name decide (a stack named prod/production/*-prod is prod)",
}


def plain(value: Any) -> Any:
    """Engine proxies -> plain dicts/lists (for json.dumps and third-party analyzers)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [plain(v) for v in value]
    return value
