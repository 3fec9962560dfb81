"""Policy pack v3's corpus: for every class of miss in issue 21, insecure programs written to
slip past a pack that judges presence instead of values (each must be caught by the named
guardrail, with the named message), and for each class secure-but-unusual counterparts (which
the class's guardrails must let through: the false positives).

    python -m tests.policy.evasions       # prints caught/total per class and false positives

Cases are plain data: a resource (type, props) judged under a provider, a stack (resources
judged by stack guardrails), or a whole program evaluated offline by the runner.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

HOME = "111122223333"
FOREIGN = "444455556666"
REGION = "eu-west-1"
IOT = f"arn:aws:iot:{REGION}:{HOME}"
THING = "${iot:Connection.Thing.ThingName}"
ATTACHED = {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}
ORG = "o-a1b2c3d4e5"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{HOME}:jobs"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{HOME}:alerts"
POOL = "eu-west-1:4a1b2c3d-1111-2222-3333-444455556666"
KMS_ID = "mrk-1234abcd12ab34cd56ef1234567890ab"


@dataclass(frozen=True)
class Case:
    cls: str
    name: str
    kind: str                       # "resource", "stack" or "program"
    spec: Any                       # (type, props) | [(type, props[, logical])...] | program
    guardrails: tuple[str, ...]     # evasion: the one that must fire; secure: those that must not
    fragment: str = ""              # evasion: a fragment of the expected message
    provider: dict[str, Any] = field(default_factory=lambda: {"allowedAccountIds": json.dumps([HOME])})
    config: dict[str, dict[str, Any]] = field(default_factory=dict)


def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def public(**condition: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage",
                                 "Resource": QUEUE_ARN}
    if condition:
        statement["Condition"] = condition
    return statement


def queue_policy(*statements: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return ("aws:sqs/queuePolicy:QueuePolicy", {"queueUrl": "u", "policy": doc(*statements)})


def key_policy(*statements: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return ("aws:kms/key:Key", {"enableKeyRotation": True, "policy": doc(*statements)})


def cognito_trust(condition: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return ("aws:iam/role:Role", {"assumeRolePolicy": doc({
        "Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
        "Principal": {"Federated": "cognito-identity.amazonaws.com"}, "Condition": condition})})


def env(**variables: Any) -> tuple[str, dict[str, Any]]:
    return ("aws:lambda/function:Function", {"environment": {"variables": variables}})


def iot_policy(*extra: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    base = [{"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{IOT}:client/{THING}", "Condition": ATTACHED},
            {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": f"{IOT}:topic/dt/{THING}/*"},
            {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": f"{IOT}:topicfilter/dt/{THING}/*"}]
    return ("aws:iot/policy:Policy", {"name": "device", "policy": doc(*base, *extra), "region": REGION})


def allow(action: Any, resource: Any, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def permission(**props: Any) -> tuple[str, dict[str, Any]]:
    return ("aws:lambda/permission:Permission", {"function": "f", "action": "lambda:InvokeFunction", **props})


# --- stacks -----------------------------------------------------------------------------------

QUEUE = ("aws:sqs/queue:Queue", {"url": f"https://sqs.{REGION}.amazonaws.com/{HOME}/jobs", "arn": QUEUE_ARN,
                                 "region": REGION})
TOPIC = ("aws:sns/topic:Topic", {"arn": TOPIC_ARN, "region": REGION})
BUCKET = ("aws:s3/bucket:Bucket", {"bucket": "b", "id": "b", "arn": "arn:aws:s3:::b", "region": REGION})


def tls_deny(**overrides: Any) -> dict[str, Any]:
    statement = {"Effect": "Deny", "Principal": "*", "Action": "sqs:*", "Resource": QUEUE_ARN,
                 "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    statement.update(overrides)
    return {k: v for k, v in statement.items() if v is not None}


def queue_with(*statements: dict[str, Any]) -> list[Any]:
    return [QUEUE, ("aws:sqs/queuePolicy:QueuePolicy", {"queueUrl": QUEUE[1]["url"], "policy": doc(*statements)})]


def bucket_with(*statements: dict[str, Any]) -> list[Any]:
    return [BUCKET, ("aws:s3/bucketPolicy:BucketPolicy", {"bucket": "b", "policy": doc(*statements)})]


def topic_with(*statements: dict[str, Any]) -> list[Any]:
    return [TOPIC, ("aws:sns/topicPolicy:TopicPolicy", {"arn": TOPIC_ARN, "policy": doc(*statements)})]


STAGE_ARN = f"arn:aws:apigateway:{REGION}::/restapis/api1/stages/v1"
ACL_ARN = f"arn:aws:wafv2:{REGION}:{HOME}:regional/webacl/cvm/1"
RATE_BLOCK = {"name": "rate", "priority": 0, "action": {"block": {}},
              "statement": {"rateBasedStatement": {"limit": 100, "aggregateKeyType": "IP"}},
              "visibilityConfig": {"cloudwatchMetricsEnabled": True, "metricName": "r", "sampledRequestsEnabled": True}}
MANAGED = {"name": "common", "priority": 1, "overrideAction": {"none": {}},
           "statement": {"managedRuleGroupStatement": {"name": "AWSManagedRulesCommonRuleSet", "vendorName": "AWS"}},
           "visibilityConfig": {"cloudwatchMetricsEnabled": True, "metricName": "c", "sampledRequestsEnabled": True}}


def acl(*rules: dict[str, Any], default: str = "allow") -> tuple[str, dict[str, Any]]:
    return ("aws:wafv2/webAcl:WebAcl", {"arn": ACL_ARN, "rules": list(rules), "defaultAction": {default: {}},
                                        "region": REGION})


def rest_api(route_verb: str = "POST", *, validator: dict[str, Any] | None = None, acl_rules: Sequence[dict[str, Any]] = (RATE_BLOCK,),
             throttle: bool = True, validator_declared: bool = True, usage_plan: bool = False,
             api_key_required: bool = False) -> list[Any]:
    """An open `POST /registration` route (allowed by the default policy config) with its guards."""
    resources: list[Any] = [
        ("aws:apigateway/resource:Resource", {"restApi": "api1", "parentId": "root", "pathPart": "registration", "id": "res1"}),
        ("aws:apigateway/method:Method", {"restApi": "api1", "resourceId": "res1", "httpMethod": route_verb,
                                          "authorization": "NONE", "requestValidatorId": "val1",
                                          "apiKeyRequired": api_key_required}),
        ("aws:apigateway/stage:Stage", {"restApi": "api1", "stageName": "v1", "arn": STAGE_ARN, "region": REGION}),
        ("aws:wafv2/webAclAssociation:WebAclAssociation", {"resourceArn": STAGE_ARN, "webAclArn": ACL_ARN}),
        acl(*acl_rules)]
    if validator_declared:
        resources.append(("aws:apigateway/requestValidator:RequestValidator", {
            "id": "val1", "restApi": "api1", **(validator or {"validateRequestBody": True, "validateRequestParameters": True})}))
    if throttle:
        resources.append(("aws:apigateway/methodSettings:MethodSettings", {
            "restApi": "api1", "stageName": "v1", "methodPath": "*/*",
            "settings": {"throttlingBurstLimit": 20, "throttlingRateLimit": 10}}))
    if usage_plan:
        resources.append(("aws:apigateway/usagePlan:UsagePlan", {
            "apiStages": [{"apiId": "api1", "stage": "v1"}], "throttleSettings": {"burstLimit": 20, "rateLimit": 10}}))
    return resources


def openapi(security: Any, validator: str | None = "all") -> str:
    operation: dict[str, Any] = {"x-amazon-apigateway-integration": {"type": "aws_proxy", "httpMethod": "POST",
                                                                     "uri": "arn:aws:apigateway:eu-west-1:lambda:path/x"}}
    if security is not None:
        operation["security"] = security
    body: dict[str, Any] = {
        "openapi": "3.0.1", "info": {"title": "admin", "version": "1"},
        "paths": {"/admin/devices": {"delete": operation}},
        "components": {"securitySchemes": {
            "pool": {"type": "apiKey", "name": "Authorization", "in": "header",
                     "x-amazon-apigateway-authtype": "cognito_user_pools",
                     "x-amazon-apigateway-authorizer": {"type": "cognito_user_pools", "providerARNs": ["arn:aws:cognito-idp:x"]}},
            "key": {"type": "apiKey", "name": "x-api-key", "in": "header"}}},
        "x-amazon-apigateway-request-validators": {"all": {"validateRequestBody": True, "validateRequestParameters": True},
                                                   "none": {"validateRequestBody": False, "validateRequestParameters": False}}}
    if validator:
        body["x-amazon-apigateway-request-validator"] = validator
    return json.dumps(body)


def template(policy_document: Any, **extra: Any) -> list[Any]:
    device = iot_policy()
    body = {"Parameters": {"ThingName": {"Type": "String"}},
            "Resources": {"policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyDocument": policy_document}}}}
    return [device, ("aws:iot/provisioningTemplate:ProvisioningTemplate", {
        "templateBody": json.dumps(body), "region": REGION,
        "preProvisioningHook": {"targetArn": f"arn:aws:lambda:{REGION}:{HOME}:function:hook"}, **extra})]


def der_private_key() -> str:
    """A PKCS#8 header (SEQUENCE, INTEGER 0, rsaEncryption) over random-looking bytes."""
    return base64.b64encode(bytes.fromhex("308204bd020100300d06092a864886f70d0101010500") + bytes(range(7, 7 + 90))).decode()


# --- programs (the offline runner) -------------------------------------------------------------

def program_stack_reference_policy() -> None:
    import pulumi
    import pulumi_aws as aws

    shared = pulumi.StackReference("acme/shared/prod")
    aws.sqs.QueuePolicy("from-shared", region=REGION, queue_url="u", policy=shared.get_output("queuePolicy"))


def program_alias_target() -> None:
    import pulumi_aws as aws

    key = aws.kms.Key("k", region=REGION, enable_key_rotation=True, policy=doc(
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{HOME}:root"}, "Action": "kms:*", "Resource": "*"}))
    alias = aws.kms.Alias("a", region=REGION, name="alias/jobs", target_key_id=key.key_id)
    aws.sqs.Queue("q", region=REGION, kms_master_key_id=alias.target_key_arn)


# --- the corpus -------------------------------------------------------------------------------

SQS_PUBLIC = "sqs-no-public-policy"
EVASIONS: list[Case] = [
    # Conditions that look like a pin but pin nothing: judged by what they admit.
    Case("conditions", "SourceIp of an AWS EC2 /8", "resource",
         queue_policy(public(IpAddress={"aws:SourceIp": "3.0.0.0/8"})), (SQS_PUBLIC,), "principal '*'"),
    Case("conditions", "SourceIp as two halves of the internet", "resource",
         queue_policy(public(IpAddress={"aws:SourceIp": ["0.0.0.0/1", "128.0.0.0/1"]})), (SQS_PUBLIC,), "principal '*'"),
    Case("conditions", "SourceIp every /8 of 52 and 54", "resource",
         queue_policy(public(IpAddress={"aws:SourceIp": ["52.0.0.0/8", "54.0.0.0/8"]})), (SQS_PUBLIC,), "principal '*'"),
    Case("conditions", "SourceIp IPv6 /16", "resource",
         queue_policy(public(IpAddress={"aws:SourceIp": "2600::/16"})), (SQS_PUBLIC,), "principal '*'"),
    Case("conditions", "SourceVpce prefix", "resource",
         queue_policy(public(StringLike={"aws:SourceVpce": "vpce-0*"})), (SQS_PUBLIC,), "principal '*'"),
    Case("conditions", "SourceVpc wildcard", "resource",
         queue_policy(public(StringLike={"aws:sourceVpc": "vpc-*"})), (SQS_PUBLIC,), "principal '*'"),
    Case("conditions", "userid AROA* (every role session anywhere)", "resource",
         key_policy({"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
                     "Condition": {"StringLike": {"aws:userid": "AROA*"}}}), ("kms-no-wildcard-principal",), "principal '*'"),
    Case("conditions", "PrincipalAccount with a ? wildcard", "resource",
         queue_policy(public(StringLike={"aws:PrincipalAccount": "11112222333?"})), (SQS_PUBLIC,), "principal '*'"),
    Case("conditions", "PrincipalOrgID pattern", "resource",
         ("aws:secretsmanager/secretPolicy:SecretPolicy", {"secretArn": "s", "policy": doc(
             {"Effect": "Allow", "Principal": "*", "Action": "secretsmanager:GetSecretValue", "Resource": "*",
              "Condition": {"StringLike": {"aws:PrincipalOrgID": "o-*"}}})}),
         ("secretsmanager-no-public-policy",), "principal '*'"),
    Case("conditions", "PrincipalArn with any account", "resource",
         ("aws:iam/role:Role", {"assumeRolePolicy": doc({"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": "*"},
                                                          "Condition": {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/deploy"}}})}),
         ("iam-trust-policy-scoped",), "principal '*'"),
    Case("conditions", "log delivery SourceArn over a bucket name anyone can register", "resource",
         ("aws:cloudwatch/logResourcePolicy:LogResourcePolicy", {"policyName": "p", "policyDocument": doc(
             {"Effect": "Allow", "Principal": {"Service": "delivery.logs.amazonaws.com"}, "Action": "logs:PutLogEvents",
              "Resource": f"arn:aws:logs:{REGION}:{HOME}:log-group:x:*",
              "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:s3:::acme-*"}}})}),
         ("logs-resource-policy-scoped",), "confused deputy"),
    Case("conditions", "service SourceArn with a wildcard account", "resource",
         ("aws:sns/topicPolicy:TopicPolicy", {"arn": TOPIC_ARN, "policy": doc(
             {"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sns:Publish", "Resource": TOPIC_ARN,
              "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:events:eu-west-1:*:rule/*"}}})}),
         ("sns-no-public-policy",), "confused deputy"),
    Case("conditions", "Cognito amr *authenticated (matches unauthenticated)", "resource",
         cognito_trust({"StringEquals": {"cognito-identity.amazonaws.com:aud": POOL},
                        "ForAnyValue:StringLike": {"cognito-identity.amazonaws.com:amr": "*authenticated"}}),
         ("iam-trust-policy-scoped",), "amr must be 'authenticated'"),
    Case("conditions", "Cognito aud of every pool in the region", "resource",
         cognito_trust({"StringLike": {"cognito-identity.amazonaws.com:aud": "eu-west-1:*"},
                        "ForAnyValue:StringLike": {"cognito-identity.amazonaws.com:amr": "authenticated"}}),
         ("iam-trust-policy-scoped",), ":aud is not pinned"),
    Case("conditions", "OIDC aud pattern", "resource",
         ("aws:iam/role:Role", {"assumeRolePolicy": doc({
             "Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
             "Principal": {"Federated": f"arn:aws:iam::{HOME}:oidc-provider/token.actions.githubusercontent.com"},
             "Condition": {"StringLike": {"token.actions.githubusercontent.com:aud": "sts.*",
                                          "token.actions.githubusercontent.com:sub": "repo:acme/iot:*"}}})}),
         ("iam-trust-policy-scoped",), ":aud condition"),
    # The home account: known on every stack, never widened by the document.
    Case("home-account", "provider without allowedAccountIds", "stack",
         [key_policy({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{FOREIGN}:root"}, "Action": "kms:Decrypt",
                      "Resource": "*"})],
         ("aws-home-account-declared",), "allowedAccountIds is not set", provider={}),
    Case("home-account", "allowedAccountIds that are not account ids", "stack",
         [QUEUE], ("aws-home-account-declared",), "not 12-digit account ids",
         provider={"allowedAccountIds": json.dumps(["prod"])}),
    Case("home-account", "key policy Resource * granting another account", "resource",
         key_policy({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{FOREIGN}:root"}, "Action": "kms:Decrypt",
                     "Resource": "*"}), ("kms-no-wildcard-principal",), FOREIGN),
    Case("home-account", "secret policy granting another account's role", "resource",
         ("aws:secretsmanager/secretPolicy:SecretPolicy", {"secretArn": "s", "policy": doc(
             {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{FOREIGN}:role/reader"},
              "Action": "secretsmanager:GetSecretValue", "Resource": "*"})}),
         ("secretsmanager-no-public-policy",), FOREIGN),
    Case("home-account", "bucket policy (no account in S3 ARNs) granting another account", "resource",
         ("aws:s3/bucketPolicy:BucketPolicy", {"bucket": "b", "policy": doc(
             {"Effect": "Allow", "Principal": {"AWS": FOREIGN}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"})}),
         ("s3-no-public-policy",), FOREIGN),
    Case("home-account", "foreign Resource ARN does not make the foreign account home", "resource",
         queue_policy({"Effect": "Allow", "Principal": {"AWS": FOREIGN}, "Action": "sqs:ReceiveMessage",
                       "Resource": f"arn:aws:sqs:{REGION}:{FOREIGN}:jobs"}), (SQS_PUBLIC,), FOREIGN),
    Case("home-account", "trust of another account's root", "resource",
         ("aws:iam/role:Role", {"assumeRolePolicy": doc({"Effect": "Allow", "Action": "sts:AssumeRole",
                                                          "Principal": {"AWS": f"arn:aws:iam::{FOREIGN}:root"}})}),
         ("iam-trust-policy-scoped",), FOREIGN),
    # Lambda permissions: every account they name is compared with home.
    Case("lambda-permissions", "principal * pinned to another account", "resource",
         permission(principal="*", sourceAccount=FOREIGN), ("lambda-permission-scoped",), FOREIGN),
    Case("lambda-permissions", "service with another account's rule", "resource",
         permission(principal="events.amazonaws.com", sourceArn=f"arn:aws:events:{REGION}:{FOREIGN}:rule/r"),
         ("lambda-permission-scoped",), FOREIGN),
    Case("lambda-permissions", "S3 with a bucket-name pattern", "resource",
         permission(principal="s3.amazonaws.com", sourceArn="arn:aws:s3:::acme-*", sourceAccount=HOME),
         ("lambda-permission-scoped",), "pins no resource"),
    Case("lambda-permissions", "another account as principal", "resource",
         permission(principal=FOREIGN), ("lambda-permission-scoped",), FOREIGN),
    Case("lambda-permissions", "principal * with a wildcard-account source ARN", "resource",
         permission(principal="*", sourceArn=f"arn:aws:execute-api:{REGION}:*:abc/*"), ("lambda-permission-scoped",),
         "lets anyone"),
    Case("lambda-permissions", "org id pattern", "resource",
         permission(principal="*", principalOrgId="o-*"), ("lambda-permission-scoped",), "not an organization id"),
    Case("lambda-permissions", "sourceAccount that is not an account", "resource",
         permission(principal="sns.amazonaws.com", sourceAccount="*"), ("lambda-permission-scoped",), "not a 12-digit"),
    # TLS-only denials that deny almost nothing.
    Case("tls-denials", "denies only SendMessage", "stack", queue_with(tls_deny(Action="sqs:SendMessage")),
         ("sqs-ssl-only",), "no statement denies every sqs action"),
    Case("tls-denials", "denies the bucket but not its objects", "stack",
         bucket_with(tls_deny(Action="s3:*", Resource="arn:aws:s3:::b")), ("s3-ssl-only",), "arn:aws:s3:::b/*"),
    Case("tls-denials", "denies one role only", "stack",
         topic_with(tls_deny(Action="sns:*", Resource=TOPIC_ARN, Principal={"AWS": f"arn:aws:iam::{HOME}:role/app"})),
         ("sns-ssl-only",), "no statement denies every sns action"),
    Case("tls-denials", "denies another queue", "stack",
         queue_with(tls_deny(Resource=f"arn:aws:sqs:{REGION}:{HOME}:other")), ("sqs-ssl-only",), QUEUE_ARN),
    Case("tls-denials", "narrowed by a further condition", "stack",
         bucket_with(tls_deny(Action="s3:*", Resource=["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
                              Condition={"Bool": {"aws:SecureTransport": "false"},
                                         "StringEquals": {"aws:PrincipalAccount": FOREIGN}})),
         ("s3-ssl-only",), "no statement denies every s3 action"),
    Case("tls-denials", "NotAction leaves actions allowed over HTTP", "stack",
         queue_with(tls_deny(Action=None, NotAction="sqs:DeleteQueue")), ("sqs-ssl-only",), "no statement"),
    Case("tls-denials", "denies when transport IS secure", "stack",
         queue_with(tls_deny(Condition={"Bool": {"aws:SecureTransport": "true"}})), ("sqs-ssl-only",), "no statement"),
    Case("tls-denials", "another service's actions", "stack",
         topic_with(tls_deny(Action="sqs:*", Resource="*")), ("sns-ssl-only",), "every sns action"),
    # Secrets outside Lambda environments, and spellings inside them.
    Case("secrets", "SSM String parameter holding a password", "resource",
         ("aws:ssm/parameter:Parameter", {"name": "/app/db/password", "type": "String", "value": "hunter2-prod"}),
         ("no-secrets-in-configuration",), "String parameter"),
    Case("secrets", "topic rule HTTP header", "resource",
         ("aws:iot/topicRule:TopicRule", {"sql": "SELECT * FROM 'dt/#'", "http": [{
             "url": "https://hooks.example.com/in", "httpHeaders": [{"key": "Authorization", "value": "Bearer 9f8e7d6c5b4a39281706"}]}]}),
         ("no-secrets-in-configuration",), "Authorization"),
    Case("secrets", "state machine definition with an API key", "resource",
         ("aws:sfn/stateMachine:StateMachine", {"definition": json.dumps({"StartAt": "Call", "States": {"Call": {
             "Type": "Task", "Resource": "arn:aws:states:::http:invoke", "End": True,
             "Parameters": {"ApiEndpoint": "https://api.example.com", "Headers": {"x-api-key": "A1b2C3d4E5f6G7h8J9k0"}}}}})}),
         ("no-secrets-in-configuration",), "x-api-key"),
    Case("secrets", "pipe HTTP target header", "resource",
         ("aws:pipes/pipe:Pipe", {"targetParameters": {"httpParameters": {
             "headerParameters": {"X-Auth-Token": "tok_5f2b9c8e1d7a4b3c"}}}}),
         ("no-secrets-in-configuration",), "X-Auth-Token"),
    Case("secrets", "event target basic auth header", "resource",
         ("aws:cloudwatch/eventTarget:EventTarget", {"rule": "r", "arn": f"arn:aws:events:{REGION}:{HOME}:api-destination/d",
                                                     "httpTarget": {"headerParameters": {
                                                         "Authorization": "Basic dXNlcjpwYXNzd29yZDEyMw=="}}}),
         ("no-secrets-in-configuration",), "Authorization"),
    Case("secrets", "stage variable", "resource",
         ("aws:apigateway/stage:Stage", {"restApi": "a", "stageName": "v1", "variables": {"dbPassword": "Tr0ub4dor"}}),
         ("no-secrets-in-configuration",), "dbPassword"),
    Case("secrets", "JSON blob under a neutral name", "resource",
         env(APP_CONFIG=json.dumps({"db": {"host": "db", "password": "hunter2-prod"}})),
         ("lambda-no-secrets-in-env",), "APP_CONFIG.db.password"),
    Case("secrets", "DB_PASS", "resource", env(DB_PASS="correct-horse"), ("lambda-no-secrets-in-env",), "DB_PASS"),
    Case("secrets", "*_PASSCODE", "resource", env(ADMIN_PASSCODE="482913"), ("lambda-no-secrets-in-env",), "ADMIN_PASSCODE"),
    Case("secrets", "*_PRIVKEY base64 without PEM armour", "resource", env(SIGNING_PRIVKEY=der_private_key()),
         ("lambda-no-secrets-in-env",), "private key"),
    Case("secrets", "AUTH_HEADER Bearer", "resource", env(AUTH_HEADER="Bearer 0a1b2c3d4e5f6a7b8c9d"),
         ("lambda-no-secrets-in-env",), "AUTH_HEADER"),
    Case("secrets", "redis URL with a password and no user", "resource", env(CACHE_URL="redis://:s3cr3tpw@cache:6379/0"),
         ("lambda-no-secrets-in-env",), "credentials in a URL"),
    Case("secrets", "libpq connection string", "resource", env(DATABASE="host=db port=5432 user=app password=hunter2"),
         ("lambda-no-secrets-in-env",), "connection string"),
    Case("secrets", "JDBC password parameter", "resource",
         env(JDBC_URL="jdbc:postgresql://db:5432/app?user=app&password=hunter2"), ("lambda-no-secrets-in-env",),
         "connection string"),
    Case("secrets", "camelCase name", "resource", env(dbPass="x9-kq"), ("lambda-no-secrets-in-env",), "dbPass"),
    # Resources the pack would never see, and side doors.
    Case("unseen-resources", "Cloud Control bucket", "resource",
         ("aws:cloudcontrol/resource:Resource", {"typeName": "AWS::S3::Bucket", "desiredState": json.dumps(
             {"BucketName": "public", "PublicAccessBlockConfiguration": {"BlockPublicPolicy": False}})}),
         ("unjudged-resource-types-allow-listed",), "AWS::S3::Bucket"),
    Case("unseen-resources", "CloudFormation YAML stack with a queue policy", "resource",
         ("aws:cloudformation/stack:Stack", {"name": "s", "templateBody": (
             "Resources:\n  Policy:\n    Type: AWS::SQS::QueuePolicy\n    Properties:\n      Queues: [!Ref Q]\n"
             "      PolicyDocument: {Statement: [{Effect: Allow, Principal: '*', Action: 'sqs:*', Resource: '*'}]}\n")}),
         ("unjudged-resource-types-allow-listed",), "AWS::SQS::QueuePolicy"),
    Case("unseen-resources", "CloudFormation template by URL", "resource",
         ("aws:cloudformation/stack:Stack", {"name": "s", "templateUrl": "https://s3.amazonaws.com/b/t.yaml"}),
         ("unjudged-resource-types-allow-listed",), "templateUrl"),
    Case("unseen-resources", "aws-native bucket", "resource", ("aws-native:s3:Bucket", {"bucketName": "x"}),
         ("unjudged-resource-types-allow-listed",), "aws-native"),
    Case("unseen-resources", "REST API from an OpenAPI body, admin route open", "stack",
         [("aws:apigateway/restApi:RestApi", {"id": "api9", "body": openapi(None)})],
         ("apigateway-method-authorization",), "DELETE /admin/devices has no authorization"),
    Case("unseen-resources", "OpenAPI route whose only security is an API key", "stack",
         [("aws:apigateway/restApi:RestApi", {"id": "api9", "body": openapi([{"key": []}])})],
         ("apigateway-method-authorization",), "DELETE /admin/devices"),
    Case("unseen-resources", "HTTP API quick create", "resource",
         ("aws:apigatewayv2/api:Api", {"protocolType": "HTTP", "target": f"arn:aws:lambda:{REGION}:{HOME}:function:f",
                                       "routeKey": "POST /admin"}),
         ("apigatewayv2-route-authorization",), "quick-create"),
    Case("unseen-resources", "event bus permission to everyone", "resource",
         ("aws:cloudwatch/eventPermission:EventPermission", {"principal": "*", "statementId": "all"}),
         ("events-permission-not-public",), "principal '*'"),
    Case("unseen-resources", "KMS grant to another account", "resource",
         ("aws:kms/grant:Grant", {"keyId": KMS_ID, "granteePrincipal": f"arn:aws:iam::{FOREIGN}:role/x",
                                  "operations": ["Decrypt"]}),
         ("kms-grant-home-account",), FOREIGN),
    Case("unseen-resources", "pipe into another account's queue", "resource",
         ("aws:pipes/pipe:Pipe", {"source": f"arn:aws:dynamodb:{REGION}:{HOME}:table/t/stream/x",
                                  "target": f"arn:aws:sqs:{REGION}:{FOREIGN}:exfil"}),
         ("data-delivered-home",), FOREIGN),
    Case("unseen-resources", "event target on another account's bus", "resource",
         ("aws:cloudwatch/eventTarget:EventTarget", {"rule": "r", "arn": f"arn:aws:events:{REGION}:{FOREIGN}:event-bus/default"}),
         ("data-delivered-home",), FOREIGN),
    Case("unseen-resources", "IoT rule into another account's queue URL", "resource",
         ("aws:iot/topicRule:TopicRule", {"sql": "SELECT * FROM 'dt/#'", "sqs": [
             {"queueUrl": f"https://sqs.{REGION}.amazonaws.com/{FOREIGN}/q", "roleArn": "r", "useBase64": False}]}),
         ("data-delivered-home",), FOREIGN),
    Case("unseen-resources", "one certificate on two things", "stack",
         [("aws:iot/thingPrincipalAttachment:ThingPrincipalAttachment", {"principal": "arn:cert/1", "thing": "boiler-1"}),
          ("aws:iot/thingPrincipalAttachment:ThingPrincipalAttachment", {"principal": "arn:cert/1", "thing": "boiler-2"})],
         ("iot-certificate-one-thing",), "attached to 2 things"),
    # Guards that guard nothing.
    Case("guards", "validator that validates nothing", "stack",
         rest_api(validator={"validateRequestBody": False, "validateRequestParameters": False}),
         ("apigateway-method-authorization",), "validates neither"),
    Case("guards", "validator of parameters only on an open POST", "stack",
         rest_api(validator={"validateRequestBody": False, "validateRequestParameters": True}),
         ("apigateway-method-authorization",), "does not validate the body"),
    Case("guards", "validator id not declared in the stack", "stack", rest_api(validator_declared=False),
         ("apigateway-request-validation",), "not declared in this stack"),
    Case("guards", "usage plan counted as throttling", "stack", rest_api(throttle=False, usage_plan=True),
         ("apigateway-throttling",), "usage plan counts only"),
    Case("guards", "WAF whose only rules COUNT", "resource",
         acl({**RATE_BLOCK, "action": {"count": {}}}, {**MANAGED, "overrideAction": {"count": {}}}),
         ("wafv2-web-acl-has-rules",), "only COUNTs"),
    Case("guards", "WAF without a rate rule in front of an open route", "stack", rest_api(acl_rules=(MANAGED,)),
         ("apigateway-method-authorization",), "no rate-based rule that blocks"),
    Case("guards", "rate rule that only counts in front of an open route", "stack",
         rest_api(acl_rules=({**RATE_BLOCK, "action": {"count": {}}}, MANAGED)),
         ("apigateway-method-authorization",), "no rate-based rule that blocks"),
    Case("guards", "ruleJson whose rules only COUNT", "resource",
         ("aws:wafv2/webAcl:WebAcl", {"defaultAction": {"allow": {}}, "ruleJson": json.dumps([
             {"Name": "r", "Priority": 0, "Action": {"Count": {}}, "Statement": {"RateBasedStatement": {"Limit": 100}}}])}),
         ("wafv2-web-acl-has-rules",), "only COUNTs"),
    # IoT.
    Case("iot", "template policy built with Fn::Join", "stack",
         template({"Fn::Join": ["", ['{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Publish",',
                                     f'"Resource":"{IOT}:topic/*"', "}]}"]]}),
         ("iot-provisioning-template-policy-scoped",), "grants more than the device policy"),
    Case("iot", "template policy naming the device-sent ThingName", "stack",
         template({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Publish",
                                                          "Resource": {"Fn::Sub": f"{IOT}:topic/dt/${{ThingName}}/*"}}]}),
         ("iot-provisioning-template-policy-scoped",), "grants more than the device policy"),
    Case("iot", "template policy behind Fn::If", "stack",
         template({"Fn::If": ["Prod", {"Statement": []}, {"Statement": []}]}),
         ("iot-provisioning-template-policy-scoped",), "cannot be judged"),
    Case("iot", "Basic Ingest into any rule", "resource", iot_policy(allow("iot:Publish", f"{IOT}:topic/$aws/rules/*")),
         ("iot-policy-no-wildcard-resource",), "$aws/rules/*"),
    Case("iot", "every device's presence events", "resource",
         iot_policy(allow(["iot:Subscribe", "iot:Receive"], [f"{IOT}:topicfilter/$aws/events/presence/#",
                                                             f"{IOT}:topic/$aws/events/presence/*"])),
         ("iot-policy-device-isolation",), "presence"),
    Case("iot", "credential provider on every role alias", "resource",
         iot_policy(allow("iot:AssumeRoleWithCertificate", f"{IOT}:rolealias/*")),
         ("iot-policy-no-wildcard-resource",), "rolealias/*"),
    Case("iot", "an action the database does not know", "resource",
         iot_policy(allow("iot:SendDirectMessage", f"{IOT}:thing/{THING}")),
         ("iot-policy-no-wildcard-action",), "does not know"),
    Case("iot", "neighbour by suffix with a separator", "resource",
         iot_policy(allow("iot:Publish", f"{IOT}:topic/dt/{THING}-*")), ("iot-policy-device-isolation",), "thing-a-2"),
    Case("iot", "neighbour by prefix", "resource",
         iot_policy(allow("iot:Receive", f"{IOT}:topic/cmd/*{THING}/*")), ("iot-policy-device-isolation",), "thing-a"),
    Case("iot", "neighbour shadow by ? wildcard", "resource",
         iot_policy(allow("iot:UpdateThingShadow", f"{IOT}:thing/{THING}??")), ("iot-policy-device-isolation",), "thing/"),
    Case("iot", "every device's telemetry behind a Deny that holds for one client id only", "resource",
         iot_policy(allow("iot:Publish", f"{IOT}:topic/dt/*"),
                    {"Effect": "Deny", "Action": "iot:Publish", "Resource": f"{IOT}:topic/dt/*",
                     "Condition": {"StringEquals": {"iot:ClientId": "maintenance-console"}}}),
         ("iot-policy-device-isolation",), "topic/dt/thing-b/*"),
    Case("iot", "every device's retained messages", "resource",
         iot_policy(allow("iot:GetRetainedMessage", f"{IOT}:topic/dt/*")),
         ("iot-policy-device-isolation",), "iot:GetRetainedMessage on 'topic/dt/*'"),
    Case("iot", "AWSIoTFullAccess attached", "resource",
         ("aws:iam/rolePolicyAttachment:RolePolicyAttachment", {"role": "r", "policyArn": "arn:aws:iam::aws:policy/AWSIoTFullAccess"}),
         ("iam-no-wildcard-actions",), "'iot:*'"),
    Case("iot", "AdministratorAccess through a role's managedPolicyArns", "resource",
         ("aws:iam/role:Role", {"managedPolicyArns": ["arn:aws:iam::aws:policy/AdministratorAccess"]}),
         ("iam-no-full-admin",), "attached AWS managed policy AdministratorAccess"),
    Case("iot", "managed policy the pack does not know", "resource",
         ("aws:iam/rolePolicyAttachment:RolePolicyAttachment", {"role": "r", "policyArn": "arn:aws:iam::aws:policy/NotYetPublished"}),
         ("iam-no-admin-managed-policies",), "does not know"),
    # The offline runner: what it cannot know never passes a mandatory guardrail.
    Case("offline-unknowns", "queue policy from another stack", "program", program_stack_reference_policy,
         (SQS_PUBLIC,), "not judged offline"),
]

SECURE: list[Case] = [
    Case("conditions", "SourceIp of two /24 office ranges", "resource",
         queue_policy(public(IpAddress={"aws:SourceIp": ["203.0.113.0/24", "198.51.100.0/24"]})), (SQS_PUBLIC,)),
    Case("conditions", "SourceIp of private ranges only (admits no one from the internet)", "resource",
         queue_policy(public(IpAddress={"aws:SourceIp": "10.0.0.0/8"})), (SQS_PUBLIC,)),
    Case("conditions", "one VPC endpoint", "resource",
         queue_policy(public(StringEquals={"aws:SourceVpce": "vpce-0a1b2c3d4e5f60718"})), (SQS_PUBLIC,)),
    Case("conditions", "one role, any session (userid)", "resource",
         key_policy({"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
                     "Condition": {"StringLike": {"aws:userid": "AROAEXAMPLEROLEID12345:*"}}}), ("kms-no-wildcard-principal",)),
    Case("conditions", "log delivery pinned to our account and log group", "resource",
         ("aws:cloudwatch/logResourcePolicy:LogResourcePolicy", {"policyName": "p", "policyDocument": doc(
             {"Effect": "Allow", "Principal": {"Service": "delivery.logs.amazonaws.com"}, "Action": "logs:PutLogEvents",
              "Resource": f"arn:aws:logs:{REGION}:{HOME}:log-group:x:*",
              "Condition": {"StringEquals": {"aws:SourceAccount": HOME},
                            "ArnLike": {"aws:SourceArn": f"arn:aws:logs:{REGION}:{HOME}:*"}}})}),
         ("logs-resource-policy-scoped",)),
    Case("conditions", "Cognito trust: one pool, authenticated only", "resource",
         cognito_trust({"StringEquals": {"cognito-identity.amazonaws.com:aud": POOL},
                        "ForAnyValue:StringLike": {"cognito-identity.amazonaws.com:amr": "authenticated"}}),
         ("iam-trust-policy-scoped",)),
    Case("conditions", "open Allow closed by a Deny outside the organisation", "resource",
         queue_policy(public(), {"Effect": "Deny", "Principal": "*", "Action": "sqs:*", "Resource": QUEUE_ARN,
                                 "Condition": {"StringNotEquals": {"aws:PrincipalOrgID": ORG}}}), (SQS_PUBLIC,)),
    Case("conditions", "trust of one named role by ARN condition", "resource",
         ("aws:iam/role:Role", {"assumeRolePolicy": doc({"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": "*"},
                                                          "Condition": {"ArnEquals": {"aws:PrincipalArn": f"arn:aws:iam::{HOME}:role/deploy"}}})}),
         ("iam-trust-policy-scoped",)),
    Case("conditions", "bucket-scoped S3 source ARN with source account", "resource",
         ("aws:sns/topicPolicy:TopicPolicy", {"arn": TOPIC_ARN, "policy": doc(
             {"Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "sns:Publish", "Resource": TOPIC_ARN,
              "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:s3:::acme-uploads"},
                            "StringEquals": {"aws:SourceAccount": HOME}}})}),
         ("sns-no-public-policy",)),
    Case("home-account", "the documented remedy: allowedAccountIds as the provider sends it (JSON text)", "resource",
         key_policy({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{HOME}:root"}, "Action": "kms:*", "Resource": "*"}),
         ("kms-no-wildcard-principal",)),
    Case("home-account", "allowedAccountIds as a list", "stack",
         [key_policy({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{HOME}:root"}, "Action": "kms:*", "Resource": "*"})],
         ("aws-home-account-declared",), provider={"allowedAccountIds": [HOME]}),
    Case("home-account", "two home accounts", "resource",
         queue_policy({"Effect": "Allow", "Principal": {"AWS": FOREIGN}, "Action": "sqs:SendMessage", "Resource": QUEUE_ARN}),
         (SQS_PUBLIC,), provider={"allowedAccountIds": json.dumps([HOME, FOREIGN])}),
    Case("lambda-permissions", "principal * pinned by our topic's ARN", "resource",
         permission(principal="*", sourceArn=TOPIC_ARN), ("lambda-permission-scoped",)),
    Case("lambda-permissions", "S3 bucket with our account", "resource",
         permission(principal="s3.amazonaws.com", sourceArn="arn:aws:s3:::acme-uploads", sourceAccount=HOME),
         ("lambda-permission-scoped",)),
    Case("lambda-permissions", "organisation-wide", "resource",
         permission(principal="*", principalOrgId=ORG), ("lambda-permission-scoped",)),
    Case("lambda-permissions", "our own role", "resource",
         permission(principal=f"arn:aws:iam::{HOME}:role/caller"), ("lambda-permission-scoped",)),
    Case("tls-denials", "bucket and objects in two statements", "stack",
         bucket_with(tls_deny(Action="s3:*", Resource="arn:aws:s3:::b"),
                     tls_deny(Action="s3:*", Resource="arn:aws:s3:::b/*", Principal={"AWS": "*"})), ("s3-ssl-only",)),
    Case("tls-denials", "everything, everywhere", "stack", queue_with(tls_deny(Action="*", Resource="*")), ("sqs-ssl-only",)),
    Case("tls-denials", "BoolIfExists and SNS:* spelled in capitals", "stack",
         topic_with(tls_deny(Action="SNS:*", Resource=TOPIC_ARN, Condition={"BoolIfExists": {"aws:SecureTransport": "false"}})),
         ("sns-ssl-only",)),
    Case("tls-denials", "bucket wildcard covering bucket and objects", "stack",
         bucket_with(tls_deny(Action="s3:*", Resource="arn:aws:s3:::b*")), ("s3-ssl-only",)),
    Case("secrets", "KMS key id under KMS_KEY", "resource", env(KMS_KEY=KMS_ID), ("lambda-no-secrets-in-env",)),
    Case("secrets", "key UUID under SIGNING_KEY_ID", "resource", env(SIGNING_KEY_ID="1234abcd-12ab-34cd-56ef-1234567890ab"),
         ("lambda-no-secrets-in-env",)),
    Case("secrets", "PEM public key under JWT_PUBLIC_KEY", "resource",
         env(JWT_PUBLIC_KEY="-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE3l7r5X9mQ2pZk8yW1tHcB4vN0aLs\n"
                            "-----END PUBLIC KEY-----"), ("lambda-no-secrets-in-env",)),
    Case("secrets", "TOKEN_AUDIENCE", "resource", env(TOKEN_AUDIENCE="iot-installer-api"), ("lambda-no-secrets-in-env",)),
    Case("secrets", "secret ARN under a password name", "resource",
         env(DB_PASSWORD=f"arn:aws:secretsmanager:{REGION}:{HOME}:secret:db-AbCdEf"), ("lambda-no-secrets-in-env",)),
    Case("secrets", "cache URL without credentials", "resource", env(CACHE_URL="rediss://cache.internal:6379/0"),
         ("lambda-no-secrets-in-env",)),
    Case("secrets", "SecureString parameter", "resource",
         ("aws:ssm/parameter:Parameter", {"name": "/app/db/password", "type": "SecureString", "value": "hunter2-prod",
                                          "keyId": KMS_ID}), ("no-secrets-in-configuration",)),
    Case("secrets", "String parameter with an endpoint", "resource",
         ("aws:ssm/parameter:Parameter", {"name": "/app/api/endpoint", "type": "String", "value": "https://api.example.com"}),
         ("no-secrets-in-configuration",)),
    Case("secrets", "state machine reading a password path at run time", "resource",
         ("aws:sfn/stateMachine:StateMachine", {"definition": json.dumps({"StartAt": "A", "States": {"A": {
             "Type": "Pass", "End": True, "Parameters": {"password.$": "$.secret", "tokenTtl": 300,
                                                         "AuthorizationType": "AWS_IAM"}}}})}),
         ("no-secrets-in-configuration",)),
    Case("secrets", "connection header marked secret", "resource",
         ("aws:cloudwatch/eventConnection:EventConnection", {"authorizationType": "API_KEY", "authParameters": {
             "invocationHttpParameters": {"headerParameters": [{"key": "x-api-key", "value": "A1b2C3d4E5f6G7h8J9k0",
                                                                "isValueSecret": True}]}}}),
         ("no-secrets-in-configuration",)),
    Case("unseen-resources", "Device Defender security profile through aws-native (allow-listed)", "resource",
         ("aws-native:iot:SecurityProfile", {"securityProfileName": "fleet"}), ("unjudged-resource-types-allow-listed",)),
    Case("unseen-resources", "Device Defender dimension through Cloud Control (allow-listed)", "resource",
         ("aws:cloudcontrol/resource:Resource", {"typeName": "AWS::IoT::Dimension", "desiredState": "{}"}),
         ("unjudged-resource-types-allow-listed",)),
    Case("unseen-resources", "CloudFormation stack of allow-listed types only", "resource",
         ("aws:cloudformation/stack:Stack", {"name": "s", "templateBody": json.dumps(
             {"Resources": {"Audit": {"Type": "AWS::IoT::ScheduledAudit", "Properties": {}}}})}),
         ("unjudged-resource-types-allow-listed",)),
    Case("unseen-resources", "OpenAPI body with a Cognito authorizer and a validator", "stack",
         [("aws:apigateway/restApi:RestApi", {"id": "api9", "body": openapi([{"pool": []}])})],
         ("apigateway-method-authorization", "apigateway-request-validation")),
    Case("unseen-resources", "HTTP API route with a JWT authorizer", "resource",
         ("aws:apigatewayv2/api:Api", {"protocolType": "HTTP", "name": "installer"}), ("apigatewayv2-route-authorization",)),
    Case("unseen-resources", "event bus permission to the organisation", "resource",
         ("aws:cloudwatch/eventPermission:EventPermission", {"principal": "*", "statementId": "org", "condition": {
             "key": "aws:PrincipalOrgID", "type": "StringEquals", "value": ORG}}), ("events-permission-not-public",)),
    Case("unseen-resources", "KMS grant to our own role", "resource",
         ("aws:kms/grant:Grant", {"keyId": KMS_ID, "granteePrincipal": f"arn:aws:iam::{HOME}:role/x", "operations": ["Decrypt"]}),
         ("kms-grant-home-account",)),
    Case("unseen-resources", "pipe within our account", "resource",
         ("aws:pipes/pipe:Pipe", {"source": f"arn:aws:dynamodb:{REGION}:{HOME}:table/t/stream/x",
                                  "target": f"arn:aws:states:{REGION}:{HOME}:stateMachine:m",
                                  "roleArn": f"arn:aws:iam::{HOME}:role/pipe"}), ("data-delivered-home",)),
    Case("unseen-resources", "one certificate per thing", "stack",
         [("aws:iot/thingPrincipalAttachment:ThingPrincipalAttachment", {"principal": "arn:cert/1", "thing": "boiler-1"}),
          ("aws:iot/thingPrincipalAttachment:ThingPrincipalAttachment", {"principal": "arn:cert/2", "thing": "boiler-2"})],
         ("iot-certificate-one-thing",)),
    Case("guards", "validated, throttled, rate-limited open route", "stack", rest_api(),
         ("apigateway-method-authorization", "apigateway-request-validation", "apigateway-throttling")),
    Case("guards", "usage plan throttling an API whose every route requires a key", "stack",
         rest_api(throttle=False, usage_plan=True, api_key_required=True), ("apigateway-throttling",)),
    Case("guards", "rate rule that challenges", "stack",
         rest_api(acl_rules=({**RATE_BLOCK, "action": {"challenge": {}}},)), ("apigateway-method-authorization",)),
    Case("guards", "default-block web ACL with allow rules", "resource",
         acl({**MANAGED, "overrideAction": {"count": {}}}, default="block"), ("wafv2-web-acl-has-rules",)),
    Case("guards", "ruleJson with a blocking rate rule", "resource",
         ("aws:wafv2/webAcl:WebAcl", {"defaultAction": {"allow": {}}, "ruleJson": json.dumps([
             {"Name": "r", "Priority": 0, "Action": {"Block": {}}, "Statement": {"RateBasedStatement": {"Limit": 100}}}])}),
         ("wafv2-web-acl-has-rules",)),
    Case("iot", "AWS's documented Connect on * with IsAttached", "resource",
         ("aws:iot/policy:Policy", {"name": "device", "policy": doc(
             {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*", "Condition": ATTACHED},
             allow(["iot:Publish", "iot:Receive"], f"{IOT}:topic/dt/{THING}/*"))}),
         ("iot-connect-bound-to-thing", "iot-policy-no-wildcard-resource", "iot-policy-device-isolation")),
    Case("iot", "wide Subscribe, Receive only on the device's own topics", "resource",
         iot_policy(allow("iot:Subscribe", f"{IOT}:topicfilter/dt/+/#")), ("iot-policy-device-isolation",)),
    Case("iot", "template policy built with Fn::Join, no broader than the device policy", "stack",
         template({"Fn::Join": ["", ['{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Publish",',
                                     '"Resource":"arn:aws:iot:', {"Ref": "AWS::Region"}, f':{HOME}:topic/dt/{THING}/x"', "}]}"]]}),
         ("iot-provisioning-template-policy-scoped",)),
    Case("iot", "credential provider on one role alias", "resource",
         iot_policy(allow("iot:AssumeRoleWithCertificate", f"{IOT}:rolealias/device-uploads")),
         ("iot-policy-no-wildcard-resource", "iot-policy-no-wildcard-action", "iot-policy-device-isolation")),
    Case("iot", "Basic Ingest into one rule under the device's own name", "resource",
         iot_policy(allow("iot:Publish", f"{IOT}:topic/$aws/rules/telemetry/{THING}")),
         ("iot-policy-no-wildcard-resource", "iot-policy-device-isolation")),
    Case("iot", "AWS managed policy without wildcards", "resource",
         ("aws:iam/rolePolicyAttachment:RolePolicyAttachment", {
             "role": "r", "policyArn": "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess"}),
         ("iam-no-wildcard-actions", "iam-no-admin-managed-policies", "iam-no-full-admin")),
    Case("offline-unknowns", "KMS alias target computed like other outputs", "program", program_alias_target,
         ("sqs-cmk-encryption", "kms-no-wildcard-principal")),
]

CLASSES = tuple(dict.fromkeys(c.cls for c in EVASIONS))


# --- judging a case ---------------------------------------------------------------------------

def messages(case: Case) -> dict[str, list[str]]:
    """guardrail -> messages it reported on the case (only the case's guardrails)."""
    from .support import fired, provider, stack_violations

    prov = provider(**case.provider)
    if case.kind == "resource":
        type_, props = case.spec
        found = fired(type_, props, config=case.config, prov=prov)
        return {g: found.get(g, []) for g in case.guardrails}
    if case.kind == "stack":
        return {g: [m for m, _ in stack_violations(g, case.spec, config=case.config.get(g), prov=prov)]
                for g in case.guardrails}
    from tools.harness import evaluate
    from tools.policy_check import run_policies

    graph = evaluate(case.spec, config={"aws:allowedAccountIds": [HOME]}, unknown_uncomputed=True)
    report = run_policies(graph, stack_config={"aws:allowedAccountIds": [HOME], "aws:region": REGION})
    return {g: [v.message for v in report.mandatory if v.policy == g] for g in case.guardrails}


def caught(case: Case) -> bool:
    found = messages(case)[case.guardrails[0]]
    return any(case.fragment in m for m in found)


def false_positive(case: Case) -> list[str]:
    return [f"{g}: {m}" for g, ms in messages(case).items() for m in ms]


def figures(run: Callable[[Case], Any] = caught) -> str:
    lines = [f"{'class':20} {'caught':>8} {'secure':>8} {'false positives':>16}"]
    total_caught = total_fp = 0
    for cls in CLASSES:
        evasions = [c for c in EVASIONS if c.cls == cls]
        secure = [c for c in SECURE if c.cls == cls]
        got = sum(1 for c in evasions if caught(c))
        fps = sum(1 for c in secure if false_positive(c))
        total_caught += got
        total_fp += fps
        lines.append(f"{cls:20} {got:>4}/{len(evasions):<3} {len(secure):>8} {fps:>16}")
    lines.append(f"{'total':20} {total_caught:>4}/{len(EVASIONS):<3} {len(SECURE):>8} {total_fp:>16}")
    return "\n".join(lines)


if __name__ == "__main__":
    from policy.pack import ALL_POLICIES

    print(figures())
    print(f"guardrails: {len(ALL_POLICIES)}")
