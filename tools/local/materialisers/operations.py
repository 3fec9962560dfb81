"""Operations types with nothing to run locally (alert topics, metric filters, Device
Defender through the aws-native provider), and why (listed in the report)."""

from __future__ import annotations

from tools.local.materialise import not_materialised

for _type, _reason in {
    "aws:cloudwatch/logMetricFilter:LogMetricFilter": "no metrics locally",
    "aws:sns/topic:Topic": "alarms and audit findings publish to it: no metrics or audits locally",
    "aws:sns/topicPolicy:TopicPolicy": "with its topic",
    "aws:sns/topicSubscription:TopicSubscription": "with its topic (no mail locally)",
    "aws-native:iot:AccountAuditConfiguration": "moto has no Device Defender",
    "aws-native:iot:ScheduledAudit": "moto has no Device Defender",
    "aws-native:iot:MitigationAction": "moto has no Device Defender",
    "pulumi:providers:aws-native": "a provider: its region is each aws-native resource's region",
}.items():
    not_materialised(_type, _reason)
