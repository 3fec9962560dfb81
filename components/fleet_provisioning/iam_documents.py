"""IAM documents of fleet provisioning (plain builders; see README.md "Permissions")."""

from __future__ import annotations

from components.iam import (
    Statement,
    dead_letter_statements,
    lambda_basic_statements,
    policy_document,
    stream_read_statements,
    table_key_statement,
)
from lambdas.contracts import fleet_allow_list as allow_list

COGNITO_IDENTITY = "cognito-identity.amazonaws.com"
# Provisioning-table items the fleet functions may touch: allow-list entries only
# (`fleet#<serial>`, lambdas/contracts/fleet_allow_list.py); CVM records are keyed otherwise.
ALLOW_LIST_KEYS = allow_list.IAM_LEADING_KEYS

# What the provisioning template makes AWS IoT do, and nothing more (the managed
# AWSIoTThingsRegistration policy grants 30 actions on "*"; README.md says why each of the
# others is not needed).
PROVISIONING_THING_ACTIONS = ("iot:CreateThing", "iot:DescribeThing", "iot:UpdateThing")
PROVISIONING_CERTIFICATE_ACTIONS = ("iot:AttachPolicy", "iot:DescribeCertificate",
                                    "iot:UpdateCertificate")


def installer_role_trust(identity_pool_id: str) -> str:
    """Only identities of this identity pool, and only authenticated ones, may assume the
    installer role (Cognito developer guide, "Role trust and permissions")."""
    return policy_document([{
        "Sid": "AuthenticatedInstallersOfThisIdentityPool",
        "Effect": "Allow",
        "Principal": {"Federated": COGNITO_IDENTITY},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {
            "StringEquals": {f"{COGNITO_IDENTITY}:aud": identity_pool_id},
            "ForAnyValue:StringLike": {f"{COGNITO_IDENTITY}:amr": "authenticated"},
        },
    }])


def installer_role_policy(template_arn: str) -> str:
    """Exactly one action on exactly one resource: a claim for this region's template."""
    return policy_document([{
        "Sid": "CreateClaimsForThisTemplateOnly",
        "Effect": "Allow",
        "Action": "iot:CreateProvisioningClaim",
        "Resource": template_arn,
    }])


def allow_list_admin_policy(*, table_arn: str, tables_key_arn: str, region: str) -> str:
    """What the web app's allow-list view does for an administrator: create and update
    `fleet#` entries (never another item of the shared table: no Scan, no DeleteItem, no
    other key, not the hook's records of which serial a certificate or a claim holds) and
    list them through the allow-list index (its partition key is the kind)."""
    return policy_document([
        {"Sid": "WriteAllowListEntriesOnly", "Effect": "Allow",
         "Action": ["dynamodb:PutItem", "dynamodb:UpdateItem"], "Resource": table_arn,
         "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [ALLOW_LIST_KEYS]},
                       "ForAllValues:StringNotLike": {"dynamodb:LeadingKeys": [
                           f"{prefix}*" for prefix in allow_list.HOLDING_KEY_PREFIXES.values()]}}},
        {"Sid": "ListAllowListEntries", "Effect": "Allow", "Action": "dynamodb:Query",
         "Resource": f"{table_arn}/index/{allow_list.INDEX_NAME}",
         "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [allow_list.KIND]}}},
        table_key_statement(key_arn=tables_key_arn, region=region, write=True),
    ])


def provisioning_role_policy(*, partition: str, region: str, account_id: str,
                             device_policy_name: str) -> str:
    iot = f"arn:{partition}:iot:{region}:{account_id}"
    return policy_document([
        {"Sid": "ThingNamedAfterTheSerial", "Effect": "Allow",
         "Action": list(PROVISIONING_THING_ACTIONS), "Resource": f"{iot}:thing/*"},
        # AttachPolicy authorises against the target certificate (the Service Authorization
        # Reference lists only cert/thinggroup), so IAM cannot pin the policy attached; the
        # template names only the device policy.
        {"Sid": "ActivateTheNewCertificateWithTheDevicePolicy", "Effect": "Allow",
         "Action": list(PROVISIONING_CERTIFICATE_ACTIONS), "Resource": f"{iot}:cert/*"},
        {"Sid": "AttachCertificateToThing", "Effect": "Allow",
         "Action": "iot:AttachThingPrincipal", "Resource": f"{iot}:cert/*",
         "Condition": {"ArnLike": {"iot:thingArn": f"{iot}:thing/*"}}},
        {"Sid": "ReadTheDevicePolicyNamedByTheTemplate", "Effect": "Allow",
         "Action": "iot:GetPolicy", "Resource": f"{iot}:policy/{device_policy_name}"},
    ])


def _allow_list_condition() -> dict[str, dict[str, list[str]]]:
    """Only `fleet#` items of the shared provisioning table (never CVM records)."""
    return {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [ALLOW_LIST_KEYS]}}


def hook_role_policy(*, log_group_arn: str, key_arn: str, function_name: str,
                     partition: str, region: str, account_id: str,
                     provisioning_table_arn: str, inventory_table_arn: str,
                     tables_key_arn: str) -> str:
    iot = f"arn:{partition}:iot:{region}:{account_id}"
    statements: list[Statement] = lambda_basic_statements(
        log_group_arn=log_group_arn, key_arn=key_arn, function_name=function_name)
    statements += [
        # BatchGetItem reads entry and device together; TransactWriteItems authorises its
        # parts (UpdateItem on the entry, ConditionCheckItem on the inventory).
        {"Sid": "ReadAndClaimAllowListEntries", "Effect": "Allow",
         "Action": ["dynamodb:BatchGetItem", "dynamodb:UpdateItem"],
         "Resource": provisioning_table_arn, "Condition": _allow_list_condition()},
        {"Sid": "CheckTheInventory", "Effect": "Allow",
         "Action": ["dynamodb:BatchGetItem", "dynamodb:ConditionCheckItem"],
         "Resource": inventory_table_arn},
        table_key_statement(key_arn=tables_key_arn, region=region, write=True),
        # Before a stale claim passes to another certificate the hook asks this region's
        # registry whether the claimed device provisioned after all (read only). Only claims
        # made in this region are ever passed on here (another region's device is in that
        # region's registry: CLAIMED_IN_ANOTHER_REGION), so no other region is read.
        {"Sid": "ReadRegistryBeforeTakeover", "Effect": "Allow",
         "Action": "iot:ListThingPrincipals", "Resource": f"{iot}:thing/*"},
        {"Sid": "ReadClaimedCertificate", "Effect": "Allow",
         "Action": "iot:DescribeCertificate", "Resource": f"{iot}:cert/*"},
    ]
    return policy_document(statements)


def recorder_role_policy(*, log_group_arn: str, key_arn: str, function_name: str,
                         partition: str, region: str, account_id: str,
                         provisioning_stream_arn: str, provisioning_table_arn: str,
                         inventory_table_arn: str, queue_arn: str,
                         tables_key_arn: str) -> str:
    iot = f"arn:{partition}:iot:{region}:{account_id}"
    statements: list[Statement] = lambda_basic_statements(
        log_group_arn=log_group_arn, key_arn=key_arn, function_name=function_name)
    statements += stream_read_statements(stream_arn=provisioning_stream_arn,
                                         sid="ReadProvisioningStream")
    statements += [
        # The device is recorded in one TransactWriteItems, which authorises its parts:
        # PutItem on the inventory, UpdateItem (settle) and ConditionCheckItem (the
        # certificate's record) on the allow-list.
        {"Sid": "SettleAllowListEntries", "Effect": "Allow",
         "Action": ["dynamodb:ConditionCheckItem", "dynamodb:GetItem", "dynamodb:UpdateItem"],
         "Resource": provisioning_table_arn, "Condition": _allow_list_condition()},
        {"Sid": "RecordDevices", "Effect": "Allow",
         "Action": ["dynamodb:GetItem", "dynamodb:PutItem"], "Resource": inventory_table_arn},
        table_key_statement(key_arn=tables_key_arn, region=region, write=True),
        {"Sid": "ConfirmCertificate", "Effect": "Allow", "Action": "iot:DescribeCertificate",
         "Resource": f"{iot}:cert/*"},
        {"Sid": "ConfirmAttachment", "Effect": "Allow", "Action": "iot:ListThingPrincipals",
         "Resource": f"{iot}:thing/*"},
        # The template's attachment becomes EXCLUSIVE_THING (one certificate, one device);
        # a certificate that provisioned onto a name another device holds (or onto two
        # things) is ended by the recorder that detects it: deactivated, then detached.
        # Attach/Detach authorise against the certificate, pinned to things here.
        {"Sid": "LockOrEndTheAttachment", "Effect": "Allow",
         "Action": ["iot:AttachThingPrincipal", "iot:DetachThingPrincipal"],
         "Resource": f"{iot}:cert/*",
         "Condition": {"ArnLike": {"iot:thingArn": f"{iot}:thing/*"}}},
        {"Sid": "DeactivateIntruderCertificate", "Effect": "Allow",
         "Action": "iot:UpdateCertificate", "Resource": f"{iot}:cert/*"},
    ]
    statements += dead_letter_statements(queue_arn=queue_arn, key_arn=key_arn, region=region)
    return policy_document(statements)
