"""SQS queues (attributes as declared) and their queue policies."""

from __future__ import annotations

import json
from collections.abc import Iterable

from tools.harness import RecordedResource
from tools.local.materialise import materialiser
from tools.local.materialisers import whole
from tools.local.world import Materialised, World

# Pulumi input -> SQS attribute name.
QUEUE_ATTRIBUTES = {
    "kmsMasterKeyId": "KmsMasterKeyId",
    "kmsDataKeyReusePeriodSeconds": "KmsDataKeyReusePeriodSeconds",
    "messageRetentionSeconds": "MessageRetentionPeriod",
    "visibilityTimeoutSeconds": "VisibilityTimeout",
    "delaySeconds": "DelaySeconds",
    "maxMessageSize": "MaximumMessageSize",
    "receiveWaitTimeSeconds": "ReceiveMessageWaitTimeSeconds",
    "sqsManagedSseEnabled": "SqsManagedSseEnabled",
    "fifoQueue": "FifoQueue",
    "contentBasedDeduplication": "ContentBasedDeduplication",
    "redrivePolicy": "RedrivePolicy",
    "policy": "Policy",
}


@materialiser("aws:sqs/queue:Queue")
def queue(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    region = str(resource.region)
    attributes = {}
    for key, name in QUEUE_ATTRIBUTES.items():
        value = state.get(key)
        if value is None or value == "":
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (dict, list)):
            value = json.dumps(value)
        attributes[name] = whole(value)
    created = system.client("sqs", region).create_queue(
        QueueName=state["name"], Attributes=attributes,
        tags={str(k): str(v) for k, v in (state.get("tags") or {}).items()})
    system.resolver.learn(resource.id, created["QueueUrl"])  # a queue's id is its URL
    system.resolver.learn(resource.outputs.get("url"), created["QueueUrl"])
    return [Materialised(resource.type, resource.name, region, state["name"])]


@materialiser("aws:sqs/queuePolicy:QueuePolicy")
def queue_policy(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    region = str(resource.region)
    system.client("sqs", region).set_queue_attributes(QueueUrl=state["queueUrl"],
                                                      Attributes={"Policy": state["policy"]})
    return [Materialised(resource.type, resource.name, region, state["queueUrl"])]
