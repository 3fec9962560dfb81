"""Cross-region replication, executed: the declared replication machine of each region runs
in moto's Step Functions interpreter against moto IoT and DynamoDB, fed by the fabric's
global-table replication and pipe emulation, which read the declared filter, batch size,
retry count and dead-letter queue from the program's resource graph
(tests/support/replication_fabric.py). Every scenario asserts registry state in both regions.
"""

from __future__ import annotations

from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import boto3
import pytest

from components.replication.settings import ReplicationSettings

from tests.support.certificates import Issued, issue
from tests.support.replication_fabric import ReplicationFabric, fabric
from tests.support.sfn_adapter import SfnAdapter
from tools.harness import StackGraph, evaluate_program
from tools.reconcile import run as run_reconcile
from tools.replication_reconcile import targets_from_outputs

pytestmark = pytest.mark.slow

PROJECT_DIR = Path(__file__).resolve().parent.parent
A, B = "eu-west-1", "us-west-2"  # the dev stack's regions
# Short in-machine retries and few pipe retries keep the tests fast (real sleeps).
TEST_SETTINGS = {"retryIntervalSeconds": 1, "retryMaxAttempts": 1, "maximumRetryAttempts": 2,
                 "batchSize": 5}


@pytest.fixture(scope="module")
def device_ca() -> Issued:
    return issue("Replication Test Issuing CA", issue("Replication Test Root", ca=True), ca=True)


@pytest.fixture(scope="module")
def graph(device_ca: Issued) -> StackGraph:
    return evaluate_program(PROJECT_DIR, "dev", drop_keys=("caCertificatePemFile",),
                            config_overrides={"caCertificatePem": device_ca.pem,
                                              "replication": TEST_SETTINGS})


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": A,
                       "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled"}.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def adapter() -> SfnAdapter:
    return SfnAdapter()


@pytest.fixture
def regions(graph: StackGraph, aws_env: None, adapter: SfnAdapter) -> Iterator[ReplicationFabric]:
    with fabric(graph, adapter=adapter) as built:
        yield built


def assert_usable_only_with(f: ReplicationFabric, region: str, thing: str,
                            certificate_id: str) -> None:
    assert f[region].usable(thing, certificate_id), (
        region, f[region].certificate_status(certificate_id), f[region].things_of(certificate_id),
        f[region].policies_of(certificate_id))
    assert f[region].active_certificates_of(thing) == [certificate_id]


def iot_calls(f: ReplicationFabric, region: str) -> list[str]:
    return [c.operation for c in f.hooks.calls_in(region, "iot")]


def reconcile(graph: StackGraph, region: str, *, apply: bool) -> tuple[int, str]:
    """tools/reconcile.py against the fabric's regions (moto), deep comparison."""
    out = StringIO()
    code, _ = run_reconcile(targets_from_outputs(graph.outputs), ReplicationSettings(), moto_client,
                            regions=[region], apply=apply, deep=True, journal_dir=None,
                            stack="dev", utilization=1.0, things=None, out=out,
                            progress=None)
    return code, out.getvalue()


def moto_client(service: str, region: str) -> Any:
    client: Any = boto3.client  # the service is chosen at run time
    return client(service, region_name=region)


# --- inserts ----------------------------------------------------------------------------

def test_device_onboarded_with_our_ca_in_a_becomes_usable_in_b(regions: ReplicationFabric,
                                                              device_ca: Issued) -> None:
    f = regions
    device = issue("sensor-ours", device_ca)
    certificate_id = f.onboard(A, "sensor-ours", device.pem, issuer="OWN_CA")

    deliveries = f.settle()

    assert_usable_only_with(f, B, "sensor-ours", certificate_id)
    assert_usable_only_with(f, A, "sensor-ours", certificate_id)
    by_our_ca = f[B].iot.list_certificates_by_ca(caCertificateId=f[B].ca_certificate_id)
    assert [c["certificateId"] for c in by_our_ca["certificates"]] == [certificate_id]
    # A's own write never reached A's machine; B ran once, without a failure.
    assert deliveries[A].executions == []
    assert [e["result"] for e in deliveries[B].executions] == [{"batchItemFailures": []}]
    # The 4-call path of a new device (+1 read of B's replica), exclusively attached.
    assert iot_calls(f, B)[:4] == ["CreateThing", "RegisterCertificate",
                                   "AttachThingPrincipal", "AttachPolicy"]


def test_amazon_issued_certificate_is_registered_without_ca(regions: ReplicationFabric) -> None:
    f = regions
    certificate_id = f.onboard_amazon_issued(A, "sensor-cvm")

    f.settle()

    assert_usable_only_with(f, B, "sensor-cvm", certificate_id)  # same id: same DER
    assert "RegisterCertificateWithoutCA" in iot_calls(f, B)
    assert "RegisterCertificate" not in iot_calls(f, B)


def test_the_same_record_twice_changes_nothing(regions: ReplicationFabric,
                                               device_ca: Issued) -> None:
    f = regions
    certificate_id = f.onboard(A, "sensor-twice", issue("sensor-twice", device_ca).pem)
    f.replicate()
    records = f.pending(B)
    assert len(records) == 1

    f.deliver_records(B, records + records)
    f.deliver_records(B, records)

    assert_usable_only_with(f, B, "sensor-twice", certificate_id)
    assert len(f[B].principals_of("sensor-twice")) == 1
    assert f[B].dead_letters() == []
    assert iot_calls(f, B).count("RegisterCertificate") == 3  # then AlreadyExists: converged
    assert len(f[B].iot.list_things()["things"]) == 1


# --- changes ----------------------------------------------------------------------------

def test_revocation_in_a_reaches_b(regions: ReplicationFabric, device_ca: Issued) -> None:
    f = regions
    certificate_id = f.onboard(A, "sensor-revoked", issue("sensor-revoked", device_ca).pem)
    f.settle()
    assert f[B].usable("sensor-revoked", certificate_id)

    f.revoke(A, "sensor-revoked")
    f.settle()

    for region in (A, B):
        assert f[region].certificate_status(certificate_id) == "REVOKED"
        assert f[region].things_of(certificate_id) == []
        assert f[region].active_certificates_of("sensor-revoked") == []
    assert f[B].policies_of(certificate_id) == []


def test_tombstone_in_a_deletes_the_device_in_b_and_ttl_removal_is_ignored(
        regions: ReplicationFabric, device_ca: Issued) -> None:
    f = regions
    certificate_id = f.onboard(A, "sensor-gone", issue("sensor-gone", device_ca).pem)
    f.settle()

    f.delete(A, "sensor-gone")
    f.settle()

    assert f[B].certificate_status(certificate_id) is None
    assert not f[B].thing_exists("sensor-gone")
    assert (f[B].item("sensor-gone") or {}).get("status") == "DELETED"

    f.expire(A, "sensor-gone")  # TTL: a REMOVE record in both streams
    deliveries = f.settle()
    assert f[B].item("sensor-gone") is None
    assert deliveries[B].executions == []  # the declared filter dropped the REMOVE


@pytest.mark.parametrize("final_status", ["REVOKED", "ACTIVE"])
def test_reordered_records_converge_to_the_newest(regions: ReplicationFabric,
                                                  device_ca: Issued, final_status: str) -> None:
    f = regions
    certificate_id = f.onboard(A, "sensor-order", issue("sensor-order", device_ca).pem)
    f.replicate()
    first = f.pending(B)
    f.write_change(A, "sensor-order", "INACTIVE")
    f.write_change(A, "sensor-order", final_status)
    f.replicate()
    later = f.pending(B)
    assert len(first) == 1 and len(later) == 2

    # Newest first, then the older ones (a redelivery, a DLQ replay).
    for record in reversed(first + later):
        f.deliver_records(B, [record])

    if final_status == "REVOKED":
        assert f[B].certificate_status(certificate_id) in (None, "REVOKED")
        assert f[B].active_certificates_of("sensor-order") == []
    else:
        assert_usable_only_with(f, B, "sensor-order", certificate_id)
    assert f[B].dead_letters() == []


def test_a_late_record_never_reactivates_a_revoked_certificate(
        regions: ReplicationFabric, device_ca: Issued) -> None:
    f = regions
    certificate_id = f.onboard(A, "sensor-late", issue("sensor-late", device_ca).pem)
    f.replicate()
    insert = f.pending(B)
    f.deliver_records(B, insert)
    f.revoke(A, "sensor-late")
    f.settle()
    assert f[B].certificate_status(certificate_id) == "REVOKED"

    f.deliver_records(B, insert)  # the old insert again

    assert f[B].certificate_status(certificate_id) == "REVOKED"
    assert f[B].things_of(certificate_id) == []


# --- the device reached B first ---------------------------------------------------------

@pytest.mark.parametrize("jitr_progress", ["registered", "attached"])
def test_certificate_auto_registered_in_b_first_ends_active(
        regions: ReplicationFabric, device_ca: Issued, jitr_progress: str) -> None:
    f = regions
    device = issue("sensor-early", device_ca)
    # The device connected to B before the record arrived: AWS IoT registered its
    # certificate PENDING_ACTIVATION (and B's JITR may have got as far as attaching it).
    early_id = f[B].iot.register_certificate(
        certificatePem=device.pem, caCertificatePem=f[B].declared.ca_certificate_pem,
        status="PENDING_ACTIVATION")["certificateId"]
    if jitr_progress == "attached":
        f[B].iot.create_thing(thingName="sensor-early")
        f[B].iot.attach_thing_principal(thingName="sensor-early",
                                        principal=f[B].cert_arn(early_id),
                                        thingPrincipalType="EXCLUSIVE_THING")
    certificate_id = f.onboard(A, "sensor-early", device.pem)
    assert certificate_id == early_id

    f.settle()

    assert_usable_only_with(f, B, "sensor-early", certificate_id)
    assert "UpdateCertificate" in iot_calls(f, B)  # activated after its attachments


# --- A down -----------------------------------------------------------------------------

def test_b_replicates_while_a_is_down(regions: ReplicationFabric, device_ca: Issued) -> None:
    f = regions
    ours = f.onboard(A, "sensor-a1", issue("sensor-a1", device_ca).pem)
    f.settle()
    f.revoke(A, "sensor-a1")
    theirs = f.onboard(A, "sensor-a2", issue("sensor-a2", device_ca).pem)
    f.replicate()  # the global table copied A's writes before A went down

    f.hooks.down.add(A)
    calls_before = len(f.hooks.calls)
    delivery = f.deliver(B)

    made = f.hooks.calls[calls_before:]
    assert made and all(c.region == B for c in made), sorted({c.region for c in made})
    assert all(e["result"] == {"batchItemFailures": []} for e in delivery.executions)
    assert f[B].certificate_status(ours) == "REVOKED"
    assert_usable_only_with(f, B, "sensor-a2", theirs)


# --- concurrent first registrations -----------------------------------------------------

@pytest.mark.parametrize("last_writer", [A, B])
def test_concurrent_first_registration_leaves_one_active_certificate_everywhere(
        regions: ReplicationFabric, device_ca: Issued, last_writer: str) -> None:
    f = regions
    first_writer = A if last_writer == B else B
    # The same thing name with two certificates, registered in both regions before either
    # write replicated: each region's conditional put succeeds locally.
    loser = f.onboard(first_writer, "sensor-twin", issue("sensor-twin", device_ca).pem)
    winner = f.onboard(last_writer, "sensor-twin", issue("sensor-twin", device_ca).pem)
    assert loser != winner

    f.settle()

    for region in (A, B):
        assert (f[region].item("sensor-twin") or {}).get("certificateId") == winner  # LWW
        assert_usable_only_with(f, region, "sensor-twin", winner)
        assert f[region].certificate_status(loser) in (None, "INACTIVE")
        if f[region].certificate_status(loser) is not None:
            assert f[region].things_of(loser) == []
    assert f[first_writer].policies_of(loser) == []


# --- faults -----------------------------------------------------------------------------

NEW_DEVICE_STEPS = [("dynamodb", "getItem"), ("iot", "createThing"),
                    ("iot", "registerCertificate"), ("iot", "attachThingPrincipal"),
                    ("iot", "attachPolicy")]
EXISTING_CERTIFICATE_STEPS = [("iot", "updateCertificate"), ("iot", "listThingPrincipals")]


@pytest.mark.parametrize("service,action", NEW_DEVICE_STEPS + EXISTING_CERTIFICATE_STEPS)
def test_a_step_that_keeps_failing_is_dead_lettered_unusable_and_repaired(
        regions: ReplicationFabric, adapter: SfnAdapter, graph: StackGraph,
        device_ca: Issued, service: str, action: str) -> None:
    f = regions
    device = issue("sensor-fault", device_ca)
    if (service, action) in EXISTING_CERTIFICATE_STEPS:  # B's JITR registered it first
        f[B].iot.register_certificate(certificatePem=device.pem,
                                      caCertificatePem=f[B].declared.ca_certificate_pem,
                                      status="PENDING_ACTIVATION")
    error_code = "ValidationException" if service == "dynamodb" else "InvalidRequestException"
    adapter.fail(service, action, error_code, times=1000)
    certificate_id = f.onboard(A, "sensor-fault", device.pem)

    delivery = f.settle()[B]

    attempts = f[B].declared.maximum_retry_attempts + 1
    assert len(delivery.executions) == attempts
    assert all(e["result"]["failure"]["eventID"] == delivery.dead_lettered[0]["eventID"]
               for e in delivery.executions)
    letters = f[B].dead_letters()
    assert len(letters) == 1 and letters[0]["DDBStreamBatchInfo"]["batchSize"] == 1
    # Never half-applied: whatever exists in B, the certificate cannot be used there.
    assert f[B].certificate_status(certificate_id) != "ACTIVE"
    assert not f[B].usable("sensor-fault", certificate_id)

    adapter.faults.clear()
    code, report = reconcile(graph, B, apply=False)
    assert code == 2 and "sensor-fault" in report, report  # reported
    code, report = reconcile(graph, B, apply=True)
    assert code == 0 and "repaired 1 " in report, report  # through the machine
    assert_usable_only_with(f, B, "sensor-fault", certificate_id)
    assert reconcile(graph, B, apply=False) == (0, f"{B}: 1 devices in its replica: in sync\n")


def test_a_transient_fault_is_retried_inside_the_machine(
        regions: ReplicationFabric, adapter: SfnAdapter, device_ca: Issued) -> None:
    f = regions
    adapter.fail("iot", "attachPolicy", "ThrottlingException")  # once
    certificate_id = f.onboard(A, "sensor-retry", issue("sensor-retry", device_ca).pem)

    delivery = f.settle()[B]

    assert len(delivery.executions) == 1 and delivery.dead_lettered == []
    assert len(adapter.calls_to("iot", "attachPolicy")) == 2
    assert_usable_only_with(f, B, "sensor-retry", certificate_id)


def test_the_machine_reports_the_first_failed_record_and_the_pipe_retries_from_it(
        regions: ReplicationFabric, adapter: SfnAdapter, device_ca: Issued) -> None:
    f = regions
    ids = {name: f.onboard(A, name, issue(name, device_ca).pem)
           for name in ("sensor-b1", "sensor-b2", "sensor-b3")}
    f.replicate()
    records = f.pending(B)
    adapter.fail("iot", "createThing", "InvalidRequestException",
                 when=lambda p: p.get("ThingName") == "sensor-b2")

    outcome = f.run_machine(B, records)

    failed = outcome["result"]["batchItemFailures"]
    assert failed == [{"itemIdentifier": records[1]["eventID"]}]
    assert outcome["result"]["failure"]["thingName"] == "sensor-b2"
    assert f[B].usable("sensor-b1", ids["sensor-b1"])
    assert not f[B].thing_exists("sensor-b3")  # not overtaken: retried from sensor-b2

    f.deliver_records(B, records[1:])
    for name, certificate_id in ids.items():
        assert_usable_only_with(f, B, name, certificate_id)


def test_malformed_input_fails_the_execution_for_the_pipe_to_bisect(
        regions: ReplicationFabric) -> None:
    outcome = regions.run_machine(B, [{"eventID": "x", "eventName": "INSERT"}])

    assert outcome["status"] == "FAILED"
    assert outcome["error"] == "States.Runtime"
    assert regions[B].dead_letters() == []  # the pipe, not the machine, dead-letters
