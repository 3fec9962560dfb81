"""Route53 health of one region's endpoint, as the latency records of the edge and the CVM use it.

A region counts as healthy only while both signals hold: its CloudWatch alarm (server-side
failures in bursts) is not in ALARM, and its endpoint accepts TCP on the service port (a TCP
check needs no client certificate, so it works for MQTT too). A plain builder, not a
component: the checks keep the caller's logical names and parent, so their URNs stay.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_aws as aws

# A gap in CloudWatch data keeps the region's last verdict rather than flapping it.
INSUFFICIENT_DATA_HEALTH_STATUS = "LastKnownStatus"
TCP_CHECK_INTERVAL_SECONDS = 30
TCP_CHECK_FAILURE_THRESHOLD = 3


def region_health_check(name: str, *, parent: pulumi.Resource, region: str,
                        alarm_name: pulumi.Input[str], fqdn: pulumi.Input[str], port: int,
                        alarm_check_label: str, tcp_check_label: str, label: str,
                        tags: Mapping[str, str]) -> aws.route53.HealthCheck:
    """`<name>-alarm-health-check` and `<name>-tcp-health-check`, combined into the returned
    `<name>-health-check` (CALCULATED). Labels are the checks' `Name` tags (Route53 console)."""
    child = pulumi.ResourceOptions(parent=parent)
    alarm_check = aws.route53.HealthCheck(
        f"{name}-alarm-health-check", type="CLOUDWATCH_METRIC",
        cloudwatch_alarm_name=alarm_name, cloudwatch_alarm_region=region,
        insufficient_data_health_status=INSUFFICIENT_DATA_HEALTH_STATUS,
        tags={**tags, "Name": alarm_check_label}, opts=child)
    tcp_check = aws.route53.HealthCheck(
        f"{name}-tcp-health-check", type="TCP", fqdn=fqdn, port=port,
        request_interval=TCP_CHECK_INTERVAL_SECONDS,
        failure_threshold=TCP_CHECK_FAILURE_THRESHOLD,
        tags={**tags, "Name": tcp_check_label}, opts=child)
    return aws.route53.HealthCheck(
        f"{name}-health-check", type="CALCULATED",
        child_healthchecks=[alarm_check.id, tcp_check.id],
        child_health_threshold=2,  # healthy only while both signals are
        tags={**tags, "Name": label}, opts=child)
