"""API Gateway REST APIs as declared: the API, its resources, models, request validator,
methods (validator and models attached), integrations, gateway responses, deployment,
stage (+ method settings), custom domain and base path mapping. moto stores them; the API
Gateway emulation (tools/local/emulation/api_gateway.py) serves requests from what is
stored here. moto assigns its own ids: the resolver learns each one, so a Lambda
permission's source ARN (which names the API id) and a method's validator id resolve."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tools.harness import RecordedResource
from tools.local.emulation.api_gateway import template_problems
from tools.local.materialise import materialiser, not_materialised
from tools.local.materialisers import whole
from tools.local.world import Materialised, World

# Pulumi MethodSettings field -> the stage patch path's leaf (`/<resource>/<method>/<leaf>`).
METHOD_SETTINGS = {
    "throttlingRateLimit": "throttling/rateLimit",
    "throttlingBurstLimit": "throttling/burstLimit",
    "metricsEnabled": "metrics/enabled",
    "loggingLevel": "logging/loglevel",
    "dataTraceEnabled": "logging/dataTrace",
}


def _apigateway(system: World, resource: RecordedResource) -> Any:
    return system.client("apigateway", str(resource.region))


def _made(resource: RecordedResource, physical: str) -> list[Materialised]:
    return [Materialised(resource.type, resource.name, str(resource.region), physical)]


def _types(configuration: Mapping[str, Any] | None) -> list[str]:
    types = (configuration or {}).get("types") or []
    return [types] if isinstance(types, str) else list(types)


@materialiser("aws:apigateway/restApi:RestApi")
def rest_api(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    apigateway = _apigateway(system, resource)
    args: dict[str, Any] = {"name": state["name"], "description": state.get("description") or "",
                            "tags": {str(k): str(v) for k, v in (state.get("tags") or {}).items()},
                            "disableExecuteApiEndpoint": bool(state.get("disableExecuteApiEndpoint"))}
    if _types(state.get("endpointConfiguration")):
        args["endpointConfiguration"] = {"types": _types(state.get("endpointConfiguration"))}
    created = apigateway.create_rest_api(**args)
    root = next(r["id"] for r in apigateway.get_resources(restApiId=created["id"])["items"]
                if r["path"] == "/")
    system.resolver.learn(resource.id, created["id"])
    system.resolver.learn(resource.outputs.get("rootResourceId"), root)
    return _made(resource, created["id"])


@materialiser("aws:apigateway/resource:Resource")
def api_resource(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    created = _apigateway(system, resource).create_resource(
        restApiId=state["restApi"], parentId=state["parentId"], pathPart=state["pathPart"])
    system.resolver.learn(resource.id, created["id"])
    return _made(resource, created["path"])


@materialiser("aws:apigateway/model:Model")
def model(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    created = _apigateway(system, resource).create_model(
        restApiId=state["restApi"], name=state["name"], contentType=state["contentType"],
        schema=state["schema"], description=state.get("description") or "")
    system.resolver.learn(resource.id, created["id"])
    return _made(resource, state["name"])


@materialiser("aws:apigateway/requestValidator:RequestValidator")
def request_validator(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    created = _apigateway(system, resource).create_request_validator(
        restApiId=state["restApi"], name=state["name"],
        validateRequestBody=bool(state.get("validateRequestBody")),
        validateRequestParameters=bool(state.get("validateRequestParameters")))
    system.resolver.learn(resource.id, created["id"])
    return _made(resource, state["name"])


@materialiser("aws:apigateway/method:Method")
def method(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    args: dict[str, Any] = {"restApiId": state["restApi"], "resourceId": state["resourceId"],
                            "httpMethod": state["httpMethod"],
                            "authorizationType": state.get("authorization") or "NONE"}
    if state.get("requestValidatorId"):
        args["requestValidatorId"] = state["requestValidatorId"]
    if state.get("requestModels"):
        args["requestModels"] = dict(state["requestModels"])
    if state.get("requestParameters"):
        args["requestParameters"] = {k: bool(v) for k, v in state["requestParameters"].items()}
    if state.get("apiKeyRequired"):
        args["apiKeyRequired"] = True
    _apigateway(system, resource).put_method(**args)
    return _made(resource, f"{state['httpMethod']} {state['resourceId']}")


@materialiser("aws:apigateway/integration:Integration")
def integration(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    args: dict[str, Any] = {"restApiId": state["restApi"], "resourceId": state["resourceId"],
                            "httpMethod": state["httpMethod"], "type": state["type"],
                            "uri": state.get("uri") or ""}
    if state.get("integrationHttpMethod"):
        args["integrationHttpMethod"] = state["integrationHttpMethod"]
    if state.get("credentials"):
        args["credentials"] = state["credentials"]
    _apigateway(system, resource).put_integration(**args)
    return _made(resource, f"{state['httpMethod']} {state['resourceId']} -> {state['type']}")


@materialiser("aws:apigateway/response:Response")
def gateway_response(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    problems = [p for t in (state.get("responseTemplates") or {}).values() for p in template_problems(t)]
    if problems:  # AWS would send the VTL as text: refuse it here, loudly
        raise ValueError(f"gateway response {state['responseType']}: {'; '.join(problems)}")
    args: dict[str, Any] = {"restApiId": state["restApiId"], "responseType": state["responseType"],
                            "responseTemplates": dict(state.get("responseTemplates") or {}),
                            "responseParameters": dict(state.get("responseParameters") or {})}
    if state.get("statusCode"):
        args["statusCode"] = whole(state["statusCode"])
    _apigateway(system, resource).put_gateway_response(**args)
    return _made(resource, state["responseType"])


@materialiser("aws:apigateway/deployment:Deployment")
def deployment(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    created = _apigateway(system, resource).create_deployment(
        restApiId=state["restApi"], description=state.get("description") or "")
    system.resolver.learn(resource.id, created["id"])
    return _made(resource, created["id"])


@materialiser("aws:apigateway/stage:Stage")
def stage(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    _apigateway(system, resource).create_stage(
        restApiId=state["restApi"], stageName=state["stageName"],
        deploymentId=state["deployment"], tracingEnabled=bool(state.get("xrayTracingEnabled")),
        tags={str(k): str(v) for k, v in (state.get("tags") or {}).items()})
    return _made(resource, state["stageName"])


@materialiser("aws:apigateway/methodSettings:MethodSettings")
def method_settings(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    prefix = "/" + str(state["methodPath"]).strip("/")
    operations = [{"op": "replace", "path": f"{prefix}/{leaf}",
                   "value": str(value).lower() if isinstance(value, bool) else whole(value)}
                  for key, leaf in METHOD_SETTINGS.items()
                  if (value := (state.get("settings") or {}).get(key)) is not None]
    _apigateway(system, resource).update_stage(
        restApiId=state["restApi"], stageName=state["stageName"], patchOperations=operations)
    return _made(resource, f"{state['stageName']} {state['methodPath']}")


@materialiser("aws:apigateway/domainName:DomainName")
def domain_name(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    args: dict[str, Any] = {"domainName": state["domainName"],
                            "tags": {str(k): str(v) for k, v in (state.get("tags") or {}).items()}}
    for key, arg in (("regionalCertificateArn", "regionalCertificateArn"),
                     ("certificateArn", "certificateArn"), ("securityPolicy", "securityPolicy")):
        if state.get(key):
            args[arg] = state[key]
    if _types(state.get("endpointConfiguration")):
        args["endpointConfiguration"] = {"types": _types(state.get("endpointConfiguration"))}
    _apigateway(system, resource).create_domain_name(**args)
    return _made(resource, state["domainName"])


@materialiser("aws:apigateway/basePathMapping:BasePathMapping")
def base_path_mapping(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    args: dict[str, Any] = {"domainName": state["domainName"], "restApiId": state["restApi"]}
    if state.get("stageName"):
        args["stage"] = state["stageName"]
    if state.get("basePath"):
        args["basePath"] = state["basePath"]
    _apigateway(system, resource).create_base_path_mapping(**args)
    return _made(resource, f"{state['domainName']}/{state.get('basePath') or ''}")


not_materialised("aws:apigateway/account:Account",
                 "the account's CloudWatch role for access logs: no access logs are written locally")
not_materialised("aws:wafv2/webAcl:WebAcl",
                 "no WAF locally: requests reach the API Gateway emulation directly")
not_materialised("aws:wafv2/webAclAssociation:WebAclAssociation", "no WAF locally")
not_materialised("aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration",
                 "no WAF locally")
not_materialised("aws:cloudwatch/dashboard:Dashboard", "no metrics locally")

