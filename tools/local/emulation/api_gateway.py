"""API Gateway REST APIs: a request in, the declared API's answer out (moto serves no route).

`request(region, method, url, body)` reads only what is stored: the custom domain's base path
mapping (or the API's own execute-api host unless disabled) -> stage -> resource and method
(none: 403 MISSING_AUTHENTICATION_TOKEN); the method's request validator checks the body
against its JSON-schema model (draft 4) and a failure is the BAD_REQUEST_BODY gateway
response, the function not called; an AWS_PROXY integration invokes the function its URI
names through its declared permission (none: 500) with the REST proxy event. Gateway
responses get simple variable substitution only: a template with VTL is refused when it is
stored. Not emulated: throttling, WAF, authorizers, API keys, non-proxy integrations.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jsonschema
from botocore.exceptions import ClientError

from tools.local.emulation import emulation
from tools.local.emulation.lambdas import FunctionNotFound, InvokeDenied, LambdaRuntime
from tools.local.world import World

REST_API_TYPE = "aws:apigateway/restApi:RestApi"
API_GATEWAY_PRINCIPAL = "apigateway.amazonaws.com"
_FUNCTION_IN_URI = re.compile(r":lambda:path/[^/]+/functions/(?P<function>.+)/invocations$")
_EXECUTE_API_HOST = re.compile(r"^(?P<api>[a-z0-9]+)\.execute-api\.(?P<region>[a-z0-9-]+)\.amazonaws\.com$")

# Gateway response type -> default status (API Gateway's defaults; DEFAULT_4XX/5XX apply
# to types without their own response).
RESPONSE_STATUS = {"BAD_REQUEST_BODY": 400, "MISSING_AUTHENTICATION_TOKEN": 403,
                   "ACCESS_DENIED": 403, "INTEGRATION_FAILURE": 504, "API_CONFIGURATION_ERROR": 500}


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: str
    headers: Mapping[str, str] = field(default_factory=dict)
    # What answered: "function <name>" or "gateway <RESPONSE_TYPE>".
    answered_by: str = ""

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class _Route:
    api_id: str
    stage: str
    path: str  # the path inside the API (after the base path)
    domain: str


class GatewayError(Exception):
    """A request API Gateway answers itself (a gateway response)."""

    def __init__(self, response_type: str, message: str, validation_error: str = "") -> None:
        super().__init__(message)
        self.response_type = response_type
        self.message = message
        self.validation_error = validation_error


# `$context` variables a gateway response template may use (simple substitution). AWS's
# messageString is the quoted message; the others are inserted as they are (no escaping is
# documented, so none is done: a value with quotes can break a JSON body, as on AWS).
_VARIABLE = re.compile(r"\$(?:context|stageVariables|method)\.[A-Za-z0-9_.\-]+")
_VTL = re.compile(r"#(?:set|if|else|elseif|end|foreach|macro|include|parse|define|stop|break)\b"
                  r"|\$!|\$\{|\$(?:util|input)\b")


def template_problems(template: str) -> list[str]:
    """VTL AWS would not evaluate in a gateway response (it is sent as text)."""
    return [f"{found!r}: gateway responses get simple variable substitution only, no VTL "
            "(API Gateway developer guide, x-amazon-apigateway-gateway-responses.responseTemplates)"
            for found in sorted(set(_VTL.findall(template)))]


def render_template(template: str, variables: Mapping[str, str]) -> str:
    if template_problems(template):
        raise GatewayError("API_CONFIGURATION_ERROR", "; ".join(template_problems(template)))
    return _VARIABLE.sub(lambda m: variables.get(m.group(0), ""), template)


def _error_text(error: jsonschema.ValidationError) -> str:
    """One failure in the words of API Gateway's validator (json-schema-validator)."""
    value, kind = error.instance, error.validator
    if kind == "required":
        missing = [m for m in error.validator_value if m not in (value or {})]
        return f"object has missing required properties ({json.dumps(missing)})"
    if kind == "additionalProperties":
        allowed = set(error.schema.get("properties") or {})
        extra = sorted(k for k in (value or {}) if k not in allowed)
        return f"object instance has properties which are not allowed by the schema: {json.dumps(extra)}"
    if kind == "type":
        actual = {str: "string", bool: "boolean", int: "integer", float: "number", list: "array",
                  dict: "object", type(None): "null"}.get(type(value), "unknown")
        allowed_types = error.validator_value if isinstance(error.validator_value, list) \
            else [error.validator_value]
        return (f"instance type ({actual}) does not match any allowed primitive type "
                f"(allowed: {json.dumps(allowed_types)})")
    if kind == "pattern":
        return f"ECMA 262 regex {json.dumps(error.validator_value)} does not match input string"
    if kind in ("minLength", "maxLength"):
        bound = "minimum" if kind == "minLength" else "maximum"
        return (f"string is too {'short' if kind == 'minLength' else 'long'} (length: "
                f"{len(value)}, required {bound}: {error.validator_value})")
    return f"instance failed to match {kind} {json.dumps(error.validator_value)}"


def validation_error_string(errors: list[jsonschema.ValidationError]) -> str:
    """API Gateway lists the model's failures in brackets; a failure of a property is
    prefixed with the property's JSON pointer, so the field is named either way."""
    described = []
    for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        where = "/".join(str(p) for p in error.absolute_path)
        text = _error_text(error)
        described.append(f"/{where}: {text}" if where else text)
    return "[" + ", ".join(described) + "]"


class ApiGateway:
    def __init__(self, world: World) -> None:
        self._system = world
        self.requests: list[tuple[str, str, str, int, str]] = []  # region, method, url, status, by

    # -- routing -------------------------------------------------------------------------

    def _route(self, region: str, host: str, path: str) -> _Route:
        apigateway = self._system.client("apigateway", region)
        own = _EXECUTE_API_HOST.match(host)
        if own:
            api = apigateway.get_rest_api(restApiId=own.group("api"))
            if api.get("disableExecuteApiEndpoint"):
                raise GatewayError("ACCESS_DENIED", "Forbidden")
            stage, _, rest = path.lstrip("/").partition("/")
            return _Route(api["id"], stage, "/" + rest, host)
        try:
            mappings = apigateway.get_base_path_mappings(domainName=host).get("items") or []
        except ClientError:
            raise ConnectionRefusedError(f"{host}: no custom domain in {region}") from None
        for mapping in sorted(mappings, key=lambda m: -len(m.get("basePath") or "")):
            base = (mapping.get("basePath") or "(none)")
            prefix = "" if base == "(none)" else "/" + base.strip("/")
            if path == prefix or path.startswith(prefix + "/") or not prefix:
                return _Route(mapping["restApiId"], mapping["stage"],
                              path[len(prefix):] or "/", host)
        raise GatewayError("MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token")

    # -- the request ---------------------------------------------------------------------

    def request(self, region: str, method: str, url: str, body: str | None = None,
                headers: Mapping[str, str] | None = None) -> HttpResponse:
        parts = urlsplit(url)
        host, path = parts.hostname or "", parts.path or "/"
        headers = {"Content-Type": "application/json", **(headers or {})}
        try:
            route = self._route(region, host, path)
        except GatewayError as error:
            return self._record(region, method, url, self._gateway_response(
                region, None, error))
        try:
            response = self._serve(region, route, method.upper(), body, headers,
                                   dict(parse_qsl(parts.query)))
        except GatewayError as error:
            response = self._gateway_response(region, route.api_id, error)
        return self._record(region, method, url, response)

    def _record(self, region: str, method: str, url: str, response: HttpResponse) -> HttpResponse:
        self.requests.append((region, method, url, response.status, response.answered_by))
        return response

    def _serve(self, region: str, route: _Route, method: str, body: str | None,
               headers: Mapping[str, str], query: Mapping[str, str]) -> HttpResponse:
        apigateway = self._system.client("apigateway", region)
        apigateway.get_stage(restApiId=route.api_id, stageName=route.stage)
        resources = apigateway.get_resources(restApiId=route.api_id, limit=500)["items"]
        resource = next((r for r in resources if r["path"] == route.path), None)
        if resource is None or method not in (resource.get("resourceMethods") or {}):
            raise GatewayError("MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token")
        declared = apigateway.get_method(restApiId=route.api_id, resourceId=resource["id"],
                                         httpMethod=method)
        self._validate(apigateway, route.api_id, declared, body, headers)
        integration = declared.get("methodIntegration") or apigateway.get_integration(
            restApiId=route.api_id, resourceId=resource["id"], httpMethod=method)
        if integration.get("type") != "AWS_PROXY":
            raise GatewayError("API_CONFIGURATION_ERROR",
                               f"the local API Gateway runs AWS_PROXY integrations only, not "
                               f"{integration.get('type')}")
        found = _FUNCTION_IN_URI.search(integration.get("uri") or "")
        if found is None:
            raise GatewayError("API_CONFIGURATION_ERROR", "integration URI names no function")
        account = self._account(region)
        source_arn = (f"arn:aws:execute-api:{region}:{account}:{route.api_id}/{route.stage}/"
                      f"{method}{route.path}")
        event = self._proxy_event(region, route, resource, method, body, headers, query, account)
        runtime = self._system.emulation(LambdaRuntime)
        try:
            answer = runtime.invoke_as_service(found.group("function"), event,
                                               principal=API_GATEWAY_PRINCIPAL,
                                               source_arn=source_arn, source_account=account)
        except (InvokeDenied, FunctionNotFound) as error:
            # "Execution failed due to configuration error: Invalid permissions on Lambda
            # function" -> 500 Internal server error.
            raise GatewayError("API_CONFIGURATION_ERROR", "Internal server error",
                               str(error)) from None
        except Exception as error:  # the function crashed: Lambda's error, API Gateway's 502
            return HttpResponse(502, json.dumps({"message": "Internal server error"}),
                                {"Content-Type": "application/json"},
                                f"function error {type(error).__name__}")
        return self._proxy_response(answer, found.group("function"))

    def _validate(self, apigateway: Any, api_id: str, declared: Mapping[str, Any],
                  body: str | None, headers: Mapping[str, str]) -> None:
        validator_id = declared.get("requestValidatorId")
        if not validator_id:
            return
        validator = apigateway.get_request_validator(restApiId=api_id,
                                                     requestValidatorId=validator_id)
        models = declared.get("requestModels") or {}
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"),
                            "application/json").split(";")[0].strip()
        model_name = models.get(content_type) or models.get("$default")
        if not validator.get("validateRequestBody") or not model_name:
            return
        schema = json.loads(apigateway.get_model(restApiId=api_id, modelName=model_name,
                                                 flatten=True)["schema"])
        try:
            document = json.loads(body or "")
        except json.JSONDecodeError as error:
            raise GatewayError("BAD_REQUEST_BODY", "Invalid request body",
                               f"[Invalid JSON: {error.msg}]") from None
        errors = list(jsonschema.Draft4Validator(schema).iter_errors(document))
        if errors:
            raise GatewayError("BAD_REQUEST_BODY", "Invalid request body",
                               validation_error_string(errors))

    def _account(self, region: str) -> str:
        return str(self._system.client("sts", region).get_caller_identity()["Account"])

    @staticmethod
    def _proxy_event(region: str, route: _Route, resource: Mapping[str, Any], method: str,
                     body: str | None, headers: Mapping[str, str], query: Mapping[str, str],
                     account: str) -> dict[str, Any]:
        """The REST API proxy event (payload 1.0) as the stage delivers it."""
        return {
            "resource": resource["path"], "path": route.path, "httpMethod": method,
            "headers": dict(headers), "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": dict(query) or None,
            "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} or None,
            "pathParameters": None, "stageVariables": None,
            "requestContext": {
                "resourceId": resource["id"], "resourcePath": resource["path"],
                "httpMethod": method, "stage": route.stage, "path": route.path,
                "requestId": str(uuid.uuid4()), "accountId": account, "apiId": route.api_id,
                "identity": {"sourceIp": "127.0.0.1", "userAgent": "tools.local"},
                "protocol": "HTTP/1.1", "requestTimeEpoch": int(time.time() * 1000),
                "domainName": route.domain},
            "body": body, "isBase64Encoded": False,
        }

    @staticmethod
    def _proxy_response(answer: Any, function: str) -> HttpResponse:
        name = function.rsplit(":", 1)[-1]
        if not isinstance(answer, Mapping) or not isinstance(answer.get("statusCode"), int):
            return HttpResponse(502, json.dumps({"message": "Internal server error"}),
                                {"Content-Type": "application/json"},
                                f"function {name} (malformed proxy response)")
        body = answer.get("body") or ""
        if answer.get("isBase64Encoded"):
            body = base64.b64decode(body).decode("utf-8", "replace")
        headers = {str(k): str(v) for k, v in (answer.get("headers") or {}).items()}
        return HttpResponse(int(answer["statusCode"]), str(body), headers, f"function {name}")

    def _gateway_response(self, region: str, api_id: str | None,
                          error: GatewayError) -> HttpResponse:
        status = RESPONSE_STATUS.get(error.response_type, 500)
        fallback = "DEFAULT_4XX" if status < 500 else "DEFAULT_5XX"
        declared: dict[str, Any] = {}
        if api_id is not None:
            apigateway = self._system.client("apigateway", region)
            stored = {r["responseType"]: r for r in apigateway.get_gateway_responses(
                restApiId=api_id).get("items") or []}
            declared = stored.get(error.response_type) or stored.get(fallback) or {}
        template = (declared.get("responseTemplates") or {}).get("application/json")
        variables = {"$context.error.message": error.message,
                     "$context.error.messageString": json.dumps(error.message),
                     "$context.error.responseType": error.response_type,
                     "$context.error.validationErrorString": error.validation_error}
        body = json.dumps({"message": error.message}) if template is None else \
            render_template(template, variables)
        if declared.get("statusCode") and declared.get("responseType") == error.response_type:
            status = int(declared["statusCode"])
        return HttpResponse(status, body, {"Content-Type": "application/json"},
                            f"gateway {error.response_type}"
                            + (f" ({error.validation_error})" if error.validation_error
                               and status >= 500 else ""))

    # -- lifecycle -----------------------------------------------------------------------

    def describe(self) -> str:
        return ("API Gateway: REST APIs served from the stored routes (custom domain, request "
                "validator + JSON-schema model, AWS_PROXY under the declared permission)")

    def stop(self) -> None:
        pass


@emulation("api_gateway")
def start(world: World) -> ApiGateway | None:
    return ApiGateway(world) if world.declared(REST_API_TYPE) else None
