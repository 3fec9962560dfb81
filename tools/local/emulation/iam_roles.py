"""What a service may do with a role it assumes: the trust check, then the role's policies.

Used by emulations that act for AWS services (the rules engine acting for IoT...): a role
that does not exist, does not trust the service for this source, or does not grant the
action on the target fails the action, as it would on AWS.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from tools.local.emulation.policy_eval import allows
from tools.local.materialisers import GLOBAL_SERVICE_REGION
from tools.local.system import LocalSystem


class AccessDenied(Exception):
    """The service could not assume the role, or the role does not grant the action."""


def _role_name(role_arn: str) -> str:
    return role_arn.rsplit("/", 1)[-1]


def role_policies(system: LocalSystem, role_arn: str) -> list[Mapping[str, Any]]:
    iam = system.client("iam", GLOBAL_SERVICE_REGION)
    name = _role_name(role_arn)
    documents: list[Mapping[str, Any]] = []
    for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        documents.append(iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"])
    for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
        documents.append(iam.get_policy_version(
            PolicyArn=attached["PolicyArn"],
            VersionId=policy["DefaultVersionId"])["PolicyVersion"]["Document"])
    return documents


def assume(system: LocalSystem, role_arn: str, *, service: str,
           source_account: str, source_arn: str) -> list[Mapping[str, Any]]:
    """The role's permission documents, if `service` acting for `source_arn` may assume it."""
    iam = system.client("iam", GLOBAL_SERVICE_REGION)
    try:
        trust = iam.get_role(RoleName=_role_name(role_arn))["Role"]["AssumeRolePolicyDocument"]
    except ClientError as error:
        raise AccessDenied(f"{service} cannot assume {role_arn}: "
                           f"{error.response['Error']['Code']}") from None
    context = {"aws:SourceAccount": source_account, "aws:SourceArn": source_arn}
    if not allows([trust], "sts:AssumeRole", None, context=context, principal_service=service):
        raise AccessDenied(f"{role_arn} does not trust {service} for {source_arn}")
    return role_policies(system, role_arn)


def require(documents: list[Mapping[str, Any]], action: str, resource: str, role_arn: str,
            context: Mapping[str, str] | None = None) -> None:
    if not allows(documents, action, resource, context=context):
        raise AccessDenied(f"{role_arn} is not allowed {action} on {resource}")
