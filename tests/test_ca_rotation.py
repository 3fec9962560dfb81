"""CA rotation end to end: the config, what every region declares during the overlap, the
JITR path that moves a re-issued device to the issuing CA (the real ASL, executed in moto),
replication choosing the CA an item names, and the report/retire tool (moto)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from components.edge.cas import DeviceCa, certificate_id
from components.jitr.component import state_machine_definition
from components.replication.component import state_machine_definition as replication_definition
from components.replication.settings import ReplicationSettings
from lambdas.jitr_certificate_check import app as check_app
from tests.support.certificates import Issued, issue
from tests.support.faithful_iot import faithful_iot
from tests.support.sfn_adapter import SfnAdapter
from tools import ca_rotation
from tools.harness import StackGraph, evaluate_program

REGION = "eu-west-1"
ACCOUNT = "123456789012"
TABLE = "iotmr-dev-device-inventory"
POLICY = "iotmr-test-device"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:iotmr-test-jitr-check"
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
class World:
    iot: Any
    dynamodb: Any
    sfn: Any
    adapter: SfnAdapter
    machine_arn: str
    old_id: str
    new_id: str
    runs: int = 0

    def onboard_on_old_ca(self, thing: str) -> tuple[Issued, str]:
        """A device the previous CA issued, registered as JITR leaves it (row version 1)."""
        device = issue(thing, OLD_CA)
        cert_id = self.register(device, OLD_CA)
        assert self.run(cert_id)["status"] == "SUCCEEDED"
        return device, cert_id

    def register(self, device: Issued, ca: Issued) -> str:
        return str(self.iot.register_certificate(certificatePem=device.pem, caCertificatePem=ca.pem,
                                                 status="PENDING_ACTIVATION")["certificateId"])

    def run(self, certificate_id: str) -> dict[str, Any]:
        self.runs += 1
        execution = self.sfn.start_execution(
            stateMachineArn=self.machine_arn, name=f"rotation-{self.runs}",
            input=json.dumps({"certificateId": certificate_id}))["executionArn"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            described = self.sfn.describe_execution(executionArn=execution)
            if described["status"] != "RUNNING":
                return dict(described)
            time.sleep(0.02)
        raise AssertionError("execution still running")

    def row(self, thing: str) -> dict[str, Any]:
        item = self.dynamodb.get_item(TableName=TABLE, Key={"thingName": {"S": thing}},
                                      ConsistentRead=True)["Item"]
        return {k: next(iter(v.values())) for k, v in item.items()}

    def status(self, certificate_id: str) -> str:
        return str(self.iot.describe_certificate(certificateId=certificate_id)[
            "certificateDescription"]["status"])

    def principals(self, thing: str) -> list[str]:
        return sorted(p.rsplit("/", 1)[1] for p in
                      self.iot.list_thing_principals(thingName=thing)["principals"])


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION, "POWERTOOLS_TRACE_DISABLED": "true",
                       "POWERTOOLS_METRICS_NAMESPACE": "test"}.items():
        monkeypatch.setenv(key, value)
    # What JITR's check Lambda gets during the overlap: both CAs.
    monkeypatch.setenv("CA_CERTIFICATE_PEM", NEW_CA.pem + OLD_CA.pem)
    config = {"stepfunctions": {"execute_state_machine": True}, "iot": {"use_valid_cert": True}}
    with mock_aws(config=config), faithful_iot():  # type: ignore[call-overload]
        iot = boto3.client("iot", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        ids = [iot.register_ca_certificate(caCertificate=ca.pem, setAsActive=True,
                                           allowAutoRegistration=True)["certificateId"]
               for ca in (OLD_CA, NEW_CA)]
        iot.create_policy(policyName=POLICY, policyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect",
                                                   "Resource": "*"}]}))
        dynamodb.create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "thingName", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "thingName", "AttributeType": "S"}])
        definition = state_machine_definition(
            region=REGION, ca_certificate_id=ids[1], previous_ca_certificate_id=ids[0],
            check_function_arn=FUNCTION_ARN, table_name=TABLE, device_policy_name=POLICY,
            retry_interval_seconds=1, retry_max_attempts=2)
        adapter = SfnAdapter({FUNCTION_ARN: check_app.handler})
        with adapter.active():
            arn = sfn.create_state_machine(
                name="iotmr-test-jitr", definition=definition, type="STANDARD",
                roleArn=f"arn:aws:iam::{ACCOUNT}:role/x")["stateMachineArn"]
            yield World(iot, dynamodb, sfn, adapter, arn, ids[0], ids[1])


@pytest.mark.slow
def test_a_device_reissued_under_the_issuing_ca_moves_and_its_old_certificate_is_revoked(world):
    _, old_cert = world.onboard_on_old_ca("meter-7")
    assert world.row("meter-7")["caCertificateId"] == world.old_id

    new_cert = world.register(issue("meter-7", NEW_CA), NEW_CA)
    result = world.run(new_cert)

    assert result["status"] == "SUCCEEDED", result
    row = world.row("meter-7")
    assert (row["certificateId"], row["caCertificateId"], row["version"], row["writerRegion"]) == (
        new_cert, world.new_id, "2", REGION)
    assert row["revokedCertificateIds"] == [old_cert]
    assert world.status(new_cert) == "ACTIVE" and world.status(old_cert) == "REVOKED"
    assert world.principals("meter-7") == [new_cert]
    [update] = world.adapter.calls_to("dynamodb", "updateItem")
    assert update.parameters["ConditionExpression"] == (
        "#version = :expected AND certificateId = :oldId AND #status = :active")


@pytest.mark.slow
def test_two_certificates_of_one_ca_are_still_a_conflict(world):
    """A clone under the previous CA, and a second certificate under the issuing CA for a
    device already moved: neither is a rotation."""
    _, old_cert = world.onboard_on_old_ca("meter-8")
    clone = world.register(issue("meter-8", OLD_CA), OLD_CA)
    result = world.run(clone)
    assert result["status"] == "FAILED" and "CertificateConflict" in result.get("error", "") + result.get("cause", "")
    assert world.status(clone) == "INACTIVE" and world.status(old_cert) == "ACTIVE"

    moved = world.register(issue("meter-8", NEW_CA), NEW_CA)
    assert world.run(moved)["status"] == "SUCCEEDED"
    second = world.register(issue("meter-8", NEW_CA), NEW_CA)
    assert world.run(second)["status"] == "FAILED"
    assert world.status(second) == "INACTIVE" and world.status(moved) == "ACTIVE"
    assert world.row("meter-8")["certificateId"] == moved


@pytest.mark.slow
def test_a_row_that_changed_before_the_commit_refuses_the_rotation(world):
    _, old_cert = world.onboard_on_old_ca("meter-9")
    new_cert = world.register(issue("meter-9", NEW_CA), NEW_CA)

    def operator_disables(_: dict[str, Any]) -> None:
        world.dynamodb.update_item(
            TableName=TABLE, Key={"thingName": {"S": "meter-9"}},
            UpdateExpression="SET #s = :i, #v = :v",
            ExpressionAttributeNames={"#s": "status", "#v": "version"},
            ExpressionAttributeValues={":i": {"S": "INACTIVE"}, ":v": {"N": "2"}})

    world.adapter.before("dynamodb", "updateItem", operator_disables)
    result = world.run(new_cert)

    assert result["status"] == "FAILED"
    assert world.status(new_cert) == "INACTIVE" and world.status(old_cert) == "ACTIVE"
    assert world.row("meter-9")["certificateId"] == old_cert


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
    assert certificate_id(OLD_CA.pem) == world.old_id
    assert DeviceCa("x", NEW_CA.pem, "issuing").certificate_id == world.new_id


# --- the report and the retirement gate --------------------------------------------------------

@pytest.mark.slow
def test_report_lists_devices_still_on_the_old_ca_and_retire_waits_for_none(world, tmp_path):
    _, old_cert = world.onboard_on_old_ca("meter-10")
    stack = ca_rotation.Stack(("eu-west-1",), TABLE, __import__(
        "components.edge.cas", fromlist=["DeviceCas"]).DeviceCas((
            DeviceCa("ca", OLD_CA.pem, "previous"), DeviceCa("ca2027", NEW_CA.pem, "issuing"))))

    def clients(service: str, region: str) -> Any:
        return {"iot": world.iot, "dynamodb": world.dynamodb}[service]

    [entry] = ca_rotation.survey(stack, ["ca"], clients)
    assert (entry.things, entry.usable_certificates) == (["meter-10"], [old_cert])

    world.run(world.register(issue("meter-10", NEW_CA), NEW_CA))
    [entry] = ca_rotation.survey(stack, ["ca"], clients)
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
