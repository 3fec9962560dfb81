"""API Gateway: regional endpoints, WAF, request validation, access logs, throttling, TLS."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import Policy, PolicyResource, ResourceValidationArgs, Severity, StackValidationArgs

from ._common import ADVISORY, as_list, get, number, resource_guardrail, stack_guardrail, truthy

REST_API = "aws:apigateway/restApi:RestApi"
STAGE = "aws:apigateway/stage:Stage"
METHOD = "aws:apigateway/method:Method"
METHOD_SETTINGS = "aws:apigateway/methodSettings:MethodSettings"
USAGE_PLAN = "aws:apigateway/usagePlan:UsagePlan"
DOMAIN = "aws:apigateway/domainName:DomainName"
V2_STAGE = "aws:apigatewayv2/stage:Stage"
V2_DOMAIN = "aws:apigatewayv2/domainName:DomainName"
WAF_ASSOCIATION = "aws:wafv2/webAclAssociation:WebAclAssociation"
ALLOWED_ENDPOINT_TYPES = {"REGIONAL", "PRIVATE"}


def _endpoint_types(props: Mapping[str, Any]) -> list[str]:
    return [str(t) for t in as_list(get(props, "endpointConfiguration", "types"))]


def _regional(args: ResourceValidationArgs) -> Iterator[str]:
    types = _endpoint_types(args.props)
    if not types or not set(types) <= ALLOWED_ENDPOINT_TYPES:
        yield (f"endpoint types {types or ['EDGE (default)']}: use REGIONAL so each region serves "
               "its own endpoint (EDGE puts a global CloudFront distribution in front)")


def _request_validation(args: ResourceValidationArgs) -> Iterator[str]:
    if str(args.props.get("httpMethod", "")).upper() != "OPTIONS" \
            and not args.props.get("requestValidatorId"):
        yield "method has no requestValidatorId: malformed requests reach the integration"


def _access_logging(args: ResourceValidationArgs) -> Iterator[str]:
    if not get(args.props, "accessLogSettings", "destinationArn"):
        yield "stage has no accessLogSettings.destinationArn"


def _xray(args: ResourceValidationArgs) -> Iterator[str]:
    if not truthy(args.props.get("xrayTracingEnabled")):
        yield "stage has xrayTracingEnabled off"


def _tls12(args: ResourceValidationArgs) -> Iterator[str]:
    if args.resource_type == V2_DOMAIN:
        policies = [get(c, "securityPolicy") for c in as_list(args.props.get("domainNameConfiguration"))]
    else:
        policies = [args.props.get("securityPolicy")]
    for policy in policies or [None]:
        text = str(policy or "")
        if not (text == "TLS_1_2" or text.startswith(("SecurityPolicy_TLS13_", "SecurityPolicy_TLS12_"))):
            yield f"securityPolicy is {policy!r}; set TLS_1_2 (or a newer SecurityPolicy_TLS13_*)"


def _stage_arn_fragment(stage: PolicyResource) -> str:
    return f"/restapis/{stage.props.get('restApi')}/stages/{stage.props.get('stageName')}"


def _waf(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    associated = [str(r.props.get("resourceArn") or "") for r in args.resources
                  if r.resource_type == WAF_ASSOCIATION]
    for stage in args.resources:
        if stage.resource_type != STAGE:
            continue
        arn = str(stage.props.get("arn") or "")
        fragment = _stage_arn_fragment(stage)
        if stage.props.get("webAclArn") or any(a == arn or a.endswith(fragment) for a in associated):
            continue
        yield f"stage {stage.props.get('stageName')} has no WAF web ACL association", stage.urn


def _throttled(settings: Any) -> bool:
    burst = number(get(settings, "throttlingBurstLimit"))
    rate = number(get(settings, "throttlingRateLimit"))
    return burst is not None and burst > 0 and rate is not None and rate > 0


def _throttling(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    throttled: set[tuple[str, str]] = set()
    for r in args.resources:
        if r.resource_type == METHOD_SETTINGS and r.props.get("methodPath") == "*/*" \
                and _throttled(r.props.get("settings")):
            throttled.add((str(r.props.get("restApi")), str(r.props.get("stageName"))))
        elif r.resource_type == USAGE_PLAN:
            plan_limits = _throttled({"throttlingBurstLimit": get(r.props, "throttleSettings", "burstLimit"),
                                      "throttlingRateLimit": get(r.props, "throttleSettings", "rateLimit")})
            for api_stage in as_list(r.props.get("apiStages")):
                if plan_limits and isinstance(api_stage, Mapping):
                    throttled.add((str(api_stage.get("apiId")), str(api_stage.get("stage"))))
    for r in args.resources:
        if r.resource_type == STAGE:
            key = (str(r.props.get("restApi")), str(r.props.get("stageName")))
            if key not in throttled:
                yield (f"stage {key[1]} has no throttling (method settings */* or usage plan "
                       "limits)", r.urn)
        elif r.resource_type == V2_STAGE and not _throttled(r.props.get("defaultRouteSettings")):
            yield "HTTP/WebSocket stage has no defaultRouteSettings throttling limits", r.urn


POLICIES: list[Policy] = [
    resource_guardrail(
        "apigateway-regional-endpoint",
        "REST APIs and custom domains use REGIONAL (or PRIVATE) endpoints",
        ["AWS Config api-gw-endpoint-type-check"], [REST_API, DOMAIN], _regional,
        severity=Severity.MEDIUM),
    stack_guardrail(
        "apigateway-waf-associated",
        "Every REST API stage has a WAFv2 web ACL association",
        ["CKV2_AWS_29", "AwsSolutions-APIG3", "AWS Config api-gw-associated-with-waf"], _waf),
    resource_guardrail(
        "apigateway-request-validation",
        "REST API methods (except OPTIONS) validate requests",
        ["CKV2_AWS_53", "AwsSolutions-APIG2"], [METHOD], _request_validation,
        severity=Severity.MEDIUM),
    resource_guardrail(
        "apigateway-access-logging",
        "API stages write access logs",
        ["CKV_AWS_76", "CKV_AWS_95", "AwsSolutions-APIG1"], [STAGE, V2_STAGE], _access_logging,
        severity=Severity.MEDIUM),
    stack_guardrail(
        "apigateway-throttling",
        "Every API stage is throttled (method settings */* or a usage plan; default route "
        "settings for HTTP APIs)",
        ["Serverless-APIGWDefaultThrottling", "AWS Well-Architected REL05-BP02"], _throttling,
        severity=Severity.MEDIUM),
    resource_guardrail(
        "apigateway-tls12-custom-domain",
        "API Gateway custom domains require TLS 1.2+",
        ["CKV_AWS_206"], [DOMAIN, V2_DOMAIN],
        _tls12),
    resource_guardrail(
        "apigateway-xray-tracing",
        "REST API stages trace with X-Ray (advisory)",
        ["CKV_AWS_73", "Serverless-APIGWXrayEnabled"], [STAGE], _xray, level=ADVISORY,
        severity=Severity.LOW),
]
