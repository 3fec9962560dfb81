"""The whole trusted-user journey through the declared stack in a world (dev, first region):
the journey's own steps (tools/local/journeys/fleet_provisioning.py) with the scenario's
variations. An admin creates an installer and allows a serial with `tools.installer`; the
installer signs in (moto Cognito: SRP, which moto does not check, first-sign-in password,
TOTP enrolment and codes), gets the role the identity pool's declared mapping picks and
creates a claim; the device provisions through the declared template and hook; the recorder
gets the provisioning table's stream through its declared filter and writes the inventory.
"""

from __future__ import annotations

import datetime as dt
import io
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tools import installer
from tools.harness import StackGraph
from tools.local.emulation.fleet_provisioning import (
    AccessDenied,
    FleetProvisioning,
    Rejected,
    ScriptedInstaller,
    TemplateEmulator,
    declared,
)
from tools.local.emulation.streams import Streams
from tools.local.journeys import JourneyRun, JourneyStopped
from tools.local.journeys import fleet_provisioning as fleet
from tools.local.journeys import registry as seen
from tools.local.pki_material import LocalPki
from tools.local.report import JourneyResult, Outcome, Progress, RunReport, format_text
from tools.local.world import World, open_world

REGION = "eu-west-1"
SERIAL = "SN-7000-0001"


@pytest.fixture
def world(local_graph: StackGraph, local_pki: LocalPki) -> Iterator[World]:
    with open_world(local_graph, regions=[REGION], pki=local_pki,
                    capabilities=["fleet_provisioning"]) as opened:
        yield opened


def template(world: World) -> TemplateEmulator:
    return world.emulation(FleetProvisioning)[REGION]


def cli(*argv: str) -> str:
    out = io.StringIO()
    assert installer.main(list(argv), out=out) == 0
    return out.getvalue()


def pool_id(world: World) -> str:
    return str(declared(world, "aws:cognito/userPool:UserPool", REGION)["id"])


def claim(world: World, tmp_path: Path, prompter: ScriptedInstaller,
          username: str = "alice") -> tuple[installer.ProvisioningClaim, str, Any]:
    api, identity, out = fleet.claim(world, REGION, username, tmp_path, SERIAL, prompter)
    [response] = api.made
    return installer.ProvisioningClaim(response["certificateId"], response["certificatePem"],
                                       response["keyPair"]["PrivateKey"],
                                       response["expiration"]), out, identity


def things(world: World) -> list[str]:
    return [t["thingName"] for t in world.client("iot", REGION).list_things()["things"]]


def test_installer_provisions_a_device_that_lands_in_the_inventory(world: World,
                                                                   tmp_path: Path) -> None:
    assert fleet.enrol(world, REGION, "alice", None) == "FORCE_CHANGE_PASSWORD"
    assert "allow-serial" in cli("admin", "allow-serial", "--region", REGION,
                                 "--table", world.table(seen.PROVISIONING), "--serial", SERIAL)
    prompter = ScriptedInstaller()
    provisioning_claim, out, identity = claim(world, tmp_path, prompter)

    # First sign-in: new password and TOTP enrolment happened; the role was the installers'.
    assert prompter.shown and prompter.shown[0].startswith("otpauth://totp/")
    assert identity.role == declared(world, "aws:cognito/identityPoolRoleAttachment:"
                                            "IdentityPoolRoleAttachment", REGION)["roles"]["authenticated"]
    # Hand-over files: the key is private to the installer; the expiry is shown.
    certificate_file = tmp_path / f"{SERIAL}.claim.pem.crt"
    key_file = tmp_path / f"{SERIAL}.claim.pem.key"
    assert certificate_file.read_text() == provisioning_claim.certificate_pem
    assert key_file.read_text() == provisioning_claim.private_key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "expires at" in out and ("in 4 min" in out or "in 5 min" in out)

    accepted = fleet.provision(world, REGION, provisioning_claim.certificate_id, SERIAL)
    assert accepted["thingName"] == SERIAL
    assert seen.usable(world, REGION, SERIAL, accepted["certificateId"])
    assert seen.policies_of(world, REGION, accepted["certificateId"]) == [seen.device_policy(world, REGION)]
    [(event, answer, seconds)] = template(world).hook_answers
    assert set(event) == {"claimCertificateId", "certificateId", "certificatePem", "templateArn",
                          "clientId", "parameters"}
    assert answer["allowProvisioning"] is True and seconds < 5

    world.settle()
    recorder = world.emulation(Streams).consumer("lambda", REGION)
    assert len(recorder.delivered) == 1 and recorder.errors == []  # the filter passed the claim only
    item = seen.row(world, REGION, SERIAL) or {}
    assert {k: item.get(k) for k in ("certificateId", "certificatePem", "issuer", "originRegion",
                                     "writerRegion", "status", "onboarding", "version")} == {
        "certificateId": accepted["certificateId"], "certificatePem": accepted["certificatePem"],
        "issuer": "AMAZON", "originRegion": REGION, "writerRegion": REGION, "status": "ACTIVE",
        "onboarding": "FLEET", "version": "1"}

    # The same serial never provisions twice, even with a fresh claim.
    second_claim, _, _ = claim(world, tmp_path / "again", ScriptedInstaller(totp=prompter.totp))
    with pytest.raises(Rejected) as denied:
        fleet.provision(world, REGION, second_claim.certificate_id, SERIAL)
    assert denied.value.error_code == "AccessDenied"
    assert things(world) == [SERIAL]


def test_an_unknown_serial_gets_no_thing_and_no_inventory_item(world: World,
                                                               tmp_path: Path) -> None:
    fleet.enrol(world, REGION, "alice", None)
    provisioning_claim, _, _ = claim(world, tmp_path, ScriptedInstaller())
    with pytest.raises(Rejected):
        fleet.provision(world, REGION, provisioning_claim.certificate_id, "SN-NOT-ALLOWED")
    world.settle()
    assert things(world) == [] and seen.row(world, REGION, "SN-NOT-ALLOWED") is None


def test_a_disabled_serial_is_refused(world: World, tmp_path: Path) -> None:
    fleet.enrol(world, REGION, "alice", SERIAL)
    cli("admin", "disable-serial", "--region", REGION, "--table", world.table(seen.PROVISIONING),
        "--serial", SERIAL)
    provisioning_claim, _, _ = claim(world, tmp_path, ScriptedInstaller())
    with pytest.raises(Rejected):
        fleet.provision(world, REGION, provisioning_claim.certificate_id, SERIAL)
    assert things(world) == []


def test_a_pool_member_outside_the_installers_group_gets_no_credentials(
        world: World, tmp_path: Path) -> None:
    world.client("cognito-idp", REGION).admin_create_user(UserPoolId=pool_id(world), Username="mallory")
    with pytest.raises(AccessDenied):
        claim(world, tmp_path, ScriptedInstaller(), username="mallory")
    assert list(tmp_path.iterdir()) == []


def test_a_wrong_totp_code_and_a_disabled_installer_cannot_sign_in(world: World,
                                                                   tmp_path: Path) -> None:
    fleet.enrol(world, REGION, "alice", None)
    idp = world.client("cognito-idp", REGION)
    enrolled = ScriptedInstaller()
    claim(world, tmp_path, enrolled)  # first sign-in: password and TOTP set up
    with pytest.raises(idp.exceptions.CodeMismatchException):
        claim(world, tmp_path / "wrong", ScriptedInstaller(totp=enrolled.totp, wrong_code=True))
    assert "disabled alice" in cli("admin", "disable", "--region", REGION,
                                   "--user-pool-id", pool_id(world), "--username", "alice")
    with pytest.raises(idp.exceptions.NotAuthorizedException):
        claim(world, tmp_path / "disabled", ScriptedInstaller(totp=enrolled.totp))
    listing = cli("admin", "list", "--region", REGION, "--user-pool-id", pool_id(world))
    assert listing.startswith("alice\talice@example.com\tDISABLED\t")


def test_an_expired_claim_cannot_connect(world: World, tmp_path: Path) -> None:
    fleet.enrol(world, REGION, "alice", SERIAL)
    provisioning_claim, _, _ = claim(world, tmp_path, ScriptedInstaller())
    template(world).now = lambda: dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=6)
    with pytest.raises(AccessDenied):
        fleet.provision(world, REGION, provisioning_claim.certificate_id, SERIAL)
    assert "expired" in installer.describe_expiry(provisioning_claim.expiration, template(world).now())


def test_hand_over_files_are_never_overwritten(world: World, tmp_path: Path) -> None:
    fleet.enrol(world, REGION, "alice", None)
    enrolled = ScriptedInstaller()
    claim(world, tmp_path, enrolled)
    with pytest.raises(FileExistsError):
        claim(world, tmp_path, ScriptedInstaller(totp=enrolled.totp))


def test_one_ownership_token_provisions_one_serial_only(world: World, tmp_path: Path) -> None:
    """A claim holder reconnects as the second serial's client id with the same ownership
    token: the hook refuses (the certificate holds the first serial), the certificate ends
    attached to one thing, exclusively, and one device is recorded."""
    second = "SN-7000-0002"
    fleet.enrol(world, REGION, "alice", SERIAL)
    installer.allow_serial(world.resource("dynamodb", REGION).Table(world.table(seen.PROVISIONING)),
                           second, now=dt.datetime.now(dt.timezone.utc))
    provisioning_claim, _, _ = claim(world, tmp_path, ScriptedInstaller())
    prefix = fleet.hook_variables(world, REGION)["CLAIM_CLIENT_ID_PREFIX"]
    created = template(world).create_keys_and_certificate(provisioning_claim.certificate_id)
    token = created["certificateOwnershipToken"]
    assert template(world).register_thing(provisioning_claim.certificate_id, f"{prefix}{SERIAL}",
                                          token, {"SerialNumber": SERIAL})["thingName"] == SERIAL
    with pytest.raises(Rejected) as denied:
        template(world).register_thing(provisioning_claim.certificate_id, f"{prefix}{second}",
                                       token, {"SerialNumber": second})
    assert denied.value.error_code == "AccessDenied"
    world.settle()
    iot = world.client("iot", REGION)
    arn = iot.describe_certificate(certificateId=created["certificateId"])[
        "certificateDescription"]["certificateArn"]
    assert things(world) == [SERIAL]
    assert iot.list_principal_things(principal=arn)["things"] == [SERIAL]
    assert seen.row(world, REGION, second) is None
    assert (seen.row(world, REGION, SERIAL) or {}).get("certificateId") == created["certificateId"]
    iot.create_thing(thingName="SN-intruder")  # the recorder made the attachment exclusive
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.attach_thing_principal(thingName="SN-intruder", principal=arn)


def test_one_claim_provisions_one_device_only(world: World, tmp_path: Path) -> None:
    """`installer claim --serial SN-7000-0001` hands over a claim for one device: within its
    five minutes the claim holder makes further certificates and asks for every other
    allow-listed serial; the hook refuses each (the claim holds the first serial)."""
    others = ("SN-7000-0002", "SN-7000-0003")
    fleet.enrol(world, REGION, "alice", SERIAL)
    table = world.resource("dynamodb", REGION).Table(world.table(seen.PROVISIONING))
    for other in others:
        installer.allow_serial(table, other, now=dt.datetime.now(dt.timezone.utc))
    provisioning_claim, _, _ = claim(world, tmp_path, ScriptedInstaller())
    assert fleet.provision(world, REGION, provisioning_claim.certificate_id, SERIAL)[
        "thingName"] == SERIAL
    for other in others:
        with pytest.raises(Rejected) as denied:
            fleet.provision(world, REGION, provisioning_claim.certificate_id, other)
        assert denied.value.error_code == "AccessDenied"
    world.settle()
    assert things(world) == [SERIAL]
    assert [seen.row(world, REGION, other) for other in others] == [None, None]


def test_a_device_parameter_naming_another_certificate_is_refused(world: World,
                                                                  tmp_path: Path) -> None:
    fleet.enrol(world, REGION, "alice", SERIAL)
    provisioning_claim, _, _ = claim(world, tmp_path, ScriptedInstaller())
    prefix = fleet.hook_variables(world, REGION)["CLAIM_CLIENT_ID_PREFIX"]
    other = world.client("iot", REGION).create_keys_and_certificate(setAsActive=False)
    created = template(world).create_keys_and_certificate(provisioning_claim.certificate_id)
    with pytest.raises(Rejected):
        template(world).register_thing(
            provisioning_claim.certificate_id, f"{prefix}{SERIAL}",
            created["certificateOwnershipToken"],
            {"SerialNumber": SERIAL, "AWS::IoT::Certificate::Id": other["certificateId"]})
    assert things(world) == []


def test_a_failed_step_reports_what_the_hook_logged(world: World, tmp_path: Path) -> None:
    """The hook's reason to deny is in the report of the step that failed on it (and only the
    lines it wrote during that step, made readable: no metrics records, no JSON boilerplate)."""
    fleet.enrol(world, REGION, "alice", None)  # no serial allowed: the hook will deny
    provisioning_claim, _, _ = claim(world, tmp_path, ScriptedInstaller())
    with pytest.raises(Rejected):
        template(world).run_hook({"clientId": "noise"})  # lines before the step: not reported
    result = JourneyResult("fleet", "Fleet")
    run = JourneyRun(world, result, Progress(enabled=False))
    with pytest.raises(JourneyStopped):
        with run.step("device provisions", region=REGION) as step:
            step.logs_of(fleet.hook_arn(world, REGION))
            fleet.provision(world, REGION, provisioning_claim.certificate_id, SERIAL)
    [failed] = result.steps
    assert failed.outcome == Outcome.FAIL and "403 AccessDenied" in failed.detail
    [line] = failed.logs
    assert line.startswith("iotmr-dev-eu-west-1-fleet-hook: INFO ")
    assert "pre-provisioning decision" in line and "allowed=False" in line and "reason=" in line
    assert "noise" not in line and "{" not in line
    report = format_text(RunReport("dev", [REGION], journeys=[result]))
    assert f"function logs meanwhile:\n{' ' * 27}{line}\n" in report


def test_claim_without_a_terminal_says_so_in_one_line() -> None:
    """The CLI prompts for the password and MFA code; with its input closed (a script, a pipe)
    it stops before any call, in one line, not with getpass's traceback."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-m", "tools.installer", "claim", "--region", "eu-west-1", "--username", "u",
         "--user-pool-id", "eu-west-1_abc", "--client-id", "abc", "--template-name", "t", "--serial", "SN-1",
         "--identity-pool-id", "eu-west-1:00000000-0000-0000-0000-000000000000"],
        cwd=root, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y",
             "AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    assert result.returncode == 2, result.stderr
    assert "error: no answer to a prompt (input closed)" in result.stderr and "Traceback" not in result.stderr
