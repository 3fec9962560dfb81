"""API Gateway: authorization on every route (one configurable, WAF-, throttle- and
validator-guarded device-registration exception), regional endpoints, WAF, request
validation, access logs, throttling, TLS."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    Policy,
    PolicyConfigSchema,
    PolicyResource,
    ResourceValidationArgs,
    Severity,
    StackValidationArgs,
)

from policy.semantics import templates

from . import waf
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
WEB_ACL = "aws:wafv2/webAcl:WebAcl"
REQUEST_VALIDATOR = "aws:apigateway/requestValidator:RequestValidator"
V2_API = "aws:apigatewayv2/api:Api"
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


def _waf_associations(args: StackValidationArgs) -> list[tuple[str, str]]:
    """(associated resource ARN, web ACL ARN) pairs."""
    return [(str(r.props.get("resourceArn") or ""), str(r.props.get("webAclArn") or ""))
            for r in args.resources if r.resource_type == WAF_ASSOCIATION]


def stage_web_acls(stage: PolicyResource, associated: list[tuple[str, str]]) -> list[str]:
    """The web ACL ARNs in front of a REST API stage (by association or the stage's own)."""
    arn = str(stage.props.get("arn") or "")
    fragment = _stage_arn_fragment(stage)
    found = [acl for resource, acl in associated if resource == arn or resource.endswith(fragment)]
    if stage.props.get("webAclArn"):
        found.append(str(stage.props.get("webAclArn")))
    return found


def _waf(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    associated = _waf_associations(args)
    for stage in args.resources:
        if stage.resource_type == STAGE and not stage_web_acls(stage, associated):
            yield f"stage {stage.props.get('stageName')} has no WAF web ACL association", stage.urn


def _throttled(settings: Any) -> bool:
    burst = number(get(settings, "throttlingBurstLimit"))
    rate = number(get(settings, "throttlingRateLimit"))
    return burst is not None and burst > 0 and rate is not None and rate > 0


# --- one model of a REST API's routes, from Method resources and OpenAPI bodies -------------

@dataclass(frozen=True)
class Validation:
    body: bool
    parameters: bool
    declared: bool = True  # False: the validator id names nothing this stack declares


@dataclass(frozen=True)
class Route:
    api: str
    verb: str
    path: str
    open: bool                      # no authorizer (API keys are not authorization)
    validation: Validation | None   # None: no request validator
    api_key_required: bool
    urn: str

    @property
    def key(self) -> str:
        return f"{self.verb} {self.path}"


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


def _validators(args: StackValidationArgs) -> dict[str, Validation]:
    return {str(r.props.get("id")): Validation(truthy(r.props.get("validateRequestBody")),
                                               truthy(r.props.get("validateRequestParameters")))
            for r in args.resources if r.resource_type == REQUEST_VALIDATOR and r.props.get("id")}


_OPENAPI_VERBS = ("get", "put", "post", "delete", "options", "head", "patch",
                  "x-amazon-apigateway-any-method")


def _openapi_authorized(document: Mapping[str, Any], operation: Mapping[str, Any]) -> bool:
    """An operation is authorized by a security requirement naming a scheme that is an
    authorizer (Cognito, Lambda, JWT, IAM), or by `x-amazon-apigateway-auth` AWS_IAM. A plain
    API key scheme is no authorization; an empty requirement `{}` makes auth optional."""
    auth = get(operation, "x-amazon-apigateway-auth", "type")
    if isinstance(auth, str) and auth.upper() == "AWS_IAM":
        return True
    requirements = operation.get("security") if "security" in operation else document.get("security")
    if not isinstance(requirements, Sequence) or isinstance(requirements, str) or not requirements:
        return False
    schemes = {**(get(document, "securityDefinitions") or {}),
               **(get(document, "components", "securitySchemes") or {})}
    for requirement in requirements:
        if not isinstance(requirement, Mapping) or not requirement:
            return False  # an empty requirement admits anonymous callers
        for name in requirement:
            scheme = schemes.get(name) if isinstance(schemes, Mapping) else None
            kind = str(get(scheme, "type") or "").lower()
            authtype = get(scheme, "x-amazon-apigateway-authtype")
            if kind == "apikey" and not authtype and not get(scheme, "x-amazon-apigateway-authorizer"):
                return False  # an API key identifies a plan, not a caller
            if scheme is None:
                return False
    return True


def openapi_routes(document: Mapping[str, Any] | None, api: str, urn: str) -> list[Route]:
    if document is None:
        return []
    paths = document.get("paths")
    if not isinstance(paths, Mapping):
        return []
    validators = document.get("x-amazon-apigateway-request-validators")
    default = document.get("x-amazon-apigateway-request-validator")
    routes = []
    for path, operations in paths.items():
        if not isinstance(operations, Mapping):
            continue
        for verb, operation in operations.items():
            if str(verb).lower() not in _OPENAPI_VERBS or not isinstance(operation, Mapping):
                continue
            name = operation.get("x-amazon-apigateway-request-validator", default)
            validation = None
            if isinstance(name, str) and name:
                spec = get(validators, name)
                validation = Validation(truthy(get(spec, "validateRequestBody")),
                                        truthy(get(spec, "validateRequestParameters")),
                                        declared=isinstance(spec, Mapping))
            label = "ANY" if verb == "x-amazon-apigateway-any-method" else str(verb).upper()
            api_key = any(isinstance(r, Mapping) and any(
                str(get(get(document, "securityDefinitions") or {}, n, "type") or "").lower() == "apikey"
                for n in r) for r in as_list(operation.get("security", document.get("security"))))
            routes.append(Route(api, label, str(path), not _openapi_authorized(document, operation),
                                validation, api_key, urn))
    return routes


def rest_routes(args: StackValidationArgs) -> list[Route]:
    """Every REST API route the stack declares: Method resources and OpenAPI `body`s."""
    paths = resource_paths(args)
    validators = _validators(args)
    routes = []
    for r in args.resources:
        if r.resource_type == METHOD:
            verb = str(r.props.get("httpMethod") or "").upper()
            validator = r.props.get("requestValidatorId")
            validation = None
            if validator:
                validation = validators.get(str(validator), Validation(False, False, declared=False))
            routes.append(Route(str(r.props.get("restApi")), verb,
                                paths.get(str(r.props.get("resourceId")), "/"),
                                str(r.props.get("authorization") or "NONE").upper() == "NONE",
                                validation, truthy(r.props.get("apiKeyRequired")), r.urn))
        elif r.resource_type == REST_API and r.props.get("body"):
            document = templates.load(r.props.get("body"))
            api = str(r.props.get("id") or r.name)
            if document is None:
                routes.append(Route(api, "ANY", "/*", True, None, False, r.urn))  # unreadable: open
            routes.extend(openapi_routes(document, api, r.urn))
    return routes


def validation_problem(route: Route) -> str | None:
    """What is wrong with a route's request validation, or None."""
    if route.validation is None:
        return "no request validator: malformed requests reach the integration"
    if not route.validation.declared:
        return ("its request validator is not declared in this stack, so what it validates "
                "cannot be judged")
    if not (route.validation.body or route.validation.parameters):
        return "its request validator validates neither the body nor the parameters"
    if route.verb in ("POST", "PUT", "PATCH") and route.open and not route.validation.body:
        return "its request validator does not validate the body of this open route"
    return None


def throttled_stages(args: StackValidationArgs) -> set[tuple[str, str, str]]:
    """(rest api, stage, method path) triples with throttling limits; `*/*` is every method.
    A usage plan throttles only requests that carry one of its API keys, so it counts only
    for an API all of whose routes require a key (the others are not throttled by it)."""
    keyed: dict[str, bool] = {}
    for route in rest_routes(args):
        keyed[route.api] = keyed.get(route.api, True) and route.api_key_required
    throttled: set[tuple[str, str, str]] = set()
    for r in args.resources:
        if r.resource_type == METHOD_SETTINGS and _throttled(r.props.get("settings")):
            throttled.add((str(r.props.get("restApi")), str(r.props.get("stageName")),
                           str(r.props.get("methodPath"))))
        elif r.resource_type == USAGE_PLAN:
            plan_limits = _throttled({"throttlingBurstLimit": get(r.props, "throttleSettings", "burstLimit"),
                                      "throttlingRateLimit": get(r.props, "throttleSettings", "rateLimit")})
            for api_stage in as_list(r.props.get("apiStages")):
                api = str(get(api_stage, "apiId"))
                if plan_limits and isinstance(api_stage, Mapping) and keyed.get(api):
                    throttled.add((api, str(api_stage.get("stage")), "*/*"))
    return throttled


def _throttling(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    throttled = {(api, stage) for api, stage, path in throttled_stages(args) if path == "*/*"}
    for r in args.resources:
        if r.resource_type == STAGE:
            key = (str(r.props.get("restApi")), str(r.props.get("stageName")))
            if key not in throttled:
                yield (f"stage {key[1]} has no throttling (method settings */*; a usage plan counts "
                       "only when every route requires an API key, since it throttles only "
                       "requests carrying one)", r.urn)
        elif r.resource_type == V2_STAGE and not _throttled(r.props.get("defaultRouteSettings")):
            yield "HTTP/WebSocket stage has no defaultRouteSettings throttling limits", r.urn


def _request_validation(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    for route in rest_routes(args):
        if route.verb == "OPTIONS":
            continue
        problem = validation_problem(route)
        if problem:
            yield f"{route.key}: {problem}", route.urn


def _method_authorization(args: StackValidationArgs) -> Iterator[tuple[str, str | None]]:
    allowed = {str(r).strip() for r in as_list(config(args, "allowedUnauthenticatedRoutes",
                                                      DEFAULT_UNAUTHENTICATED_ROUTES))}
    associated = _waf_associations(args)
    acls = {str(r.props.get("arn")): r for r in args.resources
            if r.resource_type == WEB_ACL and r.props.get("arn")}
    throttled = throttled_stages(args)
    stages: dict[str, list[PolicyResource]] = {}
    for r in args.resources:
        if r.resource_type == STAGE:
            stages.setdefault(str(r.props.get("restApi")), []).append(r)
    for route in rest_routes(args):
        if not route.open or route.verb == "OPTIONS":
            continue
        if route.key not in allowed:
            yield (f"{route.key} has no authorization: anyone can call it (use AWS_IAM, COGNITO_"
                   "USER_POOLS or a CUSTOM authorizer, or list the route in policy config "
                   "`allowedUnauthenticatedRoutes` if it must be open)", route.urn)
            continue
        guards = []
        problem = validation_problem(route)
        if problem:
            guards.append(f"a request validator that validates the request ({problem})")
        api_stages = stages.get(route.api, [])
        waf_gaps = [gap for s in api_stages for gap in _open_route_waf_gaps(s, associated, acls)]
        if not api_stages or waf_gaps:
            guards.append("a WAF web ACL with a blocking rate-based rule on every stage"
                          + (f" ({'; '.join(dict.fromkeys(waf_gaps))})" if waf_gaps else ""))
        method_path = f"{route.path.lstrip('/')}/{route.verb}"
        if not api_stages or not all(
                (route.api, str(s.props.get("stageName")), "*/*") in throttled or
                (route.api, str(s.props.get("stageName")), method_path) in throttled
                for s in api_stages):
            guards.append("throttling on every stage")
        if guards:
            yield (f"{route.key} may be open only with a request validator, a WAF web ACL and "
                   f"throttling on every stage; it lacks {', '.join(guards)}", route.urn)


def _open_route_waf_gaps(stage: PolicyResource, associated: list[tuple[str, str]],
                         acls: Mapping[str, PolicyResource]) -> list[str]:
    name = stage.props.get("stageName")
    arns = stage_web_acls(stage, associated)
    if not arns:
        return [f"stage {name} has none"]
    gaps = []
    for arn in arns:
        acl = acls.get(arn)
        if acl is None:
            gaps.append(f"stage {name}: web ACL {arn} is not declared in this stack, so its rules "
                        "cannot be judged")
        elif not waf.rate_limits(acl.props):
            gaps.append(f"stage {name}: web ACL has no rate-based rule that blocks")
    return gaps


def _v2_route_authorization(args: ResourceValidationArgs) -> Iterator[str]:
    if args.resource_type == V2_API:
        if args.props.get("target"):
            route = args.props.get("routeKey") or "$default"
            yield (f"quick-create API (target set): AWS creates route {route!r} with no "
                   "authorization; declare routes with an authorizer instead")
        document = templates.load(args.props.get("body")) if args.props.get("body") else None
        if args.props.get("body") and document is None:
            yield "body is not a readable OpenAPI document: its routes cannot be judged"
        for route in openapi_routes(document, "", args.urn):
            if route.open and route.verb != "OPTIONS":
                yield (f"OpenAPI route {route.key} has no security requirement naming an "
                       "authorizer: anyone can call it")
        return
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
        "REST API routes (Method resources and OpenAPI bodies) require authorization; only "
        "routes listed in policy config `allowedUnauthenticatedRoutes` may be open, and only "
        "behind a validator that validates them, a declared WAF web ACL with a blocking "
        "rate-based rule, and throttling, on every stage",
        ["CKV_AWS_59", "AwsSolutions-APIG4", "AwsSolutions-COG4"], _method_authorization,
        severity=Severity.CRITICAL, config_schema=ROUTES_SCHEMA),
    resource_guardrail(
        "apigatewayv2-route-authorization",
        "HTTP/WebSocket API routes specify an authorization type (not NONE); no quick-create "
        "APIs (target + routeKey make an open route); OpenAPI bodies name an authorizer per route",
        ["CKV_AWS_309", "Security Hub APIGateway.8"], [V2_ROUTE, V2_API], _v2_route_authorization,
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
    stack_guardrail(
        "apigateway-request-validation",
        "REST API routes (Method resources and OpenAPI bodies; except OPTIONS) have a declared "
        "request validator that validates the body or the parameters (the body of open "
        "POST/PUT/PATCH routes)",
        ["CKV2_AWS_53", "AwsSolutions-APIG2"], _request_validation,
        severity=Severity.MEDIUM),
    resource_guardrail(
        "apigateway-access-logging",
        "API stages write access logs",
        ["CKV_AWS_76", "CKV_AWS_95", "AwsSolutions-APIG1"], [STAGE, V2_STAGE], _access_logging,
        severity=Severity.MEDIUM),
    stack_guardrail(
        "apigateway-throttling",
        "Every API stage is throttled (method settings */*, or a usage plan when every route "
        "requires an API key; default route settings for HTTP APIs)",
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
