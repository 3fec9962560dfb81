"""The AWS endpoints the browser calls, for every region of the run, on one local port:
`http://127.0.0.1:<port>/<region>/<service>/...` with service cognito-idp, cognito-identity,
iot or dynamodb (the site's config.json points there).

Cognito's user pool is moto's (passed through), with what moto lacks or is kinder about:
RevokeToken (moto has none; a revoked refresh token is refused afterwards), and the app
client's allowed auth flows. The identity pool is emulated from the declared one: an
unauthenticated GetId is refused (the pool allows no guests), the login must be this
region's pool with an unexpired ID token for the declared app client, the role comes from the
declared Token mapping (`IdentityPoolEmulation.role_for`, CustomRoleArn as AWS documents), and
each call gets its own temporary credentials (moto hands everyone the same static ones).
AWS IoT's CreateProvisioningClaim and DynamoDB check the request's SigV4 signature against
those credentials, then the chosen role's declared policy (DynamoDB with
`dynamodb:LeadingKeys`), before the fleet emulation or moto answer.

CORS: only the site's origin is answered (AWS answers any origin; a stricter reading), with
the headers the AWS SDKs send. `take_down(region)` makes a region answer 503 to everything,
as an unavailable region would.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import json
import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

import jwt

from tools.harness import ACCOUNT_ID, PARTITION
from tools.local.emulation.fleet_provisioning import (
    AccessDenied,
    DeclaredFleet,
    FleetProvisioning,
    IdentityPoolEmulation,
    Rejected,
)
from tools.local.emulation.policy_eval import allowed
from tools.local.installer_web.servers import HOST, LocalServer, QuietHandler
from tools.local.installer_web.sigv4 import SignatureRejected, verify
from tools.local.system import LocalSystem

SERVICES = ("cognito-idp", "cognito-identity", "iot", "dynamodb")
CREDENTIAL_LIFETIME = dt.timedelta(hours=1)  # GetCredentialsForIdentity: one hour
CLAIM_PATH = re.compile(r"^/provisioning-templates/(?P<name>[^/]+)/provisioning-claim$")
# InitiateAuth AuthFlow -> the app-client flow that must allow it.
AUTH_FLOWS = {"USER_SRP_AUTH": "ALLOW_USER_SRP_AUTH", "REFRESH_TOKEN_AUTH": "ALLOW_REFRESH_TOKEN_AUTH",
              "REFRESH_TOKEN": "ALLOW_REFRESH_TOKEN_AUTH", "USER_PASSWORD_AUTH": "ALLOW_USER_PASSWORD_AUTH",
              "CUSTOM_AUTH": "ALLOW_CUSTOM_AUTH"}


class AwsFault(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Issued:
    region: str
    role_arn: str
    secret: str
    token: str
    expires: dt.datetime


@dataclass
class RegionEndpoint:
    region: str
    declared: DeclaredFleet
    pool_id: str
    client_id: str
    identity_pool_id: str
    client_flows: tuple[str, ...]
    token_revocation: bool

    @property
    def provider(self) -> str:
        return f"cognito-idp.{self.region}.amazonaws.com/{self.pool_id}"


@dataclass
class Call:
    region: str
    service: str
    operation: str
    status: int
    origin: str


@dataclass
class Gateway:
    system: LocalSystem
    fleet: FleetProvisioning
    allowed_origin: str = ""
    down: set[str] = field(default_factory=set)
    calls: list[Call] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)  # (region, response) of each claim
    _issued: dict[str, Issued] = field(default_factory=dict)
    _revoked: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: LocalServer | None = None

    def __post_init__(self) -> None:
        self.regions: dict[str, RegionEndpoint] = {}
        for region, emulator in self.fleet.emulators.items():
            declared = emulator.declared
            client = self.system.state(declared.user_pool_client)
            self.regions[region] = RegionEndpoint(
                region=region, declared=declared,
                pool_id=self.system.resolver(declared.user_pool.id),
                client_id=self.system.resolver(declared.user_pool_client.id),
                identity_pool_id=self.system.resolver(declared.identity_pool.id),
                client_flows=tuple(client.get("explicitAuthFlows") or ()),
                token_revocation=bool(client.get("enableTokenRevocation")))

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> str:
        gateway = self

        class Handler(QuietHandler):
            def do_OPTIONS(self) -> None:  # noqa: N802 (stdlib name)
                gateway._preflight(self)

            def do_POST(self) -> None:  # noqa: N802
                gateway._handle(self)

            do_GET = do_POST  # noqa: N815

        self._server = LocalServer(Handler, "installer-web-gateway")
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.url

    def endpoint(self, region: str, service: str) -> str:
        return f"{self.url}/{region}/{service}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def take_down(self, region: str) -> None:
        self.down.add(region)

    def bring_up(self, region: str) -> None:
        self.down.discard(region)

    # -- HTTP --------------------------------------------------------------------------------

    def _cors(self, request: BaseHTTPRequestHandler) -> dict[str, str]:
        origin = request.headers.get("Origin")
        if origin and origin == self.allowed_origin:
            return {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
                    "Access-Control-Expose-Headers": "x-amzn-errortype, x-amzn-requestid, date"}
        return {}

    def _preflight(self, request: BaseHTTPRequestHandler) -> None:
        headers = self._cors(request)
        if headers:
            headers.update({
                "Access-Control-Allow-Methods": "GET, POST",
                "Access-Control-Allow-Headers": request.headers.get(
                    "Access-Control-Request-Headers", ""),
                "Access-Control-Max-Age": "600"})
        self._send(request, 204 if headers else 403, b"", headers)

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, body: bytes,
              headers: Mapping[str, str], content_type: str = "application/x-amz-json-1.1") -> None:
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        if body:
            request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        segments = parts.path.split("/", 3)
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        cors = self._cors(request)
        region = segments[1] if len(segments) > 1 else ""
        service = segments[2] if len(segments) > 2 else ""
        rest = "/" + (segments[3] if len(segments) > 3 else "")
        operation = (request.headers.get("X-Amz-Target") or "").rpartition(".")[2] or rest
        try:
            if region not in self.regions or service not in SERVICES:
                raise AwsFault(404, "UnknownOperationException", f"no endpoint {parts.path}")
            if region in self.down:
                raise AwsFault(503, "ServiceUnavailableException",
                               f"{region} is unavailable (taken down by the local run)")
            status, answer, content_type = self._dispatch(
                self.regions[region], service, rest, request, parts.path, parts.query, body)
        except AwsFault as fault:
            status, content_type = fault.status, "application/x-amz-json-1.1"
            answer = json.dumps({"__type": fault.code, "message": fault.message}).encode()
            cors = {**cors, "x-amzn-ErrorType": fault.code}
        with self._lock:
            self.calls.append(Call(region, service, operation, status,
                                   request.headers.get("Origin") or ""))
        self._send(request, status, answer, cors, content_type)

    def _dispatch(self, end: RegionEndpoint, service: str, rest: str,
                  request: BaseHTTPRequestHandler, path: str, query: str,
                  body: bytes) -> tuple[int, bytes, str]:
        if service == "cognito-idp":
            return self._user_pool(end, request, body)
        if service == "cognito-identity":
            return 200, json.dumps(self._identity(end, request, body)).encode(), \
                "application/x-amz-json-1.1"
        issued = self._signed(end, service, request, path, query, body)
        if service == "iot":
            return 200, json.dumps(self._claim(end, issued, rest, request.command)).encode(), \
                "application/json"
        return self._dynamodb(end, issued, request, body)

    # -- Cognito user pool (moto, plus what it lacks) -----------------------------------------

    def _user_pool(self, end: RegionEndpoint, request: BaseHTTPRequestHandler,
                   body: bytes) -> tuple[int, bytes, str]:
        target = request.headers.get("X-Amz-Target") or ""
        operation = target.rpartition(".")[2]
        payload = json.loads(body or b"{}")
        if operation in ("InitiateAuth", "RespondToAuthChallenge", "RevokeToken") \
                and payload.get("ClientId") != end.client_id:
            raise AwsFault(400, "ResourceNotFoundException", "User pool client does not exist.")
        if operation == "InitiateAuth":
            flow = str(payload.get("AuthFlow"))
            if AUTH_FLOWS.get(flow) not in end.client_flows:
                raise AwsFault(400, "InvalidParameterException",
                               f"Auth flow {flow} is not enabled for this client.")
            if flow.startswith("REFRESH_TOKEN") and \
                    (payload.get("AuthParameters") or {}).get("REFRESH_TOKEN") in self._revoked:
                raise AwsFault(400, "NotAuthorizedException", "Refresh Token has been revoked")
        if operation == "RespondToAuthChallenge":
            # The SRP libraries answer every challenge for USER_ID_FOR_SRP, which moto sets to
            # the user's sub (Cognito: the user name) and then cannot find: answer for the user
            # it means.
            responses = payload.get("ChallengeResponses") or {}
            found = self.system.client("cognito-idp", end.region).list_users(
                UserPoolId=end.pool_id, Filter=f'sub = "{responses.get("USERNAME", "")}"',
                Limit=1)["Users"]
            if found:
                responses["USERNAME"] = found[0]["Username"]
                body = json.dumps(payload).encode()
        if operation == "RevokeToken":  # moto has no RevokeToken
            if not end.token_revocation:
                raise AwsFault(400, "UnsupportedTokenTypeException",
                               "token revocation is not enabled for this client")
            with self._lock:
                self._revoked.add(str(payload.get("Token")))
            return 200, b"{}", "application/x-amz-json-1.1"
        status, answer, content_type = self._to_moto("cognito-idp", end.region, request, body)
        if status == 200 and operation in ("InitiateAuth", "RespondToAuthChallenge"):
            answer = self._complete_challenge(end, answer)
        return status, answer, content_type

    def _complete_challenge(self, end: RegionEndpoint, answer: bytes) -> bytes:
        """Cognito's NEW_PASSWORD_REQUIRED challenge carries the user's attributes and the
        required ones (RespondToAuthChallenge, "NEW_PASSWORD_REQUIRED"); moto's carries
        neither, and the SRP libraries parse both."""
        response = json.loads(answer)
        parameters = response.get("ChallengeParameters") or {}
        if response.get("ChallengeName") != "NEW_PASSWORD_REQUIRED" or "userAttributes" in parameters:
            return answer
        user = self.system.client("cognito-idp", end.region).admin_get_user(
            UserPoolId=end.pool_id, Username=parameters.get("USERNAME", ""))
        attributes = {a["Name"]: a["Value"] for a in user.get("UserAttributes", [])
                      if a["Name"] != "sub"}
        parameters.update({"userAttributes": json.dumps(attributes), "requiredAttributes": "[]"})
        response["ChallengeParameters"] = parameters
        return json.dumps(response).encode()

    def _to_moto(self, service: str, region: str, request: BaseHTTPRequestHandler,
                 body: bytes) -> tuple[int, bytes, str]:
        endpoint = urlsplit(self.system.endpoint)
        connection = http.client.HTTPConnection(endpoint.hostname or HOST, endpoint.port, timeout=30)
        headers = {name: value for name, value in request.headers.items()
                   if name.lower() in ("content-type", "x-amz-target", "authorization",
                                       "x-amz-date", "x-amz-security-token")}
        headers["Host"] = f"{service}.{region}.amazonaws.com"
        try:
            connection.request("POST", "/", body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            return response.status, answer, response.getheader("Content-Type") or \
                "application/x-amz-json-1.1"
        finally:
            connection.close()

    # -- Cognito identity pool (emulated from the declared pool) ------------------------------

    def _login(self, end: RegionEndpoint, payload: Mapping[str, Any]) -> str | None:
        logins = payload.get("Logins") or {}
        if not logins:
            return None
        if set(logins) != {end.provider}:
            raise AwsFault(400, "NotAuthorizedException",
                           f"Invalid login provider {', '.join(logins)}: this identity pool "
                           f"trusts {end.provider}")
        token = str(logins[end.provider])
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise AwsFault(400, "NotAuthorizedException", "Invalid login token.") from None
        if claims.get("iss") != f"https://{end.provider}" or claims.get("token_use") != "id" \
                or claims.get("aud") != end.client_id:
            raise AwsFault(400, "NotAuthorizedException",
                           "Invalid login token: not an ID token of this pool's app client.")
        if float(claims.get("exp") or 0) < time.time():
            raise AwsFault(400, "NotAuthorizedException", "Invalid login token. Token expired.")
        return token

    def _identity(self, end: RegionEndpoint, request: BaseHTTPRequestHandler,
                  body: bytes) -> dict[str, Any]:
        operation = (request.headers.get("X-Amz-Target") or "").rpartition(".")[2]
        payload = json.loads(body or b"{}")
        declared_pool = self.system.state(end.declared.identity_pool)
        if payload.get("IdentityPoolId") not in (None, end.identity_pool_id):
            raise AwsFault(400, "ResourceNotFoundException", "IdentityPool not found")
        token = self._login(end, payload)
        if token is None and not declared_pool.get("allowUnauthenticatedIdentities"):
            raise AwsFault(400, "NotAuthorizedException",
                           "Unauthenticated access is not supported for this identity pool.")
        moto = self.system.client("cognito-identity", end.region)
        if operation == "GetId":
            return {"IdentityId": moto.get_id(IdentityPoolId=end.identity_pool_id,
                                              Logins=payload["Logins"])["IdentityId"]}
        if operation != "GetCredentialsForIdentity":
            raise AwsFault(400, "UnknownOperationException", f"{operation} is not emulated")
        assert token is not None
        try:
            role = IdentityPoolEmulation(end.declared).role_for(token, payload.get("CustomRoleArn"))
        except AccessDenied as denied:
            raise AwsFault(400, "NotAuthorizedException", str(denied)) from None
        key = "ASIA" + "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))
        issued = Issued(end.region, str(role.outputs["arn"]), secrets.token_urlsafe(30)[:40],
                        base64.b64encode(secrets.token_bytes(48)).decode(),
                        dt.datetime.now(dt.timezone.utc) + CREDENTIAL_LIFETIME)
        with self._lock:
            self._issued[key] = issued
        return {"IdentityId": payload.get("IdentityId"), "Credentials": {
            "AccessKeyId": key, "SecretKey": issued.secret, "SessionToken": issued.token,
            "Expiration": issued.expires.timestamp()}}

    # -- signed calls ------------------------------------------------------------------------

    def _signed(self, end: RegionEndpoint, service: str, request: BaseHTTPRequestHandler,
                path: str, query: str, body: bytes) -> Issued:
        headers = {name.lower(): value for name, value in request.headers.items()}
        now = dt.datetime.now(dt.timezone.utc)
        try:
            signed = verify(method=request.command, path=path, query=query, headers=headers,
                            body=body, now=now,
                            secret_for=lambda key: self._issued[key].secret if key in self._issued else None)
        except SignatureRejected as rejected:
            raise AwsFault(403, rejected.code, str(rejected)) from None
        issued = self._issued[signed.access_key_id]
        if headers.get("x-amz-security-token") != issued.token:
            raise AwsFault(403, "UnrecognizedClientException", "The security token is invalid.")
        if issued.expires <= now:
            raise AwsFault(403, "ExpiredTokenException", "The security token has expired.")
        if signed.region != end.region or signed.service != service or issued.region != end.region:
            raise AwsFault(403, "InvalidSignatureException",
                           f"credential scope {signed.region}/{signed.service} is not "
                           f"{end.region}/{service}")
        return issued

    def _claim(self, end: RegionEndpoint, issued: Issued, rest: str, method: str) -> dict[str, Any]:
        match = CLAIM_PATH.match(rest)
        if match is None or method != "POST":
            raise AwsFault(404, "ResourceNotFoundException", f"{method} {rest} is not emulated")
        emulator = self.fleet[end.region]
        try:
            response = emulator.create_provisioning_claim(
                end.declared.role_policy(issued.role_arn), templateName=match["name"])
        except AccessDenied as denied:
            raise AwsFault(403, "AccessDeniedException", str(denied)) from None
        except Rejected as rejected:
            code = {404: "ResourceNotFoundException"}.get(rejected.status_code, rejected.error_code)
            raise AwsFault(rejected.status_code, code, str(rejected)) from None
        with self._lock:
            self.claims.append({"region": end.region, **response})
        return {"certificateId": response["certificateId"],
                "certificatePem": response["certificatePem"],
                "keyPair": response["keyPair"],
                "expiration": response["expiration"].timestamp()}

    def _dynamodb(self, end: RegionEndpoint, issued: Issued, request: BaseHTTPRequestHandler,
                  body: bytes) -> tuple[int, bytes, str]:
        operation = (request.headers.get("X-Amz-Target") or "").rpartition(".")[2]
        payload = json.loads(body or b"{}")
        table = str(payload.get("TableName"))
        resource = f"arn:{PARTITION}:dynamodb:{end.region}:{ACCOUNT_ID}:table/{table}"
        if payload.get("IndexName"):
            resource += f"/index/{payload['IndexName']}"
        context = {"dynamodb:LeadingKeys": self._leading_keys(table, operation, payload)}
        if not allowed(end.declared.role_policy(issued.role_arn), f"dynamodb:{operation}",
                       resource, context):
            raise AwsFault(400, "AccessDeniedException",
                           f"User: {issued.role_arn} is not authorized to perform: "
                           f"dynamodb:{operation} on resource: {resource}")
        return self._to_moto("dynamodb", end.region, request, body)

    def _leading_keys(self, table: str, operation: str, payload: Mapping[str, Any]) -> list[str]:
        """The partition-key values the request touches (IAM's dynamodb:LeadingKeys)."""
        declared = [t for t in self.system.graph.of_type("aws:dynamodb/table:Table")
                    if t.inputs.get("name") == table]
        if not declared:
            return []
        spec = declared[0].inputs
        key = str(spec["hashKey"])
        if payload.get("IndexName"):
            index = next((i for i in spec.get("globalSecondaryIndexes") or []
                          if i["name"] == payload["IndexName"]), None)
            if index is None:
                return []
            key = next(str(k["attributeName"]) for k in index["keySchemas"] if k["keyType"] == "HASH")
        if operation == "PutItem":
            values = [(payload.get("Item") or {}).get(key)]
        elif operation in ("GetItem", "UpdateItem", "DeleteItem"):
            values = [(payload.get("Key") or {}).get(key)]
        elif operation == "Query":
            names = payload.get("ExpressionAttributeNames") or {}
            found = re.findall(r"(#?\w+)\s*=\s*(:\w+)", str(payload.get("KeyConditionExpression")))
            values = [(payload.get("ExpressionAttributeValues") or {}).get(placeholder)
                      for name, placeholder in found if names.get(name, name) == key]
        else:
            values = []
        return [str(next(iter(v.values()))) for v in values if isinstance(v, Mapping) and v]
