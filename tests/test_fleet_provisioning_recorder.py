"""The recorder against moto IoT and DynamoDB: a confirmed fleet device lands in the
inventory exactly as the replication contract says; everything else does not."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeSerializer
from cryptography import x509
from moto import mock_aws

from lambdas.contracts import fleet_allow_list as allow_list
from lambdas.contracts.certificates import certificate_id
from lambdas.contracts.environment import FleetRecorderEnvironment
from lambdas.contracts.inventory import InventoryItem, Issuer, Onboarding, Status, timestamp
from lambdas.fleet_provisioning_recorder import app as recorder_app
from lambdas.fleet_provisioning_recorder import logic
from tests.support.lambda_environment import use_function_environment
from tools.local.emulation.lambdas import LambdaContext
from tools.local.moto_fidelity import faithful_moto

REGION = "eu-west-1"
OTHER_REGION = "us-west-2"
PROVISIONING_TABLE = "test-cvm-provisioning"
INVENTORY_TABLE = "test-device-inventory"
SERIAL = "SN-0042"
STREAM_ARN = f"arn:aws:dynamodb:{REGION}:123456789012:table/{PROVISIONING_TABLE}/stream/x"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    declared = FleetRecorderEnvironment(
        provisioning_table_name=PROVISIONING_TABLE, inventory_table_name=INVENTORY_TABLE,
        confirm_wait_seconds="0").variables()
    use_function_environment(monkeypatch, REGION, declared)
    monkeypatch.setattr(recorder_app, "_ports", None)  # built inside the mock
    with mock_aws(), faithful_moto():  # EXCLUSIVE_THING enforced, as AWS does
        dynamodb = boto3.resource("dynamodb", region_name=REGION)
        for name, key in ((PROVISIONING_TABLE, "deviceUid"), (INVENTORY_TABLE, "thingName")):
            dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                                  KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
                                  AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}])
        iot = boto3.client("iot", region_name=REGION)
        iot.create_policy(policyName="device", policyDocument='{"Version":"2012-10-17","Statement":[]}')
        created = iot.create_keys_and_certificate(setAsActive=False)
        yield {"dynamodb": dynamodb, "iot": iot, "certificate": created}


def provision(aws: dict[str, Any]) -> None:
    """What AWS IoT does for the template: thing, certificate ACTIVE, attached."""
    certificate = aws["certificate"]
    aws["iot"].create_thing(thingName=SERIAL)
    aws["iot"].update_certificate(certificateId=certificate["certificateId"], newStatus="ACTIVE")
    aws["iot"].attach_thing_principal(thingName=SERIAL, principal=certificate["certificateArn"])


def claim_image(aws: dict[str, Any], *, region: str = REGION,
                claimed_at: dt.datetime | None = None) -> dict[str, Any]:
    certificate = aws["certificate"]
    moment = claimed_at or dt.datetime.now(dt.timezone.utc)
    return {**allow_list.new_entry(SERIAL, allow_list.timestamp(moment))["Item"],
            "state": "CLAIMED",
            "claimCertificateId": certificate["certificateId"],
            "claimCertificatePem": certificate["certificatePem"],
            "claimClientId": f"provision-{SERIAL}", "claimedAt": allow_list.timestamp(moment),
            "claimRegion": region}


def stored_claim(aws: dict[str, Any], *, holds: str = SERIAL, **kwargs: Any) -> dict[str, Any]:
    """The entry and the certificate's record as the hook's claim transaction leaves them."""
    image = claim_image(aws, **kwargs)
    aws["dynamodb"].Table(PROVISIONING_TABLE).put_item(Item=image)
    aws["dynamodb"].Table(PROVISIONING_TABLE).put_item(Item={
        **allow_list.certificate_key(aws["certificate"]["certificateId"]),
        "kind": allow_list.CERTIFICATE_KIND, "serialNumber": holds})
    return image


def stream_event(*images: dict[str, Any]) -> dict[str, Any]:
    """Lambda's DynamoDB stream event (MODIFY records with typed images)."""
    serializer = TypeSerializer()
    return {"Records": [{
        "eventID": str(index), "eventName": "MODIFY", "eventVersion": "1.1",
        "eventSource": "aws:dynamodb", "awsRegion": REGION, "eventSourceARN": STREAM_ARN,
        "dynamodb": {"Keys": {"deviceUid": {"S": image["deviceUid"]}},
                     "NewImage": {k: serializer.serialize(v) for k, v in image.items()},
                     "SequenceNumber": f"{index + 100}", "SizeBytes": 100,
                     "StreamViewType": "NEW_AND_OLD_IMAGES"},
    } for index, image in enumerate(images)]}


def run(event: dict[str, Any]) -> dict[str, Any]:
    context = LambdaContext("recorder", "arn:aws:lambda:x", time.monotonic() + 60)
    return dict(recorder_app.handler(event, context))


def inventory(aws: dict[str, Any]) -> dict[str, Any] | None:
    item = aws["dynamodb"].Table(INVENTORY_TABLE).get_item(Key={"thingName": SERIAL}).get("Item")
    return dict(item) if item else None


def entry(aws: dict[str, Any]) -> dict[str, Any]:
    return dict(aws["dynamodb"].Table(PROVISIONING_TABLE).get_item(
        Key={"deviceUid": f"fleet#{SERIAL}"})["Item"])


def test_a_provisioned_device_lands_in_the_inventory_per_the_contract(aws: dict[str, Any]) -> None:
    provision(aws)
    image = stored_claim(aws)
    before = dt.datetime.now(dt.timezone.utc)
    assert run(stream_event(image)) == {"batchItemFailures": []}
    item = inventory(aws)
    assert item is not None
    certificate = x509.load_pem_x509_certificate(aws["certificate"]["certificatePem"].encode())
    assert item == {
        "thingName": SERIAL,
        "certificateId": aws["certificate"]["certificateId"],
        "certificatePem": aws["certificate"]["certificatePem"],
        "issuer": "AMAZON",
        "originRegion": REGION,
        "writerRegion": REGION,
        "status": "ACTIVE",
        "onboarding": "FLEET",
        "notAfter": timestamp(certificate.not_valid_after_utc),
        "version": 1,
        "updatedAt": item["updatedAt"],
    }
    assert InventoryItem.from_plain(item).version == 1  # the recorder keeps the contract
    assert dt.datetime.fromisoformat(item["updatedAt"]) >= before - dt.timedelta(seconds=1)
    settled = entry(aws)
    assert allow_list.problems(settled) == []
    assert settled["state"] == "PROVISIONED"
    assert settled["certificateId"] == aws["certificate"]["certificateId"]


def test_a_replayed_record_changes_nothing(aws: dict[str, Any]) -> None:
    provision(aws)
    image = stored_claim(aws)
    run(stream_event(image))
    first = inventory(aws)
    assert run(stream_event(image)) == {"batchItemFailures": []}
    assert inventory(aws) == first  # still version 1, same updatedAt


def test_not_provisioned_yet_is_retried_by_the_mapping(aws: dict[str, Any]) -> None:
    image = stored_claim(aws)  # certificate still INACTIVE, no thing
    answer = run(stream_event(image))
    assert answer == {"batchItemFailures": [{"itemIdentifier": "100"}]}
    assert inventory(aws) is None
    assert entry(aws)["state"] == "CLAIMED"


def test_a_claim_that_never_provisioned_is_dropped_after_the_give_up_time(
        aws: dict[str, Any]) -> None:
    image = stored_claim(aws, claimed_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2))
    assert run(stream_event(image)) == {"batchItemFailures": []}
    assert inventory(aws) is None
    assert entry(aws)["state"] == "CLAIMED"  # the hook lets the serial retry later


def test_another_regions_claim_is_not_ours_to_record(aws: dict[str, Any]) -> None:
    provision(aws)
    image = stored_claim(aws, region=OTHER_REGION)
    assert run(stream_event(image)) == {"batchItemFailures": []}
    assert inventory(aws) is None


def test_a_tombstone_is_revived_with_the_next_version(aws: dict[str, Any]) -> None:
    provision(aws)
    aws["dynamodb"].Table(INVENTORY_TABLE).put_item(Item=other_device(Status.DELETED, 4))
    image = stored_claim(aws)
    assert run(stream_event(image)) == {"batchItemFailures": []}
    item = inventory(aws)
    assert item is not None
    assert (item["version"], item["status"], item["writerRegion"], item["originRegion"]) == \
        (5, "ACTIVE", REGION, OTHER_REGION)
    assert item["certificateId"] == aws["certificate"]["certificateId"]
    assert "expiresAt" not in item


@pytest.mark.parametrize("status", ["ACTIVE", "REVOKED"])
def test_a_different_device_under_the_name_is_a_conflict_not_an_overwrite(
        aws: dict[str, Any], status: str) -> None:
    provision(aws)
    existing = other_device(status, 3)
    aws["dynamodb"].Table(INVENTORY_TABLE).put_item(Item=existing)
    image = stored_claim(aws)
    assert run(stream_event(image)) == {"batchItemFailures": []}
    assert inventory(aws) == existing
    assert entry(aws)["state"] == "CONFLICT"
    # the detector ends the conflict: the intruder's certificate is unusable and detached
    certificate = aws["certificate"]
    assert aws["iot"].describe_certificate(certificateId=certificate["certificateId"])[
        "certificateDescription"]["status"] == "INACTIVE"
    assert certificate["certificateArn"] not in aws["iot"].list_thing_principals(
        thingName=SERIAL)["principals"]


def test_plan_follows_the_version_rules() -> None:
    pem = _pem()
    claim = logic.Claim(SERIAL, certificate_id(pem), pem, dt.datetime.now(dt.timezone.utc),
                        REGION)
    now = dt.datetime.now(dt.timezone.utc)
    created = logic.plan(None, claim, now)
    assert created.kind == "CREATE" and created.item is not None and created.item.version == 1
    assert logic.plan(created.item, claim, now).kind == "RECORDED"
    deleted = InventoryItem.from_plain(other_device(Status.DELETED, 7))
    revived = logic.plan(deleted, claim, now)
    assert revived.kind == "REVIVE" and revived.replaces == deleted
    assert revived.item is not None and revived.item.version == 8
    assert revived.item.origin_region == OTHER_REGION and revived.item.expires_at is None
    revoked = InventoryItem.from_plain(other_device(Status.REVOKED, 2))
    assert logic.plan(revoked, claim, now).kind == "CONFLICT"


def other_device(status: str, version: int) -> dict[str, Any]:
    """Another device's item under the serial, written in the other region."""
    pem = _pem()
    item = InventoryItem.first(
        thing_name=SERIAL, certificate_id=certificate_id(pem), certificate_pem=pem,
        issuer=Issuer.AMAZON, onboarding=Onboarding.FLEET, region=OTHER_REGION,
        not_after="2030-01-01T00:00:00.000Z", updated_at="2026-01-01T00:00:00.000Z")
    while item.version < version - 1:
        item = item.changed(writer_region=OTHER_REGION, updated_at=item.updated_at)
    if status == Status.DELETED:
        item = item.tombstone(writer_region=OTHER_REGION, updated_at=item.updated_at,
                              now_epoch=1_900_000_000)
    elif version > 1:
        item = item.changed(writer_region=OTHER_REGION, updated_at=item.updated_at,
                            status=status)
    return item.to_plain()


def _pem() -> str:
    from tests.support.certificates import issue
    return issue("x").pem


# --- nothing stale wins; one certificate, one device (issue 19, classes 1 and 4) ---------

def test_a_redelivered_record_from_before_a_deletion_does_not_revive_the_device(
        aws: dict[str, Any]) -> None:
    """Recorded (v1), then deleted (tombstone v2); the old CLAIMED record arrives again: the
    entry is no longer CLAIMED, so the revive is refused in the same transaction."""
    provision(aws)
    image = stored_claim(aws)
    run(stream_event(image))
    recorded = inventory(aws)
    assert recorded is not None and entry(aws)["state"] == "PROVISIONED"
    tombstone = InventoryItem.from_plain(recorded).tombstone(
        writer_region=OTHER_REGION, updated_at="2030-01-01T00:00:00.000Z",
        now_epoch=1_900_000_000)
    aws["dynamodb"].Table(INVENTORY_TABLE).put_item(Item=tombstone.to_plain())
    assert run(stream_event(image)) == {"batchItemFailures": []}
    after = inventory(aws)
    assert after is not None and (after["status"], after["version"]) == ("DELETED", 2)


def test_a_record_of_a_claim_taken_over_since_writes_nothing(aws: dict[str, Any]) -> None:
    provision(aws)
    image = stored_claim(aws)
    aws["dynamodb"].Table(PROVISIONING_TABLE).update_item(
        Key=allow_list.key(SERIAL), UpdateExpression="SET claimCertificateId = :other",
        ExpressionAttributeValues={":other": "e" * 64})
    assert run(stream_event(image)) == {"batchItemFailures": []}
    assert inventory(aws) is None
    assert entry(aws)["state"] == "CLAIMED"


def test_a_certificate_that_holds_another_serial_is_never_recorded(aws: dict[str, Any]) -> None:
    """One certificate, one device: the recorder checks the certificate's record in the
    transaction that writes the device."""
    provision(aws)
    image = stored_claim(aws, holds="SN-other")
    assert run(stream_event(image)) == {"batchItemFailures": []}
    assert inventory(aws) is None
    assert entry(aws)["state"] == "CLAIMED"


def test_the_recorder_makes_the_attachment_exclusive(aws: dict[str, Any]) -> None:
    provision(aws)
    run(stream_event(stored_claim(aws)))
    arn = aws["certificate"]["certificateArn"]
    aws["iot"].create_thing(thingName="SN-intruder")
    with pytest.raises(aws["iot"].exceptions.InvalidRequestException):
        aws["iot"].attach_thing_principal(thingName="SN-intruder", principal=arn)


def test_a_certificate_attached_to_two_things_is_never_recorded(aws: dict[str, Any]) -> None:
    """What a claim holder gets by provisioning two serials with one certificate (were the
    hook bypassed): the template attaches NON_EXCLUSIVE_THING, the recorder's exclusive
    attachment fails, the entry settles CONFLICT and no device is recorded."""
    provision(aws)
    aws["iot"].create_thing(thingName="SN-second")
    aws["iot"].attach_thing_principal(thingName="SN-second",
                                      principal=aws["certificate"]["certificateArn"])
    assert run(stream_event(stored_claim(aws))) == {"batchItemFailures": []}
    assert inventory(aws) is None
    assert entry(aws)["state"] == "CONFLICT"
    assert aws["iot"].describe_certificate(certificateId=aws["certificate"]["certificateId"])[
        "certificateDescription"]["status"] == "INACTIVE"
