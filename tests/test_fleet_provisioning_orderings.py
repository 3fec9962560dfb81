"""A provisioned serial is never handed to another certificate (issue 19, class 2): the real
hook and recorder handlers against moto IoT and DynamoDB (faithful: EXCLUSIVE_THING kept,
certificate ids as AWS IoT derives them), with each ordering of hook, AWS IoT's provisioning
and recorder staged explicitly.

One window rules them all (lambdas/contracts/fleet_allow_list.json, `claim`): a claim by
another certificate may pass on only once it is older than CLAIM_STALE_AFTER (the ownership
token's life) AND the registry shows the claimed device never provisioned; the recorder gives
a claim that old up only while AWS IoT shows it unprovisioned; whichever certificate loses is
deactivated and detached by the recorder that finds it.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeSerializer
from moto import mock_aws

from lambdas.contracts import fleet_allow_list as allow_list
from lambdas.contracts.environment import FleetHookEnvironment, FleetRecorderEnvironment
from lambdas.fleet_provisioning_hook import app as hook_app
from lambdas.fleet_provisioning_hook.data import CLIENT_CONFIG
from lambdas.fleet_provisioning_recorder import app as recorder_app
from tests.support.lambda_environment import use_function_environment
from tools.local.emulation.lambdas import LambdaContext
from tools.local.moto_fidelity import faithful_moto

REGION = "eu-west-1"
ACCOUNT = "123456789012"
PROVISIONING_TABLE = "test-cvm-provisioning"
INVENTORY_TABLE = "test-device-inventory"
TEMPLATE_ARN = f"arn:aws:iot:{REGION}:{ACCOUNT}:provisioningtemplate/test-fleet"
PREFIX = "provision-"
SERIAL = "SN-0077"
STREAM_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{PROVISIONING_TABLE}/stream/x"
# past the window by a little: the claim is stale by the contract's one rule
STALE = allow_list.CLAIM_STALE_AFTER + dt.timedelta(seconds=5)


class Fleet:
    """Two devices that present the same allow-listed serial, each with the certificate AWS
    IoT created for it over MQTT (CreateKeysAndCertificate: PENDING until RegisterThing)."""

    def __init__(self) -> None:
        self.iot = boto3.client("iot", region_name=REGION)
        self.dynamodb = boto3.resource("dynamodb", region_name=REGION)
        self.certificates = {name: self.iot.create_keys_and_certificate(setAsActive=False)
                             for name in ("first", "second")}

    def hook(self, device: str) -> dict[str, Any]:
        """RegisterThing reaches the pre-provisioning hook (the payload AWS IoT documents)."""
        certificate = self.certificates[device]
        event = {"claimCertificateId": "c" * 64, "certificateId": certificate["certificateId"],
                 "certificatePem": certificate["certificatePem"], "templateArn": TEMPLATE_ARN,
                 "clientId": f"{PREFIX}{SERIAL}", "parameters": {"SerialNumber": SERIAL}}
        context = LambdaContext("hook", "arn:aws:lambda:x", time.monotonic() + 5)
        return dict(hook_app.handler(event, context))

    def provision(self, device: str) -> None:
        """What AWS IoT does after an allowing hook: the template's thing, the certificate
        ACTIVE, attached as a template attaches it (no attachment type: NON_EXCLUSIVE)."""
        certificate = self.certificates[device]
        try:
            self.iot.create_thing(thingName=SERIAL, attributePayload={
                "attributes": {"onboarding": "FLEET"}})
        except self.iot.exceptions.ResourceAlreadyExistsException:
            pass
        self.iot.update_certificate(certificateId=certificate["certificateId"],
                                    newStatus="ACTIVE")
        self.iot.attach_thing_principal(thingName=SERIAL, principal=certificate["certificateArn"])

    def entry(self) -> dict[str, Any]:
        return dict(self.dynamodb.Table(PROVISIONING_TABLE).get_item(
            Key=allow_list.key(SERIAL), ConsistentRead=True)["Item"])

    def age_claim(self, by: dt.timedelta = STALE) -> dict[str, Any]:
        """Let time pass for the claim (its claimedAt moves back), and return the stream image
        the claim produced, as the recorder receives it."""
        entry = self.entry()
        claimed_at = dt.datetime.fromisoformat(entry["claimedAt"]) - by
        self.dynamodb.Table(PROVISIONING_TABLE).update_item(
            Key=allow_list.key(SERIAL), UpdateExpression="SET claimedAt = :t",
            ExpressionAttributeValues={":t": allow_list.timestamp(claimed_at)})
        return self.entry()

    def record(self, image: dict[str, Any]) -> list[Any]:
        """The recorder handles the claim's stream record; the failed records it reports."""
        serializer = TypeSerializer()
        event = {"Records": [{
            "eventID": "1", "eventName": "MODIFY", "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": REGION, "eventSourceARN": STREAM_ARN,
            "dynamodb": {"Keys": {"deviceUid": {"S": image["deviceUid"]}},
                         "NewImage": {k: serializer.serialize(v) for k, v in image.items()},
                         "SequenceNumber": "100", "SizeBytes": 100,
                         "StreamViewType": "NEW_AND_OLD_IMAGES"}}]}
        context = LambdaContext("recorder", "arn:aws:lambda:x", time.monotonic() + 60)
        return list(recorder_app.handler(event, context)["batchItemFailures"])

    def status(self, device: str) -> str:
        return str(self.iot.describe_certificate(
            certificateId=self.certificates[device]["certificateId"])[
            "certificateDescription"]["status"])

    def attached(self) -> set[str]:
        """Which of the two devices' certificates are attached to the thing."""
        arns = set(self.iot.list_thing_principals(thingName=SERIAL)["principals"])
        return {name for name, c in self.certificates.items() if c["certificateArn"] in arns}

    def recorded(self) -> str | None:
        """Which device the inventory names for the serial."""
        item = self.dynamodb.Table(INVENTORY_TABLE).get_item(
            Key={"thingName": SERIAL}, ConsistentRead=True).get("Item")
        if not item:
            return None
        return next(name for name, c in self.certificates.items()
                    if c["certificateId"] == item["certificateId"])

    def holds_the_name(self, device: str) -> None:
        """The end state every ordering must reach: one device owns the serial everywhere."""
        loser = "second" if device == "first" else "first"
        assert self.recorded() == device
        assert self.attached() == {device}
        assert self.status(device) == "ACTIVE"
        assert self.status(loser) != "ACTIVE"
        entry = self.entry()
        assert (entry["state"], entry["certificateId"]) == (
            allow_list.State.PROVISIONED, self.certificates[device]["certificateId"])


@pytest.fixture
def fleet(monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    hook_env = FleetHookEnvironment(
        provisioning_table_name=PROVISIONING_TABLE, inventory_table_name=INVENTORY_TABLE,
        template_arn=TEMPLATE_ARN, claim_client_id_prefix=PREFIX,
        hook_budget_ms="3000").variables()
    recorder_env = FleetRecorderEnvironment(
        provisioning_table_name=PROVISIONING_TABLE, inventory_table_name=INVENTORY_TABLE,
        confirm_wait_seconds="0").variables()
    use_function_environment(monkeypatch, REGION, hook_env, recorder_env)
    with mock_aws(), faithful_moto():
        dynamodb = boto3.resource("dynamodb", region_name=REGION)
        for name, key in ((PROVISIONING_TABLE, "deviceUid"), (INVENTORY_TABLE, "thingName")):
            dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                                  KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
                                  AttributeDefinitions=[{"AttributeName": key,
                                                         "AttributeType": "S"}])
        dynamodb.Table(PROVISIONING_TABLE).put_item(**allow_list.new_entry(
            SERIAL, allow_list.timestamp(dt.datetime.now(dt.timezone.utc))))
        monkeypatch.setattr(hook_app, "_dynamodb",
                            boto3.client("dynamodb", region_name=REGION, config=CLIENT_CONFIG))
        monkeypatch.setattr(hook_app, "_iot",
                            boto3.client("iot", region_name=REGION, config=CLIENT_CONFIG))
        monkeypatch.setattr(recorder_app, "_ports", None)  # built inside the mock
        yield Fleet()


def allowed(answer: dict[str, Any]) -> bool:
    return answer["allowProvisioning"] is True


def test_recorder_first_then_a_second_device_is_refused(fleet: Fleet) -> None:
    """Recorder first: the first device is recorded before anyone else asks."""
    assert allowed(fleet.hook("first"))
    fleet.provision("first")
    assert fleet.record(fleet.entry()) == []
    fleet.age_claim()  # however long after
    assert not allowed(fleet.hook("second"))
    fleet.holds_the_name("first")


def test_a_lagging_recorder_keeps_the_name_for_the_provisioned_device(fleet: Fleet) -> None:
    """Hook first: the first device provisioned an hour ago, its recorder has not run yet;
    the stale claim does not pass on: the registry shows the device (PROVISIONED_UNRECORDED)."""
    assert allowed(fleet.hook("first"))
    fleet.provision("first")
    image = fleet.age_claim()
    assert not allowed(fleet.hook("second"))
    assert fleet.entry()["claimCertificateId"] == fleet.certificates["first"]["certificateId"]
    assert fleet.status("second") != "ACTIVE"
    assert fleet.record(image) == []  # the late recorder still records it
    fleet.holds_the_name("first")


def test_an_activated_but_unattached_certificate_also_keeps_the_claim(fleet: Fleet) -> None:
    """Provisioning half done (certificate ACTIVE, not attached yet): still the first's."""
    assert allowed(fleet.hook("first"))
    fleet.iot.update_certificate(
        certificateId=fleet.certificates["first"]["certificateId"], newStatus="ACTIVE")
    fleet.age_claim()
    assert not allowed(fleet.hook("second"))


@pytest.mark.parametrize("records_in_order", [("first", "second"), ("second", "first")])
def test_a_claim_passed_on_while_the_first_provisioning_was_in_flight(
        fleet: Fleet, records_in_order: tuple[str, str]) -> None:
    """Hook first, the worst case: the first claim is stale and AWS IoT shows nothing yet, so
    the hook lets the second device claim; then the first device's provisioning lands too.
    Whatever order the two records reach the recorder, the current claim (second) keeps the
    name and the first certificate ends INACTIVE and detached."""
    assert allowed(fleet.hook("first"))
    images = {"first": fleet.age_claim()}
    assert allowed(fleet.hook("second"))
    images["second"] = fleet.entry()
    fleet.provision("second")
    fleet.provision("first")  # the in-flight provisioning completes afterwards
    assert fleet.attached() == {"first", "second"}  # what AWS IoT would leave alone
    for device in records_in_order:
        assert fleet.record(images[device]) == []
    fleet.holds_the_name("second")
    assert fleet.status("first") == "INACTIVE"


def test_recorder_failed_then_the_provisioned_device_still_keeps_the_name(
        fleet: Fleet) -> None:
    """Recorder failed: its record was reported failed (AWS IoT had not finished) and ends
    in the DLQ; the device provisions; an hour later the serial is still not handed on, and
    the redriven record records the device."""
    assert allowed(fleet.hook("first"))
    image = fleet.entry()
    assert fleet.record(image) != []  # not provisioned yet: retried, then dead-lettered
    fleet.provision("first")
    image = fleet.age_claim()
    for _ in range(2):
        assert not allowed(fleet.hook("second"))
    assert fleet.record(image) == []  # an operator redrives the DLQ
    fleet.holds_the_name("first")


def test_recorder_failed_and_the_device_never_provisioned_frees_the_serial(
        fleet: Fleet) -> None:
    """The first device never completed RegisterThing: after the window its claim is given up
    by the recorder and passed on by the hook; a late redrive of the old record changes
    nothing."""
    assert allowed(fleet.hook("first"))
    image = fleet.age_claim()
    assert fleet.record(image) == []  # UNCONFIRMED: given up, nothing written
    assert fleet.recorded() is None
    assert allowed(fleet.hook("second"))
    fleet.provision("second")
    assert fleet.record(fleet.entry()) == []
    assert fleet.record(image) == []  # the redriven stale record
    fleet.holds_the_name("second")


def test_a_fresh_claim_by_another_certificate_is_never_passed_on(fleet: Fleet) -> None:
    """Inside the window the registry is not even asked: the claim is in progress."""
    assert allowed(fleet.hook("first"))
    fleet.age_claim(allow_list.CLAIM_STALE_AFTER - dt.timedelta(seconds=30))
    assert not allowed(fleet.hook("second"))
    assert fleet.entry()["claimCertificateId"] == fleet.certificates["first"]["certificateId"]
