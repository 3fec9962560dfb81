"""API Gateway: authorization on every route (one configurable, WAF-, throttle- and
validator-guarded device-registration exception), regional endpoints, WAF, request
validation, access logs, throttling, TLS."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import (
    Policy,
    PolicyConfigSchema,
    PolicyResource,
    ResourceValidationArgs,
    Severity,
    StackValidationArgs,
)

from ._common import ADVISORY, as_list, config, get, number, resource_guardrail, stack_guardrail, truthy

REST_API = "aws:apigateway/restApi:RestApi"
STAGE = "aws:apigateway/stage:Stage"
METHOD = "aws:apigateway/method:Method"
RESOURCE = "aws:apigateway/resource:Resource"
V2_ROUTE = "aws:apigatewayv2/route:Route"
METHOD_SETTINGS = "aws:apigateway/methodSettings:MethodSettings"
USAGE_PLAN = "aws:apigateway/usagePlan:UsagePlan"
DOMAIN = "aws:apigateway/domainName:DomainName"
V2_STAGE = "aws:apigatewayv2/stage:Stage"
V2_DOMAIN = "aws:apigatewayv2/domainName:DomainName"
WAF_ASSOCIATION = "aws:wafv2/webAclAssociation:WebAclAssociation"
ALLOWED_ENDPOINT_TYPES = {"REGIONAL", "PRIVATE"}
# The CVM's device registration: devices have no credentials yet, so the route is open and
# guarded instead by WAF, throttling and request validation (see `_method_authorization`).
DEFAULT_UNAUTHENTICATED_ROUTES = ["POST /registration"]


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


def _waf_associations(args: StackValidationArgs) -> list[str]:
    return [str(r.props.get("resourceArn") or "") for r in args.resources
            if r.resource_type == WAF_ASSOCIATION]


def _stage_has_waf(stage: PolicyResource, associated: list[str]) -> bool:
    arn = str(stage.props.get("arn") or "")
    fragment = _stage_arn_fragment(stage)
    return bool(stage.props.get("webAclArn")) or \
        any(a == arn or a.endswith(fragment) for a in associated)


def _waf(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    associated = _waf_associations(args)
    for stage in args.resources:
        if stage.resource_type == STAGE and not _stage_has_waf(stage, associated):
            yield f"stage {stage.props.get('stageName')} has no WAF web ACL association", stage.urn


def _throttled(settings: Any) -> bool:
    burst = number(get(settings, "throttlingBurstLimit"))
    rate = number(get(settings, "throttlingRateLimit"))
    return burst is not None and burst > 0 and rate is not None and rate > 0


def throttled_stages(args: StackValidationArgs) -> set[tuple[str, str, str]]:
    """(rest api, stage, method path) triples with throttling limits; `*/*` is every method."""
    throttled: set[tuple[str, str, str]] = set()
    for r in args.resources:
        if r.resource_type == METHOD_SETTINGS and _throttled(r.props.get("settings")):
            throttled.add((str(r.props.get("restApi")), str(r.props.get("stageName")),
                           str(r.props.get("methodPath"))))
        elif r.resource_type == USAGE_PLAN:
            plan_limits = _throttled({"throttlingBurstLimit": get(r.props, "throttleSettings", "burstLimit"),
                                      "throttlingRateLimit": get(r.props, "throttleSettings", "rateLimit")})
            for api_stage in as_list(r.props.get("apiStages")):
                if plan_limits and isinstance(api_stage, Mapping):
                    throttled.add((str(api_stage.get("apiId")), str(api_stage.get("stage")), "*/*"))
    return throttled


def _throttling(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    throttled = {(api, stage) for api, stage, path in throttled_stages(args) if path == "*/*"}
    for r in args.resources:
        if r.resource_type == STAGE:
            key = (str(r.props.get("restApi")), str(r.props.get("stageName")))
            if key not in throttled:
                yield (f"stage {key[1]} has no throttling (method settings */* or usage plan "
                       "limits)", r.urn)
        elif r.resource_type == V2_STAGE and not _throttled(r.props.get("defaultRouteSettings")):
            yield "HTTP/WebSocket stage has no defaultRouteSettings throttling limits", r.urn


def resource_paths(args: StackValidationArgs) -> dict[str, str]:
    """REST API resource id -> its path (`/registration`), rebuilt from pathPart/parentId."""
    by_id = {str(r.props.get("id")): r for r in args.resources
             if r.resource_type == RESOURCE and r.props.get("id")}
    paths: dict[str, str] = {}
    for resource_id in by_id:
        parts, current, seen = [], by_id.get(resource_id), set()
        while current is not None and str(current.props.get("id")) not in seen:
            seen.add(str(current.props.get("id")))
            parts.append(str(current.props.get("pathPart") or ""))
            current = by_id.get(str(current.props.get("parentId")))
        paths[resource_id] = "/" + "/".join(reversed(parts))
    return paths


def _route_key(method: str, path: str) -> str:
    return f"{method.upper()} {path}"


def _method_authorization(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    allowed = {str(r).strip() for r in as_list(config(args, "allowedUnauthenticatedRoutes",
                                                      DEFAULT_UNAUTHENTICATED_ROUTES))}
    paths = resource_paths(args)
    associated = _waf_associations(args)
    throttled = throttled_stages(args)
    stages: dict[str, list[PolicyResource]] = {}
    for r in args.resources:
        if r.resource_type == STAGE:
            stages.setdefault(str(r.props.get("restApi")), []).append(r)
    for method in args.resources:
        if method.resource_type != METHOD:
            continue
        verb = str(method.props.get("httpMethod") or "").upper()
        if str(method.props.get("authorization") or "NONE").upper() != "NONE" or verb == "OPTIONS":
            continue
        path = paths.get(str(method.props.get("resourceId")), "/")
        route = _route_key(verb, path)
        if route not in allowed:
            yield (f"{route} has authorization NONE: anyone can call it (use AWS_IAM, COGNITO_"
                   "USER_POOLS or a CUSTOM authorizer, or list the route in policy config "
                   "`allowedUnauthenticatedRoutes` if it must be open)", method.urn)
            continue
        api = str(method.props.get("restApi"))
        guards = []
        if not method.props.get("requestValidatorId"):
            guards.append("a request validator")
        api_stages = stages.get(api, [])
        if not api_stages or not all(_stage_has_waf(s, associated) for s in api_stages):
            guards.append("a WAF web ACL on every stage")
        method_path = f"{path.lstrip('/')}/{verb}"
        if not api_stages or not all(
                (api, str(s.props.get("stageName")), "*/*") in throttled or
                (api, str(s.props.get("stageName")), method_path) in throttled
                for s in api_stages):
            guards.append("throttling on every stage")
        if guards:
            yield (f"{route} may be open only with a request validator, a WAF web ACL and "
                   f"throttling on every stage; it lacks {', '.join(guards)}", method.urn)


def _v2_route_authorization(args: ResourceValidationArgs) -> Iterator[str]:
    kind = str(args.props.get("authorizationType") or "NONE").upper()
    route = str(args.props.get("routeKey") or "")
    if kind == "NONE" and not route.upper().startswith("OPTIONS "):
        yield (f"route {route!r} has authorizationType NONE: anyone can call it (HTTP APIs take no "
               "WAF, so no unauthenticated exception applies; use JWT, AWS_IAM or CUSTOM)")


ROUTES_SCHEMA = PolicyConfigSchema(properties={
    "allowedUnauthenticatedRoutes": {
        "type": "array", "items": {"type": "string"}, "default": DEFAULT_UNAUTHENTICATED_ROUTES,
        "description": "'METHOD /path' REST routes that may be open (device registration); "
                       "each still needs a request validator, WAF and throttling"},
})

POLICIES: list[Policy] = [
    stack_guardrail(
        "apigateway-method-authorization",
        "REST API methods require authorization; only routes listed in policy config "
        "`allowedUnauthenticatedRoutes` may be open, and only with a request validator, WAF "
        "and throttling",
        ["CKV_AWS_59", "AwsSolutions-APIG4", "AwsSolutions-COG4"], _method_authorization,
        severity=Severity.CRITICAL, config_schema=ROUTES_SCHEMA),
    resource_guardrail(
        "apigatewayv2-route-authorization",
        "HTTP/WebSocket API routes specify an authorization type (not NONE)",
        ["CKV_AWS_309", "Security Hub APIGateway.8"], [V2_ROUTE], _v2_route_authorization,
        severity=Severity.CRITICAL),
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
