"""WAFv2: web ACLs that actually filter, log and measure."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import Policy, ResourceValidationArgs, Severity, StackValidationArgs

from ._common import ADVISORY, as_list, get, resource_guardrail, stack_guardrail, truthy

WEB_ACL = "aws:wafv2/webAcl:WebAcl"
LOGGING = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"


_ACTING = ("block", "captcha", "challenge")


def rules_of(props: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The web ACL's rules, from `rules` and from `ruleJson` (AWS's JSON spelling)."""
    rules = [r for r in as_list(props.get("rules")) if isinstance(r, Mapping)]
    text = props.get("ruleJson")
    if isinstance(text, str) and text.strip():
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError):
            parsed = []
        rules += [_camel(r) for r in as_list(parsed) if isinstance(r, Mapping)]
    return rules


def _camel(value: Any) -> Any:
    """ruleJson is spelled as the WAF API (`Action`, `RateBasedStatement`); read it as the
    provider's inputs (`action`, `rateBasedStatement`)."""
    if isinstance(value, Mapping):
        return {str(k)[:1].lower() + str(k)[1:]: _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def _acts(rule: Mapping[str, Any]) -> bool:
    """Whether a rule can stop a request: its own action blocks (or challenges), or a rule
    group runs with its own actions (overrideAction none). COUNT only counts."""
    action = rule.get("action")
    if isinstance(action, Mapping) and any(action.get(a) is not None for a in _ACTING):
        return True
    override = rule.get("overrideAction")
    return isinstance(override, Mapping) and override.get("none") is not None


def rate_limits(props: Mapping[str, Any]) -> list[str]:
    """Names of the rate-based rules that block (or challenge) when the rate is exceeded."""
    return [str(rule.get("name")) for rule in rules_of(props)
            if get(rule, "statement", "rateBasedStatement") is not None and _acts(rule)]


def _has_rules(args: ResourceValidationArgs) -> Iterator[str]:
    rules = rules_of(args.props)
    default = args.props.get("defaultAction")
    blocks_by_default = get(default, "block") is not None
    if not rules:
        yield (f"web ACL has no rules, so its default action ({'block' if blocks_by_default else 'allow'}) "
               "decides everything: add rate-based and managed rule groups")
    elif not blocks_by_default and not any(_acts(r) for r in rules):
        yield ("every rule only COUNTs (action count, or rule groups with overrideAction count) "
               "and the default action allows: the web ACL stops nothing")


def _metrics(args: ResourceValidationArgs) -> Iterator[str]:
    if not truthy(get(args.props, "visibilityConfig", "cloudwatchMetricsEnabled")):
        yield "visibilityConfig.cloudwatchMetricsEnabled is not true for the web ACL"
    for rule in as_list(args.props.get("rules")):
        if not truthy(get(rule, "visibilityConfig", "cloudwatchMetricsEnabled")):
            yield f"rule {get(rule, 'name')!r} has CloudWatch metrics off"


def _logging(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    logged = {str(r.props.get("resourceArn")) for r in args.resources if r.resource_type == LOGGING}
    for acl in args.resources:
        if acl.resource_type == WEB_ACL and str(acl.props.get("arn")) not in logged:
            yield "web ACL has no aws.wafv2.WebAclLoggingConfiguration", acl.urn


POLICIES: list[Policy] = [
    resource_guardrail(
        "wafv2-web-acl-has-rules",
        "WAFv2 web ACLs have rules, and at least one of them can stop a request (block, "
        "CAPTCHA, challenge, or a rule group with its own actions), unless the default blocks",
        ["Security Hub WAF.10", "AWS Config wafv2-webacl-not-empty"], [WEB_ACL], _has_rules),
    stack_guardrail(
        "wafv2-logging", "WAFv2 web ACLs log requests (advisory)",
        ["CKV2_AWS_31", "Security Hub WAF.11", "AWS Config wafv2-logging-enabled"],
        _logging, level=ADVISORY, severity=Severity.LOW),
    resource_guardrail(
        "wafv2-metrics", "WAFv2 web ACLs and their rules publish CloudWatch metrics (advisory)",
        ["Security Hub WAF.12"], [WEB_ACL], _metrics, level=ADVISORY, severity=Severity.LOW),
]
