"""The whole trusted-user journey through the *declared* stack (dev, first region).

An admin creates an installer and allows a serial with `tools.installer`; the installer signs
in (moto Cognito: SRP — moto does not check the password —, first-sign-in new password,
TOTP enrolment and TOTP codes, checked with MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP=true),
gets identity-pool credentials (moto's are static, so the role is chosen and its policy
evaluated by the emulation of the declared identity pool) and creates a claim; the device
runs the MQTT provisioning API against the emulation of the declared template and hook
(tools/local/emulation/fleet_provisioning.py, through tests/support/fleet_emulator.py) over
moto IoT; the recorder gets the provisioning table's real (moto) stream records through the
declared event-source filter and writes the inventory.
"""

from __future__ import annotations

import datetime as dt
import io
import stat
from argparse import Namespace
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas.fleet_provisioning_hook import app as hook_app
from lambdas.fleet_provisioning_recorder import app as recorder_app
from tests.support.fleet_emulator import (
    AccessDenied,
    ClaimApi,
    DeclaredFleet,
    FleetEmulator,
    IdentityPoolClient,
    IdentityPoolEmulation,
    Rejected,
    ScriptedInstaller,
    invoke,
    read_stream,
    stream_event,
)
from tests.support.stacks import configured_regions
from tools import installer
from tools.harness import StackGraph

SERIAL = "SN-7000-0001"


@dataclass
class World:
    declared: DeclaredFleet
    emulator: FleetEmulator
    idp: Any
    identity: Any
    dynamodb: Any
    streams: Any
    iot: Any
    pool_id: str
    client_id: str
    identity_pool_id: str
    provisioning_table: str
    inventory_table: str

    @property
    def region(self) -> str:
        return self.declared.region

    def claim_args(self, username: str, out_dir: Path) -> Namespace:
        return Namespace(region=self.region, user_pool_id=self.pool_id, client_id=self.client_id,
                         identity_pool_id=self.identity_pool_id,
                         template_name=self.declared.template_name, username=username,
                         serial=SERIAL, out_dir=str(out_dir))

    def cli(self, *argv: str) -> str:
        out = io.StringIO()
        assert installer.main(list(argv), out=out) == 0
        return out.getvalue()


@pytest.fixture
def world(dev_graph: StackGraph, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    region = configured_regions("dev")[0]
    declared = DeclaredFleet(dev_graph, region)
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": region, "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
                       "MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP": "true",
                       "POWERTOOLS_TRACE_DISABLED": "true"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(hook_app, "_dynamodb", None)
    monkeypatch.setattr(recorder_app, "_ports", None)
    with mock_aws():
        variables = declared.hook.inputs["environment"]["variables"]
        dynamodb = boto3.resource("dynamodb", region_name=region)
        for name, key in ((variables["PROVISIONING_TABLE_NAME"], "deviceUid"),
                          (variables["INVENTORY_TABLE_NAME"], "thingName")):
            dynamodb.create_table(
                TableName=name, BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
                StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
        iot = boto3.client("iot", region_name=region)
        device_policy_name = declared.template_body["Resources"]["policy"]["Properties"]["PolicyName"]
        device_policy = declared.iot_policy_named(device_policy_name)
        iot.create_policy(policyName=device_policy_name,
                          policyDocument=device_policy.inputs["policy"])
        idp = boto3.client("cognito-idp", region_name=region)
        pool = declared.user_pool.inputs
        password = pool["passwordPolicy"]
        pool_id = idp.create_user_pool(
            PoolName=pool["name"], MfaConfiguration=pool["mfaConfiguration"],
            Policies={"PasswordPolicy": {
                "MinimumLength": int(password["minimumLength"]),
                "RequireUppercase": password["requireUppercase"],
                "RequireLowercase": password["requireLowercase"],
                "RequireNumbers": password["requireNumbers"],
                "RequireSymbols": password["requireSymbols"],
                "TemporaryPasswordValidityDays": int(password["temporaryPasswordValidityDays"])}},
            AdminCreateUserConfig={"AllowAdminCreateUserOnly":
                                   pool["adminCreateUserConfig"]["allowAdminCreateUserOnly"]},
            UserPoolAddOns={"AdvancedSecurityMode": pool["userPoolAddOns"]["advancedSecurityMode"]},
            AutoVerifiedAttributes=pool["autoVerifiedAttributes"],
        )["UserPool"]["Id"]
        idp.set_user_pool_mfa_config(
            UserPoolId=pool_id, MfaConfiguration=pool["mfaConfiguration"],
            SoftwareTokenMfaConfiguration={
                "Enabled": pool["softwareTokenMfaConfiguration"]["enabled"]})
        client = declared.user_pool_client.inputs
        client_id = idp.create_user_pool_client(
            UserPoolId=pool_id, ClientName=client["name"], GenerateSecret=client["generateSecret"],
            ExplicitAuthFlows=client["explicitAuthFlows"])["UserPoolClient"]["ClientId"]
        for group in declared.groups:
            idp.create_group(UserPoolId=pool_id, GroupName=group.inputs["name"],
                             RoleArn=group.inputs["roleArn"])
        moto_identity = boto3.client("cognito-identity", region_name=region)
        identity_pool = declared.identity_pool.inputs
        identity_pool_id = moto_identity.create_identity_pool(
            IdentityPoolName=identity_pool["identityPoolName"],
            AllowUnauthenticatedIdentities=identity_pool["allowUnauthenticatedIdentities"],
            CognitoIdentityProviders=[{
                "ProviderName": installer.provider_name(region, pool_id), "ClientId": client_id,
                "ServerSideTokenCheck": True}])["IdentityPoolId"]
        yield World(declared=declared, emulator=FleetEmulator(declared, iot), idp=idp,
                    identity=IdentityPoolClient(moto_identity, IdentityPoolEmulation(declared)),
                    dynamodb=dynamodb, streams=boto3.client("dynamodbstreams", region_name=region),
                    iot=iot, pool_id=pool_id, client_id=client_id,
                    identity_pool_id=identity_pool_id,
                    provisioning_table=variables["PROVISIONING_TABLE_NAME"],
                    inventory_table=variables["INVENTORY_TABLE_NAME"])


def onboard_installer(world: World, username: str = "alice") -> None:
    out = world.cli("admin", "create", "--region", world.region, "--user-pool-id",
                    world.pool_id, "--username", username, "--email", f"{username}@example.com")
    assert "FORCE_CHANGE_PASSWORD" in out


def claim(world: World, tmp_path: Path, prompter: ScriptedInstaller,
          username: str = "alice") -> tuple[installer.ProvisioningClaim, str]:
    """`claim` sub-command with the emulated IoT endpoint; returns the claim and the output."""
    api = ClaimApi(world.emulator, world.identity)
    out = io.StringIO()
    code = installer.run_claim(world.claim_args(username, tmp_path), idp=world.idp,
                               identity=world.identity, iot_with=lambda credentials: api,
                               prompter=prompter, out=out,
                               now=lambda: dt.datetime.now(dt.timezone.utc))
    assert code == 0
    [response] = api.made
    return installer.ProvisioningClaim(response["certificateId"], response["certificatePem"],
                                       response["keyPair"]["PrivateKey"],
                                       response["expiration"]), out.getvalue()


def device_provisions(world: World, claim_id: str, serial: str = SERIAL) -> dict[str, Any]:
    client_id = f"{world.declared.hook.inputs['environment']['variables']['CLAIM_CLIENT_ID_PREFIX']}{serial}"
    created = world.emulator.create_keys_and_certificate(claim_id, client_id)
    accepted = world.emulator.register_thing(claim_id, client_id,
                                             created["certificateOwnershipToken"],
                                             {"SerialNumber": serial})
    return {**accepted, "certificateId": created["certificateId"]}


def deliver_provisioning_stream(world: World) -> dict[str, Any]:
    stream_arn = world.dynamodb.Table(world.provisioning_table).latest_stream_arn
    records = read_stream(world.streams, stream_arn)
    event = stream_event(records, stream_arn, world.declared.recorder_trigger)
    answer, _ = invoke(world.declared.recorder, world.region, event)
    return {"answer": answer, "delivered": len(event["Records"]), "all": len(records)}


def test_installer_provisions_a_device_that_lands_in_the_inventory(world: World,
                                                                   tmp_path: Path) -> None:
    onboard_installer(world)
    assert "allow-serial" in world.cli("admin", "allow-serial", "--region", world.region,
                                       "--table", world.provisioning_table, "--serial", SERIAL)
    prompter = ScriptedInstaller()
    provisioning_claim, out = claim(world, tmp_path, prompter)

    # First sign-in: new password and TOTP enrolment happened; the role was the installers'.
    assert prompter.shown and prompter.shown[0].startswith("otpauth://totp/")
    assert world.identity.role.outputs["arn"] == \
        world.declared.role_attachment.inputs["roles"]["authenticated"]
    # Hand-over files: the key is private to the installer; the expiry is shown.
    certificate_file = tmp_path / f"{SERIAL}.claim.pem.crt"
    key_file = tmp_path / f"{SERIAL}.claim.pem.key"
    assert certificate_file.read_text() == provisioning_claim.certificate_pem
    assert key_file.read_text() == provisioning_claim.private_key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "expires at" in out and ("in 4 min" in out or "in 5 min" in out)

    accepted = device_provisions(world, provisioning_claim.certificate_id)
    assert accepted["thingName"] == SERIAL
    certificate = world.iot.describe_certificate(
        certificateId=accepted["certificateId"])["certificateDescription"]
    assert certificate["status"] == "ACTIVE"
    assert world.iot.list_thing_principals(thingName=SERIAL)["principals"] == \
        [certificate["certificateArn"]]
    device_policy = world.declared.template_body["Resources"]["policy"]["Properties"]["PolicyName"]
    assert [p["policyName"] for p in world.iot.list_attached_policies(
        target=certificate["certificateArn"])["policies"]] == [device_policy]
    [(event, answer, seconds)] = world.emulator.hook_answers
    assert set(event) == {"claimCertificateId", "certificateId", "certificatePem", "templateArn",
                          "clientId", "parameters"}
    assert answer["allowProvisioning"] is True and seconds < 5

    delivery = deliver_provisioning_stream(world)
    assert delivery["answer"] == {"batchItemFailures": []}
    assert delivery["delivered"] == 1 < delivery["all"]  # the filter passed only the claim
    item = world.dynamodb.Table(world.inventory_table).get_item(
        Key={"thingName": SERIAL})["Item"]
    assert {k: item[k] for k in ("certificateId", "certificatePem", "issuer", "originRegion",
                                 "writerRegion", "status", "onboarding", "version")} == {
        "certificateId": accepted["certificateId"],
        "certificatePem": certificate["certificatePem"], "issuer": "AMAZON",
        "originRegion": world.region, "writerRegion": world.region, "status": "ACTIVE",
        "onboarding": "FLEET", "version": 1}

    # The same serial never provisions twice, even with a fresh claim.
    second_claim, _ = claim(world, tmp_path / "again", ScriptedInstaller(totp=prompter.totp))
    with pytest.raises(Rejected) as denied:
        device_provisions(world, second_claim.certificate_id)
    assert denied.value.error_code == "AccessDenied"
    assert len(world.iot.list_things()["things"]) == 1


def test_an_unknown_serial_gets_no_thing_and_no_inventory_item(world: World,
                                                               tmp_path: Path) -> None:
    onboard_installer(world)
    provisioning_claim, _ = claim(world, tmp_path, ScriptedInstaller())
    with pytest.raises(Rejected):
        device_provisions(world, provisioning_claim.certificate_id, serial="SN-NOT-ALLOWED")
    assert world.iot.list_things()["things"] == []
    assert world.dynamodb.Table(world.inventory_table).scan()["Items"] == []


def test_a_disabled_serial_is_refused(world: World, tmp_path: Path) -> None:
    onboard_installer(world)
    world.cli("admin", "allow-serial", "--region", world.region, "--table",
              world.provisioning_table, "--serial", SERIAL)
    world.cli("admin", "disable-serial", "--region", world.region, "--table",
              world.provisioning_table, "--serial", SERIAL)
    provisioning_claim, _ = claim(world, tmp_path, ScriptedInstaller())
    with pytest.raises(Rejected):
        device_provisions(world, provisioning_claim.certificate_id)
    assert world.iot.list_things()["things"] == []


def test_a_pool_member_outside_the_installers_group_gets_no_credentials(
        world: World, tmp_path: Path) -> None:
    world.idp.admin_create_user(UserPoolId=world.pool_id, Username="mallory")
    with pytest.raises(AccessDenied):
        claim(world, tmp_path, ScriptedInstaller(), username="mallory")
    assert list(tmp_path.iterdir()) == []


def test_a_wrong_totp_code_and_a_disabled_installer_cannot_sign_in(world: World,
                                                                   tmp_path: Path) -> None:
    onboard_installer(world)
    enrolled = ScriptedInstaller()
    claim(world, tmp_path, enrolled)  # first sign-in: password and TOTP set up
    with pytest.raises(world.idp.exceptions.CodeMismatchException):
        claim(world, tmp_path / "wrong", ScriptedInstaller(totp=enrolled.totp, wrong_code=True))
    assert "disabled alice" in world.cli("admin", "disable", "--region", world.region,
                                         "--user-pool-id", world.pool_id, "--username", "alice")
    with pytest.raises(world.idp.exceptions.NotAuthorizedException):
        claim(world, tmp_path / "disabled", ScriptedInstaller(totp=enrolled.totp))
    listing = world.cli("admin", "list", "--region", world.region, "--user-pool-id",
                        world.pool_id)
    assert listing.startswith("alice\talice@example.com\tDISABLED\t")


def test_an_expired_claim_cannot_connect(world: World, tmp_path: Path) -> None:
    onboard_installer(world)
    provisioning_claim, _ = claim(world, tmp_path, ScriptedInstaller())
    world.emulator.now = lambda: dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=6)
    with pytest.raises(AccessDenied):
        device_provisions(world, provisioning_claim.certificate_id)
    assert "expired" in installer.describe_expiry(provisioning_claim.expiration,
                                                  world.emulator.now())


def test_hand_over_files_are_never_overwritten(world: World, tmp_path: Path) -> None:
    onboard_installer(world)
    enrolled = ScriptedInstaller()
    claim(world, tmp_path, enrolled)
    with pytest.raises(FileExistsError):
        claim(world, tmp_path, ScriptedInstaller(totp=enrolled.totp))
