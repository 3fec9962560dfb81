"""Fleet provisioning as AWS IoT and Cognito would run it, built from the *declared* stack.

moto has no provisioning templates, claims, pre-provisioning hooks, identity-pool role
mapping or Lambda event-source filters. This module takes all of them from the resource
graph of `tools.harness.evaluate_program` — the template body and its hook target, the
hook's handler and environment, the Lambda permission, the provisioning, installer and claim
policies, the identity pool's role attachment, the recorder's event-source mapping — and
runs them against moto's IoT registry and DynamoDB. Every AWS IoT call the template makes
is first checked against the declared provisioning role's policy, every MQTT operation of a
claim against the declared claim policy, and every claim request against the policy of the
role the identity pool hands out: a wrong wire in the stack fails the journey.

Where AWS is stricter than this emulation, the difference is named in the method.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import jwt
from cryptography.hazmat.primitives import hashes

from tests.support.certificates import issue
from tests.support.fleet_iam import allowed, trust_allows
from tools.harness import ACCOUNT_ID, PARTITION, RecordedResource, StackGraph

TEMPLATE = "aws:iot/provisioningTemplate:ProvisioningTemplate"
FUNCTION = "aws:lambda/function:Function"
PERMISSION = "aws:lambda/permission:Permission"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
IOT_POLICY = "aws:iot/policy:Policy"
USER_POOL = "aws:cognito/userPool:UserPool"
USER_POOL_CLIENT = "aws:cognito/userPoolClient:UserPoolClient"
USER_GROUP = "aws:cognito/userGroup:UserGroup"
IDENTITY_POOL = "aws:cognito/identityPool:IdentityPool"
ROLE_ATTACHMENT = "aws:cognito/identityPoolRoleAttachment:IdentityPoolRoleAttachment"
EVENT_SOURCE_MAPPING = "aws:lambda/eventSourceMapping:EventSourceMapping"
TABLE = "aws:dynamodb/table:Table"

HOOK_LIMIT_SECONDS = 5.0  # "Pre-provisioning hooks": return within 5 seconds
CLAIM_LIFETIME = dt.timedelta(minutes=5)  # "Provisioning by trusted user"


def only(resources: list[RecordedResource], what: str) -> RecordedResource:
    assert len(resources) == 1, f"{what}: {[r.name for r in resources]}"
    return resources[0]


@dataclass(frozen=True)
class DeclaredFleet:
    """One region's fleet-provisioning resources, found by following the declared wiring."""

    graph: StackGraph
    region: str

    def _of(self, type_: str) -> list[RecordedResource]:
        return [r for r in self.graph.of_type(type_) if r.region in (self.region, "global")]

    def _by_arn(self, type_: str, arn: str) -> RecordedResource:
        return only([r for r in self._of(type_) if r.outputs.get("arn") == arn], f"{type_} {arn}")

    def _role_policy(self, role: RecordedResource) -> dict[str, Any]:
        policy = only([p for p in self.graph.of_type(ROLE_POLICY) if p.inputs.get("role") == role.id],
                      f"inline policy of {role.name}")
        return dict(json.loads(policy.inputs["policy"]))

    @property
    def template(self) -> RecordedResource:
        return only([r for r in self.graph.of_type(TEMPLATE) if r.region == self.region], "template")

    @property
    def template_name(self) -> str:
        return str(self.template.inputs["name"])

    @property
    def template_arn(self) -> str:
        return str(self.template.outputs["arn"])

    @property
    def template_body(self) -> dict[str, Any]:
        return dict(json.loads(self.template.inputs["templateBody"]))

    @property
    def hook(self) -> RecordedResource:
        return self._by_arn(FUNCTION, self.template.inputs["preProvisioningHook"]["targetArn"])

    @property
    def hook_permissions(self) -> list[RecordedResource]:
        return [p for p in self.graph.of_type(PERMISSION) if p.region == self.region
                and p.inputs.get("function") == self.hook.outputs["name"]]

    @property
    def provisioning_role(self) -> RecordedResource:
        return self._by_arn(ROLE, self.template.inputs["provisioningRoleArn"])

    @property
    def provisioning_policy(self) -> dict[str, Any]:
        return self._role_policy(self.provisioning_role)

    @property
    def claim_policy(self) -> dict[str, Any]:
        policy = only([p for p in self.graph.of_type(IOT_POLICY) if p.region == self.region
                       and "claim" in str(p.inputs.get("name"))], "claim policy")
        return dict(json.loads(policy.inputs["policy"]))

    def iot_policy_named(self, name: str) -> RecordedResource:
        return only([p for p in self.graph.of_type(IOT_POLICY) if p.region == self.region
                     and p.inputs.get("name") == name], f"IoT policy {name}")

    @property
    def user_pool(self) -> RecordedResource:
        return only([r for r in self.graph.of_type(USER_POOL) if r.region == self.region], "pool")

    @property
    def user_pool_client(self) -> RecordedResource:
        return only([r for r in self.graph.of_type(USER_POOL_CLIENT) if r.region == self.region
                     and r.inputs["userPoolId"] == self.user_pool.id], "app client")

    @property
    def groups(self) -> list[RecordedResource]:
        return [g for g in self.graph.of_type(USER_GROUP) if g.region == self.region
                and g.inputs["userPoolId"] == self.user_pool.id]

    @property
    def identity_pool(self) -> RecordedResource:
        return only([r for r in self.graph.of_type(IDENTITY_POOL) if r.region == self.region],
                    "identity pool")

    @property
    def role_attachment(self) -> RecordedResource:
        return only([r for r in self.graph.of_type(ROLE_ATTACHMENT) if r.region == self.region
                     and r.inputs["identityPoolId"] == self.identity_pool.id],
                    "identity pool role attachment")

    def role(self, arn: str) -> RecordedResource:
        return self._by_arn(ROLE, arn)

    def role_policy(self, arn: str) -> dict[str, Any]:
        return self._role_policy(self.role(arn))

    def table(self, suffix: str) -> RecordedResource:
        return only([t for t in self.graph.of_type(TABLE) if str(t.inputs["name"]).endswith(suffix)],
                    f"table {suffix}")

    def stream_arn(self, table: RecordedResource) -> str:
        if self.region == table.region:
            return str(table.outputs["streamArn"])
        return next(str(r["streamArn"]) for r in table.outputs["replicas"]
                    if r["regionName"] == self.region)

    @property
    def recorder_trigger(self) -> RecordedResource:
        provisioning_stream = self.stream_arn(self.table("-cvm-provisioning"))
        return only([m for m in self.graph.of_type(EVENT_SOURCE_MAPPING) if m.region == self.region
                     and m.inputs["eventSourceArn"] == provisioning_stream], "recorder trigger")

    @property
    def recorder(self) -> RecordedResource:
        return self._by_arn(FUNCTION, self.recorder_trigger.inputs["functionName"])


# --- Lambda, as AWS runs our declared functions ---------------------------------------------

@dataclass(frozen=True)
class LambdaContext:
    function_name: str
    invoked_function_arn: str
    deadline: float  # time.monotonic() at which Lambda stops the invocation
    memory_limit_in_mb: int = 512
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/test"
    log_stream_name: str = "test"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


@contextmanager
def declared_environment(function: RecordedResource, region: str,
                         extra: Mapping[str, str] | None = None) -> Iterator[None]:
    variables = dict(function.inputs.get("environment", {}).get("variables", {}))
    with mock.patch.dict(os.environ, {**variables, "AWS_REGION": region,
                                      "AWS_DEFAULT_REGION": region, **(extra or {})}):
        yield


def declared_handler(function: RecordedResource) -> Callable[[Any, Any], Any]:
    """The function's `handler` setting (`package.module.function`) loaded from lambdas/."""
    module, _, name = str(function.inputs["handler"]).rpartition(".")
    return getattr(importlib.import_module(f"lambdas.{module}"), name)


def invoke(function: RecordedResource, region: str, event: Any,
           extra_environment: Mapping[str, str] | None = None) -> tuple[Any, float]:
    """Run the declared handler with its declared environment; (result, seconds)."""
    timeout = float(function.inputs["timeout"])
    context = LambdaContext(function_name=str(function.inputs["name"]),
                            invoked_function_arn=str(function.outputs["arn"]),
                            deadline=time.monotonic() + timeout)
    with declared_environment(function, region, extra_environment):
        started = time.monotonic()
        result = declared_handler(function)(event, context)
        return result, time.monotonic() - started


# --- Lambda event-source mapping filters ------------------------------------------------------

def filter_matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """Lambda event filtering, for the shapes we use: nested objects and lists of allowed
    exact values."""
    for key, wanted in pattern.items():
        if key not in event:
            return False
        if isinstance(wanted, list):
            if event[key] not in wanted:
                return False
        elif not isinstance(event[key], Mapping) or not filter_matches(wanted, event[key]):
            return False
    return True


def stream_event(records: list[dict[str, Any]], stream_arn: str,
                 mapping: RecordedResource) -> dict[str, Any]:
    """What the declared event-source mapping hands the recorder: the records its filters
    pass, shaped as Lambda's DynamoDB stream event."""
    patterns = [json.loads(f["pattern"]) for f in mapping.inputs["filterCriteria"]["filters"]]
    shaped = [{**r, "eventSourceARN": stream_arn} for r in records]
    return {"Records": [r for r in shaped if any(filter_matches(p, r) for p in patterns)]}


def read_stream(streams: Any, stream_arn: str) -> list[dict[str, Any]]:
    """Every record of a (moto) DynamoDB stream, oldest first, in Lambda's JSON shape."""
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator)
            records += page["Records"]
            iterator = page.get("NextShardIterator") if page["Records"] else None
    return [json.loads(json.dumps(r, default=str)) for r in records]


# --- Cognito identity pool (enhanced flow, Token role mapping) -----------------------------

class AccessDenied(Exception):
    pass


@dataclass
class IdentityPoolEmulation:
    """GetCredentialsForIdentity as the declared identity pool would answer it: the role
    comes from the ID token's group (Token mapping, ambiguous -> Deny) and must trust this
    identity pool for authenticated identities."""

    declared: DeclaredFleet

    def role_for(self, id_token: str) -> RecordedResource:
        attachment = self.declared.role_attachment
        [mapping] = attachment.inputs["roleMappings"]
        pool, client = self.declared.user_pool, self.declared.user_pool_client
        assert mapping["identityProvider"] == f"{pool.outputs['endpoint']}:{client.id}"
        assert mapping["type"] == "Token" and mapping["ambiguousRoleResolution"] == "Deny"
        claims = jwt.decode(id_token, options={"verify_signature": False})
        groups = {g.inputs["name"]: g for g in self.declared.groups}
        roles = [groups[name].inputs["roleArn"] for name in claims.get("cognito:groups", [])
                 if name in groups and groups[name].inputs.get("roleArn")]
        if len(roles) != 1:
            raise AccessDenied(f"no single role for groups {claims.get('cognito:groups')}")
        role = self.declared.role(roles[0])
        context = {"cognito-identity.amazonaws.com:aud": self.declared.identity_pool.id,
                   "cognito-identity.amazonaws.com:amr": ["authenticated",
                                                          pool.outputs["endpoint"]]}
        if not trust_allows(role.inputs["assumeRolePolicy"],
                            ("Federated", "cognito-identity.amazonaws.com"),
                            "sts:AssumeRoleWithWebIdentity", context):
            raise AccessDenied(f"{role.name} does not trust this identity pool")
        return role


# --- AWS IoT: claims, the MQTT provisioning API, the template ---------------------------------

class Rejected(Exception):
    """A `.../rejected` reply: statusCode and errorCode as AWS IoT sends them."""

    def __init__(self, status_code: int, error_code: str, message: str) -> None:
        super().__init__(f"{status_code} {error_code}: {message}")
        self.status_code = status_code
        self.error_code = error_code


@dataclass
class Claim:
    certificate_id: str
    certificate_pem: str
    private_key: str
    expiration: dt.datetime


@dataclass
class FleetEmulator:
    declared: DeclaredFleet
    iot: Any  # moto IoT client of the region
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)
    claims: dict[str, Claim] = field(default_factory=dict)
    ownership_tokens: dict[str, str] = field(default_factory=dict)
    hook_answers: list[tuple[dict[str, Any], Any, float]] = field(default_factory=list)

    @property
    def region(self) -> str:
        return self.declared.region

    def _arn(self, kind: str, name: str) -> str:
        return f"arn:{PARTITION}:iot:{self.region}:{ACCOUNT_ID}:{kind}/{name}"

    # CreateProvisioningClaim, by a caller holding `caller_policy`
    def create_provisioning_claim(self, caller_policy: Mapping[str, Any],
                                  templateName: str) -> dict[str, Any]:  # noqa: N803 (boto3's name)
        template = self.declared.template
        if templateName != template.inputs["name"]:
            raise Rejected(404, "ResourceNotFoundException", f"no template {templateName}")
        arn = self.declared.template_arn
        if not allowed(caller_policy, "iot:CreateProvisioningClaim", arn):
            raise AccessDenied(f"not authorized to perform iot:CreateProvisioningClaim on {arn}")
        if template.inputs.get("enabled") is not True:
            raise Rejected(400, "InvalidRequestException", "template disabled")
        issued = issue("AWS IoT Provisioning Claim", days=1)
        certificate_id = issued.cert.fingerprint(hashes.SHA256()).hex()
        # Not registered in the account: "Temporary provisioning claim certificates do not
        # appear in your account's list of certificates."
        claim = Claim(certificate_id, issued.pem, issued.key_pem, self.now() + CLAIM_LIFETIME)
        self.claims[certificate_id] = claim
        return {"certificateId": certificate_id, "certificatePem": issued.pem,
                "keyPair": {"PrivateKey": issued.key_pem, "PublicKey": "unused"},
                "expiration": claim.expiration}

    def _claim_may(self, action: str, resource: str) -> None:
        if not allowed(self.declared.claim_policy, action, resource):
            raise AccessDenied(f"claim policy refuses {action} on {resource}")

    def connect(self, claim_certificate_id: str, client_id: str) -> None:
        claim = self.claims.get(claim_certificate_id)
        if claim is None or self.now() >= claim.expiration:
            raise AccessDenied("unknown or expired claim certificate")
        self._claim_may("iot:Connect", self._arn("client", client_id))

    def _request(self, api: str) -> None:
        """Subscribe to the replies first (as the MQTT API asks), then publish the request."""
        for reply in ("accepted", "rejected"):
            self._claim_may("iot:Subscribe", self._arn("topicfilter", f"{api}/json/{reply}"))
            self._claim_may("iot:Receive", self._arn("topic", f"{api}/json/{reply}"))
        self._claim_may("iot:Publish", self._arn("topic", f"{api}/json"))

    def create_keys_and_certificate(self, claim_certificate_id: str,
                                    client_id: str) -> dict[str, Any]:
        self.connect(claim_certificate_id, client_id)
        self._request("$aws/certificates/create")
        # AWS creates it PENDING_ACTIVATION; moto knows only ACTIVE/INACTIVE.
        created = self.iot.create_keys_and_certificate(setAsActive=False)
        token = uuid.uuid4().hex
        self.ownership_tokens[token] = created["certificateId"]
        return {"certificateId": created["certificateId"], "certificatePem": created["certificatePem"],
                "privateKey": created["keyPair"]["PrivateKey"], "certificateOwnershipToken": token}

    def register_thing(self, claim_certificate_id: str, client_id: str, token: str,
                       parameters: Mapping[str, str]) -> dict[str, Any]:
        self.connect(claim_certificate_id, client_id)
        self._request(f"$aws/provisioning-templates/{self.declared.template_name}/provision")
        certificate_id = self.ownership_tokens.get(token)
        if certificate_id is None:
            raise Rejected(400, "InvalidCertificateOwnershipToken", "unknown token")
        description = self.iot.describe_certificate(certificateId=certificate_id)
        event = {"claimCertificateId": claim_certificate_id, "certificateId": certificate_id,
                 "certificatePem": description["certificateDescription"]["certificatePem"],
                 "templateArn": self.declared.template_arn, "clientId": client_id,
                 "parameters": dict(parameters)}
        overrides = self.run_hook(event)
        return self.apply_template({**parameters, **overrides,
                                    "AWS::IoT::Certificate::Id": certificate_id})

    def run_hook(self, event: dict[str, Any]) -> dict[str, str]:
        """Invoke the declared hook as AWS IoT does; anything but `allowProvisioning: true`
        within 5 seconds is ACCESS_DENIED."""
        hook_setting = self.declared.template.inputs["preProvisioningHook"]
        assert hook_setting["payloadVersion"] == "2020-04-01"
        hook = self.declared.hook
        if not any(p.inputs["principal"] == "iot.amazonaws.com"
                   and p.inputs["action"] == "lambda:InvokeFunction"
                   and p.inputs.get("sourceArn") == self.declared.template_arn
                   and p.inputs.get("sourceAccount") == ACCOUNT_ID
                   for p in self.declared.hook_permissions):
            raise Rejected(403, "AccessDenied", "AWS IoT may not invoke the hook for this template")
        try:
            answer, seconds = invoke(hook, self.region, event)
        except Exception as err:  # the function failed
            raise Rejected(403, "AccessDenied", f"hook failed: {err!r}") from None
        self.hook_answers.append((event, answer, seconds))
        if seconds > HOOK_LIMIT_SECONDS:
            raise Rejected(403, "AccessDenied", f"hook took {seconds:.1f}s")
        if not isinstance(answer, dict) or answer.get("allowProvisioning") is not True:
            raise Rejected(403, "AccessDenied", "the pre-provisioning hook denied the request")
        return {str(k): str(v) for k, v in (answer.get("parameterOverrides") or {}).items()}

    def _role_may(self, action: str, resource: str, context: Mapping[str, Any] | None = None) -> None:
        if not allowed(self.declared.provisioning_policy, action, resource, context):
            raise Rejected(403, "AccessDenied", f"provisioning role may not {action} on {resource}")

    @staticmethod
    def resolve(value: Any, parameters: Mapping[str, str]) -> Any:
        if isinstance(value, dict) and set(value) == {"Ref"}:
            if value["Ref"] not in parameters:
                raise Rejected(400, "InvalidParameters", f"parameter {value['Ref']} missing")
            return parameters[value["Ref"]]
        if isinstance(value, dict) and set(value) == {"Fn::Join"}:
            separator, items = value["Fn::Join"]
            return separator.join(FleetEmulator.resolve(i, parameters) for i in items)
        if isinstance(value, dict):
            return {k: FleetEmulator.resolve(v, parameters) for k, v in value.items()}
        if isinstance(value, list):
            return [FleetEmulator.resolve(v, parameters) for v in value]
        return value

    def apply_template(self, parameters: Mapping[str, str]) -> dict[str, Any]:
        """What the provisioning role does for the declared template body."""
        role = self.declared.provisioning_role
        source = {"aws:SourceAccount": ACCOUNT_ID, "aws:SourceArn": self.declared.template_arn}
        if not trust_allows(role.inputs["assumeRolePolicy"], ("Service", "iot.amazonaws.com"),
                            "sts:AssumeRole", source):
            raise Rejected(403, "AccessDenied", "AWS IoT cannot assume the provisioning role")
        body = self.declared.template_body
        declared = set(body.get("Parameters", {}))
        values = {k: v for k, v in parameters.items() if k in declared}
        resources = {name: (r["Type"], self.resolve(r.get("Properties", {}), values))
                     for name, r in body["Resources"].items()}
        things = [p for t, p in resources.values() if t == "AWS::IoT::Thing"]
        certificates = [p for t, p in resources.values() if t == "AWS::IoT::Certificate"]
        policies = [p for t, p in resources.values() if t == "AWS::IoT::Policy"]
        [thing], [certificate] = things, certificates
        thing_name = thing["ThingName"]
        thing_arn = self._arn("thing", thing_name)
        certificate_arn = self._arn("cert", certificate["CertificateId"])
        self._role_may("iot:CreateThing", thing_arn)
        attributes = {k: str(v) for k, v in thing.get("AttributePayload", {}).items()}
        self.iot.create_thing(thingName=thing_name, attributePayload={"attributes": attributes})
        self._role_may("iot:UpdateCertificate", certificate_arn)
        self.iot.update_certificate(certificateId=certificate["CertificateId"],
                                    newStatus=certificate.get("Status", "ACTIVE").upper())
        for policy in policies:
            assert "PolicyDocument" not in policy, "the template must name the device policy"
            self._role_may("iot:GetPolicy", self._arn("policy", policy["PolicyName"]))
            self.iot.get_policy(policyName=policy["PolicyName"])  # must exist
            self._role_may("iot:AttachPolicy", certificate_arn)
            self.iot.attach_policy(policyName=policy["PolicyName"], target=certificate_arn)
        self._role_may("iot:AttachThingPrincipal", certificate_arn, {"iot:thingArn": thing_arn})
        self.iot.attach_thing_principal(thingName=thing_name, principal=certificate_arn)
        return {"thingName": thing_name, "deviceConfiguration": body.get("DeviceConfiguration", {})}
