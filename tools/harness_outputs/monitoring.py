"""Computed outputs of the alert topic, alarms and Device Defender resources (pulumi-aws and
pulumi-aws-native types), in AWS's ARN formats, so the topic and key policies and the audit
configuration's targets are checkable offline."""

from __future__ import annotations

from typing import Any

from tools.harness import ACCOUNT_ID, PARTITION, RecordedResource, _digest, register_outputs


def _arn(r: RecordedResource, service: str, resource: str) -> str:
    return f"arn:{PARTITION}:{service}:{r.region or ''}:{ACCOUNT_ID}:{resource}"


@register_outputs("aws:sns/topic:Topic")
def topic(r: RecordedResource) -> dict[str, Any]:
    name = str(r.inputs.get("name") or r.name)
    return {"name": name, "arn": _arn(r, "sns", name), "owner": ACCOUNT_ID}


@register_outputs("aws:sns/topicSubscription:TopicSubscription")
def subscription(r: RecordedResource) -> dict[str, Any]:
    return {"arn": f"{r.inputs.get('topic')}:{_digest(r.urn, length=8)}-0000-4000-8000-"
                   f"{_digest(r.urn, length=12)}"}


@register_outputs("aws:cloudwatch/metricAlarm:MetricAlarm")
def metric_alarm(r: RecordedResource) -> dict[str, Any]:
    return {"arn": _arn(r, "cloudwatch", f"alarm:{r.inputs.get('name') or r.name}")}


@register_outputs("aws:cloudwatch/dashboard:Dashboard")
def dashboard(r: RecordedResource) -> dict[str, Any]:
    return {"dashboardArn": f"arn:{PARTITION}:cloudwatch::{ACCOUNT_ID}:dashboard/"
                            f"{r.inputs.get('dashboardName')}"}


@register_outputs("aws-native:iot:ScheduledAudit")
def scheduled_audit(r: RecordedResource) -> dict[str, Any]:
    return {"scheduledAuditArn": _arn(r, "iot", f"scheduledaudit/{r.inputs.get('scheduledAuditName')}")}


@register_outputs("aws-native:iot:MitigationAction")
def mitigation_action(r: RecordedResource) -> dict[str, Any]:
    name = r.inputs.get("actionName")
    return {"actionArn": _arn(r, "iot", f"mitigationaction/{name}"),
            "mitigationActionId": _digest(r.urn, length=36)}


@register_outputs("aws-native:iot:AccountAuditConfiguration")
def account_audit_configuration(r: RecordedResource) -> dict[str, Any]:
    return {}  # its identifier is its accountId input
