"""CloudWatch Logs: a retention floor from policy config, CMK encryption, resource policies
that let no one outside the account in."""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import Policy, PolicyConfigSchema, ResourceValidationArgs, Severity

from ._common import config, number, resource_guardrail
from ._exposure import resource_policy_check

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
LOG_RESOURCE_POLICY = "aws:cloudwatch/logResourcePolicy:LogResourcePolicy"
DEFAULT_MIN_RETENTION_DAYS = 365


def _retention(args: ResourceValidationArgs) -> Iterator[str]:
    minimum = number(config(args, "minRetentionDays", DEFAULT_MIN_RETENTION_DAYS)) or 0
    days = number(args.props.get("retentionInDays"))
    if days is None or days == 0:
        yield "retentionInDays is not set: logs would be kept forever (set an explicit retention)"
    elif days < minimum:
        yield f"retentionInDays is {days:g}; the minimum is {minimum:g}"


def _kms(args: ResourceValidationArgs) -> Iterator[str]:
    if not args.props.get("kmsKeyId"):
        yield "log group has no kmsKeyId (customer-managed key)"


RETENTION_SCHEMA = PolicyConfigSchema(properties={
    "minRetentionDays": {"type": "integer", "minimum": 1, "default": DEFAULT_MIN_RETENTION_DAYS,
                         "description": "smallest allowed retentionInDays"},
})

POLICIES: list[Policy] = [
    resource_guardrail(
        "logs-retention-minimum", "Log groups set a retention of at least `minRetentionDays`",
        ["CKV_AWS_66", "CKV_AWS_338", "NIST.800.53.R5-CloudWatchLogGroupRetentionPeriod",
         "AWS Config cw-loggroup-retention-period-check"],
        [LOG_GROUP], _retention, severity=Severity.MEDIUM, config_schema=RETENTION_SCHEMA),
    resource_guardrail(
        "logs-kms-encryption", "Log groups are encrypted with a customer-managed KMS key",
        ["CKV_AWS_158", "NIST.800.53.R5-CloudWatchLogGroupEncrypted"], [LOG_GROUP], _kms,
        severity=Severity.MEDIUM),
    resource_guardrail(
        "logs-resource-policy-scoped",
        "CloudWatch Logs resource policies admit no one outside the account; service "
        "principals (delivery.logs, states...) are pinned by aws:SourceAccount/SourceArn",
        ["AWS CloudWatch Logs confused deputy prevention (aws:SourceAccount, aws:SourceArn)",
         "IAM Access Analyzer external access findings"],
        [LOG_RESOURCE_POLICY], resource_policy_check({LOG_RESOURCE_POLICY: ("policyDocument",)})),
]
