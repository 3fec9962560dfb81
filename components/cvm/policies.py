"""IAM documents of the CVM (built with the shared builders of components/iam.py)."""

from __future__ import annotations

from components.iam import (
    Statement,
    lambda_basic_statements,
    policy_document,
    table_key_statement,
)
from lambdas.contracts import fleet_allow_list as allow_list

# What AWS documents for API Gateway's account-level CloudWatch role ("Set up CloudWatch
# logging for REST APIs in API Gateway"): the role serves every API of the region, so it is
# the managed policy, not one scoped to our log group (API Gateway tests the role against
# its own log groups when the setting is written).
API_GATEWAY_LOGGING_POLICY = "service-role/AmazonAPIGatewayPushToCloudWatchLogs"


def function_role_policy(*, partition: str, region: str, account_id: str, function_name: str,
                         log_group_arn: str, key_arn: str, provisioning_table_arn: str,
                         inventory_table_arn: str, tables_key_arn: str, secret_arn: str,
                         thing_name_prefix: str, legacy_keys: bool) -> str:
    """Exactly the calls of lambdas/cvm_registration, on this region's resources."""
    iot = f"arn:{partition}:iot:{region}:{account_id}"
    things = f"{iot}:thing/{thing_name_prefix}*"
    issue = ["iot:CreateCertificateFromCsr"]
    if legacy_keys:  # only when a batch is allowed cloud-generated keys
        issue.append("iot:CreateKeysAndCertificate")
    statements: list[Statement] = [
        *lambda_basic_statements(log_group_arn=log_group_arn, key_arn=key_arn,
                                 function_name=function_name),
        # Device records only: the table also holds the fleet allow-list (its `fleet#` keys,
        # lambdas/contracts/cvm_device.py), which the function never reads or writes.
        {"Sid": "ClaimAndCommitRecords", "Effect": "Allow",
         "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem"],
         "Resource": provisioning_table_arn,
         "Condition": {"ForAllValues:StringNotLike": {
             "dynamodb:LeadingKeys": [allow_list.IAM_LEADING_KEYS]}}},
        # ConditionCheckItem: the claim's transaction checks the thing's inventory item
        # ("Using IAM with DynamoDB transactions": a ConditionCheck needs that permission);
        # the commits write the whole item (a transaction Put), never an update.
        {"Sid": "WriteInventory", "Effect": "Allow",
         "Action": ["dynamodb:ConditionCheckItem", "dynamodb:GetItem", "dynamodb:PutItem"],
         "Resource": inventory_table_arn},
        table_key_statement(key_arn=tables_key_arn, region=region, write=True,
                            sid="TablesKeyThroughDynamoDb"),
        {"Sid": "ReadBatchSalts", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
         "Resource": secret_arn},
        {"Sid": "DecryptBatchSalts", "Effect": "Allow", "Action": "kms:Decrypt",
         "Resource": key_arn,
         "Condition": {"StringEquals": {
             "kms:ViaService": f"secretsmanager.{region}.amazonaws.com",
             "kms:EncryptionContext:SecretARN": secret_arn}}},
        # IoT supports no resource-level permission for issuing certificates (the certificate
        # does not exist yet): AWS documents Resource "*" for both actions.
        {"Sid": "IssueCertificates", "Effect": "Allow", "Action": issue, "Resource": "*"},
        {"Sid": "Things", "Effect": "Allow",
         "Action": ["iot:CreateThing", "iot:DeleteThing", "iot:ListThingPrincipals"],
         "Resource": things},
        # AttachPolicy's resource is the target certificate; IAM has no key for the policy
        # name, so the function can only be held to certificates of this region.
        {"Sid": "Certificates", "Effect": "Allow",
         "Action": ["iot:AttachPolicy", "iot:DetachPolicy", "iot:DescribeCertificate",
                    "iot:UpdateCertificate",
                    "iot:DeleteCertificate"],
         "Resource": f"{iot}:cert/*"},
        {"Sid": "CertificateToThing", "Effect": "Allow",
         "Action": ["iot:AttachThingPrincipal", "iot:DetachThingPrincipal"],
         "Resource": f"{iot}:cert/*",
         "Condition": {"ArnLike": {"iot:thingArn": things}}},
    ]
    return policy_document(statements)
