"""WAFv2: web ACLs that actually filter, log and measure."""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import Policy, ResourceValidationArgs, Severity, StackValidationArgs

from ._common import ADVISORY, as_list, get, resource_guardrail, stack_guardrail, truthy

WEB_ACL = "aws:wafv2/webAcl:WebAcl"
LOGGING = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"


def _has_rules(args: ResourceValidationArgs) -> Iterator[str]:
    rules = as_list(args.props.get("rules"))
    if not rules and not args.props.get("ruleJson"):
        default = args.props.get("defaultAction")
        yield (f"web ACL has no rules, so its default action ({'block' if get(default, 'block') is not None else 'allow'}) "
               "decides everything: add rate-based and managed rule groups")


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
        "wafv2-web-acl-has-rules", "WAFv2 web ACLs have at least one rule or rule group",
        ["Security Hub WAF.10", "AWS Config wafv2-webacl-not-empty"], [WEB_ACL], _has_rules),
    stack_guardrail(
        "wafv2-logging", "WAFv2 web ACLs log requests (advisory)",
        ["CKV2_AWS_31", "Security Hub WAF.11", "AWS Config wafv2-logging-enabled"],
        _logging, level=ADVISORY, severity=Severity.LOW),
    resource_guardrail(
        "wafv2-metrics", "WAFv2 web ACLs and their rules publish CloudWatch metrics (advisory)",
        ["Security Hub WAF.12"], [WEB_ACL], _metrics, level=ADVISORY, severity=Severity.LOW),
]
