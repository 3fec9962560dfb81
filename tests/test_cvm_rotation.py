"""Certificate rotation with proof of possession (moto, real handler): a registered device signs
a request for a new key with its current key; the old certificate is revoked here and marked
for revocation everywhere through the inventory item (version + 1)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

import botocore.session
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from lambdas.contracts import cvm_device
from lambdas.contracts.inventory import InventoryItem
from tests.support.cvm import REGION, Cvm, api_event, cvm_world, new_csr, token
from tests.test_cvm_finality import by_function, is_commit, landed_then_lost
from tools.harness import StackGraph
from tools.local.calls import acting_as
from tools.local.journeys import registry as seen
from tools.local.pki_material import LocalPki

REFUSED = {"statusCode": 403, "status": "ERROR", "payload": {"message": "registration refused"}}


def post(world: Cvm, body: dict[str, Any], path: str) -> tuple[int, dict[str, Any]]:
    answer = world.invoke(api_event(json.dumps(body), path=path))
    return answer["statusCode"], json.loads(answer["body"])


def signed_rotation(uid: str, key: ec.EllipticCurvePrivateKey, csr: str,
                    timestamp: int | None = None) -> dict[str, Any]:
    """The device side of the contract, written out: sign
    "cvm-rotation\\n<uid>\\n<timestamp>\\n<hex sha256 of the CSR PEM>" with the current key."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    message = f"cvm-rotation\n{uid}\n{timestamp}\n{hashlib.sha256(csr.encode()).hexdigest()}"
    signature = key.sign(message.encode(), ec.ECDSA(hashes.SHA256()))
    return {"device_uid": uid, "csr": csr, "timestamp": timestamp,
            "signature": base64.b64encode(signature).decode()}


@pytest.fixture
def registered(local_graph: StackGraph, local_pki: LocalPki) -> Any:
    """A world with sensor-1 registered through the CSR path: (world, its key, its cert id)."""
    with cvm_world(local_graph, local_pki) as world:
        world.add_batch("B1", "salt-1")
        world.add_device("sensor-1", "B1")
        key, csr = new_csr("sensor-1")
        status, body = post(world, {"device_uid": "sensor-1",
                                    "device_token": token("salt-1", "sensor-1"), "csr": csr},
                            "/registration")
        assert status == 200
        yield world, key, body["payload"]["certificate_id"]


def test_rotation_issues_for_the_new_key_and_revokes_the_old_certificate(registered: Any) -> None:
    world, key, old_id = registered
    new_key, csr = new_csr("sensor-1")
    status, body = post(world, signed_rotation("sensor-1", key, csr), "/rotation")

    assert status == 200, body
    new_id = body["payload"]["certificate_id"]
    cert = x509.load_pem_x509_certificate(
        body["payload"]["certificates"]["device_certificate"].encode())
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert cert.public_key().public_bytes(serialization.Encoding.DER, spki) == \
        new_key.public_key().public_bytes(serialization.Encoding.DER, spki)
    assert "keyPair" not in body["payload"]
    statuses = {c["certificateId"]: c["status"] for c in world.certificates()}
    assert statuses == {old_id: "REVOKED", new_id: "ACTIVE"}
    new_arn = next(c["certificateArn"] for c in world.certificates()
                   if c["certificateId"] == new_id)
    assert world.thing_principals("sensor-1") == [new_arn]
    item = world.inventory("sensor-1")
    assert item["version"] == {"N": "2"} and item["status"] == {"S": "ACTIVE"}
    assert item["certificateId"] == {"S": new_id} and item["writerRegion"] == {"S": REGION}
    assert item["revokedCertificateIds"] == {"SS": [old_id]}
    assert item["certificatePem"]["S"] == body["payload"]["certificates"]["device_certificate"]
    assert InventoryItem.from_attribute_values(item).version == 2  # the contract holds
    record = world.record("sensor-1")
    assert record["certificateId"] == {"S": new_id} and record["previousCertificateId"] == {"S": old_id}
    assert cvm_device.problems(record) == []  # the rotation's write keeps the record's contract


def test_an_identical_retry_gets_the_same_new_certificate_and_nothing_else(
        registered: Any) -> None:
    """The rotation's answer was lost: the device, holding only its old key, sends the same
    request again. It gets the certificate already issued for its new key; nothing is issued
    or revoked. Anything else signed by the old key is refused, and so is the same request
    once it is no longer fresh."""
    world, key, old_id = registered
    new_key, csr = new_csr()
    request = signed_rotation("sensor-1", key, csr)
    status, first = post(world, request, "/rotation")
    assert status == 200
    status, again = post(world, request, "/rotation")
    assert status == 200, again
    assert again["payload"]["certificate_id"] == first["payload"]["certificate_id"]
    assert len(world.certificates()) == 2
    assert world.inventory("sensor-1")["version"] == {"N": "2"}
    _, other_csr = new_csr()
    assert post(world, signed_rotation("sensor-1", key, other_csr), "/rotation") == \
        (403, REFUSED)  # the old key proves nothing new
    stale = signed_rotation("sensor-1", key, csr, timestamp=int(time.time()) - 600)
    assert post(world, stale, "/rotation") == (403, REFUSED)
    assert {c["status"] for c in world.certificates()} == {"ACTIVE", "REVOKED"}


def test_an_identical_retry_finishes_retiring_the_old_certificate(registered: Any) -> None:
    """The first answer lost its revoke and detach (reported, the rotation stood): the retry
    does them, since the replication never revokes in the region that wrote the row."""
    world, key, old_id = registered
    _, csr = new_csr()
    request = signed_rotation("sensor-1", key, csr)
    world.world.calls.fail("UpdateCertificate", "ServiceUnavailableException",
                           when=lambda params: params.get("newStatus") == "REVOKED")
    world.world.calls.fail("DetachThingPrincipal", "ServiceUnavailableException")
    status, first = post(world, request, "/rotation")
    assert status == 200, first
    assert {c["certificateId"]: c["status"] for c in world.certificates()}[old_id] == "ACTIVE"
    assert len(world.thing_principals("sensor-1")) == 2

    status, again = post(world, request, "/rotation")
    assert status == 200 and again["payload"]["certificate_id"] == first["payload"]["certificate_id"]
    assert {c["certificateId"]: c["status"] for c in world.certificates()}[old_id] == "REVOKED"
    assert [p.rsplit("/", 1)[1] for p in world.thing_principals("sensor-1")] == [
        first["payload"]["certificate_id"]]


@pytest.mark.parametrize("case", ["other key", "stale", "future", "unknown device",
                                  "tampered csr"])
def test_rotation_refusals_are_the_one_403(registered: Any, case: str) -> None:
    world, key, old_id = registered
    _, csr = new_csr()
    uid, signer, timestamp = "sensor-1", key, int(time.time())
    if case == "other key":
        signer = ec.generate_private_key(ec.SECP256R1())
    elif case == "stale":
        timestamp -= 3600
    elif case == "future":
        timestamp += 3600
    elif case == "unknown device":
        uid = "sensor-404"
    request = signed_rotation(uid, signer, csr, timestamp)
    if case == "tampered csr":
        request["csr"] = new_csr()[1]
    assert post(world, request, "/rotation") == (403, REFUSED)
    assert [c["certificateId"] for c in world.certificates()] == [old_id]
    assert world.inventory("sensor-1")["version"] == {"N": "1"}


def test_rotation_must_bring_a_new_key(registered: Any) -> None:
    world, key, _ = registered
    same_key_csr = (x509.CertificateSigningRequestBuilder()
                    .subject_name(x509.Name([]))
                    .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())
    status, body = post(world, signed_rotation("sensor-1", key, same_key_csr), "/rotation")
    assert status == 400 and body["payload"]["field"] == "csr"
    assert len(world.certificates()) == 1


@pytest.mark.parametrize("operation", ["CreateCertificateFromCsr", "AttachThingPrincipal",
                                       "AttachPolicy", "TransactWriteItems"])
def test_a_fault_during_rotation_keeps_the_current_certificate(registered: Any,
                                                               operation: str) -> None:
    world, key, old_id = registered
    _, csr = new_csr()
    world.world.calls.fail(operation, "ServiceUnavailableException", by=f"lambda:{world.function}")
    status, _ = post(world, signed_rotation("sensor-1", key, csr), "/rotation")
    assert status == 503
    assert [(c["certificateId"], c["status"]) for c in world.certificates()] == [(old_id, "ACTIVE")]
    assert len(world.thing_principals("sensor-1")) == 1
    assert world.inventory("sensor-1")["version"] == {"N": "1"}
    assert post(world, signed_rotation("sensor-1", key, csr), "/rotation")[0] == 200  # retry works


def test_a_broken_inventory_item_is_never_built_upon(registered: Any) -> None:
    """The item breaks its contract (here: no writerRegion): the function writes no next
    version over it and issues nothing; the device may retry once an operator repaired it."""
    world, key, old_id = registered
    world.ddb.update_item(TableName=world.world.table(seen.INVENTORY), Key={"thingName": {"S": "sensor-1"}},
                          UpdateExpression="REMOVE writerRegion")
    _, csr = new_csr("sensor-1")
    status, body = post(world, signed_rotation("sensor-1", key, csr), "/rotation")
    assert status == 503, body
    assert [c["certificateId"] for c in world.certificates()] == [old_id]
    item = world.inventory("sensor-1")
    assert item["version"] == {"N": "1"} and "writerRegion" not in item


# --- the commit's answer is lost -------------------------------------------------------------

@pytest.mark.parametrize("answer", ["every attempt fails", "the SDK's retry is refused"])
def test_a_rotation_commit_that_landed_with_its_answer_lost_is_kept_and_answered(
        registered: Any, answer: str) -> None:
    """The commit lands and its answer is lost: every SDK attempt fails, or the SDK's retry
    meets the condition the first attempt already changed. The inventory item and the record
    name the new certificate, so the function keeps it and answers as for any rotation."""
    world, key, old_id = registered
    if answer == "every attempt fails":
        landed_then_lost(world, "TransactWriteItems", is_commit)
    else:  # the first attempt lands unseen; the function's own attempt is then refused
        world.world.calls.before("TransactWriteItems", lambda params: landed(world, params),
                                 when=is_commit, by=by_function(world))
    new_key, csr = new_csr("sensor-1")
    request = signed_rotation("sensor-1", key, csr)
    status, body = post(world, request, "/rotation")

    assert status == 200, body
    new_id = world.inventory("sensor-1")["certificateId"]["S"]
    assert new_id != old_id and body["payload"]["certificate_id"] == new_id
    cert = x509.load_pem_x509_certificate(
        body["payload"]["certificates"]["device_certificate"].encode())
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert cert.public_key().public_bytes(serialization.Encoding.DER, spki) == \
        new_key.public_key().public_bytes(serialization.Encoding.DER, spki)
    # As a rotation whose answer arrived leaves it: the old certificate revoked and detached.
    assert {c["certificateId"]: c["status"] for c in world.certificates()} == \
        {old_id: "REVOKED", new_id: "ACTIVE"}
    new_arn = next(c["certificateArn"] for c in world.certificates()
                   if c["certificateId"] == new_id)
    assert world.thing_principals("sensor-1") == [new_arn]
    record = world.record("sensor-1")
    assert record["certificateId"] == {"S": new_id}
    assert record["previousCertificateId"] == {"S": old_id}
    again = post(world, request, "/rotation")  # and the same request again: the same answer
    assert again[0] == 200 and again[1]["payload"]["certificate_id"] == new_id


def landed(world: Cvm, params: dict[str, Any]) -> None:
    with acting_as("network"):
        world.ddb.transact_write_items(**params)


def test_when_nothing_answers_after_a_rotation_commit_nothing_is_undone(
        registered: Any) -> None:
    """The commit lands, its answer is lost and the record cannot be read: whether it landed
    is unknown, so the new certificate is kept (deleting it could cost the device its
    identity); the device's retry of the same request gets it."""
    world, key, old_id = registered
    landed_then_lost(world, "TransactWriteItems", is_commit)
    world.world.calls.fail("GetItem", "ServiceUnavailable", skip=2,  # after the two reads
                           by=by_function(world))
    _, csr = new_csr("sensor-1")
    request = signed_rotation("sensor-1", key, csr)
    assert post(world, request, "/rotation")[0] == 503
    new_id = world.inventory("sensor-1")["certificateId"]["S"]
    assert new_id != old_id
    assert {c["certificateId"]: c["status"] for c in world.certificates()}[new_id] == "ACTIVE"
    status, body = post(world, request, "/rotation")
    assert (status, body["payload"]["certificate_id"]) == (200, new_id)


def test_every_transaction_names_a_token_dynamodb_accepts(registered: Any) -> None:
    """ClientRequestToken makes the SDK's retries of a transaction whose answer was lost
    idempotent; DynamoDB refuses a token over 36 characters (ValidationException: every
    registration would fail), which moto does not check. One token per transaction."""
    world, key, _ = registered
    _, csr = new_csr("sensor-1")
    assert post(world, signed_rotation("sensor-1", key, csr), "/rotation")[0] == 200
    shape = botocore.session.get_session().get_service_model("dynamodb") \
        .operation_model("TransactWriteItems").input_shape.members["ClientRequestToken"]
    tokens = [c.params.get("ClientRequestToken") for c in
              world.world.calls.of("TransactWriteItems", caller=by_function(world))]
    assert len(tokens) == 3  # the claim, the registration's commit, the rotation's commit
    assert all(t is not None and 1 <= len(t) <= shape.metadata["max"] for t in tokens), tokens
    assert len(set(tokens)) == 3
