"""Fleet provisioning by trusted user as AWS IoT and Cognito run it (moto has no provisioning
templates, claims, hooks or identity-pool role mapping), from the declared stack
(docs/emulation.md, "Fleet provisioning"):

* the identity pool's Token role mapping picks the installer's role from the ID token's
  group (ambiguous: Deny); the role must trust this pool; its policy must allow
  CreateProvisioningClaim on the template;
* a claim lives 5 minutes and may use only the provisioning MQTT API of its template: no
  stack policy is attached to a claim, so none is consulted;
* RegisterThing invokes the declared hook through its declared permission (AWS IoT, source
  this template), 5 seconds, `allowProvisioning`; then the template body is applied with
  every IoT call checked against the declared provisioning role (trust and policy), through
  moto's faithful registry (CreateThing's limits included).
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
import pyotp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tools.harness import ACCOUNT_ID, GLOBAL, PARTITION, RecordedResource, StackGraph
from tools.local.emulation import emulation
from tools.local.emulation.lambdas import InvokeDenied, LambdaRuntime
from tools.local.emulation.policy import AccessDenied, allowed, trust_allows
from tools.local.world import World

TEMPLATE = "aws:iot/provisioningTemplate:ProvisioningTemplate"
IOT_PRINCIPAL = "iot.amazonaws.com"
HOOK_PAYLOAD_VERSION = "2020-04-01"
HOOK_LIMIT_SECONDS = 5.0  # "Pre-provisioning hooks": return within 5 seconds
CLAIM_LIFETIME = dt.timedelta(minutes=5)  # "Provisioning by trusted user"


class Rejected(Exception):
    """A `.../rejected` reply: statusCode and errorCode as AWS IoT sends them."""

    def __init__(self, status_code: int, error_code: str, message: str) -> None:
        super().__init__(f"{status_code} {error_code}: {message}")
        self.status_code, self.error_code = status_code, error_code


def only(resources: list[RecordedResource], what: str) -> RecordedResource:
    if len(resources) != 1:
        raise LookupError(f"{what}: expected one, the graph declares "
                          f"{[r.name for r in resources] or 'none'}")
    return resources[0]


@dataclass(frozen=True)
class DeclaredFleet:
    """One region's fleet-provisioning resources, found by following the declared wiring."""

    graph: StackGraph
    region: str

    def _of(self, type_: str) -> list[RecordedResource]:
        return [r for r in self.graph.of_type(type_) if r.region in (self.region, GLOBAL)]

    def _by_arn(self, type_: str, arn: str) -> RecordedResource:
        return only([r for r in self._of(type_) if r.outputs.get("arn") == arn], f"{type_} {arn}")

    def _here(self, type_: str, what: str, **inputs: Any) -> RecordedResource:
        return only([r for r in self.graph.of_type(type_) if r.region == self.region
                     and all(r.inputs.get(k) == v for k, v in inputs.items())], what)

    @property
    def template(self) -> RecordedResource:
        return self._here(TEMPLATE, "template")

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
        return self._by_arn("aws:lambda/function:Function",
                            self.template.inputs["preProvisioningHook"]["targetArn"])

    @property
    def hook_permissions(self) -> list[RecordedResource]:
        names = (self.hook.outputs["name"], self.hook.outputs["arn"])
        return [p for p in self.graph.of_type("aws:lambda/permission:Permission")
                if p.region == self.region and p.inputs.get("function") in names]

    def role(self, arn: str) -> RecordedResource:
        return self._by_arn("aws:iam/role:Role", arn)

    def role_policy(self, arn: str) -> dict[str, Any]:
        role = self.role(arn)
        return dict(json.loads(only([p for p in self.graph.of_type("aws:iam/rolePolicy:RolePolicy")
                                     if p.inputs.get("role") == role.id],
                                    f"inline policy of {role.name}").inputs["policy"]))

    @property
    def provisioning_role(self) -> RecordedResource:
        return self.role(self.template.inputs["provisioningRoleArn"])

    @property
    def provisioning_policy(self) -> dict[str, Any]:
        return self.role_policy(self.template.inputs["provisioningRoleArn"])

    @property
    def claim_policy(self) -> dict[str, Any]:
        """The IoT policy the stack declares for claims (nothing attaches it to one)."""
        return dict(json.loads(only([p for p in self._of("aws:iot/policy:Policy")
                                     if "claim" in str(p.inputs.get("name"))],
                                    "claim policy").inputs["policy"]))

    def iot_policy_named(self, name: str) -> RecordedResource:
        return self._here("aws:iot/policy:Policy", f"IoT policy {name}", name=name)

    @property
    def device_policy_name(self) -> str:
        names = [r["Properties"]["PolicyName"] for r in self.template_body["Resources"].values()
                 if r["Type"] == "AWS::IoT::Policy"]
        if len(names) != 1:
            raise LookupError(f"the template names {len(names)} policies")
        return str(names[0])

    @property
    def user_pool(self) -> RecordedResource:
        return self._here("aws:cognito/userPool:UserPool", "user pool")

    @property
    def user_pool_client(self) -> RecordedResource:
        return self._here("aws:cognito/userPoolClient:UserPoolClient", "app client",
                          userPoolId=self.user_pool.id)

    @property
    def groups(self) -> list[RecordedResource]:
        return [g for g in self.graph.of_type("aws:cognito/userGroup:UserGroup")
                if g.region == self.region and g.inputs["userPoolId"] == self.user_pool.id]

    @property
    def identity_pool(self) -> RecordedResource:
        return self._here("aws:cognito/identityPool:IdentityPool", "identity pool")

    @property
    def role_attachment(self) -> RecordedResource:
        return self._here("aws:cognito/identityPoolRoleAttachment:IdentityPoolRoleAttachment",
                          "identity pool role attachment", identityPoolId=self.identity_pool.id)

    def table(self, suffix: str) -> RecordedResource:
        return only([t for t in self.graph.of_type("aws:dynamodb/table:Table")
                     if str(t.inputs["name"]).endswith(suffix)], f"table {suffix}")

    def stream_arn(self, table: RecordedResource) -> str:
        if self.region == table.region:
            return str(table.outputs["streamArn"])
        return next(str(r["streamArn"]) for r in table.outputs["replicas"]
                    if r["regionName"] == self.region)

    @property
    def recorder_trigger(self) -> RecordedResource:
        return self._here("aws:lambda/eventSourceMapping:EventSourceMapping", "recorder trigger",
                          eventSourceArn=self.stream_arn(self.table("-cvm-provisioning")))

    @property
    def recorder(self) -> RecordedResource:
        return self._by_arn("aws:lambda/function:Function",
                            self.recorder_trigger.inputs["functionName"])


# --- Cognito: the identity pool's role choice, and the installer's side -----------------------

def role_for(declared: DeclaredFleet, id_token: str) -> RecordedResource:
    """GetCredentialsForIdentity's role for this ID token (Token mapping, ambiguous: Deny)."""
    [mapping] = declared.role_attachment.inputs["roleMappings"]
    pool, client = declared.user_pool, declared.user_pool_client
    if mapping["identityProvider"] != f"{pool.outputs['endpoint']}:{client.id}":
        raise AccessDenied(f"the role mapping names provider {mapping['identityProvider']}, "
                           "not this pool's client")
    if (mapping["type"], mapping["ambiguousRoleResolution"]) != ("Token", "Deny"):
        raise AccessDenied(f"role mapping {mapping['type']}/{mapping['ambiguousRoleResolution']}: "
                           "expected Token/Deny")
    claims = jwt.decode(id_token, options={"verify_signature": False})
    groups = {g.inputs["name"]: g for g in declared.groups}
    roles = [groups[n].inputs["roleArn"] for n in claims.get("cognito:groups", [])
             if n in groups and groups[n].inputs.get("roleArn")]
    if len(roles) != 1:
        raise AccessDenied(f"no single role for groups {claims.get('cognito:groups')}")
    role = declared.role(roles[0])
    context = {"cognito-identity.amazonaws.com:aud": declared.identity_pool.id,
               "cognito-identity.amazonaws.com:amr": ["authenticated", pool.outputs["endpoint"]]}
    if not trust_allows(role.inputs["assumeRolePolicy"], ("Federated", "cognito-identity.amazonaws.com"),
                        "sts:AssumeRoleWithWebIdentity", context):
        raise AccessDenied(f"{role.name} does not trust this identity pool")
    return role


class IdentityPoolClient:
    """The installer tool's cognito-identity client: moto's ids and (static) credentials, the
    declared pool's role choice for the ID token (`role` afterwards)."""

    def __init__(self, moto_identity: Any, declared: DeclaredFleet) -> None:
        self.moto, self.declared = moto_identity, declared
        self.role: RecordedResource | None = None

    def get_id(self, **kwargs: Any) -> Any:
        return self.moto.get_id(**kwargs)

    def get_credentials_for_identity(self, **kwargs: Any) -> Any:
        [id_token] = kwargs["Logins"].values()
        self.role = role_for(self.declared, id_token)
        return self.moto.get_credentials_for_identity(**kwargs)


class ClaimApi:
    """The IoT client the installer tool gets for those credentials (`made`: the claims)."""

    def __init__(self, fleet: TemplateEmulator, identity: IdentityPoolClient) -> None:
        self._fleet, self._identity = fleet, identity
        self.made: list[dict[str, Any]] = []

    def create_provisioning_claim(self, templateName: str) -> dict[str, Any]:  # noqa: N803
        if self._identity.role is None:
            raise AccessDenied("no credentials from the identity pool")
        response = self._fleet.create_provisioning_claim(
            self._fleet.declared.role_policy(self._identity.role.outputs["arn"]), templateName)
        self.made.append(response)
        return response


class AuthenticatorApp(pyotp.TOTP):
    min_secret_length_bits = 0  # moto's shared TOTP secret is short; the codes are RFC 6238


@dataclass
class ScriptedInstaller:
    """Answers the installer CLI's prompts as a person with an authenticator app would."""

    chosen_password: str = "Correct-Horse-Battery-9"
    totp: pyotp.TOTP | None = None
    wrong_code: bool = False
    shown: list[str] = field(default_factory=list)

    def password(self) -> str:
        return "the-temporary-password"  # moto does not verify SRP proofs

    def new_password(self) -> str:
        return self.chosen_password

    def totp_code(self) -> str:
        if self.totp is None:
            raise RuntimeError("asked for a code before enrolment")
        code = self.totp.now()
        return f"{(int(code) + 1) % 1_000_000:06d}" if self.wrong_code else code

    def show_totp_setup(self, secret: str, uri: str) -> None:
        self.shown.append(uri)
        self.totp = AuthenticatorApp(secret)


# --- AWS IoT: claims, the MQTT provisioning API, the template ----------------------------------

def claim_certificate() -> tuple[str, str, str]:
    """A temporary claim certificate: (id, PEM, private key PEM); not in the account's list."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "AWS IoT Provisioning Claim")])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=1))
                   .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return (certificate.fingerprint(hashes.SHA256()).hex(),
            certificate.public_bytes(serialization.Encoding.PEM).decode(), key_pem)


@dataclass
class TemplateEmulator:
    """One region's declared template: claims, the MQTT provisioning API, RegisterThing."""

    world: World
    declared: DeclaredFleet
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)
    claims: dict[str, dt.datetime] = field(default_factory=dict)  # claim id -> expiry
    tokens: dict[str, str] = field(default_factory=dict)  # ownership token -> certificate id
    hook_answers: list[tuple[dict[str, Any], Any, float]] = field(default_factory=list)

    @property
    def iot(self) -> Any:
        return self.world.client("iot", self.declared.region)

    def _arn(self, kind: str, name: str) -> str:
        return f"arn:{PARTITION}:iot:{self.declared.region}:{ACCOUNT_ID}:{kind}/{name}"

    def create_provisioning_claim(self, caller_policy: Mapping[str, Any],
                                  template_name: str) -> dict[str, Any]:
        """CreateProvisioningClaim by a caller holding `caller_policy`."""
        if template_name != self.declared.template_name:
            raise Rejected(404, "ResourceNotFoundException", f"no template {template_name}")
        if not allowed(caller_policy, "iot:CreateProvisioningClaim", self.declared.template_arn):
            raise AccessDenied("not authorized to perform iot:CreateProvisioningClaim on "
                               f"{self.declared.template_arn}")
        if self.declared.template.inputs.get("enabled") is not True:
            raise Rejected(400, "InvalidRequestException", "template disabled")
        certificate_id, pem, key_pem = claim_certificate()
        self.claims[certificate_id] = expiration = self.now() + CLAIM_LIFETIME
        return {"certificateId": certificate_id, "certificatePem": pem,
                "keyPair": {"PrivateKey": key_pem, "PublicKey": "unused"}, "expiration": expiration}

    def _claim_request(self, claim_id: str, topic: str) -> None:
        """A claim connected and used the MQTT provisioning API: only its template's topics."""
        if claim_id not in self.claims or self.now() >= self.claims[claim_id]:
            raise AccessDenied("unknown or expired claim certificate")
        allowed_topics = ("$aws/certificates/create/json",
                          f"$aws/provisioning-templates/{self.declared.template_name}/provision/json")
        if topic not in allowed_topics:
            raise AccessDenied(f"a claim may not use {topic}")

    def create_keys_and_certificate(self, claim_id: str) -> dict[str, Any]:
        self._claim_request(claim_id, "$aws/certificates/create/json")
        created = self.iot.create_keys_and_certificate(setAsActive=False)  # PENDING on AWS
        token = uuid.uuid4().hex
        self.tokens[token] = created["certificateId"]
        return {"certificateId": created["certificateId"], "certificatePem": created["certificatePem"],
                "privateKey": created["keyPair"]["PrivateKey"], "certificateOwnershipToken": token}

    def register_thing(self, claim_id: str, client_id: str, token: str,
                       parameters: Mapping[str, str]) -> dict[str, Any]:
        self._claim_request(claim_id, f"$aws/provisioning-templates/"
                                      f"{self.declared.template_name}/provision/json")
        certificate_id = self.tokens.get(token)
        if certificate_id is None:
            raise Rejected(400, "InvalidCertificateOwnershipToken", "unknown token")
        pem = self.iot.describe_certificate(certificateId=certificate_id)[
            "certificateDescription"]["certificatePem"]
        overrides = self.run_hook({"claimCertificateId": claim_id, "certificateId": certificate_id,
                                   "certificatePem": pem, "templateArn": self.declared.template_arn,
                                   "clientId": client_id, "parameters": dict(parameters)})
        return self.apply_template({**parameters, **overrides,
                                    "AWS::IoT::Certificate::Id": certificate_id})

    def run_hook(self, event: dict[str, Any]) -> dict[str, str]:
        """The declared hook as AWS IoT invokes it: anything but `allowProvisioning: true`
        within 5 seconds is AccessDenied."""
        setting = self.declared.template.inputs["preProvisioningHook"]
        if setting.get("payloadVersion") != HOOK_PAYLOAD_VERSION:
            raise Rejected(400, "InvalidRequestException", f"hook payload {setting.get('payloadVersion')}")
        started = time.monotonic()
        try:
            answer = self.world.emulation(LambdaRuntime).invoke_as_service(
                str(self.declared.hook.outputs["arn"]), event, principal=IOT_PRINCIPAL,
                source_arn=self.declared.template_arn, source_account=ACCOUNT_ID)
        except InvokeDenied as denied:
            raise Rejected(403, "AccessDenied", f"AWS IoT may not invoke the hook: {denied}") from None
        except Exception as error:  # the function failed
            raise Rejected(403, "AccessDenied", f"hook failed: {error!r}") from None
        seconds = time.monotonic() - started
        self.hook_answers.append((event, answer, seconds))
        if seconds > HOOK_LIMIT_SECONDS:
            raise Rejected(403, "AccessDenied", f"hook took {seconds:.1f}s")
        if not isinstance(answer, dict) or answer.get("allowProvisioning") is not True:
            raise Rejected(403, "AccessDenied", "the pre-provisioning hook denied the request")
        return {str(k): str(v) for k, v in (answer.get("parameterOverrides") or {}).items()}

    @staticmethod
    def resolve(value: Any, parameters: Mapping[str, str]) -> Any:
        if isinstance(value, dict) and set(value) == {"Ref"}:
            if value["Ref"] not in parameters:
                raise Rejected(400, "InvalidParameters", f"parameter {value['Ref']} missing")
            return parameters[value["Ref"]]
        if isinstance(value, dict) and set(value) == {"Fn::Join"}:
            separator, items = value["Fn::Join"]
            return separator.join(TemplateEmulator.resolve(i, parameters) for i in items)
        if isinstance(value, dict):
            return {k: TemplateEmulator.resolve(v, parameters) for k, v in value.items()}
        if isinstance(value, list):
            return [TemplateEmulator.resolve(v, parameters) for v in value]
        return value

    def apply_template(self, parameters: Mapping[str, str]) -> dict[str, Any]:
        """What the provisioning role does for the declared template body."""
        role, policy = self.declared.provisioning_role, self.declared.provisioning_policy
        if not trust_allows(role.inputs["assumeRolePolicy"], ("Service", IOT_PRINCIPAL), "sts:AssumeRole",
                            {"aws:SourceAccount": ACCOUNT_ID, "aws:SourceArn": self.declared.template_arn}):
            raise Rejected(403, "AccessDenied", "AWS IoT cannot assume the provisioning role")

        def may(action: str, resource: str, context: Mapping[str, Any] | None = None) -> None:
            if not allowed(policy, action, resource, context):
                raise Rejected(403, "AccessDenied", f"provisioning role may not {action} on {resource}")

        body = self.declared.template_body
        values = {k: v for k, v in parameters.items() if k in body.get("Parameters", {})}
        resources = [(r["Type"], self.resolve(r.get("Properties", {}), values))
                     for r in body["Resources"].values()]
        things = [p for t, p in resources if t == "AWS::IoT::Thing"]
        certificates = [p for t, p in resources if t == "AWS::IoT::Certificate"]
        if len(things) != 1 or len(certificates) != 1:
            raise Rejected(400, "InvalidRequestException", "one thing and one certificate expected")
        thing_name, certificate = things[0]["ThingName"], certificates[0]
        thing_arn, certificate_arn = self._arn("thing", thing_name), self._arn("cert", certificate["CertificateId"])
        may("iot:CreateThing", thing_arn)
        self.iot.create_thing(thingName=thing_name, attributePayload={"attributes": {
            k: str(v) for k, v in things[0].get("AttributePayload", {}).items()}})
        may("iot:UpdateCertificate", certificate_arn)
        self.iot.update_certificate(certificateId=certificate["CertificateId"],
                                    newStatus=certificate.get("Status", "ACTIVE").upper())
        for policy_properties in [p for t, p in resources if t == "AWS::IoT::Policy"]:
            if "PolicyDocument" in policy_properties:
                raise Rejected(400, "InvalidRequestException", "the template must name the policy")
            may("iot:GetPolicy", self._arn("policy", policy_properties["PolicyName"]))
            self.iot.get_policy(policyName=policy_properties["PolicyName"])  # must exist
            may("iot:AttachPolicy", certificate_arn)
            self.iot.attach_policy(policyName=policy_properties["PolicyName"], target=certificate_arn)
        may("iot:AttachThingPrincipal", certificate_arn, {"iot:thingArn": thing_arn})
        self.iot.attach_thing_principal(thingName=thing_name, principal=certificate_arn)
        return {"thingName": thing_name, "deviceConfiguration": body.get("DeviceConfiguration", {})}


class FleetProvisioning:
    """The declared template of each region of the world."""

    def __init__(self, world: World, regions: list[str]) -> None:
        self._world = world
        self.templates = {r: TemplateEmulator(world, DeclaredFleet(world.graph, r)) for r in regions}

    def __getitem__(self, region: str) -> TemplateEmulator:
        return self.templates[region]

    def identity_pool(self, region: str) -> IdentityPoolClient:
        return IdentityPoolClient(self._world.client("cognito-identity", region),
                                  self.templates[region].declared)

    def describe(self) -> str:
        return (f"fleet provisioning: {len(self.templates)} template(s), hook under its declared "
                "permission, provisioning role, claims limited to the provisioning API")

    def stop(self) -> None:
        pass


@emulation("fleet_provisioning")
def start(world: World) -> FleetProvisioning | None:
    regions = sorted({str(t.region) for t in world.declared(TEMPLATE)})
    return FleetProvisioning(world, regions) if regions else None
