"""Route 53: latency (and failover) records fail over only if health-checked, and an operator
can take each region out of DNS on purpose (an evacuation control Pulumi leaves alone)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from pulumi_policy import Policy, PolicyResource, ResourceValidationArgs, Severity, StackValidationArgs

from ._common import as_list, resource_guardrail, stack_guardrail, truthy

RECORD = "aws:route53/record:Record"
HEALTH_CHECK = "aws:route53/healthCheck:HealthCheck"
# Pulumi's name for the health check's `Inverted`, the control the operator flips.
INVERTED = "invertHealthcheck"


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


def _is_evacuation_control(check: PolicyResource) -> bool:
    """A CALCULATED check with no children and threshold 0 (always healthy until inverted),
    not inverted as declared, whose `Inverted` Pulumi ignores (the operator owns it)."""
    props = check.props
    return (str(props.get("type") or "") == "CALCULATED"
            and not as_list(props.get("childHealthchecks"))
            and props.get("childHealthThreshold") in (0, 0.0)
            and not truthy(props.get(INVERTED))
            and INVERTED in list(getattr(check.opts, "ignore_changes", None) or []))


def _evacuable(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    checks = {str(r.props.get("id")): r for r in args.resources
              if r.resource_type == HEALTH_CHECK and r.props.get("id")}
    for record in args.resources:
        if record.resource_type != RECORD or not as_list(record.props.get("latencyRoutingPolicies")):
            continue
        check = checks.get(str(record.props.get("healthCheckId") or ""))
        if check is None:
            continue  # no health check (or not ours): route53-latency-records-health-checked
        children = {str(c) for c in as_list(check.props.get("childHealthchecks"))}
        controls = [checks[c] for c in children if c in checks and _is_evacuation_control(checks[c])]
        threshold = check.props.get("childHealthThreshold")
        if str(check.props.get("type") or "") != "CALCULATED" or not controls:
            yield (f"latency record {record.name} ({record.props.get('setIdentifier')}) has no "
                   "evacuation control: its health check must be CALCULATED with a child that is "
                   "CALCULATED, childless, threshold 0, not inverted and whose "
                   f"'{INVERTED}' Pulumi ignores (components/failover.py), or an operator can "
                   "take the region out of DNS only by editing records", record.urn)
        elif truthy(check.props.get(INVERTED)) or threshold != len(children):
            yield (f"latency record {record.name}: its health check must need every child "
                   f"(childHealthThreshold {threshold}, {len(children)} children) and not be "
                   "inverted, or inverting the evacuation control does not take the region out",
                   record.urn)


POLICIES: list[Policy] = [
    resource_guardrail(
        "route53-latency-records-health-checked",
        "Latency and failover records carry a health check (or evaluate alias target health)",
        ["AWS Route 53 DNS failover best practice", "AWS Well-Architected REL10-BP02"],
        [RECORD], _health_checked, severity=Severity.MEDIUM),
    stack_guardrail(
        "route53-latency-records-evacuable",
        "Every latency record's health check includes an evacuation control the operator owns "
        "(Pulumi ignores its Inverted flag) and needs every child",
        ["AWS Well-Architected REL13-BP04 (manage failover, test it)",
         "Route 53 API UpdateHealthCheck (Inverted, HealthThreshold)"],
        _evacuable, severity=Severity.MEDIUM),
]
