"""The one alert topic of a region (a plain builder, like components/dead_letters.py): SNS,
encrypted with the region's CMK, refusing requests without TLS, open to CloudWatch alarms of
this account and region only, with the subscriptions the stack config lists.

CloudWatch publishes alarm notifications as the service principal `cloudwatch.amazonaws.com`,
so the topic policy allows it (pinned to this account's alarms whose names start with the
region's prefix) and the key policy lets it use the key ("Enable compatibility between event
sources from AWS services and encrypted topics",
https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services);
`alarm_publisher_key_statement` is that key-policy statement. Device Defender publishes
audit findings with a role of ours (components/audit/), which IAM authorises.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

from components.iam import Statement, policy_document
from components.monitoring.settings import Subscription


def alarm_source_arn(partition: str, region: str, account_id: str, prefix: str) -> str:
    """Every alarm of this region's stack: their names all start with `<prefix>-`."""
    return f"arn:{partition}:cloudwatch:{region}:{account_id}:alarm:{prefix}-*"


def alarm_publisher_key_statement(*, partition: str, region: str, account_id: str,
                                  prefix: str) -> Statement:
    return {
        "Sid": "CloudWatchAlarmsPublishToOurEncryptedTopic",
        "Effect": "Allow",
        "Principal": {"Service": "cloudwatch.amazonaws.com"},
        "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
        "Resource": "*",
        "Condition": {
            "StringEquals": {"aws:SourceAccount": account_id},
            "ArnLike": {"aws:SourceArn": alarm_source_arn(partition, region, account_id,
                                                          prefix)},
        },
    }


def alert_topic_policy(*, topic_arn: str, partition: str, region: str, account_id: str,
                       prefix: str) -> str:
    return policy_document([
        {"Sid": "CloudWatchAlarmsOfThisRegion", "Effect": "Allow",
         "Principal": {"Service": "cloudwatch.amazonaws.com"}, "Action": "sns:Publish",
         "Resource": topic_arn,
         "Condition": {
             "StringEquals": {"aws:SourceAccount": account_id},
             "ArnLike": {"aws:SourceArn": alarm_source_arn(partition, region, account_id,
                                                           prefix)}}},
        {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*",
         "Action": "sns:*", "Resource": topic_arn,
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    ])


def alert_topic(name: str, *, parent: pulumi.Resource, region: str, topic_name: str,
                prefix: str, kms_key_arn: pulumi.Input[str], account_id: pulumi.Input[str],
                partition: pulumi.Input[str], subscriptions: Sequence[Subscription],
                tags: Mapping[str, str]) -> aws.sns.Topic:
    """`<name>`, `<name>-policy` and `<name>-subscription-<n>`, children of `parent`."""
    child = pulumi.ResourceOptions(parent=parent)
    topic = aws.sns.Topic(name, region=region, name=topic_name, kms_master_key_id=kms_key_arn,
                          tags=dict(tags), opts=child)
    aws.sns.TopicPolicy(
        f"{name}-policy", region=region, arn=topic.arn,
        policy=pulumi.Output.all(topic.arn, partition, account_id).apply(
            lambda v: alert_topic_policy(topic_arn=v[0], partition=v[1], region=region,
                                         account_id=v[2], prefix=prefix)),
        opts=child)
    for index, subscription in enumerate(subscriptions):
        aws.sns.TopicSubscription(
            f"{name}-subscription-{index}", region=region, topic=topic.arn,
            protocol=subscription.protocol, endpoint=subscription.endpoint, opts=child)
    return topic


def alarm_actions_transformation(
        topic_arn: pulumi.Input[str]) -> pulumi.ResourceTransformation:
    """A transformation that makes every CloudWatch alarm below a component notify the alert
    topic when it goes into ALARM and back to OK. Applied by RegionalStack to everything it
    builds, so an alarm added by any capability later is never silent."""

    def notify(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        if args.type_ not in ("aws:cloudwatch/metricAlarm:MetricAlarm",
                              "aws:cloudwatch/compositeAlarm:CompositeAlarm"):
            return None
        props = dict(args.props)
        for key in ("alarm_actions", "ok_actions"):
            existing: Any = props.get(key) or []
            props[key] = [*existing, topic_arn]
        return pulumi.ResourceTransformationResult(props, args.opts)

    return notify
