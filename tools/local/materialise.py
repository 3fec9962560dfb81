"""Declared resource graph -> objects in moto, by type, driven by the API's own input shape.

A row names the API call that creates a type; the call's arguments are the declared inputs
whose names match the call's members (case-insensitively, recursively: tags, lists and maps
converted as the shape wants), plus the row's renames. `learn` teaches the resolver the
runtime identifiers moto assigns (declared attribute -> path in the answer). Types with
nothing to run locally, or run by an emulation, are listed in NOT_MATERIALISED; the report
names any declared type with neither.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.model import ListShape, MapShape, Shape, StructureShape

from tools.harness import GLOBAL, RecordedResource
from tools.local.world import Materialised, World

GLOBAL_SERVICE_REGION = "us-east-1"  # IAM is global: any region's client will do
After = Callable[[World, RecordedResource, dict[str, Any], dict[str, Any]], None]


def api_value(shape: Shape | None, value: Any) -> Any:
    """A declared value as the API member `shape` takes it."""
    if value is None:
        return None
    if isinstance(shape, StructureShape) and isinstance(value, list):  # Pulumi's nested blocks
        value = value[0] if value else None
    if isinstance(shape, StructureShape) and isinstance(value, Mapping):
        members = {n.lower(): n for n in shape.members}
        out = {members[k.lower()]: api_value(shape.members[members[k.lower()]], v)
               for k, v in value.items() if k.lower() in members}
        return {k: v for k, v in out.items() if v is not None}
    if isinstance(shape, ListShape):
        member = shape.member
        if isinstance(value, Mapping) and isinstance(member, StructureShape) and len(member.members) == 2:
            key, val = list(member.members)  # tags: {k: v} -> [{Key: k, Value: v}]
            return [{key: str(k), val: str(v)} for k, v in sorted(value.items())]
        return [api_value(member, v) for v in (value if isinstance(value, list) else [value])]
    if isinstance(shape, MapShape) and isinstance(value, Mapping):
        return {str(k): api_value(shape.value, v) for k, v in value.items()}
    kind = shape.type_name if shape is not None else ""
    if kind in ("integer", "long"):
        return int(float(value)) if value != "" else None
    if kind == "boolean":
        return value if isinstance(value, bool) else str(value).lower() == "true"
    if kind == "string":
        if isinstance(value, (dict, list)):
            return json.dumps(value)
        if isinstance(value, bool):
            return str(value).lower()
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    return value


def _path(answer: Any, path: str) -> Any:
    for part in path.split("."):
        answer = answer[part]
    return answer


@dataclass(frozen=True)
class Row:
    service: str
    operation: str  # boto3 method
    rename: Mapping[str, str] = field(default_factory=dict)  # API member -> declared input
    learn: Mapping[str, str] = field(default_factory=dict)  # "id" or output key -> answer path
    skip: tuple[str, ...] = ()  # declared inputs the API would misread
    after: After | None = None  # follow-up calls (rotation, retention, MFA...)
    extra: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # arguments built from the state
    where: str = ""  # GLOBAL for global services
    prepare: Callable[[World, dict[str, Any]], None] | None = None  # what AWS has before the call


def create(world: World, resource: RecordedResource, row: Row, **fixed: Any) -> dict[str, Any]:
    """The row's call with the declared inputs; learns the runtime ids; returns the answer."""
    region = GLOBAL_SERVICE_REGION if row.where == GLOBAL else str(resource.region)
    client = world.client(row.service, region)
    state = {k: v for k, v in world.state(resource).items() if k not in row.skip}
    model = client.meta.service_model.operation_model(
        next(o for o in client.meta.service_model.operation_names
             if o.lower() == row.operation.replace("_", "")))
    if row.prepare is not None:
        row.prepare(world, state)
    for member, key in row.rename.items():
        state[member] = state.get(key) if key in state else None
    arguments = api_value(model.input_shape, {**state, **(row.extra(state) if row.extra else {}),
                                              **fixed}) or {}
    answer = dict(getattr(client, row.operation)(**arguments))
    for declared, path in row.learn.items():
        world.resolver.learn(resource.id if declared == "id" else resource.outputs.get(declared),
                             _path(answer, path))
    if row.after is not None:
        row.after(world, resource, state, answer)
    return answer


def _then(call: Callable[[World, RecordedResource, dict[str, Any], dict[str, Any]], Any]) -> After:
    return lambda world, resource, state, answer: None if call(world, resource, state, answer) else None


def _apigw(world: World, resource: RecordedResource) -> Any:
    return world.client("apigateway", str(resource.region))


@functools.lru_cache(maxsize=1)
def _aws_managed_policies(text: str) -> dict[str, Any]:
    """moto's copy of every AWS managed policy (about 5 MB of JSON: 0.2 s per parse)."""
    return dict(json.loads(text))


def aws_managed_policy(world: World, state: dict[str, Any]) -> None:
    """AWS's managed policy the attachment names exists in moto, as in every AWS account.

    moto knows AWS's managed policies only when told to load all of them (about a thousand,
    slow); the stack attaches one (API Gateway's CloudWatch role). Load just that one, from
    moto's own copy of AWS's documents. A name moto does not know stays unknown, and the
    attach then fails as it would in AWS."""
    from moto.iam.aws_managed_policies import aws_managed_policies_data
    from moto.iam.models import AWSManagedPolicy, iam_backends

    arn = str(state.get("policyArn") or "")
    if ":iam::aws:policy/" not in arn:
        return
    account_id = world.account
    data = _aws_managed_policies(aws_managed_policies_data).get(arn.rsplit("/", 1)[1])
    backend = iam_backends[account_id]["global"]
    if data is not None and arn not in backend.managed_policies:
        policy = AWSManagedPolicy.from_data(arn.rsplit("/", 1)[1], account_id, GLOBAL_SERVICE_REGION, data)
        backend.managed_policies[policy.arn] = policy


REST = {"restApiId": "restApi"}
ROWS: dict[str, Row] = {
    "aws:iam/role:Role": Row("iam", "create_role", {"RoleName": "name", "AssumeRolePolicyDocument":
                             "assumeRolePolicy"}, {"id": "Role.RoleName", "arn": "Role.Arn"}, where=GLOBAL),
    "aws:iam/rolePolicy:RolePolicy": Row("iam", "put_role_policy", {"RoleName": "role", "PolicyName": "name",
                                         "PolicyDocument": "policy"}, where=GLOBAL),
    "aws:iam/policy:Policy": Row("iam", "create_policy", {"PolicyName": "name", "PolicyDocument": "policy"},
                                 {"id": "Policy.Arn", "arn": "Policy.Arn"}, where=GLOBAL),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": Row("iam", "attach_role_policy", {"RoleName": "role"},
                                                             where=GLOBAL, prepare=aws_managed_policy),
    "aws:kms/key:Key": Row("kms", "create_key", learn={"id": "KeyMetadata.KeyId", "keyId": "KeyMetadata.KeyId",
                                                       "arn": "KeyMetadata.Arn"},
                           after=_then(lambda w, r, s, a: s.get("enableKeyRotation") and w.client(
                               "kms", str(r.region)).enable_key_rotation(KeyId=a["KeyMetadata"]["KeyId"]))),
    "aws:cloudwatch/logGroup:LogGroup": Row("logs", "create_log_group", {"logGroupName": "name"},
                                            after=_then(lambda w, r, s, a: s.get("retentionInDays") and w.client(
                                                "logs", str(r.region)).put_retention_policy(
                                                logGroupName=s["name"], retentionInDays=int(s["retentionInDays"])))),
    "aws:secretsmanager/secret:Secret": Row("secretsmanager", "create_secret", learn={"id": "ARN", "arn": "ARN"}),
    "aws:sqs/queuePolicy:QueuePolicy": Row("sqs", "set_queue_attributes",
                                           extra=lambda s: {"Attributes": {"Policy": s["policy"]}}),
    "aws:iot/policy:Policy": Row("iot", "create_policy", {"policyName": "name", "policyDocument": "policy"}),
    "aws:iot/thingType:ThingType": Row(
        "iot", "create_thing_type", {"thingTypeName": "name"}, {"arn": "thingTypeArn"},
        skip=("properties",), extra=lambda s: {"thingTypeProperties": {
            k: v for k, v in (("thingTypeDescription", (s.get("properties") or {}).get("description")),
                              ("searchableAttributes", (s.get("properties") or {}).get("searchableAttributes")))
            if v}}),
    "aws:iot/thingGroup:ThingGroup": Row(
        "iot", "create_thing_group", {"thingGroupName": "name", "parentGroupName": "parentGroupName"},
        {"arn": "thingGroupArn"}, skip=("properties",)),
    "aws:iot/policyAttachment:PolicyAttachment": Row("iot", "attach_policy", {"policyName": "policy"}),
    "aws:iot/caCertificate:CaCertificate": Row("iot", "register_ca_certificate", {
        "caCertificate": "caCertificatePem", "setAsActive": "active"},
        {"id": "certificateId", "arn": "certificateArn"}),
    "aws:sfn/stateMachine:StateMachine": Row("stepfunctions", "create_state_machine",
                                             learn={"id": "stateMachineArn", "arn": "stateMachineArn"}),
    "aws:pipes/pipe:Pipe": Row("pipes", "create_pipe", learn={"arn": "Arn"}),
    "aws:cognito/userPool:UserPool": Row(
        "cognito-idp", "create_user_pool", {"PoolName": "name", "UserPoolTags": "tags"},
        {"id": "UserPool.Id", "arn": "UserPool.Arn"}, skip=("schemas",),
        extra=lambda s: {"Policies": {"PasswordPolicy": s.get("passwordPolicy")}},
        after=_then(lambda w, r, s, a: (s.get("softwareTokenMfaConfiguration") or {}).get("enabled") and w.client(
            "cognito-idp", str(r.region)).set_user_pool_mfa_config(
            UserPoolId=a["UserPool"]["Id"], MfaConfiguration=s.get("mfaConfiguration") or "OFF",
            SoftwareTokenMfaConfiguration={"Enabled": True}))),
    "aws:cognito/userPoolClient:UserPoolClient": Row("cognito-idp", "create_user_pool_client",
                                                     {"ClientName": "name"}, {"id": "UserPoolClient.ClientId"}),
    "aws:cognito/userGroup:UserGroup": Row("cognito-idp", "create_group", {"GroupName": "name"}),
    "aws:cognito/identityPool:IdentityPool": Row("cognito-identity", "create_identity_pool",
                                                 {"IdentityPoolTags": "tags"}, {"id": "IdentityPoolId"}),
    "aws:apigateway/restApi:RestApi": Row(
        "apigateway", "create_rest_api", learn={"id": "id"}, skip=("body", "policy"),
        after=_then(lambda w, r, s, a: w.resolver.learn(r.outputs.get("rootResourceId"), next(
            x["id"] for x in _apigw(w, r).get_resources(restApiId=a["id"])["items"] if x["path"] == "/")))),
    "aws:apigateway/resource:Resource": Row("apigateway", "create_resource", REST, {"id": "id"}),
    "aws:apigateway/model:Model": Row("apigateway", "create_model", REST, {"id": "id"}),
    "aws:apigateway/requestValidator:RequestValidator": Row("apigateway", "create_request_validator", REST,
                                                            {"id": "id"}),
    "aws:apigateway/method:Method": Row("apigateway", "put_method", {**REST, "authorizationType": "authorization"}),
    "aws:apigateway/integration:Integration": Row("apigateway", "put_integration", REST),
    "aws:apigateway/deployment:Deployment": Row("apigateway", "create_deployment", REST, {"id": "id"},
                                                skip=("stageName", "variables")),
    "aws:apigateway/stage:Stage": Row("apigateway", "create_stage", {
        **REST, "deploymentId": "deployment", "tracingEnabled": "xrayTracingEnabled"}),
    "aws:apigateway/domainName:DomainName": Row("apigateway", "create_domain_name"),
    "aws:apigateway/basePathMapping:BasePathMapping": Row("apigateway", "create_base_path_mapping",
                                                          {**REST, "stage": "stageName"}),
}


def _gateway_response(world: World, resource: RecordedResource) -> dict[str, Any]:
    from tools.local.emulation.api_gateway import template_problems

    state = world.state(resource)
    problems = [p for t in (state.get("responseTemplates") or {}).values() for p in template_problems(t)]
    if problems:  # AWS would send the VTL as text: refuse it here, loudly
        raise ValueError(f"gateway response {state['responseType']}: {'; '.join(problems)}")
    return create(world, resource, Row("apigateway", "put_gateway_response"))


# Pulumi's MethodSettings field -> the stage patch path's leaf (`/<resource>/<method>/<leaf>`).
_METHOD_SETTINGS = {"throttlingRateLimit": "throttling/rateLimit", "throttlingBurstLimit":
                    "throttling/burstLimit", "metricsEnabled": "metrics/enabled",
                    "loggingLevel": "logging/loglevel", "dataTraceEnabled": "logging/dataTrace"}


def _method_settings(world: World, resource: RecordedResource) -> dict[str, Any]:
    state, prefix = world.state(resource), "/" + str(world.state(resource)["methodPath"]).strip("/")
    operations = [{"op": "replace", "path": f"{prefix}/{leaf}", "value": api_value(Shape("s", {"type": "string"}), value)}
                  for key, leaf in _METHOD_SETTINGS.items()
                  if (value := (state.get("settings") or {}).get(key)) is not None]
    return dict(_apigw(world, resource).update_stage(restApiId=state["restApi"], stageName=state["stageName"],
                                                      patchOperations=operations))


def _queue(world: World, resource: RecordedResource) -> dict[str, Any]:
    state = world.state(resource)
    shape = world.client("sqs", str(resource.region)).meta.service_model.shape_for("QueueAttributeName")
    attributes = {name: api_value(Shape("s", {"type": "string"}), state[name[:1].lower() + name[1:]])
                  for name in shape.enum if state.get(name[:1].lower() + name[1:]) not in (None, "")}
    for declared, name in (("messageRetentionSeconds", "MessageRetentionPeriod"),
                           ("visibilityTimeoutSeconds", "VisibilityTimeout"),
                           ("maxMessageSize", "MaximumMessageSize"),
                           ("receiveWaitTimeSeconds", "ReceiveMessageWaitTimeSeconds")):
        if state.get(declared) is not None:
            attributes[name] = api_value(Shape("s", {"type": "string"}), state[declared])
    return create(world, resource, Row("sqs", "create_queue", {"QueueName": "name"}, {
        "id": "QueueUrl", "url": "QueueUrl"}), Attributes=attributes)


def _topic_rule(world: World, resource: RecordedResource) -> dict[str, Any]:
    state, names = world.state(resource), {"lambdas": "lambda", "dynamodbv2s": "dynamoDBv2",
                                           "kineses": "kinesis", "firehoses": "firehose",
                                           "republishes": "republish"}
    actions = [{names.get(key, key): action} for key in ("stepFunctions", "sqs", "lambdas", "dynamodbv2s",
                                                         "sns", "kineses", "firehoses", "republishes",
                                                         "s3", "cloudwatchLogs", "https")
               for action in state.get(key) or []]
    payload = {"sql": state["sql"], "awsIotSqlVersion": state.get("sqlVersion") or "2016-03-23",
               "ruleDisabled": not state.get("enabled", True), "actions": actions,
               "description": state.get("description") or "",
               **{"errorAction": {names.get(k, k): v} for k, v in (state.get("errorAction") or {}).items()}}
    world.client("iot", str(resource.region)).create_topic_rule(ruleName=state["name"],
                                                                topicRulePayload=payload)
    return {}


def _replica_key(world: World, resource: RecordedResource) -> dict[str, Any]:
    state, region = world.state(resource), str(resource.region)
    primary = str(state.get("primaryKeyArn", ""))
    if primary != resource.outputs.get("primaryKeyArn"):  # the primary is in this world
        metadata = world.client("kms", primary.split(":")[3]).replicate_key(
            KeyId=primary.rsplit("/", 1)[-1], ReplicaRegion=region)["ReplicaKeyMetadata"]
    else:  # the world left the primary's region out: a multi-region key of its own
        metadata = world.client("kms", region).create_key(MultiRegion=True)["KeyMetadata"]
    for declared in (resource.id, resource.outputs.get("keyId")):
        world.resolver.learn(declared, metadata["KeyId"])
    world.resolver.learn(resource.outputs.get("arn"), metadata["Arn"])
    return dict(metadata)


def _alias(world: World, resource: RecordedResource) -> dict[str, Any]:
    state, kms = world.state(resource), world.client("kms", str(resource.region))
    try:
        kms.create_alias(AliasName=state["name"], TargetKeyId=state["targetKeyId"])
    except kms.exceptions.AlreadyExistsException:  # moto copies a key's aliases into its replica's region
        kms.update_alias(AliasName=state["name"], TargetKeyId=state["targetKeyId"])
    return {}


def table_regions(state: Mapping[str, Any], declared_region: str) -> dict[str, Mapping[str, Any]]:
    """region -> its replica settings ({} for the table's own region)."""
    return {declared_region: {}, **{str(r["regionName"]): r for r in state.get("replicas") or []}}


def _table(world: World, resource: RecordedResource) -> list[str]:
    """One regional table per replica region of the world (same name, streams as declared)."""
    state = world.state(resource)
    declared_replicas = {r.get("regionName"): r for r in resource.outputs.get("replicas") or []}
    def keys(spec: Mapping[str, Any]) -> list[dict[str, str]]:  # pulumi-aws v7 indexes: keySchemas
        return [{"AttributeName": k["attributeName"], "KeyType": k["keyType"]} for k in spec.get("keySchemas") or [
            {"attributeName": spec["hashKey"], "keyType": "HASH"},
            *([{"attributeName": spec["rangeKey"], "keyType": "RANGE"}] if spec.get("rangeKey") else [])]]
    provisioned = (state.get("billingMode") or "PROVISIONED") == "PROVISIONED"
    throughput = {"ProvisionedThroughput": {"ReadCapacityUnits": int(state.get("readCapacity") or 1),
                                            "WriteCapacityUnits": int(state.get("writeCapacity") or 1)}}
    indexes = [{"IndexName": i["name"], "KeySchema": keys(i), **(throughput if provisioned else {}), "Projection": {
        "ProjectionType": i.get("projectionType") or "ALL",
        **({"NonKeyAttributes": list(i["nonKeyAttributes"])} if i.get("nonKeyAttributes") else {})}}
        for i in state.get("globalSecondaryIndexes") or []]
    made = []
    for region, replica in table_regions(state, str(resource.region)).items():
        if region not in world.regions:
            continue
        sse = state.get("serverSideEncryption") or {}
        key = replica.get("kmsKeyArn") if replica else sse.get("kmsKeyArn")
        dynamodb = world.client("dynamodb", region)
        description = dynamodb.create_table(
            TableName=state["name"], KeySchema=keys(state), BillingMode=state.get("billingMode") or "PROVISIONED",
            AttributeDefinitions=[{"AttributeName": a["name"], "AttributeType": a["type"]}
                                  for a in state.get("attributes") or []],
            **(throughput if provisioned else {}), **({"GlobalSecondaryIndexes": indexes} if indexes else {}),
            **({"StreamSpecification": {"StreamEnabled": True, "StreamViewType": state.get("streamViewType")}}
               if state.get("streamEnabled") else {}),
            **({"SSESpecification": {"Enabled": True, "SSEType": "KMS", **({"KMSMasterKeyId": key} if key else {})}}
               if sse.get("enabled") else {}),
            DeletionProtectionEnabled=bool(replica.get("deletionProtectionEnabled", state.get(
                "deletionProtectionEnabled")) if replica else state.get("deletionProtectionEnabled")),
        )["TableDescription"]
        if replica.get("pointInTimeRecovery") if replica else (state.get("pointInTimeRecovery") or {}).get("enabled"):
            dynamodb.update_continuous_backups(TableName=state["name"], PointInTimeRecoverySpecification={
                "PointInTimeRecoveryEnabled": True})
        if (state.get("ttl") or {}).get("enabled"):
            dynamodb.update_time_to_live(TableName=state["name"], TimeToLiveSpecification={
                "Enabled": True, "AttributeName": state["ttl"]["attributeName"]})
        declared = declared_replicas.get(region) or resource.outputs
        world.resolver.learn(declared.get("streamArn"), description.get("LatestStreamArn"))
        made.append(region)
    return made


CUSTOM: dict[str, Callable[[World, RecordedResource], Any]] = {
    "aws:apigateway/response:Response": _gateway_response,
    "aws:apigateway/methodSettings:MethodSettings": _method_settings,
    "aws:sqs/queue:Queue": _queue, "aws:iot/topicRule:TopicRule": _topic_rule,
    "aws:kms/replicaKey:ReplicaKey": _replica_key, "aws:kms/alias:Alias": _alias,
}
NOT_MATERIALISED = {  # nothing to run locally, or run by an emulation from the declaration
    "aws:acm/certificate:Certificate": "no TLS endpoint locally",
    "aws:acm/certificateValidation:CertificateValidation": "no TLS endpoint locally",
    "aws:route53/record:Record": "latency records resolved by the DNS emulation (emulation/dns.py)",
    "aws:route53/healthCheck:HealthCheck": "created and evaluated by the DNS emulation (emulation/dns.py)",
    "aws:route53/zone:Zone": "no hosted zone locally: the DNS emulation resolves the declared records",
    "aws:cloudwatch/metricAlarm:MetricAlarm": "no metrics locally",
    "aws:cloudwatch/dashboard:Dashboard": "no metrics locally",
    "aws:lambda/function:Function": "run in-process by the Lambda emulation (moto needs Docker)",
    "aws:lambda/layerVersion:LayerVersion": "the in-process Lambda imports the project's own venv",
    "aws:lambda/permission:Permission": "checked by the Lambda emulation when a service invokes",
    "aws:lambda/eventSourceMapping:EventSourceMapping": "run by the streams emulation",
    "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig":
        "the rules engine's Lambda action records a failed invocation (no async retries locally)",
    "aws:iot/provisioningTemplate:ProvisioningTemplate": "applied by the fleet-provisioning emulation",
    "aws:cognito/identityPoolRoleAttachment:IdentityPoolRoleAttachment":
        "moto has no identity-pool roles: the fleet emulation reads the declared attachment",
    "aws:iot/domainConfiguration:DomainConfiguration": "no TLS endpoint locally",
    "aws:iot/loggingOptions:LoggingOptions": "no IoT logs locally",
    "aws:iot/eventConfigurations:EventConfigurations": "moto has no registry events",
    "aws:apigateway/account:Account": "no access logs locally",
    "aws:wafv2/webAcl:WebAcl": "no WAF locally: requests reach the API Gateway emulation directly",
    "aws:wafv2/webAclAssociation:WebAclAssociation": "no WAF locally",
    "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration": "no WAF locally",
    # Operations: alert topics, metric filters, Device Defender through the aws-native provider.
    "aws:cloudwatch/logMetricFilter:LogMetricFilter": "no metrics locally",
    "aws:sns/topic:Topic": "alarms and audit findings publish to it: no metrics or audits locally",
    "aws:sns/topicPolicy:TopicPolicy": "with its topic",
    "aws:sns/topicSubscription:TopicSubscription": "with its topic (no mail locally)",
    "aws-native:iot:AccountAuditConfiguration": "moto has no Device Defender",
    "aws-native:iot:ScheduledAudit": "moto has no Device Defender",
    "aws-native:iot:MitigationAction": "moto has no Device Defender",
    "pulumi:providers:aws-native": "a provider: its region is each aws-native resource's region",
}


@dataclass
class MaterialiseResult:
    created: list[Materialised] = field(default_factory=list)
    not_materialised: Counter[str] = field(default_factory=Counter)
    unhandled: Counter[str] = field(default_factory=Counter)  # no row: a gap to close
    errors: list[str] = field(default_factory=list)

    def by_region(self) -> dict[str, Counter[str]]:
        out: dict[str, Counter[str]] = {}
        for item in self.created:
            out.setdefault(item.region, Counter())[short_type(item.type)] += 1
        return out


class MaterialiseError(Exception):
    def __init__(self, result: MaterialiseResult) -> None:
        super().__init__("\n".join(result.errors))
        self.result = result


def short_type(type_token: str) -> str:
    """`aws:dynamodb/table:Table` -> `dynamodb table`."""
    package, _, rest = type_token.partition(":")
    module, _, kind = rest.partition(":")
    return f"{module.split('/')[0]} {kind[:1].lower() + kind[1:]}" if package == "aws" else type_token


def materialise(world: World) -> MaterialiseResult:
    """Every declared custom resource the world includes, in registration order (the
    program registers a resource only once its inputs resolved: dependencies first)."""
    result = MaterialiseResult()
    for resource in world.graph.custom_resources():
        table = resource.type == "aws:dynamodb/table:Table"
        if not world.includes(resource, any_region=table):
            continue
        row, custom = ROWS.get(resource.type), CUSTOM.get(resource.type)
        if row is None and custom is None and not table:
            counter = result.not_materialised if resource.type in NOT_MATERIALISED else result.unhandled
            counter[resource.type] += 1
            continue
        try:
            regions = _table(world, resource) if table else [
                GLOBAL if row is not None and row.where == GLOBAL else str(resource.region)]
            if not table:
                custom(world, resource) if custom is not None else create(world, resource, row)  # type: ignore[arg-type]
        except (ClientError, BotoCoreError, KeyError, ValueError, StopIteration) as error:
            result.errors.append(f"{resource.type} {resource.name}: {type(error).__name__}: {error}")
            continue
        made = [Materialised(resource.type, resource.name, region, resource.name) for region in regions]
        result.created += made
        world.materialised += made
    return result
