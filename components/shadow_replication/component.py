"""Shadow replication in one region (README.md in this folder):

* capture: four IoT rules (classic and named shadows; updates and deletes) hand this
  region's shadow changes to the function, which records the newest state of each shadow in
  the device-data global table (writer region, origin timestamp, conditional on the version
  it read);
* apply: an event source mapping on this region's device-data replica stream hands the
  function the shadow records *other* regions wrote; it makes the local shadow equal to the
  table's current record, with a client token that the capture rules drop (no echo).

Failures end in a retry or the DLQ (malformed input directly, with its content).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pulumi
import pulumi_aws as aws

from components.account import AwsAccount
from components.dead_letters import dead_letter_queue
from components.global_tables import RegionalTable
from components.iam import (
    Statement,
    dead_letter_statements,
    lambda_basic_statements,
    policy_document,
    service_trust_policy,
    stream_read_statements,
    table_key_statement,
)
from components.lambda_function import dependencies_layer, python_function
from components.naming import role_name
from components.packaging import LambdaLayer
from components.shadow_replication.settings import FleetOrganisation, regional_policy
from lambdas.contracts.environment import ShadowReplicationEnvironment
from lambdas.contracts.shadows import KEY_PREFIX, REPLICA_TOKEN_PREFIX, Attr

PACKAGE = "shadow_replication"
SQL_VERSION = "2016-03-23"
# A new region replays the stream's last 24 h; every record converges to the current item.
STARTING_POSITION = "TRIM_HORIZON"
BATCH_SIZE = 10
MAXIMUM_RETRY_ATTEMPTS = 5
MAXIMUM_RECORD_AGE_SECONDS = 86_400
# Asynchronous invocations by the rules: Lambda's default is 2 retries; then the DLQ.
CAPTURE_RETRY_ATTEMPTS = 2
CAPTURE_MAXIMUM_EVENT_AGE_SECONDS = 3_600

# Shadow topics (Device Shadow service MQTT topics): the full document after every accepted
# update, and the acceptance of every delete, for classic and named shadows.
_ECHO_FILTER = f"WHERE isUndefined(clientToken) OR NOT startswith(clientToken, '{REPLICA_TOKEN_PREFIX}')"


@dataclass(frozen=True)
class CaptureRule:
    suffix: str  # rule-name suffix
    topic: str
    operation: str  # UPDATE | DELETE
    named: bool

    def description(self) -> str:
        return (f"Shadow replication: this region's shadow {self.operation.lower()}s "
                f"({'named' if self.named else 'classic'})")

    def sql(self) -> str:
        shadow = "topic(6)" if self.named else "''"
        if self.operation == "UPDATE":
            fields = "current.state AS state, current.version AS version"
        else:
            fields = "version"
        return (f"SELECT topic(3) AS thingName, {shadow} AS shadowName, "
                f"'{self.operation}' AS operation, timestamp, {fields}, clientToken "
                f"FROM '{self.topic}' {_ECHO_FILTER}")


@dataclass(frozen=True)
class RegistryRule:
    """Registry events (AWS IoT "Registry events"): thing created/updated/deleted carry the
    thing's attributes and thing type; membership added/removed name the group and the
    thing in the topic. No client token exists: echoes are dropped by convergence."""

    suffix: str
    topic: str
    kind: str  # THING | MEMBERSHIP

    def description(self) -> str:
        return f"Device organisation replication: this region's {self.kind.lower()} registry events"

    def sql(self) -> str:
        if self.kind == "THING":
            fields = ("topic(4) AS thingName, 'THING' AS kind, operation, timestamp, "
                      "eventId, thingTypeName, attributes")
        else:
            fields = ("topic(7) AS thingName, topic(5) AS groupName, 'MEMBERSHIP' AS kind, "
                      "operation, timestamp, eventId")
        return f"SELECT {fields} FROM '{self.topic}'"


REGISTRY_RULES: tuple[RegistryRule, ...] = (
    RegistryRule("thing", "$aws/events/thing/+/+", "THING"),
    RegistryRule("membership", "$aws/events/thingGroupMembership/thingGroup/+/thing/+/+",
                 "MEMBERSHIP"),
)
# What the registry must publish for the rules above (components/edge declares the region's
# EventConfigurations): THING and THING_GROUP_MEMBERSHIP.
REGISTRY_EVENT_TYPES = ("THING", "THING_GROUP_MEMBERSHIP")


CAPTURE_RULES: tuple[CaptureRule, ...] = (
    CaptureRule("update", "$aws/things/+/shadow/update/documents", "UPDATE", named=False),
    CaptureRule("update_named", "$aws/things/+/shadow/name/+/update/documents", "UPDATE",
                named=True),
    CaptureRule("delete", "$aws/things/+/shadow/delete/accepted", "DELETE", named=False),
    CaptureRule("delete_named", "$aws/things/+/shadow/name/+/delete/accepted", "DELETE",
                named=True),
)


def rule_name(name_prefix: str, rule: CaptureRule | RegistryRule) -> str:
    """Rule names allow [a-zA-Z0-9_] only."""
    return f"{name_prefix}_shadow_{rule.suffix}".replace("-", "_")


def stream_filter_pattern(region: str) -> str:
    """Inserts and updates of shadow records written by another region (this region's own
    writes and TTL removals never reach the function, and are not billed)."""
    return json.dumps({
        "eventName": ["INSERT", "MODIFY"],
        "dynamodb": {"Keys": {Attr.PK: {"S": [{"prefix": KEY_PREFIX}]}},
                     "NewImage": {Attr.WRITER_REGION: {"S": [{"anything-but": [region]}]}}},
    }, sort_keys=True)


def function_role_policy(*, log_group_arn: str, key_arn: str, function_name: str,
                         partition: str, region: str, account_id: str, table_arn: str,
                         stream_arn: str, tables_key_arn: str, queue_arn: str) -> str:
    statements = lambda_basic_statements(log_group_arn=log_group_arn, key_arn=key_arn,
                                         function_name=function_name)
    statements += stream_read_statements(stream_arn=stream_arn, sid="ReadDeviceDataStream")
    statements += device_state_statements(partition=partition, region=region,
                                          account_id=account_id, table_arn=table_arn,
                                          tables_key_arn=tables_key_arn)
    statements += dead_letter_statements(queue_arn=queue_arn, key_arn=key_arn, region=region)
    return policy_document(statements)


def device_state_statements(*, partition: str, region: str, account_id: str, table_arn: str,
                            tables_key_arn: str, sid_suffix: str = "") -> list[Statement]:
    """What converging one region's device state to its records takes: the function's, and
    the backfill's (`tools.reconcile --apply` runs the function's converge code as the
    operator; components/edge/evacuation.py)."""
    iot = f"arn:{partition}:iot:{region}:{account_id}"
    return [
        # Only the shadow records of the shared device-data table (dynamodb:LeadingKeys).
        {"Sid": f"ShadowRecords{sid_suffix}", "Effect": "Allow",
         "Action": ["dynamodb:GetItem", "dynamodb:PutItem"], "Resource": table_arn,
         "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{KEY_PREFIX}*"]}}},
        table_key_statement(key_arn=tables_key_arn, region=region, write=True,
                            sid=f"TablesKey{sid_suffix}"),
        # Shadow actions authorise against the thing (named shadows: thing/<name>/<shadow>).
        {"Sid": f"ThisRegionsShadows{sid_suffix}", "Effect": "Allow",
         "Action": ["iot:DeleteThingShadow", "iot:GetThingShadow", "iot:UpdateThingShadow"],
         "Resource": f"{iot}:thing/*"},
        # Device organisation: read a thing's attributes, type and groups; set them.
        {"Sid": f"ThisRegionsThingOrganisation{sid_suffix}", "Effect": "Allow",
         "Action": ["iot:DescribeThing", "iot:ListThingGroupsForThing", "iot:UpdateThing"],
         "Resource": f"{iot}:thing/*"},
        # Group membership authorises against the thing and the group.
        {"Sid": f"ThisRegionsGroupMembership{sid_suffix}", "Effect": "Allow",
         "Action": ["iot:AddThingToThingGroup", "iot:RemoveThingFromThingGroup"],
         "Resource": [f"{iot}:thing/*", f"{iot}:thinggroup/*"]},
    ]


def rule_role_policy(*, queue_arn: str, key_arn: str, region: str) -> str:
    """The rules' error action only: the Lambda action uses the function's resource policy."""
    return policy_document(dead_letter_statements(queue_arn=queue_arn, key_arn=key_arn,
                                                  region=region))


@dataclass(frozen=True)
class ShadowReplicationArgs:
    region: str
    name_prefix: str  # `<app>-<env>-<region>`
    device_data: RegionalTable  # this region's replica (name, ARN, stream ARN)
    tables_key_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]  # the regional CMK: logs, queue, environment
    log_retention_days: int
    account: AwsAccount
    lambda_layer: LambdaLayer
    tags: Mapping[str, str] = field(default_factory=dict)
    # The fleet's declared thing types and static groups (+ group policies), every region.
    organisation: FleetOrganisation = field(default_factory=FleetOrganisation)


def _group_policy_text(document: Mapping[str, Any], region: str, values: list[Any]) -> str:
    partition, account_id = values
    return json.dumps(regional_policy(document, f"arn:{partition}:iot:{region}:{account_id}"),
                      sort_keys=True)


def group_policy_name(name_prefix: str, group: str) -> str:
    """IoT policy names allow [\w+=,.@-]: a group name's ':' becomes '-'."""
    return f"{name_prefix}-group-{group.replace(':', '-')}"


@dataclass(frozen=True)
class ShadowReplicationOutputs:
    function_name: str
    rule_names: tuple[str, ...]
    dead_letter_queue_url: pulumi.Output[str]


class ShadowReplication(pulumi.ComponentResource):
    """Capture rules + device-data stream mapping -> one function (+ DLQ, logs, roles)."""

    def __init__(self, name: str, args: ShadowReplicationArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("iotmr:shadow_replication:ShadowReplication", name, None, opts)
        region = args.region
        tags = dict(args.tags)
        child = pulumi.ResourceOptions(parent=self)
        account_id = args.account.account_id
        partition = args.account.partition
        function_name = f"{args.name_prefix}-shadow-replication"
        all_rules: tuple[CaptureRule | RegistryRule, ...] = (*CAPTURE_RULES, *REGISTRY_RULES)
        rule_names = {rule.suffix: rule_name(args.name_prefix, rule) for rule in all_rules}

        self.dead_letter_queue = dead_letter_queue(
            f"{name}-dlq", parent=self, region=region,
            queue_name=f"{args.name_prefix}-shadow-replication-dlq",
            kms_key_arn=args.kms_key_arn, tags=tags)
        self.dependencies_layer = dependencies_layer(
            f"{name}-deps", parent=self, region=region,
            layer_name=f"{args.name_prefix}-shadow-replication-deps",
            lambda_layer=args.lambda_layer)
        self.function = python_function(
            f"{name}-function", parent=self, region=region, account_id=account_id,
            kms_key_arn=args.kms_key_arn, log_retention_days=args.log_retention_days, tags=tags,
            function_name=function_name, package=PACKAGE,
            description="Shadow replication: record this region's shadow changes, apply "
                        "other regions'",
            role_policy_name="shadow-replication",
            role_policy=lambda log_group_arn: pulumi.Output.all(
                log_group_arn, args.kms_key_arn, partition, account_id, args.device_data.arn,
                args.device_data.stream_arn, args.tables_key_arn,
                self.dead_letter_queue.arn).apply(
                lambda v: function_role_policy(
                    log_group_arn=v[0], key_arn=v[1], function_name=function_name,
                    partition=v[2], region=region, account_id=v[3], table_arn=v[4],
                    stream_arn=v[5], tables_key_arn=v[6], queue_arn=v[7])),
            environment=ShadowReplicationEnvironment[pulumi.Input[str]](
                device_data_table_name=args.device_data.name,
                dead_letter_queue_url=self.dead_letter_queue.url).variables(),
            layer=self.dependencies_layer, memory_size=256, timeout=30)
        fn = self.function.function

        # Asynchronous invocations (the rules): bounded retries, then the DLQ with the event.
        self.capture_failures = aws.lambda_.FunctionEventInvokeConfig(
            f"{name}-capture-failures", region=region, function_name=fn.name,
            maximum_retry_attempts=CAPTURE_RETRY_ATTEMPTS,
            maximum_event_age_in_seconds=CAPTURE_MAXIMUM_EVENT_AGE_SECONDS,
            destination_config=aws.lambda_.FunctionEventInvokeConfigDestinationConfigArgs(
                on_failure=aws.lambda_.FunctionEventInvokeConfigDestinationConfigOnFailureArgs(
                    destination=self.dead_letter_queue.arn)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.function.role_policy]))

        # --- apply: the replica stream, other regions' shadow records only ------------------
        self.apply_trigger = aws.lambda_.EventSourceMapping(
            f"{name}-apply-trigger", region=region,
            event_source_arn=args.device_data.stream_arn, function_name=fn.arn,
            starting_position=STARTING_POSITION, batch_size=BATCH_SIZE,
            bisect_batch_on_function_error=True,
            maximum_retry_attempts=MAXIMUM_RETRY_ATTEMPTS,
            maximum_record_age_in_seconds=MAXIMUM_RECORD_AGE_SECONDS,
            function_response_types=["ReportBatchItemFailures"],
            filter_criteria=aws.lambda_.EventSourceMappingFilterCriteriaArgs(filters=[
                aws.lambda_.EventSourceMappingFilterCriteriaFilterArgs(
                    pattern=stream_filter_pattern(region))]),
            destination_config=aws.lambda_.EventSourceMappingDestinationConfigArgs(
                on_failure=aws.lambda_.EventSourceMappingDestinationConfigOnFailureArgs(
                    destination_arn=self.dead_letter_queue.arn)),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.function.role_policy],
                                        delete_before_replace=True))

        # --- capture: the rules -------------------------------------------------------------
        rule_arn_pattern = pulumi.Output.all(partition, account_id).apply(
            lambda v: f"arn:{v[0]}:iot:{region}:{v[1]}:rule/"
                      f"{args.name_prefix.replace('-', '_')}_shadow_*")
        self.rule_role = aws.iam.Role(
            f"{name}-rule-role", name=role_name(f"{args.name_prefix}-shadow-rules"),
            assume_role_policy=pulumi.Output.all(account_id, rule_arn_pattern).apply(
                lambda v: service_trust_policy("iot.amazonaws.com", v[0], v[1])),
            tags=tags, opts=child)
        rule_policy = aws.iam.RolePolicy(
            f"{name}-rule-policy", role=self.rule_role.id, name="shadow-rules",
            policy=pulumi.Output.all(self.dead_letter_queue.arn, args.kms_key_arn).apply(
                lambda v: rule_role_policy(queue_arn=v[0], key_arn=v[1], region=region)),
            opts=child)
        self.rules: dict[str, aws.iot.TopicRule] = {}
        for rule in all_rules:
            rule_arn = pulumi.Output.concat("arn:", partition, f":iot:{region}:", account_id,
                                            f":rule/{rule_names[rule.suffix]}")
            permission = aws.lambda_.Permission(
                f"{name}-{rule.suffix}-permission", region=region,
                action="lambda:InvokeFunction", function=fn.name,
                principal="iot.amazonaws.com", source_account=account_id,
                source_arn=rule_arn, opts=child)
            self.rules[rule.suffix] = aws.iot.TopicRule(
                f"{name}-{rule.suffix}", region=region, name=rule_names[rule.suffix],
                description=rule.description(), enabled=True, sql=rule.sql(),
                sql_version=SQL_VERSION,
                lambdas=[aws.iot.TopicRuleLambdaArgs(function_arn=fn.arn)],
                error_action=aws.iot.TopicRuleErrorActionArgs(
                    sqs=aws.iot.TopicRuleErrorActionSqsArgs(
                        queue_url=self.dead_letter_queue.url, role_arn=self.rule_role.arn,
                        use_base64=False)),
                tags=tags,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[rule_policy, permission]))

        # --- the fleet's declared organisation (the same in every region) -------------------
        self.thing_types: dict[str, aws.iot.ThingType] = {}
        for thing_type in args.organisation.thing_types:
            self.thing_types[thing_type.name] = aws.iot.ThingType(
                f"{name}-type-{thing_type.name}", region=region, name=thing_type.name,
                properties=aws.iot.ThingTypePropertiesArgs(
                    description=thing_type.description or None,
                    searchable_attributes=list(thing_type.searchable_attributes) or None),
                tags=tags, opts=child)
        self.thing_groups: dict[str, aws.iot.ThingGroup] = {}
        for group in args.organisation.thing_groups:
            parent = self.thing_groups.get(group.parent) if group.parent else None
            self.thing_groups[group.name] = aws.iot.ThingGroup(
                f"{name}-group-{group.name}", region=region, name=group.name,
                parent_group_name=parent.name if parent is not None else None,
                properties=aws.iot.ThingGroupPropertiesArgs(
                    description=group.description or None),
                tags=tags, opts=child)
            if group.policy is not None:
                policy = aws.iot.Policy(
                    f"{name}-group-{group.name}-policy", region=region,
                    name=group_policy_name(args.name_prefix, group.name),
                    policy=pulumi.Output.all(partition, account_id).apply(
                        partial(_group_policy_text, group.policy, region)),
                    tags=tags, opts=child)
                aws.iot.PolicyAttachment(
                    f"{name}-group-{group.name}-policy-attachment", region=region,
                    policy=policy.name, target=self.thing_groups[group.name].arn, opts=child)

        self.outputs = ShadowReplicationOutputs(
            function_name=function_name, rule_names=tuple(rule_names.values()),
            dead_letter_queue_url=self.dead_letter_queue.url)
        self.register_outputs({
            "function_arn": fn.arn,
            "rule_names": list(rule_names.values()),
            "dead_letter_queue_url": self.dead_letter_queue.url,
        })
