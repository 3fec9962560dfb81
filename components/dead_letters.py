"""The one way this project declares a dead-letter queue (a plain builder, no component):
encrypted with the region's CMK, refusing any request not made over TLS, keeping messages
long enough to notice and replay them. Logical names `<name>` and `<name>-policy`, children
of the caller."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_aws as aws

from components.iam import ssl_only_queue_policy

# SQS's maximum: time to notice a failure and replay it.
MAX_RETENTION_SECONDS = 14 * 24 * 3600


def dead_letter_queue(name: str, *, parent: pulumi.Resource, region: str, queue_name: str,
                      kms_key_arn: pulumi.Input[str], tags: Mapping[str, str],
                      retention_seconds: int = MAX_RETENTION_SECONDS) -> aws.sqs.Queue:
    child = pulumi.ResourceOptions(parent=parent)
    queue = aws.sqs.Queue(
        name, region=region, name=queue_name,
        kms_master_key_id=kms_key_arn, kms_data_key_reuse_period_seconds=300,
        message_retention_seconds=retention_seconds, tags=dict(tags), opts=child)
    aws.sqs.QueuePolicy(
        f"{name}-policy", region=region, queue_url=queue.url,
        policy=queue.arn.apply(ssl_only_queue_policy), opts=child)
    return queue
