"""A region's fail-over endpoint, as the device edge and the CVM both declare it (plain builders).

Two steps, because each caller puts its own endpoint (IoT domain configuration, API Gateway
custom domain) between them:

1. `dns_validated_certificate`: this region's ACM certificate for the endpoint's name and
   the wait for ACM to issue it. The DNS validation record itself is NOT declared here: ACM
   asks for the same CNAME in every region of an account, so one global owner declares it
   (`validation_record`, used by the edge's and each capability's global part) and every
   region only waits for it by name.
2. `latency_endpoint`: the region's health (a CloudWatch alarm on server-side failures in
   bursts, a TCP check of the endpoint's port and the operator's evacuation control,
   combined) and its latency record, answered only while the region is healthy.

Builders, not components: the resources keep the caller's logical names and parent, so the
URNs the edge and the CVM always had do not change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws


# Server-side failures in at least 3 of the last 5 minutes put a region out of DNS.
ALARM_PERIOD_SECONDS = 60
ALARM_EVALUATION_PERIODS = 5
ALARM_DATAPOINTS_TO_ALARM = 3
# A gap in CloudWatch data keeps the region's last verdict rather than flapping it.
INSUFFICIENT_DATA_HEALTH_STATUS = "LastKnownStatus"
TCP_CHECK_INTERVAL_SECONDS = 30
TCP_CHECK_FAILURE_THRESHOLD = 3
# ACM re-checks the record at every renewal; it never changes, so a long TTL is fine.
VALIDATION_RECORD_TTL = 300
# One of the two key types AWS IoT accepts; RSA suits the most devices (and API Gateway).
CERTIFICATE_KEY_ALGORITHM = "RSA_2048"


@dataclass(frozen=True)
class DnsValidationRecord:
    name: str
    type: str
    value: str


def validation_record_for(options: Sequence[aws.acm.outputs.CertificateDomainValidationOption],
                          domain: str) -> DnsValidationRecord:
    """The validation record ACM asks for `domain` (raises if ACM did not ask for one)."""
    for option in options:
        if (option.domain_name or "").rstrip(".").lower() == domain:
            if not (option.resource_record_name and option.resource_record_type
                    and option.resource_record_value):
                raise ValueError(f"ACM returned an incomplete validation option for {domain!r}")
            return DnsValidationRecord(option.resource_record_name, option.resource_record_type,
                                       option.resource_record_value)
    raise ValueError(f"ACM returned no DNS validation option for {domain!r}")


@dataclass(frozen=True)
class ValidatedCertificate:
    certificate: aws.acm.Certificate
    # The certificate's ARN once ACM has issued it (use this, not certificate.arn).
    arn: pulumi.Output[str]


def dns_validated_certificate(name: str, *, parent: pulumi.Resource, region: str, domain: str,
                              tags: Mapping[str, str]) -> ValidatedCertificate:
    """`<name>` (the certificate) and `<name>-validation` (the wait for its issue)."""
    certificate = aws.acm.Certificate(
        name, region=region, domain_name=domain, validation_method="DNS",
        key_algorithm=CERTIFICATE_KEY_ALGORITHM, tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent))
    validation_fqdn = certificate.domain_validation_options.apply(
        lambda options: validation_record_for(options, domain).name.rstrip("."))
    validation = aws.acm.CertificateValidation(
        f"{name}-validation", region=region, certificate_arn=certificate.arn,
        validation_record_fqdns=[validation_fqdn], opts=pulumi.ResourceOptions(parent=parent))
    return ValidatedCertificate(certificate, validation.certificate_arn)


def validation_record(name: str, *, parent: pulumi.Resource, hosted_zone_id: str,
                      certificate: aws.acm.Certificate, domain: str,
                      opts: pulumi.ResourceOptions | None = None) -> aws.route53.Record:
    """ACM's DNS-validation CNAME for `domain`, from one region's certificate. Declared once
    per domain by a global owner whose logical name names no region: changing the primary
    region then changes nothing (a region-named owner would create the record anew, with
    `allow_overwrite`, and then delete the old resource: the same record)."""
    record = certificate.domain_validation_options.apply(
        lambda options: validation_record_for(options, domain))
    return aws.route53.Record(
        name, zone_id=hosted_zone_id, name=record.apply(lambda r: r.name),
        type=record.apply(lambda r: r.type), records=[record.apply(lambda r: r.value)],
        ttl=VALIDATION_RECORD_TTL,
        # The record is deterministic per account and domain: if an earlier, manual
        # validation left the identical record behind, take it over instead of failing.
        allow_overwrite=True,
        opts=pulumi.ResourceOptions(parent=parent).merge(opts))


@dataclass(frozen=True)
class ServerErrorAlarm:
    """The CloudWatch alarm that takes a region out of DNS (metric summed per minute)."""

    logical_suffix: str  # `<name><suffix>`, e.g. `-api-health`
    alarm_name: str
    description: str
    namespace: str
    metric_name: str
    dimensions: Mapping[str, str]
    errors_per_minute: int


@dataclass(frozen=True)
class HealthLabels:
    """`Name` tags of the four Route53 health checks (what the Route53 console shows)."""

    alarm_check: str
    tcp_check: str
    combined: str

    @property
    def evacuation_control(self) -> str:
        return f"{self.combined}-evacuation-control"


@dataclass(frozen=True)
class CnameTarget:
    value: pulumi.Input[str]
    ttl: int


@dataclass(frozen=True)
class AliasTarget:
    name: pulumi.Input[str]
    zone_id: pulumi.Input[str]


@dataclass(frozen=True)
class LatencyEndpoint:
    alarm: aws.cloudwatch.MetricAlarm
    health_check: aws.route53.HealthCheck
    record: aws.route53.Record
    # The operator's switch (`python -m tools.evacuate`): inverted, the region leaves DNS.
    evacuation_control: aws.route53.HealthCheck


@dataclass(frozen=True)
class LatencyEndpointSpec:
    region: str
    hosted_zone_id: str
    domain: str
    alarm: ServerErrorAlarm
    probe_fqdn: pulumi.Input[str]  # what the TCP check connects to
    probe_port: int
    labels: HealthLabels
    target: CnameTarget | AliasTarget
    tags: Mapping[str, str] = field(default_factory=dict)
    # The record answers with this region only once these exist (e.g. the endpoint serving it).
    record_depends_on: Sequence[pulumi.Resource] = ()


# The evacuation control's only input the operator changes (Pulumi's name for `Inverted`).
EVACUATION_CONTROL_FIELD = "invertHealthcheck"


@dataclass(frozen=True)
class RegionHealth:
    combined: aws.route53.HealthCheck
    evacuation_control: aws.route53.HealthCheck


def region_health_check(name: str, *, parent: pulumi.Resource, region: str,
                        alarm_name: pulumi.Input[str], fqdn: pulumi.Input[str], port: int,
                        labels: HealthLabels, tags: Mapping[str, str]) -> RegionHealth:
    """`<name>-alarm-health-check`, `<name>-tcp-health-check` and
    `<name>-evacuation-control`, combined into `<name>-health-check` (CALCULATED): healthy
    only while all three are.

    The evacuation control is a CALCULATED check with no children and a threshold of 0,
    which Route53 always considers healthy (API UpdateHealthCheck, HealthThreshold: "If you
    specify 0, Route 53 always considers this health check to be healthy"); inverting it
    (`Inverted`, "Route 53 considers the health check to be unhealthy when the status is
    healthy") makes it always unhealthy, and with it the region. Only the operator's tool
    sets `Inverted`: Pulumi ignores the field, so `pulumi up` during an evacuation neither
    readmits the region nor shows a diff for it (components/edge/README.md). The region's
    own signals stay children, so an evacuated region that also fails is not readmitted by
    accident, as inverting the combined check itself would do."""
    child = pulumi.ResourceOptions(parent=parent)
    alarm_check = aws.route53.HealthCheck(
        f"{name}-alarm-health-check", type="CLOUDWATCH_METRIC",
        cloudwatch_alarm_name=alarm_name, cloudwatch_alarm_region=region,
        insufficient_data_health_status=INSUFFICIENT_DATA_HEALTH_STATUS,
        tags={**tags, "Name": labels.alarm_check}, opts=child)
    tcp_check = aws.route53.HealthCheck(
        f"{name}-tcp-health-check", type="TCP", fqdn=fqdn, port=port,
        request_interval=TCP_CHECK_INTERVAL_SECONDS,
        failure_threshold=TCP_CHECK_FAILURE_THRESHOLD,
        tags={**tags, "Name": labels.tcp_check}, opts=child)
    control = aws.route53.HealthCheck(
        f"{name}-evacuation-control", type="CALCULATED", child_healthchecks=[],
        child_health_threshold=0, invert_healthcheck=False,
        tags={**tags, "Name": labels.evacuation_control},
        opts=pulumi.ResourceOptions(parent=parent, ignore_changes=[EVACUATION_CONTROL_FIELD]))
    children = [alarm_check.id, tcp_check.id, control.id]
    combined = aws.route53.HealthCheck(
        f"{name}-health-check", type="CALCULATED",
        child_healthchecks=children, child_health_threshold=len(children),
        tags={**tags, "Name": labels.combined}, opts=child)
    return RegionHealth(combined, control)


def latency_endpoint(name: str, *, parent: pulumi.Resource,
                     spec: LatencyEndpointSpec) -> LatencyEndpoint:
    """`<name><alarm suffix>`, the health checks of `region_health_check` and
    `<name>-latency-record`: this region's answer for `spec.domain` while it is healthy."""
    tags = dict(spec.tags)
    alarm = aws.cloudwatch.MetricAlarm(
        f"{name}{spec.alarm.logical_suffix}", region=spec.region, name=spec.alarm.alarm_name,
        alarm_description=spec.alarm.description, namespace=spec.alarm.namespace,
        metric_name=spec.alarm.metric_name, dimensions=dict(spec.alarm.dimensions),
        statistic="Sum", period=ALARM_PERIOD_SECONDS,
        evaluation_periods=ALARM_EVALUATION_PERIODS,
        datapoints_to_alarm=ALARM_DATAPOINTS_TO_ALARM,
        threshold=spec.alarm.errors_per_minute,
        comparison_operator="GreaterThanOrEqualToThreshold",
        # No datapoint in a minute without errors: that is healthy.
        treat_missing_data="notBreaching", tags=tags,
        opts=pulumi.ResourceOptions(parent=parent))
    health = region_health_check(
        name, parent=parent, region=spec.region, alarm_name=alarm.name,
        fqdn=spec.probe_fqdn, port=spec.probe_port, labels=spec.labels, tags=tags)
    health_check = health.combined
    target = spec.target
    routing = [aws.route53.RecordLatencyRoutingPolicyArgs(region=spec.region)]
    if isinstance(target, CnameTarget):
        record = aws.route53.Record(
            f"{name}-latency-record", zone_id=spec.hosted_zone_id, name=spec.domain,
            type="CNAME", ttl=target.ttl, records=[target.value], set_identifier=spec.region,
            latency_routing_policies=routing, health_check_id=health_check.id,
            opts=pulumi.ResourceOptions(parent=parent,
                                        depends_on=list(spec.record_depends_on)))
    else:
        record = aws.route53.Record(
            f"{name}-latency-record", zone_id=spec.hosted_zone_id, name=spec.domain,
            type="A", set_identifier=spec.region, latency_routing_policies=routing,
            health_check_id=health_check.id,
            aliases=[aws.route53.RecordAliasArgs(
                name=target.name, zone_id=target.zone_id, evaluate_target_health=True)],
            opts=pulumi.ResourceOptions(parent=parent,
                                        depends_on=list(spec.record_depends_on)))
    return LatencyEndpoint(alarm, health_check, record, health.evacuation_control)
