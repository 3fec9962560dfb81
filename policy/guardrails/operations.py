"""Operations: resources of the Cloud Control provider (pulumi-aws-native) stay pinned to a
region like pulumi-aws's; the Device Defender audit is on and heard; no alarm is silent.

pulumi-aws-native resources have no `region` argument: the provider they are registered with
decides where they land. This program gives each region its own explicit provider
(components/regional.py); a resource on the default provider would land in whatever
`aws-native:region` the stack config happens to hold.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import (
    Policy,
    PolicyConfigSchema,
    ResourceValidationArgs,
    Severity,
    StackValidationArgs,
)

from ._common import as_list, config, get, resource_guardrail, stack_guardrail, truthy

NATIVE_PROVIDER = "pulumi:providers:aws-native"
AUDIT_CONFIGURATION = "aws-native:iot:AccountAuditConfiguration"
SCHEDULED_AUDIT = "aws-native:iot:ScheduledAudit"
METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
COMPOSITE_ALARM = "aws:cloudwatch/compositeAlarm:CompositeAlarm"

# The checks an IoT fleet's audit cannot do without (Device Defender's critical and high
# severity checks that apply to any X.509 fleet).
DEFAULT_REQUIRED_CHECKS = [
    "REVOKED_CA_CERTIFICATE_STILL_ACTIVE_CHECK", "REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK",
    "DEVICE_CERTIFICATE_SHARED_CHECK", "CA_CERTIFICATE_EXPIRING_CHECK",
    "DEVICE_CERTIFICATE_EXPIRING_CHECK", "IOT_POLICY_OVERLY_PERMISSIVE_CHECK",
    "UNAUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK", "LOGGING_DISABLED_CHECK",
]


def check_property(check_name: str) -> str:
    """`REVOKED_CA_CERTIFICATE_STILL_ACTIVE_CHECK` -> `revokedCaCertificateStillActiveCheck`
    (the Cloud Control property of that check; one irregular spelling)."""
    if check_name == "IOT_POLICY_POTENTIAL_MIS_CONFIGURATION_CHECK":
        return "ioTPolicyPotentialMisConfigurationCheck"
    words = check_name.lower().split("_")
    return words[0] + "".join(w.title() for w in words[1:])


def enabled_checks(props: Mapping[str, Any]) -> set[str]:
    """The check properties an audit configuration turns on."""
    checks = props.get("auditCheckConfigurations")
    if not isinstance(checks, Mapping):
        return set()
    return {name for name, value in checks.items() if truthy(get(value, "enabled"))}


def _native_provider(args: ResourceValidationArgs) -> Iterator[str]:
    if not args.resource_type.startswith("aws-native:"):
        return
    provider = args.provider
    if provider is None or provider.resource_type != NATIVE_PROVIDER or \
            provider.name.startswith("default"):
        yield ("uses the default aws-native provider, whose region is whatever the stack config "
               "says; register it with the region's explicit aws-native provider")
        return
    region = provider.props.get("region") if isinstance(provider.props, Mapping) else None
    if not isinstance(region, str) or not region:
        yield f"its aws-native provider {provider.name} names no region"
        return
    allowed = {str(r) for r in as_list(config(args, "allowedRegions", []))}
    if allowed and region not in allowed:
        yield f"lands in {region} (its provider's region), outside {sorted(allowed)}"


def _audit_notified(args: ResourceValidationArgs) -> Iterator[str]:
    sns = get(args.props, "auditNotificationTargetConfigurations", "sns")
    if not isinstance(sns, Mapping) or not truthy(sns.get("enabled")):
        yield "audit findings are not sent anywhere (no enabled SNS notification target)"
    elif not sns.get("targetArn") or not sns.get("roleArn"):
        yield "the SNS notification target needs both targetArn and roleArn"


def _audit_checks(args: ResourceValidationArgs) -> Iterator[str]:
    required = [str(c) for c in as_list(config(args, "requiredChecks", DEFAULT_REQUIRED_CHECKS))]
    on = enabled_checks(args.props)
    missing = [c for c in required if check_property(c) not in on]
    if missing:
        yield f"required audit checks not enabled: {', '.join(missing)}"


def _alarm_heard(args: ResourceValidationArgs) -> Iterator[str]:
    if not truthy(args.props.get("actionsEnabled", True)):
        yield "actionsEnabled is false: the alarm changes state and tells no one"
    elif not [a for a in as_list(args.props.get("alarmActions")) if a]:
        yield "no alarmActions: the alarm changes state and tells no one"


def _native_tags(args: ResourceValidationArgs) -> Iterator[str]:
    if not args.resource_type.startswith("aws-native:") or "tags" not in args.props:
        return
    present = {str(get(t, "key")): str(get(t, "value") or "") for t in as_list(args.props.get("tags"))
               if isinstance(t, Mapping)}
    required = [str(t) for t in as_list(config(args, "requiredTags", ["owner", "environment"]))]
    missing = [t for t in required if not present.get(t, "").strip()]
    if missing:
        yield f"missing required tag(s): {', '.join(missing)}"


def _scheduled_checks_enabled(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    """A scheduled audit may only target checks its region's configuration enables (AWS
    refuses the audit otherwise); judged where this stack declares that configuration."""
    def region(resource: Any) -> str | None:
        props = resource.provider.props if resource.provider is not None else None
        value = props.get("region") if isinstance(props, Mapping) else None
        return value if isinstance(value, str) else None

    configured = {region(r): enabled_checks(r.props) for r in args.resources
                  if r.resource_type == AUDIT_CONFIGURATION}
    for audit in args.resources:
        if audit.resource_type != SCHEDULED_AUDIT or region(audit) not in configured:
            continue
        off = [str(c) for c in as_list(audit.props.get("targetCheckNames"))
               if check_property(str(c)) not in configured[region(audit)]]
        if off:
            yield (f"targets checks its region's audit configuration leaves off: {', '.join(off)}",
                   audit.urn)


REGIONS_SCHEMA = PolicyConfigSchema(properties={
    "allowedRegions": {"type": "array", "items": {"type": "string"}, "default": [],
                       "description": "regions aws-native resources may use; empty = any"}})

POLICIES: list[Policy] = [
    resource_guardrail(
        "aws-native-explicit-regional-provider",
        "Cloud Control (aws-native) resources use an explicit provider pinned to a region "
        "(in the allowed regions when configured), never the default provider",
        ["AWS Organizations SCP region deny (aws:RequestedRegion)"],
        None, _native_provider, severity=Severity.HIGH, config_schema=REGIONS_SCHEMA),
    resource_guardrail(
        "iot-audit-findings-notified",
        "The Device Defender audit configuration sends findings to an SNS target with a role",
        ["AWS IoT Device Defender audit notifications", "AWS IoT Lens IOTSEC 10"],
        [AUDIT_CONFIGURATION], _audit_notified, severity=Severity.MEDIUM),
    resource_guardrail(
        "iot-audit-required-checks",
        "The Device Defender audit configuration enables the checks policy config "
        "`requiredChecks` lists (default: revoked/shared/expiring certificates, permissive "
        "policies and Cognito roles, logging disabled)",
        ["AWS IoT Device Defender audit checks", "AWS IoT Lens IOTSEC 10"],
        [AUDIT_CONFIGURATION], _audit_checks, severity=Severity.HIGH,
        config_schema=PolicyConfigSchema(properties={
            "requiredChecks": {"type": "array", "items": {"type": "string"},
                               "default": DEFAULT_REQUIRED_CHECKS,
                               "description": "audit check names that must be enabled"}})),
    stack_guardrail(
        "iot-scheduled-audit-checks-enabled",
        "A scheduled audit targets only checks its region's declared audit configuration "
        "enables",
        ["UpdateAccountAuditConfiguration / CreateScheduledAudit API contract"],
        _scheduled_checks_enabled, severity=Severity.MEDIUM),
    resource_guardrail(
        "cloudwatch-alarm-has-actions",
        "Every CloudWatch alarm notifies someone (alarmActions set, actions enabled)",
        ["AWS Config cloudwatch-alarm-action-check", "Security Hub CloudWatch.15"],
        [METRIC_ALARM, COMPOSITE_ALARM], _alarm_heard, severity=Severity.MEDIUM),
    resource_guardrail(
        "aws-native-required-tags",
        "Taggable aws-native resources carry every tag in policy config `requiredTags` "
        "(Cloud Control tags are key/value lists)",
        ["AWS Config required-tags", "AWS Organizations tag policies"],
        None, _native_tags, severity=Severity.LOW,
        config_schema=PolicyConfigSchema(properties={
            "requiredTags": {"type": "array", "items": {"type": "string"},
                             "default": ["owner", "environment"],
                             "description": "tag keys every taggable resource must have"}})),
]

# What each guardrail cannot see (rendered into docs/policy.md by policy/limits.py).
LIMITS: dict[str, str] = {
    "aws-native-explicit-regional-provider": "A provider whose name starts with 'default' counts as the "
                                             "default provider; allowedRegions as for allowed-regions.",
    "iot-audit-findings-notified": "Does not check that the role may publish to the topic (the IAM "
                                   "guardrails judge the role).",
    "iot-audit-required-checks": "Judges declared configurations only: with iotAccountSettings.audit"
                                 "Configuration 'adopt' (changes ignored) or 'leave' the account's real "
                                 "checks are not visible.",
    "iot-scheduled-audit-checks-enabled": "Judged only in regions whose audit configuration this stack "
                                          "declares; the region comes from the explicit provider.",
    "cloudwatch-alarm-has-actions": "Does not check that the action's topic has a subscriber.",
    "aws-native-required-tags": "Only resources whose props carry a tags list are judged; pulumi-aws "
                                "types are left to required-tags.",
}
