"""What the provider and AWS do with each resource type the program declares: which inputs
force a replacement, what makes a resource's physical identity unique, which resources are
account-wide singletons, and the name limits AWS sets. Read by the replacement-safety,
name-length and singleton tests (tests/test_replacement_safety.py, test_name_lengths.py,
test_singletons.py); a resource type the program starts to use without an entry here fails
all three until someone looks its facts up.

Sources. pulumi-aws 7.x wraps the Terraform AWS provider v6; an input forces a replacement
where the provider's schema marks it `ForceNew` (SDKv2) or `RequiresReplace` (framework), in
`internal/service/<service>/<file>.go` of hashicorp/terraform-provider-aws (`TF` below; the
commit is the version read for this table, `@path` where only the file was consulted). Every
regional resource also takes pulumi-aws v7's `region`, which replaces it (a new region is
always a new identity, so it never collides). Name limits: each service's API reference.

Inputs are the names the engine records (camelCase, `a.b` for nested ones).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

TF = "hashicorp/terraform-provider-aws internal/service/"


@dataclass(frozen=True)
class NameRule:
    """The input holding the physical name, and what AWS accepts for it."""

    input: str
    limit: int | None
    pattern: str | None
    source: str


@dataclass(frozen=True)
class Facts:
    source: str
    # Inputs whose change replaces the resource (the provider's ForceNew inputs).
    replace_on: tuple[str, ...] = ()
    # Inputs that make the physical resource unique in its scope (account + region, or the
    # account for global services); None: AWS generates the identity, so a replacement
    # never meets its predecessor. () : one per account and region (a singleton).
    identity: tuple[str, ...] | None = None
    singleton: str | None = None  # what account-wide setting it writes
    name: NameRule | None = None
    # When no name input is given, Pulumi names the resource `<logical name>-<7 hex>`.
    autonamed_limit: int | None = None
    # Replace-forcing inputs the program must keep at these values, with the reason (a change
    # needs a migration the provider cannot do in place, e.g. it would replace data).
    pins: Mapping[str, tuple[Any, str]] = field(default_factory=dict)


# A pin that holds whatever the value: the input follows another resource that is pinned.
ANY = object()


def _api(name: str) -> str:
    return f"{name} API reference"


IAM_NAME = r"[\w+=,.@-]+"
ROLE_NAME = NameRule("name", 64, IAM_NAME, _api("IAM CreateRole: RoleName"))

FACTS: Mapping[str, Facts] = {
    # --- ACM --------------------------------------------------------------------------------
    "aws:acm/certificate:Certificate": Facts(
        f"{TF}acm/certificate.go", ("domainName", "subjectAlternativeNames", "keyAlgorithm",
                                    "certificateAuthorityArn")),
    "aws:acm/certificateValidation:CertificateValidation": Facts(
        f"{TF}acm/certificate_validation.go (waits; no AWS resource of its own)",
        ("certificateArn", "validationRecordFqdns")),
    # --- API Gateway -------------------------------------------------------------------------
    "aws:apigateway/account:Account": Facts(
        f"{TF}apigateway/account.go; v6 upgrade guide: destroy resets the account settings",
        identity=(), singleton="API Gateway's CloudWatch Logs role, one per account and region"),
    "aws:apigateway/basePathMapping:BasePathMapping": Facts(
        f"{TF}apigateway/base_path_mapping.go", ("domainName", "domainNameId"),
        identity=("domainName", "basePath")),
    "aws:apigateway/deployment:Deployment": Facts(
        f"{TF}apigateway/deployment.go@00a35305dc1b", ("restApi", "triggers", "variables")),
    "aws:apigateway/domainName:DomainName": Facts(
        f"{TF}apigateway/domain_name.go", ("domainName",), identity=("domainName",)),
    "aws:apigateway/integration:Integration": Facts(
        f"{TF}apigateway/integration.go@0196297b77a4 (PutIntegration; DeleteIntegration removes "
        "the method's integration)",
        ("restApi", "resourceId", "httpMethod", "type", "credentials", "integrationHttpMethod",
         "passthroughBehavior"), identity=("restApi", "resourceId", "httpMethod")),
    "aws:apigateway/method:Method": Facts(
        f"{TF}apigateway/method.go", ("restApi", "resourceId", "httpMethod"),
        identity=("restApi", "resourceId", "httpMethod")),
    "aws:apigateway/methodSettings:MethodSettings": Facts(
        f"{TF}apigateway/method_settings.go", ("restApi", "stageName", "methodPath"),
        identity=("restApi", "stageName", "methodPath")),
    "aws:apigateway/model:Model": Facts(
        f"{TF}apigateway/model.go@0593466d96e3", ("restApi", "name", "contentType"),
        identity=("restApi", "name"),
        name=NameRule("name", None, r"[A-Za-z0-9]+", _api("API Gateway CreateModel: name")),
        pins={"contentType": ("application/json", "a new content type needs a new model name: "
                              "names are unique per API and API Gateway will not delete a "
                              "model a method still uses, so neither replacement order works")}),
    "aws:apigateway/requestValidator:RequestValidator": Facts(
        f"{TF}apigateway/request_validator.go", ("restApi",)),
    "aws:apigateway/resource:Resource": Facts(
        f"{TF}apigateway/resource.go", ("restApi",), identity=("restApi", "parentId", "pathPart")),
    "aws:apigateway/response:Response": Facts(
        f"{TF}apigateway/gateway_response.go@090344804c49 (PutGatewayResponse)",
        ("restApiId", "responseType"), identity=("restApiId", "responseType")),
    "aws:apigateway/restApi:RestApi": Facts(f"{TF}apigateway/rest_api.go"),
    "aws:apigateway/stage:Stage": Facts(
        f"{TF}apigateway/stage.go", ("restApi", "stageName"), identity=("restApi", "stageName"),
        name=NameRule("stageName", 128, r"[A-Za-z0-9_-]+", _api("API Gateway CreateStage"))),
    # --- CloudFront (global) -----------------------------------------------------------------
    "aws:cloudfront/distribution:Distribution": Facts(
        f"{TF}cloudfront/distribution.go (updated in place; its id is generated)"),
    "aws:cloudfront/originAccessControl:OriginAccessControl": Facts(
        f"{TF}cloudfront/origin_access_control.go (framework; every attribute updates in place)",
        identity=("name",),
        name=NameRule("name", 64, None, _api("CloudFront CreateOriginAccessControl: Name"))),
    "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy": Facts(
        f"{TF}cloudfront/response_headers_policy.go (updated in place)", identity=("name",),
        name=NameRule("name", 128, r"[\w-]+", _api("CloudFront CreateResponseHeadersPolicy"))),
    # --- CloudWatch ----------------------------------------------------------------------------
    "aws:cloudwatch/dashboard:Dashboard": Facts(
        f"{TF}cloudwatch/dashboard.go", ("dashboardName",), identity=("dashboardName",),
        name=NameRule("dashboardName", 255, r"[A-Za-z0-9_-]+",
                      _api("CloudWatch PutDashboard: DashboardName"))),
    "aws:cloudwatch/logGroup:LogGroup": Facts(
        f"{TF}logs/group.go", ("name", "namePrefix", "logGroupClass"), identity=("name",),
        name=NameRule("name", 512, r"[.\-_/#A-Za-z0-9]+",
                      _api("CloudWatch Logs CreateLogGroup: logGroupName"))),
    "aws:cloudwatch/logMetricFilter:LogMetricFilter": Facts(
        f"{TF}logs/metric_filter.go", ("name", "logGroupName"), identity=("logGroupName", "name"),
        name=NameRule("name", 512, r"[^:*]+", _api("CloudWatch Logs PutMetricFilter: filterName"))),
    "aws:cloudwatch/metricAlarm:MetricAlarm": Facts(
        f"{TF}cloudwatch/metric_alarm.go", ("name",), identity=("name",),
        name=NameRule("name", 255, None, _api("CloudWatch PutMetricAlarm: AlarmName"))),
    # --- Cognito -------------------------------------------------------------------------------
    "aws:cognito/identityPool:IdentityPool": Facts(
        f"{TF}cognitoidentity/pool.go",
        name=NameRule("identityPoolName", 128, r"[\w\s+=,.@-]+",
                      _api("Cognito CreateIdentityPool: IdentityPoolName"))),
    "aws:cognito/identityPoolRoleAttachment:IdentityPoolRoleAttachment": Facts(
        f"{TF}cognitoidentity/pool_roles_attachment.go (SetIdentityPoolRoles)",
        ("identityPoolId",), identity=("identityPoolId",)),
    "aws:cognito/userGroup:UserGroup": Facts(
        f"{TF}cognitoidp/user_group.go", ("userPoolId", "name"), identity=("userPoolId", "name"),
        name=NameRule("name", 128, None, _api("Cognito CreateGroup: GroupName"))),
    "aws:cognito/userPool:UserPool": Facts(
        f"{TF}cognitoidp/user_pool.go (index id 11947684691): username_configuration."
        "case_sensitive, username_attributes, alias_attributes are ForceNew",
        ("usernameConfiguration", "usernameAttributes", "aliasAttributes"),
        name=NameRule("name", 128, r"[\w\s+=,.@-]+", _api("Cognito CreateUserPool: PoolName")),
        pins={"usernameConfiguration": ({"caseSensitive": False}, "a new value replaces the "
                                        "user pool: every installer account is lost")}),
    "aws:cognito/userPoolClient:UserPoolClient": Facts(
        f"{TF}cognitoidp/user_pool_client.go", ("userPoolId", "generateSecret"),
        name=NameRule("name", 128, r"[\w\s+=,.@-]+", _api("Cognito CreateUserPoolClient"))),
    # --- DynamoDB ------------------------------------------------------------------------------
    "aws:dynamodb/table:Table": Facts(
        f"{TF}dynamodb/table.go", ("name", "hashKey", "rangeKey"), identity=("name",),
        name=NameRule("name", 255, r"[a-zA-Z0-9_.-]+", _api("DynamoDB CreateTable: TableName"))),
    # --- IAM (global) --------------------------------------------------------------------------
    # ForceNew: name, name_prefix, path, description (terraform aws_iam_policy schema).
    "aws:iam/policy:Policy": Facts(
        f"{TF}iam/policy.go", ("name", "namePrefix", "path", "description"), identity=("name",),
        name=NameRule("name", 128, IAM_NAME, _api("IAM CreatePolicy: PolicyName")), autonamed_limit=128),
    "aws:iam/role:Role": Facts(
        f"{TF}iam/role.go@0040ea6911af", ("name", "namePrefix", "path"), identity=("name",),
        name=ROLE_NAME, autonamed_limit=64),
    "aws:iam/rolePolicy:RolePolicy": Facts(
        f"{TF}iam/role_policy.go", ("role", "name", "namePrefix"), identity=("role", "name"),
        name=NameRule("name", 128, IAM_NAME, _api("IAM PutRolePolicy: PolicyName"))),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": Facts(
        f"{TF}iam/role_policy_attachment.go", ("role", "policyArn"),
        identity=("role", "policyArn")),
    # --- IoT -----------------------------------------------------------------------------------
    "aws:iot/caCertificate:CaCertificate": Facts(
        f"{TF}iot/ca_certificate.go",
        ("caCertificatePem", "certificateMode", "verificationCertificatePem"),
        identity=("caCertificatePem",),
        pins={"certificateMode": ("SNI_ONLY", "another mode re-registers the same CA: the "
                                  "new registration collides with the old, which AWS will not "
                                  "delete while device certificates are registered under it")}),
    "aws:iot/domainConfiguration:DomainConfiguration": Facts(
        f"{TF}iot/domain_configuration.go",
        ("name", "domainName", "serverCertificateArns", "serviceType",
         "validationCertificateArn"), identity=("name",),
        name=NameRule("name", 128, r"[\w.-]+", _api("IoT CreateDomainConfiguration"))),
    "aws:iot/eventConfigurations:EventConfigurations": Facts(
        f"{TF}iot/event_configurations.go (UpdateEventConfigurations)", identity=(),
        singleton="AWS IoT registry event configuration of the account and region"),
    "aws:iot/loggingOptions:LoggingOptions": Facts(
        f"{TF}iot/logging_options.go (SetV2LoggingOptions)", identity=(),
        singleton="AWS IoT logging options of the account and region"),
    "aws:iot/policy:Policy": Facts(
        f"{TF}iot/policy.go@01606926a0c0 (updates add a version and prune the oldest at AWS's "
        "limit of 5)", ("name",), identity=("name",),
        name=NameRule("name", 128, IAM_NAME, _api("IoT CreatePolicy: policyName"))),
    "aws:iot/provisioningTemplate:ProvisioningTemplate": Facts(
        f"{TF}iot/provisioning_template.go@01606926a0c0 (template_body updates add a version "
        "and never prune: AWS keeps at most 5)", ("name", "type"), identity=("name",),
        name=NameRule("name", 36, r"[0-9A-Za-z_-]+", _api("IoT CreateProvisioningClaim: "
                                                          "templateName"))),
    "aws:iot/thingType:ThingType": Facts(
        f"{TF}iot/thing_type.go (name and properties force a new type; deprecated updates)",
        ("name", "properties"), identity=("name",),
        name=NameRule("name", 128, r"[a-zA-Z0-9:_-]+", _api("IoT CreateThingType: thingTypeName"))),
    "aws:iot/thingGroup:ThingGroup": Facts(
        f"{TF}iot/thing_group.go (a group's parent never changes: AWS IoT static thing groups)",
        ("name", "parentGroupName"), identity=("name",),
        name=NameRule("name", 128, r"[a-zA-Z0-9:_-]+", _api("IoT CreateThingGroup: thingGroupName"))),
    "aws:iot/policyAttachment:PolicyAttachment": Facts(
        f"{TF}iot/policy_attachment.go", ("policy", "target"), identity=("policy", "target")),
    "aws:iot/topicRule:TopicRule": Facts(
        f"{TF}iot/topic_rule.go", ("name",), identity=("name",),
        name=NameRule("name", 128, r"[a-zA-Z0-9_]+", _api("IoT CreateTopicRule: ruleName"))),
    # --- KMS -----------------------------------------------------------------------------------
    "aws:kms/alias:Alias": Facts(
        f"{TF}kms/alias.go", ("name", "namePrefix"), identity=("name",),
        name=NameRule("name", 256, r"alias/[a-zA-Z0-9/_-]+", _api("KMS CreateAlias"))),
    "aws:kms/key:Key": Facts(
        f"{TF}kms/key.go", ("multiRegion", "customerMasterKeySpec", "keyUsage",
                            "customKeyStoreId", "xksKeyId"),
        pins={"multiRegion": (True, "the global tables' key replicates to every region; a "
                              "single-region key cannot be changed into one (a new key)")}),
    "aws:kms/replicaKey:ReplicaKey": Facts(
        f"{TF}kms/replica_key.go", ("primaryKeyArn",),
        pins={"primaryKeyArn": (ANY, "follows the primary key, which is pinned")}),
    "aws:kms/keyPolicy:KeyPolicy": Facts(
        f"{TF}kms/key_policy.go (PutKeyPolicy: the key's one policy)", ("keyId",),
        identity=("keyId",)),
    # --- Lambda --------------------------------------------------------------------------------
    "aws:lambda/eventSourceMapping:EventSourceMapping": Facts(
        f"{TF}lambda/event_source_mapping.go (index id 2052016350); one mapping per stream and "
        "function", ("eventSourceArn", "startingPosition", "startingPositionTimestamp",
                     "topics", "queues", "selfManagedEventSource"),
        identity=("eventSourceArn", "functionName")),
    "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig": Facts(
        f"{TF}lambda/function_event_invoke_config.go; one configuration per function and "
        "qualifier (PutFunctionEventInvokeConfig)", ("functionName", "qualifier"),
        identity=("functionName", "qualifier")),
    "aws:lambda/function:Function": Facts(
        f"{TF}lambda/function.go", ("name", "packageType"), identity=("name",),
        name=NameRule("name", 64, r"[a-zA-Z0-9_-]+", _api("Lambda CreateFunction: "
                                                          "FunctionName"))),
    "aws:lambda/layerVersion:LayerVersion": Facts(
        f"{TF}lambda/layer_version.go (versions are immutable: every input is ForceNew)",
        ("layerName", "code", "sourceCodeHash", "compatibleRuntimes",
         "compatibleArchitectures", "description", "licenseInfo"),
        name=NameRule("layerName", 140, r"[a-zA-Z0-9_-]+", _api("Lambda PublishLayerVersion"))),
    "aws:lambda/permission:Permission": Facts(
        f"{TF}lambda/permission.go@04592f03e5d8 (no update: every input is ForceNew)",
        ("action", "eventSourceToken", "function", "functionUrlAuthType", "principal",
         "principalOrgId", "qualifier", "sourceAccount", "sourceArn", "statementId",
         "statementIdPrefix"), identity=("function", "qualifier", "statementId"),
        name=NameRule("statementId", 100, r"[a-zA-Z0-9_-]+", _api("Lambda AddPermission"))),
    # --- EventBridge Pipes ---------------------------------------------------------------------
    "aws:pipes/pipe:Pipe": Facts(
        f"{TF}pipes/pipe.go@d04887192267, source_parameters.go@ba2931406ac6",
        ("name", "namePrefix", "source",
         "sourceParameters.dynamodbStreamParameters.startingPosition"), identity=("name",),
        name=NameRule("name", 64, r"[0-9A-Za-z_.-]+", f"{TF}pipes/pipe.go (1-64)")),
    # --- Route53 (global) ------------------------------------------------------------------------
    "aws:route53/healthCheck:HealthCheck": Facts(
        f"{TF}route53/health_check.go", ("type", "requestInterval", "measureLatency",
                                         "referenceName", "routingControlArn")),
    "aws:route53/record:Record": Facts(
        f"{TF}route53/record.go@00655c1681ea (type and set_identifier update in place)",
        ("zoneId", "name"), identity=("zoneId", "name", "type", "setIdentifier")),
    # --- S3 (bucket names are global; each bucket-level setting is "the" one of its bucket) ------
    "aws:s3/bucket:Bucket": Facts(
        f"{TF}s3/bucket.go", ("bucket", "bucketPrefix", "objectLockEnabled"),
        identity=("bucket",), autonamed_limit=63,
        name=NameRule("bucket", 63, r"[a-z0-9][a-z0-9.-]*[a-z0-9]",
                      _api("S3 CreateBucket (bucket naming rules)"))),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": Facts(
        f"{TF}s3/bucket_lifecycle_configuration.go", ("bucket", "expectedBucketOwner"),
        identity=("bucket",)),
    "aws:s3/bucketObjectv2:BucketObjectv2": Facts(
        f"{TF}s3/object.go", ("bucket", "key"), identity=("bucket", "key")),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": Facts(
        f"{TF}s3/bucket_ownership_controls.go", ("bucket",), identity=("bucket",)),
    "aws:s3/bucketPolicy:BucketPolicy": Facts(
        f"{TF}s3/bucket_policy.go", ("bucket",), identity=("bucket",)),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": Facts(
        f"{TF}s3/bucket_public_access_block.go", ("bucket",), identity=("bucket",)),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": Facts(
        f"{TF}s3/bucket_server_side_encryption_configuration.go", ("bucket", "expectedBucketOwner"),
        identity=("bucket",)),
    "aws:s3/bucketVersioning:BucketVersioning": Facts(
        f"{TF}s3/bucket_versioning.go", ("bucket", "expectedBucketOwner"), identity=("bucket",)),
    # --- Secrets Manager ------------------------------------------------------------------------
    "aws:secretsmanager/secret:Secret": Facts(
        f"{TF}secretsmanager/secret.go", ("name", "namePrefix"), identity=("name",),
        name=NameRule("name", 512, r"[A-Za-z0-9/_+=.@-]+", _api("Secrets Manager "
                                                                "CreateSecret: Name"))),
    # --- Step Functions -------------------------------------------------------------------------
    "aws:sfn/stateMachine:StateMachine": Facts(
        f"{TF}sfn/state_machine.go@01f431114674", ("name", "namePrefix", "type"),
        identity=("name",),
        name=NameRule("name", 80, r"[0-9A-Za-z_-]+", f"{TF}sfn/state_machine.go (1-80)")),
    # --- SQS -------------------------------------------------------------------------------------
    "aws:sqs/queue:Queue": Facts(
        f"{TF}sqs/queue.go", ("name", "namePrefix", "fifoQueue"), identity=("name",),
        name=NameRule("name", 80, r"[A-Za-z0-9_-]+", _api("SQS CreateQueue: QueueName"))),
    # --- SNS ---------------------------------------------------------------------------------------
    "aws:sns/topic:Topic": Facts(
        f"{TF}sns/topic.go", ("name", "namePrefix", "fifoTopic"), identity=("name",),
        name=NameRule("name", 256, r"[A-Za-z0-9_-]+(\.fifo)?", _api("SNS CreateTopic: Name"))),
    "aws:sns/topicPolicy:TopicPolicy": Facts(
        f"{TF}sns/topic_policy.go (SetTopicAttributes)", ("arn",), identity=("arn",)),
    # Subscribe answers the existing subscription for the same topic, protocol and endpoint,
    # so a replacement with those unchanged would meet (then delete) its predecessor.
    "aws:sns/topicSubscription:TopicSubscription": Facts(
        f"{TF}sns/topic_subscription.go@04a2e6e5bc62", ("topicArn", "protocol", "endpoint"),
        identity=("topicArn", "protocol", "endpoint")),
    "aws:sqs/queuePolicy:QueuePolicy": Facts(
        f"{TF}sqs/queue_policy.go (SetQueueAttributes)", ("queueUrl",), identity=("queueUrl",)),
    # --- WAFv2 -----------------------------------------------------------------------------------
    "aws:wafv2/webAcl:WebAcl": Facts(
        f"{TF}wafv2/web_acl.go", ("name", "namePrefix", "scope"), identity=("name", "scope"),
        name=NameRule("name", 128, r"[\w-]+", _api("WAFv2 CreateWebACL: Name"))),
    "aws:wafv2/webAclAssociation:WebAclAssociation": Facts(
        f"{TF}wafv2/web_acl_association.go@011a8eed43ed (delete: DisassociateWebACL of the "
        "resource, whatever is associated)", ("resourceArn", "webAclArn"),
        identity=("resourceArn",)),
    "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration": Facts(
        f"{TF}wafv2/web_acl_logging_configuration.go@012f18cf44ec (PutLoggingConfiguration; "
        "delete removes the ACL's configuration)", ("resourceArn", "logDestinationConfigs"),
        identity=("resourceArn",)),
}

# Updates of these inputs add a version the provider never deletes, and AWS keeps a few:
# the program must replace the resource instead (`replace_on_changes`).
UNPRUNED_VERSIONS: Mapping[str, tuple[str, int, str]] = {
    "aws:iot/provisioningTemplate:ProvisioningTemplate": (
        "templateBody", 5, "IoT quotas: provisioning template versions per template"),
}

# Resources that are singletons by name rather than by type: IoT writes its V2 logs to this
# log group of the account and region, whoever created it.
SINGLETON_NAMES: Mapping[tuple[str, str], str] = {
    ("aws:cloudwatch/logGroup:LogGroup", "AWSIotLogsV2"):
        "the AWS IoT V2 log group of the account and region",
}

# How `setIdentifier`-less, unset identity inputs compare: absent = "".
ABSENT = ""
