"""A fault at each AWS call of a registration (and of a rotation): nothing is left behind, the
record can be claimed again, and the device's retry succeeds.

The calls are the function's in the world's call log; the expected list pins them (8 on the
CSR path, plus the cold read of the salts: the claim is a transaction with the inventory
check, read back consistently; the certificate is created inactive and activated before
the commit, issue 20).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from lambdas.contracts import cvm_device
from tests.support.cvm import LEGACY, SEED_SALT, Cvm, cvm_world, new_csr, token
from tools.harness import StackGraph
from tools.local.emulation.lambdas import LambdaRuntime
from tools.local.pki_material import LocalPki

CSR_PATH_CALLS = ["GetSecretValue", "TransactWriteItems", "GetItem", "CreateThing", "CreateCertificateFromCsr",
                  "AttachThingPrincipal", "AttachPolicy", "UpdateCertificate", "TransactWriteItems"]
LEGACY_PATH_CALLS = ["GetSecretValue", "TransactWriteItems", "GetItem", "CreateThing", "CreateKeysAndCertificate",
                     "AttachThingPrincipal", "AttachPolicy", "UpdateCertificate", "TransactWriteItems"]
_, CSR = new_csr("sensor-1")
REQUESTS = {
    "csr": {"device_uid": "sensor-1", "device_token": token("salt-1", "sensor-1"), "csr": CSR},
    "legacy": {"device_uid": "DEVICE001", "device_token": token(SEED_SALT, "DEVICE001")},
}


@pytest.fixture
def world(local_graph: StackGraph, local_pki: LocalPki) -> Iterator[Cvm]:
    with cvm_world(local_graph, local_pki) as opened:
        opened.add_batch("B1", "salt-1")
        opened.add_batch(LEGACY, SEED_SALT)
        opened.add_device("sensor-1", "B1")
        opened.add_device("DEVICE001", LEGACY)
        yield opened


def fail(world: Cvm, operation: str, skip: int = 0) -> None:
    """The function's call of `operation` after `skip` earlier ones fails."""
    world.world.calls.fail(operation, "ServiceUnavailableException", skip=skip,
                           by=f"lambda:{world.function}")


def assert_clean(world: Cvm, uid: str) -> None:
    assert world.certificates() == [], "orphaned certificate"
    assert world.things() == [], "orphaned thing"
    assert world.policy_targets() == []
    record = world.record(uid)
    assert record["registrationState"] == {"S": "UNREGISTERED"}
    assert "claimId" not in record and "claimedAt" not in record
    assert cvm_device.problems(record) == []  # the release keeps the record's contract
    assert world.inventory(uid) == {}


@pytest.mark.parametrize("path, expected", [("csr", CSR_PATH_CALLS),
                                            ("legacy", LEGACY_PATH_CALLS)])
def test_a_registration_makes_these_calls_and_no_more(world: Cvm, path: str,
                                                      expected: list[str]) -> None:
    assert world.call(REQUESTS[path])[0] == 200
    assert world.calls() == expected
    assert len(world.calls()) - 1 <= 8  # the salts are cached after the first call


@pytest.mark.parametrize("path, index", [
    *[("csr", i) for i in range(len(CSR_PATH_CALLS))],
    *[("legacy", i) for i in range(len(LEGACY_PATH_CALLS))]])
def test_a_fault_at_any_call_leaves_nothing_and_the_retry_succeeds(world: Cvm, path: str,
                                                                  index: int) -> None:
    request = REQUESTS[path]
    uid = request["device_uid"]
    calls = CSR_PATH_CALLS if path == "csr" else LEGACY_PATH_CALLS
    fail(world, calls[index], skip=calls[:index].count(calls[index]))
    status, body = world.call(request)
    assert (status, body["status"]) == (503, "ERROR")
    assert "Traceback" not in json.dumps(body)
    assert_clean(world, uid)

    status, body = world.call(request)  # the device retries
    assert status == 200, body
    [certificate] = world.certificates()
    assert certificate["status"] == "ACTIVE"
    assert world.things() == [uid]
    assert world.inventory(uid)["certificateId"]["S"] == certificate["certificateId"]
    assert world.record(uid)["registrationState"] == {"S": "REGISTERED"}


def test_a_failing_undo_is_reported_for_the_alarm(world: Cvm) -> None:
    """Commit fails and so does deleting the certificate: the answer is still a clean 503,
    and the UndoFailed metric (alarmed on) names the problem."""
    fail(world, "TransactWriteItems", skip=1)  # the commit (the claim is the first)
    fail(world, "DeleteCertificate")
    status, _ = world.call(REQUESTS["csr"])
    assert status == 503
    output = world.world.emulation(LambdaRuntime).function(world.function).output
    metrics = [json.loads(line) for line in output if line.startswith('{"_aws"')]
    assert any(m.get("UndoFailed") == [1.0] for m in metrics)
    # Everything else was undone: the thing is gone, the claim released.
    assert world.things() == []
    assert world.record("sensor-1")["registrationState"] == {"S": "UNREGISTERED"}
