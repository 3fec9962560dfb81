"""The AWS endpoints the browser calls, for every region of the run, on one local port:
`http://127.0.0.1:<port>/<region>/<service>/...` with service cognito-idp, cognito-identity,
iot or dynamodb (the site's config.json points there).

Cognito's user pool is moto's (forwarded to the world's moto server), with what moto lacks or
is kinder about: RevokeToken (moto has none; a revoked refresh token is refused afterwards),
and the app client's allowed auth flows. The identity pool is the fleet emulation's
(`role_for`: the login must be an unexpired ID token of this pool's app client, the role
comes from the declared Token mapping), and each call gets its own temporary credentials
(moto hands everyone the same static ones). AWS IoT's CreateProvisioningClaim and DynamoDB
check the request's SigV4 signature against those credentials, then the chosen role's
policies in IAM (DynamoDB with `dynamodb:LeadingKeys`) through the one policy evaluator.

CORS: only the site's origin is answered (AWS answers any origin; a stricter reading), with
the headers the AWS SDKs send. A region the scenario took down (`world.calls.down`), or that
the browser cannot reach (`unreachable`: the installer's network lost it, while the region
serves everyone else), answers 503 to everything, as an unavailable region would.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from tools.harness import ACCOUNT_ID, PARTITION
from tools.local.emulation.fleet_provisioning import FleetProvisioning, Rejected, declared, login, role_for
from tools.local.emulation.policy import AccessDenied, allows, role_policies
from tools.local.http_servers import LocalServer, reply
from tools.local.installer_web.sigv4 import SignatureRejected, verify
from tools.local.materialise import GLOBAL_SERVICE_REGION
from tools.local.world import World

SERVICES = ("cognito-idp", "cognito-identity", "iot", "dynamodb")
CREDENTIAL_LIFETIME = dt.timedelta(hours=1)  # GetCredentialsForIdentity: one hour
CLAIM_PATH = re.compile(r"^/provisioning-templates/(?P<name>[^/]+)/provisioning-claim$")
JSON = "application/x-amz-json-1.1"
# InitiateAuth AuthFlow -> the app-client flow that must allow it.
AUTH_FLOWS = {"USER_SRP_AUTH": "ALLOW_USER_SRP_AUTH", "REFRESH_TOKEN_AUTH": "ALLOW_REFRESH_TOKEN_AUTH",
              "REFRESH_TOKEN": "ALLOW_REFRESH_TOKEN_AUTH", "USER_PASSWORD_AUTH": "ALLOW_USER_PASSWORD_AUTH",
              "CUSTOM_AUTH": "ALLOW_CUSTOM_AUTH"}


class AwsFault(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


@dataclass(frozen=True)
class Issued:
    region: str
    role_arn: str
    secret: str
    token: str
    expires: dt.datetime


@dataclass(frozen=True)
class Call:
    region: str
    service: str
    operation: str
    status: int


class Gateway:
    def __init__(self, world: World, fleet: FleetProvisioning) -> None:
        self.world, self.fleet, self.allowed_origin = world, fleet, ""
        self.calls: list[Call] = []
        self.claims: list[dict[str, Any]] = []  # each claim's response, with its region
        self.unreachable: set[str] = set()  # regions only the browser cannot reach
        self._issued: dict[str, Issued] = {}
        self._revoked: set[str] = set()
        self._lock = threading.Lock()
        self.regions = {r: {kind: declared(world, f"aws:cognito/{kind}", r) for kind in (
            "userPool:UserPool", "userPoolClient:UserPoolClient", "identityPool:IdentityPool")}
            for r in fleet.templates}
        self._server = LocalServer("installer-web-gateway", self._handle)
        self.url = self._server.url

    def endpoint(self, region: str, service: str) -> str:
        return f"{self.url}/{region}/{service}"

    def stop(self) -> None:
        self._server.stop()

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        origin = request.headers.get("Origin")
        cors = {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
                "Access-Control-Expose-Headers": "x-amzn-errortype, x-amzn-requestid, date"} \
            if origin and origin == self.allowed_origin else {}
        if request.command == "OPTIONS":
            if cors:
                cors.update({"Access-Control-Allow-Methods": "GET, POST", "Access-Control-Max-Age": "600",
                             "Access-Control-Allow-Headers": request.headers.get("Access-Control-Request-Headers", "")})
            return reply(request, 204 if cors else 403, b"", cors)
        parts = urlsplit(request.path)
        _, region, service, rest = (parts.path.split("/", 3) + ["", "", ""])[:4]
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        operation = (request.headers.get("X-Amz-Target") or "").rpartition(".")[2] or "/" + rest
        try:
            if region not in self.regions or service not in SERVICES:
                raise AwsFault(404, "UnknownOperationException", f"no endpoint {parts.path}")
            if region in self.world.calls.down or region in self.unreachable:
                raise AwsFault(503, "ServiceUnavailableException", f"{region} is unavailable (taken down)")
            status, answer, content_type = self._dispatch(region, service, operation, request, parts, "/" + rest, body)
        except AwsFault as fault:
            status, content_type = fault.status, JSON
            answer = json.dumps({"__type": fault.code, "message": str(fault)}).encode()
            cors = {**cors, "x-amzn-ErrorType": fault.code}
        with self._lock:
            self.calls.append(Call(region, service, operation, status))
        reply(request, status, answer, {**cors, "Content-Type": content_type})

    def _dispatch(self, region: str, service: str, operation: str, request: BaseHTTPRequestHandler,
                  parts: Any, rest: str, body: bytes) -> tuple[int, bytes, str]:
        payload = json.loads(body or b"{}")
        if service == "cognito-idp":
            return self._user_pool(region, operation, request, payload, body)
        if service == "cognito-identity":
            return 200, json.dumps(self._identity(region, operation, payload)).encode(), JSON
        issued = self._signed(region, service, request, parts, body)
        policies = role_policies(self.world.client("iam", GLOBAL_SERVICE_REGION), issued.role_arn)
        if service == "iot":
            return 200, json.dumps(self._claim(region, policies, rest, request.command)).encode(), \
                "application/json"
        resource = f"arn:{PARTITION}:dynamodb:{region}:{ACCOUNT_ID}:table/{payload.get('TableName')}" + (
            f"/index/{payload['IndexName']}" if payload.get("IndexName") else "")
        context = {"dynamodb:LeadingKeys": self._leading_keys(operation, payload)}
        if not allows(policies, f"dynamodb:{operation}", resource, context=context):
            raise AwsFault(400, "AccessDeniedException", f"User: {issued.role_arn} is not authorized to "
                                                         f"perform: dynamodb:{operation} on resource: {resource}")
        return self._to_moto("dynamodb", region, request, body)

    # -- Cognito user pool (moto, plus what it lacks) -----------------------------------------

    def _user_pool(self, region: str, operation: str, request: BaseHTTPRequestHandler,
                   payload: dict[str, Any], body: bytes) -> tuple[int, bytes, str]:
        client = self.regions[region]["userPoolClient:UserPoolClient"]
        pool_id = self.regions[region]["userPool:UserPool"]["id"]
        idp = self.world.client("cognito-idp", region)
        if operation in ("InitiateAuth", "RespondToAuthChallenge", "RevokeToken") \
                and payload.get("ClientId") != client["id"]:
            raise AwsFault(400, "ResourceNotFoundException", "User pool client does not exist.")
        if operation == "InitiateAuth":
            flow = str(payload.get("AuthFlow"))
            if AUTH_FLOWS.get(flow) not in (client.get("explicitAuthFlows") or ()):
                raise AwsFault(400, "InvalidParameterException", f"Auth flow {flow} is not enabled for this client.")
            if (payload.get("AuthParameters") or {}).get("REFRESH_TOKEN") in self._revoked:
                raise AwsFault(400, "NotAuthorizedException", "Refresh Token has been revoked")
        if operation == "RespondToAuthChallenge":
            # The SRP libraries answer every challenge for USER_ID_FOR_SRP, which moto sets to
            # the user's sub (Cognito: the user name) and then cannot find: answer for that user.
            responses = payload.get("ChallengeResponses") or {}
            found = idp.list_users(UserPoolId=pool_id, Filter=f'sub = "{responses.get("USERNAME", "")}"',
                                   Limit=1)["Users"]
            if found:
                responses["USERNAME"] = found[0]["Username"]
                body = json.dumps(payload).encode()
        if operation == "RevokeToken":  # moto has no RevokeToken
            if not client.get("enableTokenRevocation"):
                raise AwsFault(400, "UnsupportedTokenTypeException", "token revocation is not enabled for this client")
            with self._lock:
                self._revoked.add(str(payload.get("Token")))
            return 200, b"{}", JSON
        status, answer, content_type = self._to_moto("cognito-idp", region, request, body)
        response = json.loads(answer or b"{}")
        parameters = response.get("ChallengeParameters") or {}
        if status == 200 and response.get("ChallengeName") == "NEW_PASSWORD_REQUIRED" \
                and "userAttributes" not in parameters:
            # Cognito's challenge carries the user's attributes and the required ones (the SRP
            # libraries parse both); moto's carries neither.
            user = idp.admin_get_user(UserPoolId=pool_id, Username=parameters.get("USERNAME", ""))
            parameters.update({"requiredAttributes": "[]", "userAttributes": json.dumps(
                {a["Name"]: a["Value"] for a in user.get("UserAttributes", []) if a["Name"] != "sub"})})
            answer = json.dumps({**response, "ChallengeParameters": parameters}).encode()
        return status, answer, content_type

    def _to_moto(self, service: str, region: str, request: BaseHTTPRequestHandler,
                 body: bytes) -> tuple[int, bytes, str]:
        endpoint = urlsplit(self.world.serve())
        connection = http.client.HTTPConnection(endpoint.hostname or "127.0.0.1", endpoint.port, timeout=30)
        headers = {name: value for name, value in request.headers.items() if name.lower() in (
            "content-type", "x-amz-target", "authorization", "x-amz-date", "x-amz-security-token")}
        try:
            connection.request("POST", "/", body=body, headers={**headers, "Host": f"{service}.{region}.amazonaws.com"})
            response = connection.getresponse()
            return response.status, response.read(), response.getheader("Content-Type") or JSON
        finally:
            connection.close()

    # -- Cognito identity pool: the fleet emulation's role choice, credentials of its own -------

    def _identity(self, region: str, operation: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        pool_id = self.regions[region]["identityPool:IdentityPool"]["id"]
        if payload.get("IdentityPoolId") not in (None, pool_id):
            raise AwsFault(400, "ResourceNotFoundException", "IdentityPool not found")
        if operation not in ("GetId", "GetCredentialsForIdentity"):
            raise AwsFault(400, "UnknownOperationException", f"{operation} is not emulated")
        try:
            login(self.world, region, payload.get("Logins") or {})
            if operation == "GetId":
                moto = self.world.client("cognito-identity", region)
                return {"IdentityId": moto.get_id(IdentityPoolId=pool_id, Logins=payload["Logins"])["IdentityId"]}
            role = role_for(self.world, region, payload["Logins"], payload.get("CustomRoleArn"))
        except AccessDenied as denied:
            raise AwsFault(400, "NotAuthorizedException", str(denied)) from None
        key = "ASIA" + "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))
        issued = Issued(region, role, secrets.token_urlsafe(30)[:40], secrets.token_urlsafe(64),
                        dt.datetime.now(dt.timezone.utc) + CREDENTIAL_LIFETIME)
        with self._lock:
            self._issued[key] = issued
        return {"IdentityId": payload.get("IdentityId"), "Credentials": {
            "AccessKeyId": key, "SecretKey": issued.secret, "SessionToken": issued.token,
            "Expiration": issued.expires.timestamp()}}

    # -- signed calls ------------------------------------------------------------------------

    def _signed(self, region: str, service: str, request: BaseHTTPRequestHandler, parts: Any, body: bytes) -> Issued:
        headers = {name.lower(): value for name, value in request.headers.items()}
        now = dt.datetime.now(dt.timezone.utc)
        try:
            signed = verify(method=request.command, path=parts.path, query=parts.query, headers=headers, body=body,
                            now=now, secret_for=lambda key: self._issued[key].secret if key in self._issued else None)
        except SignatureRejected as rejected:
            raise AwsFault(403, rejected.code, str(rejected)) from None
        issued = self._issued[signed.access_key_id]
        if headers.get("x-amz-security-token") != issued.token:
            raise AwsFault(403, "UnrecognizedClientException", "The security token is invalid.")
        if issued.expires <= now:
            raise AwsFault(403, "ExpiredTokenException", "The security token has expired.")
        if (signed.region, signed.service, issued.region) != (region, service, region):
            raise AwsFault(403, "InvalidSignatureException",
                           f"credential scope {signed.region}/{signed.service} is not {region}/{service}")
        return issued

    def _claim(self, region: str, policies: list[Mapping[str, Any]], path: str, method: str) -> dict[str, Any]:
        match = CLAIM_PATH.match(path)
        if match is None or method != "POST":
            raise AwsFault(404, "ResourceNotFoundException", f"{method} {path} is not emulated")
        try:
            response = self.fleet[region].create_provisioning_claim(policies, match["name"])
        except AccessDenied as denied:
            raise AwsFault(403, "AccessDeniedException", str(denied)) from None
        except Rejected as rejected:
            raise AwsFault(rejected.status_code, rejected.error_code, str(rejected)) from None
        with self._lock:
            self.claims.append({"region": region, **response})
        return {**{k: response[k] for k in ("certificateId", "certificatePem", "keyPair")},
                "expiration": response["expiration"].timestamp()}

    def _leading_keys(self, operation: str, payload: Mapping[str, Any]) -> list[str]:
        """The partition-key values the request touches (IAM's dynamodb:LeadingKeys)."""
        tables = [self.world.state(t) for t in self.world.declared("aws:dynamodb/table:Table")]
        spec = next((t for t in tables if t.get("name") == payload.get("TableName")), None)
        if spec is None:
            return []
        key = str(spec["hashKey"])
        if payload.get("IndexName"):
            index: Mapping[str, Any] = next((i for i in spec.get("globalSecondaryIndexes") or []
                                             if i["name"] == payload["IndexName"]), {})
            key = next((str(k["attributeName"]) for k in index.get("keySchemas", []) if k["keyType"] == "HASH"), "")
        values: list[Any] = [(payload.get("Item") or payload.get("Key") or {}).get(key)]
        if operation == "Query":
            names = payload.get("ExpressionAttributeNames") or {}
            found = re.findall(r"(#?\w+)\s*=\s*(:\w+)", str(payload.get("KeyConditionExpression")))
            values = [(payload.get("ExpressionAttributeValues") or {}).get(placeholder)
                      for name, placeholder in found if names.get(name, name) == key]
        return [str(next(iter(v.values()))) for v in values if isinstance(v, Mapping) and v]

