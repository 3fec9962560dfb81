"""KMS: automatic rotation and key policies without open principals."""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import Policy, ResourceValidationArgs, Severity

from ._common import allows, condition_keys, parsed_documents, principal_values, resource_guardrail, statements, truthy

KEY = "aws:kms/key:Key"
REPLICA_KEY = "aws:kms/replicaKey:ReplicaKey"
KEY_POLICY = "aws:kms/keyPolicy:KeyPolicy"
# Conditions that pin a "*" principal to this account or organization.
ACCOUNT_PINNING_KEYS = {"kms:calleraccount", "aws:principalaccount", "aws:principalorgid",
                        "aws:sourceaccount", "aws:principalarn"}


def _rotation(args: ResourceValidationArgs) -> Iterator[str]:
    spec = args.props.get("customerMasterKeySpec") or args.props.get("keySpec") or "SYMMETRIC_DEFAULT"
    usage = args.props.get("keyUsage") or "ENCRYPT_DECRYPT"
    if spec != "SYMMETRIC_DEFAULT" or usage != "ENCRYPT_DECRYPT":
        return  # AWS rotates only symmetric encryption keys
    if not truthy(args.props.get("enableKeyRotation")):
        yield "enableKeyRotation is not true"


def _no_wildcard_principal(args: ResourceValidationArgs) -> Iterator[str]:
    for _, document, error in parsed_documents(args.props, ["policy"]):
        if error:
            yield error
        for statement in statements(document):
            if not allows(statement):
                continue
            principals = principal_values(statement)
            wildcard = "*" in principals.get("*", []) or "*" in principals.get("AWS", [])
            if wildcard and not condition_keys(statement) & ACCOUNT_PINNING_KEYS:
                yield (f"statement {statement.get('Sid', '')!r} allows principal '*' without a "
                       "kms:CallerAccount/aws:PrincipalOrgID condition")


POLICIES: list[Policy] = [
    resource_guardrail(
        "kms-key-rotation", "Symmetric customer-managed keys rotate automatically",
        ["CKV_AWS_7", "AwsSolutions-KMS5", "AWS Config cmk-backing-key-rotation-enabled"],
        [KEY], _rotation, severity=Severity.MEDIUM),
    resource_guardrail(
        "kms-no-wildcard-principal", "Key policies allow no unconditioned '*' principal",
        ["CKV_AWS_33"], [KEY, REPLICA_KEY, KEY_POLICY], _no_wildcard_principal,
        severity=Severity.CRITICAL),
]
