"""Fleet provisioning by trusted user: an installer's claim provisions a device on site.

In the first region of the run with the capability: the administrator creates an installer
in the declared user pool and allow-lists a serial (`tools/installer.py`'s own functions);
the installer signs in as the CLI does (SRP, first-sign-in password, TOTP enrolment: moto
Cognito checks the codes), the declared identity pool hands out the installers' role
(its Token role mapping, emulated), whose policy must allow CreateProvisioningClaim on this
region's template; the device then runs the MQTT provisioning API with the claim: the
grant AWS gives a claim (its template's provisioning API only), the declared pre-provisioning hook run in-process under its declared
permission (which must name this template), the declared template applied with the declared
provisioning role. The recorder, triggered through the declared event-source mapping and its
filter on the provisioning table's stream, writes the inventory item. The row replicates;
the device is usable in the other regions once the replication capability exists.

Wire this journey proves: the hook permission names another template.
"""

from __future__ import annotations

import datetime as dt
import io
import stat
import tempfile
from argparse import Namespace
from pathlib import Path
from typing import Any

from lambdas.contracts import fleet_allow_list as allow_list
from tools import installer
from tools.harness import StackGraph
from tools.local.emulation.device_gateway import DeviceGateway
from tools.local.emulation.fleet_provisioning import (
    IOT_PRINCIPAL,
    ClaimApi,
    DeclaredFleet,
    FleetProvisioning,
    Rejected,
    ScriptedInstaller,
)
from tools.local.emulation.fleet_provisioning import (
    TEMPLATE as TEMPLATE_TYPE,
)
from tools.local.graph_edit import with_inputs
from tools.local.journeys import JourneyRun, journey, plain_item, short, wire
from tools.local.journeys.elsewhere import known_elsewhere
from tools.local.system import LocalSystem

CAPABILITY = "fleet_provisioning"
PROVISIONING = "cvm-provisioning"  # the program's export keys of the tables
INVENTORY = "device-inventory"
INSTALLER = "alice"
RECORDER_TIMEOUT_SECONDS = 30  # the recorder confirms with IoT, polling once a second


def _table(system: LocalSystem, key: str) -> str:
    return str(system.graph.outputs["tables"][key]["name"])


def _row(system: LocalSystem, region: str, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
    return plain_item(system.client("dynamodb", region).get_item(
        TableName=table, Key=key, ConsistentRead=True).get("Item"))


def _onboard(run: JourneyRun, region: str) -> None:
    system = run.system
    emulator = system.emulation(FleetProvisioning)[region]
    declared = emulator.declared
    idp = system.client("cognito-idp", region)
    iot = system.client("iot", region)
    pool_id = system.resolver(declared.user_pool.id)
    serial = f"SN-LOCAL-{region}"
    hook_environment = system.state(declared.hook).get("environment", {}).get("variables", {})
    client_id = f"{hook_environment.get('CLAIM_CLIENT_ID_PREFIX', '')}{serial}"

    with run.step(f"admin: the installer tool creates installer {INSTALLER} in the declared user "
                  f"pool and allow-lists serial {serial}", region=region) as step:
        status = installer.create_installer(idp, user_pool_id=pool_id, username=INSTALLER,
                                            email=f"{INSTALLER}@example.com")
        table = system.resource("dynamodb", region).Table(_table(system, PROVISIONING))
        installer.allow_serial(table, serial, now=dt.datetime.now(dt.timezone.utc))
        entry = _row(system, region, table.name,
                     {allow_list.TABLE_KEY: {"S": allow_list.entry_key(serial)}}) or {}
        groups = [g["GroupName"] for g in idp.admin_list_groups_for_user(
            UserPoolId=pool_id, Username=INSTALLER)["Groups"]]
        step.check(status == "FORCE_CHANGE_PASSWORD" and groups == [installer.INSTALLERS_GROUP]
                   and entry.get("state") == allow_list.State.ALLOWED,
                   f"user {status}, groups {groups}; allow-list entry {entry.get('state')} "
                   f"(kind {entry.get('kind')})")

    with tempfile.TemporaryDirectory(prefix="local-run-fleet-") as handover:
        with run.step("installer: signs in (SRP, new password, TOTP enrolment), gets the "
                      "installers' role from the identity pool, creates a claim for the "
                      "template", region=region) as step:
            identity = system.emulation(FleetProvisioning).identity_pool(region)
            api = ClaimApi(emulator, identity)
            prompter = ScriptedInstaller()
            out = io.StringIO()
            args = Namespace(
                region=region, user_pool_id=pool_id,
                client_id=system.resolver(declared.user_pool_client.id),
                identity_pool_id=system.resolver(declared.identity_pool.id),
                template_name=declared.template_name, username=INSTALLER, serial=serial,
                out_dir=handover)
            code = installer.run_claim(args, idp=idp, identity=identity,
                                       iot_with=lambda credentials: api, prompter=prompter,
                                       out=out, now=lambda: dt.datetime.now(dt.timezone.utc))
            key_file = Path(handover) / f"{serial}.claim.pem.key"
            private = key_file.is_file() and stat.S_IMODE(key_file.stat().st_mode) == 0o600
            role = identity.role.inputs.get("name") if identity.role is not None else None
            step.check(code == 0 and len(api.made) == 1 and bool(prompter.shown) and private,
                       f"TOTP enrolled: {bool(prompter.shown)}; role {role}; claim "
                       f"{short(api.made[0]['certificateId']) if api.made else None}; key file "
                       f"0600: {private}; {out.getvalue().splitlines()[-1] if out.getvalue() else ''}")
    claim_id = api.made[0]["certificateId"]

    with run.step(f"device: the claim connects as {client_id}, gets a certificate; RegisterThing "
                  "runs the hook (declared permission) and applies the template",
                  region=region) as step:
        created = emulator.create_keys_and_certificate(claim_id, client_id)
        accepted = emulator.register_thing(claim_id, client_id,
                                           created["certificateOwnershipToken"],
                                           {"SerialNumber": serial})
        _, answer, seconds = emulator.hook_answers[-1]
        step.check(accepted["thingName"] == serial and answer.get("allowProvisioning") is True,
                   f"hook allowProvisioning={answer.get('allowProvisioning')} in {seconds:.2f} s, "
                   f"overrides {answer.get('parameterOverrides')}; thing {accepted['thingName']}")
    certificate_id, certificate_pem = created["certificateId"], created["certificatePem"]

    with run.step("certificate ACTIVE, thing attached, the template's device policy attached",
                  region=region) as step:
        described = iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]
        things = iot.list_principal_things(principal=described["certificateArn"])["things"]
        policies = sorted(p["policyName"] for p in iot.list_attached_policies(
            target=described["certificateArn"])["policies"])
        step.check(described["status"] == "ACTIVE" and things == [serial]
                   and policies == [declared.device_policy_name],
                   f"certificate {short(certificate_id)} {described['status']}, things {things}, "
                   f"policies {policies}")

    with run.step(f"{serial} can connect as its thing", region=region) as step:
        allowed, why = system.emulation(DeviceGateway).authorize_connect(region, certificate_pem,
                                                                          serial)
        step.check(allowed, why)

    inventory = _table(system, INVENTORY)
    with run.step("the recorder (stream -> declared filter) writes the inventory item (FLEET, "
                  "AMAZON, version 1); the allow-list entry is PROVISIONED", region=region) as step:
        def recorded() -> tuple[dict[str, Any], dict[str, Any]]:
            return (_row(system, region, inventory, {"thingName": {"S": serial}}) or {},
                    _row(system, region, _table(system, PROVISIONING), {allow_list.TABLE_KEY: {
                        "S": allow_list.entry_key(serial)}}) or {})

        # The recorder writes the item, then settles the entry: wait for both.
        row, entry = run.wait_for(recorded, lambda found: bool(found[0]) and found[1].get(
            "state") != allow_list.State.CLAIMED, timeout=RECORDER_TIMEOUT_SECONDS)
        expected = {"certificateId": certificate_id, "status": "ACTIVE", "onboarding": "FLEET",
                    "issuer": "AMAZON", "originRegion": region, "writerRegion": region,
                    "version": "1", "certificatePem": certificate_pem}
        wrong = sorted(k for k, v in expected.items() if row.get(k) != v)
        step.check(bool(row) and not wrong and entry.get("state") == "PROVISIONED",
                   f"row {serial}: " + ", ".join(f"{k}={short(str(row.get(k)), 16)}"
                                                 for k in expected if k != "certificatePem")
                   + f"; entry {entry.get('state')}",
                   f"unexpected: {', '.join(wrong)}" if row and wrong else
                   "no row" if not row else "entry not PROVISIONED")

    with run.step("the same serial never provisions twice: the hook denies a second device",
                  region=region) as step:
        again = emulator.create_keys_and_certificate(claim_id, client_id)
        try:
            emulator.register_thing(claim_id, client_id, again["certificateOwnershipToken"],
                                    {"SerialNumber": serial})
            refused = "provisioned"
        except Rejected as rejected:
            refused = f"{rejected.status_code} {rejected.error_code}"
        step.check(refused == "403 AccessDenied", f"second device: {refused}")

    known_elsewhere(run, region, serial, row, certificate_pem, without="provisioning there")


@journey("fleet", "Fleet provisioning: an installer's claim provisions a device; then known "
         "everywhere", capability=CAPABILITY, order=30)
def fleet(run: JourneyRun) -> None:
    regions = run.regions_with(CAPABILITY, "fleet provisioning")
    if regions:
        _onboard(run, regions[0])


# --- wires this journey proves ----------------------------------------------------------------

@wire("fleet-hook-permission-names-another-account", journey="fleet",
      description="the hook's Lambda permission lets AWS IoT invoke it for another account only")
def hook_permission_names_another_account(graph: StackGraph) -> StackGraph:
    # The permissions of the function each declared template names as its hook.
    permissions = [p for template in graph.of_type(TEMPLATE_TYPE)
                   for p in DeclaredFleet(graph, str(template.region)).hook_permissions
                   if p.inputs.get("principal") == IOT_PRINCIPAL]
    if not permissions:
        raise LookupError("no declared template's hook has an IoT permission")

    def change(inputs: dict[str, Any]) -> dict[str, Any]:
        inputs["sourceAccount"] = "210987654321"
        return inputs
    for permission in permissions:
        graph = with_inputs(graph, graph.named(permission.name), change)
    return graph
