"""The registration function end to end in moto: real handler, real boto3, final state asserted.

Covers the seed's contract, the CSR path (the device's key is certified, no private key
anywhere), the answers (400 naming the field, one 403 for every identity refusal, 409),
the no-oracle property (wrong token and unknown UID take the same path), the second
identifier, stale claims, the cross-region case the inventory reveals, and re-registration
after an operator reissue.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from lambdas.contracts import cvm_device
from lambdas.contracts.certificates import certificate_id as id_of_pem
from lambdas.contracts.inventory import InventoryItem, Issuer, Onboarding, timestamp
from lambdas.cvm_registration.logic.registration import FOREIGN_CLAIM_MARGIN_SECONDS
from tests.support.certificates import issue
from tests.support.cvm import LEGACY, REGION, SEED_SALT, Cvm, api_event, cvm_world, new_csr, token
from tools.harness import StackGraph
from tools.local.emulation.lambdas import LambdaRuntime
from tools.local.journeys import registry as seen
from tools.local.pki_material import LocalPki

# The seed's published example: SHA256("YOUR_SECRET_SALT//DEVICE001").
SEED_TOKEN = "ecab892722df5937d055dd496cdff41ac6bdece2cfc18b31e896960e52df5787"
AMAZON_ROOT_CA_SHA256 = {
    "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e",  # Amazon Root CA 1
    "18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4",  # Amazon Root CA 3
}


@pytest.fixture
def world(local_graph: StackGraph, local_pki: LocalPki) -> Iterator[Cvm]:
    with cvm_world(local_graph, local_pki) as opened:
        opened.add_batch(LEGACY, SEED_SALT)
        opened.add_batch("B1", "salt-of-batch-1")
        yield opened


def assert_nothing_issued(world: Cvm, uid: str) -> None:
    assert world.certificates() == [] and world.things() == []
    record = world.record(uid)
    assert record.get("registrationState", {}).get("S") in (None, "UNREGISTERED")
    assert "claimId" not in record


def test_token_formula_is_the_seeds() -> None:
    assert token(SEED_SALT, "DEVICE001") == SEED_TOKEN


def test_seed_request_shape_registers_a_legacy_device(world: Cvm) -> None:
    world.add_device("DEVICE001", LEGACY)
    status, body = world.call('{"device_uid":"DEVICE001", "device_token":"%s"}' % SEED_TOKEN)

    assert status == 200 and body["statusCode"] == 200 and body["status"] == "SUCCESS"
    payload = body["payload"]
    assert payload["thing_name"] == "DEVICE001"
    assert payload["endpoint"] == world.environment["DEVICE_ENDPOINT"]
    pem = payload["certificates"]["device_certificate"]
    [certificate] = world.certificates()
    assert certificate["status"] == "ACTIVE"
    certificate_id = certificate["certificateId"]
    assert world.iot.describe_certificate(certificateId=certificate_id)[
        "certificateDescription"]["certificatePem"] == pem
    # Legacy path: the key pair is in the answer, and it belongs to the certificate.
    key = serialization.load_pem_private_key(payload["keyPair"]["privateKey"].encode(), None)
    cert = x509.load_pem_x509_certificate(pem.encode())
    assert key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo) == \
        cert.public_key().public_bytes(serialization.Encoding.DER,
                                       serialization.PublicFormat.SubjectPublicKeyInfo)
    # Thing, exclusive attachment, device policy.
    assert world.things() == ["DEVICE001"]
    assert world.thing_principals("DEVICE001") == [certificate["certificateArn"]]
    assert world.policy_targets() == [certificate["certificateArn"]]
    # Inventory item per the replication contract, record done.
    item = world.inventory("DEVICE001")
    assert {k: v for k, v in item.items() if k != "updatedAt"} == {
        "thingName": {"S": "DEVICE001"}, "certificateId": {"S": certificate_id},
        "certificatePem": {"S": pem}, "issuer": {"S": "AMAZON"},
        "originRegion": {"S": REGION}, "writerRegion": {"S": REGION},
        "status": {"S": "ACTIVE"}, "onboarding": {"S": "CVM"},
        "notAfter": {"S": timestamp(cert.not_valid_after_utc)},
        "version": {"N": "1"}}
    assert InventoryItem.from_attribute_values(item).version == 1  # the contract holds
    record = world.record("DEVICE001")
    assert record["registrationState"] == {"S": "REGISTERED"}
    assert record["certificateId"] == {"S": certificate_id} and "claimId" not in record
    assert record["attempts"] == {"N": "1"}
    assert cvm_device.problems(record) == []  # the function's commit keeps the record's contract


def test_root_ca_bundle_is_amazons_shipped_roots(world: Cvm) -> None:
    world.add_device("DEVICE001", LEGACY)
    _, body = world.call({"device_uid": "DEVICE001", "device_token": SEED_TOKEN})
    roots = x509.load_pem_x509_certificates(
        body["payload"]["certificates"]["root_ca"].encode())
    assert {r.fingerprint(hashes.SHA256()).hex() for r in roots} == AMAZON_ROOT_CA_SHA256


def test_csr_path_certifies_the_devices_key_and_never_handles_a_private_key(world: Cvm) -> None:
    world.add_device("sensor-7", "B1")
    key, csr = new_csr("sensor-7")
    device_token = token("salt-of-batch-1", "sensor-7")
    status, body = world.call({"device_uid": "sensor-7", "device_token": device_token, "csr": csr})

    assert status == 200, body
    cert = x509.load_pem_x509_certificate(
        body["payload"]["certificates"]["device_certificate"].encode())
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert cert.public_key().public_bytes(serialization.Encoding.DER, spki) == \
        key.public_key().public_bytes(serialization.Encoding.DER, spki)
    assert "keyPair" not in body["payload"]
    assert "PRIVATE KEY" not in json.dumps(body)
    logs = "\n".join(world.world.emulation(LambdaRuntime).function(world.function).output)
    # The logs were captured (the success line is there), and hold none of these:
    assert "device registered" in logs and '"certificateId"' in logs
    for secret in ("PRIVATE KEY", device_token, "salt-of-batch-1"):
        assert secret not in logs


def test_seed_shape_without_csr_is_refused_for_a_batch_that_requires_csrs(
        world: Cvm) -> None:
    world.add_device("sensor-8", "B1")
    status, body = world.call({"device_uid": "sensor-8",
                         "device_token": token("salt-of-batch-1", "sensor-8")})
    assert status == 400 and body["payload"]["field"] == "csr"
    assert_nothing_issued(world, "sensor-8")


@pytest.mark.parametrize("body, field", [
    ('{"device_token": "%s"}' % ("a" * 64), "device_uid"),
    ('{"device_uid": "D1"}', "device_token"),
    ('{"device_uid": "D1", "device_token": "abc"}', "device_token"),
    ('{"device_uid": "D1", "device_token": "%s"}' % ("g" * 64), "device_token"),
    ('{"device_uid": 7, "device_token": "%s"}' % ("a" * 64), "device_uid"),
    ('{"device_uid": "has space", "device_token": "%s"}' % ("a" * 64), "device_uid"),
    ('{"device_uid": "%s", "device_token": "%s"}' % ("x" * 129, "a" * 64), "device_uid"),
    ('{"device_uid": "D1", "device_token": "%s", "extra": 1}' % ("a" * 64), "extra"),
    ('{"device_uid": "D1", "device_token": "%s", "device_uid_2": "a+b"}' % ("a" * 64),
     "device_uid_2"),
    ('{"device_uid": "D1", "device_token": "%s", "csr": "not a csr"}' % ("a" * 64), "csr"),
    ('{"device_uid": "D1", "device_token": "%s", "csr": "-----BEGIN CERTIFICATE REQUEST-----'
     'AAAA-----END CERTIFICATE REQUEST-----"}' % ("a" * 64), "csr"),
    ("not json", "body"),
    ("[1, 2]", "body"),
    ('{"device_uid": "D1",', "body"),
    ("", "body"),
    (None, "body"),
])
def test_malformed_requests_get_400_naming_the_field(world: Cvm, body: str | None,
                                                     field: str) -> None:
    status, answer = world.call(body)
    assert (status, answer["statusCode"], answer["status"]) == (400, 400, "ERROR")
    assert answer["payload"]["field"] == field
    assert "Traceback" not in json.dumps(answer)


def test_base64_encoded_bodies_are_decoded_and_bad_base64_is_a_400(world: Cvm) -> None:
    world.add_device("DEVICE001", LEGACY)
    encoded = base64.b64encode(json.dumps(
        {"device_uid": "DEVICE001", "device_token": SEED_TOKEN}).encode()).decode()
    assert world.call(encoded, base64_encoded=True)[0] == 200
    status, answer = world.call("***", base64_encoded=True)
    assert status == 400 and answer["payload"]["field"] == "body"


def test_every_identity_refusal_is_the_same_403(world: Cvm) -> None:
    world.add_device("known", "B1")
    world.add_device("disabled", "B1", enabled=False)
    world.add_device("paired", "B1", uid2="AA:BB:CC")
    good = "salt-of-batch-1"
    _, csr = new_csr()
    answers = [world.call({**request, "csr": csr}) for request in (
        {"device_uid": "unknown", "device_token": token(good, "unknown")},  # no record
        {"device_uid": "known", "device_token": token("guessed", "known")},
        {"device_uid": "ghost", "device_token": token("guessed", "ghost")},
        {"device_uid": "disabled", "device_token": token(good, "disabled")},
        {"device_uid": "paired", "device_token": token(good, "paired")},  # uid2 missing
        {"device_uid": "paired", "device_token": token(good, "paired", "AA:BB:CD"),
         "device_uid_2": "AA:BB:CD"},
        {"device_uid": "known", "device_token": token(SEED_SALT, "known")},  # other batch
    )]
    assert {json.dumps(a, sort_keys=True) for a in answers} == {json.dumps(
        (403, {"statusCode": 403, "status": "ERROR",
               "payload": {"message": "registration refused"}}), sort_keys=True)}
    assert world.certificates() == [] and world.things() == []
    assert "claimId" not in world.record("known") and "attempts" not in world.record("known")


def test_wrong_token_and_unknown_device_take_the_same_path(world: Cvm) -> None:
    """Same AWS calls (none: the token is checked against the cached salts before any read),
    so neither the answer nor its timing tells an unknown UID from a wrong token."""
    world.add_device("known", "B1")
    world.add_device("disabled", "B1", enabled=False)
    world.call({"device_uid": "warm-up", "device_token": "0" * 64})  # reads the salts once
    calls: dict[str, list[str]] = {}
    for name, body in {
        "unknown": {"device_uid": "nobody", "device_token": token("x", "nobody")},
        "wrong token": {"device_uid": "known", "device_token": token("x", "known")},
        "disabled, wrong token": {"device_uid": "disabled", "device_token": token("x", "disabled")},
    }.items():
        before = len(world.calls())
        assert world.call(body)[0] == 403
        calls[name] = world.calls()[before:]
    assert calls == {"unknown": [], "wrong token": [], "disabled, wrong token": []}
    assert world.calls() == ["GetSecretValue"]


def test_a_proven_device_learns_registered_or_in_progress_as_409(world: Cvm) -> None:
    world.add_device("DEVICE001", LEGACY)
    request = {"device_uid": "DEVICE001", "device_token": SEED_TOKEN}
    assert world.call(request)[0] == 200
    answer = world.invoke(api_event(json.dumps(request)))
    assert answer["statusCode"] == 409 and "Retry-After" not in answer["multiValueHeaders"]
    assert json.loads(answer["body"])["payload"]["message"] == "device is already registered"
    assert answer["multiValueHeaders"]["Cache-Control"] == ["no-store"]
    assert len(world.certificates()) == 1


def test_a_fresh_claim_is_409_and_a_stale_one_is_taken_over(world: Cvm) -> None:
    world.add_device("DEVICE001", LEGACY)
    request = {"device_uid": "DEVICE001", "device_token": SEED_TOKEN}

    def claimed(at_ms: int, region: str = REGION) -> None:
        world.ddb.update_item(
            TableName=world.world.table(seen.PROVISIONING), Key={"deviceUid": {"S": "DEVICE001"}},
            UpdateExpression="SET registrationState = :c, claimId = :i, claimedAt = :t, "
                             "claimRegion = :r",
            ExpressionAttributeValues={":c": {"S": "CLAIMED"}, ":i": {"S": "dead"},
                                       ":t": {"N": str(at_ms)}, ":r": {"S": region}})

    claimed(int(time.time() * 1000))
    answer = world.invoke(api_event(json.dumps(request)))
    assert answer["statusCode"] == 409 and answer["multiValueHeaders"]["Retry-After"] == ["2"]
    assert "in progress" in json.loads(answer["body"])["payload"]["message"]
    stale_ms = int(world.environment["CLAIM_STALE_SECONDS"]) * 1000 + 1000
    # Another region's claim this old may still be committing there (its commit has not
    # replicated here yet): not taken over before the cross-region margin.
    claimed(int(time.time() * 1000) - stale_ms, region="us-east-1")
    assert world.call(request)[0] == 409
    claimed(int(time.time() * 1000) - stale_ms)  # ours, older than CLAIM_STALE_SECONDS
    assert world.call(request)[0] == 200
    assert world.record("DEVICE001")["registrationState"] == {"S": "REGISTERED"}


def test_another_regions_dead_claim_is_taken_over_after_the_cross_region_margin(
        world: Cvm) -> None:
    world.add_device("DEVICE002", LEGACY)
    old_ms = (int(world.environment["CLAIM_STALE_SECONDS"]) + FOREIGN_CLAIM_MARGIN_SECONDS
              + 1) * 1000
    world.ddb.update_item(
        TableName=world.world.table(seen.PROVISIONING), Key={"deviceUid": {"S": "DEVICE002"}},
        UpdateExpression="SET registrationState = :c, claimId = :i, claimedAt = :t, "
                         "claimRegion = :r",
        ExpressionAttributeValues={":c": {"S": "CLAIMED"}, ":i": {"S": "dead"},
                                   ":t": {"N": str(int(time.time() * 1000) - old_ms)},
                                   ":r": {"S": "us-east-1"}})
    assert world.call({"device_uid": "DEVICE002",
                       "device_token": token(SEED_SALT, "DEVICE002")})[0] == 200
    assert world.record("DEVICE002")["registeredRegion"] == {"S": REGION}


def test_second_identifier_is_part_of_the_token_and_of_the_record(world: Cvm) -> None:
    world.add_device("serial-1", "B1", uid2="AA:BB:CC:DD:EE:01")
    _, csr = new_csr()
    status, _ = world.call({"device_uid": "serial-1", "device_uid_2": "AA:BB:CC:DD:EE:01",
                      "device_token": token("salt-of-batch-1", "serial-1", "AA:BB:CC:DD:EE:01"),
                      "csr": csr})
    assert status == 200 and world.things() == ["serial-1"]


def test_salts_unreadable_is_503_and_nothing_is_claimed(world: Cvm) -> None:
    world.add_device("DEVICE001", LEGACY)
    world.world.emulation(LambdaRuntime).cold_start(world.function)
    world.world.calls.fail("GetSecretValue", "ThrottlingException", times=100,
                           by=f"lambda:{world.function}")
    status, body = world.call({"device_uid": "DEVICE001", "device_token": SEED_TOKEN})
    assert status == 503 and body["status"] == "ERROR"
    assert_nothing_issued(world, "DEVICE001")


def test_device_registered_in_another_region_first_is_409_and_leaves_nothing_here(
        world: Cvm) -> None:
    """The inventory item (replicated) arrived before the provisioning record's update: the
    commit's first-write condition fails; everything done here is undone."""
    world.add_device("DEVICE001", LEGACY)
    other = issue("other").pem
    world.ddb.put_item(TableName=world.world.table(seen.INVENTORY), Item=InventoryItem.first(
        thing_name="DEVICE001", certificate_id=id_of_pem(other), certificate_pem=other,
        issuer=Issuer.AMAZON, onboarding=Onboarding.CVM, region="us-west-2",
        not_after="2030-01-01T00:00:00.000Z",
        updated_at="2026-01-01T00:00:00.000Z").to_attribute_values())
    status, body = world.call({"device_uid": "DEVICE001", "device_token": SEED_TOKEN})
    assert (status, body["payload"]["message"]) == (409, "device is already registered")
    assert_nothing_issued(world, "DEVICE001")
    assert world.inventory("DEVICE001")["writerRegion"] == {"S": "us-west-2"}


def test_reopened_device_registers_again_as_the_next_inventory_version(world: Cvm) -> None:
    world.add_device("DEVICE001", LEGACY)
    request = {"device_uid": "DEVICE001", "device_token": SEED_TOKEN}
    assert world.call(request)[0] == 200
    old = world.inventory("DEVICE001")["certificateId"]["S"]
    old_arn = world.thing_principals("DEVICE001")[0]
    # What `tools/manufacturer.py reissue` does: revoke, detach, item INACTIVE v2, reopen.
    world.iot.update_certificate(certificateId=old, newStatus="REVOKED")
    world.iot.detach_thing_principal(thingName="DEVICE001", principal=old_arn)
    world.ddb.update_item(
        TableName=world.world.table(seen.INVENTORY), Key={"thingName": {"S": "DEVICE001"}},
        UpdateExpression="SET #s = :i, version = :v, revokedCertificateIds = :r",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":i": {"S": "INACTIVE"}, ":v": {"N": "2"},
                                   ":r": {"SS": [old]}})
    world.ddb.update_item(
        TableName=world.world.table(seen.PROVISIONING), Key={"deviceUid": {"S": "DEVICE001"}},
        UpdateExpression="SET registrationState = :u, reopenedFrom = :o",
        ExpressionAttributeValues={":u": {"S": "UNREGISTERED"}, ":o": {"S": old}})

    status, body = world.call(request)
    assert status == 200, body
    item = world.inventory("DEVICE001")
    assert item["version"] == {"N": "3"} and item["status"] == {"S": "ACTIVE"}
    assert item["certificateId"]["S"] == body["payload"]["certificate_id"] != old
    assert item["revokedCertificateIds"] == {"SS": [old]}
    assert world.thing_principals("DEVICE001") == [
        c["certificateArn"] for c in world.certificates() if c["status"] == "ACTIVE"]
    record = world.record("DEVICE001")
    assert "reopenedFrom" not in record and record["attempts"] == {"N": "2"}


def test_device_policy_is_the_configured_one(world: Cvm) -> None:
    world.add_device("DEVICE001", LEGACY)
    world.call({"device_uid": "DEVICE001", "device_token": SEED_TOKEN})
    [certificate] = world.certificates()
    policies = world.iot.list_attached_policies(target=certificate["certificateArn"])["policies"]
    assert [p["policyName"] for p in policies] == [seen.device_policy(world.world, "eu-west-1")]


def test_a_takeover_revokes_what_the_dead_invocation_left_on_the_thing(world: Cvm) -> None:
    """An invocation died (timeout) after CreateThing/CreateCertificate/Attach: the next claim
    finds the thing (CreateThing with another claim attribute fails, as in AWS), revokes the
    undelivered certificate, takes the device policy off it, detaches it, and registers
    with a new one."""
    world.add_device("DEVICE001", LEGACY)
    world.iot.create_thing(thingName="DEVICE001", attributePayload={"attributes": {
        "deviceUid": "DEVICE001", "batch": LEGACY, "claim": "dead"}})
    leftover = world.iot.create_keys_and_certificate(setAsActive=True)
    world.iot.attach_thing_principal(thingName="DEVICE001", principal=leftover["certificateArn"],
                                     thingPrincipalType="EXCLUSIVE_THING")
    world.iot.attach_policy(policyName=seen.device_policy(world.world, REGION),
                            target=leftover["certificateArn"])
    world.ddb.update_item(
        TableName=world.world.table(seen.PROVISIONING), Key={"deviceUid": {"S": "DEVICE001"}},
        UpdateExpression="SET registrationState = :c, claimId = :i, claimedAt = :t",
        ExpressionAttributeValues={":c": {"S": "CLAIMED"}, ":i": {"S": "dead"},
                                   ":t": {"N": str(int(time.time() * 1000) - 10**7)}})

    status, body = world.call({"device_uid": "DEVICE001", "device_token": SEED_TOKEN})
    assert status == 200, body
    statuses = {c["certificateId"]: c["status"] for c in world.certificates()}
    assert statuses == {leftover["certificateId"]: "REVOKED",
                        body["payload"]["certificate_id"]: "ACTIVE"}
    assert len(world.thing_principals("DEVICE001")) == 1
    assert leftover["certificateArn"] not in world.thing_principals("DEVICE001")
    assert leftover["certificateArn"] not in world.policy_targets()  # no rights left on it
    assert world.inventory("DEVICE001")["version"] == {"N": "1"}


def test_optional_fields_sent_as_null_register_through_the_gateway_too(world: Cvm) -> None:
    """A device whose JSON library writes absent optional fields as null: the gateway's model
    and the function agree (both accept), so the device is not refused before the function."""
    from tools.local.journeys import cvm as journey

    world.add_device("DEVICE001", LEGACY)
    answer = journey.post(world.world, REGION, {"device_uid": "DEVICE001", "device_token": SEED_TOKEN,
                                                "csr": None, "device_uid_2": None})
    assert answer.status == 200, answer.json()
