"""CA rotation end to end: the config, what every region declares during the overlap, the
JITR path that moves a re-issued device to the issuing CA (the declared machine, run in the
one emulation: tools/local/world.py), replication choosing the CA an item names, and the
report/retire tool."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.edge.cas import DeviceCa, certificate_id
from components.replication.component import state_machine_definition as replication_definition
from components.replication.settings import ReplicationSettings
from tests.support.certificates import issue
from tests.support.stacks import PROJECT_DIR
from tools import ca_rotation
from tools import pki as pki_tool
from tools.harness import StackGraph, evaluate_program, load_program_stack
from tools.local import journeys
from tools.local.emulation.iot_data import IotData
from tools.local.journeys import jitr
from tools.local.journeys import registry as seen
from tools.local.pki_material import LocalPki
from tools.local.world import World, open_world

REGION = "eu-west-1"
ACCOUNT = "123456789012"
TABLE = "iotmr-dev-device-inventory"
POLICY = "iotmr-test-device"
ROOT = issue("Rotation Test Root CA", ca=True, days=3650)
OLD_CA = issue("Device CA 2024", ROOT, ca=True, days=1000)
NEW_CA = issue("Device CA 2027", ROOT, ca=True, days=1000)


# --- the stack: what the overlap declares -------------------------------------------------

def rotation_config(tmp_path: Path, old_state: str = "previous") -> dict[str, Any]:
    old, new = tmp_path / "old-ca.pem", tmp_path / "new-ca.pem"
    old.write_text(OLD_CA.pem)
    new.write_text(NEW_CA.pem)
    return {"caCertificates": [
        {"name": "ca", "pemFile": str(old), "state": old_state},
        {"name": "ca2027", "pemFile": str(new), "state": "issuing"}]}


def evaluate_rotation(tmp_path: Path, old_state: str = "previous") -> StackGraph:
    """One region and the capabilities a CA rotation changes (each evaluation costs seconds)."""
    return evaluate_program(".", "dev", config_overrides={
        **rotation_config(tmp_path, old_state), "regions": [REGION],
        "capabilities": ["jitr", "replication"]},
        drop_keys=("caCertificatePemFile", "cvm", "installerWeb"))


def of_region(graph: StackGraph, type_: str, region: str = REGION) -> list[Any]:
    return [r for r in graph.of_type(type_) if r.region == region]


def test_the_overlap_registers_both_cas_and_jitr_accepts_both(tmp_path, dev_graph):
    graph = evaluate_rotation(tmp_path)
    cas = {c.name: c for c in of_region(graph, "aws:iot/caCertificate:CaCertificate")}
    assert set(cas) == {"region-eu-west-1-edge-ca", "region-eu-west-1-edge-ca-ca2027"}
    for ca in cas.values():
        assert ca.inputs["certificateMode"] == "SNI_ONLY"
        assert ca.inputs["active"] is True and ca.inputs["allowAutoRegistration"] is True
    # The first CA keeps its URN (and so its registration) when the config moves to the list.
    old_urn = cas["region-eu-west-1-edge-ca"].urn
    assert old_urn == dev_graph.named("region-eu-west-1-edge-ca").urn
    ids = {name: ca.id for name, ca in cas.items()}
    rules = {r.name: r for r in of_region(graph, "aws:iot/topicRule:TopicRule")}
    assert rules["region-eu-west-1-jitr-rule"].urn == dev_graph.named("region-eu-west-1-jitr-rule").urn
    assert rules["region-eu-west-1-jitr-rule"].inputs["sql"].endswith(
        f"registered/{ids['region-eu-west-1-edge-ca']}'")
    assert rules["region-eu-west-1-jitr-rule-ca2027"].inputs["sql"].endswith(
        f"registered/{ids['region-eu-west-1-edge-ca-ca2027']}'")
    [check] = [f for f in of_region(graph, "aws:lambda/function:Function") if f.name.endswith("jitr-check")]
    pem = check.inputs["environment"]["variables"]["CA_CERTIFICATE_PEM"]
    assert OLD_CA.pem.strip() in pem and NEW_CA.pem.strip() in pem
    [machine] = [m for m in of_region(graph, "aws:sfn/stateMachine:StateMachine") if m.name.endswith("jitr-machine")]
    definition = json.loads(machine.inputs["definition"])
    accepted = definition["States"]["IsIssuedByOurCa"]["Choices"][0]["And"][2]["Or"]
    assert [r["StringEquals"] for r in accepted] == [ids["region-eu-west-1-edge-ca-ca2027"],
                                                     ids["region-eu-west-1-edge-ca"]]
    [replicator] = [m for m in of_region(graph, "aws:sfn/stateMachine:StateMachine") if m.name.endswith("replication-machine")]
    text = replicator.inputs["definition"]
    assert certificate_id(OLD_CA.pem) in text and certificate_id(NEW_CA.pem) in text


@pytest.mark.parametrize("state,active,auto,rules", [("retiring", True, False, 1),
                                                      ("retired", False, False, 1)])
def test_retirement_turns_auto_registration_off_then_deactivates(tmp_path, state, active, auto, rules):
    graph = evaluate_rotation(tmp_path, state)
    old = graph.named("region-eu-west-1-edge-ca")
    assert old.inputs["active"] is active and old.inputs["allowAutoRegistration"] is auto
    assert len(of_region(graph, "aws:iot/topicRule:TopicRule")) == rules
    [check] = [f for f in of_region(graph, "aws:lambda/function:Function") if f.name.endswith("jitr-check")]
    assert OLD_CA.pem.strip() not in check.inputs["environment"]["variables"]["CA_CERTIFICATE_PEM"]
    # The machine accepts exactly the CAs the check trusts: the issuing CA only.
    [machine] = [m for m in of_region(graph, "aws:sfn/stateMachine:StateMachine") if m.name.endswith("jitr-machine")]
    definition = json.loads(machine.inputs["definition"])
    accepted = definition["States"]["IsIssuedByOurCa"]["Choices"][0]["And"][2]["Or"]
    new_id = graph.named("region-eu-west-1-edge-ca-ca2027").id
    assert [r["StringEquals"] for r in accepted] == [new_id, new_id]


def _parse(value: Any, tmp_path: Path) -> list[str]:
    from components.capabilities import CAPABILITIES
    from components.config import ConfigError, parse_stack_config

    raw = yaml.safe_load(Path("Pulumi.dev.yaml").read_text())["config"]
    config = {k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith("iot-multi-region:")}
    config.pop("caCertificatePemFile")
    config["caCertificates"] = value
    try:
        parse_stack_config(config, capabilities=CAPABILITIES, project_dir=tmp_path)
    except ConfigError as error:
        return error.problems
    return []


def test_the_ca_list_is_checked(tmp_path):
    (tmp_path / "old.pem").write_text(OLD_CA.pem)
    (tmp_path / "new.pem").write_text(NEW_CA.pem)
    expired = issue("Expired Device CA", ROOT, ca=True, days=10,
                    not_before=OLD_CA.cert.not_valid_before_utc.replace(year=2020))
    (tmp_path / "expired.pem").write_text(expired.pem)

    def entry(name: str, file: str, state: str) -> dict[str, str]:
        return {"name": name, "pemFile": file, "state": state}

    assert _parse([entry("ca", "old.pem", "previous"), entry("next", "new.pem", "issuing")], tmp_path) == []
    assert _parse([entry("old", "expired.pem", "retired"), entry("ca", "new.pem", "issuing")], tmp_path) == []
    problems = _parse([entry("ca", "old.pem", "previous"), entry("next", "new.pem", "previous")], tmp_path)
    assert any("exactly one CA must be 'issuing' (found 0)" in p for p in problems)
    problems = _parse([entry("ca", "expired.pem", "previous"), entry("n", "new.pem", "issuing")], tmp_path)
    assert any("expired" in p for p in problems)
    [problem] = _parse([entry("ca", "old.pem", "issuing"), entry("b", "old.pem", "retired")], tmp_path)
    assert "listed twice" in problem
    problems = _parse([entry("Bad Name", "old.pem", "issuing")], tmp_path)
    assert any("caCertificates[0].name" in p for p in problems)
    three = [entry("a", "old.pem", "previous"), entry("b", "expired.pem", "retiring"),
             entry("c", "new.pem", "issuing")]
    assert any("at most one CA besides" in p for p in _parse(three, tmp_path))


# --- JITR in moto: a re-issued device moves to the issuing CA -----------------------------

@dataclass
class Rotation:
    """One region of the dev stack during a rotation's overlap, stood up in the world
    (tools/local/world.py): the run's intermediate is the `previous` CA, a second one the
    `issuing` CA (tools/local/pki_material.py); devices onboard by their first connection
    (auto-registration, the registered event, the declared rule and JITR machine)."""

    world: World

    @property
    def iot(self) -> Any:
        return self.world.client("iot", REGION)

    def _ca_id(self, pem: str) -> str:
        [resource] = [r for r in self.world.declared("aws:iot/caCertificate:CaCertificate", REGION)
                      if self.world.state(r).get("caCertificatePem") == pem]
        return str(self.world.resolver(resource.id))

    @property
    def old_id(self) -> str:
        return self._ca_id(self.world.pki.intermediate_pem)

    @property
    def new_id(self) -> str:
        assert self.world.pki.next_intermediate is not None
        return self._ca_id(pki_tool.pem_certs(self.world.pki.next_intermediate.cert).decode())

    def connect(self, thing: str, *, next_ca: bool) -> tuple[str, dict[str, Any]]:
        """A device's first connection with a new key: (its certificate id, the execution)."""
        device = self.world.pki.device(thing, next_ca=next_ca)
        registration, _, executions = jitr.connect_first(self.world, REGION, device.pem)
        [execution] = executions
        return registration.certificate_id, execution

    def onboard_on_old_ca(self, thing: str) -> str:
        certificate, execution = self.connect(thing, next_ca=False)
        assert execution["status"] == "SUCCEEDED", execution
        return certificate

    def row(self, thing: str) -> dict[str, Any]:
        return seen.row(self.world, REGION, thing) or {}

    def status(self, certificate_id: str) -> str | None:
        return seen.status(self.world, REGION, certificate_id)

    def principals(self, thing: str) -> list[str]:
        return sorted(p.rsplit("/", 1)[1] for p in self.iot.list_thing_principals(thingName=thing)["principals"])


@pytest.fixture(scope="module")
def rotation_graph(local_pki: LocalPki) -> StackGraph:
    """The dev stack as the local run evaluates it: the rotation's overlap from the run's PKI."""
    spec = load_program_stack(PROJECT_DIR, "dev")
    added, _ = journeys.config_overrides(spec.config, spec.project)
    ca_config, _ = local_pki.stack_ca_config()
    return evaluate_program(PROJECT_DIR, "dev", config_overrides={**added, **ca_config},
                            drop_keys=("caCertificatePemFile", "caCertificatePem", "caCertificates"))


@pytest.fixture
def world(rotation_graph: StackGraph, local_pki: LocalPki) -> Iterator[Rotation]:
    with open_world(rotation_graph, regions=[REGION], pki=local_pki, capabilities=["jitr"]) as opened:
        yield Rotation(opened)


def _failed_with(execution: dict[str, Any], error: str) -> bool:
    return execution["status"] == "FAILED" and error in f"{execution.get('error', '')}{execution.get('cause', '')}"


@pytest.mark.slow
def test_a_device_reissued_under_the_issuing_ca_moves_and_its_old_certificate_is_revoked(world):
    old_cert = world.onboard_on_old_ca("meter-7")
    assert world.row("meter-7")["caCertificateId"] == world.old_id

    new_cert, result = world.connect("meter-7", next_ca=True)

    assert result["status"] == "SUCCEEDED", result
    row = world.row("meter-7")
    assert (row["certificateId"], row["caCertificateId"], row["version"], row["writerRegion"]) == (
        new_cert, world.new_id, "2", REGION)
    assert row["revokedCertificateIds"] == [old_cert]
    assert world.status(new_cert) == "ACTIVE" and world.status(old_cert) == "REVOKED"
    assert world.principals("meter-7") == [new_cert]
    [update] = world.world.calls.of("UpdateItem", caller="states:")
    assert update.params["ConditionExpression"] == (
        "#version = :expected AND certificateId = :oldId AND #status = :active")


@pytest.mark.slow
def test_two_certificates_of_one_ca_are_still_a_conflict(world):
    """A clone under the previous CA, and a second certificate under the issuing CA for a
    device already moved: neither is a rotation."""
    old_cert = world.onboard_on_old_ca("meter-8")
    clone, result = world.connect("meter-8", next_ca=False)
    assert _failed_with(result, "CertificateConflict"), result
    assert world.status(clone) == "INACTIVE" and world.status(old_cert) == "ACTIVE"

    moved, result = world.connect("meter-8", next_ca=True)
    assert result["status"] == "SUCCEEDED", result
    second, result = world.connect("meter-8", next_ca=True)
    assert result["status"] == "FAILED", result
    assert world.status(second) == "INACTIVE" and world.status(moved) == "ACTIVE"
    assert world.row("meter-8")["certificateId"] == moved


@pytest.mark.slow
def test_a_row_that_changed_before_the_commit_refuses_the_rotation(world):
    old_cert = world.onboard_on_old_ca("meter-9")

    def operator_disables(_: dict[str, Any]) -> None:
        world.world.client("dynamodb", REGION).update_item(
            TableName=world.world.table(seen.INVENTORY), Key={"thingName": {"S": "meter-9"}},
            UpdateExpression="SET #s = :i, #v = :v",
            ExpressionAttributeNames={"#s": "status", "#v": "version"},
            ExpressionAttributeValues={":i": {"S": "INACTIVE"}, ":v": {"N": "2"}})

    world.world.calls.before("UpdateItem", operator_disables, by="states:")
    new_cert, result = world.connect("meter-9", next_ca=True)

    assert result["status"] == "FAILED", result
    assert world.status(new_cert) == "INACTIVE" and world.status(old_cert) == "ACTIVE"
    assert world.row("meter-9")["certificateId"] == old_cert


def _reissue(world: Rotation, thing: str) -> str:
    """The device's re-issued certificate, registered by its first connection (its event is
    then delivered by the test, as often as the test needs)."""
    device = world.world.pki.device(thing, next_ca=True)
    return world.world.emulation(IotData).auto_register(REGION, device.pem).certificate_id


def _assert_moved(world: Rotation, thing: str, old_cert: str, new_cert: str) -> None:
    """The device holds only its new certificate, the row names it, the old one is revoked."""
    row = world.row(thing)
    assert (row["certificateId"], row["version"], row["revokedCertificateIds"]) == (new_cert, "2", [old_cert])
    assert world.status(new_cert) == "ACTIVE" and world.status(old_cert) == "REVOKED"
    assert world.principals(thing) == [new_cert]
    assert seen.usable(world.world, REGION, thing, new_cert)


@pytest.mark.slow
def test_a_duplicate_delivery_of_a_rotation_finishes_it_instead_of_cutting_the_device_off(world):
    """Two executions for one re-issued certificate both classify the row as a rotation; the
    second commits first. The first's conditional write is refused: it re-reads the row, sees
    its certificate committed, and finishes (revoking the already revoked old one is fine)."""
    old_cert = world.onboard_on_old_ca("meter-dup")
    new_cert = _reissue(world, "meter-dup")
    outcome: dict[str, Any] = {}

    def second_delivery(_: dict[str, Any]) -> None:
        outcome["second"] = jitr.run_machine(world.world, REGION, {"certificateId": new_cert})

    world.world.calls.before("UpdateItem", second_delivery, by="states:")
    first = jitr.run_machine(world.world, REGION, {"certificateId": new_cert})

    assert outcome["second"]["status"] == "SUCCEEDED", outcome["second"]
    assert first["status"] == "SUCCEEDED", first
    _assert_moved(world, "meter-dup", old_cert, new_cert)


@pytest.mark.slow
def test_a_rotation_write_that_landed_but_answered_an_error_is_not_rolled_back(world):
    """The write takes effect, its answer is lost (throttling), the retry is refused by the
    write's own version condition: the rotation is committed, and finished."""
    old_cert = world.onboard_on_old_ca("meter-retry")
    new_cert = _reissue(world, "meter-retry")
    dynamodb = world.world.client("dynamodb", REGION)
    world.world.calls.before("UpdateItem", lambda params: dynamodb.update_item(**params), by="states:")
    world.world.calls.fail("UpdateItem", "ProvisionedThroughputExceededException", by="states:", skip=1)

    result = jitr.run_machine(world.world, REGION, {"certificateId": new_cert})

    assert result["status"] == "SUCCEEDED", result
    assert len(world.world.calls.of("UpdateItem", caller="states:")) >= 2  # the retry happened
    _assert_moved(world, "meter-retry", old_cert, new_cert)


@pytest.mark.slow
def test_a_rerun_after_an_interrupted_rotation_revokes_the_old_certificate(world):
    """The rotation's commit lands and the execution stops there. A re-run finds the row naming
    its certificate (a known device) and, before converging, revokes and detaches what the row
    lists as revoked: the replicator skips rows written in its own region, so nobody else would."""
    old_cert = world.onboard_on_old_ca("meter-int")
    new_cert = _reissue(world, "meter-int")
    world.world.calls.interrupt("UpdateItem", by="states:")
    assert jitr.run_machine(world.world, REGION, {"certificateId": new_cert})["status"] == "ABORTED"
    assert world.status(old_cert) == "ACTIVE"

    rerun = jitr.run_machine(world.world, REGION, {"certificateId": new_cert})
    again = jitr.run_machine(world.world, REGION, {"certificateId": new_cert})

    assert rerun["status"] == "SUCCEEDED", rerun
    assert again["status"] == "SUCCEEDED", again  # revoked and detached already: still fine
    _assert_moved(world, "meter-int", old_cert, new_cert)
    assert world.row("meter-int")["writerRegion"] == REGION


@pytest.fixture(scope="module")
def retiring_graph(local_pki: LocalPki) -> StackGraph:
    """The dev stack as the local run evaluates it, the run's intermediate `retiring`."""
    spec = load_program_stack(PROJECT_DIR, "dev")
    added, _ = journeys.config_overrides(spec.config, spec.project)
    ca_config, _ = local_pki.stack_ca_config()
    ca_config["caCertificates"][0]["state"] = "retiring"
    return evaluate_program(PROJECT_DIR, "dev", config_overrides={**added, **ca_config},
                            drop_keys=("caCertificatePemFile", "caCertificatePem", "caCertificates"))


@pytest.mark.slow
def test_a_replayed_event_for_a_live_device_on_a_retiring_ca_changes_nothing(retiring_graph, local_pki):
    """Its devices still connect, none registers any more: a replayed (DLQ) or hand-started
    event for one of its certificates is not ours to act on. The machine refuses it up front
    (the check no longer trusts that CA, so going on would revoke a working device)."""
    old_pem = local_pki.intermediate_pem
    with open_world(retiring_graph, regions=[REGION], pki=local_pki, capabilities=["jitr"]) as opened:
        iot = opened.client("iot", REGION)
        device = opened.pki.device("meter-old", next_ca=False)
        cert_id = iot.register_certificate(certificatePem=device.pem, caCertificatePem=old_pem,
                                           status="ACTIVE")["certificateId"]
        iot.create_thing(thingName="meter-old")
        iot.attach_thing_principal(thingName="meter-old", principal=seen.cert_arn(REGION, cert_id))
        opened.client("dynamodb", REGION).put_item(TableName=opened.table(seen.INVENTORY), Item={
            "thingName": {"S": "meter-old"}, "certificateId": {"S": cert_id},
            "certificatePem": {"S": device.pem}, "issuer": {"S": "OWN_CA"},
            "caCertificateId": {"S": certificate_id(old_pem)}, "originRegion": {"S": REGION},
            "writerRegion": {"S": REGION}, "status": {"S": "ACTIVE"}, "onboarding": {"S": "JITR"},
            "notAfter": {"S": "2030-01-01T00:00:00Z"}, "version": {"N": "1"},
            "updatedAt": {"S": "2026-01-01T00:00:00Z"}})

        result = jitr.run_machine(opened, REGION, {"certificateId": cert_id})

        assert (result["status"], result["error"]) == ("FAILED", "Jitr.ForeignCertificate")
        assert seen.status(opened, REGION, cert_id) == "ACTIVE"
        assert seen.things_of(opened, REGION, cert_id) == ["meter-old"]
        assert [c.operation for c in opened.calls.of(caller="states:")] == ["DescribeCertificate"]


# --- replication registers with the CA the item names ---------------------------------------

def test_replication_picks_the_ca_by_the_items_ca_id():
    text = replication_definition(region=REGION, partition="aws", account_id=ACCOUNT,
                                  table_name=TABLE, device_policy_name=POLICY,
                                  ca_certificate_pem=NEW_CA.pem, settings=ReplicationSettings(),
                                  previous_ca_certificate_pem=OLD_CA.pem)
    states = json.loads(text)["States"]["ApplyRecordsInOrder"]["ItemProcessor"]["States"]
    choices = states["RegisterCertificate"]["Choices"]
    by_ca = {c["And"][1]["StringEquals"]: c["Next"] for c in choices if "And" in c}
    assert by_ca == {certificate_id(NEW_CA.pem): "RegisterWithOurCa",
                     certificate_id(OLD_CA.pem): "RegisterWithPreviousCa"}
    assert states["RegisterWithOurCa"]["Parameters"]["CaCertificatePem"] == NEW_CA.pem
    assert states["RegisterWithPreviousCa"]["Parameters"]["CaCertificatePem"] == OLD_CA.pem
    assert choices[2] == {"Variable": "$.certificate.issuer", "StringEquals": "OWN_CA",
                          "Next": "UnknownCa"}
    assert states["NoCaId"]["Result"] == certificate_id(NEW_CA.pem)


def test_the_ca_id_is_aws_iots_id(world):
    """What IoT answers for a registered CA is the SHA-256 of its certificate: the id the
    config, the replicator and the report compute offline."""
    assert certificate_id(world.world.pki.intermediate_pem) == world.old_id
    assert world.world.pki.next_intermediate is not None
    new_pem = pki_tool.pem_certs(world.world.pki.next_intermediate.cert).decode()
    assert DeviceCa("x", new_pem, "issuing").certificate_id == world.new_id


# --- the report and the retirement gate --------------------------------------------------------

@pytest.mark.slow
def test_report_lists_devices_still_on_the_old_ca_and_retire_waits_for_none(world, tmp_path):
    from components.edge.cas import DeviceCas

    old_cert = world.onboard_on_old_ca("meter-10")
    pki = world.world.pki
    assert pki.next_intermediate is not None
    stack = ca_rotation.Stack((REGION,), world.world.table(seen.INVENTORY), DeviceCas((
        DeviceCa("ca", pki.intermediate_pem, "previous"),
        DeviceCa("ca2027", pki_tool.pem_certs(pki.next_intermediate.cert).decode(), "issuing"))))

    [entry] = ca_rotation.survey(stack, ["ca"], world.world.client)
    assert (entry.things, entry.usable_certificates) == (["meter-10"], [old_cert])

    _, result = world.connect("meter-10", next_ca=True)
    assert result["status"] == "SUCCEEDED", result
    [entry] = ca_rotation.survey(stack, ["ca"], world.world.client)
    assert entry.remaining == 0


def test_retire_refuses_while_devices_remain_and_prints_the_next_step(monkeypatch, tmp_path, capsys):
    from components.edge.cas import DeviceCas

    cas = DeviceCas((DeviceCa("ca", OLD_CA.pem, "previous"), DeviceCa("ca2027", NEW_CA.pem, "issuing")))
    monkeypatch.setattr(ca_rotation, "load_stack",
                        lambda program, stack: ca_rotation.Stack(("eu-west-1", "us-west-2"), TABLE, cas))
    remaining = {"eu-west-1": 0, "us-west-2": 1}

    def survey(stack, names, clients):
        return [ca_rotation.CaInRegion(r, "ca", "id", things=["t"] * n) for r, n in remaining.items()]

    monkeypatch.setattr(ca_rotation, "survey", survey)
    out = io.StringIO()
    assert ca_rotation.main(["retire", "dev", "--ca", "ca"], out=out, err=out, clients=lambda s, r: None) == 1
    assert "refused: 1 device(s)" in out.getvalue()
    remaining["us-west-2"] = 0
    out = io.StringIO()
    assert ca_rotation.main(["retire", "dev", "--ca", "ca"], out=out, err=out, clients=lambda s, r: None) == 0
    assert "--path 'iot-multi-region:caCertificates[0].state' retiring" in out.getvalue()
    assert ca_rotation.main(["retire", "dev", "--ca", "ca2027"], out=out, err=out, clients=lambda s, r: None) == 2
    assert "issuing CA" in out.getvalue()


def test_the_pki_tool_creates_the_next_intermediate_and_prints_the_overlap_config(tmp_path, capsys):
    from tools import pki

    assert pki.main(["root-ca", "--out-dir", str(tmp_path / "root")]) == 0
    root = ["--root-cert", str(tmp_path / "root" / "root-ca.cert.pem"),
            "--root-key", str(tmp_path / "root" / "root-ca.key")]
    assert pki.main(["intermediate-ca", *root, "--out-dir", str(tmp_path / "a")]) == 0
    current = tmp_path / "a" / "intermediate-ca.cert.pem"
    capsys.readouterr()
    # The same subject as the current CA is refused, and nothing is written.
    assert pki.main(["intermediate-ca", *root, "--out-dir", str(tmp_path / "b"),
                     "--replaces", str(current), "--name", "ca2027"]) != 0
    assert not (tmp_path / "b").exists()
    assert pki.main(["intermediate-ca", *root, "--out-dir", str(tmp_path / "b"),
                     "--replaces", str(current), "--name", "ca2027",
                     "--common-name", "IoT Device Issuing CA 2027", "--stack", "prod"]) == 0
    printed = capsys.readouterr().out
    assert "pulumi config rm caCertificatePemFile -s prod" in printed
    assert f"'caCertificates[0].pemFile' {current}" in printed
    assert "'caCertificates[0].state' previous" in printed
    assert "'caCertificates[1].state' issuing" in printed
    new_pem = (tmp_path / "b" / "intermediate-ca.cert.pem").read_text()
    assert certificate_id(new_pem) != certificate_id(current.read_text())


def test_the_report_without_a_rotation_or_credentials_says_so_in_one_line(monkeypatch):
    """The dev stack has only its issuing CA: nothing to report, said so. With a rotation but no
    AWS credentials: one error line naming the fix, exit 2, no traceback."""
    from botocore.exceptions import NoCredentialsError

    from components.edge.cas import DeviceCas

    out, err = io.StringIO(), io.StringIO()
    assert ca_rotation.main(["report", "dev"], out=out, err=err, clients=lambda s, r: None) == 0
    assert "only its issuing CA" in out.getvalue()

    cas = DeviceCas((DeviceCa("ca", OLD_CA.pem, "previous"), DeviceCa("ca2027", NEW_CA.pem, "issuing")))
    monkeypatch.setattr(ca_rotation, "load_stack",
                        lambda program, stack: ca_rotation.Stack(("eu-west-1",), TABLE, cas))

    def no_credentials(service: str, region: str) -> Any:
        raise NoCredentialsError()

    err = io.StringIO()
    assert ca_rotation.main(["report", "dev"], out=io.StringIO(), err=err, clients=no_credentials) == 2
    assert err.getvalue().startswith("error: no AWS credentials found")
