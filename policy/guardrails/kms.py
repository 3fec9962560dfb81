"""KMS: automatic rotation and key policies that let no one outside the account in."""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import Policy, ResourceValidationArgs, Severity

from ._common import resource_guardrail, truthy
from ._exposure import resource_policy_check

KEY = "aws:kms/key:Key"
REPLICA_KEY = "aws:kms/replicaKey:ReplicaKey"
KEY_POLICY = "aws:kms/keyPolicy:KeyPolicy"


def _rotation(args: ResourceValidationArgs) -> Iterator[str]:
    spec = args.props.get("customerMasterKeySpec") or args.props.get("keySpec") or "SYMMETRIC_DEFAULT"
    usage = args.props.get("keyUsage") or "ENCRYPT_DECRYPT"
    if spec != "SYMMETRIC_DEFAULT" or usage != "ENCRYPT_DECRYPT":
        return  # AWS rotates only symmetric encryption keys
    if not truthy(args.props.get("enableKeyRotation")):
        yield "enableKeyRotation is not true"


POLICIES: list[Policy] = [
    resource_guardrail(
        "kms-key-rotation", "Symmetric customer-managed keys rotate automatically",
        ["CKV_AWS_7", "AwsSolutions-KMS5", "Security Hub KMS.4",
         "AWS Config cmk-backing-key-rotation-enabled"],
        [KEY], _rotation, severity=Severity.MEDIUM),
    resource_guardrail(
        "kms-no-wildcard-principal",
        "Key policies admit no one outside the account: no '*' principal without a fixed "
        "kms:CallerAccount/aws:PrincipalOrgID pin, no foreign accounts, service principals "
        "pinned by source or encryption context",
        ["CKV_AWS_33", "Security Hub KMS.5"],
        [KEY, REPLICA_KEY, KEY_POLICY],
        resource_policy_check({KEY: ("policy",), REPLICA_KEY: ("policy",), KEY_POLICY: ("policy",)}),
        severity=Severity.CRITICAL),
]
