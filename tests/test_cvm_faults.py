"""A fault at each AWS call of a registration (and of a rotation): nothing is left behind, the
record can be claimed again, and the device's retry succeeds.

The calls are found by running the flow once (botocore `before-call` hook), so a new call in
the flow is covered without editing this file; the expected list pins the count (≤ 6 on the
CSR path, plus the cold read of the salts).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from lambdas.cvm_registration import app
from tests.support.cvm_world import (
    CONTEXT,
    SEED_SALT,
    CvmWorld,
    FaultPlan,
    api_event,
    cvm_world,
    function_session,
    new_csr,
    token,
)

CSR_PATH_CALLS = ["GetSecretValue", "UpdateItem", "CreateThing", "CreateCertificateFromCsr",
                  "AttachThingPrincipal", "AttachPolicy", "TransactWriteItems"]
LEGACY_PATH_CALLS = ["GetSecretValue", "UpdateItem", "CreateThing", "CreateKeysAndCertificate",
                     "AttachThingPrincipal", "AttachPolicy", "TransactWriteItems"]
_, CSR = new_csr("sensor-1")
REQUESTS = {
    "csr": {"device_uid": "sensor-1", "device_token": token("salt-1", "sensor-1"), "csr": CSR},
    "legacy": {"device_uid": "DEVICE001", "device_token": token(SEED_SALT, "DEVICE001")},
}


def post(plan: FaultPlan, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    with function_session(plan):
        answer = app.handler(api_event(json.dumps(body)), CONTEXT)
    return answer["statusCode"], json.loads(answer["body"])


def arranged(world: CvmWorld) -> CvmWorld:
    world.add_batch("B1", "salt-1")
    world.add_batch("LEGACY", SEED_SALT)
    world.add_device("sensor-1", "B1")
    world.add_device("DEVICE001", "LEGACY")
    return world


def assert_clean(world: CvmWorld, uid: str) -> None:
    assert world.certificates() == [], "orphaned certificate"
    assert world.things() == [], "orphaned thing"
    assert world.policy_targets() == []
    record = world.record(uid)
    assert record["registrationState"] == {"S": "UNREGISTERED"}
    assert "claimId" not in record and "claimedAt" not in record
    assert world.inventory(uid) == {}


@pytest.mark.parametrize("path, expected", [("csr", CSR_PATH_CALLS),
                                            ("legacy", LEGACY_PATH_CALLS)])
def test_a_registration_makes_these_calls_and_no_more(path: str, expected: list[str]) -> None:
    with cvm_world() as world:
        arranged(world)
        plan = FaultPlan()
        assert post(plan, REQUESTS[path])[0] == 200
        assert plan.calls == expected
        assert len(plan.calls) - 1 <= 6  # the salts are cached after the first call


@pytest.mark.parametrize("path, operation", [
    *[("csr", op) for op in CSR_PATH_CALLS], *[("legacy", op) for op in LEGACY_PATH_CALLS]])
def test_a_fault_at_any_call_leaves_nothing_and_the_retry_succeeds(path: str,
                                                                  operation: str) -> None:
    request = REQUESTS[path]
    uid = request["device_uid"]
    with cvm_world() as world:
        arranged(world)
        plan = FaultPlan(fail_operation=operation)
        status, body = post(plan, request)
        assert (status, body["status"]) == (503, "ERROR")
        assert "Traceback" not in json.dumps(body)
        assert_clean(world, uid)

        status, body = post(FaultPlan(), request)  # the device retries
        assert status == 200, body
        [certificate] = world.certificates()
        assert certificate["status"] == "ACTIVE"
        assert world.things() == [uid]
        assert world.inventory(uid)["certificateId"]["S"] == certificate["certificateId"]
        assert world.record(uid)["registrationState"] == {"S": "REGISTERED"}


def test_a_failing_undo_is_reported_for_the_alarm(capsys: pytest.CaptureFixture[str]) -> None:
    """Commit fails and so does deleting the certificate: the answer is still a clean 503,
    and the UndoFailed metric (alarmed on) names the problem."""
    with cvm_world() as world:
        arranged(world)

        class TwoFaults(FaultPlan):
            def hook(self, model: Any, **kwargs: Any) -> None:
                self.fail_operation = ("DeleteCertificate" if model.name == "DeleteCertificate"
                                       else "TransactWriteItems")
                super().hook(model, **kwargs)

        status, _ = post(TwoFaults(), REQUESTS["csr"])
        assert status == 503
        metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines()
                   if line.startswith('{"_aws"')]
        assert any(m.get("UndoFailed") == [1.0] for m in metrics)
        # Everything else was undone: the thing is gone, the claim released.
        assert world.things() == []
        assert world.record("sensor-1")["registrationState"] == {"S": "UNREGISTERED"}
