"""API Gateway REST APIs served from what is stored in moto (docs/emulation.md, "API Gateway"):
custom domain or execute-api host -> stage -> route; the request validator and its model;
AWS_PROXY to the function under its declared permission; gateway responses with simple
variable substitution. Not emulated: throttling, WAF, authorizers, API keys, other
integrations."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jsonschema
from botocore.exceptions import ClientError

from tools.local.emulation import emulation
from tools.local.emulation.lambdas import FunctionNotFound, InvokeDenied, LambdaRuntime
from tools.local.http_servers import LocalServer, reply
from tools.local.world import World

_FUNCTION_IN_URI = re.compile(r":lambda:path/[^/]+/functions/(?P<function>.+)/invocations$")
_EXECUTE_API_HOST = re.compile(r"^(?P<api>[a-z0-9]+)\.execute-api\.[a-z0-9-]+\.amazonaws\.com$")
# Response type -> API Gateway's status (DEFAULT_4XX/5XX answer for types without their own).
RESPONSE_STATUS = {"BAD_REQUEST_BODY": 400, "MISSING_AUTHENTICATION_TOKEN": 403,
                   "ACCESS_DENIED": 403, "INTEGRATION_FAILURE": 504, "API_CONFIGURATION_ERROR": 500}
# Gateway-response templates get variables substituted as they are (messageString is the
# quoted message); AWS documents no escaping, so none is done.
_VARIABLE = re.compile(r"\$(?:context|stageVariables|method)\.[A-Za-z0-9_.\-]+")
_VTL = re.compile(r"#(?:set|if|else|elseif|end|foreach|macro|include|parse|define|stop|break)\b"
                  r"|\$!|\$\{|\$(?:util|input)\b")


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: str
    headers: Mapping[str, str] = field(default_factory=dict)
    answered_by: str = ""  # "function <name>" or "gateway <RESPONSE_TYPE>"

    def json(self) -> Any:
        return json.loads(self.body)


class GatewayError(Exception):
    """A request API Gateway answers itself (a gateway response)."""

    def __init__(self, response_type: str, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.response_type, self.message, self.detail = response_type, message, detail


def template_problems(template: str) -> list[str]:
    """VTL AWS would not evaluate in a gateway response (it would be sent as text)."""
    return [f"{found!r}: gateway responses get simple variable substitution only, no VTL "
            "(API Gateway developer guide, x-amazon-apigateway-gateway-responses.responseTemplates)"
            for found in sorted(set(_VTL.findall(template)))]


def render_template(template: str, variables: Mapping[str, str]) -> str:
    if template_problems(template):
        raise GatewayError("API_CONFIGURATION_ERROR", "; ".join(template_problems(template)))
    return _VARIABLE.sub(lambda m: variables.get(m.group(0), ""), template)


def validation_error_string(errors: list[jsonschema.ValidationError]) -> str:
    """The model's failures, each with the property's JSON pointer (AWS's wording is
    json-schema-validator's; the field is named either way)."""
    return "[" + ", ".join(f"/{'/'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in
                           sorted(errors, key=lambda e: [str(p) for p in e.absolute_path])) + "]"


class ApiGateway:
    def __init__(self, world: World) -> None:
        self._world = world
        self._servers: dict[tuple[str, str], LocalServer] = {}

    def serve(self, region: str, host: str) -> str:
        """A plain-HTTP listener on 127.0.0.1 (a free port) for the API behind `host` (a custom
        domain or an execute-api host) in `region`, for a person's `curl` (`--keep`): each
        request goes through `request` as if sent to https://<host><path>. Not TLS: the real
        domain's certificate is ACM's, which the local run does not have."""
        if (region, host) not in self._servers:
            def forward(request: BaseHTTPRequestHandler) -> None:
                length = int(request.headers.get("Content-Length") or 0)
                body = request.rfile.read(length).decode("utf-8", "replace") if length else None
                answer = self.request(region, request.command, f"https://{host}{request.path}", body,
                                      {k: v for k, v in request.headers.items()
                                       if k.lower() not in ("host", "content-length")})
                reply(request, answer.status, answer.body.encode(), answer.headers)

            self._servers[(region, host)] = LocalServer(f"api-gateway-{region}", forward,
                                                        ("GET", "POST", "PUT", "DELETE", "PATCH"))
        return self._servers[(region, host)].url

    def request(self, region: str, method: str, url: str, body: str | None = None,
                headers: Mapping[str, str] | None = None) -> HttpResponse:
        parts, api_id = urlsplit(url), None
        headers = {"Content-Type": "application/json", **(headers or {})}
        try:
            api_id, stage, path = self._route(region, parts.hostname or "", parts.path or "/")
            return self._serve(region, api_id, stage, path, parts.hostname or "", method.upper(), body,
                               headers, dict(parse_qsl(parts.query)))
        except GatewayError as error:
            return self._gateway_response(region, api_id, error)

    def _route(self, region: str, host: str, path: str) -> tuple[str, str, str]:
        apigateway = self._world.client("apigateway", region)
        own = _EXECUTE_API_HOST.match(host)
        if own:
            if apigateway.get_rest_api(restApiId=own.group("api")).get("disableExecuteApiEndpoint"):
                raise GatewayError("ACCESS_DENIED", "Forbidden")
            stage, _, rest = path.lstrip("/").partition("/")
            return own.group("api"), stage, "/" + rest
        try:
            mappings = apigateway.get_base_path_mappings(domainName=host).get("items") or []
        except ClientError:
            raise ConnectionRefusedError(f"{host}: no custom domain in {region}") from None
        for mapping in sorted(mappings, key=lambda m: -len(m.get("basePath") or "")):
            prefix = "" if (mapping.get("basePath") or "(none)") == "(none)" else "/" + mapping["basePath"].strip("/")
            if not prefix or path == prefix or path.startswith(prefix + "/"):
                return mapping["restApiId"], mapping["stage"], path[len(prefix):] or "/"
        raise GatewayError("MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token")

    def _serve(self, region: str, api_id: str, stage: str, path: str, host: str, method: str,
               body: str | None, headers: Mapping[str, str], query: Mapping[str, str]) -> HttpResponse:
        apigateway = self._world.client("apigateway", region)
        apigateway.get_stage(restApiId=api_id, stageName=stage)
        resource = next((r for r in apigateway.get_resources(restApiId=api_id, limit=500)["items"]
                         if r["path"] == path and method in (r.get("resourceMethods") or {})), None)
        if resource is None:
            raise GatewayError("MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token")
        declared = apigateway.get_method(restApiId=api_id, resourceId=resource["id"], httpMethod=method)
        self._validate(apigateway, api_id, declared, body, headers)
        integration = declared.get("methodIntegration") or apigateway.get_integration(
            restApiId=api_id, resourceId=resource["id"], httpMethod=method)
        found = _FUNCTION_IN_URI.search(integration.get("uri") or "")
        if integration.get("type") != "AWS_PROXY" or found is None:
            raise GatewayError("API_CONFIGURATION_ERROR", "only AWS_PROXY to a function is served "
                                                          f"locally, not {integration.get('type')}")
        account = self._world.account
        event = {"resource": resource["path"], "path": path, "httpMethod": method,
                 "headers": dict(headers), "multiValueHeaders": {k: [v] for k, v in headers.items()},
                 "queryStringParameters": dict(query) or None,
                 "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} or None,
                 "pathParameters": None, "stageVariables": None, "body": body, "isBase64Encoded": False,
                 "requestContext": {"resourceId": resource["id"], "resourcePath": resource["path"],
                                    "httpMethod": method, "stage": stage, "path": path, "apiId": api_id,
                                    "requestId": str(uuid.uuid4()), "accountId": account,
                                    "identity": {"sourceIp": "127.0.0.1", "userAgent": "tools.local"},
                                    "protocol": "HTTP/1.1", "requestTimeEpoch": int(time.time() * 1000),
                                    "domainName": host}}
        name = found.group("function").rsplit(":", 1)[-1]
        try:
            answer = self._world.emulation(LambdaRuntime).invoke_as_service(
                found.group("function"), event, principal="apigateway.amazonaws.com", source_account=account,
                source_arn=f"arn:aws:execute-api:{region}:{account}:{api_id}/{stage}/{method}{path}")
        except (InvokeDenied, FunctionNotFound) as error:  # "Invalid permissions on Lambda function"
            raise GatewayError("API_CONFIGURATION_ERROR", "Internal server error", str(error)) from None
        except Exception as error:  # the function failed: API Gateway's 502
            answer = {"failed": f"{type(error).__name__}: {error}"}
        if not isinstance(answer, Mapping) or not isinstance(answer.get("statusCode"), int):
            return HttpResponse(502, json.dumps({"message": "Internal server error"}),
                                {"Content-Type": "application/json"}, f"function {name} (no proxy response)")
        text = str(answer.get("body") or "")
        if answer.get("isBase64Encoded"):
            text = base64.b64decode(text).decode("utf-8", "replace")
        return HttpResponse(int(answer["statusCode"]), text, {str(k): str(v) for k, v in (
            answer.get("headers") or {}).items()}, f"function {name}")

    @staticmethod
    def _validate(apigateway: Any, api_id: str, declared: Mapping[str, Any], body: str | None,
                  headers: Mapping[str, str]) -> None:
        if not declared.get("requestValidatorId"):
            return
        validator = apigateway.get_request_validator(restApiId=api_id,
                                                     requestValidatorId=declared["requestValidatorId"])
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"),
                            "application/json").split(";")[0].strip()
        models = declared.get("requestModels") or {}
        model = models.get(content_type) or models.get("$default")
        if not validator.get("validateRequestBody") or not model:
            return
        schema = json.loads(apigateway.get_model(restApiId=api_id, modelName=model, flatten=True)["schema"])
        try:
            errors = list(jsonschema.Draft4Validator(schema).iter_errors(json.loads(body or "")))
        except json.JSONDecodeError as error:
            raise GatewayError("BAD_REQUEST_BODY", "Invalid request body", f"[Invalid JSON: {error.msg}]") from None
        if errors:
            raise GatewayError("BAD_REQUEST_BODY", "Invalid request body", validation_error_string(errors))

    def _gateway_response(self, region: str, api_id: str | None, error: GatewayError) -> HttpResponse:
        status = RESPONSE_STATUS.get(error.response_type, 500)
        stored = {} if api_id is None else {r["responseType"]: r for r in self._world.client(
            "apigateway", region).get_gateway_responses(restApiId=api_id).get("items") or []}
        declared = stored.get(error.response_type) or stored.get("DEFAULT_4XX" if status < 500 else "DEFAULT_5XX") or {}
        template = (declared.get("responseTemplates") or {}).get("application/json")
        body = json.dumps({"message": error.message}) if template is None else render_template(template, {
            "$context.error.message": error.message, "$context.error.messageString": json.dumps(error.message),
            "$context.error.responseType": error.response_type,
            "$context.error.validationErrorString": error.detail})
        if declared.get("statusCode") and declared.get("responseType") == error.response_type:
            status = int(declared["statusCode"])
        return HttpResponse(status, body, {"Content-Type": "application/json"}, f"gateway {error.response_type}"
                            + (f" ({error.detail})" if error.detail and status >= 500 else ""))

    def describe(self) -> str:
        return ("API Gateway: REST APIs served from the stored routes (custom domain, request "
                "validator + JSON-schema model, AWS_PROXY under the declared permission)")

    def stop(self) -> None:
        for server in self._servers.values():
            server.stop()
        self._servers.clear()


@emulation("api_gateway")
def start(world: World) -> ApiGateway | None:
    return ApiGateway(world) if world.declared("aws:apigateway/restApi:RestApi") else None
