"""The certificate vending machine of one region. Design notes: components/cvm/README.md.

Per region, one section (method) each: the batch-salts secret (regional CMK); the
registration function (its own KMS log group, least-privilege role, X-Ray, JSON logs); a
REGIONAL REST API (`POST /registration`, `POST /rotation`) with a request validator and
JSON-schema models, field-naming 400 bodies, stage throttling, KMS access logs and X-Ray,
redeployed whenever any input of its definition changes (components/rest_api.py); a WAFv2
web ACL (per-IP rate rule answering 429 + AWS managed rule groups) on the stage; the custom
domain `provision.<deviceDomain>` behind the fail-over endpoint the edge uses too
(components/failover.py); KPI dashboard and alarms. The domain's ACM validation record is the
capability's global part (components/cvm/validation.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_aws as aws

import components.cvm.monitoring as monitoring  # not `from components.cvm`: no import circle
from components.account import AwsAccount
from components.cvm.policies import API_GATEWAY_LOGGING_POLICY, function_role_policy
from components.failover import (
    AliasTarget,
    HealthLabels,
    LatencyEndpointSpec,
    ServerErrorAlarm,
    dns_validated_certificate,
    latency_endpoint,
)
from components.global_tables import RegionalTable
from components.iam import policy_document
from components.lambda_function import dependencies_layer, python_function
from components.packaging import LambdaLayer
from components.rest_api import ApiDefinition
from lambdas.contracts.environment import CvmRegistrationEnvironment

HERE = Path(__file__).resolve().parent
REGISTRATION_SCHEMA = HERE / "registration.schema.json"
ROTATION_SCHEMA = HERE / "rotation.schema.json"
FUNCTION_PACKAGE = "cvm_registration"
STAGE_NAME = "v1"
# Route (path part) -> (request model name, schema file).
ROUTES: Mapping[str, tuple[str, Path]] = {
    "registration": ("RegistrationRequest", REGISTRATION_SCHEMA),
    "rotation": ("RotationRequest", ROTATION_SCHEMA),
}
FUNCTION_TIMEOUT_SECONDS = 20  # below API Gateway's 29 s integration limit
# A claim older than this belongs to an invocation that is certainly over: Lambda stops an
# invocation at its timeout, and the claim is its first write; 5 s cover clock differences.
# Exactly-once does not rest on this figure (the commit is conditional on the claim), only
# how long a device whose claim answer and release were both lost waits (issue 20).
CLAIM_STALE_SECONDS = FUNCTION_TIMEOUT_SECONDS + 5
FUNCTION_MEMORY_MB = 512  # more memory = more CPU for CSR/signature checks

# The access log: who, what, outcome, timing. Never the body (it carries the device token).
ACCESS_LOG_FORMAT = json.dumps({
    "requestId": "$context.requestId", "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime", "httpMethod": "$context.httpMethod",
    "path": "$context.path", "status": "$context.status",
    "responseLength": "$context.responseLength", "latency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency", "wafStatus": "$context.waf.status",
    "errorType": "$context.error.responseType", "xrayTraceId": "$context.xrayTraceId",
    "domainName": "$context.domainName"}, separators=(",", ":"))


def _gateway_body(status_code: int | None, message_expression: str) -> str:
    """A gateway-made answer in the function's (the seed's) envelope. Without a fixed status
    (DEFAULT_4XX/5XX) the envelope leaves `statusCode` out; the HTTP status says it."""
    code = "" if status_code is None else f'"statusCode":{status_code},'
    return '{%s"status":"ERROR","payload":{"message":%s}}' % (code, message_expression)


# Gateway responses (API Gateway answers these without calling the function). Their templates
# get simple variable substitution, no VTL: only messageString is quoted for JSON by AWS, so
# the 400 says "Invalid request body" (validationErrorString, unescaped, could break the JSON).
GATEWAY_RESPONSES: Mapping[str, tuple[int | None, str]] = {
    "BAD_REQUEST_BODY": (400, _gateway_body(400, "$context.error.messageString")),
    "THROTTLED": (429, _gateway_body(429, '"too many requests; retry later"')),
    "WAF_FILTERED": (403, _gateway_body(403, '"request blocked"')),
    "DEFAULT_4XX": (None, _gateway_body(None, "$context.error.messageString")),
    "DEFAULT_5XX": (None, _gateway_body(None, '"registration is temporarily unavailable"')),
}

# WAF: the rate rule answers 429 in the seed's envelope; AWS managed groups on top.
WAF_THROTTLED_BODY_KEY = "throttled"
WAF_MANAGED_RULE_GROUPS = (
    "AWSManagedRulesAmazonIpReputationList",
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesKnownBadInputsRuleSet",
)
WAF_RATE_WINDOW_SECONDS = 300
# A 429 tells the device when to come back, as the function's 409 and 503 do: the stage's
# token bucket refills within a second; an address over the WAF's rate stays blocked until
# its count over the window falls (AWS re-evaluates it every minute or so).
THROTTLED_RETRY_AFTER_SECONDS = 1
WAF_RETRY_AFTER_SECONDS = 60
# Rules of those groups that would refuse devices the seed's contract admits: embedded HTTP
# clients often send no User-Agent. Counted (visible in WAF metrics), not blocked.
WAF_COUNT_ONLY_RULES: Mapping[str, tuple[str, ...]] = {
    "AWSManagedRulesCommonRuleSet": ("NoUserAgent_HEADER",),
}

# Health (the edge's design, components/failover.py): unhealthy while the API answers server
# errors in bursts (alarm) or the custom domain's endpoint does not accept TCP on 443.
SERVER_ERRORS_PER_MINUTE = 5
HTTPS_PORT = 443


@dataclass(frozen=True)
class CertificateVendingMachineArgs:
    region: str
    name_prefix: str  # `<app>-<env>-<region>` (IAM, alarm, health-check names)
    salts_secret_name: str  # components/naming.py (the manufacturer tool reads the same)
    account: AwsAccount
    kms_key_arn: pulumi.Input[str]
    tables_key_arn: pulumi.Input[str]  # the global tables' CMK in this region
    provisioning: RegionalTable
    inventory: RegionalTable
    device_domain: str
    hosted_zone_id: str
    provisioning_domain: str
    device_policy_name: pulumi.Input[str]
    lambda_layer: LambdaLayer
    log_retention_days: int
    is_prod: bool
    waf_rate_limit: int
    throttle_rate_limit: float
    throttle_burst_limit: int
    legacy_batches: tuple[str, ...] = ()
    thing_name_prefix: str = ""
    root_ca_bundle_pem: str | None = None
    reserved_concurrency: int | None = None
    success_rate_alarm_percent: int = 90
    attempts_per_device_alarm: float = 3.0
    # API Gateway's per-region account setting (the CloudWatch role): ours only if "manage".
    manage_api_gateway_account: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)


def function_environment(args: CertificateVendingMachineArgs, *, secret_arn: str, provisioning_table: str,
                         inventory_table: str, device_policy_name: str) -> dict[str, str]:
    return CvmRegistrationEnvironment[str](
        provisioning_table_name=provisioning_table, inventory_table_name=inventory_table,
        salts_secret_arn=secret_arn, device_policy_name=device_policy_name,
        device_endpoint=args.device_domain, thing_name_prefix=args.thing_name_prefix,
        legacy_batches=",".join(args.legacy_batches),
        claim_stale_seconds=str(CLAIM_STALE_SECONDS),
        root_ca_bundle_pem=args.root_ca_bundle_pem or None).variables()


def api_gateway_logging_trust() -> str:
    """API Gateway's CloudWatch role, trusted as AWS documents it ("Set up CloudWatch logging
    for REST APIs in API Gateway": a role with `apigateway.amazonaws.com` as its trusted
    entity). API Gateway tests the role when the account setting is written; a condition it
    does not send would fail that test."""
    return policy_document([{"Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"},
                             "Action": "sts:AssumeRole"}])


@dataclass(frozen=True)
class CvmOutputs:
    """What operators and the factory's tool need from one region's CVM (stack outputs)."""

    url: str  # POST here to register
    rotation_url: str
    rest_api_id: pulumi.Output[str]
    function_name: pulumi.Output[str]
    salts_secret_name: str
    salts_secret_arn: pulumi.Output[str]
    web_acl_arn: pulumi.Output[str]
    health_check_id: pulumi.Output[str]
    # The operator's switch for this endpoint (tools/evacuate.py; components/failover.py).
    evacuation_control_id: pulumi.Output[str]


class CertificateVendingMachine(pulumi.ComponentResource):
    """One region's CVM; each section of the declaration is one method, in dependency order."""

    def __init__(self, name: str, args: CertificateVendingMachineArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("iotmr:cvm:CertificateVendingMachine", name, None, opts)
        self.logical_name = name  # the global part's alias names this component's children
        self._cvm = args
        self._logical = name
        self._tags = dict(args.tags)
        self._child = pulumi.ResourceOptions(parent=self)
        prefix = args.name_prefix
        self.function_name = f"{prefix}-cvm-registration"
        self.api_name = f"{prefix}-cvm"
        self.waf_name = f"{prefix}-cvm"

        self._salts()
        self._function()
        self._rest_api()
        self._waf()
        self._domain_and_health()
        self._kpis()

        domain = args.provisioning_domain
        self.provisioning_url = f"https://{domain}/registration"
        self.outputs = CvmOutputs(
            url=self.provisioning_url, rotation_url=f"https://{domain}/rotation",
            rest_api_id=self.rest_api.id, function_name=self.registration.function.name,
            salts_secret_name=args.salts_secret_name, salts_secret_arn=self.salts_secret.arn,
            web_acl_arn=self.web_acl.arn, health_check_id=self.health_check.id,
            evacuation_control_id=self.evacuation_control.id)
        self.register_outputs({
            "provisioning_url": self.provisioning_url,
            "rest_api_id": self.rest_api.id,
            "stage_arn": self.stage.arn,
            "function_arn": self.registration.function.arn,
            "salts_secret_arn": self.salts_secret.arn,
            "web_acl_arn": self.web_acl.arn,
            "health_check_id": self.health_check.id,
            "evacuation_control_id": self.evacuation_control.id,
        })

    # --- batch salts ---------------------------------------------------------------------------
    def _salts(self) -> None:
        args, name = self._cvm, self._logical
        # Declared empty: the manufacturer tool writes the value (never Pulumi state).
        self.salts_secret = aws.secretsmanager.Secret(
            f"{name}-salts", region=args.region, name=args.salts_secret_name,
            description="CVM device-token salts per manufacturing batch "
                        "(written by tools/manufacturer.py)",
            kms_key_id=args.kms_key_arn, recovery_window_in_days=30 if args.is_prod else 7,
            # A salt cannot rotate on a schedule: devices already in the field carry tokens
            # derived from it. New batches get new salts (`tools/manufacturer.py rotate-salt`).
            tags={**self._tags, "rotation-exception": "device tokens in the field derive from "
                  "the batch salt; new batches get new salts (manufacturer rotate-salt)"},
            opts=self._child)

    # --- the function ----------------------------------------------------------------------------
    def _function(self) -> None:
        args, name, region = self._cvm, self._logical, self._cvm.region
        account_id, partition = args.account.account_id, args.account.partition
        function_name = self.function_name
        self.dependencies_layer = dependencies_layer(
            f"{name}-deps", parent=self, region=region,
            layer_name=f"{args.name_prefix}-cvm-deps", lambda_layer=args.lambda_layer)
        self.registration = python_function(
            f"{name}-function", parent=self, region=region, account_id=account_id,
            kms_key_arn=args.kms_key_arn, log_retention_days=args.log_retention_days,
            tags=self._tags, function_name=function_name, package=FUNCTION_PACKAGE,
            description="CVM: registers devices (token -> certificate) and rotates certificates",
            role_policy_name="cvm-registration",
            role_policy=lambda log_group_arn: pulumi.Output.all(
                partition, account_id, log_group_arn, args.kms_key_arn,
                args.provisioning.arn, args.inventory.arn, self.salts_secret.arn,
                args.tables_key_arn).apply(
                lambda v: function_role_policy(
                    partition=v[0], region=region, account_id=v[1],
                    function_name=function_name, log_group_arn=v[2], key_arn=v[3],
                    provisioning_table_arn=v[4], inventory_table_arn=v[5],
                    tables_key_arn=v[7], secret_arn=v[6],
                    thing_name_prefix=args.thing_name_prefix,
                    legacy_keys=bool(args.legacy_batches))),
            environment=pulumi.Output.all(
                self.salts_secret.arn, args.provisioning.name, args.inventory.name,
                args.device_policy_name).apply(lambda v: function_environment(
                    args, secret_arn=v[0], provisioning_table=v[1], inventory_table=v[2],
                    device_policy_name=v[3])),
            layer=self.dependencies_layer, memory_size=FUNCTION_MEMORY_MB,
            timeout=FUNCTION_TIMEOUT_SECONDS, reserved_concurrency=args.reserved_concurrency)

    # --- the REST API ------------------------------------------------------------------------------
    def _rest_api(self) -> None:
        args, name, region, child = self._cvm, self._logical, self._cvm.region, self._child
        # Everything a deployment serves, declared through `definition`: any change to any
        # input of any part redeploys (components/rest_api.py).
        definition = ApiDefinition()
        self.rest_api = definition.add(
            aws.apigateway.RestApi, f"{name}-api", region=region, name=self.api_name,
            description="Certificate vending machine: device registration and rotation",
            endpoint_configuration={"types": "REGIONAL"},
            # Devices use provision.<deviceDomain> only; the execute-api URL is switched off.
            disable_execute_api_endpoint=True,
            tags=self._tags, opts=child)
        self.validator = definition.add(
            aws.apigateway.RequestValidator, f"{name}-validator", region=region,
            rest_api=self.rest_api.id, name="body-and-parameters", validate_request_body=True,
            validate_request_parameters=True, opts=child)
        self.methods: dict[str, aws.apigateway.Method] = {}
        for route, (model_name, schema_path) in ROUTES.items():
            # content_type is fixed: it forces a new model, whose name is unique per API and
            # which API Gateway will not delete while a method uses it (tests pin it).
            model = definition.add(
                aws.apigateway.Model, f"{name}-{route}-model", region=region,
                rest_api=self.rest_api.id, name=model_name, content_type="application/json",
                schema=schema_path.read_text(), opts=child)
            resource = definition.add(
                aws.apigateway.Resource, f"{name}-{route}-resource", region=region,
                rest_api=self.rest_api.id, parent_id=self.rest_api.root_resource_id,
                path_part=route, opts=child)
            method = definition.add(
                aws.apigateway.Method, f"{name}-{route}-post", region=region,
                rest_api=self.rest_api.id,
                resource_id=resource.id, http_method="POST",
                # Devices have no AWS identity: the body's token (or signature) is the proof,
                # checked by the function; WAF and throttling guard the door.
                authorization="NONE", request_validator_id=self.validator.id,
                request_models={"application/json": model.name}, opts=child)
            definition.add(
                aws.apigateway.Integration, f"{name}-{route}-integration", region=region,
                rest_api=self.rest_api.id,
                resource_id=resource.id, http_method=method.http_method,
                type="AWS_PROXY", integration_http_method="POST",
                uri=self.registration.function.invoke_arn,
                # PutIntegration overwrites and DeleteIntegration removes "the" integration of
                # the method: a replacement (new type) must delete the old one first.
                opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True))
            self.methods[route] = method
        for response_type, (status, template) in GATEWAY_RESPONSES.items():
            definition.add(
                aws.apigateway.Response,
                f"{name}-response-{response_type.lower().replace('_', '-')}", region=region,
                rest_api_id=self.rest_api.id, response_type=response_type,
                status_code=None if status is None else str(status),
                response_templates={"application/json": template},
                response_parameters={"gatewayresponse.header.Retry-After":
                                     f"'{THROTTLED_RETRY_AFTER_SECONDS}'"}
                if response_type == "THROTTLED" else None,
                opts=child)

        self.access_log_group = aws.cloudwatch.LogGroup(
            f"{name}-access-logs", region=region, name=f"/aws/apigateway/{self.api_name}/access",
            retention_in_days=args.log_retention_days, kms_key_id=args.kms_key_arn,
            tags=self._tags, opts=child)
        stage_depends = self._api_gateway_account()
        self.deployment = aws.apigateway.Deployment(
            f"{name}-deployment", region=region, rest_api=self.rest_api.id,
            description="CVM API", triggers=definition.triggers(),
            opts=pulumi.ResourceOptions(parent=self, depends_on=definition.resources))
        self.stage = aws.apigateway.Stage(
            f"{name}-stage", region=region, rest_api=self.rest_api.id, stage_name=STAGE_NAME,
            deployment=self.deployment.id, xray_tracing_enabled=True,
            access_log_settings=aws.apigateway.StageAccessLogSettingsArgs(
                destination_arn=self.access_log_group.arn, format=ACCESS_LOG_FORMAT),
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=stage_depends))
        self.method_settings = aws.apigateway.MethodSettings(
            f"{name}-throttling", region=region, rest_api=self.rest_api.id,
            stage_name=self.stage.stage_name, method_path="*/*",
            settings=aws.apigateway.MethodSettingsSettingsArgs(
                throttling_rate_limit=args.throttle_rate_limit,
                throttling_burst_limit=args.throttle_burst_limit,
                metrics_enabled=True,
                # Execution logs and data traces would write request bodies (device tokens).
                logging_level="OFF", data_trace_enabled=False),
            opts=child)
        aws.lambda_.Permission(
            f"{name}-invoke", region=region, function=self.registration.function.name,
            action="lambda:InvokeFunction", principal="apigateway.amazonaws.com",
            source_account=args.account.account_id,
            source_arn=self.rest_api.execution_arn.apply(
                lambda arn: f"{arn}/{STAGE_NAME}/POST/*"),
            opts=child)

    def _api_gateway_account(self) -> list[pulumi.Resource]:
        """API Gateway writes access logs with the account's (per region) CloudWatch role, a
        singleton of the account that serves every API in the region: declared only when the
        stack owns it (`cvm.apiGatewayAccount: manage`), and retained (with its role) when
        this stack stops declaring it, so other APIs' logging never breaks with our removal
        (the provider would otherwise reset the setting on delete). The role carries no fixed
        name: declaring the setting again later creates a new role instead of colliding."""
        args, name = self._cvm, self._logical
        if not args.manage_api_gateway_account:
            return []
        retained = pulumi.ResourceOptions(parent=self, retain_on_delete=True)
        role = aws.iam.Role(
            f"{name}-api-logging-role",
            description=f"API Gateway in {args.region} writes CloudWatch logs (account setting)",
            assume_role_policy=api_gateway_logging_trust(), tags=self._tags, opts=retained)
        # The managed policy AWS documents for this role: the setting serves every API of the
        # region, whose log groups this stack cannot know.
        attachment = aws.iam.RolePolicyAttachment(
            f"{name}-api-logging-policy", role=role.name,
            policy_arn=pulumi.Output.from_input(args.account.partition).apply(
                lambda partition: f"arn:{partition}:iam::aws:policy/{API_GATEWAY_LOGGING_POLICY}"),
            opts=retained)
        return [aws.apigateway.Account(
            f"{name}-api-account", region=args.region, cloudwatch_role_arn=role.arn,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[attachment],
                                        retain_on_delete=True))]

    # --- WAF -----------------------------------------------------------------------------------------
    def _waf(self) -> None:
        args, name, region, child = self._cvm, self._logical, self._cvm.region, self._child
        waf_name = self.waf_name

        def visibility(metric: str) -> aws.wafv2.WebAclRuleVisibilityConfigArgs:
            return aws.wafv2.WebAclRuleVisibilityConfigArgs(
                cloudwatch_metrics_enabled=True, sampled_requests_enabled=True,
                metric_name=metric)

        rules = [aws.wafv2.WebAclRuleArgs(
            name="rate-per-ip", priority=0,
            action=aws.wafv2.WebAclRuleActionArgs(block=aws.wafv2.WebAclRuleActionBlockArgs(
                custom_response=aws.wafv2.WebAclRuleActionBlockCustomResponseArgs(
                    response_code=429, custom_response_body_key=WAF_THROTTLED_BODY_KEY,
                    response_headers=[aws.wafv2.WebAclRuleActionBlockCustomResponseResponseHeaderArgs(
                        name="Retry-After", value=str(WAF_RETRY_AFTER_SECONDS))]))),
            statement=aws.wafv2.WebAclRuleStatementArgs(
                rate_based_statement=aws.wafv2.WebAclRuleStatementRateBasedStatementArgs(
                    limit=args.waf_rate_limit, aggregate_key_type="IP",
                    evaluation_window_sec=WAF_RATE_WINDOW_SECONDS)),
            visibility_config=visibility(f"{waf_name}-rate-per-ip"))]
        for priority, group in enumerate(WAF_MANAGED_RULE_GROUPS, start=1):
            rules.append(aws.wafv2.WebAclRuleArgs(
                name=group, priority=priority,
                override_action=aws.wafv2.WebAclRuleOverrideActionArgs(
                    none=aws.wafv2.WebAclRuleOverrideActionNoneArgs()),
                statement=aws.wafv2.WebAclRuleStatementArgs(
                    managed_rule_group_statement=aws.wafv2
                    .WebAclRuleStatementManagedRuleGroupStatementArgs(
                        name=group, vendor_name="AWS",
                        rule_action_overrides=[
                            aws.wafv2.WebAclRuleStatementManagedRuleGroupStatementRuleActionOverrideArgs(
                                name=rule, action_to_use=aws.wafv2
                                .WebAclRuleStatementManagedRuleGroupStatementRuleActionOverrideActionToUseArgs(
                                    count=aws.wafv2
                                    .WebAclRuleStatementManagedRuleGroupStatementRuleActionOverrideActionToUseCountArgs()))
                            for rule in WAF_COUNT_ONLY_RULES.get(group, ())] or None)),
                visibility_config=visibility(f"{waf_name}-{group}")))
        self.web_acl = aws.wafv2.WebAcl(
            f"{name}-waf", region=region, name=waf_name, scope="REGIONAL",
            description="CVM: per-IP rate limit and AWS managed rules",
            default_action=aws.wafv2.WebAclDefaultActionArgs(
                allow=aws.wafv2.WebAclDefaultActionAllowArgs()),
            custom_response_bodies=[aws.wafv2.WebAclCustomResponseBodyArgs(
                key=WAF_THROTTLED_BODY_KEY, content_type="APPLICATION_JSON",
                content=_gateway_body(429, '"too many requests; retry later"'))],
            rules=rules, visibility_config=aws.wafv2.WebAclVisibilityConfigArgs(
                cloudwatch_metrics_enabled=True, sampled_requests_enabled=True,
                metric_name=waf_name),
            tags=self._tags, opts=child)
        # Both are "the" association / logging configuration of their resource: deleting the
        # old one after creating the new (the default order) would remove the new one too.
        replace_in_place = pulumi.ResourceOptions(parent=self, delete_before_replace=True)
        self.web_acl_association = aws.wafv2.WebAclAssociation(
            f"{name}-waf-association", region=region, resource_arn=self.stage.arn,
            web_acl_arn=self.web_acl.arn, opts=replace_in_place)
        # WAF requires this log group name prefix.
        self.waf_log_group = aws.cloudwatch.LogGroup(
            f"{name}-waf-logs", region=region, name=f"aws-waf-logs-{waf_name}",
            retention_in_days=args.log_retention_days, kms_key_id=args.kms_key_arn,
            tags=self._tags, opts=child)
        aws.wafv2.WebAclLoggingConfiguration(
            f"{name}-waf-logging", region=region, resource_arn=self.web_acl.arn,
            log_destination_configs=[self.waf_log_group.arn], opts=replace_in_place)

    # --- custom domain, latency record, health -------------------------------------------------
    def _domain_and_health(self) -> None:
        args, name, region, child = self._cvm, self._logical, self._cvm.region, self._child
        domain = args.provisioning_domain
        # The validation record is the capability's global part (components/cvm/validation.py).
        issued = dns_validated_certificate(
            f"{name}-domain-cert", parent=self, region=region, domain=domain, tags=self._tags)
        self.certificate = issued.certificate
        self.domain = aws.apigateway.DomainName(
            f"{name}-domain", region=region, domain_name=domain,
            regional_certificate_arn=issued.arn,
            endpoint_configuration=aws.apigateway.DomainNameEndpointConfigurationArgs(
                types="REGIONAL"),
            security_policy="TLS_1_2", tags=self._tags, opts=child)
        aws.apigateway.BasePathMapping(
            f"{name}-domain-mapping", region=region, domain_name=self.domain.domain_name,
            rest_api=self.rest_api.id, stage_name=self.stage.stage_name, opts=child)
        prefix = args.name_prefix
        endpoint = latency_endpoint(name, parent=self, spec=LatencyEndpointSpec(
            region=region, hosted_zone_id=args.hosted_zone_id, domain=domain,
            alarm=ServerErrorAlarm(
                logical_suffix="-api-health", alarm_name=f"{prefix}-cvm-api-server-errors",
                description=(
                    f"The CVM API in {region} answers server errors; while in ALARM, Route53 "
                    f"stops answering {domain} with {region}."),
                namespace="AWS/ApiGateway", metric_name="5XXError",
                dimensions={"ApiName": self.api_name, "Stage": STAGE_NAME},
                errors_per_minute=SERVER_ERRORS_PER_MINUTE),
            probe_fqdn=self.domain.regional_domain_name, probe_port=HTTPS_PORT,
            labels=HealthLabels(alarm_check=f"{prefix}-cvm-server-errors",
                                tcp_check=f"{prefix}-cvm-https-port", combined=f"{prefix}-cvm"),
            target=AliasTarget(name=self.domain.regional_domain_name,
                               zone_id=self.domain.regional_zone_id),
            tags=self._tags))
        self.server_error_alarm = endpoint.alarm
        self.health_check = endpoint.health_check
        self.latency_record = endpoint.record
        self.evacuation_control = endpoint.evacuation_control

    # --- KPIs: dashboard and alarms --------------------------------------------------------------
    def _kpis(self) -> None:
        args, name, region, child = self._cvm, self._logical, self._cvm.region, self._child
        prefix, tags = args.name_prefix, self._tags
        self.dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard", region=region, dashboard_name=f"{prefix}-cvm",
            dashboard_body=monitoring.dashboard_body(
                region=region, api_name=self.api_name, stage_name=STAGE_NAME,
                function_name=self.function_name, web_acl_name=self.waf_name),
            opts=child)
        self.success_rate_alarm = aws.cloudwatch.MetricAlarm(
            f"{name}-success-rate", region=region, name=f"{prefix}-cvm-success-rate",
            alarm_description=("Registration success rate of devices that proved their token "
                               f"fell below {args.success_rate_alarm_percent}%"),
            comparison_operator="LessThanThreshold",
            threshold=args.success_rate_alarm_percent, evaluation_periods=3,
            datapoints_to_alarm=2, treat_missing_data="notBreaching",
            metric_queries=[aws.cloudwatch.MetricAlarmMetricQueryArgs(
                id="rate", expression=monitoring.SUCCESS_RATE_EXPRESSION,
                label="success rate %", return_data=True),
                *[aws.cloudwatch.MetricAlarmMetricQueryArgs(
                    id=key, return_data=False,
                    metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                        namespace=monitoring.NAMESPACE, metric_name=metric,
                        dimensions=monitoring.DIMENSIONS, stat="Sum",
                        period=monitoring.SUCCESS_RATE_PERIOD))
                  for key, metric in monitoring.SUCCESS_RATE_INPUTS.items()]],
            tags=tags, opts=child)
        self.attempts_alarm = aws.cloudwatch.MetricAlarm(
            f"{name}-attempts", region=region, name=f"{prefix}-cvm-attempts-per-device",
            alarm_description="Devices need too many attempts to register (average per success)",
            namespace=monitoring.NAMESPACE, metric_name=monitoring.ATTEMPTS_PER_DEVICE,
            dimensions=monitoring.DIMENSIONS, statistic="Average", period=900,
            evaluation_periods=1, threshold=args.attempts_per_device_alarm,
            comparison_operator="GreaterThanThreshold", treat_missing_data="notBreaching",
            tags=tags, opts=child)
        self.undo_alarm = aws.cloudwatch.MetricAlarm(
            f"{name}-undo-failed", region=region, name=f"{prefix}-cvm-undo-failed",
            alarm_description=("A failed registration could not undo all it did: look for "
                               "orphaned certificates/things in the function's logs"),
            namespace=monitoring.NAMESPACE, metric_name=monitoring.UNDO_FAILED,
            dimensions=monitoring.DIMENSIONS, statistic="Sum", period=300,
            evaluation_periods=1, threshold=1, comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data="notBreaching", tags=tags, opts=child)
        self.errored_alarm = aws.cloudwatch.MetricAlarm(
            f"{name}-errored", region=region, name=f"{prefix}-cvm-unexpected-errors",
            alarm_description="The registration function hit a bug (HTTP 500 answers)",
            namespace=monitoring.NAMESPACE, metric_name=monitoring.ERRORED,
            dimensions=monitoring.DIMENSIONS, statistic="Sum", period=300,
            evaluation_periods=1, threshold=1, comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data="notBreaching", tags=tags, opts=child)
