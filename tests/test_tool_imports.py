"""The operators' tools read names and ids from the stack outputs (tools/stack_outputs.py)
or the one naming module (components/naming.py) - never by evaluating the program - so they
start without Pulumi or pulumi_aws."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tools import stack_outputs
from tools.replication_reconcile import RegionTargets, targets_from_outputs

PROJECT_DIR = Path(__file__).resolve().parent.parent

PROBE = """
import json, sys
import tools.installer, tools.manufacturer, tools.reconcile
stack = tools.manufacturer.Stack.load("dev")
targets, settings = tools.reconcile.load_stack(tools.reconcile.PROJECT_DIR, "dev",
                                               json.loads(sys.argv[1]))
print(json.dumps({"secret": stack.secret_name, "table": stack.provisioning_table,
                  "machine": targets["eu-west-1"].machine_name,
                  "loaded": sorted({m.split(".")[0] for m in sys.modules
                                    if m.split(".")[0] in ("pulumi", "pulumi_aws")})}))
"""


def test_the_tools_load_their_stack_without_pulumi(dev_graph: Any) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(dev_graph.outputs)],
                          cwd=PROJECT_DIR, capture_output=True, text=True, check=True)
    found = json.loads(done.stdout)
    assert found == {"secret": "iotmr-dev/cvm/batch-salts",
                     "table": "iotmr-dev-cvm-provisioning",
                     "machine": "iotmr-dev-eu-west-1-replication", "loaded": []}


def test_the_stack_outputs_hold_what_the_tools_read(dev_graph: Any) -> None:
    for region in ("eu-west-1", "us-west-2"):
        fleet = stack_outputs.capability(dev_graph.outputs, region, "fleetProvisioning")
        assert fleet["templateName"] == f"iotmr-dev-{region}-fleet"
        assert all(fleet[k] for k in ("userPoolId", "userPoolClientId", "identityPoolId"))
        cvm = stack_outputs.capability(dev_graph.outputs, region, "cvm")
        assert cvm["url"] == "https://provision.iot.dev.example.com/registration"
        assert cvm["saltsSecretName"] == "iotmr-dev/cvm/batch-salts"
        tables = stack_outputs.region(dev_graph.outputs, region)["tableNames"]
        assert tables == {"inventory": "iotmr-dev-device-inventory",
                          "deviceData": "iotmr-dev-device-data",
                          "provisioning": "iotmr-dev-cvm-provisioning"}
    assert targets_from_outputs(dev_graph.outputs)["us-west-2"] == RegionTargets(
        "us-west-2", "iotmr-dev-device-inventory", "iotmr-dev-us-west-2-replication",
        "iotmr-dev-device")


def test_outputs_come_from_a_file_or_the_cli_and_say_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(stack_outputs.OutputsError, match="cannot be read"):
        stack_outputs.load("dev", outputs_file=tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(stack_outputs.OutputsError, match="not JSON"):
        stack_outputs.load("dev", outputs_file=tmp_path / "bad.json")
    with pytest.raises(stack_outputs.OutputsError, match="no `regions`"):
        stack_outputs.region({}, "eu-west-1")
    with pytest.raises(stack_outputs.OutputsError, match="does not enable `cvm`"):
        stack_outputs.capability({"regions": {"eu-west-1": {}}}, "eu-west-1", "cvm")


def test_the_installer_takes_its_ids_from_the_stack_outputs(dev_graph: Any,
                                                            tmp_path: Path) -> None:
    from tools import installer

    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(dev_graph.outputs))
    args = installer.parser().parse_args(["claim", "--stack", "dev", "--outputs", str(outputs),
                                          "--region", "us-west-2", "--username", "alice"])
    installer.fill_from_outputs(args)
    fleet = dev_graph.outputs["regions"]["us-west-2"]["fleetProvisioning"]
    assert (args.user_pool_id, args.client_id, args.identity_pool_id, args.template_name) == (
        fleet["userPoolId"], fleet["userPoolClientId"], fleet["identityPoolId"],
        fleet["templateName"])
    args = installer.parser().parse_args(["admin", "allow-serial", "--stack", "dev", "--outputs",
                                          str(outputs), "--region", "eu-west-1",
                                          "--serial", "SN-1"])
    installer.fill_from_outputs(args)
    assert args.table == "iotmr-dev-cvm-provisioning"
    args = installer.parser().parse_args(["admin", "list", "--region", "eu-west-1"])
    with pytest.raises(ValueError, match="give --user-pool-id, or --stack"):
        installer.fill_from_outputs(args)


@pytest.mark.parametrize("tool, argv, code", [
    ("installer", ["admin", "list", "--region", "eu-west-1", "--user-pool-id", "eu-west-1_abc"], 1),
    ("installer", ["admin", "allow-serial", "--region", "eu-west-1", "--table", "t", "--serial",
                   "SN-1"], 1),
    ("manufacturer", ["--stack", "dev", "disable", "DEVICE-1"], 1),
    ("manufacturer", ["--stack", "dev", "revoke", "DEVICE-1"], 1),
    ("reconcile", ["dev", "--outputs", "{outputs}", "--region", "eu-west-1"], 3),
])
def test_an_operator_tool_without_aws_credentials_prints_one_line(
        tool: str, argv: list[str], code: int, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], tmp_path: Path, dev_graph: Any) -> None:
    """An operator without credentials gets the fix in one line, not a traceback."""
    import importlib

    import boto3

    module = importlib.import_module(f"tools.{tool}")
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(dev_graph.outputs))
    argv = [a.replace("{outputs}", str(outputs)) for a in argv]
    # The worker's default boto3 session may hold another test's credentials: start from none.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert module.main(argv, out=io.StringIO()) == code
    err = capsys.readouterr().err
    assert err.startswith("error: no AWS credentials found") and err.count("\n") == 1, err


@pytest.mark.parametrize("endpoint, host", [
    ("http://127.0.0.1:5000", "127.0.0.1:5000"),  # a kept local system: no `sync-` prefix
    (None, "sync-states.eu-west-1.amazonaws.com"),  # AWS: the API's own host prefix
])
def test_the_tools_clients_reach_a_local_endpoint_for_start_sync_execution(
        endpoint: str | None, host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tools.aws_clients import boto3_clients

    class Sent(Exception):
        pass

    for name, value in (("AWS_ENDPOINT_URL", endpoint), ("AWS_ACCESS_KEY_ID", "k"),
                        ("AWS_SECRET_ACCESS_KEY", "s")):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = boto3_clients()("stepfunctions", "eu-west-1")
    seen: list[str] = []

    def capture(request: Any, **_: Any) -> None:
        seen.append(request.url)
        raise Sent

    client.meta.events.register("before-send", capture)
    with pytest.raises(Sent):
        client.start_sync_execution(stateMachineArn="arn:aws:states:eu-west-1:123456789012:"
                                                    "stateMachine:m", input="{}")
    assert seen and seen[0].split("/")[2] == host
