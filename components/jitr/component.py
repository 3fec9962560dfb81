"""Just-in-time registration (JITR) of device certificates, in one region.

AWS IoT registers an unknown certificate issued by our (auto-registration enabled) CA as
PENDING_ACTIVATION and publishes to `$aws/events/certificates/registered/<caId>`. A topic
rule on exactly that topic starts a Standard state machine which first checks that AWS IoT
registered the certificate under *this region's* CA (the id is rendered into the
definition), then checks the certificate, consults the device inventory (this region's
global-table replica), creates or joins the thing, attaches certificate and device policy,
activates the certificate and records the device, undoing its own changes on failure. When
the inventory already holds the device (it registered in another region first) the machine
converges this region instead of stopping. Events the rule cannot deliver land in a
KMS-encrypted dead-letter queue. See components/jitr/README.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_aws as aws

from components.account import AwsAccount
from components.asl import render
from components.dead_letters import dead_letter_queue
from components.edge.cas import LEGACY_NAME, DeviceCa, DeviceCas, single
from components.global_tables import RegionalTable
from components.iam import (
    SFN_LOG_DELIVERY_ACTIONS,
    XRAY_ACTIONS,
    lambda_basic_statements,
    policy_document,
    service_trust_policy,
    table_key_statement,
)
from components.lambda_function import dependencies_layer, python_function
from components.naming import role_name
from components.packaging import LambdaLayer
from components.state_machine import state_machine
from lambdas.contracts.environment import JitrCheckEnvironment

DEFINITION = Path(__file__).resolve().parent / "jitr.asl.json"
CHECK_PACKAGE = "jitr_certificate_check"
EXECUTION_NAME_PREFIX = "jitr"

@dataclass(frozen=True)
class JitrPipelineArgs:
    region: str
    name_prefix: str  # e.g. `iotmr-dev-eu-west-1`; IAM names are global, so it names the region
    ca_certificate_id: pulumi.Input[str]
    ca_certificate_pem: str  # public; the check Lambda verifies issuance against it
    device_policy_name: pulumi.Input[str]
    inventory: RegionalTable
    kms_key_arn: pulumi.Input[str]  # the regional CMK (logs, queue, Lambda environment)
    tables_key_arn: pulumi.Input[str]  # the global tables' CMK in this region
    log_retention_days: int
    account: AwsAccount
    lambda_layer: LambdaLayer
    tags: Mapping[str, str] = field(default_factory=dict)
    retry_interval_seconds: int = 1
    retry_max_attempts: int = 6
    # A CA rotation (components/edge/cas.py) and each CA's registration id in this region
    # (by CA name); None: `ca_certificate_id`/`ca_certificate_pem` is the only CA.
    device_cas: DeviceCas | None = None
    ca_certificate_ids: Mapping[str, pulumi.Input[str]] | None = None


def topic_rule_sql(ca_certificate_id: str) -> str:
    """Only certificates our CA registered in this region, nothing else."""
    return f"SELECT * FROM '$aws/events/certificates/registered/{ca_certificate_id}'"


def state_machine_definition(*, region: str, ca_certificate_id: str, check_function_arn: str,
                             table_name: str, device_policy_name: str,
                             retry_interval_seconds: int = 1, retry_max_attempts: int = 6,
                             previous_ca_certificate_id: str | None = None,
                             previous_ca_auto_registers: bool = True) -> str:
    """The JITR machine for one region. `ca_certificate_id` is this region's registration of
    our (issuing) CA, `previous_ca_certificate_id` the CA a rotation moves devices away from
    (the same when there is none): the machine moves a device's row from the previous CA to
    the issuing one only. It changes no certificate AWS IoT registered under a CA whose
    devices do not auto-register: the previous CA's only while it is `previous`, not once it
    is `retiring` (the check function trusts exactly the same CAs, `DeviceCas.accepted_pem`)."""
    previous = previous_ca_certificate_id or ca_certificate_id
    return render(
        DEFINITION,
        ca_certificate_id=ca_certificate_id,
        previous_ca_certificate_id=previous,
        accepted_previous_ca_certificate_id=previous if previous_ca_auto_registers
        else ca_certificate_id,
        check_function_arn=check_function_arn,
        inventory_table_name=table_name,
        device_policy_name=device_policy_name,
        region=region,
        retry_interval_seconds=retry_interval_seconds,
        retry_max_attempts=retry_max_attempts,
    )


def rule_role_policy(*, state_machine_arn: str, queue_arn: str, key_arn: str,
                     region: str) -> str:
    return policy_document([
        {"Sid": "StartJitr", "Effect": "Allow", "Action": "states:StartExecution",
         "Resource": state_machine_arn},
        {"Sid": "DeadLetter", "Effect": "Allow", "Action": "sqs:SendMessage",
         "Resource": queue_arn},
        {"Sid": "EncryptDeadLetters", "Effect": "Allow",
         "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": key_arn,
         "Condition": {"StringEquals": {"kms:ViaService": f"sqs.{region}.amazonaws.com"}}},
    ])


def state_machine_role_policy(*, partition: str, region: str, account_id: str,
                              table_arn: str, function_arn: str, tables_key_arn: str) -> str:
    """Exactly the calls the definition makes, each as narrow as IAM can express.

    What IAM cannot express, stated honestly: `iot:UpdateCertificate`, `iot:AttachPolicy`,
    `iot:DetachPolicy` and `iot:DescribeCertificate` authorise against `cert/*` only (the
    Service Authorization Reference offers no condition on the certificate's CA, and
    AttachPolicy checks the target, not the IoT policy). The control is in the definition:
    it compares the *described* certificate's CA id with this region's CA before any write,
    and names only the device policy. Likewise `iot:DeleteThing` offers no condition key at
    all (things carry no tags), so it is `thing/*` of this account and region; the
    definition deletes only a thing whose owner-token attribute it wrote itself, with
    `ExpectedVersion`.
    """
    iot = f"arn:{partition}:iot:{region}:{account_id}"
    return policy_document([
        {"Sid": "Certificates", "Effect": "Allow",
         "Action": ["iot:AttachPolicy", "iot:DescribeCertificate", "iot:DetachPolicy",
                    "iot:UpdateCertificate"],
         "Resource": f"{iot}:cert/*"},
        {"Sid": "CertificateToThing", "Effect": "Allow",
         "Action": ["iot:AttachThingPrincipal", "iot:DetachThingPrincipal"],
         "Resource": f"{iot}:cert/*",
         "Condition": {"ArnLike": {"iot:thingArn": f"{iot}:thing/*"}}},
        {"Sid": "Things", "Effect": "Allow",
         "Action": ["iot:CreateThing", "iot:DeleteThing", "iot:DescribeThing",
                    "iot:ListThingPrincipals"],
         "Resource": f"{iot}:thing/*"},
        # No DeleteItem/UpdateItem: the first write is the only one JITR makes.
        # PutItem: a first write; UpdateItem: a CA rotation's conditional change (the row
        # named the previous CA's certificate at the version read). No DeleteItem.
        {"Sid": "Inventory", "Effect": "Allow",
         "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
         "Resource": table_arn},
        table_key_statement(key_arn=tables_key_arn, region=region, write=True),
        {"Sid": "CheckCertificate", "Effect": "Allow", "Action": "lambda:InvokeFunction",
         "Resource": function_arn},
        # The log-delivery actions and Resource "*" exactly as AWS documents them for a state
        # machine that logs to CloudWatch Logs: "Logging using CloudWatch Logs", section
        # "IAM policies for logging to CloudWatch Logs",
        # https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html
        # (these CloudWatch Logs APIs have no resource-level permissions).
        {"Sid": "LogDelivery", "Effect": "Allow", "Action": list(SFN_LOG_DELIVERY_ACTIONS),
         "Resource": "*"},
        # X-Ray has no resource-level permissions.
        {"Sid": "Tracing", "Effect": "Allow", "Action": list(XRAY_ACTIONS), "Resource": "*"},
    ])


def check_function_role_policy(*, log_group_arn: str, key_arn: str,
                               function_name: str) -> str:
    return policy_document(lambda_basic_statements(log_group_arn=log_group_arn, key_arn=key_arn,
                                                   function_name=function_name))


@dataclass(frozen=True)
class JitrOutputs:
    """What operators read from one region's JITR pipeline (stack outputs)."""

    state_machine_arn: pulumi.Output[str]
    topic_rule_name: pulumi.Output[str]
    dead_letter_queue_url: pulumi.Output[str]


class JitrPipeline(pulumi.ComponentResource):
    """Topic rule -> Step Functions JITR machine (+ check Lambda, DLQ, logs, roles)."""

    def __init__(self, name: str, args: JitrPipelineArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("iotmr:jitr:JitrPipeline", name, None, opts)
        region = args.region
        tags = dict(args.tags)
        child = pulumi.ResourceOptions(parent=self)
        account_id = args.account.account_id
        partition = args.account.partition

        machine_name = f"{args.name_prefix}-jitr"
        function_name = f"{args.name_prefix}-jitr-check"
        cas = args.device_cas or single(args.ca_certificate_pem)
        ca_ids: Mapping[str, pulumi.Input[str]] = args.ca_certificate_ids or {
            cas.issuing.name: args.ca_certificate_id}
        previous = cas.previous

        def rule_name(ca: DeviceCa) -> str:  # rules allow [A-Za-z0-9_]
            suffix = "" if ca.name == LEGACY_NAME else f"_{ca.name}"
            return f"{args.name_prefix}_jitr{suffix}".replace("-", "_")

        rule_names = {ca.name: rule_name(ca) for ca in cas.auto_registering}
        # One rule per CA whose devices auto-register; the role serves exactly these rules.
        rule_arn_pattern = pulumi.Output.all(partition, account_id).apply(
            lambda v: f"arn:{v[0]}:iot:{region}:{v[1]}:rule/" + (
                next(iter(rule_names.values())) if len(rule_names) == 1
                else f"{args.name_prefix}_jitr*".replace("-", "_")))

        # --- dead letters: events the rule could not hand to Step Functions ---------------
        self.dead_letter_queue = dead_letter_queue(
            f"{name}-dlq", parent=self, region=region, queue_name=f"{args.name_prefix}-jitr-dlq",
            kms_key_arn=args.kms_key_arn, tags=tags)

        # --- certificate check Lambda ------------------------------------------------------
        self.dependencies_layer = dependencies_layer(
            f"{name}-deps", parent=self, region=region,
            layer_name=f"{args.name_prefix}-jitr-deps", lambda_layer=args.lambda_layer)
        self.check = python_function(
            f"{name}-check", parent=self, region=region, account_id=account_id,
            kms_key_arn=args.kms_key_arn, log_retention_days=args.log_retention_days, tags=tags,
            function_name=function_name, package=CHECK_PACKAGE,
            description="JITR: is this certificate ours, valid, with a thing-name CN?",
            role_policy_name="certificate-check",
            role_policy=lambda log_group_arn: pulumi.Output.all(
                log_group_arn, args.kms_key_arn).apply(
                lambda v: check_function_role_policy(log_group_arn=v[0], key_arn=v[1],
                                                     function_name=function_name)),
            # Every CA whose devices auto-register (two during a rotation).
            environment=JitrCheckEnvironment[pulumi.Input[str]](
                ca_certificate_pem=cas.accepted_pem).variables(),
            layer=self.dependencies_layer, memory_size=256, timeout=10)

        # --- the state machine -------------------------------------------------------------
        self.machine = state_machine(
            f"{name}-machine", parent=self, region=region, machine_name=machine_name,
            machine_type="STANDARD", account=args.account, policy_name="jitr",
            policy=pulumi.Output.all(partition, account_id, args.inventory.arn,
                                     self.check.function.arn, args.tables_key_arn).apply(
                lambda v: state_machine_role_policy(partition=v[0], region=region,
                                                    account_id=v[1], table_arn=v[2],
                                                    function_arn=v[3], tables_key_arn=v[4])),
            definition=pulumi.Output.all(
                ca_ids[cas.issuing.name], self.check.function.arn, args.inventory.name,
                args.device_policy_name,
                ca_ids[previous.name] if previous else ca_ids[cas.issuing.name]).apply(
                lambda v: state_machine_definition(
                    region=region, ca_certificate_id=v[0], check_function_arn=v[1],
                    table_name=v[2], device_policy_name=v[3],
                    retry_interval_seconds=args.retry_interval_seconds,
                    retry_max_attempts=args.retry_max_attempts,
                    previous_ca_certificate_id=v[4],
                    # The same CAs as the check function's PEMs (cas.accepted_pem).
                    previous_ca_auto_registers=previous is not None and previous.auto_registration)),
            kms_key_arn=args.kms_key_arn, log_retention_days=args.log_retention_days, tags=tags)
        self.state_machine = self.machine.machine

        # --- the rule ------------------------------------------------------------------------
        self.rule_role = aws.iam.Role(
            f"{name}-rule-role", name=role_name(f"{args.name_prefix}-jitr-rule"),
            assume_role_policy=pulumi.Output.all(account_id, rule_arn_pattern).apply(
                lambda v: service_trust_policy("iot.amazonaws.com", v[0], v[1])),
            tags=tags, opts=child)
        rule_policy = aws.iam.RolePolicy(
            f"{name}-rule-policy", role=self.rule_role.id, name="jitr-rule",
            policy=pulumi.Output.all(self.state_machine.arn, self.dead_letter_queue.arn,
                                     args.kms_key_arn).apply(
                lambda v: rule_role_policy(state_machine_arn=v[0], queue_arn=v[1],
                                           key_arn=v[2], region=region)),
            opts=child)
        self.topic_rules: dict[str, aws.iot.TopicRule] = {}
        for ca in cas.auto_registering:
            self.topic_rules[ca.name] = aws.iot.TopicRule(
                f"{name}-rule" if ca.name == LEGACY_NAME else f"{name}-rule-{ca.name}",
                region=region, name=rule_names[ca.name],
                description=f"JITR: certificates our CA '{ca.name}' registered -> registration "
                            "state machine",
                enabled=True,
                sql=pulumi.Output.from_input(ca_ids[ca.name]).apply(topic_rule_sql),
                sql_version="2016-03-23",
                step_functions=[aws.iot.TopicRuleStepFunctionArgs(
                    state_machine_name=self.state_machine.name,
                    execution_name_prefix=EXECUTION_NAME_PREFIX,
                    role_arn=self.rule_role.arn)],
                error_action=aws.iot.TopicRuleErrorActionArgs(
                    sqs=aws.iot.TopicRuleErrorActionSqsArgs(
                        queue_url=self.dead_letter_queue.url, role_arn=self.rule_role.arn,
                        use_base64=False)),
                tags=tags,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[rule_policy]))
        self.topic_rule = self.topic_rules[cas.issuing.name]

        self.outputs = JitrOutputs(
            state_machine_arn=self.state_machine.arn, topic_rule_name=self.topic_rule.name,
            dead_letter_queue_url=self.dead_letter_queue.url)
        self.register_outputs({
            "state_machine_arn": self.state_machine.arn,
            "check_function_arn": self.check.function.arn,
            "topic_rule_name": self.topic_rule.name,
            "dead_letter_queue_url": self.dead_letter_queue.url,
        })

