"""`python -m tools.local`: the stack's whole system, run locally, proves the wiring.

The end-to-end tests call the command's main function in-process: PKI, evaluation, the
policy pack, a moto server, the declared resources materialised in it, the emulations and
the journeys. Breaking a wire in a copy of the resource graph (every wire a journey module
registers) must make its journey fail. Small unit tests pin the emulations' semantics.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.support.stacks import configured_regions
from tools.harness import GLOBAL, StackGraph
from tools.local import journeys
from tools.local import cli, pki_material
from tools.local.cli import main
from tools.local.emulation.lambdas import load_handler
from tools.local.emulation.streams import matches
from tools.local.graph_edit import with_inputs
from tools.local.journeys import JourneyRun, JourneyStopped, shown
from tools.local.materialise import short_type
from tools.local.pki_material import LocalPki
from tools.local.report import JourneyResult, Progress, RunReport
from tools.local.runner import RunOptions, run_journeys, run
from tools.local.world import CONVERGE_SECONDS, Resolver, World, capability_names, open_world

FIXTURES = Path(__file__).resolve().parent / "fixtures"
journeys.load_modules()


def run_json(pki: LocalPki, journey: str | None = None, *breaks: str,
             converge_seconds: float = CONVERGE_SECONDS) -> tuple[int, dict[str, Any]]:
    """The local run with the session's PKI (so the runs share one evaluation of the stack)."""
    report = run(RunOptions(journey=journey, breaks=list(breaks), pki=pki, converge_seconds=converge_seconds))
    return (0 if report.ok else 1), json.loads(report.to_json())


def steps(report: dict[str, Any], journey: str) -> list[dict[str, Any]]:
    return next(j for j in report["journeys"] if j["name"] == journey)["steps"]


def assert_usable_elsewhere(journey_steps: list[dict[str, Any]], title: str,
                            replication: bool) -> None:
    """The device works in the other region: a pass with the replication capability, pending
    without it (never a pass)."""
    step = next(s for s in journey_steps if s["title"].startswith(title))
    if replication:
        assert step["outcome"] == "pass", step
    else:
        assert step["outcome"] == "pending" and "replication" in step["detail"], step


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
@pytest.mark.browser
@pytest.mark.usefixtures("local_graph")  # the run uses its evaluation and policy report
def test_the_dev_stack_runs_end_to_end(local_pki: LocalPki, dev_graph: StackGraph, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    before = set(threading.enumerate())
    # Python's temporary files of the run in a folder of their own: the run leaves none behind
    # (the hand-over file the browser downloads holds a claim's private key).
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    code, report = run_json(local_pki)

    assert code == 0, json.dumps(report, indent=1)
    assert report["ok"] and not report["errors"] and not report["warnings"]
    # What the report says it checked reads as prose: no Python reprs of lists, dicts or None.
    reprs = [s["checked"] for j in report["journeys"] for s in j["steps"]
             if re.search(r"[\[{(]'|\bNone\b|\(\)|\[\]|\{\}", s["checked"])]
    assert reprs == []
    regions = configured_regions("dev")
    assert report["regions"] == regions  # primary first
    assert report["policy"]["mandatory"] == 0

    # Every declared resource of these types is in the server, per region.
    for region in regions:
        declared = Counter(short_type(r.type) for r in dev_graph.custom_resources()
                           if r.region == region)
        for kind in ("sfn stateMachine", "sqs queue",
                     "iot policy", "cloudwatch logGroup", "apigateway restApi",
                     "apigateway method", "apigateway model", "secretsmanager secret",
                     "cognito userPool", "cognito identityPool"):
            assert report["materialised"][region][kind] == declared[kind] > 0, kind
        # The run declares a CA rotation's overlap (tools/local/pki_material.py: the run's
        # intermediate `previous`, a second one `issuing`) where the dev stack has one CA: one
        # more CA registration and one more JITR rule (one per auto-registering CA).
        for kind in ("iot caCertificate", "iot topicRule"):
            assert report["materialised"][region][kind] == declared[kind] + 1 > 1, kind
        tables = [t for t in dev_graph.of_type("aws:dynamodb/table:Table")
                  if region == t.region or region in [r["regionName"] for r in t.inputs["replicas"]]]
        assert report["materialised"][region]["dynamodb table"] == len(tables) > 0

    assert [s["outcome"] for s in steps(report, "pki")] == ["pass"] * (3 + len(regions))

    replication = all("replication" in dev_graph.outputs["regions"][r]["capabilities"]
                      for r in regions)
    jitr = steps(report, "jitr")
    for region in regions:
        others = [r for r in regions if r != region]
        passed = {s["title"]: s["checked"] for s in jitr if s["outcome"] == "pass" and s["region"] == region}
        # The device SDK over MQTT/TLS: refused while JITR runs, then a CONNACK and a publish.
        first = next(c for t, c in passed.items() if t.startswith("first connection (device SDK, MQTT over TLS"))
        assert "connection refused" in first and "PENDING_ACTIVATION" in first and "SUCCEEDED" in first
        retry = next(c for t, c in passed.items() if t.startswith("the device's retry connects (CONNACK)"))
        assert "attempt 1 connected" in retry and "arrived" in retry and "certificate ACTIVE" in retry
        for other in others:
            replicated = next(s for s in jitr if s["title"] == f"the row of jitr-{region} is "
                                                               f"replicated to {other}")
            assert replicated["outcome"] == "pass" and replicated["region"] == other
            assert_usable_elsewhere(jitr, f"jitr-{region} usable in {other}", replication)
    assert not [s for s in jitr if s["outcome"] == "fail"]

    # CVM: the factory's tool, then a device on each path through the declared API.
    primary = regions[0]
    cvm = steps(report, "cvm")
    assert not [s for s in cvm if s["outcome"] == "fail"]
    cvm_passed = [s["title"] for s in cvm if s["outcome"] == "pass" and s["region"] == primary]
    for path in ("CSR", "legacy"):
        assert any(t.startswith(f"{path} path: device CVM-{path.upper()}-{primary} registers")
                   for t in cvm_passed), path
        assert_usable_elsewhere(cvm, f"CVM-{path.upper()}-{primary} usable in {regions[1]}",
                                replication)
    refused = next(s for s in cvm if s["title"].startswith("the gateway refuses"))
    assert "HTTP 400 from gateway BAD_REQUEST_BODY" in refused["checked"]
    assert "Invalid request body" in refused["checked"]
    connected = [s["checked"] for s in cvm if s["outcome"] == "pass" and s["title"].startswith(
        "certificate ACTIVE, thing attached")]
    assert len(connected) == 2 and all("connected, publish to" in c and "arrived" in c for c in connected)

    # Fleet provisioning: installer, claim, hook, template, recorder.
    fleet = steps(report, "fleet")
    assert not [s for s in fleet if s["outcome"] == "fail"]
    serial = f"SN-LOCAL-{primary}"
    fleet_passed = {s["title"] for s in fleet if s["outcome"] == "pass"}
    device = next(s for s in fleet if s["title"].startswith("device (SDK iotidentity, MQTT over TLS"))
    assert device["outcome"] == "pass"
    # "Provisioned" means over MQTT: the API's accepted answers, then a publish as the thing arrived.
    assert "over MQTT: create/accepted, provision/accepted" in device["checked"]
    assert f"as {serial}: published to dt/" in device["checked"] and device["checked"].endswith("arrived")
    assert f"the recorder (stream -> declared filter) writes {serial}'s inventory item (FLEET, AMAZON, " \
           "version 1); the allow-list entry is PROVISIONED" in fleet_passed
    assert_usable_elsewhere(fleet, f"{serial} usable in {regions[1]}", replication)

    # Replication: revocation crosses regions; both region-B-first races converge.
    if replication:
        applied = steps(report, "replication")
        assert applied and all(s["outcome"] == "pass" for s in applied), applied
        titles = " | ".join(s["title"] for s in applied)
        for expected in ("the revocation reaches", "replication activates the PENDING certificate",
                         "the later write wins everywhere",
                         "the region's pipe handed its machine only writes of other regions"):
            assert expected in titles, expected
        converged = [s for s in applied if "one ACTIVE certificate" in s["title"]]
        assert len(converged) == 2 and all(s["checked"].count(" ACTIVE") >= len(regions)
                                           for s in converged)

    # The installer web app in a real browser: pending only where Node or Chromium is missing
    # (the step says which); CI installs both, so there every step must pass.
    web = steps(report, "installer-web")
    assert not [s for s in web if s["outcome"] == "fail"], web
    if os.environ.get("CI"):
        assert web and all(s["outcome"] == "pass" for s in web), web
    else:
        assert all(s["outcome"] == "pass" or "install" in s["detail"] or "built" in s["detail"]
                   for s in web), web

    # Game day: every step runs and passes, the groups' as well (nothing left pending).
    game_day = steps(report, "game-day")
    assert game_day and all(s["outcome"] == "pass" for s in game_day), game_day
    assert any("attributes and groups" in s["title"] for s in game_day)

    violation = steps(report, "policy-violation")
    assert [s["outcome"] for s in violation] == ["pass", "pass"]
    assert "before none" in violation[1]["checked"]

    assert report["endpoint"] == ""  # served only with --keep
    assert leftover_threads(before) == []
    # (the contracts-only layer the evaluation packages stays: named by its content, shared by runs)
    assert sorted(p.name for p in scratch.iterdir() if not p.name.startswith("iotmr-offline-layer-stand-in-")) == []


@pytest.mark.slow
@pytest.mark.parametrize("wire", [
    pytest.param(name, marks=pytest.mark.browser) if journeys.JOURNEYS[journeys.WIRES[name].journey].prepare
    else name for name in sorted(journeys.WIRES)])  # a journey's `prepare` starts its browser
@pytest.mark.usefixtures("local_graph")  # the run uses its evaluation and policy report
def test_breaking_a_wire_fails_its_journey(local_pki: LocalPki, wire: str,
                                           dev_graph: StackGraph) -> None:
    broken = journeys.WIRES[wire]
    capability = journeys.JOURNEYS[broken.journey].capability
    enabled = {c for r in dev_graph.outputs["regions"].values() for c in r["capabilities"]}
    if capability is not None and capability not in enabled:
        pytest.skip(f"the dev stack has no capability {capability} yet")

    # The broken step waits out the convergence time before it fails; the steps before it
    # converge in a few seconds even on a loaded machine.
    code, report = run_json(local_pki, broken.journey, wire, converge_seconds=10)

    assert code == 1
    assert report["broken_wires"] == [wire] and not report["errors"]
    (journey,) = report["journeys"]
    assert journey["name"] == broken.journey and journey["outcome"] == "fail"
    failed = [s for s in journey["steps"] if s["outcome"] == "fail"]
    assert len(failed) == 1 and failed[0]["detail"]
    assert any(s["outcome"] == "pass" for s in journey["steps"])  # it got as far as the wire


@pytest.mark.slow
@pytest.mark.usefixtures("local_graph")  # the run uses its evaluation and policy report
def test_interrupt_tears_everything_down(local_pki: LocalPki) -> None:
    """Ctrl-C (here: while the server is held up, as with --keep) stops server and threads."""
    before = set(threading.enumerate())
    seen: dict[str, str] = {}

    def interrupt(report: Any, system: Any) -> None:
        seen["endpoint"] = system.endpoint
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(RunOptions(journey="pki", regions=configured_regions("dev")[:1], pki=local_pki),
            hold=interrupt)

    assert_closed(seen["endpoint"])
    assert leftover_threads(before) == []


@pytest.mark.usefixtures("local_graph")  # the run uses its evaluation and policy report
def test_what_a_journey_prepares_is_started_before_the_world_handed_to_it_and_closed_after(
        local_pki: LocalPki, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []

    @contextlib.contextmanager
    def browser() -> Iterator[str]:
        events.append("started")
        yield "a browser"
        events.append("closed")

    def uses_it(journey_run: journeys.JourneyRun) -> None:
        events.append(f"the journey got {journey_run.prepared}; the world has {len(journey_run.world.regions)} region")

    monkeypatch.setitem(journeys.JOURNEYS, "pki", dataclasses.replace(journeys.JOURNEYS["pki"], run=uses_it,
                                                                      prepare=browser))
    run(RunOptions(journey="pki", regions=configured_regions("dev")[:1], pki=local_pki))

    assert events == ["started", "the journey got a browser; the world has 1 region", "closed"]


@pytest.mark.usefixtures("local_graph")  # the run uses its evaluation and policy report
def test_ctrl_c_during_a_journey_keeps_the_report_of_what_ran(
        local_pki: LocalPki, monkeypatch: pytest.MonkeyPatch) -> None:
    before = set(threading.enumerate())

    def stopped_midway(journey_run: journeys.JourneyRun) -> None:
        with journey_run.step("a step that finished") as step:
            step.check(True, "done")
        raise KeyboardInterrupt

    monkeypatch.setitem(journeys.JOURNEYS, "pki",
                        dataclasses.replace(journeys.JOURNEYS["pki"], run=stopped_midway))
    report = run(RunOptions(journey="pki", regions=configured_regions("dev")[:1], pki=local_pki))

    assert report.interrupted and not report.ok
    (journey,) = report.journeys
    assert [s.outcome.value for s in journey.steps] == ["pass", "fail"]
    assert leftover_threads(before) == []


def _scheduled(*plans: tuple[str, Any, dict[str, bool]]) -> tuple[RunReport, dict[str, list[str]]]:
    """Journeys (name, run, flags) through the runner's scheduling, without a world."""
    selected = [journeys.Journey(name, name.title(), fn, order=order, **flags)
                for order, (name, fn, flags) in enumerate(plans)]
    report = RunReport(stack="dev", regions=[])
    run_journeys(None, selected, report, Progress(enabled=False))  # type: ignore[arg-type]
    return report, {j.name: [f"{s.outcome.value}: {s.title}" for s in j.steps] for j in report.journeys}


def test_a_background_journey_runs_beside_those_that_allow_it_and_before_the_others() -> None:
    order: list[str] = []
    beside_ran = threading.Event()

    def browser(run: JourneyRun) -> None:  # passes only if the journey beside it ran meanwhile
        with run.step("the journey beside it ran meanwhile") as step:
            step.check(beside_ran.wait(10), "it did")
        order.append("browser")

    def beside(run: JourneyRun) -> None:
        beside_ran.set()
        order.append("beside")

    report, steps = _scheduled(("beside", beside, {"beside_background": True}),
                               ("browser", browser, {"background": True}),
                               ("evacuation", lambda run: order.append("evacuation"), {}))

    assert order == ["beside", "browser", "evacuation"]  # the evacuation waited for the browser
    assert [j.name for j in report.journeys] == ["beside", "browser", "evacuation"]  # the report's order
    assert steps["browser"] == ["pass: the journey beside it ran meanwhile"] and report.ok


def test_a_background_journey_that_nothing_may_run_beside_runs_alone_at_its_place() -> None:
    order: list[str] = []
    report, _ = _scheduled(("first", lambda run: order.append("first"), {}),
                           ("browser", lambda run: order.append("browser"), {"background": True}))
    assert order == ["first", "browser"] and [j.name for j in report.journeys] == ["first", "browser"]


def test_a_journey_beside_the_background_waits_for_it_before_it_takes_something_down() -> None:
    order: list[str] = []
    browser_may_end = threading.Event()

    def browser(run: JourneyRun) -> None:  # ends only once the journey beside it has started
        with run.step("the game day started meanwhile") as step:
            step.check(browser_may_end.wait(10), "it did")
        time.sleep(0.2)  # an alone() that did not wait would come first
        order.append("browser done")

    def game_day(run: JourneyRun) -> None:
        order.append("devices connected")
        browser_may_end.set()
        run.alone()
        order.append("region evacuated")

    report, _ = _scheduled(("game-day", game_day, {"beside_background": True}),
                           ("browser", browser, {"background": True}))

    assert order == ["devices connected", "browser done", "region evacuated"] and report.ok


def test_a_journey_waiting_for_one_region_goes_on_once_the_background_is_done_with_it() -> None:
    order: list[str] = []
    game_day_went_on = threading.Event()

    def browser(run: JourneyRun) -> None:
        order.append("browser in A")
        run.done_with("region-b")  # not the one the game day waits for
        time.sleep(0.2)  # an alone("region-a") that did not wait would come first
        order.append("browser leaves A")
        run.done_with("region-a")
        with run.step("the game day went on while the browser still ran") as step:
            step.check(game_day_went_on.wait(10), "it did")
        order.append("browser in B")

    def game_day(run: JourneyRun) -> None:
        run.alone("region-a")
        order.append("A evacuated")
        game_day_went_on.set()

    report, steps = _scheduled(("game-day", game_day, {"beside_background": True}),
                               ("browser", browser, {"background": True}))

    assert order == ["browser in A", "browser leaves A", "A evacuated", "browser in B"] and report.ok


def test_a_background_journey_that_fails_early_releases_every_region() -> None:
    def browser(run: JourneyRun) -> None:
        raise RuntimeError("Chromium did not start")

    answers: list[Any] = []  # a game day left waiting would hang the test: run it in a thread
    scheduling = threading.Thread(target=lambda: answers.append(_scheduled(
        ("game-day", lambda run: run.alone("region-a"), {"beside_background": True}),
        ("browser", browser, {"background": True}))), daemon=True)
    scheduling.start()
    scheduling.join(10)

    assert answers, "the game day still waits for a journey that ended"
    _, steps = answers[0]
    assert steps["browser"] == ["fail: journey crashed"] and steps["game-day"] == []


def test_ctrl_c_beside_a_background_journey_stops_it_at_its_next_step() -> None:
    browsing = threading.Event()

    def browser(run: JourneyRun) -> None:
        with run.step("signed in") as step:
            step.check(True, "yes")
        browsing.set()
        time.sleep(1)  # the interrupt lands meanwhile
        with run.step("claims a device") as step:
            step.check(True, "yes")

    def beside(run: JourneyRun) -> None:
        browsing.wait(10)
        raise KeyboardInterrupt

    report, steps = _scheduled(("beside", beside, {"beside_background": True}),
                               ("browser", browser, {"background": True}),
                               ("evacuation", lambda run: None, {}))

    assert report.interrupted and not report.ok
    assert steps == {"beside": ["fail: interrupted (Ctrl-C or SIGTERM)"],
                     "browser": ["pass: signed in", "fail: claims a device"]}  # the evacuation never started
    assert "stopped" in report.journeys[1].steps[-1].detail


@pytest.mark.usefixtures("local_graph")  # the run uses its evaluation and policy report
def test_ctrl_c_ends_a_kept_run_with_130(local_pki: LocalPki, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(stop: threading.Event, tick: float = 0.5) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "wait_for_interrupt", interrupted)
    monkeypatch.setattr(pki_material, "bootstrap", lambda: local_pki)
    code = main(["--journey", "pki", "--regions", configured_regions("dev")[0], "--keep", "--quiet"])

    assert code == 130
    assert "interrupted" in capsys.readouterr().err


def test_a_waiting_run_notices_the_interrupt_within_its_tick() -> None:
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    cli.wait_for_interrupt(stop, tick=0.1)
    assert time.monotonic() - started < 1.0


def test_help_and_list_do_not_load_the_run() -> None:
    code = ("import sys; from tools.local import cli; cli.build_parser().format_help(); "
            "print(sorted(m for m in ('moto', 'pulumi_aws', 'boto3') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parent.parent).stdout.strip()
    assert loaded == "[]"


def test_list_names_every_journey_and_wire(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in [*journeys.JOURNEYS, *journeys.WIRES])


@pytest.mark.browser  # the violation is known after the evaluation, beside which the browser starts
def test_a_mandatory_violation_stops_the_run_before_the_server() -> None:
    report = run(RunOptions(stack="test", project_dir=FIXTURES / "insecure_program"))

    assert not report.ok
    assert report.policy is not None and report.policy.mandatory > 0
    assert "mandatory policy violations" in report.errors[0]
    assert report.endpoint == "" and report.journeys == []


def test_unknown_region_is_a_setup_error(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[str] = []
    for name, journey in list(journeys.JOURNEYS.items()):
        if journey.prepare:
            monkeypatch.setitem(journeys.JOURNEYS, name, dataclasses.replace(
                journey, prepare=lambda name=name: started.append(name) or contextlib.nullcontext()))
    assert started == [] and journeys.JOURNEYS["installer-web"].prepare is not None

    assert main(["--quiet", "--regions", "eu-west-1,mars-east-1"]) == 2
    assert "mars-east-1 not in the stack's regions" in capsys.readouterr().err
    assert started == []  # refused before any journey starts what it prepares (a browser)


@pytest.mark.parametrize("value", [",", " , "])
def test_regions_naming_no_region_is_refused_not_read_as_every_region(value: str, capsys: Any) -> None:
    with pytest.raises(SystemExit) as refused:
        main(["--quiet", "--regions", value])
    assert refused.value.code == 2
    assert "--regions: name at least one region" in capsys.readouterr().err


# --- the run's own pieces ----------------------------------------------------------------

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


def test_the_recorder_filter_passes_only_claims_of_its_own_region(dev_graph: StackGraph) -> None:
    mappings = dev_graph.of_type("aws:lambda/eventSourceMapping:EventSourceMapping")
    mapping = next(m for m in mappings if m.region == "eu-west-1"
                   and "fleet-recorder" in str(m.inputs["functionName"]))
    patterns = [f["pattern"] for f in mapping.inputs["filterCriteria"]["filters"]]

    def claim(region: str, state: str = "CLAIMED", event: str = "MODIFY") -> dict[str, Any]:
        return {"eventName": event, "dynamodb": {"NewImage": {
            "kind": {"S": "FLEET_SERIAL"}, "state": {"S": state}, "claimRegion": {"S": region}}}}

    assert matches(patterns, claim("eu-west-1"))
    assert not matches(patterns, claim("us-west-2"))
    assert not matches(patterns, claim("eu-west-1", state="PROVISIONED"))
    assert not matches(patterns, claim("eu-west-1", event="REMOVE"))


@pytest.mark.parametrize("capability", ["jitr", "cvm", "fleet_provisioning", "shadow_replication"])
def test_a_world_of_some_capabilities_declares_no_other_capabilitys_resources(
        local_graph: StackGraph, local_pki: LocalPki, capability: str) -> None:
    """A world of some capabilities leaves out every other capability's resources (worlds of
    jitr or cvm alone used to stand up fleet provisioning and the installer web backend)."""
    whole = World(graph=local_graph, regions=("eu-west-1",), pki=local_pki)
    some = dataclasses.replace(whole, capabilities_run=frozenset({capability}))
    owners = {r.urn: {a.type.split(":")[1] for a in local_graph.ancestors(r)} & capability_names()
              for r in local_graph.custom_resources()}
    kept = [r for r in local_graph.custom_resources() if some.includes(r)]
    assert {m for r in kept for m in owners[r.urn]} == {capability}
    assert {r.urn for r in kept if not owners[r.urn]} == {
        r.urn for r in local_graph.custom_resources() if whole.includes(r) and not owners[r.urn]}


def test_a_world_of_one_region_declares_none_of_another_regions_global_service_resources(
        local_graph: StackGraph, local_pki: LocalPki) -> None:
    """IAM roles and Route 53 health checks are global, but each is declared for one region's
    functions or endpoint: a world of eu-west-1 leaves out us-west-2's (every one-region world
    used to create them); what serves every region stays."""
    one = World(graph=local_graph, regions=("eu-west-1",), pki=local_pki)
    both = dataclasses.replace(one, regions=("eu-west-1", "us-west-2"))
    global_service = [r for r in local_graph.custom_resources() if r.region == GLOBAL]
    left_out = {r.type for r in global_service if both.includes(r) and not one.includes(r)}
    assert {"aws:iam/role:Role", "aws:route53/healthCheck:HealthCheck"} <= left_out
    assert [r.name for r in global_service if one.includes(r) and "us-west-2" in r.name] == []
    assert "evacuation-operator" in {r.name for r in global_service if one.includes(r)}


def _seen(world: World) -> dict[str, Any]:
    """What a scenario finds in a world of every capability, service by service."""
    client = world.client
    return {
        "things": client("iot").list_things()["things"],
        "iot policies": client("iot").list_policies()["policies"],
        "rules": client("iot").list_topic_rules()["rules"],
        "tables": {t: client("dynamodb").describe_table(TableName=t)["Table"]["ItemCount"]
                   for t in client("dynamodb").list_tables()["TableNames"]},
        "machines": client("stepfunctions").list_state_machines()["stateMachines"],
        "keys": client("kms").list_aliases()["Aliases"],
        "roles": sorted(r["RoleName"] for r in client("iam").list_roles()["Roles"]),
        "apis": client("apigateway").get_rest_apis()["items"],
        "secrets": [s["Name"] for s in client("secretsmanager").list_secrets()["SecretList"]],
        "log groups": client("logs").describe_log_groups()["logGroups"],
        "queues": client("sqs").list_queues().get("QueueUrls", []),
        "pools": client("cognito-idp").list_user_pools(MaxResults=60)["UserPools"],
        # the ids learned (not their values: the DNS emulation's health checks are new each time)
        "world": (sorted(world.resolver._known), world.materialised, world.made.by_region(),
                  [(c.service, c.operation) for c in world.calls.calls]),
    }


def test_a_world_like_one_opened_before_starts_as_that_one_did_and_keeps_nothing_of_it(
        local_graph: StackGraph, local_pki: LocalPki) -> None:
    """The next worlds of a graph, regions and capabilities are copies of what materialising
    the first left (tools/local/world.py): each must be what materialising gives, whatever
    the scenario of the world before it wrote."""
    graph = dataclasses.replace(local_graph)  # a graph of its own: the first is materialised
    with open_world(graph, regions=["eu-west-1"], pki=local_pki) as first:
        fresh = _seen(first)
    seen = []
    for _ in range(2):
        with open_world(graph, regions=["eu-west-1"], pki=local_pki) as world:
            seen.append(_seen(world))
            world.client("iot").create_thing(thingName="left-behind")
            world.client("dynamodb").put_item(TableName=world.table("device-inventory"),
                                              Item={"thingName": {"S": "left-behind"}})
            world.client("iam").create_role(RoleName="left-behind", AssumeRolePolicyDocument="{}")
    assert [name for name, found in fresh.items() if not found] == ["things"]  # all else declared
    assert seen == [fresh, fresh]


@pytest.mark.parametrize("copies, materialised", [(True, 1), (False, 3)])
def test_worlds_are_materialised_once_unless_moto_state_does_not_copy(
        local_graph: StackGraph, local_pki: LocalPki, monkeypatch: pytest.MonkeyPatch,
        copies: bool, materialised: int) -> None:
    """Three worlds alike: the first is materialised, the others are copies of it; if moto's
    state holds something that does not copy, each is materialised (and nothing is kept)."""
    from tools.local import materialise
    from tools.local import world as worlds

    made: list[World] = []
    real = materialise.materialise
    monkeypatch.setattr(materialise, "materialise", lambda world: made.append(world) or real(world))
    if not copies:
        def refuse(state: Any, keep: Any) -> Any:
            raise TypeError("cannot pickle '_io.BufferedReader' object")
        monkeypatch.setattr(worlds, "_copied", refuse)
    graph = dataclasses.replace(local_graph)  # a graph of its own: nothing kept for it yet
    for _ in range(3):
        with open_world(graph, regions=["eu-west-1"], pki=local_pki, capabilities=["cvm"]) as world:
            assert world.client("dynamodb").list_tables()["TableNames"]
    assert len(made) == materialised


def test_the_run_adds_a_legacy_batch_only_to_a_stack_that_runs_the_cvm() -> None:
    from tools.local.journeys.cvm import LEGACY_BATCH, legacy_batch_for_the_run

    project = "iot-multi-region"
    without = legacy_batch_for_the_run({f"{project}:capabilities": ["jitr", "replication"]}, project)
    assert without is None  # a cvm section in a stack without the CVM is refused by the parser
    added = legacy_batch_for_the_run({f"{project}:capabilities": ["jitr", "cvm"]}, project)
    assert added is not None and added[0] == {"cvm": {"legacyBatches": [LEGACY_BATCH]}}
    assert legacy_batch_for_the_run({}, project) is not None  # default: every capability


def test_a_wire_whose_journey_is_not_run_is_a_setup_error(capsys: pytest.CaptureFixture[str]) -> None:
    """Breaking a wire proves its journey fails; without that journey the run would say OK."""
    wire = next(iter(sorted(journeys.WIRES)))
    other = next(j.name for j in journeys.ordered() if j.name != journeys.WIRES[wire].journey)
    assert main(["--journey", other, "--break", wire]) == 2
    err = capsys.readouterr().err
    assert f"--break {wire}: its journey {journeys.WIRES[wire].journey!r} is not selected" in err
    assert "Traceback" not in err


def test_the_report_names_advisory_findings_and_what_was_not_exercised() -> None:
    from tools.local.report import PolicySummary, RunReport, format_text

    report = RunReport(stack="dev", regions=["eu-west-1"],
                       policy=PolicySummary(0, 3, 100, 10, advisory_policies={"lambda-x": 3}),
                       not_materialised={"route53 healthCheck": 2, "route53 record": 1,
                                         "wafv2 webAcl": 2, "sqs queue": 1})
    text = format_text(report)
    assert "  advisory: lambda-x (3)" in text
    untried = [line for line in text.splitlines() if line.startswith("Not exercised offline")]
    assert len(untried) == 1 and untried[0].count("WAF rate limiting") == 1
    # DNS failover is run by the DNS emulation (the game-day journey): exercised.
    assert "DNS failover" not in untried[0]
    assert json.loads(report.to_json())["not_exercised"] == ["WAF rate limiting of the HTTPS APIs"]


def test_a_wire_names_the_journeys_that_use_its_capability() -> None:
    from tools.local.report import RunReport, format_text

    # game-day runs the CVM too: its evacuation controls are flipped with the device domain's
    assert journeys.also_affected("cvm-lambda-uses-another-table") == ["game-day", "replication"]
    assert journeys.also_affected("installer-web-csp-blocks-iot") == []
    text = format_text(RunReport(stack="dev", regions=["eu-west-1"],
                                 broken_wires=["cvm-lambda-uses-another-table"]))
    assert ("cvm-lambda-uses-another-table (must fail: cvm; may also fail: game-day, replication, "
            "which use its capability)") in text


@pytest.mark.usefixtures("local_graph")  # the run uses its evaluation and policy report
def test_a_kept_run_hands_out_material_a_device_of_ones_own_connects_with(
        local_pki: LocalPki, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The guide `--keep` prints is followed literally: the example device, with the files
    and the command it names, is onboarded by JITR and publishes."""
    import shlex

    from examples.devices import jitr_device

    guides: list[str] = []

    def follow(report: Any, system: Any) -> None:
        guides.append(cli.device_guide(system, tmp_path))
        command = next(line for line in guides[0].splitlines() if "examples.devices" in line)
        assert jitr_device.main(shlex.split(command)[3:]) == 0

    run(RunOptions(journey="jitr", regions=configured_regions("dev")[:1], pki=local_pki),
        hold=follow)
    assert guides and (tmp_path / "local-device-1.key").stat().st_mode & 0o077 == 0
    assert "connected as local-device-1, published to" in capsys.readouterr().out


def test_a_threaded_world_loads_every_function_before_its_threads_start() -> None:
    """Loading a handler swaps its package in sys.modules for a moment: done before the pollers
    start, a tool importing the package later (tools.evacuate during the game day) never meets a
    half-initialised copy. A function that cannot load fails when invoked, as before."""
    from types import SimpleNamespace

    from tools.local.emulation.lambdas import DeclaredFunction, LambdaRuntime

    arn = "arn:aws:lambda:eu-west-1:123456789012:function:"
    good = DeclaredFunction("good", arn + "good", "eu-west-1", "shadow_replication.app.handler", {})
    broken = DeclaredFunction("broken", arn + "broken", "eu-west-1", "shadow_replication.app.no_such", {})
    world = SimpleNamespace(adapter=SimpleNamespace(lambda_handlers={}))
    runtime = LambdaRuntime(world, [good, broken], [])  # type: ignore[arg-type]
    process_copy = sys.modules.get("lambdas.shadow_replication.data")

    runtime.preload()

    assert good.loaded is not None and good.init is not None and good.init[0] > 0
    assert broken.loaded is None
    assert sys.modules.get("lambdas.shadow_replication.data") is process_copy  # the process's own, untouched
    with pytest.raises(ImportError, match="Runtime.HandlerNotFound"):
        runtime.invoke("broken", {})


def test_a_functions_environment_is_its_invoking_threads_alone() -> None:
    """While a function runs, another thread (a journey, a tool, botocore copying os.environ
    for a new credential chain) sees the process's environment, never the function's, and
    never a variable vanishing under it; the function sees its declared variables."""
    from types import SimpleNamespace

    from tools.local.emulation.lambdas import DeclaredFunction, LambdaRuntime

    variable = "IOTMR_TEST_SERVICE_NAME"
    function = DeclaredFunction("f", "arn:aws:lambda:eu-west-1:123456789012:function:f", "eu-west-1",
                                "shadow_replication.app.handler", {variable: "the-function"})
    runtime = LambdaRuntime(SimpleNamespace(adapter=SimpleNamespace(lambda_handlers={})),  # type: ignore[arg-type]
                            [function], [])
    running, release = threading.Event(), threading.Event()

    def handler(event: Any, context: Any) -> Any:
        running.set()
        release.wait(10)
        return os.environ.get(variable), os.getenv("AWS_LAMBDA_FUNCTION_NAME")

    function.loaded = handler
    answers: list[Any] = []
    invocation = threading.Thread(target=lambda: answers.append(runtime.invoke("f", {})))
    invocation.start()
    try:
        assert running.wait(10)
        assert variable not in os.environ and variable not in os.environ.copy() and os.getenv(variable) is None
    finally:
        release.set()
        invocation.join(10)
    assert answers == [("the-function", "f")] and variable not in os.environ


def test_a_failed_check_says_what_was_expected() -> None:
    """A check without its own expectation fails with the step's title (what must hold); the
    values it shows read as prose."""
    result = JourneyResult("j", "J")
    run = JourneyRun(None, result, Progress(enabled=False))  # type: ignore[arg-type]
    for failure in ("", "expected thing SN-1"):
        with pytest.raises(JourneyStopped):
            with run.step("the row is ACTIVE in every region") as step:
                step.check(False, f"rows {shown({'eu-west-1': None, 'us-west-2': ['INACTIVE']})}", failure)
    assert [(s.checked, s.detail) for s in result.steps] == [
        ("rows eu-west-1 none, us-west-2 INACTIVE", "expected: the row is ACTIVE in every region"),
        ("rows eu-west-1 none, us-west-2 INACTIVE", "expected thing SN-1")]


@pytest.mark.usefixtures("local_graph")  # the run uses its evaluation and policy report
def test_a_kept_runs_fleet_and_cvm_guides_work_as_printed(local_pki: LocalPki, tmp_path: Path) -> None:
    """The fleet device command and the CVM `curl` the `--keep` guide prints, followed
    literally: the device provisions over MQTT with the handed-over claim and publishes as its
    thing; the CVM answers 200 with the device's thing, certificate and key."""
    import shlex
    import urllib.request

    from examples.devices import fleet_device

    from tools.local.emulation.device_endpoint import DeviceEndpoints

    answers: list[tuple[int, dict[str, Any]]] = []
    published: list[str] = []  # (stdout is no witness: a function running meanwhile holds it)

    def follow(report: Any, system: Any) -> None:
        cli.device_guide(system, tmp_path)  # the root CA the fleet command names
        fleet_command = next(line for line in cli.fleet_guide(system, tmp_path).splitlines()
                             if "examples.devices.fleet_device" in line)
        assert fleet_device.main(shlex.split(fleet_command)[3:]) == 0
        endpoints = system.emulation(DeviceEndpoints)
        arrived = endpoints.wait_for_message(system.regions[0], "SN-KEPT-0001", "dt/iotmr/SN-KEPT-0001/status")
        published.extend([arrived.topic] if arrived else [])
        command = next(line for line in cli.cvm_guide(system).splitlines() if line.strip().startswith("curl "))
        words = shlex.split(command)
        url = next(w for w in words if w.startswith("http://127.0.0.1:"))
        header = words[words.index("-H") + 1].split(": ", 1)
        request = urllib.request.Request(url, words[words.index("-d") + 1].encode(), {header[0]: header[1]},
                                         method=words[words.index("-X") + 1])
        with urllib.request.urlopen(request, timeout=30) as response:
            answers.append((response.status, json.loads(response.read())))

    run(RunOptions(journeys=False, serve=False, regions=configured_regions("dev")[:1], pki=local_pki), hold=follow)
    assert published == ["dt/iotmr/SN-KEPT-0001/status"]
    assert (tmp_path / "SN-KEPT-0001.claim.pem.key").stat().st_mode & 0o077 == 0
    [(status, answer)] = answers
    payload = answer["payload"]
    assert status == 200 and answer["status"] == "SUCCESS", answer
    assert payload["thing_name"] and payload["certificates"]["device_certificate"].startswith("-----BEGIN CERTIFICATE")
    assert payload["keyPair"]["privateKey"]


def test_a_shared_client_logs_each_call_once_to_the_calls_active_when_it_is_made() -> None:
    """The worlds of a process share their clients (`shared_client`): a call belongs to the
    world open when it is made (its log, its faults), to no other, and is logged once."""
    from botocore.exceptions import ClientError
    from moto import mock_aws

    from tools.local.calls import AwsCalls
    from tools.local.world import shared_client

    first, second = AwsCalls(), AwsCalls()
    with mock_aws():
        with first.active():
            iot = shared_client("iot", "eu-west-1")
            iot.create_thing(thingName="in-first")
        iot.create_thing(thingName="in-none")
        with second.active():
            assert shared_client("iot", "eu-west-1") is iot
            second.fail("CreateThing", "ThrottlingException")
            with pytest.raises(ClientError, match="ThrottlingException"):
                iot.create_thing(thingName="refused")
            iot.create_thing(thingName="in-second")
    assert [c.params["thingName"] for c in first.of("CreateThing")] == ["in-first"]
    assert [c.params["thingName"] for c in second.of("CreateThing")] == ["refused", "in-second"]


def test_concurrent_calls_to_one_regions_backend_are_answered_as_if_alone() -> None:
    """moto lists a region's things by iterating a dict that another thread's CreateThing
    grows ("OrderedDict mutated during iteration" within 50 ms, unserialised); AWS answers both."""
    import boto3
    from moto import mock_aws

    from tools.local.calls import AwsCalls

    errors: list[str] = []
    stop = threading.Event()
    with mock_aws(), AwsCalls().active():
        iot = boto3.client("iot", region_name="eu-west-1")
        for n in range(50):
            iot.create_thing(thingName=f"listed-{n}")

        def create() -> None:
            for n in range(100_000):
                if stop.is_set():
                    return
                iot.create_thing(thingName=f"new-{n}")

        def describe() -> None:
            while not stop.is_set():
                try:
                    iot.list_thing_principals(thingName="listed-49")
                except Exception as error:  # noqa: BLE001 (the test reports what moto raised)
                    errors.append(f"{type(error).__name__}: {error}")
                    stop.set()

        previous = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # a thread switch between almost any two bytecodes
        try:
            threads = [threading.Thread(target=create), threading.Thread(target=describe)]
            for thread in threads:
                thread.start()
            stop.wait(1)
            stop.set()
            for thread in threads:
                thread.join()
        finally:
            sys.setswitchinterval(previous)
    assert errors == []
