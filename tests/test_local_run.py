"""`python -m tools.local`: the stack's whole system, run locally, proves the wiring.

The end-to-end tests call the command's main function in-process: PKI, evaluation, the
policy pack, a moto server, the declared resources materialised in it, the emulations and
the journeys. Breaking a wire in a copy of the resource graph (every wire a journey module
registers) must make its journey fail. Small unit tests pin the emulations' semantics.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from components.edge.device_policy import device_policy_document
from components.iam import service_trust_policy
from tools.harness import StackGraph
from tools.local import journeys
from tools.local.cli import main
from tools.local.emulation.lambdas import load_handler
from tools.local.emulation.policy_eval import allows
from tools.local.emulation.rules_engine import UnsupportedSql, topic_filter, topic_matches
from tools.local.graph_edit import with_inputs
from tools.local.materialise import short_type
from tools.local.runner import RunOptions, run
from tools.local.system import Resolver
from tests.support.stacks import configured_regions

ACCOUNT = "123456789012"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
journeys.load_modules()


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["--json", "--quiet", *args])
    return code, json.loads(capsys.readouterr().out)


def steps(report: dict[str, Any], journey: str) -> list[dict[str, Any]]:
    return next(j for j in report["journeys"] if j["name"] == journey)["steps"]


def assert_closed(endpoint: str) -> None:
    url = urlparse(endpoint)
    with pytest.raises(OSError), socket.create_connection((url.hostname, url.port), timeout=1):
        pass


def leftover_threads(before: set[threading.Thread]) -> list[str]:
    """Threads the run started that are still alive (after a short grace period). The
    harness's Pulumi runtime keeps idle executor threads (`asyncio_*`): not the run's."""
    deadline = time.monotonic() + 5
    while True:
        alive = [t.name for t in set(threading.enumerate()) - before
                 if t.is_alive() and not t.name.startswith("asyncio_")]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


# --- end to end --------------------------------------------------------------------------

@pytest.mark.slow
def test_the_dev_stack_runs_end_to_end(capsys: pytest.CaptureFixture[str],
                                       dev_graph: StackGraph) -> None:
    before = set(threading.enumerate())
    code, report = run_json(capsys)

    assert code == 0, json.dumps(report, indent=1)
    assert report["ok"] and not report["errors"] and not report["warnings"]
    regions = configured_regions("dev")
    assert report["regions"] == regions  # primary first
    assert report["policy"]["mandatory"] == 0

    # Every declared resource of these types is in the server, per region.
    for region in regions:
        declared = Counter(short_type(r.type) for r in dev_graph.custom_resources()
                           if r.region == region)
        for kind in ("iot caCertificate", "iot topicRule", "sfn stateMachine", "sqs queue",
                     "iot policy", "cloudwatch logGroup"):
            assert report["materialised"][region][kind] == declared[kind] > 0, kind
        tables = [t for t in dev_graph.of_type("aws:dynamodb/table:Table")
                  if region == t.region or region in [r["regionName"] for r in t.inputs["replicas"]]]
        assert report["materialised"][region]["dynamodb table"] == len(tables) > 0

    assert [s["outcome"] for s in steps(report, "pki")] == ["pass"] * (3 + len(regions))

    jitr = steps(report, "jitr")
    for region in regions:
        others = [r for r in regions if r != region]
        passed = {s["title"] for s in jitr if s["outcome"] == "pass" and s["region"] == region}
        assert {"the JITR execution succeeds", "the device can connect as its thing",
                "certificate ACTIVE, thing attached exclusively, device policy attached"} <= passed
        for other in others:
            replicated = next(s for s in jitr if s["title"] == f"the row of jitr-{region} is "
                                                               f"replicated to {other}")
            assert replicated["outcome"] == "pass" and replicated["region"] == other
            usable = next(s for s in jitr if s["title"].startswith(f"jitr-{region} usable in {other}"))
            # Replication does not exist yet: pending, never a pass.
            assert usable["outcome"] == "pending" and "replication" in usable["detail"]
    assert not [s for s in jitr if s["outcome"] == "fail"]

    violation = steps(report, "policy-violation")
    assert [s["outcome"] for s in violation] == ["pass", "pass"]
    assert "before none" in violation[1]["checked"]

    assert_closed(report["endpoint"])
    assert leftover_threads(before) == []


@pytest.mark.slow
@pytest.mark.parametrize("wire", sorted(journeys.WIRES))
def test_breaking_a_wire_fails_its_journey(capsys: pytest.CaptureFixture[str], wire: str) -> None:
    broken = journeys.WIRES[wire]

    code, report = run_json(capsys, "--journey", broken.journey, "--break", wire)

    assert code == 1
    assert report["broken_wires"] == [wire] and not report["errors"]
    (journey,) = report["journeys"]
    assert journey["name"] == broken.journey and journey["outcome"] == "fail"
    failed = [s for s in journey["steps"] if s["outcome"] == "fail"]
    assert len(failed) == 1 and failed[0]["detail"]
    assert any(s["outcome"] == "pass" for s in journey["steps"])  # it got as far as the wire


@pytest.mark.slow
def test_interrupt_tears_everything_down() -> None:
    """Ctrl-C (here: while the server is held up, as with --keep) stops server and threads."""
    before = set(threading.enumerate())
    seen: dict[str, str] = {}

    def interrupt(report: Any, system: Any) -> None:
        seen["endpoint"] = system.endpoint
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(RunOptions(journey="pki", regions=configured_regions("dev")[:1]), hold=interrupt)

    assert_closed(seen["endpoint"])
    assert leftover_threads(before) == []


def test_a_mandatory_violation_stops_the_run_before_the_server() -> None:
    report = run(RunOptions(stack="test", project_dir=FIXTURES / "insecure_program"))

    assert not report.ok
    assert report.policy is not None and report.policy.mandatory > 0
    assert "mandatory policy violations" in report.errors[0]
    assert report.endpoint == "" and report.journeys == []


def test_unknown_region_is_a_setup_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quiet", "--regions", "eu-west-1,mars-east-1"]) == 2
    assert "mars-east-1 not in the stack's regions" in capsys.readouterr().err


# --- the emulations' semantics -----------------------------------------------------------

def test_rules_engine_reads_the_from_topic_and_refuses_what_it_cannot_run() -> None:
    assert topic_filter("SELECT * FROM '$aws/events/certificates/registered/abc'") == \
        "$aws/events/certificates/registered/abc"
    for sql in ("SELECT certificateId FROM 'a/b'", "SELECT * FROM 'a/b' WHERE x = 1"):
        with pytest.raises(UnsupportedSql):
            topic_filter(sql)
    assert topic_matches("a/+/c", "a/b/c") and topic_matches("a/#", "a/b/c")
    assert not topic_matches("a/+", "a/b/c") and not topic_matches("a/b", "a/b/c")
    assert not topic_matches("$aws/events/certificates/registered/abc",
                             "$aws/events/certificates/registered/abd")


def test_trust_policy_admits_only_the_declared_service_and_source() -> None:
    rule = f"arn:aws:iot:eu-west-1:{ACCOUNT}:rule/jitr"
    trust = service_trust_policy("iot.amazonaws.com", ACCOUNT, rule)
    context = {"aws:SourceAccount": ACCOUNT, "aws:SourceArn": rule}

    assert allows([trust], "sts:AssumeRole", None, context=context,
                  principal_service="iot.amazonaws.com")
    assert not allows([trust], "sts:AssumeRole", None, context={**context, "aws:SourceArn": rule + "2"},
                      principal_service="iot.amazonaws.com")
    assert not allows([trust], "sts:AssumeRole", None, context=context,
                      principal_service="states.amazonaws.com")
    assert not allows([trust], "sts:AssumeRole", None, context={"aws:SourceArn": rule},
                      principal_service="iot.amazonaws.com")


def test_device_policy_lets_a_device_connect_only_as_its_attached_thing() -> None:
    policy = device_policy_document("iotmr", "aws", "eu-west-1", ACCOUNT)
    client = f"arn:aws:iot:eu-west-1:{ACCOUNT}:client/sensor-1"
    attached = {"iot:Connection.Thing.IsAttached": "true",
                "iot:Connection.Thing.ThingName": "sensor-1"}

    assert allows([policy], "iot:Connect", client, context=attached)
    assert not allows([policy], "iot:Connect", client,
                      context={"iot:Connection.Thing.IsAttached": "false"})
    assert not allows([policy], "iot:Connect", client.replace("sensor-1", "sensor-2"),
                      context=attached)


def test_resolver_translates_declared_identifiers_inside_values() -> None:
    resolver = Resolver()
    resolver.learn("ca-1234", "f00d")
    resolver.learn("arn:aws:iot:eu-west-1:1:cacert/ca-1234", "arn:real")
    value = {"sql": "SELECT * FROM 'x/ca-1234'", "list": ["arn:aws:iot:eu-west-1:1:cacert/ca-1234"]}

    assert resolver(value) == {"sql": "SELECT * FROM 'x/f00d'", "list": ["arn:real"]}


def test_graph_edits_leave_the_evaluated_graph_untouched(dev_graph: StackGraph) -> None:
    group = dev_graph.of_type("aws:cloudwatch/logGroup:LogGroup")[0]
    key = group.inputs["kmsKeyId"]

    def unencrypted(inputs: dict[str, Any]) -> dict[str, Any]:
        inputs.pop("kmsKeyId")
        return inputs

    copy = with_inputs(dev_graph, group, unencrypted)

    assert "kmsKeyId" not in copy.named(group.name).inputs
    assert "kmsKeyId" not in copy.named(group.name).outputs
    assert dev_graph.named(group.name).inputs["kmsKeyId"] == key
    assert len(copy.resources) == len(dev_graph.resources)


def test_each_function_gets_its_own_copy_of_its_handler_module() -> None:
    import sys

    from lambdas.jitr_certificate_check import app

    first = load_handler("jitr_certificate_check.app.handler")
    second = load_handler("jitr_certificate_check.app.handler")

    assert first is not second and first.__module__ == second.__module__ == app.__name__
    assert sys.modules[app.__name__] is app  # the tests' own import is left alone
    with pytest.raises(ImportError, match="Runtime.ImportModuleError"):
        load_handler("no_such_package.app.handler")
