"""Cross-region replication into one region: this region's inventory replica stream ->
EventBridge Pipe (filter: written by another region) -> Express state machine that converges
this region's IoT registry to the item, using only this region's replica and registry.

Failures never end only in a log: the machine answers the pipe synchronously
(REQUEST_RESPONSE) with `batchItemFailures`, the pipe retries (bounded), bisects failing
batches and dead-letters what still fails into a KMS-encrypted queue. See README.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_aws as aws

from components.account import AwsAccount
from components.asl import render
from components.dead_letters import dead_letter_queue
from components.edge.cas import DeviceCas, certificate_id
from components.global_tables import RegionalTable
from components.iam import (
    SFN_LOG_DELIVERY_ACTIONS,
    XRAY_ACTIONS,
    policy_document,
    service_trust_policy,
    table_key_statement,
)
from components.naming import role_name
from components.replication.settings import ReplicationSettings
from components.state_machine import state_machine
from lambdas.contracts.inventory import Attr

DEFINITION = Path(__file__).resolve().parent / "replication.asl.json"
# Replaying the last 24 h when a pipe is (re)created is harmless (every record converges to
# the current item) and leaves no gap between a new replica's stream and its pipe.
STARTING_POSITION = "TRIM_HORIZON"
INVOCATION_TYPE = "REQUEST_RESPONSE"  # Express only; Standard would be FIRE_AND_FORGET
PIPE_LOG_LEVEL = "ERROR"


def pipe_filter_pattern(region: str) -> str:
    """EventBridge pattern: inserts and updates written by another region. TTL removals
    (REMOVE) and this region's own writes (already applied by their writer) never pass, and
    an item without `writerRegion` breaks the contract and does not pass either."""
    return json.dumps({
        "eventName": ["INSERT", "MODIFY"],
        "dynamodb": {"NewImage": {Attr.WRITER_REGION: {"S": [{"anything-but": [region]}]}}},
    }, sort_keys=True)


def state_machine_definition(*, region: str, partition: str, account_id: str,
                             table_name: str, device_policy_name: str, ca_certificate_pem: str,
                             settings: ReplicationSettings,
                             previous_ca_certificate_pem: str | None = None) -> str:
    """`ca_certificate_pem` is our issuing CA, `previous_ca_certificate_pem` the other CA a
    rotation keeps ACTIVE (the same when there is none): an item's certificate is registered
    with the CA its `caCertificateId` names, and never with any other."""
    previous = previous_ca_certificate_pem or ca_certificate_pem
    return render(
        DEFINITION,
        region=region,
        partition=partition,
        account_id=account_id,
        inventory_table_name=table_name,
        device_policy_name=device_policy_name,
        ca_certificate_pem=ca_certificate_pem,
        ca_certificate_id=certificate_id(ca_certificate_pem),
        previous_ca_certificate_pem=previous,
        previous_ca_certificate_id=certificate_id(previous),
        retry_interval_seconds=settings.retry_interval_seconds,
        retry_max_attempts=settings.retry_max_attempts,
        retry_backoff_rate=settings.retry_backoff_rate,
    )


def state_machine_role_policy(*, partition: str, region: str, account_id: str,
                              table_arn: str, tables_key_arn: str) -> str:
    iot = f"arn:{partition}:iot:{region}:{account_id}"
    return policy_document([
        {"Sid": "ReadInventoryReplica", "Effect": "Allow", "Action": "dynamodb:GetItem",
         "Resource": table_arn},
        table_key_statement(key_arn=tables_key_arn, region=region, write=False),
        {"Sid": "Things", "Effect": "Allow",
         "Action": ["iot:CreateThing", "iot:DeleteThing", "iot:ListThingPrincipals"],
         "Resource": f"{iot}:thing/*"},
        {"Sid": "Certificates", "Effect": "Allow",
         "Action": ["iot:AttachPolicy", "iot:DeleteCertificate", "iot:DetachPolicy",
                    "iot:UpdateCertificate"],
         "Resource": f"{iot}:cert/*"},
        {"Sid": "CertificateToThing", "Effect": "Allow",
         "Action": ["iot:AttachThingPrincipal", "iot:DetachThingPrincipal"],
         "Resource": f"{iot}:cert/*",
         "Condition": {"ArnLike": {"iot:thingArn": f"{iot}:thing/*"}}},
        # RegisterCertificate(WithoutCA) create a certificate and name no existing resource:
        # the service authorization reference lists no resource type for them.
        {"Sid": "RegisterCertificates", "Effect": "Allow",
         "Action": ["iot:RegisterCertificate", "iot:RegisterCertificateWithoutCA"],
         "Resource": "*"},
        {"Sid": "LogDelivery", "Effect": "Allow", "Action": list(SFN_LOG_DELIVERY_ACTIONS),
         "Resource": "*"},
        {"Sid": "Tracing", "Effect": "Allow", "Action": list(XRAY_ACTIONS), "Resource": "*"},
    ])


def pipe_role_policy(*, stream_arn: str, state_machine_arn: str, queue_arn: str, key_arn: str,
                     log_group_arn: str, pipe_arn: str, region: str, tables_key_arn: str) -> str:
    return policy_document([
        {"Sid": "ReadInventoryStream", "Effect": "Allow",
         "Action": ["dynamodb:DescribeStream", "dynamodb:GetRecords",
                    "dynamodb:GetShardIterator"],
         "Resource": stream_arn},
        # The stream's records are encrypted with the table's key.
        table_key_statement(key_arn=tables_key_arn, region=region, write=False),
        # ListStreams names no stream (it lists them): no resource-level permission exists.
        {"Sid": "ListStreams", "Effect": "Allow", "Action": "dynamodb:ListStreams",
         "Resource": "*"},
        {"Sid": "ApplySynchronously", "Effect": "Allow", "Action": "states:StartSyncExecution",
         "Resource": state_machine_arn},
        {"Sid": "DeadLetter", "Effect": "Allow", "Action": "sqs:SendMessage",
         "Resource": queue_arn},
        {"Sid": "EncryptDeadLetters", "Effect": "Allow",
         "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": key_arn,
         "Condition": {"StringEquals": {"kms:ViaService": f"sqs.{region}.amazonaws.com"}}},
        # The pipe's own data (its filter) is encrypted with the CMK. AWS's page spells the
        # context key `aws:pipes:arn` in its text and `aws:pipe:arn` in its example policy:
        # both are allowed, each pinned to this pipe.
        {"Sid": "PipeDataKey", "Effect": "Allow",
         "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": key_arn,
         "Condition": {"StringEquals": {"kms:EncryptionContext:aws:pipes:arn": pipe_arn}}},
        {"Sid": "PipeDataKeyAlternateSpelling", "Effect": "Allow",
         "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": key_arn,
         "Condition": {"StringEquals": {"kms:EncryptionContext:aws:pipe:arn": pipe_arn}}},
        {"Sid": "DescribePipeKey", "Effect": "Allow", "Action": "kms:DescribeKey",
         "Resource": key_arn},
        {"Sid": "PipeLogs", "Effect": "Allow",
         "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": f"{log_group_arn}:log-stream:*"},
    ])


@dataclass(frozen=True)
class ReplicationPipelineArgs:
    region: str
    name_prefix: str  # `<app>-<env>-<region>`: IAM names are global
    machine_name: str  # components/naming.py: the reconciliation tool reads the same name
    inventory: RegionalTable  # this region's replica (name, ARN, stream ARN)
    tables_key_arn: pulumi.Input[str]  # this region's copy of the tables' CMK
    ca_certificate_pem: str  # our (issuing) CA, registered in every region (public)
    device_policy_name: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]  # the regional CMK: logs, queue, pipe data
    log_retention_days: int
    account: AwsAccount
    settings: ReplicationSettings
    tags: Mapping[str, str] = field(default_factory=dict)
    device_cas: DeviceCas | None = None  # a CA rotation: its previous CA is accepted too


@dataclass(frozen=True)
class ReplicationOutputs:
    """What operators and tools/reconcile.py read from one region's pipeline (stack outputs)."""

    state_machine_name: str
    state_machine_arn: pulumi.Output[str]
    pipe_arn: pulumi.Output[str]
    dead_letter_queue_url: pulumi.Output[str]


class ReplicationPipeline(pulumi.ComponentResource):
    """Replica stream -> filtered pipe -> Express replication machine (+ DLQ, logs, roles)."""

    def __init__(self, name: str, args: ReplicationPipelineArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("iotmr:replication:ReplicationPipeline", name, None, opts)
        region = args.region
        settings = args.settings
        tags = dict(args.tags)
        child = pulumi.ResourceOptions(parent=self)
        account_id = args.account.account_id
        partition = args.account.partition

        state_machine_name = args.machine_name
        pipe_name = f"{args.name_prefix}-replication"
        pipe_arn = pulumi.Output.all(partition, account_id).apply(
            lambda v: f"arn:{v[0]}:pipes:{region}:{v[1]}:pipe/{pipe_name}")

        # --- dead letters: records still failing after the pipe's retries ----------------
        self.dead_letter_queue = dead_letter_queue(
            f"{name}-dlq", parent=self, region=region,
            queue_name=f"{args.name_prefix}-replication-dlq", kms_key_arn=args.kms_key_arn,
            tags=tags, retention_seconds=settings.dead_letter_retention_seconds)

        # --- the state machine (Express: the pipe waits for its answer) -------------------
        # Express history exists only in these logs; the data is a public certificate and a
        # thing name, no secret. Data is most of the log volume (README, "Cost").
        self.machine = state_machine(
            f"{name}-machine", parent=self, region=region, machine_name=state_machine_name,
            machine_type="EXPRESS", account=args.account, policy_name="replication",
            policy=pulumi.Output.all(partition, account_id, args.inventory.arn,
                                     args.tables_key_arn).apply(
                lambda v: state_machine_role_policy(partition=v[0], region=region,
                                                    account_id=v[1], table_arn=v[2],
                                                    tables_key_arn=v[3])),
            definition=pulumi.Output.all(partition, account_id, args.inventory.name,
                                         args.device_policy_name).apply(
                lambda v: state_machine_definition(
                    region=region, partition=v[0], account_id=v[1], table_name=v[2],
                    device_policy_name=v[3], ca_certificate_pem=args.ca_certificate_pem,
                    settings=settings,
                    previous_ca_certificate_pem=args.device_cas.previous.pem
                    if args.device_cas and args.device_cas.previous else None)),
            include_execution_data=settings.log_execution_data,
            kms_key_arn=args.kms_key_arn, log_retention_days=args.log_retention_days, tags=tags)
        self.state_machine = self.machine.machine

        # --- the pipe ------------------------------------------------------------------------
        self.pipe_log_group = aws.cloudwatch.LogGroup(
            f"{name}-pipe-logs", region=region, name=f"/aws/vendedlogs/pipes/{pipe_name}",
            retention_in_days=args.log_retention_days, kms_key_id=args.kms_key_arn,
            tags=tags, opts=child)
        self.pipe_role = aws.iam.Role(
            f"{name}-pipe-role", name=role_name(f"{pipe_name}-pipe"),
            assume_role_policy=pulumi.Output.all(account_id, pipe_arn).apply(
                lambda v: service_trust_policy("pipes.amazonaws.com", v[0], v[1])),
            tags=tags, opts=child)
        pipe_policy = aws.iam.RolePolicy(
            f"{name}-pipe-policy", role=self.pipe_role.id, name="replication-pipe",
            policy=pulumi.Output.all(args.inventory.stream_arn, self.state_machine.arn,
                                     self.dead_letter_queue.arn, args.kms_key_arn,
                                     self.pipe_log_group.arn, pipe_arn,
                                     args.tables_key_arn).apply(
                lambda v: pipe_role_policy(stream_arn=v[0], state_machine_arn=v[1],
                                           queue_arn=v[2], key_arn=v[3], log_group_arn=v[4],
                                           pipe_arn=v[5], region=region,
                                           tables_key_arn=v[6])),
            opts=child)
        self.pipe = aws.pipes.Pipe(
            f"{name}-pipe", region=region, name=pipe_name,
            description="Inventory changes written in other regions -> replication machine",
            role_arn=self.pipe_role.arn,
            source=args.inventory.stream_arn,
            source_parameters=aws.pipes.PipeSourceParametersArgs(
                dynamodb_stream_parameters=aws.pipes.PipeSourceParametersDynamodbStreamParametersArgs(
                    starting_position=STARTING_POSITION,
                    batch_size=settings.batch_size,
                    maximum_retry_attempts=settings.maximum_retry_attempts,
                    maximum_record_age_in_seconds=settings.maximum_record_age_seconds,
                    on_partial_batch_item_failure="AUTOMATIC_BISECT",
                    parallelization_factor=settings.parallelization_factor,
                    dead_letter_config=aws.pipes.PipeSourceParametersDynamodbStreamParametersDeadLetterConfigArgs(
                        arn=self.dead_letter_queue.arn)),
                filter_criteria=aws.pipes.PipeSourceParametersFilterCriteriaArgs(
                    filters=[aws.pipes.PipeSourceParametersFilterCriteriaFilterArgs(
                        pattern=pipe_filter_pattern(region))])),
            target=self.state_machine.arn,
            target_parameters=aws.pipes.PipeTargetParametersArgs(
                step_function_state_machine_parameters=aws.pipes.PipeTargetParametersStepFunctionStateMachineParametersArgs(
                    invocation_type=INVOCATION_TYPE)),
            kms_key_identifier=args.kms_key_arn,
            log_configuration=aws.pipes.PipeLogConfigurationArgs(
                level=PIPE_LOG_LEVEL,
                cloudwatch_logs_log_destination=aws.pipes.PipeLogConfigurationCloudwatchLogsLogDestinationArgs(
                    log_group_arn=self.pipe_log_group.arn)),
            tags=tags,
            # The role must read the stream and start the machine before the pipe polls. The
            # name is fixed and a new source or starting position replaces the pipe: the old
            # pipe goes first (replaying from TRIM_HORIZON covers the gap).
            opts=pulumi.ResourceOptions(parent=self, depends_on=[pipe_policy],
                                        delete_before_replace=True))

        self.outputs = ReplicationOutputs(
            state_machine_name=state_machine_name, state_machine_arn=self.state_machine.arn,
            pipe_arn=self.pipe.arn, dead_letter_queue_url=self.dead_letter_queue.url)
        self.register_outputs({
            "state_machine_arn": self.state_machine.arn,
            "pipe_arn": self.pipe.arn,
            "dead_letter_queue_url": self.dead_letter_queue.url,
        })
