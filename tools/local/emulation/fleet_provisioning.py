"""Fleet provisioning by trusted user (moto has no templates, claims, hooks or identity-pool
roles): the declared template and role attachment over what moto stores (Cognito, IAM, the
registry). Every call of the device provisioning MQTT API, over MQTT (`FleetProvisioning.mqtt_request`,
from the device endpoint) or direct, goes through the same methods, and a claim's rights are one IoT
policy (`claim_policy`) evaluated by the one evaluator. Behaviours and AWS pages: docs/emulation.md,
"Fleet provisioning and Cognito" and "Device endpoint"."""

from __future__ import annotations

import datetime as dt
import functools
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
import pyotp
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tools import pki
from tools.harness import ACCOUNT_ID
from tools.local.emulation import emulation
from tools.local.emulation.lambdas import InvokeDenied, LambdaRuntime
from tools.local.emulation.policy import AccessDenied, allows, assume, role_policies, trust_allows
from tools.local.materialise import GLOBAL_SERVICE_REGION
from tools.local.moto_fidelity import amazon_issued
from tools.local.world import World

TEMPLATE = "aws:iot/provisioningTemplate:ProvisioningTemplate"
IOT_PRINCIPAL = "iot.amazonaws.com"
HOOK_LIMIT_SECONDS = 5.0  # "Pre-provisioning hooks": return within 5 seconds
CLAIM_LIFETIME = dt.timedelta(minutes=5)  # "Provisioning by trusted user"
TOKEN_LIFETIME = dt.timedelta(hours=1)  # "Device provisioning MQTT API": certificateOwnershipToken
CREATE_TOPIC = "$aws/certificates/create/json"
CREATE_FROM_CSR_TOPIC = "$aws/certificates/create-from-csr/json"
# "Provisioning templates", Resources section: the properties each resource type documents
# (OverrideSettings sits beside Properties). Anything else is refused, the less permissive
# reading of an undocumented property, never silently ignored or guessed at.
DOCUMENTED_PROPERTIES: Mapping[str, frozenset[str]] = {
    "AWS::IoT::Thing": frozenset({"ThingName", "AttributePayload", "ThingTypeName", "ThingGroups",
                                  "BillingGroup", "PackageVersions"}),
    "AWS::IoT::Certificate": frozenset({"CertificateId", "CertificatePem", "CACertificatePem",
                                        "CertificateSigningRequest", "Status"}),
    "AWS::IoT::Policy": frozenset({"PolicyName", "PolicyDocument"}),
}
# The template page documents no thing-principal attachment type, so AWS IoT attaches the
# certificate as AttachThingPrincipal does without one: NON_EXCLUSIVE_THING (the certificate
# may then be attached to other things too; the recorder locks it EXCLUSIVE_THING). An
# existing EXCLUSIVE_THING attachment elsewhere refuses it (AttachThingPrincipal).
TEMPLATE_ATTACHMENT_TYPE = "NON_EXCLUSIVE_THING"


class Rejected(Exception):
    """A `.../rejected` reply: statusCode and errorCode as AWS IoT sends them."""

    def __init__(self, status_code: int, error_code: str, message: str) -> None:
        super().__init__(f"{status_code} {error_code}: {message}")
        self.status_code, self.error_code = status_code, error_code


def declared(world: World, type_token: str, region: str) -> dict[str, Any]:
    """The one resource of this type the stack declares in the region, as stored."""
    [found] = world.declared(type_token, region)
    return {**world.state(found), "id": world.resolver(found.id)}


def login(world: World, region: str, logins: Mapping[str, str]) -> dict[str, Any]:
    """The ID token's claims if `logins` is what the identity pool accepts (GetId and
    GetCredentialsForIdentity): an unexpired ID token of this pool's app client, no guests."""
    user_pool = declared(world, "aws:cognito/userPool:UserPool", region)
    client = declared(world, "aws:cognito/userPoolClient:UserPoolClient", region)
    if set(logins) != {user_pool["endpoint"]}:
        raise AccessDenied(f"logins {sorted(logins)}: this identity pool trusts only {user_pool['endpoint']}"
                           " (unauthenticated access is not supported for this identity pool)")
    try:
        claims = dict(jwt.decode(logins[user_pool["endpoint"]], options={"verify_signature": False}))
    except jwt.PyJWTError:
        raise AccessDenied("Invalid login token.") from None
    if (claims.get("iss"), claims.get("token_use"), claims.get("aud")) != (
            f"https://{user_pool['endpoint']}", "id", client["id"]) or claims.get("exp", 0) < time.time():
        raise AccessDenied("Invalid login token: not an unexpired ID token of this pool's app client")
    return claims


def role_for(world: World, region: str, logins: Mapping[str, str], custom_role_arn: str | None = None) -> str:
    """The role (ARN) GetCredentialsForIdentity hands out for these Logins, as AWS documents
    Token mapping ("Role-based access control"): the CustomRoleArn asked for if it is one of
    the token's roles; else the only role, or the group of lowest precedence; else the
    ambiguous-role resolution (declared: Deny). The role must trust this pool."""
    claims = login(world, region, logins)
    pool = declared(world, "aws:cognito/identityPool:IdentityPool", region)
    [mapping] = declared(world, "aws:cognito/identityPoolRoleAttachment:IdentityPoolRoleAttachment",
                         region)["roleMappings"]
    user_pool = declared(world, "aws:cognito/userPool:UserPool", region)
    client = declared(world, "aws:cognito/userPoolClient:UserPoolClient", region)
    if mapping["identityProvider"] != f"{user_pool['endpoint']}:{client['id']}":
        raise AccessDenied(f"the role mapping names {mapping['identityProvider']}, not this pool's client")
    if (mapping["type"], mapping["ambiguousRoleResolution"]) != ("Token", "Deny"):
        raise AccessDenied(f"role mapping {mapping['type']}/{mapping['ambiguousRoleResolution']}: not Token/Deny")
    groups = claims.get("cognito:groups", [])
    mine = [g for g in world.client("cognito-idp", region).list_groups(UserPoolId=user_pool["id"])["Groups"]
            if g["GroupName"] in groups and g.get("RoleArn")]
    roles = {g["RoleArn"] for g in mine}  # the token's cognito:roles
    ranked = sorted((g["Precedence"], g["RoleArn"]) for g in mine if "Precedence" in g)
    best = {arn for rank, arn in ranked if rank == ranked[0][0]}
    if custom_role_arn is not None:  # asked for: must be one of the token's roles
        roles = {custom_role_arn} & roles
    elif len(roles) > 1 and len(best) == 1:  # else the preferred role (lowest precedence)
        roles = best
    if len(roles) != 1:
        raise AccessDenied(f"no single role for groups {groups}" + (
            f" (CustomRoleArn {custom_role_arn})" if custom_role_arn else ""))
    [role] = roles
    trust = world.client("iam", GLOBAL_SERVICE_REGION).get_role(
        RoleName=role.rsplit("/", 1)[-1])["Role"]["AssumeRolePolicyDocument"]
    if not trust_allows(trust, ("Federated", "cognito-identity.amazonaws.com"), "sts:AssumeRoleWithWebIdentity", {
            "cognito-identity.amazonaws.com:aud": pool["id"],
            "cognito-identity.amazonaws.com:amr": ["authenticated", user_pool["endpoint"]]}):
        raise AccessDenied(f"{role} does not trust this identity pool")
    return str(role)


class IdentityPoolClient:
    """The installer tool's cognito-identity client: moto's ids and (static) credentials, the
    declared pool's role for the ID token (`role` afterwards)."""

    def __init__(self, world: World, region: str) -> None:
        self.world, self.region = world, region
        self.moto = world.client("cognito-identity", region)
        self.role: str | None = None

    def get_id(self, **kwargs: Any) -> Any:
        login(self.world, self.region, kwargs.get("Logins") or {})
        return self.moto.get_id(**kwargs)

    def get_credentials_for_identity(self, **kwargs: Any) -> Any:
        self.role = role_for(self.world, self.region, kwargs["Logins"], kwargs.get("CustomRoleArn"))
        return self.moto.get_credentials_for_identity(**kwargs)


class ClaimApi:
    """The IoT client the installer tool gets for those credentials (`made`: the claims)."""

    def __init__(self, template: TemplateEmulator, identity: IdentityPoolClient) -> None:
        self._template, self._identity = template, identity
        self.made: list[dict[str, Any]] = []

    def create_provisioning_claim(self, templateName: str) -> dict[str, Any]:  # noqa: N803
        if self._identity.role is None:
            raise AccessDenied("no credentials from the identity pool")
        iam = self._template.world.client("iam", GLOBAL_SERVICE_REGION)
        response = self._template.create_provisioning_claim(role_policies(iam, self._identity.role), templateName)
        self.made.append(response)
        return response


class AuthenticatorApp(pyotp.TOTP):
    min_secret_length_bits = 0  # moto's shared TOTP secret is short; the codes are RFC 6238


TOTP_MARGIN_SECONDS = 2.0


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
        # moto's pool accepts only the current 30 s step: a code read in its last seconds may be
        # checked in the next one. A person waits for a fresh code; so does this one.
        left = self.totp.interval - time.time() % self.totp.interval
        if left < TOTP_MARGIN_SECONDS:
            time.sleep(left + 0.05)
        code = self.totp.now()
        return f"{(int(code) + 1) % 1_000_000:06d}" if self.wrong_code else code

    def show_totp_setup(self, secret: str, uri: str) -> None:
        self.shown.append(uri)
        self.totp = AuthenticatorApp(secret)


def iot_arn(region: str, kind: str, name: str) -> str:
    return f"arn:aws:iot:{region}:{ACCOUNT_ID}:{kind}/{name}"


def claim_certificate() -> tuple[str, str, str]:
    """A temporary claim certificate: (id, PEM, private key PEM); not in the account's list.
    Amazon-issued, as AWS IoT issues it, so the device endpoint's TLS accepts it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "AWS IoT Provisioning Claim")])
    pem = amazon_issued(name, key.public_key())
    fingerprint = x509.load_pem_x509_certificate(pem.encode()).fingerprint(hashes.SHA256()).hex()
    return fingerprint, pem, pki.pem_private_key(key).decode()


def provision_topic(template_name: str) -> str:
    return f"$aws/provisioning-templates/{template_name}/provision/json"


def claim_policy(region: str, template_name: str) -> dict[str, Any]:
    """What a trusted-user claim may do, as an IoT policy. AWS documents that a claim can only
    provision with its template, not the policy it carries: this is the least the MQTT API
    needs (connect; publish the three requests; subscribe to and receive their answers), the
    less permissive reading. JSON payloads only (the emulation serves no CBOR)."""
    arn = functools.partial(iot_arn, region)
    requests = [CREATE_TOPIC, CREATE_FROM_CSR_TOPIC, provision_topic(template_name)]
    answers = [f"{r}/{outcome}" for r in requests for outcome in ("accepted", "rejected")]
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": arn("client", "*")},
        {"Effect": "Allow", "Action": "iot:Publish", "Resource": [arn("topic", r) for r in requests]},
        {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": [arn("topicfilter", a) for a in answers]},
        {"Effect": "Allow", "Action": "iot:Receive", "Resource": [arn("topic", a) for a in answers]}]}


@dataclass(frozen=True)
class OwnershipToken:
    """A certificateOwnershipToken: the certificate it proves, the claim it was issued to (a
    token is good on its claim only: undocumented, the less permissive reading), its expiry."""
    certificate_id: str
    claim_id: str
    expires: dt.datetime


@dataclass
class TemplateEmulator:
    """One region's declared template: claims, the MQTT provisioning API, RegisterThing."""

    world: World
    region: str
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)
    claims: dict[str, dt.datetime] = field(default_factory=dict)  # claim id -> expiry
    tokens: dict[str, OwnershipToken] = field(default_factory=dict)
    hook_answers: list[tuple[dict[str, Any], Any, float]] = field(default_factory=list)

    @property
    def template(self) -> dict[str, Any]:
        return declared(self.world, TEMPLATE, self.region)

    @property
    def name(self) -> str:
        return str(self.template["name"])

    @property
    def iot(self) -> Any:
        return self.world.client("iot", self.region)

    def create_provisioning_claim(self, caller_policies: list[Mapping[str, Any]], name: str) -> dict[str, Any]:
        """CreateProvisioningClaim by a caller holding `caller_policies`."""
        template = self.template
        if name != template["name"]:
            raise Rejected(404, "ResourceNotFoundException", f"no template {name}")
        if not allows(caller_policies, "iot:CreateProvisioningClaim", template["arn"]):
            raise AccessDenied(f"not authorized to perform iot:CreateProvisioningClaim on {template['arn']}")
        if template.get("enabled") is not True:
            raise Rejected(400, "InvalidRequestException", "template disabled")
        certificate_id, pem, key_pem = claim_certificate()
        self.claims[certificate_id] = expiration = self.now() + CLAIM_LIFETIME
        return {"certificateId": certificate_id, "certificatePem": pem,
                "keyPair": {"PrivateKey": key_pem, "PublicKey": "unused"}, "expiration": expiration}

    def live_claim(self, claim_id: str) -> bool:
        return claim_id in self.claims and self.now() < self.claims[claim_id]

    def claim_allows(self, claim_id: str, action: str, resource: str) -> tuple[bool, str]:
        """The claim policy on `action` over `resource` ("topic/<t>", "client/<id>"...)."""
        if not self.live_claim(claim_id):
            return False, "unknown or expired claim certificate"
        kind, _, name = resource.partition("/")
        if allows([claim_policy(self.region, self.name)], action, iot_arn(self.region, kind, name)):
            return True, f"live claim; the claim policy allows {action}"
        return False, f"the claim policy does not allow {action} on {resource}"

    def _claim_request(self, claim_id: str, topic: str) -> None:
        """A claim's use of the MQTT provisioning API: the claim policy's topics, for 5 minutes."""
        ok, why = self.claim_allows(claim_id, "iot:Publish", f"topic/{topic}")
        if not ok:
            raise AccessDenied(why)

    def _token(self, claim_id: str, certificate_id: str) -> str:
        token = uuid.uuid4().hex
        self.tokens[token] = OwnershipToken(certificate_id, claim_id, self.now() + TOKEN_LIFETIME)
        return token

    def create_keys_and_certificate(self, claim_id: str) -> dict[str, Any]:
        self._claim_request(claim_id, CREATE_TOPIC)
        created = self.iot.create_keys_and_certificate(setAsActive=False)  # PENDING on AWS
        return {"certificateId": created["certificateId"], "certificatePem": created["certificatePem"],
                "privateKey": created["keyPair"]["PrivateKey"],
                "certificateOwnershipToken": self._token(claim_id, created["certificateId"])}

    def create_certificate_from_csr(self, claim_id: str, csr: str) -> dict[str, Any]:
        self._claim_request(claim_id, CREATE_FROM_CSR_TOPIC)
        try:
            x509.load_pem_x509_csr(csr.encode())
        except ValueError:
            raise Rejected(400, "InvalidCsr", "certificateSigningRequest is not a PEM CSR") from None
        created = self.iot.create_certificate_from_csr(certificateSigningRequest=csr, setAsActive=False)
        return {"certificateId": created["certificateId"], "certificatePem": created["certificatePem"],
                "certificateOwnershipToken": self._token(claim_id, created["certificateId"])}

    def register_thing(self, claim_id: str, client_id: str, token: str,
                       parameters: Mapping[str, str]) -> dict[str, Any]:
        self._claim_request(claim_id, provision_topic(self.name))
        owned = self.tokens.get(token)
        if owned is None or owned.claim_id != claim_id or self.now() >= owned.expires:
            raise Rejected(400, "InvalidCertificateOwnershipToken",
                           "the certificateOwnershipToken is unknown, expired or another claim's")
        certificate_id = owned.certificate_id
        pem = self.iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]["certificatePem"]
        overrides = self.run_hook({"claimCertificateId": claim_id, "certificateId": certificate_id,
                                   "certificatePem": pem, "templateArn": self.template["arn"],
                                   "clientId": client_id, "parameters": dict(parameters)})
        return self.apply_template({**parameters, **overrides, "AWS::IoT::Certificate::Id": certificate_id})

    def run_hook(self, event: dict[str, Any]) -> dict[str, str]:
        """The declared hook as AWS IoT invokes it: anything but `allowProvisioning: true`
        within 5 seconds is AccessDenied."""
        template = self.template
        hook = template["preProvisioningHook"]
        if hook.get("payloadVersion") != "2020-04-01":
            raise Rejected(400, "InvalidRequestException", f"hook payload {hook.get('payloadVersion')}")
        runtime = self.world.emulation(LambdaRuntime)
        try:
            answer = runtime.invoke_as_service(
                hook["targetArn"], event, principal=IOT_PRINCIPAL, source_arn=template["arn"],
                source_account=ACCOUNT_ID)
        except InvokeDenied as denied:
            raise Rejected(403, "AccessDenied", f"AWS IoT may not invoke the hook: {denied}") from None
        except Exception as error:  # the function failed
            raise Rejected(403, "AccessDenied", f"hook failed: {type(error).__name__}: {error}") from None
        # Cold start included, as AWS counts it; its imports by their CPU time (lambdas.Timing):
        # the run's other threads slowing this process down are not the hook taking long.
        timing = runtime.last_timing()
        seconds = timing.counted
        self.hook_answers.append((event, answer, seconds))
        if seconds > HOOK_LIMIT_SECONDS:
            raise Rejected(403, "AccessDenied", f"hook took {seconds:.1f}s (cold start {timing.init_cpu:.1f}s "
                                                f"of CPU, invocation {timing.run_wall:.1f}s)")
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
        return [TemplateEmulator.resolve(v, parameters) for v in value] if isinstance(value, list) else value

    def apply_template(self, parameters: Mapping[str, str]) -> dict[str, Any]:
        """The declared template body, each IoT call allowed by the provisioning role."""
        template = self.template
        try:
            documents = assume(self.world.client("iam", GLOBAL_SERVICE_REGION), template["provisioningRoleArn"],
                               service=IOT_PRINCIPAL, source_account=ACCOUNT_ID, source_arn=template["arn"])
        except AccessDenied as denied:
            raise Rejected(403, "AccessDenied", str(denied)) from None

        def may(action: str, resource: str, context: Mapping[str, Any] | None = None) -> None:
            if not allows(documents, action, resource, context=context):
                raise Rejected(403, "AccessDenied", f"provisioning role may not {action} on {resource}")

        body = json.loads(template["templateBody"])
        for logical, resource in body["Resources"].items():
            undocumented = sorted(set(resource.get("Properties", {}))
                                  - DOCUMENTED_PROPERTIES.get(resource["Type"], frozenset()))
            if resource["Type"] not in DOCUMENTED_PROPERTIES or undocumented:
                raise Rejected(400, "InvalidRequestException",
                               f"template resource {logical} ({resource['Type']}): "
                               f"undocumented {', '.join(undocumented) or 'type'}")
        values = {k: v for k, v in parameters.items() if k in body.get("Parameters", {})}
        resources = [(r["Type"], self.resolve(r.get("Properties", {}), values)) for r in body["Resources"].values()]
        things = [p for t, p in resources if t == "AWS::IoT::Thing"]
        certificates = [p for t, p in resources if t == "AWS::IoT::Certificate"]
        if len(things) != 1 or len(certificates) != 1:
            raise Rejected(400, "InvalidRequestException", "one thing and one certificate expected")
        thing_name, certificate = things[0]["ThingName"], certificates[0]
        thing_arn, certificate_arn = (iot_arn(self.region, "thing", thing_name),
                                       iot_arn(self.region, "cert", certificate["CertificateId"]))
        may("iot:CreateThing", thing_arn)
        self.iot.create_thing(thingName=thing_name, attributePayload={"attributes": {
            k: str(v) for k, v in things[0].get("AttributePayload", {}).items()}})
        may("iot:UpdateCertificate", certificate_arn)
        self.iot.update_certificate(certificateId=certificate["CertificateId"],
                                    newStatus=certificate.get("Status", "ACTIVE").upper())
        for policy in [p for t, p in resources if t == "AWS::IoT::Policy"]:
            if "PolicyDocument" in policy:
                raise Rejected(400, "InvalidRequestException", "the template must name the policy")
            may("iot:GetPolicy", iot_arn(self.region, "policy", policy["PolicyName"]))
            self.iot.get_policy(policyName=policy["PolicyName"])  # must exist
            may("iot:AttachPolicy", certificate_arn)
            self.iot.attach_policy(policyName=policy["PolicyName"], target=certificate_arn)
        may("iot:AttachThingPrincipal", certificate_arn, {"iot:thingArn": thing_arn})
        try:
            self.iot.attach_thing_principal(thingName=thing_name, principal=certificate_arn,
                                            thingPrincipalType=TEMPLATE_ATTACHMENT_TYPE)
        except ClientError as error:  # e.g. attached EXCLUSIVE_THING to another thing
            raise Rejected(400, str(error.response["Error"]["Code"]),
                           str(error.response["Error"]["Message"])) from None
        return {"thingName": thing_name, "deviceConfiguration": body.get("DeviceConfiguration", {})}


class FleetProvisioning:
    """The declared template of each region of the world."""

    def __init__(self, world: World, regions: list[str]) -> None:
        self.templates = {r: TemplateEmulator(world, r) for r in regions}

    def __getitem__(self, region: str) -> TemplateEmulator:
        return self.templates[region]

    def claim_allows(self, region: str, claim_id: str, action: str, resource: str) -> tuple[bool, str] | None:
        """None when `claim_id` is no claim of the region's template (a device certificate)."""
        template = self.templates.get(region)
        if template is None or claim_id not in template.claims:
            return None
        return template.claim_allows(claim_id, action, resource)

    def mqtt_request(self, region: str, claim_id: str, client_id: str, topic: str,
                     payload: bytes) -> tuple[str, dict[str, Any]] | None:
        """A claim's request on a provisioning topic -> (answer topic, answer payload) as the
        "Device provisioning MQTT API" page gives them: `<topic>/accepted` with the operation's
        response, or `<topic>/rejected` with {statusCode, errorCode, errorMessage}. None: not a
        topic of this API (the endpoint refuses it)."""
        template = self.templates.get(region)
        if template is None or topic not in (CREATE_TOPIC, CREATE_FROM_CSR_TOPIC, provision_topic(template.name)):
            return None
        try:
            try:
                request = json.loads(payload or b"{}")
            except ValueError:
                request = None
            if not isinstance(request, dict):
                raise Rejected(400, "InvalidPayload", "the request payload is not a JSON object")
            if topic == CREATE_TOPIC:
                answer = template.create_keys_and_certificate(claim_id)
            elif topic == CREATE_FROM_CSR_TOPIC:
                csr = request.get("certificateSigningRequest")
                if not isinstance(csr, str):
                    raise Rejected(400, "InvalidPayload", "certificateSigningRequest (a PEM CSR) is required")
                answer = template.create_certificate_from_csr(claim_id, csr)
            else:
                token, parameters = request.get("certificateOwnershipToken"), request.get("parameters") or {}
                if not isinstance(token, str) or not isinstance(parameters, dict) or not all(
                        isinstance(k, str) and isinstance(v, str) for k, v in parameters.items()):
                    raise Rejected(400, "InvalidPayload", "certificateOwnershipToken (string) is required; "
                                   "parameters must map strings to strings")
                answer = template.register_thing(claim_id, client_id, token, parameters)
        except Rejected as rejected:
            return f"{topic}/rejected", {"statusCode": rejected.status_code, "errorCode": rejected.error_code,
                                         "errorMessage": str(rejected).split(": ", 1)[-1]}
        except AccessDenied as denied:
            return f"{topic}/rejected", {"statusCode": 403, "errorCode": "AccessDenied", "errorMessage": str(denied)}
        return f"{topic}/accepted", answer

    def describe(self) -> str:
        return (f"fleet provisioning: {len(self.templates)} template(s), hook under its declared "
                "permission, provisioning role, claims limited to the provisioning API")

    def stop(self) -> None:
        pass


@emulation("fleet_provisioning")
def start(world: World) -> FleetProvisioning | None:
    regions = sorted({str(t.region) for t in world.declared(TEMPLATE)})
    return FleetProvisioning(world, regions) if regions else None
