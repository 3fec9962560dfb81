"""The one way this project declares a Step Functions state machine (a plain builder).

Every machine gets the same guard rails: its own KMS-encrypted log group under
`/aws/vendedlogs/states/` (keeps the Logs resource policy Step Functions writes small) with
retention, a role only Step Functions acting for this very machine may assume, one
least-privilege inline policy, logging at ALL and X-Ray tracing, and the machine created only
after its role may deliver logs. A capability passes the definition and the policy.

Logical names are the ones the capabilities always used (`<name>-logs`, `<name>-role`,
`<name>-policy`, `<name>`, with `<name>` e.g. `...-machine`), children of the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_aws as aws

from components.account import AwsAccount
from components.iam import service_trust_policy
from components.naming import role_name


@dataclass(frozen=True)
class StateMachine:
    log_group: aws.cloudwatch.LogGroup
    role: aws.iam.Role
    role_policy: aws.iam.RolePolicy
    machine: aws.sfn.StateMachine


def state_machine(name: str, *, parent: pulumi.Resource, region: str, machine_name: str,
                  machine_type: Literal["STANDARD", "EXPRESS"], account: AwsAccount,
                  policy_name: str, policy: pulumi.Input[str], definition: pulumi.Input[str],
                  kms_key_arn: pulumi.Input[str], log_retention_days: int,
                  include_execution_data: bool = True,
                  tags: Mapping[str, str] | None = None) -> StateMachine:
    tags = dict(tags or {})
    child = pulumi.ResourceOptions(parent=parent)
    machine_arn = pulumi.Output.all(account.partition, account.account_id).apply(
        lambda v: f"arn:{v[0]}:states:{region}:{v[1]}:stateMachine:{machine_name}")
    log_group = aws.cloudwatch.LogGroup(
        f"{name}-logs", region=region, name=f"/aws/vendedlogs/states/{machine_name}",
        retention_in_days=log_retention_days, kms_key_id=kms_key_arn, tags=tags, opts=child)
    role = aws.iam.Role(
        f"{name}-role", name=role_name(f"{machine_name}-sfn"),
        assume_role_policy=pulumi.Output.all(account.account_id, machine_arn).apply(
            lambda v: service_trust_policy("states.amazonaws.com", v[0], v[1])),
        tags=tags, opts=child)
    role_policy = aws.iam.RolePolicy(
        f"{name}-policy", role=role.id, name=policy_name, policy=policy, opts=child)
    machine = aws.sfn.StateMachine(
        name, region=region, name=machine_name, type=machine_type, role_arn=role.arn,
        definition=definition,
        logging_configuration=aws.sfn.StateMachineLoggingConfigurationArgs(
            level="ALL", include_execution_data=include_execution_data,
            log_destination=log_group.arn.apply(lambda arn: f"{arn}:*")),
        tracing_configuration=aws.sfn.StateMachineTracingConfigurationArgs(enabled=True),
        tags=tags,
        # The role must be able to deliver logs before the machine is created. The name is
        # fixed and a new `type` replaces the machine: the old one goes first.
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[role_policy],
                                    delete_before_replace=True))
    return StateMachine(log_group, role, role_policy, machine)
