"""Documents of the AWS managed policies this system (or a careless change) might attach.

Standard library only: the offline harness answers `aws.iam.get_policy` from this table
too, so what the runner sees and what the guardrails judge are the same documents. A policy
missing here is judged by its name only (see FORBIDDEN_NAMES in policy.guardrails.iam).
"""

from __future__ import annotations

from typing import Any

_ALL = "*"


def _doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


AWS_MANAGED_POLICIES: dict[str, dict[str, Any]] = {
    "AdministratorAccess": _doc({"Effect": "Allow", "Action": "*", "Resource": "*"}),
    "PowerUserAccess": _doc(
        {"Effect": "Allow", "NotAction": ["iam:*", "organizations:*", "account:*"],
         "Resource": "*"},
        {"Effect": "Allow",
         "Action": ["iam:CreateServiceLinkedRole", "iam:DeleteServiceLinkedRole", "iam:ListRoles",
                    "organizations:DescribeOrganization", "account:ListRegions",
                    "account:GetAccountInformation"],
         "Resource": "*"}),
    "IAMFullAccess": _doc(
        {"Effect": "Allow",
         "Action": ["iam:*", "organizations:DescribeAccount", "organizations:DescribeOrganization",
                    "organizations:DescribeOrganizationalUnit", "organizations:DescribePolicy",
                    "organizations:ListChildren", "organizations:ListParents",
                    "organizations:ListPoliciesForTarget", "organizations:ListRoots",
                    "organizations:ListPolicies", "organizations:ListTargetsForPolicy"],
         "Resource": "*"}),
    "AmazonS3FullAccess": _doc(
        {"Effect": "Allow", "Action": ["s3:*", "s3-object-lambda:*"], "Resource": "*"}),
    "AWSLambdaBasicExecutionRole": _doc(
        {"Effect": "Allow",
         "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": "*"}),
    "AWSXRayDaemonWriteAccess": _doc(
        {"Effect": "Allow",
         "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
                    "xray:GetSamplingTargets", "xray:GetSamplingStatisticSummaries"],
         "Resource": "*"}),
    "AWSIoTLogging": _doc(
        {"Effect": "Allow",
         "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
                    "logs:PutMetricFilter", "logs:PutRetentionPolicy", "logs:GetLogEvents",
                    "logs:DeleteLogStream"],
         "Resource": "*"}),
    "AWSIoTThingsRegistration": _doc(
        {"Effect": "Allow",
         "Action": ["iot:AddThingToThingGroup", "iot:AttachPolicy", "iot:AttachPrincipalPolicy",
                    "iot:AttachThingPrincipal", "iot:CreateCertificateFromCsr", "iot:CreatePolicy",
                    "iot:CreateThing", "iot:DescribeCertificate", "iot:DescribeThing",
                    "iot:DescribeThingGroup", "iot:DescribeThingType", "iot:DetachPolicy",
                    "iot:DetachThingPrincipal", "iot:GetPolicy", "iot:ListAttachedPolicies",
                    "iot:ListPolicyPrincipals", "iot:ListPrincipalPolicies",
                    "iot:ListPrincipalThings", "iot:ListTargetsForPolicy",
                    "iot:ListThingGroupsForThing", "iot:ListThingPrincipals",
                    "iot:RegisterCertificate", "iot:RegisterThing", "iot:RemoveThingFromThingGroup",
                    "iot:UpdateCertificate", "iot:UpdateThing", "iot:UpdateThingGroupsForThing",
                    "iot:AddThingToBillingGroup", "iot:DescribeBillingGroup",
                    "iot:RemoveThingFromBillingGroup"],
         "Resource": "*"}),
}

MANAGED_POLICY_ARN_MARKER = ":iam::aws:policy/"


def managed_policy_name(arn: str) -> str | None:
    """`AdministratorAccess` from `arn:aws:iam::aws:policy/AdministratorAccess` (any path)."""
    if MANAGED_POLICY_ARN_MARKER not in arn:
        return None
    return arn.rsplit("/", 1)[-1]


def managed_policy_document(arn: str) -> dict[str, Any] | None:
    name = managed_policy_name(arn)
    return AWS_MANAGED_POLICIES.get(name) if name else None
