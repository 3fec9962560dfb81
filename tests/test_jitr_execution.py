"""The declared JITR machine, executed in the world (tools/local/world.py): moto's Step
Functions interpreter made to behave as AWS does, against moto's faithful IoT registry and
DynamoDB, with the declared check function in-process under its declared environment.

Every scenario asserts the final IoT registry (thing, principals, certificate status, policy
attachments) and the inventory, not only the execution status. The classes in the section
titles are the "what must hold" list of components/jitr/README.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from lambdas.contracts.certificates import certificate_id as id_of_pem
from lambdas.contracts.inventory import InventoryItem, Status, timestamp
from tests.support.certificates import NOW, SERVER_AUTH, Issued, device_key_usage, issue
from tools.harness import ACCOUNT_ID, StackGraph
from tools.local.emulation.lambdas import LambdaRuntime
from tools.local.journeys import jitr
from tools.local.journeys import registry as seen
from tools.local.pki_material import LocalPki
from tools.local.world import World, open_world

pytestmark = pytest.mark.slow

REGION = "eu-west-1"
OTHER_REGION = "us-west-2"
READS = {"DescribeCertificate", "DescribeThing", "ListThingPrincipals", "GetItem", "Invoke"}


@dataclass(frozen=True)
class CertificateState:
    """Everything the registry says about one certificate."""

    status: str | None
    things: tuple[str, ...]
    policies: tuple[str, ...]


@dataclass
class Region:
    """One region of the declared stack, its JITR machine run with any event."""

    world: World
    ca: Any  # our intermediate (key and certificate)
    ca_pem: str
    ca_id: str
    policy: str
    check_function: str

    @property
    def iot(self) -> Any:
        return self.world.client("iot", REGION)

    @property
    def calls(self) -> Any:
        return self.world.calls

    def register(self, device: Issued, ca_pem: str | None = None,
                 status: str = "PENDING_ACTIVATION") -> str:
        """What AWS IoT does on a device's first connection (JITR): PENDING_ACTIVATION."""
        if ca_pem is None:
            response = self.iot.register_certificate_without_ca(certificatePem=device.pem, status=status)
        else:
            response = self.iot.register_certificate(certificatePem=device.pem,
                                                     caCertificatePem=ca_pem, status=status)
        return str(response["certificateId"])

    def event(self, certificate_id: str, **overrides: Any) -> dict[str, Any]:
        """The message AWS IoT publishes on $aws/events/certificates/registered/<caId>."""
        millis = int(time.time() * 1000)
        return {"certificateId": certificate_id, "caCertificateId": self.ca_id,
                "timestamp": millis, "certificateStatus": "PENDING_ACTIVATION",
                "awsAccountId": ACCOUNT_ID, "certificateRegistrationTimestamp": str(millis),
                **overrides}

    def run(self, certificate_id: str | None = None, *,
            event: dict[str, Any] | None = None) -> dict[str, Any]:
        body = event if event is not None else self.event(str(certificate_id))
        return jitr.run_machine(self.world, REGION, body)

    def calls_to(self, operation: str) -> list[Any]:
        return self.calls.of(operation, caller="states:")

    def cert_arn(self, certificate_id: str) -> str:
        return seen.cert_arn(REGION, certificate_id)

    def status(self, certificate_id: str) -> str | None:
        return seen.status(self.world, REGION, certificate_id)

    def thing_exists(self, name: str) -> bool:
        return seen.thing_exists(self.world, REGION, name)

    def thing_attributes(self, name: str) -> dict[str, str]:
        return dict(self.iot.describe_thing(thingName=name).get("attributes") or {})

    def principals_of(self, thing_name: str) -> list[str]:
        return sorted(self.iot.list_thing_principals(thingName=thing_name)["principals"])

    def state(self, certificate_id: str) -> CertificateState:
        return CertificateState(self.status(certificate_id),
                                tuple(seen.things_of(self.world, REGION, certificate_id)),
                                tuple(seen.policies_of(self.world, REGION, certificate_id)))

    def row(self, thing_name: str) -> dict[str, Any] | None:
        return seen.row(self.world, REGION, thing_name)

    def rows(self) -> list[dict[str, Any]]:
        return list(self.world.client("dynamodb", REGION).scan(
            TableName=self.world.table(seen.INVENTORY))["Items"])

    def put_row(self, thing_name: str, certificate: Issued, certificate_id: str, *,
                status: str = "ACTIVE", origin: str = OTHER_REGION,
                drop: tuple[str, ...] = (), raw: dict[str, Any] | None = None
                ) -> dict[str, Any]:
        """A row another writer made, following docs/data-model.md (or not: drop/raw)."""
        item: dict[str, Any] = {
            "thingName": {"S": thing_name}, "certificateId": {"S": certificate_id},
            "certificatePem": {"S": certificate.pem}, "issuer": {"S": "OWN_CA"},
            "caCertificateId": {"S": hashlib.sha256(origin.encode()).hexdigest()},
            "originRegion": {"S": origin},
            "writerRegion": {"S": origin}, "status": {"S": status},
            "onboarding": {"S": "JITR"}, "notAfter": {"S": "2030-01-01T00:00:00Z"},
            "version": {"N": "3"}, "updatedAt": {"S": "2026-01-01T00:00:00Z"}}
        if not drop and not raw and status in Status.ALL:
            InventoryItem.from_attribute_values(item)  # a well-formed row keeps the contract
        for name in drop:
            item.pop(name)
        item.update(raw or {})
        self.world.client("dynamodb", REGION).put_item(TableName=self.world.table(seen.INVENTORY),
                                                       Item=item)
        row = self.row(thing_name)
        assert row is not None
        return row

    def assert_registered(self, thing_name: str, certificate_id: str) -> None:
        """The certificate is the thing's one usable identity."""
        assert self.state(certificate_id) == CertificateState("ACTIVE", (thing_name,), (self.policy,))
        assert seen.usable(self.world, REGION, thing_name, certificate_id)

    def assert_unusable(self, certificate_id: str, status: str = "INACTIVE") -> None:
        assert self.state(certificate_id) == CertificateState(status, (), ())

    def assert_nothing_left(self, thing_name: str, certificate_id: str,
                            status: str = "INACTIVE") -> None:
        """Full rollback of a new device: no usable cert, no attachment, no thing, no row."""
        self.assert_unusable(certificate_id, status)
        assert not self.thing_exists(thing_name)
        assert self.row(thing_name) is None

    def writes(self) -> list[str]:
        """Every call of the machine that could change the registry or the inventory."""
        return [c.operation for c in self.calls.of(caller="states:") if c.operation not in READS]


@pytest.fixture
def region(local_graph: StackGraph, local_pki: LocalPki) -> Iterator[Region]:
    with open_world(local_graph, regions=[REGION], pki=local_pki, capabilities=["jitr"]) as world:
        ca_id, ca_pem = seen.device_ca(world, REGION)
        yield Region(world, local_pki.intermediate, ca_pem, ca_id, seen.device_policy(world, REGION),
                     jitr.check_function(world, REGION))


def activation(parameters: dict[str, Any]) -> bool:
    return parameters.get("newStatus") == "ACTIVE"


def deactivation(parameters: dict[str, Any]) -> bool:
    return parameters.get("newStatus") == "INACTIVE"


# --- the registration itself ----------------------------------------------------------------

def test_happy_path_registers_the_device_and_writes_the_contract_row(region: Region) -> None:
    device = issue("sensor-001", region.ca)
    cert_id = region.register(device, region.ca_pem)

    result = region.run(cert_id)

    assert result["status"] == "SUCCEEDED", result
    region.assert_registered("sensor-001", cert_id)
    row = region.row("sensor-001")
    assert row is not None
    assert row == {
        "thingName": "sensor-001", "certificateId": cert_id, "certificatePem": device.pem,
        "issuer": "OWN_CA", "caCertificateId": region.ca_id, "originRegion": REGION,
        "writerRegion": REGION, "status": "ACTIVE", "onboarding": "JITR",
        "notAfter": timestamp(device.cert.not_valid_after_utc),
        "version": "1", "updatedAt": row["updatedAt"]}
    # What the declared machine wrote keeps the inventory contract (it cannot import it).
    stored = region.world.client("dynamodb", REGION).get_item(
        TableName=region.world.table(seen.INVENTORY), Key={"thingName": {"S": "sensor-001"}},
        ConsistentRead=True)["Item"]
    assert InventoryItem.from_attribute_values(stored).version == 1
    assert dt.datetime.fromisoformat(row["updatedAt"].replace("Z", "+00:00")) > NOW
    [put] = region.calls_to("PutItem")
    assert put.params["ConditionExpression"] == "attribute_not_exists(thingName)"
    attach = region.calls_to("AttachThingPrincipal")
    assert [c.params["thingPrincipalType"] for c in attach] == ["EXCLUSIVE_THING"]
    assert set(region.thing_attributes("sensor-001")) == {"jitrOwner"}


def test_the_same_event_twice_converges_without_duplicates(region: Region) -> None:
    cert_id = region.register(issue("sensor-twice", region.ca), region.ca_pem)
    assert region.run(cert_id)["status"] == "SUCCEEDED"
    first_row = region.row("sensor-twice")

    second = region.run(cert_id)

    assert second["status"] == "SUCCEEDED", second
    region.assert_registered("sensor-twice", cert_id)
    assert region.row("sensor-twice") == first_row
    assert len(region.rows()) == 1
    assert len(region.calls_to("PutItem")) == 1  # second run never wrote


def test_device_already_in_inventory_becomes_usable_here(region: Region) -> None:
    """Registered first in another region; the row replicated before the device came here."""
    device = issue("sensor-roaming", region.ca)
    cert_id = region.register(device, region.ca_pem)
    row_before = region.put_row("sensor-roaming", device, cert_id)

    result = region.run(cert_id)

    assert result["status"] == "SUCCEEDED", result
    region.assert_registered("sensor-roaming", cert_id)
    assert region.row("sensor-roaming") == row_before
    assert region.calls_to("PutItem") == []


def test_a_thing_that_exists_without_principals_is_joined(region: Region) -> None:
    region.iot.create_thing(thingName="sensor-pre-made", attributePayload={
        "attributes": {"batch": "7"}})
    cert_id = region.register(issue("sensor-pre-made", region.ca), region.ca_pem)

    result = region.run(cert_id)

    assert result["status"] == "SUCCEEDED", result
    region.assert_registered("sensor-pre-made", cert_id)
    assert region.thing_attributes("sensor-pre-made") == {"batch": "7"}  # not ours, untouched
    assert region.row("sensor-pre-made") is not None


def test_throttling_is_retried(region: Region) -> None:
    cert_id = region.register(issue("sensor-throttled", region.ca), region.ca_pem)
    region.calls.fail("AttachPolicy", "ThrottlingException")

    result = region.run(cert_id)

    assert result["status"] == "SUCCEEDED", result
    assert len(region.calls_to("AttachPolicy")) == 2
    region.assert_registered("sensor-throttled", cert_id)


# --- class 1: only our CA's certificates are touched ----------------------------------------

def _foreign_registration(region: Region, how: str, device_cn: str, status: str) -> str:
    if how == "without a CA":
        return region.register(issue(device_cn, issue("Stranger CA", ca=True)), ca_pem=None,
                               status=status)
    other_ca = issue("Another team's CA", ca=True)
    region.iot.register_ca_certificate(caCertificate=other_ca.pem, setAsActive=True,
                                       allowAutoRegistration=True)
    return region.register(issue(device_cn, other_ca), other_ca.pem, status=status)


@pytest.mark.parametrize("how, starting_status", [
    ("without a CA", "PENDING_ACTIVATION"), ("under another registered CA", "ACTIVE"),
    ("under another registered CA", "INACTIVE")])
def test_a_certificate_of_another_ca_is_left_exactly_as_it_was(
        region: Region, how: str, starting_status: str) -> None:
    """The event names our CA (as a replayed or hand-made event can): the machine believes
    the described certificate, not the event, and writes nothing."""
    cert_id = _foreign_registration(region, how, "sensor-foreign", starting_status)
    region.iot.create_thing(thingName="their-thing")
    region.iot.attach_thing_principal(thingName="their-thing",
                                      principal=region.cert_arn(cert_id))
    before = region.state(cert_id)

    result = region.run(event=region.event(cert_id, caCertificateId=region.ca_id))

    assert result["status"] == "FAILED"
    assert result["error"] == "Jitr.ForeignCertificate"
    # it names the CA the region issues under (in a CA rotation, the next one: components/edge/cas.py)
    assert any(region.world.resolver(ca.id) in result["cause"]
               for ca in region.world.declared("aws:iot/caCertificate:CaCertificate", REGION))
    assert region.state(cert_id) == before
    assert region.writes() == []
    assert region.calls.of("Invoke", service="lambda") == []
    assert not region.thing_exists("sensor-foreign") and region.rows() == []


def test_event_fields_cannot_steer_the_machine(region: Region) -> None:
    """Only certificateId is read: a forged CA id or planted state keys change nothing."""
    device = issue("sensor-steered", region.ca)
    cert_id = region.register(device, region.ca_pem)
    victim = region.register(issue("victim", region.ca), region.ca_pem)
    planted = region.event(
        cert_id, caCertificateId="forged-ca-id",
        check={"thingName": "victim", "notAfter": "2099-01-01T00:00:00Z"},
        certificate={"CertificateId": victim, "CaCertificateId": "forged-ca-id"},
        inventoryState="THIS_CERTIFICATE", ownerToken="guess")

    result = region.run(event=planted)

    assert result["status"] == "SUCCEEDED", result
    region.assert_registered("sensor-steered", cert_id)
    row = region.row("sensor-steered")
    assert row is not None and row["caCertificateId"] == region.ca_id
    assert region.status(victim) == "PENDING_ACTIVATION"
    assert not region.thing_exists("victim")


def test_an_event_without_a_certificate_id_is_a_clear_failure(region: Region) -> None:
    for body in ({}, {"certificateId": 42}):
        result = region.run(event=body)
        assert (result["status"], result["error"]) == ("FAILED", "Jitr.InvalidEvent")
    assert region.calls.of(caller="states:") == []


def test_a_revoked_certificate_is_never_touched(region: Region) -> None:
    cert_id = region.register(issue("sensor-was-revoked", region.ca), region.ca_pem)
    region.iot.update_certificate(certificateId=cert_id, newStatus="REVOKED")

    result = region.run(cert_id)

    assert (result["status"], result["error"]) == ("FAILED", "Jitr.CertificateRevoked")
    assert region.writes() == []
    region.assert_nothing_left("sensor-was-revoked", cert_id, status="REVOKED")


# --- class 4: device certificates only -------------------------------------------------------

REJECTED: list[tuple[str, Callable[[Issued], Issued], str]] = [
    ("bad CN", lambda ca: issue("bad name!", ca), "not a valid thing name"),
    ("expired", lambda ca: issue("sensor-old", ca, not_before=NOW - dt.timedelta(days=30),
                                 days=10), "expired"),
    ("server certificate", lambda ca: issue("sensor-server", ca, extended_key_usages=[SERVER_AUTH],
                                            key_usage=device_key_usage()), "lacks clientAuth"),
    ("sub-CA", lambda ca: issue("sensor-ca", ca, ca=True), "CA certificate"),
]


@pytest.mark.parametrize("make, reason", [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED])
def test_our_certificate_that_is_no_device_identity_is_revoked(
        region: Region, make: Callable[[Issued], Issued], reason: str) -> None:
    cert_id = region.register(make(region.ca), region.ca_pem)

    result = region.run(cert_id)

    assert (result["status"], result["error"]) == ("FAILED", "Jitr.CertificateRejected")
    assert reason in result["cause"]
    region.assert_unusable(cert_id, "REVOKED")
    assert region.iot.list_things()["things"] == [] and region.rows() == []


def test_a_rejected_certificate_the_inventory_names_is_never_revoked(region: Region) -> None:
    """Revocation is final: when the check rejects a certificate the inventory names as its
    thing's ACTIVE one (the check and the inventory disagree), nothing is changed."""
    device = issue("sensor-expired-live", region.ca, not_before=NOW - dt.timedelta(days=30), days=10)
    cert_id = region.register(device, region.ca_pem, status="ACTIVE")
    region.iot.create_thing(thingName="sensor-expired-live")
    region.iot.attach_thing_principal(thingName="sensor-expired-live", principal=region.cert_arn(cert_id))
    region.put_row("sensor-expired-live", device, cert_id)
    before = region.state(cert_id)

    result = region.run(cert_id)

    assert (result["status"], result["error"]) == ("FAILED", "Jitr.RejectedCertificateInUse")
    assert region.state(cert_id) == before and before.status == "ACTIVE"
    assert region.writes() == []


# --- class 2 and 6: what the inventory says ----------------------------------------------------

def test_revoked_device_is_never_activated(region: Region) -> None:
    device = issue("sensor-revoked", region.ca)
    cert_id = region.register(device, region.ca_pem)
    row_before = region.put_row("sensor-revoked", device, cert_id, status="REVOKED")

    result = region.run(cert_id)

    assert (result["status"], result["error"]) == ("FAILED", "Jitr.DeviceRevoked")
    region.assert_unusable(cert_id, "REVOKED")
    assert not region.thing_exists("sensor-revoked")
    assert region.row("sensor-revoked") == row_before


ROW_REFUSALS: list[tuple[str, str, tuple[str, ...], dict[str, Any], str]] = [
    ("deleted device", "DELETED", (), {"expiresAt": {"N": "1900000000"}}, "Jitr.DeviceDeleted"),
    ("disabled device", "INACTIVE", (), {}, "Jitr.DeviceInactive"),
    ("unknown status", "LOST", (), {}, "Jitr.InventoryRowInvalid"),
    ("no status", "ACTIVE", ("status",), {}, "Jitr.InventoryRowInvalid"),
    ("status not a string", "ACTIVE", (), {"status": {"N": "1"}}, "Jitr.InventoryRowInvalid"),
    ("no certificateId", "ACTIVE", ("certificateId",), {}, "Jitr.InventoryRowInvalid"),
]


@pytest.mark.parametrize("status, drop, raw, error", [r[1:] for r in ROW_REFUSALS],
                         ids=[r[0] for r in ROW_REFUSALS])
def test_a_row_that_does_not_vouch_for_the_certificate_leaves_it_unusable(
        region: Region, status: str, drop: tuple[str, ...], raw: dict[str, Any],
        error: str) -> None:
    """Also the Choice guards of class 6: an odd row is a refusal, never States.Runtime."""
    device = issue("sensor-row", region.ca)
    cert_id = region.register(device, region.ca_pem)
    row_before = region.put_row("sensor-row", device, cert_id, status=status, drop=drop, raw=raw)

    result = region.run(cert_id)

    assert (result["status"], result["error"]) == ("FAILED", error), result
    region.assert_unusable(cert_id)
    assert not region.thing_exists("sensor-row")
    assert region.row("sensor-row") == row_before


def test_different_certificate_for_a_known_thing_stays_inactive(region: Region) -> None:
    known = issue("sensor-clone", region.ca)
    row_before = region.put_row("sensor-clone", known, id_of_pem(known.pem))
    cert_id = region.register(issue("sensor-clone", region.ca), region.ca_pem)

    result = region.run(cert_id)

    assert (result["status"], result["error"]) == ("FAILED", "Jitr.CertificateConflict")
    region.assert_unusable(cert_id)
    assert not region.thing_exists("sensor-clone")
    assert region.row("sensor-clone") == row_before


INTERRUPTION_POINTS: list[tuple[str, Callable[[dict[str, Any]], bool] | None]] = [
    ("CreateThing", None), ("AttachThingPrincipal", None), ("AttachPolicy", None),
    ("UpdateCertificate", activation), ("PutItem", None),
]


@pytest.mark.parametrize("action, when", INTERRUPTION_POINTS, ids=[a for a, _ in INTERRUPTION_POINTS])
def test_a_rerun_after_an_interruption_converges(
        region: Region, action: str, when: Callable[[dict[str, Any]], bool] | None) -> None:
    cert_id = region.register(issue("sensor-interrupted", region.ca), region.ca_pem)
    region.calls.interrupt(action, when=when, by="states:")

    assert region.run(cert_id)["status"] == "ABORTED"
    rerun = region.run(cert_id)

    assert rerun["status"] == "SUCCEEDED", rerun
    region.assert_registered("sensor-interrupted", cert_id)
    row = region.row("sensor-interrupted")
    assert row is not None and row["certificateId"] == cert_id and row["version"] == "1"


def _leave_active_without_a_row(region: Region, device: Issued, how: str) -> str:
    """What an interrupted run, or one whose rollback failed, leaves behind: the certificate
    ACTIVE, attached to its thing with the device policy, and no inventory row."""
    cert_id = region.register(device, region.ca_pem)
    if how == "interrupted":
        region.calls.interrupt("UpdateCertificate", when=activation)
        assert region.run(cert_id)["status"] == "ABORTED"
    else:
        region.calls.fail("PutItem", "ValidationException")
        for action in ("UpdateCertificate", "DetachPolicy", "DetachThingPrincipal"):
            region.calls.fail(action, "InvalidRequestException",
                                when=deactivation if action == "UpdateCertificate" else None)
        failed = region.run(cert_id)
        assert failed["error"] == "Jitr.RollbackIncomplete", failed
        assert {"deactivateCertificate", "detachDevicePolicy", "detachThingPrincipal"} <= set(
            json.loads(failed["cause"]))
    name = device.cert.subject.rfc4514_string().removeprefix("CN=")
    assert region.state(cert_id) == CertificateState("ACTIVE", (name,), (region.policy,))
    assert region.row(name) is None
    return cert_id


@pytest.mark.parametrize("how", ["interrupted", "rollback failed"])
def test_a_conflicting_certificate_that_was_left_active_is_deactivated_on_rerun(
        region: Region, how: str) -> None:
    """Class 2: meanwhile another region recorded a different certificate for the thing."""
    device = issue("sensor-left-active", region.ca)
    cert_id = _leave_active_without_a_row(region, device, how)
    other = issue("sensor-left-active", region.ca)
    winner = region.put_row("sensor-left-active", other, id_of_pem(other.pem))

    rerun = region.run(cert_id)

    assert (rerun["status"], rerun["error"]) == ("FAILED", "Jitr.CertificateConflict"), rerun
    region.assert_unusable(cert_id)
    assert region.row("sensor-left-active") == winner
    assert region.principals_of("sensor-left-active") == []


@pytest.mark.parametrize("how", ["interrupted", "rollback failed"])
def test_a_certificate_left_active_is_kept_and_recorded_on_rerun(region: Region, how: str) -> None:
    device = issue("sensor-resumed", region.ca)
    cert_id = _leave_active_without_a_row(region, device, how)

    rerun = region.run(cert_id)

    assert rerun["status"] == "SUCCEEDED", rerun
    region.assert_registered("sensor-resumed", cert_id)
    assert region.row("sensor-resumed") is not None


def test_a_transient_failure_keeps_a_device_the_inventory_names(region: Region) -> None:
    """A replayed event for a working device must not cut it off because a call failed."""
    device = issue("sensor-working", region.ca)
    cert_id = region.register(device, region.ca_pem)
    assert region.run(cert_id)["status"] == "SUCCEEDED"
    region.calls.fail("AttachPolicy", "InvalidRequestException")

    replay = region.run(cert_id)

    assert (replay["status"], replay["error"]) == ("FAILED", "Iot.InvalidRequestException")
    region.assert_registered("sensor-working", cert_id)


def test_an_active_certificate_without_a_row_is_not_kept_after_a_failure(region: Region) -> None:
    """ACTIVE but unrecorded (an interrupted run) is not yet a device: fail closed."""
    device = issue("sensor-unrecorded", region.ca)
    cert_id = _leave_active_without_a_row(region, device, "interrupted")
    region.calls.fail("AttachPolicy", "InvalidRequestException")

    rerun = region.run(cert_id)

    assert (rerun["status"], rerun["error"]) == ("FAILED", "Iot.InvalidRequestException")
    region.assert_unusable(cert_id)
    assert region.thing_exists("sensor-unrecorded")  # the interrupted run's thing, not ours
    assert region.row("sensor-unrecorded") is None


# --- class 3: a thing with principals is not joined silently ---------------------------------

def test_a_thing_with_another_certificate_and_no_row_is_a_conflict(region: Region) -> None:
    outsider = region.register(issue("sensor-taken", region.ca), region.ca_pem, status="ACTIVE")
    region.iot.create_thing(thingName="sensor-taken")
    region.iot.attach_thing_principal(thingName="sensor-taken", principal=region.cert_arn(outsider))
    outsider_before = region.state(outsider)
    cert_id = region.register(issue("sensor-taken", region.ca), region.ca_pem)

    result = region.run(cert_id)

    assert (result["status"], result["error"]) == ("FAILED", "Jitr.ThingHasAnotherCertificate")
    region.assert_unusable(cert_id)
    assert region.state(outsider) == outsider_before
    assert region.principals_of("sensor-taken") == [region.cert_arn(outsider)]
    assert region.rows() == []


def test_a_clone_is_refused_while_the_first_certificate_is_unrecorded(region: Region) -> None:
    first = _leave_active_without_a_row(region, issue("sensor-twin", region.ca), "interrupted")
    clone = region.register(issue("sensor-twin", region.ca), region.ca_pem)

    refused = region.run(clone)
    resumed = region.run(first)

    assert refused["error"] == "Jitr.ThingHasAnotherCertificate"
    assert resumed["status"] == "SUCCEEDED", resumed
    region.assert_registered("sensor-twin", first)
    region.assert_unusable(clone)
    row = region.row("sensor-twin")
    assert row is not None and row["certificateId"] == first


# --- class 5: races are told apart by the registry, not by CreateThing --------------------------

def test_losing_the_row_to_another_certificate_keeps_the_winners_thing(region: Region) -> None:
    """X creates the thing; Y (same thing name) runs to completion while X is between
    CreateThing and attaching; X then loses the conditional write and rolls back without
    deleting the thing Y now uses, and without a false RollbackIncomplete."""
    x = region.register(issue("sensor-race", region.ca), region.ca_pem)
    y = region.register(issue("sensor-race", region.ca), region.ca_pem)
    outcome: dict[str, Any] = {}

    def y_runs_meanwhile(_: dict[str, Any]) -> None:
        outcome["y"] = region.run(y)

    region.calls.before("AttachThingPrincipal", y_runs_meanwhile)

    x_result = region.run(x)

    assert outcome["y"]["status"] == "SUCCEEDED", outcome["y"]
    assert (x_result["status"], x_result["error"]) == ("FAILED", "Jitr.CertificateConflict")
    region.assert_registered("sensor-race", y)
    region.assert_unusable(x)
    row = region.row("sensor-race")
    assert row is not None and row["certificateId"] == y
    assert region.calls_to("DeleteThing") == []


def test_a_thing_taken_over_during_rollback_is_not_a_failed_rollback(region: Region) -> None:
    """X created the thing and fails; just before X deletes it, Y attaches to it. DeleteThing
    is refused; X sees Y on the thing and ends with its own error, not RollbackIncomplete."""
    x = region.register(issue("sensor-handover", region.ca), region.ca_pem)
    y = region.register(issue("sensor-handover", region.ca), region.ca_pem)
    region.calls.fail("AttachPolicy", "InvalidRequestException")
    outcome: dict[str, Any] = {}
    region.calls.before("DeleteThing",
                          lambda _: outcome.setdefault("y", region.run(y)))

    x_result = region.run(x)

    assert outcome["y"]["status"] == "SUCCEEDED", outcome["y"]
    assert (x_result["status"], x_result["error"]) == ("FAILED", "Iot.InvalidRequestException")
    region.assert_registered("sensor-handover", y)
    region.assert_unusable(x)
    assert len(region.calls_to("DeleteThing")) == 1


def test_duplicate_deliveries_racing_both_succeed(region: Region) -> None:
    cert_id = region.register(issue("sensor-dup", region.ca), region.ca_pem)
    outcome: dict[str, Any] = {}
    region.calls.before("PutItem",
                          lambda _: outcome.setdefault("second", region.run(cert_id)))

    first = region.run(cert_id)

    assert first["status"] == "SUCCEEDED" and outcome["second"]["status"] == "SUCCEEDED"
    region.assert_registered("sensor-dup", cert_id)
    assert len(region.rows()) == 1


def test_a_failed_duplicate_keeps_the_registration_the_other_delivery_committed(
        region: Region) -> None:
    """The second delivery runs to completion while the first is at AttachPolicy, which then
    fails: the first's rollback re-reads the row, finds this certificate named ACTIVE and
    undoes nothing (it started from PENDING_ACTIVATION and no row, which is stale by then)."""
    cert_id = region.register(issue("sensor-dup-fail", region.ca), region.ca_pem)
    outcome: dict[str, Any] = {}
    region.calls.before("AttachPolicy", lambda _: outcome.setdefault("second", region.run(cert_id)))
    region.calls.fail("AttachPolicy", "InvalidRequestException", skip=1)

    first = region.run(cert_id)

    assert outcome["second"]["status"] == "SUCCEEDED", outcome["second"]
    assert (first["status"], first["error"]) == ("FAILED", "Iot.InvalidRequestException")
    region.assert_registered("sensor-dup-fail", cert_id)
    row = region.row("sensor-dup-fail")
    assert row is not None and row["certificateId"] == cert_id
    assert [c for c in region.calls_to("UpdateCertificate") if deactivation(c.params)] == []


def test_rollback_deletes_a_thing_only_with_its_own_token(region: Region) -> None:
    """CreateThing succeeding says nothing: here an earlier attempt of the same call (same
    token) created it - ours, deleted on rollback. A thing someone else created with the
    same name is kept (see test_rollback_keeps_a_thing_it_did_not_create)."""
    cert_id = region.register(issue("sensor-retried", region.ca), region.ca_pem)

    def earlier_attempt_created_it(parameters: dict[str, Any]) -> None:
        region.iot.create_thing(thingName="sensor-retried", attributePayload={
            "attributes": parameters["attributePayload"]["attributes"]})

    region.calls.before("CreateThing", earlier_attempt_created_it)
    region.calls.fail("AttachPolicy", "InvalidRequestException")

    result = region.run(cert_id)

    assert (result["status"], result["error"]) == ("FAILED", "Iot.InvalidRequestException")
    region.assert_nothing_left("sensor-retried", cert_id)


def test_rollback_keeps_a_thing_it_did_not_create(region: Region) -> None:
    region.iot.create_thing(thingName="sensor-pre-existing")
    cert_id = region.register(issue("sensor-pre-existing", region.ca), region.ca_pem)
    region.calls.fail("AttachPolicy", "InvalidRequestException")

    result = region.run(cert_id)

    assert result["status"] == "FAILED" and result["error"] != "Jitr.RollbackIncomplete"
    assert region.thing_exists("sensor-pre-existing")
    region.assert_unusable(cert_id)


def test_row_written_meanwhile_for_this_certificate_converges(region: Region) -> None:
    device = issue("sensor-row-race", region.ca)
    cert_id = region.register(device, region.ca_pem)
    written: dict[str, Any] = {}
    region.calls.before("PutItem", lambda _: written.update(
        region.put_row("sensor-row-race", device, cert_id)))

    result = region.run(cert_id)

    assert result["status"] == "SUCCEEDED", result
    region.assert_registered("sensor-row-race", cert_id)
    assert region.row("sensor-row-race") == written


# --- failures at every step, then a re-run ----------------------------------------------------

STEP_FAILURES: list[tuple[str, str, Callable[[dict[str, Any]], bool] | None]] = [
    ("DescribeCertificate", "InvalidRequestException", None),
    ("Invoke", "ResourceNotFoundException", None),
    ("GetItem", "ValidationException", None),
    ("CreateThing", "InvalidRequestException", None),
    ("ListThingPrincipals", "InvalidRequestException", None),
    ("AttachThingPrincipal", "InvalidRequestException", None),
    ("AttachPolicy", "InvalidRequestException", None),
    ("UpdateCertificate", "InvalidRequestException", activation),
    ("PutItem", "ValidationException", None),
]


@pytest.mark.parametrize("action, code, when", STEP_FAILURES, ids=[a for a, _, _ in STEP_FAILURES])
def test_failure_at_any_step_rolls_back_and_a_rerun_succeeds(
        region: Region, action: str, code: str,
        when: Callable[[dict[str, Any]], bool] | None) -> None:
    cert_id = region.register(issue("sensor-flaky", region.ca), region.ca_pem)
    fault = region.calls.fail(action, code, when=when)

    failed = region.run(cert_id)

    assert fault.fired == 1
    assert failed["status"] == "FAILED"
    assert failed["error"] != "Jitr.RollbackIncomplete", failed
    expected = "PENDING_ACTIVATION" if action == "DescribeCertificate" else "INACTIVE"
    region.assert_nothing_left("sensor-flaky", cert_id, status=expected)

    rerun = region.run(cert_id)

    assert rerun["status"] == "SUCCEEDED", rerun
    region.assert_registered("sensor-flaky", cert_id)
    assert region.row("sensor-flaky") is not None


# --- class 6: a broken check is a clear failure, never States.Runtime ----------------------------

CHECK_RESULTS: list[tuple[str, Any, str]] = [
    ("bad event", None, "Jitr.CheckInvalidEvent"),
    ("empty result", {}, "Jitr.CheckResultMalformed"),
    ("valid without a thing name", {"valid": True, "thingName": None, "notAfter": "y",
                                    "error": None}, "Jitr.CheckResultMalformed"),
    ("invalid without a reason", {"valid": False, "error": None}, "Jitr.CheckResultMalformed"),
]


@pytest.mark.parametrize("payload, error", [c[1:] for c in CHECK_RESULTS],
                         ids=[c[0] for c in CHECK_RESULTS])
def test_an_odd_check_result_rolls_back_instead_of_revoking(
        region: Region, payload: Any, error: str) -> None:
    cert_id = region.register(issue("sensor-odd-check", region.ca), region.ca_pem)
    if payload is None:
        runtime = region.world.emulation(LambdaRuntime)
        region.world.adapter.lambda_handlers[region.check_function] = \
            lambda event, context: runtime.invoke(region.check_function, {"unexpected": True})
    else:
        region.world.adapter.lambda_handlers[region.check_function] = lambda event, context: payload

    result = region.run(cert_id)

    assert (result["status"], result["error"]) == ("FAILED", error), result
    region.assert_nothing_left("sensor-odd-check", cert_id)
