"""Fleet provisioning as AWS IoT and Cognito would run it, built from the *declared* stack.

moto has no provisioning templates, claims, pre-provisioning hooks or identity-pool role
mapping. This module takes them from the resource graph of `tools.harness.evaluate_program`
— the template body and its hook target, the Lambda permission, the provisioning, installer
and claim policies, the identity pool's role attachment — and runs them against moto's IoT
registry. Every AWS IoT call the template makes is first checked against the declared
provisioning role's policy, every MQTT operation of a claim against the declared claim
policy, and every claim request against the policy of the role the identity pool hands out:
a wrong wire in the stack fails the journey.

Used by the local run (`@emulation("fleet-provisioning")`: the hook runs in the Lambda
emulation, under its declared permission) and by the tests with moto in-process
(tests/support/fleet_emulator.py runs the hook with the handler imported directly). How the
hook is invoked is the one thing they differ in: `FleetEmulator.invoke_hook`.

Where AWS is stricter than this emulation, the difference is named in the method.
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
from tools.local.emulation.policy_eval import allowed, trust_allows
from tools.local.system import LocalSystem

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

IOT_PRINCIPAL = "iot.amazonaws.com"
HOOK_PAYLOAD_VERSION = "2020-04-01"
HOOK_LIMIT_SECONDS = 5.0  # "Pre-provisioning hooks": return within 5 seconds
CLAIM_LIFETIME = dt.timedelta(minutes=5)  # "Provisioning by trusted user"


class AccessDenied(Exception):
    pass


class Rejected(Exception):
    """A `.../rejected` reply: statusCode and errorCode as AWS IoT sends them."""

    def __init__(self, status_code: int, error_code: str, message: str) -> None:
        super().__init__(f"{status_code} {error_code}: {message}")
        self.status_code = status_code
        self.error_code = error_code


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
                and p.inputs.get("function") in (self.hook.outputs["name"],
                                                 self.hook.outputs["arn"])]

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
    def device_policy_name(self) -> str:
        names = [r["Properties"]["PolicyName"] for r in self.template_body["Resources"].values()
                 if r["Type"] == "AWS::IoT::Policy"]
        if len(names) != 1:
            raise LookupError(f"the template names {len(names)} policies")
        return str(names[0])

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


# --- Cognito identity pool (enhanced flow, Token role mapping) -----------------------------

@dataclass
class IdentityPoolEmulation:
    """GetCredentialsForIdentity as the declared identity pool would answer it: the role
    comes from the ID token's group (Token mapping, ambiguous -> Deny) and must trust this
    identity pool for authenticated identities."""

    declared: DeclaredFleet

    def role_for(self, id_token: str, custom_role_arn: str | None = None) -> RecordedResource:
        """The role GetCredentialsForIdentity hands out for this ID token, as AWS documents
        Token mapping ("Using role-based access control", choosing a role from the token): the
        `CustomRoleArn` asked for if it is one of the token's roles (else denied); otherwise
        the preferred role (the group of lowest precedence; none on a tie between different
        roles); otherwise the mapping's ambiguous-role resolution (ours: Deny)."""
        attachment = self.declared.role_attachment
        [mapping] = attachment.inputs["roleMappings"]
        pool, client = self.declared.user_pool, self.declared.user_pool_client
        if mapping["identityProvider"] != f"{pool.outputs['endpoint']}:{client.id}":
            raise AccessDenied(f"the role mapping names provider {mapping['identityProvider']}, "
                               f"not this pool's client")
        if mapping["type"] != "Token" or mapping["ambiguousRoleResolution"] != "Deny":
            raise AccessDenied(f"role mapping {mapping['type']}/"
                               f"{mapping['ambiguousRoleResolution']}: expected Token/Deny")
        claims = jwt.decode(id_token, options={"verify_signature": False})
        groups = {g.inputs["name"]: g for g in self.declared.groups}
        mine = [groups[name] for name in claims.get("cognito:groups", [])
                if name in groups and groups[name].inputs.get("roleArn")]
        roles = {str(g.inputs["roleArn"]) for g in mine}  # the token's cognito:roles
        if custom_role_arn is not None:
            if custom_role_arn not in roles:
                raise AccessDenied(f"CustomRoleArn {custom_role_arn} is not a role of groups "
                                   f"{claims.get('cognito:groups')}")
            chosen = custom_role_arn
        else:
            ranked = sorted((int(g.inputs.get("precedence") or 0), str(g.inputs["roleArn"]))
                            for g in mine if g.inputs.get("precedence") is not None)
            best = {arn for rank, arn in ranked if ranked and rank == ranked[0][0]}
            if len(roles) == 1:
                chosen = next(iter(roles))
            elif len(best) == 1:
                chosen = next(iter(best))
            else:
                raise AccessDenied(f"no single role for groups {claims.get('cognito:groups')}")
        role = self.declared.role(chosen)
        context = {"cognito-identity.amazonaws.com:aud": self.declared.identity_pool.id,
                   "cognito-identity.amazonaws.com:amr": ["authenticated",
                                                          pool.outputs["endpoint"]]}
        if not trust_allows(role.inputs["assumeRolePolicy"],
                            ("Federated", "cognito-identity.amazonaws.com"),
                            "sts:AssumeRoleWithWebIdentity", context):
            raise AccessDenied(f"{role.name} does not trust this identity pool")
        return role


class IdentityPoolClient:
    """What the installer tool takes as its cognito-identity client: moto's for ids and
    (static) credentials, plus the declared identity pool's role choice for the ID token
    presented (`role` is the chosen role afterwards)."""

    def __init__(self, moto_identity: Any, emulation: IdentityPoolEmulation) -> None:
        self.moto = moto_identity
        self.emulation = emulation
        self.role: RecordedResource | None = None

    def get_id(self, **kwargs: Any) -> Any:
        return self.moto.get_id(**kwargs)

    def get_credentials_for_identity(self, **kwargs: Any) -> Any:
        [id_token] = kwargs["Logins"].values()
        self.role = self.emulation.role_for(id_token)  # AccessDenied if none
        return self.moto.get_credentials_for_identity(**kwargs)


class ClaimApi:
    """The IoT client the installer tool gets for the identity pool's credentials: its
    CreateProvisioningClaim is allowed by the policy of the role the pool chose (`made`
    keeps the claims' answers)."""

    def __init__(self, emulator: FleetEmulator, identity: IdentityPoolClient) -> None:
        self._emulator = emulator
        self._identity = identity
        self.made: list[dict[str, Any]] = []

    def create_provisioning_claim(self, templateName: str) -> dict[str, Any]:  # noqa: N803
        role = self._identity.role
        if role is None:
            raise AccessDenied("no credentials from the identity pool")
        response = self._emulator.create_provisioning_claim(
            self._emulator.declared.role_policy(role.outputs["arn"]), templateName=templateName)
        self.made.append(response)
        return response


# --- the installer's side: a person with an authenticator app ------------------------------

class AuthenticatorApp(pyotp.TOTP):
    # moto hands every user the same 60-bit secret; Cognito's are longer. The codes are
    # computed the same way (RFC 6238, 30 s, 6 digits).
    min_secret_length_bits = 0


@dataclass
class ScriptedInstaller:
    """Answers the installer CLI's prompts like a person with an authenticator app would."""

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


# --- AWS IoT: claims, the MQTT provisioning API, the template ---------------------------------

@dataclass
class Claim:
    certificate_id: str
    certificate_pem: str
    private_key: str
    expiration: dt.datetime


def claim_certificate() -> tuple[str, str, str]:
    """A temporary claim certificate as AWS IoT hands it out: (id, PEM, private key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "AWS IoT Provisioning Claim")])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=1))
                   .not_valid_after(now + dt.timedelta(days=1))
                   .sign(key, hashes.SHA256()))
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return certificate.fingerprint(hashes.SHA256()).hex(), pem, key_pem


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
        certificate_id, pem, key_pem = claim_certificate()
        # Not registered in the account: "Temporary provisioning claim certificates do not
        # appear in your account's list of certificates."
        claim = Claim(certificate_id, pem, key_pem, self.now() + CLAIM_LIFETIME)
        self.claims[certificate_id] = claim
        return {"certificateId": certificate_id, "certificatePem": pem,
                "keyPair": {"PrivateKey": key_pem, "PublicKey": "unused"},
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

    def invoke_hook(self, hook: RecordedResource, event: dict[str, Any], *, source_arn: str,
                    source_account: str) -> tuple[Any, float]:
        """AWS IoT invoking the declared hook for this template: (answer, seconds). Raises
        InvokeDenied when no declared permission lets IoT invoke it for this template."""
        raise NotImplementedError("the local run and the tests each say how a hook runs")

    def run_hook(self, event: dict[str, Any]) -> dict[str, str]:
        """Invoke the declared hook as AWS IoT does; anything but `allowProvisioning: true`
        within 5 seconds is ACCESS_DENIED."""
        hook_setting = self.declared.template.inputs["preProvisioningHook"]
        if hook_setting.get("payloadVersion") != HOOK_PAYLOAD_VERSION:
            raise Rejected(400, "InvalidRequestException",
                           f"hook payload version {hook_setting.get('payloadVersion')}")
        try:
            answer, seconds = self.invoke_hook(self.declared.hook, event,
                                               source_arn=self.declared.template_arn,
                                               source_account=ACCOUNT_ID)
        except InvokeDenied as denied:
            raise Rejected(403, "AccessDenied",
                           f"AWS IoT may not invoke the hook for this template: {denied}") from None
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
        if not trust_allows(role.inputs["assumeRolePolicy"], ("Service", IOT_PRINCIPAL),
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
        if len(things) != 1 or len(certificates) != 1:
            raise Rejected(400, "InvalidRequestException",
                           "the template must declare one thing and one certificate")
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
            if "PolicyDocument" in policy:
                raise Rejected(400, "InvalidRequestException",
                               "the template must name the device policy, not define one")
            self._role_may("iot:GetPolicy", self._arn("policy", policy["PolicyName"]))
            self.iot.get_policy(policyName=policy["PolicyName"])  # must exist
            self._role_may("iot:AttachPolicy", certificate_arn)
            self.iot.attach_policy(policyName=policy["PolicyName"], target=certificate_arn)
        self._role_may("iot:AttachThingPrincipal", certificate_arn, {"iot:thingArn": thing_arn})
        self.iot.attach_thing_principal(thingName=thing_name, principal=certificate_arn)
        return {"thingName": thing_name, "deviceConfiguration": body.get("DeviceConfiguration", {})}


# --- the local run -----------------------------------------------------------------------------

@dataclass
class LocalFleetEmulator(FleetEmulator):
    """The hook runs in the Lambda emulation, which checks the declared permission."""

    system: LocalSystem | None = None

    def invoke_hook(self, hook: RecordedResource, event: dict[str, Any], *, source_arn: str,
                    source_account: str) -> tuple[Any, float]:
        if self.system is None:
            raise RuntimeError("a local fleet emulator needs the local system")
        runtime = self.system.emulation(LambdaRuntime)
        started = time.monotonic()
        answer = runtime.invoke_as_service(str(hook.outputs["arn"]), event,
                                           principal=IOT_PRINCIPAL, source_arn=source_arn,
                                           source_account=source_account)
        return answer, time.monotonic() - started


class FleetProvisioning:
    """Per region of the run: the declared fleet, its emulator and identity pool."""

    def __init__(self, system: LocalSystem, regions: list[str]) -> None:
        self._system = system
        self.emulators: dict[str, LocalFleetEmulator] = {}
        for region in regions:
            self.emulators[region] = LocalFleetEmulator(
                DeclaredFleet(system.graph, region), system.client("iot", region), system=system)

    def __getitem__(self, region: str) -> LocalFleetEmulator:
        return self.emulators[region]

    def identity_pool(self, region: str) -> IdentityPoolClient:
        return IdentityPoolClient(self._system.client("cognito-identity", region),
                                  IdentityPoolEmulation(self.emulators[region].declared))

    def describe(self) -> str:
        return (f"fleet provisioning: {len(self.emulators)} declared template(s) with their hook "
                "(declared permission), provisioning role and claim policy; identity-pool role "
                "mapping")

    def stop(self) -> None:
        pass


@emulation("fleet-provisioning")
def start(system: LocalSystem) -> FleetProvisioning | None:
    regions = [r for r in system.regions if any(t.region == r for t in system.declared(TEMPLATE))]
    return FleetProvisioning(system, regions) if regions else None
