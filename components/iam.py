"""IAM and KMS policy documents shared by every capability (one builder per shape).

All documents are rendered with sorted keys, so the same statements always give the same
JSON (stable diffs, stable hashes in the resource graph).
"""

from __future__ import annotations

import json
from typing import Any

Statement = dict[str, Any]


def policy_document(statements: list[Statement]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


def service_trust_policy(service: str, account_id: str, source_arn: str | None = None,
                         *, sid: str | None = None) -> str:
    """Only `service`, acting for this account (and, when given, for the resource
    `source_arn` — an ArnLike pattern), may assume the role: the confused-deputy guard AWS
    documents for service roles."""
    condition: dict[str, Any] = {"StringEquals": {"aws:SourceAccount": account_id}}
    if source_arn is not None:
        condition["ArnLike"] = {"aws:SourceArn": source_arn}
    statement: Statement = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
        "Condition": condition,
    }
    if sid is not None:
        statement["Sid"] = sid
    return policy_document([statement])


def lambda_trust_policy(account_id: str) -> str:
    """Lambda's execution-role trust: the service principal for this account only.

    No `aws:SourceArn`: AWS documents the execution role's trust as naming the Lambda
    service principal ("Defining Lambda function permissions with an execution role",
    https://docs.aws.amazon.com/lambda/latest/dg/lambda-intro-execution-role.html) and does
    not document `aws:SourceArn` for it; limiting which function uses a role is done with
    `lambda:SourceFunctionArn` in identity policies
    (https://docs.aws.amazon.com/lambda/latest/dg/permissions-source-function-arn.html).
    """
    return service_trust_policy("lambda.amazonaws.com", account_id)


def account_administers_key_statement(account_id: str, partition: str) -> Statement:
    """AWS's default key-policy statement: IAM in this account decides who uses the key, so
    every grant is made by least-privilege IAM policies on the roles that need it."""
    return {
        "Sid": "AccountAdministersKeyThroughIam",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }


def ssl_only_queue_policy(queue_arn: str) -> str:
    """SQS queue policy refusing any request not made over TLS."""
    return policy_document([{
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "sqs:*",
        "Resource": queue_arn,
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }])


# Step Functions' log delivery is configured through these account-level CloudWatch Logs
# APIs, which support no resource-level permissions (AWS documents Resource "*":
# "Logging using CloudWatch Logs" in the Step Functions developer guide).
SFN_LOG_DELIVERY_ACTIONS = (
    "logs:CreateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:DescribeLogGroups",
    "logs:DescribeResourcePolicies",
    "logs:GetLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:UpdateLogDelivery",
)
# X-Ray has no resource-level permissions either.
XRAY_ACTIONS = (
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:PutTelemetryRecords",
    "xray:PutTraceSegments",
)


def lambda_basic_statements(*, log_group_arn: str, key_arn: str,
                            function_name: str) -> list[Statement]:
    """What every function of ours needs: write its own log group, trace, and decrypt its
    own environment (the encryption context names the function)."""
    return [
        {"Sid": "Logs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": f"{log_group_arn}:log-stream:*"},
        {"Sid": "Tracing", "Effect": "Allow",
         "Action": ["xray:PutTelemetryRecords", "xray:PutTraceSegments"], "Resource": "*"},
        {"Sid": "DecryptEnvironment", "Effect": "Allow", "Action": "kms:Decrypt",
         "Resource": key_arn,
         "Condition": {"StringEquals": {"kms:EncryptionContext:LambdaFunctionName": function_name}}},
    ]


def table_key_statement(*, key_arn: str, region: str, write: bool, sid: str = "TablesKey") -> Statement:
    """Use of the global tables' customer-managed key, only through DynamoDB in this region.

    Our key policy delegates to IAM (`account_administers_key_statement`), so a caller of a
    table encrypted with it needs the KMS permissions itself: decrypt to read, encrypt and a
    data key to write (CDK's `grantReadData` / `grantWriteData`, spelt out without
    wildcards)."""
    actions = ["kms:Decrypt", "kms:DescribeKey"]
    if write:
        actions += ["kms:Encrypt", "kms:GenerateDataKey"]
    return {"Sid": sid, "Effect": "Allow", "Action": sorted(actions), "Resource": key_arn,
            "Condition": {"StringEquals": {"kms:ViaService": f"dynamodb.{region}.amazonaws.com"}}}


def dead_letter_statements(*, queue_arn: str, key_arn: str, region: str) -> list[Statement]:
    """Send to one KMS-encrypted dead-letter queue: the queue, and its key only through SQS
    in this region (components/dead_letters.py)."""
    return [
        {"Sid": "DeadLetters", "Effect": "Allow", "Action": "sqs:SendMessage",
         "Resource": queue_arn},
        {"Sid": "EncryptDeadLetters", "Effect": "Allow",
         "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": key_arn,
         "Condition": {"StringEquals": {"kms:ViaService": f"sqs.{region}.amazonaws.com"}}},
    ]


def stream_read_statements(*, stream_arn: str, sid: str) -> list[Statement]:
    """Read one DynamoDB stream (an event source mapping or a pipe polls it)."""
    return [
        {"Sid": sid, "Effect": "Allow",
         "Action": ["dynamodb:DescribeStream", "dynamodb:GetRecords",
                    "dynamodb:GetShardIterator"],
         "Resource": stream_arn},
        # ListStreams names no stream (it lists them): no resource-level permission exists.
        {"Sid": "ListStreams", "Effect": "Allow", "Action": "dynamodb:ListStreams",
         "Resource": "*"},
    ]
