"""The AWS account and partition every ARN and policy in the stack is built from."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class AwsAccount:
    account_id: pulumi.Input[str]
    partition: pulumi.Input[str]  # "aws", "aws-cn", "aws-us-gov"


def current_account() -> AwsAccount:
    """Looked up once per program and passed down, instead of two provider calls in every
    component of every region."""
    return AwsAccount(account_id=aws.get_caller_identity_output().account_id,
                      partition=aws.get_partition_output().partition)
