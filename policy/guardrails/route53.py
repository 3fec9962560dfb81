"""Route 53: latency (and failover) records fail over only if health-checked."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from pulumi_policy import Policy, ResourceValidationArgs, Severity

from ._common import as_list, resource_guardrail, truthy

RECORD = "aws:route53/record:Record"


def _health_checked(args: ResourceValidationArgs) -> Iterator[str]:
    props = args.props
    routed = as_list(props.get("latencyRoutingPolicies")) or as_list(props.get("failoverRoutingPolicies"))
    if not routed or props.get("healthCheckId"):
        return
    aliases = [a for a in as_list(props.get("aliases")) if isinstance(a, Mapping)]
    if aliases and all(truthy(a.get("evaluateTargetHealth")) for a in aliases):
        return
    yield ("latency/failover record without healthCheckId (or alias evaluateTargetHealth): "
           "Route 53 keeps answering with an unhealthy region")


POLICIES: list[Policy] = [
    resource_guardrail(
        "route53-latency-records-health-checked",
        "Latency and failover records carry a health check (or evaluate alias target health)",
        ["AWS Route 53 DNS failover best practice", "AWS Well-Architected REL10-BP02"],
        [RECORD], _health_checked, severity=Severity.MEDIUM),
]
