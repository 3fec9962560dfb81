"""Issue 20, classes 2 and 3 on the real function in the one world: a revocation is final
whatever is in flight, a region refuses without writing what it did not claim, and a lost
answer never costs the device its identity (re-delivery to the same key, a commit that landed
is never undone, a lost claim answer does not hold the device)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from lambdas.contracts import inventory
from lambdas.contracts.certificates import certificate_id as id_of_pem
from lambdas.contracts.inventory import InventoryItem, Issuer, Onboarding
from tests.support.certificates import issue
from tests.support.cvm import LEGACY, REGION, SEED_SALT, Cvm, cvm_world, new_csr, token
from tools import manufacturer
from tools.harness import StackGraph
from tools.local.calls import acting_as
from tools.local.emulation.lambdas import LambdaRuntime
from tools.local.journeys import registry as seen
from tools.local.pki_material import LocalPki

PROJECT_DIR = Path(__file__).resolve().parent.parent
SALT = "salt-1"


@pytest.fixture
def world(local_graph: StackGraph, local_pki: LocalPki) -> Iterator[Cvm]:
    with cvm_world(local_graph, local_pki) as opened:
        opened.add_batch("B1", SALT)
        opened.add_batch(LEGACY, SEED_SALT)
        opened.add_device("sensor-1", "B1")
        opened.add_device("DEVICE001", LEGACY)
        yield opened


def request(uid: str = "sensor-1", csr: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"device_uid": uid, "device_token": token(SALT, uid)}
    if csr is not None:
        body["csr"] = csr
    return body


def operator(*argv: str) -> str:
    """The operator's tool, as an operator runs it (its calls are not the function's)."""
    out, err = io.StringIO(), io.StringIO()
    with acting_as("operator"):
        status = manufacturer.main(["--stack", "dev", "--region", REGION, *argv],
                                   project_dir=PROJECT_DIR, out=out, err=err)
    assert status == 0, err.getvalue()
    return out.getvalue()


def by_function(world: Cvm) -> str:
    return f"lambda:{world.function}"


def is_claim(params: dict[str, Any]) -> bool:
    return "ConditionCheck" in params["TransactItems"][0]


def is_commit(params: dict[str, Any]) -> bool:
    return "Put" in params["TransactItems"][0]


def landed_then_lost(world: Cvm, operation: str, when: Any) -> None:
    """The next matching call of the function takes effect, then every SDK attempt of it
    fails (its answer is lost): the call is made once more, as someone else, just before the
    function's own call raises."""
    client = world.ddb

    def apply(params: dict[str, Any]) -> None:
        with acting_as("network"):
            getattr(client, {"TransactWriteItems": "transact_write_items",
                             "UpdateItem": "update_item"}[operation])(**params)

    world.world.calls.before(operation, apply, when=when, by=by_function(world))
    world.world.calls.fail(operation, "RequestTimeout", when=when, by=by_function(world))


def active_certificates(world: Cvm) -> list[str]:
    return [c["certificateId"] for c in world.certificates() if c["status"] == "ACTIVE"]


# --- class 2: a revocation is final ---------------------------------------------------------

@pytest.mark.parametrize("moment", ["CreateThing", "AttachPolicy", "TransactWriteItems"])
def test_a_revoke_while_a_registration_is_in_flight_stays_revoked(world: Cvm,
                                                                  moment: str) -> None:
    said: list[str] = []
    world.world.calls.before(moment, lambda _: said.append(operator("revoke", "sensor-1")),
                             when=is_commit if moment == "TransactWriteItems" else None,
                             by=by_function(world))
    _, csr = new_csr()
    status, body = world.call(request(csr=csr))
    assert said and "not registered" in said[0]
    assert status == 403, body
    record = world.record("sensor-1")
    assert record["registrationState"] == {"S": "REVOKED"}
    assert record["enabled"] == {"BOOL": False}
    assert active_certificates(world) == []
    assert world.inventory("sensor-1") == {}
    assert world.call(request(csr=csr))[0] == 403  # and it stays so


def test_a_revoke_while_a_reissued_device_re_registers_is_the_one_403(world: Cvm) -> None:
    """The commit is refused by the inventory item (the device had a certificate) and by the
    record (revoked meanwhile): the device hears what a revoked device hears, not 409."""
    assert world.call(request(csr=new_csr()[1]))[0] == 200
    operator("reissue", "sensor-1")
    world.world.calls.before("TransactWriteItems", lambda _: operator("revoke", "sensor-1"),
                             when=is_commit, by=by_function(world))
    status, body = world.call(request(csr=new_csr()[1]))
    assert world.record("sensor-1")["registrationState"] == {"S": "REVOKED"}
    assert status == 403, body


def test_a_disable_while_a_registration_is_in_flight_wins(world: Cvm) -> None:
    world.world.calls.before("TransactWriteItems",
                             lambda _: operator("disable", "sensor-1"), when=is_commit,
                             by=by_function(world))
    assert world.call(request(csr=new_csr()[1]))[0] == 403
    assert world.record("sensor-1")["registrationState"] == {"S": "UNREGISTERED"}
    assert active_certificates(world) == [] and world.things() == []


def replicated_item(world: Cvm, thing: str, status: str) -> dict[str, Any]:
    """The device's inventory item as it arrives from the region that registered it, before
    its provisioning record does (items replicate one by one)."""
    pem = issue(thing).pem
    item = InventoryItem.first(thing_name=thing, region="us-east-1",
                               updated_at="2026-01-01T00:00:00.000Z",
                               certificate_id=id_of_pem(pem), certificate_pem=pem,
                               issuer=Issuer.AMAZON, onboarding=Onboarding.CVM,
                               not_after="2030-01-01T00:00:00.000Z")
    table = world.world.table(seen.INVENTORY)
    world.ddb.put_item(**inventory.put_request(table, item))
    if status != inventory.Status.ACTIVE:
        changed = item.changed(writer_region="us-east-1",
                               updated_at="2026-01-02T00:00:00.000Z", status=status)
        world.ddb.put_item(**inventory.put_request(table, changed, replaces=item))
    return world.inventory(thing)


@pytest.mark.parametrize("status, answer", [(inventory.Status.ACTIVE, 409),
                                            (inventory.Status.REVOKED, 403)])
def test_a_region_that_has_the_item_but_not_yet_the_record_refuses_and_writes_nothing(
        world: Cvm, status: str, answer: int) -> None:
    item = replicated_item(world, "sensor-1", status)
    record = world.record("sensor-1")
    world.world.calls.clear()
    assert world.call(request(csr=new_csr()[1]))[0] == answer
    assert world.record("sensor-1") == record  # not one attribute written
    assert world.inventory("sensor-1") == item
    assert world.things() == [] and world.certificates() == []
    writes = [c.operation for c in world.world.calls.of(caller=by_function(world))
              if c.operation not in ("GetItem", "GetSecretValue")]
    assert writes == ["TransactWriteItems"]  # the claim, cancelled as a whole


# --- class 3: a lost answer never costs the device its identity ---------------------------

def test_a_retry_with_a_csr_for_the_same_key_gets_the_same_certificate(world: Cvm) -> None:
    key, csr = new_csr("sensor-1")
    status, first = world.call(request(csr=csr))
    assert status == 200
    # The answer was lost; the device still holds its key and makes a new CSR for it.
    again = (x509.CertificateSigningRequestBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "again")]))
             .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())
    for retry in (csr, again):
        status, body = world.call(request(csr=retry))
        assert status == 200, body
        assert body["payload"]["certificate_id"] == first["payload"]["certificate_id"]
        assert body["payload"]["certificates"]["device_certificate"] == \
            first["payload"]["certificates"]["device_certificate"]
    assert len(world.certificates()) == 1
    # Another key is not the device's proof of possession: the one conflict answer.
    assert world.call(request(csr=new_csr()[1]))[0] == 409
    # The legacy path cannot prove a key: still 409 (the operator's reissue reopens it).
    legacy = {"device_uid": "DEVICE001", "device_token": token(SEED_SALT, "DEVICE001")}
    assert world.call(legacy)[0] == 200
    assert world.call(legacy)[0] == 409


def test_a_commit_that_landed_with_its_answer_lost_is_kept_and_answered(world: Cvm) -> None:
    landed_then_lost(world, "TransactWriteItems", is_commit)
    _, csr = new_csr()
    status, body = world.call(request(csr=csr))
    assert status == 200, body
    certificate_id = body["payload"]["certificate_id"]
    assert active_certificates(world) == [certificate_id]
    assert world.inventory("sensor-1")["certificateId"] == {"S": certificate_id}
    assert world.record("sensor-1")["registrationState"] == {"S": "REGISTERED"}


def test_when_nothing_answers_after_the_commit_nothing_is_undone(world: Cvm) -> None:
    """A DynamoDB brownout: the commit lands, its answer and every later DynamoDB call fail.
    Undoing would delete the certificate the inventory names; the function keeps it and the
    device's retry with its key gets it."""
    landed_then_lost(world, "TransactWriteItems", is_commit)
    world.world.calls.fail("UpdateItem", "ServiceUnavailable", by=by_function(world))
    world.world.calls.fail("GetItem", "ServiceUnavailable", skip=1,  # after the claim's
                           by=by_function(world))
    _, csr = new_csr()
    assert world.call(request(csr=csr))[0] == 503
    [kept] = active_certificates(world)
    assert world.inventory("sensor-1")["certificateId"] == {"S": kept}
    status, body = world.call(request(csr=csr))
    assert (status, body["payload"]["certificate_id"]) == (200, kept)


def test_a_commit_that_did_not_land_is_undone_and_cannot_land_late(world: Cvm) -> None:
    world.world.calls.fail("TransactWriteItems", "RequestTimeout", when=is_commit,
                           by=by_function(world))
    _, csr = new_csr()
    assert world.call(request(csr=csr))[0] == 503
    assert world.certificates() == [] and world.things() == []
    assert world.record("sensor-1")["registrationState"] == {"S": "UNREGISTERED"}
    assert world.call(request(csr=csr))[0] == 200


def test_a_lost_claim_answer_does_not_hold_the_device(world: Cvm) -> None:
    landed_then_lost(world, "TransactWriteItems", is_claim)
    _, csr = new_csr()
    assert world.call(request(csr=csr))[0] == 503
    record = world.record("sensor-1")
    assert record["registrationState"] == {"S": "UNREGISTERED"} and "claimId" not in record
    assert world.call(request(csr=csr))[0] == 200  # at once, not after the stale time


def test_a_delete_waits_for_the_detach_to_propagate(world: Cvm) -> None:
    """AWS: a detach "might take several seconds" to propagate; DeleteCertificate answers
    DeleteConflictException meanwhile. The undo keeps trying (backoff) instead of leaving an
    INACTIVE certificate and an UndoFailed alarm."""
    world.world.calls.fail("TransactWriteItems", "RequestTimeout", when=is_commit,
                           by=by_function(world))
    world.world.calls.fail("DeleteCertificate", "DeleteConflictException", times=3,
                           by=by_function(world))
    assert world.call(request(csr=new_csr()[1]))[0] == 503
    # 3 injected refusals, the emulated propagation's own (docs/emulation.md), then the delete
    assert len(world.world.calls.of("DeleteCertificate", caller=by_function(world))) == 5
    assert world.certificates() == [] and world.things() == []
    output = world.world.emulation(LambdaRuntime).function(world.function).output
    assert not any('"UndoFailed"' in line for line in output)
