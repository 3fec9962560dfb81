"""Fleet provisioning by trusted user: an installer's claim provisions a device on site.

Steps: `enrol` (the installer tool creates an installer and allow-lists a serial), `claim` (the
installer signs in as the CLI does and creates a claim), `device_provisions` (the example device,
the SDK's `iotidentity` over MQTT/TLS with the claim, then as its thing); `provision` is the same
API called directly (the scenario tests use it). What the journey checks: docs/local-run.md,
"Journeys and wires". Wires: the hook's permission names another account; the template attaches
no device policy.
"""

from __future__ import annotations

import datetime as dt
import json
import io
import stat
import tempfile
from argparse import Namespace
from pathlib import Path
from typing import Any

from components.edge.device_policy import telemetry_topic
from lambdas.contracts import fleet_allow_list as allow_list
from tools import installer
from tools.harness import StackGraph
from tools.local.emulation.fleet_provisioning import (
    IOT_PRINCIPAL,
    TEMPLATE,
    ClaimApi,
    FleetProvisioning,
    IdentityPoolClient,
    Rejected,
    ScriptedInstaller,
    declared,
)
from tools.local.emulation.iot_data import IotData
from tools.local.graph_edit import with_each
from tools.local.journeys import JourneyRun, journey, short, shown, wire
from tools.local.journeys import registry as seen
from tools.local.world import World

CAPABILITY = "fleet_provisioning"


def enrol(world: World, region: str, username: str, serial: str | None) -> str:
    """The administrator's side: an installer (FORCE_CHANGE_PASSWORD), a serial allowed."""
    status = installer.create_installer(world.client("cognito-idp", region),
                                        user_pool_id=declared(world, "aws:cognito/userPool:UserPool", region)["id"],
                                        username=username, email=f"{username}@example.com")
    if serial is not None:
        installer.allow_serial(world.resource("dynamodb", region).Table(world.table(seen.PROVISIONING)),
                               serial, now=dt.datetime.now(dt.timezone.utc))
    return str(status)


def hook_arn(world: World, region: str) -> str:
    return str(world.emulation(FleetProvisioning)[region].template["preProvisioningHook"]["targetArn"])


def hook_variables(world: World, region: str) -> dict[str, str]:
    """The declared hook's environment (e.g. the stack's claim client-id prefix)."""
    [hook] = [f for f in world.declared("aws:lambda/function:Function", region)
              if f.outputs["arn"] == hook_arn(world, region)]
    return dict(world.state(hook)["environment"]["variables"])


def claim_args(world: World, region: str, username: str, out_dir: Path, serial: str) -> Namespace:
    def runtime_id(type_token: str) -> str:
        return str(declared(world, type_token, region)["id"])
    return Namespace(region=region, user_pool_id=runtime_id("aws:cognito/userPool:UserPool"),
                     client_id=runtime_id("aws:cognito/userPoolClient:UserPoolClient"),
                     identity_pool_id=runtime_id("aws:cognito/identityPool:IdentityPool"),
                     template_name=world.emulation(FleetProvisioning)[region].name, username=username,
                     serial=serial, out_dir=str(out_dir),
                     claim_prefix=hook_variables(world, region)["CLAIM_CLIENT_ID_PREFIX"])


def claim(world: World, region: str, username: str, out_dir: Path, serial: str,
          prompter: ScriptedInstaller) -> tuple[ClaimApi, IdentityPoolClient, str]:
    """`installer claim` as an installer runs it; (the claims made, the identity pool, output)."""
    identity = IdentityPoolClient(world, region)
    api = ClaimApi(world.emulation(FleetProvisioning)[region], identity)
    out = io.StringIO()
    installer.run_claim(claim_args(world, region, username, out_dir, serial),
                        idp=world.client("cognito-idp", region), identity=identity,
                        iot_with=lambda credentials: api, prompter=prompter, out=out,
                        now=lambda: dt.datetime.now(dt.timezone.utc))
    return api, identity, out.getvalue()


def provision(world: World, region: str, claim_id: str, serial: str) -> dict[str, Any]:
    """The device: a certificate over the claim, then RegisterThing with its serial."""
    template = world.emulation(FleetProvisioning)[region]
    variables = hook_variables(world, region)
    created = template.create_keys_and_certificate(claim_id)
    accepted = template.register_thing(claim_id, f"{variables.get('CLAIM_CLIENT_ID_PREFIX', '')}{serial}",
                                       created["certificateOwnershipToken"], {"SerialNumber": serial})
    return {**accepted, "certificateId": created["certificateId"],
            "certificatePem": created["certificatePem"]}


def device_provisions(world: World, region: str, claim: dict[str, Any], serial: str) -> tuple[Any, Any, str]:
    """The example fleet device with the claim: (provisioned, outcome of the thing's publish,
    topic); raises fleet_device.ProvisioningRejected on a /rejected answer."""
    from examples.devices import fleet_device  # the device SDK: only when a device runs
    from tools.local.emulation.device_endpoint import DeviceEndpoints
    from tools.local.journeys.jitr import app_name

    prefix = hook_variables(world, region).get("CLAIM_CLIENT_ID_PREFIX", "")
    root = telemetry_topic(app_name(world), "").rstrip("/")
    made, outcome = fleet_device.run(world.emulation(DeviceEndpoints).endpoint(region), claim["certificatePem"],
                                     claim["keyPair"]["PrivateKey"], f"{prefix}{serial}",
                                     world.emulation(FleetProvisioning)[region].name, serial, root)
    return made, outcome, f"{root}/{made.thing_name}/status"


def recorder_wrote(run: JourneyRun, region: str, serial: str, certificate_id: str, pem: str) -> dict[str, Any]:
    """The end of every fleet provisioning (the installer tool's and the web app's): the
    recorder wrote the device's inventory item and settled its allow-list entry. The row."""
    world = run.world
    with run.step(f"the recorder (stream -> declared filter) writes {serial}'s inventory item (FLEET, "
                  "AMAZON, version 1); the allow-list entry is PROVISIONED", region=region) as step:
        def recorded() -> tuple[dict[str, Any], dict[str, Any]]:
            return (seen.row(world, region, serial) or {},
                    seen.record(world, region, allow_list.entry_key(serial)) or {})

        # The recorder writes the item, then settles the entry: wait for both.
        row, entry = seen.wait_for(recorded, lambda f: bool(f[0]) and f[1].get("state")
                                   in allow_list.State.SETTLED, timeout=world.converge_seconds, world=world)
        expected = {"certificateId": certificate_id, "status": "ACTIVE", "onboarding": "FLEET",
                    "issuer": "AMAZON", "originRegion": region, "writerRegion": region,
                    "version": "1", "certificatePem": pem}
        wrong = sorted(k for k, v in expected.items() if row.get(k) != v)
        step.check(bool(row) and not wrong and entry.get("state") == allow_list.State.PROVISIONED,
                   f"row {serial}: " + ", ".join(f"{k}={short(str(row.get(k)), 16)}"
                                                 for k in expected if k != "certificatePem")
                   + f"; entry {entry.get('state')}", f"unexpected: {', '.join(wrong) or 'entry'}")
    return row


def _onboard(run: JourneyRun, region: str) -> None:
    world = run.world
    serial, username = f"SN-LOCAL-{region}", "alice"
    with run.step(f"admin: the installer tool creates installer {username} in the declared user "
                  f"pool and allow-lists serial {serial}", region=region) as step:
        status = enrol(world, region, username, serial)
        entry = seen.record(world, region, allow_list.entry_key(serial)) or {}
        idp = world.client("cognito-idp", region)
        pool_id = declared(world, "aws:cognito/userPool:UserPool", region)["id"]
        groups = [g["GroupName"] for g in idp.admin_list_groups_for_user(
            UserPoolId=pool_id, Username=username)["Groups"]]
        step.check(status == "FORCE_CHANGE_PASSWORD" and groups == [installer.INSTALLERS_GROUP]
                   and entry.get("state") == allow_list.State.ALLOWED,
                   f"user {status}, groups {shown(groups)}; allow-list entry {shown(entry.get('state'))} "
                   f"(kind {shown(entry.get('kind'))})",
                   f"expected the user FORCE_CHANGE_PASSWORD in group {installer.INSTALLERS_GROUP} only and "
                   f"serial {serial} ALLOWED")

    with run.step("installer: signs in (SRP, new password, TOTP enrolment), gets the installers' "
                  "role from the identity pool, creates a claim for the template", region=region) as step:
        prompter = ScriptedInstaller()
        with tempfile.TemporaryDirectory(prefix="local-fleet-") as handover:
            api, identity, out = claim(world, region, username, Path(handover), serial, prompter)
            key_file = Path(handover) / f"{serial}.claim.pem.key"
            private = key_file.is_file() and stat.S_IMODE(key_file.stat().st_mode) == 0o600
        role = identity.role.rsplit("/", 1)[-1] if identity.role else None
        step.check(len(api.made) == 1 and bool(prompter.shown) and private,
                   f"TOTP enrolled: {bool(prompter.shown)}; role {role}; key file 0600: {private}; "
                   f"{out.splitlines()[-1] if out else ''}")

    from examples.devices.fleet_device import ProvisioningRejected
    from tools.local.emulation.device_endpoint import DeviceEndpoints

    endpoints = world.emulation(DeviceEndpoints)
    with run.step("device (SDK iotidentity, MQTT over TLS with the claim): CreateKeysAndCertificate, "
                  "RegisterThing (the hook under its declared permission, the template); then connects "
                  "as its thing and publishes", region=region) as step:
        step.logs_of(hook_arn(world, region))
        made, outcome, topic = device_provisions(world, region, api.made[0], serial)
        template = world.emulation(FleetProvisioning)[region]
        _, answer, seconds = template.hook_answers[-1]
        certificate_id, pem = made.certificate_id, made.certificate_pem
        answered = [f"{t.rsplit('/', 2)[-2]}/{a[0].rsplit('/', 1)[-1] if a else 'refused'}"
                    for c, t, a in endpoints.log(region).provisioning if c.endswith(serial)]
        arrived = endpoints.wait_for_message(region, made.thing_name, topic) if outcome.published else None
        step.check(made.thing_name == serial and answer.get("allowProvisioning") is True
                   and seen.usable(world, region, serial, certificate_id) and arrived is not None,
                   f"over MQTT: {', '.join(answered)}; hook allowProvisioning={answer.get('allowProvisioning')} "
                   f"in {seconds:.2f} s; thing {made.thing_name}; as {made.thing_name}: "
                   + (f"published to {topic}, arrived" if arrived else
                      f"no publish arrived ({'; '.join(outcome.refusals + endpoints.log(region).refusals[-1:])})"),
                   f"expected thing {serial}, the hook's allowProvisioning true, the certificate ACTIVE with "
                   f"the device policy and thing, and a publish from {serial} arriving at the endpoint")

    row = recorder_wrote(run, region, serial, certificate_id, pem)
    with run.step("the same serial never provisions twice: the hook denies a second device (its "
                  "RegisterThing answered on .../provision/json/rejected)", region=region) as step:
        try:
            device_provisions(world, region, api.made[0], serial)
            refused = "provisioned"
        except ProvisioningRejected as rejected:
            refused = f"{rejected.status_code} {rejected.error_code}"
        step.check(refused == "403 AccessDenied", f"second device: {refused}",
                   "expected RegisterThing rejected with 403 AccessDenied")
    run.known_elsewhere(region, serial, row, pem, without="provisioning there")


@journey("fleet", "Fleet provisioning: an installer's claim provisions a device; then known "
         "everywhere", capability=CAPABILITY, order=30, uses=("replication",),
         beside_background=True)
def fleet(run: JourneyRun) -> None:
    regions = run.regions_with(CAPABILITY, "fleet provisioning")
    if regions:
        _onboard(run, regions[0])


@wire("fleet-hook-permission-names-another-account", journey="fleet",
      description="the hook's Lambda permission lets AWS IoT invoke it for another account only")
def hook_permission_names_another_account(graph: StackGraph) -> StackGraph:
    hooks = {t.inputs["preProvisioningHook"]["targetArn"] for t in graph.of_type(TEMPLATE)}
    names = {f.outputs["name"] for f in graph.of_type("aws:lambda/function:Function") if f.outputs["arn"] in hooks}
    permissions = [p for p in graph.of_type("aws:lambda/permission:Permission")
                   if p.inputs.get("principal") == IOT_PRINCIPAL and p.inputs.get("function") in hooks | names]
    return with_each(graph, permissions, lambda inputs: {**inputs, "sourceAccount": "210987654321"},
                     "IoT permission for a declared template's hook")


@wire("fleet-template-attaches-no-device-policy", journey="fleet",
      description="the provisioning template creates the thing and activates the certificate but "
                  "attaches no device policy: the device provisions over MQTT, then cannot connect as its thing")
def template_attaches_no_device_policy(graph: StackGraph) -> StackGraph:
    def without_policy(inputs: dict[str, Any]) -> dict[str, Any]:
        body = json.loads(inputs["templateBody"])
        body["Resources"] = {k: v for k, v in body["Resources"].items() if v["Type"] != "AWS::IoT::Policy"}
        return {**inputs, "templateBody": json.dumps(body)}
    return with_each(graph, graph.of_type(TEMPLATE), without_policy, "provisioning template")
