"""tools/manufacturer.py in moto: batches and salts in every region, CSV import (validated first,
conditional, re-runnable), and the operator commands, checked against the real function."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from lambdas.contracts import cvm_device
from lambdas.contracts import fleet_allow_list as allow_list
from lambdas.contracts.inventory import InventoryItem
from tests.support.cvm import LEGACY, REGION, Cvm, new_csr, token
from tools import installer, manufacturer
from tools.harness import StackGraph
from tools.local.emulation.lambdas import LambdaRuntime
from tools.local.journeys import registry as seen
from tools.local.pki_material import LocalPki
from tools.local.world import open_world

OTHER_REGION = "us-west-2"
PROJECT_DIR = Path(__file__).resolve().parent.parent
SECRET_NAME = manufacturer.Stack.load("dev", PROJECT_DIR).secret_name


@pytest.fixture
def project() -> Path:
    return PROJECT_DIR


@pytest.fixture
def world(local_graph: StackGraph, local_pki: LocalPki) -> Iterator[Cvm]:
    """Both regions of the dev stack: the tool writes every region's salts secret."""
    with open_world(local_graph, regions=[REGION, OTHER_REGION], pki=local_pki,
                    capabilities=["cvm"]) as opened:
        yield Cvm(opened)


def run(project: Path, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = manufacturer.main(["--stack", "dev", *argv], project_dir=project, out=out, err=err)
    return status, out.getvalue(), err.getvalue()


def salts(region: str) -> dict[str, Any]:
    text = boto3.client("secretsmanager", region_name=region).get_secret_value(
        SecretId=SECRET_NAME)["SecretString"]
    return dict(json.loads(text)["batches"])


def register(world: Cvm, body: dict[str, Any]) -> int:
    world.world.emulation(LambdaRuntime).cold_start(world.function)  # the salts just written
    return world.call(body)[0]


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n")
    return path


def test_add_batch_writes_every_region_and_never_prints_the_salt(world: Cvm,
                                                                 project: Path) -> None:
    status, out, err = run(project, "add-batch", "B1")
    assert status == 0, err
    assert salts(REGION) == salts(OTHER_REGION)
    salt = salts(REGION)["B1"]["salts"]["1"]
    assert len(salt) == 64 and salt not in out + err
    assert run(project, "add-batch", "B1")[0] == 1  # a second, different salt is refused


def test_a_partial_salt_write_is_repaired_by_the_re_run(world: Cvm, project: Path,
                                                         tmp_path: Path) -> None:
    salt_file = tmp_path / "salt.txt"
    salt_file.write_text("factory-salt\n")
    boto3.client("secretsmanager", region_name=REGION).put_secret_value(SecretId=SECRET_NAME, SecretString=json.dumps(
        {"batches": {"B1": {"current": 1, "salts": {"1": "factory-salt"}}}}))  # only eu-west-1
    status, out, _ = run(project, "add-batch", "B1", "--salt-file", str(salt_file))
    assert status == 0 and f"written: {OTHER_REGION}" in out
    assert salts(OTHER_REGION) == salts(REGION)


def test_conflicting_salts_across_regions_are_refused(world: Cvm, project: Path) -> None:
    for region, salt in ((REGION, "a"), (OTHER_REGION, "b")):
        boto3.client("secretsmanager", region_name=region).put_secret_value(
            SecretId=SECRET_NAME, SecretString=json.dumps(
                {"batches": {"B1": {"current": 1, "salts": {"1": salt}}}}))
    status, _, err = run(project, "rotate-salt", "B1")
    assert status == 1 and "different salts in different regions" in err


def test_bad_rows_are_all_reported_by_line_and_nothing_is_written(world: Cvm, project: Path,
                                                                  tmp_path: Path) -> None:
    assert run(project, "add-batch", "B1")[0] == 0
    salt = salts(REGION)["B1"]["salts"]["1"]
    csv_path = write_csv(tmp_path / "devices.csv", [
        "device_uid,device_uid_2,device_token",
        "good-1,,",
        "bad uid,,",
        f"good-2,,{token('another salt', 'good-2')}",
        "good-1,,",
        f"good-3,MAC+1,{token(salt, 'good-3')}",
        "good-4,,xyz",
        f"good-5,,{token(salt, 'good-5')}",
    ])
    status, out, err = run(project, "import", "B1", str(csv_path))
    assert status == 2
    assert err.splitlines()[1:] == [
        "line 3: device_uid 'bad uid' may only contain a-z A-Z 0-9 : _ -",
        "line 4: device_token does not match the batch salt (firmware built with another salt?)",
        "line 5: device_uid good-1 repeats line 2",
        "line 6: device_uid_2 'MAC+1' must be 1-128 of A-Z a-z 0-9 : _ . -",
        "line 7: device_token is not 64 hex digits",
    ]
    assert "5 bad row(s), nothing was written" in err
    assert world.ddb.scan(TableName=world.world.table(seen.PROVISIONING))["Items"] == []
    # A missing file is named before any region's salts are read.
    reads = len(world.world.calls.of(operation="GetSecretValue"))
    status, _, err = run(project, "import", "B1", str(tmp_path / "missing.csv"))
    assert status == 2 and "missing.csv: not a file" in err
    assert len(world.world.calls.of(operation="GetSecretValue")) == reads


def test_import_is_conditional_re_runnable_and_feeds_the_function(world: Cvm, project: Path,
                                                                   tmp_path: Path) -> None:
    assert run(project, "add-batch", "B1")[0] == 0
    salt = salts(REGION)["B1"]["salts"]["1"]
    rows = ["device_uid,device_uid_2,device_token", "sensor-1,,",
            f"sensor-2,AA:BB:CC,{token(salt, 'sensor-2', 'AA:BB:CC')}"]
    csv_path = write_csv(tmp_path / "devices.csv", rows)

    assert run(project, "import", "B1", str(csv_path), "--dry-run")[0] == 0
    assert world.record("sensor-1") == {}

    status, out, err = run(project, "import", "B1", str(csv_path))
    assert status == 0 and "2 imported, 0 already there, 0 conflict(s)" in out
    assert "importing B1 [" in err and "2/2" in err  # the progress bar
    record = world.record("sensor-2")
    assert record["enabled"] == {"BOOL": True} and record["saltVersion"] == {"N": "1"}
    assert record["batch"] == {"S": "B1"} and record["deviceUid2"] == {"S": "AA:BB:CC"}
    assert record["registrationState"] == {"S": "UNREGISTERED"}
    assert cvm_device.problems(record) == []  # the import keeps the record's contract

    status, out, _ = run(project, "import", "B1", str(csv_path))  # the re-run
    assert status == 0 and "0 imported, 2 already there" in out

    assert run(project, "add-batch", "B2")[0] == 0
    status, out, _ = run(project, "import", "B2", str(write_csv(
        tmp_path / "other.csv", ["device_uid", "sensor-1", "sensor-9"])))
    assert status == 1 and "line 2: device_uid sensor-1 already exists" in out
    assert world.record("sensor-1")["batch"] == {"S": "B1"}  # not overwritten

    _, csr = new_csr()
    assert register(world, {"device_uid": "sensor-2", "device_uid_2": "AA:BB:CC", "csr": csr,
                     "device_token": token(salt, "sensor-2", "AA:BB:CC")}) == 200


def test_factory_salt_file_checks_tokens_without_secrets_manager(world: Cvm, project: Path,
                                                                 tmp_path: Path) -> None:
    salt_file = tmp_path / "salt.txt"
    salt_file.write_text("line-7-salt\n")
    csv_path = write_csv(tmp_path / "devices.csv", [
        "device_uid,device_token", f"dev-1,{token('line-7-salt', 'dev-1')}"])
    status, out, _ = run(project, "import", "B7", str(csv_path), "--salt-file", str(salt_file))
    assert status == 0 and "1 imported" in out


def test_disable_and_enable_gate_registration(world: Cvm, project: Path,
                                              tmp_path: Path) -> None:
    assert run(project, "add-batch", LEGACY)[0] == 0
    salt = salts(REGION)[LEGACY]["salts"]["1"]
    run(project, "import", LEGACY, str(write_csv(tmp_path / "d.csv", ["device_uid", "old-1"])))
    request = {"device_uid": "old-1", "device_token": token(salt, "old-1")}

    status, out, _ = run(project, "disable", "--batch", LEGACY)
    assert status == 0 and "1 device(s) disabled" in out
    assert world.record("old-1")["enabled"] == {"BOOL": False}
    assert register(world, request) == 403
    assert run(project, "disable", "nobody")[0] == 1
    assert run(project, "enable", "old-1")[0] == 0
    assert register(world, request) == 200


def test_rotate_salt_moves_unregistered_devices_to_the_new_salt(world: Cvm, project: Path,
                                                                 tmp_path: Path) -> None:
    assert run(project, "add-batch", LEGACY)[0] == 0
    old = salts(REGION)[LEGACY]["salts"]["1"]
    run(project, "import", LEGACY, str(write_csv(tmp_path / "d.csv",
                                                     ["device_uid", "early", "late"])))
    assert register(world, {"device_uid": "early", "device_token": token(old, "early")}) == 200

    status, out, _ = run(project, "rotate-salt", LEGACY, "--rekey-unregistered")
    assert status == 0 and "1 unregistered device(s)" in out
    new = salts(OTHER_REGION)[LEGACY]["salts"]["2"]
    assert salts(REGION)[LEGACY]["current"] == 2 and new != old
    assert world.record("early")["saltVersion"] == {"N": "1"}  # registered: untouched
    assert register(world, {"device_uid": "late", "device_token": token(old, "late")}) == 403
    assert register(world, {"device_uid": "late", "device_token": token(new, "late")}) == 200


def test_revoke_is_final_here_and_through_the_inventory(world: Cvm, project: Path,
                                                        tmp_path: Path) -> None:
    assert run(project, "add-batch", LEGACY)[0] == 0
    salt = salts(REGION)[LEGACY]["salts"]["1"]
    run(project, "import", LEGACY, str(write_csv(tmp_path / "d.csv", ["device_uid", "d-1"])))
    request = {"device_uid": "d-1", "device_token": token(salt, "d-1")}
    assert register(world, request) == 200

    assert world.policy_targets()
    assert run(project, "revoke", "d-1")[0] == 0
    [certificate] = world.certificates()
    assert certificate["status"] == "REVOKED" and world.thing_principals("d-1") == []
    assert world.policy_targets() == []  # as the machine leaves it in every other region
    item = world.inventory("d-1")
    assert (item["status"], item["version"], item["writerRegion"]) == (
        {"S": "REVOKED"}, {"N": "2"}, {"S": REGION})
    assert InventoryItem.from_attribute_values(item).status == "REVOKED"  # contract kept
    assert cvm_device.problems(world.record("d-1")) == []
    assert register(world, request) == 403
    # REVOKED is final: enabling the record again is refused and changes nothing.
    status, out, _ = run(project, "enable", "d-1")
    assert status == 1 and "unknown or revoked device d-1" in out
    assert world.record("d-1")["enabled"] == {"BOOL": False}


def test_revoke_finds_the_inventory_item_when_the_record_here_does_not_show_the_registration(
        world: Cvm, project: Path, tmp_path: Path) -> None:
    """The device registered in another region moments ago: its inventory item has arrived
    here, its record (replicated on its own) not yet. The thing is named by the uid, so the
    revoke still reaches the item and the certificate."""
    assert run(project, "add-batch", LEGACY)[0] == 0
    salt = salts(REGION)[LEGACY]["salts"]["1"]
    run(project, "import", LEGACY, str(write_csv(tmp_path / "d.csv", ["device_uid", "d-9"])))
    assert register(world, {"device_uid": "d-9", "device_token": token(salt, "d-9")}) == 200
    world.ddb.update_item(TableName=world.world.table(seen.PROVISIONING), Key={"deviceUid": {"S": "d-9"}},
                          UpdateExpression="SET registrationState = :u REMOVE thingName, certificateId",
                          ExpressionAttributeValues={":u": {"S": "UNREGISTERED"}})  # the record's older version

    status, out, _ = run(project, "revoke", "d-9")
    assert status == 0 and "revoked (certificate" in out, out
    assert world.inventory("d-9")["status"] == {"S": "REVOKED"}
    assert [c["status"] for c in world.certificates()] == ["REVOKED"]


def test_reissue_revokes_and_lets_the_device_register_again(world: Cvm, project: Path,
                                                            tmp_path: Path) -> None:
    assert run(project, "add-batch", LEGACY)[0] == 0
    salt = salts(REGION)[LEGACY]["salts"]["1"]
    run(project, "import", LEGACY, str(write_csv(tmp_path / "d.csv", ["device_uid", "d-2"])))
    request = {"device_uid": "d-2", "device_token": token(salt, "d-2")}
    assert register(world, request) == 200
    old = world.inventory("d-2")["certificateId"]["S"]

    status, out, _ = run(project, "reissue", "d-2")
    assert status == 0, out
    assert world.policy_targets() == []
    item = world.inventory("d-2")
    assert (item["status"], item["version"]) == ({"S": "INACTIVE"}, {"N": "2"})
    assert item["revokedCertificateIds"] == {"SS": [old]}
    assert InventoryItem.from_attribute_values(item).revoked_certificate_ids == {old}
    assert world.record("d-2")["reopenedFrom"] == {"S": old}
    assert cvm_device.problems(world.record("d-2")) == []

    assert register(world, request) == 200
    item = world.inventory("d-2")
    assert (item["status"], item["version"]) == ({"S": "ACTIVE"}, {"N": "3"})
    statuses = sorted(c["status"] for c in world.certificates())
    assert statuses == ["ACTIVE", "REVOKED"]
    assert run(project, "reissue", "nobody")[0] == 2


def test_revoke_refuses_to_build_on_an_item_that_breaks_the_contract(
        world: Cvm, project: Path, tmp_path: Path) -> None:
    """An operator's change is the next version of a *valid* item, or nothing."""
    assert run(project, "add-batch", LEGACY)[0] == 0
    salt = salts(REGION)[LEGACY]["salts"]["1"]
    run(project, "import", LEGACY, str(write_csv(tmp_path / "d.csv", ["device_uid", "d-3"])))
    assert register(world, {"device_uid": "d-3", "device_token": token(salt, "d-3")}) == 200
    world.ddb.update_item(TableName=world.world.table(seen.INVENTORY), Key={"thingName": {"S": "d-3"}},
                          UpdateExpression="REMOVE writerRegion")
    status, _, err = run(project, "revoke", "d-3")
    assert status == 1 and "writerRegion: missing" in err and "Traceback" not in err
    assert "writerRegion" not in world.inventory("d-3")  # nothing written over it


@pytest.mark.parametrize("prefix", ["", "thing_", "p" * 32])
def test_the_tool_imports_exactly_the_uids_the_function_accepts(prefix: str) -> None:
    """One contract (lambdas/contracts/things.py): the prefix counts in the thing name's
    128 characters for the tool as for the function."""
    from lambdas.cvm_registration.logic.errors import BadField
    from lambdas.cvm_registration.logic.registration import thing_name_for
    from lambdas.cvm_registration.config import Config

    config = Config(region=REGION, provisioning_table="p", inventory_table="i",
                    salts_secret_id="s", device_policy_name="d", device_endpoint="e",
                    root_ca_bundle="", thing_name_prefix=prefix)
    for uid in ["a" * n for n in range(90, 131)] + ["bad uid", "x+y", "ok:uid_1-2"]:
        rows, problems = manufacturer.validate_csv(io.StringIO(f"device_uid\n{uid}\n"), None,
                                                   prefix)
        try:
            thing_name_for(config, uid)
            accepted = True
        except BadField:
            accepted = False
        assert bool(rows) == accepted and bool(problems) == (not accepted), (prefix, uid)
        if not accepted and len(uid) > 100:
            assert "prefix" in problems[0] or not prefix


@pytest.mark.parametrize("command", [["revoke"], ["reissue"], ["disable"], ["enable"]])
def test_a_device_command_never_writes_an_item_that_is_not_a_device_record(
        world: Cvm, project: Path, command: list[str]) -> None:
    """The table also holds the fleet allow-list (keys `fleet#...`): a uid naming one of its
    items is refused by the uid rule, naming it, and the item keeps its contract."""
    installer.allow_serial(world.world.resource("dynamodb", REGION).Table(world.world.table(seen.PROVISIONING)),
                           "SN-1", now=dt.datetime.now(dt.timezone.utc))
    key = allow_list.entry_key("SN-1")
    before = world.record(key)

    status, _, err = run(project, *command, key)

    assert status == 2 and "device_uid" in err and "may only contain" in err and "Traceback" not in err
    assert world.record(key) == before


def test_a_registration_that_commits_while_revoke_runs_is_revoked_as_well(world: Cvm, project: Path,
                                                                        tmp_path: Path) -> None:
    """The device registers between what the tool read and what it wrote: the revocation still
    reaches its certificate and inventory item (it acts on the record as its write left it)."""
    assert run(project, "add-batch", LEGACY)[0] == 0
    salt = salts(REGION)[LEGACY]["salts"]["1"]
    run(project, "import", LEGACY, str(write_csv(tmp_path / "d.csv", ["device_uid", "d-5"])))
    request = {"device_uid": "d-5", "device_token": token(salt, "d-5")}
    answers: list[int] = []
    world.world.calls.before("UpdateItem", lambda params: answers.append(register(world, request)),
                             when=lambda params: params.get("ExpressionAttributeValues", {}).get(":r")
                             == {"S": "REVOKED"})

    status, out, err = run(project, "revoke", "d-5")

    assert answers == [200] and status == 0, out + err
    [certificate] = world.certificates()
    assert certificate["status"] == "REVOKED"
    assert world.inventory("d-5")["status"] == {"S": "REVOKED"}
    assert cvm_device.problems(world.record("d-5")) == []
    # A device that does not exist is named, and no partial record is written for it.
    status, _, err = run(project, "revoke", "nobody")
    assert status == 2 and "unknown device nobody" in err and world.record("nobody") == {}


def test_an_interrupted_import_says_it_resumes_and_does(world: Cvm, project: Path, tmp_path: Path) -> None:
    assert run(project, "add-batch", "B1")[0] == 0
    csv_path = write_csv(tmp_path / "d.csv", ["device_uid", "i-1", "i-2", "i-3"])

    def interrupt(params: Any) -> None:  # Ctrl-C as the second record is written
        raise KeyboardInterrupt

    world.world.calls.before("PutItem", interrupt, when=lambda params: params.get("Item", {}).get(
        "deviceUid") == {"S": "i-2"})
    status, _, err = run(project, "import", "B1", str(csv_path))
    assert status == 130 and "the same command resumes" in err and "Traceback" not in err
    status, out, _ = run(project, "import", "B1", str(csv_path))
    assert status == 0 and "2 imported, 1 already there" in out


def test_a_revoke_whose_inventory_write_answer_was_lost_succeeds(world: Cvm, project: Path,
                                                                 tmp_path: Path) -> None:
    """The write lands, its answer is lost, the SDK's retry meets its own condition (the
    version moved): the tool recognises its own item instead of reporting a conflict."""
    assert run(project, "add-batch", LEGACY)[0] == 0
    salt = salts(REGION)[LEGACY]["salts"]["1"]
    run(project, "import", LEGACY, str(write_csv(tmp_path / "d.csv", ["device_uid", "d-6"])))
    assert register(world, {"device_uid": "d-6", "device_token": token(salt, "d-6")}) == 200
    inventory_table = world.world.table(seen.INVENTORY)

    def lands_first(params: Any) -> None:  # the first attempt, whose answer never came back
        world.ddb.put_item(**params)

    world.world.calls.before("PutItem", lands_first, when=lambda params: params.get("TableName") == inventory_table)
    status, out, err = run(project, "revoke", "d-6")
    assert status == 0 and "changed while this ran" not in err, out + err
    assert world.inventory("d-6")["status"] == {"S": "REVOKED"}


def test_an_unknown_stack_and_a_binary_salt_file_get_one_line(project: Path, tmp_path: Path) -> None:
    """Both were tracebacks (StackFileError with exit 1, UnicodeDecodeError); the documented
    status for invalid input is 2. Neither reaches AWS."""
    out, err = io.StringIO(), io.StringIO()
    assert manufacturer.main(["--stack", "nosuch", "add-batch", "B1"], project_dir=project,
                             out=out, err=err) == 2
    assert err.getvalue().startswith("error: ") and "no stack named 'nosuch'" in err.getvalue()
    assert len(err.getvalue().splitlines()) == 1 and "Traceback" not in err.getvalue()

    binary = tmp_path / "salt.bin"
    binary.write_bytes(b"\xff\xfe\x00salt")
    status, _, err_text = run(project, "add-batch", "B1", "--salt-file", str(binary))
    assert status == 2
    assert err_text == f"error: {binary}: the salt file is not UTF-8 text; write the salt on one line\n"
