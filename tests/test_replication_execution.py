"""Cross-region replication, executed in a world of the dev stack (tools/local/world.py):
devices onboarded by the real writers (JITR's machine, the CVM's function, the
manufacturer tool), the global table, and each region's declared pipe and replication
machine (tools/local/emulation/streams.py), stepped by the scenario. Every scenario asserts
registry state in both regions.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from io import StringIO
from typing import Any

import boto3
import pytest

from components.replication.settings import ReplicationSettings
from lambdas.contracts import inventory
from lambdas.contracts.certificates import certificate_id as id_of_pem
from lambdas.contracts.inventory import InventoryItem
from tests.support.certificates import issue
from tools.harness import StackGraph
from tools.local.emulation.streams import Consumer, Streams, matches
from tools.local.journeys import cvm, jitr
from tools.local.journeys import registry as seen
from tools.local.pki_material import LocalPki
from tools.local.sfn_adapter import VirtualClock, run_sync_execution
from tools.local.world import World, open_world
from tools.reconcile import run as run_reconcile
from tools.replication_reconcile import targets_from_outputs

pytestmark = pytest.mark.slow

A, B = "eu-west-1", "us-west-2"  # the dev stack's regions


@dataclass
class Delivery:
    executions: list[dict[str, Any]]
    dead_lettered: list[dict[str, Any]]


@dataclass
class Regions:
    """The scenario's view of a two-region world: writers, the global table, the pipes."""

    world: World
    pki: LocalPki

    @property
    def streams(self) -> Streams:
        return self.world.emulation(Streams)

    def pipe(self, region: str) -> Consumer:
        return self.streams.consumer("pipe", region)

    # writers
    def onboard(self, region: str, thing: str) -> str:
        """The device's first connection in `region`: JITR onboards it there."""
        registration, _, executions = jitr.connect_first(self.world, region,
                                                         issue(thing, self.pki.intermediate).pem)
        assert [e["status"] for e in executions] == ["SUCCEEDED"], executions
        return registration.certificate_id

    def onboard_amazon_issued(self, region: str, uid: str) -> tuple[str, str]:
        """A CVM registration in `region`: (thing, certificate id)."""
        device = cvm.Device(uid)
        cvm.factory(self.world, region, [device])
        payload = cvm.post(self.world, region, device.request()).json()["payload"]
        return payload["thing_name"], payload["certificate_id"]

    def write_change(self, region: str, thing: str, status: str) -> None:
        """An operator's change of the item through the inventory contract: the next version
        of the item read, conditional on it, this region the writer; DELETED is a tombstone."""
        table = self.world.table(seen.INVENTORY)
        raw = self.world.client("dynamodb", region).get_item(
            TableName=table, Key={"thingName": {"S": thing}}, ConsistentRead=True).get("Item")
        if raw is None:
            raise AssertionError(f"{thing} is not in {region}'s replica")
        read = InventoryItem.from_attribute_values(raw)
        now = inventory.timestamp(dt.datetime.now(dt.timezone.utc))
        changed = read.tombstone(writer_region=region, updated_at=now, now_epoch=int(time.time())) \
            if status == "DELETED" else read.changed(writer_region=region, updated_at=now, status=status)
        self.world.client("dynamodb", region).put_item(**inventory.put_request(table, changed, replaces=read))

    def delete(self, region: str, thing: str) -> None:
        """An operator deletes the device in `region`: registry, then the tombstone."""
        iot, item = self.world.client("iot", region), seen.row(self.world, region, thing) or {}
        certificate, arn = item["certificateId"], seen.cert_arn(region, item["certificateId"])
        iot.update_certificate(certificateId=certificate, newStatus="INACTIVE")
        iot.detach_thing_principal(thingName=thing, principal=arn)
        iot.detach_policy(policyName=seen.device_policy(self.world, region), target=arn)
        # The detach propagates asynchronously: each delete is retried once it is refused for it.
        for delete, refused in ((lambda: iot.delete_certificate(certificateId=certificate),
                                 iot.exceptions.DeleteConflictException),
                                (lambda: iot.delete_thing(thingName=thing), iot.exceptions.InvalidRequestException)):
            try:
                delete()
            except refused:
                delete()
        self.write_change(region, thing, "DELETED")

    def expire(self, region: str, thing: str) -> None:
        """TTL removes an expired tombstone (a REMOVE record in every replica's stream)."""
        self.world.client("dynamodb", region).delete_item(
            TableName=self.world.table(seen.INVENTORY), Key={"thingName": {"S": thing}})

    # the global table and the pipes, stepped
    def replicate(self) -> int:
        assert self.streams.global_tables is not None
        return self.streams.global_tables.replicate()

    def pending(self, region: str) -> list[dict[str, Any]]:
        """What the region's pipe reads next that passes its filter (read: not again)."""
        pipe = self.pipe(region)
        return [r for r in pipe.reader.read() if matches(pipe.patterns, r)]

    def deliver_records(self, region: str, records: Sequence[dict[str, Any]]) -> Delivery:
        pipe = self.pipe(region)
        executions, letters = len(pipe.executions), len(pipe.dead_lettered)
        self.streams.deliver(pipe, list(records))
        return Delivery(pipe.executions[executions:], pipe.dead_lettered[letters:])

    def deliver(self, region: str) -> Delivery:
        return self.deliver_records(region, self.pipe(region).reader.read())

    def settle(self) -> dict[str, Delivery]:
        marks = {r: (len(self.pipe(r).executions), len(self.pipe(r).dead_lettered))
                 for r in (A, B)}
        self.world.settle()
        return {r: Delivery(self.pipe(r).executions[e:], self.pipe(r).dead_lettered[d:])
                for r, (e, d) in marks.items()}

    def run_machine(self, region: str, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return run_sync_execution(self.world.client("stepfunctions", region),
                                  self.pipe(region).target, json.dumps(list(records)))

    # what the region says
    def dead_letters(self, region: str) -> list[dict[str, Any]]:
        """What the region's pipe dead-lettered since the last look (taken off the queue)."""
        sqs = self.world.client("sqs", region)
        url = sqs.get_queue_url(QueueName=str(self.pipe(region).dead_letter_arn).rsplit(":", 1)[-1])["QueueUrl"]
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return [json.loads(m["Body"]) for m in messages]

    def iot_calls(self, region: str) -> list[str]:
        return [c.operation for c in self.world.calls.of(region=region, service="iot", caller="states:")]


@pytest.fixture(scope="module")
def world(local_graph: StackGraph, local_pki: LocalPki) -> Iterator[World]:
    with open_world(local_graph, regions=[A, B], pki=local_pki,
                    capabilities=["jitr", "replication", "cvm"]) as opened:
        yield opened


@pytest.fixture
def f(world: World, local_pki: LocalPki) -> Iterator[Regions]:
    """Each scenario starts from a quiet world: no fault, nothing in flight, no call logged."""
    world.calls.clear()
    world.settle()
    regions = Regions(world, local_pki)
    for region in (A, B):
        regions.dead_letters(region)
    world.calls.clear()
    yield regions
    world.calls.clear()


def usable_only_with(f: Regions, region: str, thing: str, certificate_id: str) -> None:
    assert seen.usable(f.world, region, thing, certificate_id), (
        region, seen.status(f.world, region, certificate_id),
        seen.things_of(f.world, region, certificate_id), seen.policies_of(f.world, region, certificate_id))


def reconcile(graph: StackGraph, region: str, *, apply: bool,
              things: set[str] | None = None) -> tuple[int, str]:
    """tools/reconcile.py against the world's regions (only `things` when given), deep
    comparison, paced by the quotas on a virtual clock (real waits were 16 s of this module)."""
    out, paced = StringIO(), VirtualClock()
    code, _ = run_reconcile(targets_from_outputs(graph.outputs), ReplicationSettings(), clients,
                            regions=[region], apply=apply, deep=True, journal_dir=None,
                            stack="dev", utilization=1.0, things=things, out=out, progress=None,
                            clock=lambda: paced.slept, sleep=paced.sleep)
    return code, out.getvalue()


def clients(service: str, region: str) -> Any:
    client: Any = boto3.client  # the service is chosen at run time
    return client(service, region_name=region)


# --- inserts ----------------------------------------------------------------------------

def test_device_onboarded_with_our_ca_in_a_becomes_usable_in_b(f: Regions) -> None:
    certificate_id = f.onboard(A, "sensor-ours")

    deliveries = f.settle()

    usable_only_with(f, B, "sensor-ours", certificate_id)
    usable_only_with(f, A, "sensor-ours", certificate_id)
    by_our_ca = f.world.client("iot", B).list_certificates_by_ca(caCertificateId=seen.device_ca(f.world, B)[0])
    assert certificate_id in [c["certificateId"] for c in by_our_ca["certificates"]]
    # A's own write never reached A's machine; B ran once, without a failure.
    assert deliveries[A].executions == []
    assert [e["result"] for e in deliveries[B].executions] == [{"batchItemFailures": []}]
    # The 4-call path of a new device (+1 read of B's replica), exclusively attached.
    assert f.iot_calls(B)[:4] == ["CreateThing", "RegisterCertificate", "AttachThingPrincipal",
                                  "AttachPolicy"]


def test_amazon_issued_certificate_is_registered_without_ca(f: Regions) -> None:
    thing, certificate_id = f.onboard_amazon_issued(A, "sensor-cvm")

    f.settle()

    usable_only_with(f, B, thing, certificate_id)  # same id: same DER
    assert "RegisterCertificateWithoutCA" in f.iot_calls(B)
    assert "RegisterCertificate" not in f.iot_calls(B)


def test_the_same_record_twice_changes_nothing(f: Regions) -> None:
    certificate_id = f.onboard(A, "sensor-twice")
    f.replicate()
    records = f.pending(B)
    assert len(records) == 1

    f.deliver_records(B, records + records)
    f.deliver_records(B, records)

    usable_only_with(f, B, "sensor-twice", certificate_id)
    assert len(seen.certificates_of(f.world, B, "sensor-twice")) == 1
    assert f.dead_letters(B) == []
    assert f.iot_calls(B).count("RegisterCertificate") == 3  # then AlreadyExists: converged


# --- changes ----------------------------------------------------------------------------

def test_revocation_in_a_reaches_b(f: Regions) -> None:
    device = cvm.Device("sensor-revoked")
    tool = cvm.factory(f.world, A, [device])
    payload = cvm.post(f.world, A, device.request()).json()["payload"]
    thing, certificate_id = payload["thing_name"], payload["certificate_id"]
    f.settle()
    assert seen.usable(f.world, B, thing, certificate_id)

    tool.revoke(device.uid)  # the operator's tool
    f.settle()

    for region in (A, B):
        assert seen.status(f.world, region, certificate_id) == "REVOKED"
        assert seen.things_of(f.world, region, certificate_id) == []
        assert seen.active_certificates(f.world, region, thing) == []
    assert seen.policies_of(f.world, B, certificate_id) == []


def test_tombstone_in_a_deletes_the_device_in_b_and_ttl_removal_is_ignored(f: Regions) -> None:
    certificate_id = f.onboard(A, "sensor-gone")
    f.settle()

    f.delete(A, "sensor-gone")
    f.settle()

    assert seen.status(f.world, B, certificate_id) is None
    assert not seen.thing_exists(f.world, B, "sensor-gone")
    assert (seen.row(f.world, B, "sensor-gone") or {}).get("status") == "DELETED"

    f.expire(A, "sensor-gone")  # TTL: a REMOVE record, replicated as a delete
    deliveries = f.settle()
    assert seen.row(f.world, B, "sensor-gone") is None
    assert deliveries[B].executions == []  # the declared filter dropped the REMOVE


@pytest.mark.parametrize("final_status", ["REVOKED", "ACTIVE"])
def test_reordered_records_converge_to_the_newest(f: Regions, final_status: str) -> None:
    thing = f"sensor-order-{final_status.lower()}"
    certificate_id = f.onboard(A, thing)
    f.replicate()
    first = f.pending(B)
    f.write_change(A, thing, "INACTIVE")
    f.write_change(A, thing, final_status)
    f.replicate()
    later = f.pending(B)
    assert len(first) == 1 and len(later) == 2

    # Newest first, then the older ones (a redelivery, a DLQ replay).
    for record in reversed(first + later):
        f.deliver_records(B, [record])

    if final_status == "REVOKED":
        assert seen.status(f.world, B, certificate_id) in (None, "REVOKED")
        assert seen.active_certificates(f.world, B, thing) == []
    else:
        usable_only_with(f, B, thing, certificate_id)
    assert f.dead_letters(B) == []


def test_a_late_record_never_reactivates_a_revoked_certificate(f: Regions) -> None:
    certificate_id = f.onboard(A, "sensor-late")
    f.replicate()
    insert = f.pending(B)
    f.deliver_records(B, insert)
    f.write_change(A, "sensor-late", "REVOKED")
    f.settle()
    assert seen.status(f.world, B, certificate_id) == "REVOKED"

    f.deliver_records(B, insert)  # the old insert again

    assert seen.status(f.world, B, certificate_id) == "REVOKED"
    assert seen.things_of(f.world, B, certificate_id) == []


# --- the device reached B first ---------------------------------------------------------

@pytest.mark.parametrize("jitr_progress", ["registered", "attached"])
def test_certificate_auto_registered_in_b_first_ends_active(f: Regions, jitr_progress: str) -> None:
    thing = f"sensor-early-{jitr_progress}"
    device = issue(thing, f.pki.intermediate)
    iot = f.world.client("iot", B)
    # The device connected to B before the record arrived: AWS IoT registered its
    # certificate PENDING_ACTIVATION (and B's JITR may have got as far as attaching it).
    early_id = iot.register_certificate(certificatePem=device.pem, status="PENDING_ACTIVATION",
                                        caCertificatePem=seen.device_ca(f.world, B)[1])["certificateId"]
    if jitr_progress == "attached":
        iot.create_thing(thingName=thing)
        iot.attach_thing_principal(thingName=thing, principal=seen.cert_arn(B, early_id),
                                   thingPrincipalType="EXCLUSIVE_THING")
    registration, _, executions = jitr.connect_first(f.world, A, device.pem)
    assert registration.certificate_id == early_id and executions[0]["status"] == "SUCCEEDED"

    f.settle()

    usable_only_with(f, B, thing, early_id)
    assert "UpdateCertificate" in f.iot_calls(B)  # activated after its attachments


# --- A down -----------------------------------------------------------------------------

def test_b_replicates_while_a_is_down(f: Regions) -> None:
    ours = f.onboard(A, "sensor-a1")
    f.settle()
    f.write_change(A, "sensor-a1", "REVOKED")
    theirs = f.onboard(A, "sensor-a2")
    f.replicate()  # the global table copied A's writes before A went down

    f.world.calls.down.add(A)
    mark = len(f.world.calls.of())
    delivery = f.deliver(B)

    made = f.world.calls.of()[mark:]
    assert made and all(c.region == B for c in made), sorted({c.region for c in made})
    assert all(e["result"] == {"batchItemFailures": []} for e in delivery.executions)
    assert seen.status(f.world, B, ours) == "REVOKED"
    usable_only_with(f, B, "sensor-a2", theirs)


# --- concurrent first registrations -----------------------------------------------------

@pytest.mark.parametrize("last_writer", [A, B])
def test_concurrent_first_registration_leaves_one_active_certificate_everywhere(
        f: Regions, last_writer: str) -> None:
    first_writer = A if last_writer == B else B
    thing = f"sensor-twin-{last_writer}"
    # The same thing name with two certificates, registered in both regions before either
    # write replicated: each region's conditional put succeeds locally.
    with f.streams.global_tables.held():  # type: ignore[union-attr]
        loser = f.onboard(first_writer, thing)
        winner = f.onboard(last_writer, thing)
    assert loser != winner

    f.settle()

    for region in (A, B):
        assert (seen.row(f.world, region, thing) or {}).get("certificateId") == winner  # LWW
        usable_only_with(f, region, thing, winner)
        assert seen.status(f.world, region, loser) in (None, "INACTIVE")
        if seen.status(f.world, region, loser) is not None:
            assert seen.things_of(f.world, region, loser) == []
    assert seen.policies_of(f.world, first_writer, loser) == []


# --- faults -----------------------------------------------------------------------------

NEW_DEVICE_STEPS = ["GetItem", "CreateThing", "RegisterCertificate", "AttachThingPrincipal",
                    "AttachPolicy"]
EXISTING_CERTIFICATE_STEPS = ["UpdateCertificate", "ListThingPrincipals"]


@pytest.mark.parametrize("action", NEW_DEVICE_STEPS + EXISTING_CERTIFICATE_STEPS)
def test_a_step_that_keeps_failing_is_dead_lettered_unusable_and_repaired(
        f: Regions, local_graph: StackGraph, action: str) -> None:
    thing = f"sensor-fault-{action.lower()}"
    device = issue(thing, f.pki.intermediate)
    if action in EXISTING_CERTIFICATE_STEPS:  # B's JITR registered it first
        f.world.client("iot", B).register_certificate(
            certificatePem=device.pem, status="PENDING_ACTIVATION", caCertificatePem=seen.device_ca(f.world, B)[1])
    registration, _, _ = jitr.connect_first(f.world, A, device.pem)
    certificate_id = registration.certificate_id
    f.world.calls.fail(action, "ValidationException" if action == "GetItem" else
                       "InvalidRequestException", times=1000, by=f"states:{f.pipe(B).target.rsplit(':', 1)[-1]}")

    delivery = f.settle()[B]

    attempts = f.pipe(B).maximum_retry_attempts + 1
    assert len(delivery.executions) == attempts
    assert all(e["result"]["failure"]["eventID"] == delivery.dead_lettered[0]["eventID"]
               for e in delivery.executions)
    letters = f.dead_letters(B)
    assert len(letters) == 1 and letters[0]["DDBStreamBatchInfo"]["batchSize"] == 1
    # Never half-applied: whatever exists in B, the certificate cannot be used there.
    assert seen.status(f.world, B, certificate_id) != "ACTIVE"
    assert not seen.usable(f.world, B, thing, certificate_id)

    f.world.calls.clear()
    code, report = reconcile(local_graph, B, apply=False)
    assert code == 2 and thing in report, report  # reported
    code, report = reconcile(local_graph, B, apply=True)
    assert code == 0 and "repaired 1 " in report, report  # through the machine
    usable_only_with(f, B, thing, certificate_id)


def test_a_transient_fault_is_retried_inside_the_machine(f: Regions) -> None:
    machine = f.pipe(B).target.rsplit(":", 1)[-1]
    f.world.calls.fail("AttachPolicy", "ThrottlingException", by=f"states:{machine}")  # once
    certificate_id = f.onboard(A, "sensor-retry")

    delivery = f.settle()[B]

    assert len(delivery.executions) == 1 and delivery.dead_lettered == []
    assert len(f.world.calls.of("AttachPolicy", region=B, caller=f"states:{machine}")) == 2
    usable_only_with(f, B, "sensor-retry", certificate_id)


def test_the_machine_reports_the_first_failed_record_and_the_pipe_retries_from_it(
        f: Regions) -> None:
    ids = {name: f.onboard(A, name) for name in ("sensor-b1", "sensor-b2", "sensor-b3")}
    f.replicate()
    records = f.pending(B)
    f.world.calls.fail("CreateThing", "InvalidRequestException",
                       when=lambda p: p.get("thingName") == "sensor-b2", by="states:")

    outcome = f.run_machine(B, records)

    failed = outcome["result"]["batchItemFailures"]
    assert failed == [{"itemIdentifier": records[1]["eventID"]}]
    assert outcome["result"]["failure"]["thingName"] == "sensor-b2"
    assert seen.usable(f.world, B, "sensor-b1", ids["sensor-b1"])
    assert not seen.thing_exists(f.world, B, "sensor-b3")  # not overtaken: retried from sensor-b2

    f.deliver_records(B, records[1:])
    for name, certificate_id in ids.items():
        usable_only_with(f, B, name, certificate_id)


def test_malformed_input_fails_the_execution_for_the_pipe_to_bisect(f: Regions) -> None:
    outcome = f.run_machine(B, [{"eventID": "x", "eventName": "INSERT"}])

    assert outcome["status"] == "FAILED"
    assert outcome["error"] == "States.Runtime"
    assert f.dead_letters(B) == []  # the pipe, not the machine, dead-letters


# --- nothing stale wins: a newer version lands while an execution applies (issue 19) -------

@pytest.mark.parametrize("newer", ["INACTIVE", "REVOKED", "DELETED"])
def test_a_newer_version_landing_before_the_enabling_step_is_never_overridden(
        f: Regions, newer: str) -> None:
    """The execution read ACTIVE v1; held just before its enabling step (AttachPolicy for a
    new device), a newer version is written in A and replicates to B. When the execution
    ends, the certificate is not usable in B, before the newer record is even applied."""
    machine = f.pipe(B).target.rsplit(":", 1)[-1]
    thing = f"sensor-stale-{newer.lower()}"
    certificate_id = f.onboard(A, thing)
    f.replicate()
    [first] = f.pending(B)

    def newer_version_lands(_: Any) -> None:
        if newer == "DELETED":
            f.delete(A, thing)
        else:
            f.write_change(A, thing, newer)
        f.replicate()

    f.world.calls.before("AttachPolicy", newer_version_lands, by=f"states:{machine}")
    delivery = f.deliver_records(B, [first])
    assert delivery.dead_lettered == [] and len(delivery.executions) == 1
    assert seen.status(f.world, B, certificate_id) != "ACTIVE"
    assert not seen.usable(f.world, B, thing, certificate_id)
    f.settle()  # the newer version's own record converges B
    assert seen.status(f.world, B, certificate_id) in (
        {"INACTIVE": ("INACTIVE",), "REVOKED": ("REVOKED",), "DELETED": (None,)}[newer])


def test_a_repair_that_waited_does_not_re_enable_a_device_disabled_meanwhile(
        local_graph: StackGraph, f: Regions) -> None:
    """`reconcile --apply` read ACTIVE, then (held at its enabling step) an operator disables
    the device and it replicates: the repair ends with the certificate unusable."""
    machine = f.pipe(B).target.rsplit(":", 1)[-1]
    thing = "sensor-stale-repair"
    f.world.calls.fail("CreateThing", "InvalidRequestException",
                       when=lambda p: p.get("thingName") == thing, by=f"states:{machine}",
                       times=100)
    certificate_id = f.onboard(A, thing)
    f.settle()  # B's pipe gives up: dead-lettered, nothing usable in B
    f.world.calls.clear()

    def disabled_meanwhile(_: Any) -> None:
        f.write_change(A, thing, "INACTIVE")
        f.replicate()

    f.world.calls.before("AttachPolicy", disabled_meanwhile, by=f"states:{machine}")
    reconcile(local_graph, B, apply=True)
    assert seen.status(f.world, B, certificate_id) != "ACTIVE"
    assert not seen.usable(f.world, B, thing, certificate_id)


def test_a_certificate_revoked_in_one_region_is_revoked_in_every_region(f: Regions) -> None:
    """Rotation in A: the item's new certificate, the old one in `revokedCertificateIds`. In
    B the old certificate ends REVOKED (final), not merely INACTIVE (re-activatable)."""
    from cryptography.hazmat.primitives import hashes, serialization

    thing = "sensor-rotated"
    old_id = f.onboard(A, thing)
    f.settle()
    assert seen.status(f.world, B, old_id) == "ACTIVE"
    new = issue(thing, f.pki.intermediate)
    new_id = new.cert.fingerprint(hashes.SHA256()).hex()
    assert new.cert.public_bytes(serialization.Encoding.DER)  # a real certificate
    table, client = f.world.table(seen.INVENTORY), f.world.client("dynamodb", A)
    read = InventoryItem.from_attribute_values(client.get_item(
        TableName=table, Key={"thingName": {"S": thing}}, ConsistentRead=True)["Item"])
    rotated = read.changed(writer_region=A, certificate_id=new_id, certificate_pem=new.pem,
                           ca_certificate_id=read.ca_certificate_id, revoke=[old_id],
                           updated_at=inventory.timestamp(dt.datetime.now(dt.timezone.utc)))
    client.put_item(**inventory.put_request(table, rotated, replaces=read))
    f.settle()
    assert seen.status(f.world, B, old_id) == "REVOKED"
    assert seen.status(f.world, B, new_id) == "ACTIVE"
    usable_only_with(f, B, thing, new_id)


def test_an_item_whose_id_is_not_its_pems_is_refused_and_quarantine_acts_on_the_pem(
        f: Regions) -> None:
    """An item written around the contract (lambdas/contracts refuses it at every writer)
    pairs a new certificate's PEM with another device's certificateId. B registers the PEM,
    learns AWS IoT's id for it, refuses the item and deactivates the certificate it
    registered, never the one the item names, which stays its own device's."""
    victim_thing, victim = f.onboard_amazon_issued(A, "sensor-victim")
    f.settle()
    usable_only_with(f, B, victim_thing, victim)
    forged = issue("sensor-forged")
    forged_id = id_of_pem(forged.pem)
    now = inventory.timestamp(dt.datetime.now(dt.timezone.utc))
    f.world.client("dynamodb", A).put_item(TableName=f.world.table(seen.INVENTORY), Item={
        "thingName": {"S": "sensor-forged"}, "certificateId": {"S": victim},
        "certificatePem": {"S": forged.pem}, "issuer": {"S": "AMAZON"},
        "originRegion": {"S": A}, "writerRegion": {"S": A}, "status": {"S": "ACTIVE"},
        "onboarding": {"S": "CVM"}, "notAfter": {"S": "2030-01-01T00:00:00.000Z"},
        "version": {"N": "1"}, "updatedAt": {"S": now}})
    with pytest.raises(inventory.ContractViolation, match="certificateId"):
        InventoryItem.from_attribute_values(f.world.client("dynamodb", A).get_item(
            TableName=f.world.table(seen.INVENTORY), Key={"thingName": {"S": "sensor-forged"}},
            ConsistentRead=True)["Item"])

    delivery = f.settle()[B]

    assert delivery.dead_lettered, "the forged item must fail, not apply"
    assert all("failure" in e["result"] for e in delivery.executions)
    # the first attempt learns the PEM's id from the registration; the retries find the
    # certificate registered (and quarantined) already and fail at the exclusive attach
    assert delivery.executions[0]["result"]["failure"]["error"] == \
        "Replication.CertificateIdMismatch"
    assert seen.status(f.world, B, forged_id) == "INACTIVE"  # quarantined: the PEM's id
    assert seen.things_of(f.world, B, forged_id) == []
    assert seen.things_of(f.world, B, victim) == [victim_thing]
    usable_only_with(f, B, victim_thing, victim)


# --- certificates the item lists revoked, and tombstones superseded while applied ----------

def _read(f: Regions, region: str, thing: str) -> InventoryItem:
    return InventoryItem.from_attribute_values(f.world.client("dynamodb", region).get_item(
        TableName=f.world.table(seen.INVENTORY), Key={"thingName": {"S": thing}},
        ConsistentRead=True)["Item"])


def _rotate(f: Regions, region: str, thing: str, pem: str) -> InventoryItem:
    """A rotation written in `region` through the contract: the new certificate, the old one
    listed in revokedCertificateIds."""
    read = _read(f, region, thing)
    rotated = read.changed(writer_region=region, certificate_id=id_of_pem(pem), certificate_pem=pem,
                           ca_certificate_id=read.ca_certificate_id, revoke=[read.certificate_id],
                           updated_at=inventory.timestamp(dt.datetime.now(dt.timezone.utc)))
    f.world.client("dynamodb", region).put_item(
        **inventory.put_request(f.world.table(seen.INVENTORY), rotated, replaces=read))
    return rotated


def test_a_certificate_listed_revoked_is_retired_though_this_region_wrote_the_newest_version(
        f: Regions) -> None:
    """A rotates; before B's pipe applies it, B's operator revokes the device (acting only on
    the certificate the item names). A's record meets B's newer version: it is not applied,
    but the old certificate the item lists revoked is retired in B all the same."""
    device = cvm.Device("sensor-g1")
    cvm.factory(f.world, A, [device])
    payload = cvm.post(f.world, A, device.request()).json()["payload"]
    thing, old_id = payload["thing_name"], payload["certificate_id"]
    f.settle()
    assert seen.usable(f.world, B, thing, old_id)
    new_id = _rotate(f, A, thing, issue(thing).pem).certificate_id
    f.replicate()  # B's replica has the rotation; B's pipe has not applied it

    cvm.tool(f.world, B).revoke(device.uid)
    f.settle()

    row = seen.row(f.world, B, thing) or {}
    assert row.get("status") == "REVOKED" and row.get("writerRegion") == B
    for region in (A, B):
        assert seen.status(f.world, region, old_id) == "REVOKED", region
        assert seen.things_of(f.world, region, old_id) == [], region
        assert seen.active_certificates(f.world, region, thing) == [], region
    assert seen.policies_of(f.world, B, old_id) == []
    assert seen.status(f.world, B, new_id) in (None, "REVOKED")
    assert f.dead_letters(B) == []


def test_a_tombstone_applied_while_this_region_revives_the_device_keeps_the_revival(
        f: Regions) -> None:
    """A deletes the device. While B applies the tombstone (held at deleting the tombstone's
    certificate), B revives it: a new certificate, a newer version written in B (filtered out
    of B's own pipe). The tombstone stops there; the revived certificate and thing stay."""
    machine = f.pipe(B).target.rsplit(":", 1)[-1]
    thing, old_id = f.onboard_amazon_issued(A, "sensor-revived")
    f.settle()
    usable_only_with(f, B, thing, old_id)
    revived = issue(thing).pem
    revived_id = id_of_pem(revived)

    def revived_in_b(_: Any) -> None:
        iot = f.world.client("iot", B)
        arn = iot.register_certificate_without_ca(certificatePem=revived, status="ACTIVE")["certificateArn"]
        iot.attach_thing_principal(thingName=thing, principal=arn, thingPrincipalType="EXCLUSIVE_THING")
        iot.attach_policy(policyName=seen.device_policy(f.world, B), target=arn)
        read = _read(f, B, thing)
        assert read.status == "DELETED"
        again = read.changed(writer_region=B, status="ACTIVE", certificate_id=revived_id,
                             certificate_pem=revived,
                             updated_at=inventory.timestamp(dt.datetime.now(dt.timezone.utc)))
        f.world.client("dynamodb", B).put_item(
            **inventory.put_request(f.world.table(seen.INVENTORY), again, replaces=read))

    f.world.calls.before("DeleteCertificate", revived_in_b, by=f"states:{machine}")
    f.delete(A, thing)
    f.settle()

    assert (seen.row(f.world, B, thing) or {}).get("certificateId") == revived_id
    usable_only_with(f, B, thing, revived_id)
    assert seen.status(f.world, B, old_id) is None
    assert f.dead_letters(B) == []


def test_a_listed_certificate_aws_refuses_to_revoke_again_counts_as_revoked(f: Regions) -> None:
    """AWS IoT may refuse REVOKED -> REVOKED (CertificateStateException, undocumented): a
    certificate the item lists revoked that is refused so is already revoked, not a failure."""
    machine = f.pipe(B).target.rsplit(":", 1)[-1]
    thing, old_id = f.onboard_amazon_issued(A, "sensor-revoked-twice")
    f.settle()
    f.world.client("iot", B).update_certificate(certificateId=old_id, newStatus="REVOKED")
    f.world.calls.fail("UpdateCertificate", "CertificateStateException", times=1000,
                       when=lambda p: p.get("newStatus") == "REVOKED", by=f"states:{machine}")
    new_id = _rotate(f, A, thing, issue(thing).pem).certificate_id

    delivery = f.settle()[B]

    assert delivery.dead_lettered == [] and f.dead_letters(B) == []
    usable_only_with(f, B, thing, new_id)
    assert seen.status(f.world, B, old_id) == "REVOKED"


def test_reconcile_repairs_a_certificate_listed_revoked_that_is_active_here(
        f: Regions, local_graph: StackGraph) -> None:
    """B's machine could not revoke A's rotated-out certificate (dead-lettered); the item is
    REVOKED and names a certificate never registered in B. Deep reconciliation still finds
    the old certificate ACTIVE in B and repairs it through the machine."""
    machine = f.pipe(B).target.rsplit(":", 1)[-1]
    thing, old_id = f.onboard_amazon_issued(A, "sensor-unrevoked")
    f.settle()
    usable_only_with(f, B, thing, old_id)
    f.world.calls.fail("UpdateCertificate", "InvalidRequestException", times=1000,
                       by=f"states:{machine}")
    _rotate(f, A, thing, issue(thing).pem)
    f.write_change(A, thing, "REVOKED")
    assert f.settle()[B].dead_lettered
    f.world.calls.clear()
    assert seen.status(f.world, B, old_id) == "ACTIVE"

    # Only this device: earlier scenarios of the module leave their own (reported) residue.
    code, report = reconcile(local_graph, B, apply=False, things={thing})
    assert code == 2 and thing in report and "listed revoked" in report, report
    code, report = reconcile(local_graph, B, apply=True, things={thing})
    assert code == 0 and "repaired 1 " in report, report

    assert seen.status(f.world, B, old_id) == "REVOKED"
    assert seen.things_of(f.world, B, old_id) == []
    assert seen.active_certificates(f.world, B, thing) == []
