"""IoT: our CA registration (the declared PEM), policies, topic rules. Topic rules are stored
in moto (so `--keep` users can list them); the rules-engine emulation runs them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tools.harness import RecordedResource
from tools.local.materialise import materialiser, not_materialised
from tools.local.materialisers import tag_list
from tools.local.world import Materialised, World

# Topic rule inputs that are lists of actions, each becoming one `{key: action}` entry.
RULE_ACTION_KEYS = (
    "stepFunctions", "sqs", "lambdas", "dynamodbv2s", "sns", "kineses", "firehoses",
    "republishes", "s3", "cloudwatchLogs", "cloudwatchMetrics", "iotEvents", "https",
)
# Pulumi's plural list names -> the API's action key.
_API_ACTION_NAMES = {"lambdas": "lambda", "dynamodbv2s": "dynamoDBv2", "kineses": "kinesis",
                     "firehoses": "firehose", "republishes": "republish"}


def rule_payload(state: Mapping[str, Any]) -> dict[str, Any]:
    actions = []
    for key in RULE_ACTION_KEYS:
        for action in state.get(key) or []:
            actions.append({_API_ACTION_NAMES.get(key, key): dict(action)})
    payload: dict[str, Any] = {
        "sql": state["sql"], "awsIotSqlVersion": state.get("sqlVersion") or "2016-03-23",
        "ruleDisabled": not state.get("enabled", True), "actions": actions,
        "description": state.get("description") or "",
    }
    error_action = state.get("errorAction") or {}
    for key, action in error_action.items():
        payload["errorAction"] = {_API_ACTION_NAMES.get(key, key): dict(action)}
    return payload


@materialiser("aws:iot/policy:Policy")
def policy(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    region = str(resource.region)
    system.client("iot", region).create_policy(policyName=state["name"],
                                               policyDocument=state["policy"])
    return [Materialised(resource.type, resource.name, region, state["name"])]


@materialiser("aws:iot/caCertificate:CaCertificate")
def ca_certificate(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    region = str(resource.region)
    registered = system.client("iot", region).register_ca_certificate(
        caCertificate=state["caCertificatePem"], setAsActive=bool(state.get("active")),
        allowAutoRegistration=bool(state.get("allowAutoRegistration")),
        certificateMode=state.get("certificateMode") or "DEFAULT",
        tags=tag_list(state.get("tags")))
    system.resolver.learn(resource.id, registered["certificateId"])
    system.resolver.learn(resource.outputs.get("arn"), registered["certificateArn"])
    return [Materialised(resource.type, resource.name, region, registered["certificateId"])]


@materialiser("aws:iot/topicRule:TopicRule")
def topic_rule(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    region = str(resource.region)
    system.client("iot", region).create_topic_rule(
        ruleName=state["name"], topicRulePayload=rule_payload(state),
        tags="&".join(f"{k}={v}" for k, v in sorted((state.get("tags") or {}).items())))
    return [Materialised(resource.type, resource.name, region, state["name"])]


not_materialised("aws:iot/domainConfiguration:DomainConfiguration",
                 "no TLS endpoint locally: devices reach the region through the device gateway emulation")
not_materialised("aws:iot/loggingOptions:LoggingOptions", "no IoT logs locally")
not_materialised("aws:iot/eventConfigurations:EventConfigurations",
                 "moto has no registry events; nothing in the run subscribes to them")
