"""Stack-wide: resources only in allowed regions; required tags on every taggable resource."""

from __future__ import annotations

import importlib
import inspect
import keyword
import warnings
from collections.abc import Iterator, Mapping
from functools import lru_cache

from pulumi_policy import Policy, PolicyConfigSchema, ResourceValidationArgs, Severity, StackValidationArgs

from ._common import (
    as_list,
    config,
    home_accounts,
    module_of,
    provider_setting,
    resource_guardrail,
    resource_region,
    stack_guardrail,
)

DEFAULT_REQUIRED_TAGS = ["owner", "environment"]
AWS_PROVIDER = "pulumi:providers:aws"
STATIC_CREDENTIALS = ("accessKey", "secretKey", "token")


@lru_cache(maxsize=None)
def taggable(resource_type: str) -> bool | None:
    """Whether pulumi-aws gives this type a `tags` argument; None if the SDK cannot tell."""
    if not resource_type.startswith("aws:") or resource_type.count(":") != 2:
        return False
    module = module_of(resource_type)
    python_module = module + "_" if keyword.iskeyword(module) else module
    try:
        with warnings.catch_warnings():  # importing a module warns about its deprecated classes
            warnings.simplefilter("ignore", DeprecationWarning)
            cls = getattr(importlib.import_module(f"pulumi_aws.{python_module}"),
                          resource_type.rsplit(":", 1)[1])
        return "tags" in inspect.signature(cls._internal_init).parameters
    except (ImportError, AttributeError, TypeError, ValueError):
        return None


def _required_tags(args: ResourceValidationArgs) -> Iterator[str]:
    is_taggable = taggable(args.resource_type)
    if is_taggable is False or (is_taggable is None and "tags" not in args.props):
        return
    own = args.props.get("tags")
    tags = dict(own) if isinstance(own, Mapping) else {}
    default_tags = provider_setting(args.provider, "defaultTags")
    if isinstance(default_tags, Mapping) and isinstance(default_tags.get("tags"), Mapping):
        tags = {**default_tags["tags"], **tags}
    required = [str(t) for t in as_list(config(args, "requiredTags", DEFAULT_REQUIRED_TAGS))]
    missing = [t for t in required if not str(tags.get(t) or "").strip()]
    if missing:
        yield f"missing required tag(s): {', '.join(missing)}"


def _no_static_credentials(args: ResourceValidationArgs) -> Iterator[str]:
    present = [k for k in STATIC_CREDENTIALS if args.props.get(k)]
    if present:
        yield (f"explicit AWS provider carries {', '.join(present)}: long-lived credentials in "
               "the program and the state; let the provider take role credentials from the "
               "environment (OIDC in CI)")


def _allowed_regions(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    allowed = {str(r) for r in as_list(config(args, "allowedRegions", []))}
    if not allowed:
        return  # nothing configured: no restriction
    for r in args.resources:
        regions = {resource_region(r)}
        if r.resource_type == "aws:dynamodb/table:Table":
            regions |= {str(rep.get("regionName")) for rep in as_list(r.props.get("replicas"))
                        if isinstance(rep, Mapping) and rep.get("regionName") is not None}
        for region in sorted(str(x) for x in regions - {None} - allowed):
            yield f"{r.resource_type} lands in {region}, outside {sorted(allowed)}", r.urn


def _home_account_declared(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    """Every AWS provider the stack's AWS resources use names the account(s) it may deploy to:
    without them the pack cannot tell a cross-account grant from a grant to the stack itself
    (key and secret policies say `Resource: "*"`, S3 ARNs carry no account)."""
    seen: set[str] = set()
    for r in args.resources:
        if not r.resource_type.startswith("aws:") or r.provider is None:
            continue
        urn = r.provider.urn
        if urn in seen:
            continue
        seen.add(urn)
        if not home_accounts(r):
            raw = provider_setting(r.provider, "allowedAccountIds")
            got = "is not set" if raw in (None, "", []) else f"is {raw!r}, not 12-digit account ids"
            yield (f"AWS provider {r.provider.name}: allowedAccountIds {got}, so the pack cannot tell "
                   "the stack's own account from another one and cross-account grants go "
                   "unjudged; list your account(s) as quoted strings (stack config "
                   "`aws:allowedAccountIds: [\"<account>\"]`, or `allowed_account_ids=[...]` on an "
                   "explicit provider)", r.provider.urn)


POLICIES: list[Policy] = [
    stack_guardrail(
        "aws-home-account-declared",
        "Every AWS provider the stack uses declares the account(s) it may deploy to "
        "(aws:allowedAccountIds): the home account every cross-account judgement compares with",
        ["Terraform/Pulumi AWS provider allowed_account_ids", "IAM Access Analyzer zone of trust"],
        _home_account_declared, severity=Severity.HIGH),
    stack_guardrail(
        "allowed-regions",
        "Resources (and DynamoDB replicas) land only in the regions allowed by policy config",
        ["AWS Organizations SCP region deny (aws:RequestedRegion)"],
        _allowed_regions, severity=Severity.HIGH,
        config_schema=PolicyConfigSchema(properties={
            "allowedRegions": {"type": "array", "items": {"type": "string"}, "default": [],
                               "description": "regions resources may use; empty = any"}})),
    resource_guardrail(
        "required-tags",
        "Taggable AWS resources carry every tag in policy config `requiredTags` (provider "
        "default tags count)",
        ["AWS Config required-tags", "AWS Organizations tag policies"],
        None, _required_tags, severity=Severity.LOW,
        config_schema=PolicyConfigSchema(properties={
            "requiredTags": {"type": "array", "items": {"type": "string"},
                             "default": DEFAULT_REQUIRED_TAGS,
                             "description": "tag keys every taggable resource must have"}})),
    resource_guardrail(
        "aws-provider-no-static-credentials",
        "Explicit AWS providers carry no access key, secret key or session token",
        ["CKV_AWS_41"], [AWS_PROVIDER], _no_static_credentials, severity=Severity.CRITICAL),
]
