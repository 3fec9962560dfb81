"""Building blocks shared by the guardrail modules.

Props reach a policy as the engine sends them: read-only `Mapping`/`Sequence` proxies (never
`dict`/`list`), numbers as floats (protobuf `Value`), JSON documents usually as strings, and
during preview the engine's unknown-value sentinels, which raise `UnknownValueError` when
read. The helpers here accept all of those shapes and never swallow that error: a guardrail
that cannot see its input must not pass (the engine reports it as "can't run ... during
preview" and judges the known value during the update).
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

from components.facts import GLOBAL_AWS_MODULES
from policy.semantics.documents import DocumentError, parse, plain, strings

MANDATORY = EnforcementLevel.MANDATORY
ADVISORY = EnforcementLevel.ADVISORY

# Policy name -> the external rule ids it mirrors (also spelled out in its description).
ANCHORS: dict[str, tuple[str, ...]] = {}

ResourceCheck = Callable[[ResourceValidationArgs], Iterable[str]]
StackCheck = Callable[[StackValidationArgs], Iterable[tuple[str, str | None]]]

__all__ = ["ADVISORY", "ANCHORS", "MANDATORY", "as_list", "config", "environment", "get",
           "home_accounts", "is_prod", "provider_setting", "module_of", "number", "parsed_documents", "plain",
           "region_of", "resource_guardrail", "resource_region", "stack_guardrail", "strings",
           "truthy"]


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


def get(props: Any, *path: str) -> Any:
    """`props[a][b]...`, or None where any step is missing (or not a mapping)."""
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


def parsed_documents(props: Mapping[str, Any], keys: Iterable[str]) -> Iterator[
        tuple[str, Mapping[str, Any] | None, str | None]]:
    """(key, document, problem) for each policy-document property present in props."""
    for key in keys:
        value = props.get(key)
        if value is None or value == "":
            continue
        try:
            yield key, parse(value), None
        except DocumentError as error:
            yield key, None, f"{key} is {error}"


def provider_setting(provider: Any, key: str) -> Any:
    """A setting of a resource's provider as data. Providers take their settings as JSON text
    whenever they are not plain strings (an explicit `aws.Provider(allowed_account_ids=[..])`
    arrives as '["123456789012"]', the default provider's `aws:defaultTags` as '{"tags":..}'),
    so JSON text is decoded; other values are returned as they are."""
    props = provider.props if provider is not None else None
    value = props.get(key) if isinstance(props, Mapping) else None
    if isinstance(value, str) and value.strip()[:1] in ("[", "{", '"'):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return value
    return value


_ACCOUNT = re.compile(r"^\d{12}$")


def home_accounts(args: ResourceValidationArgs | PolicyResource) -> list[str]:
    """The accounts the resource's provider may deploy to (aws:allowedAccountIds): the home
    account(s) cross-account grants are judged against. Empty when the provider does not say
    (aws-home-account-declared then fails the stack)."""
    return [a.strip() for a in strings(provider_setting(args.provider, "allowedAccountIds"))
            if _ACCOUNT.match(a.strip())]


# --- where and what -------------------------------------------------------------------------

def module_of(resource_type: str) -> str:
    """`dynamodb` for `aws:dynamodb/table:Table`."""
    return resource_type.split(":")[1].split("/")[0] if resource_type.count(":") >= 2 else ""


# CloudFront takes its viewer certificates from ACM in us-east-1 only: such a certificate is
# part of a global service, not a use of that region (policy/guardrails/cloudfront.py checks
# that every one of them serves a distribution).
CLOUDFRONT_CERTIFICATE_REGION = "us-east-1"
ACM_CERTIFICATE_TYPES = frozenset({"aws:acm/certificate:Certificate",
                                   "aws:acm/certificateValidation:CertificateValidation"})


def region_of(resource_type: str, props: Mapping[str, Any], provider_props: Any) -> str | None:
    """The region an AWS resource lands in: its own `region` (pulumi-aws v7), else its provider's;
    None for global services, components and non-AWS resources."""
    if not resource_type.startswith("aws:") or module_of(resource_type) in GLOBAL_AWS_MODULES:
        return None
    region = props.get("region")
    if resource_type in ACM_CERTIFICATE_TYPES and region == CLOUDFRONT_CERTIFICATE_REGION:
        return None
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


def is_customer_managed_key(key: Any) -> bool:
    """A KMS key reference that is not an AWS managed key (alias/aws/...)."""
    return isinstance(key, str) and bool(key.strip()) and "alias/aws/" not in key


def by_identifier(resources: Iterable[PolicyResource], *keys: str) -> dict[str, PolicyResource]:
    """Resources indexed by their id/ARN/name outputs, to resolve references between them."""
    index: dict[str, PolicyResource] = {}
    for resource in resources:
        for key in keys:
            value = resource.props.get(key)
            if isinstance(value, str) and value:
                index.setdefault(value, resource)
    return index
