"""tools/evacuate.py in a world: a region leaves DNS through its evacuation controls, its
devices are disconnected, and `--restore` backfills and readmits it; each step resumable."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.certificates import issue
from tools.evacuate import main
from tools.harness import StackGraph
from tools.local.emulation.dns import Dns
from tools.local.emulation.streams import Streams
from tools.local.journeys import game_day, jitr
from tools.local.pki_material import LocalPki
from tools.local.world import World, open_world

A, B = "eu-west-1", "us-west-2"
FAST = {"sleep": lambda seconds: None, "poll_seconds": 0.0}


@pytest.fixture(scope="module")
def world(local_graph: StackGraph, local_pki: LocalPki) -> Iterator[World]:
    with open_world(local_graph, regions=[A, B], pki=local_pki,
                    capabilities=["jitr", "replication", "cvm"]) as opened:
        yield opened


@pytest.fixture(scope="module")
def outputs(world: World, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The outputs with the ids the world's AWS assigned (health checks: moto's)."""
    return str(game_day.outputs_file(world, tmp_path_factory.mktemp("outputs")))


def clients(service: str, region: str) -> Any:
    client: Any = boto3.client
    return client(service, region_name=region)


def control(world: World, region: str, outputs: str) -> dict[str, Any]:
    control_id = json.loads(Path(outputs).read_text())["regions"][region]["evacuation"]["device"]["controlId"]
    return dict(world.client("route53", "us-east-1").get_health_check(HealthCheckId=control_id)["HealthCheck"])


def domain(world: World) -> str:
    return str(world.graph.outputs["deviceDomain"])


def connect_in_a(world: World, local_pki: LocalPki, prefix: str, count: int) -> None:
    """`count` devices registered by JITR in A, their inventory replicated everywhere."""
    for i in range(count):
        jitr.connect_first(world, A, issue(f"{prefix}-{i}", local_pki.intermediate).pem)
    tables = world.emulation(Streams).global_tables
    assert tables is not None
    tables.replicate()
    world.settle()


@pytest.mark.slow
def test_evacuate_and_restore_a_region(world: World, local_pki: LocalPki, outputs: str, tmp_path: Path) -> None:
    connect_in_a(world, local_pki, "evac", 3)
    dns = world.emulation(Dns)
    assert dns.resolve(domain(world), A) == A
    args = ["dev", "--outputs", outputs, "--region", A, "--journal-dir", str(tmp_path)]

    out, err = io.StringIO(), io.StringIO()
    assert main(args, out=out, err=err, clients=clients, **FAST) == 2, out.getvalue() + err.getvalue()
    assert "1 preflight: 3 ACTIVE devices, 0 usable in no other region" in out.getvalue()
    assert "2 controls: 0 of 2 inverted; invert cvm, device" in out.getvalue() and "Dry run" in out.getvalue()
    assert control(world, A, outputs)["HealthCheckConfig"]["Inverted"] is False  # nothing changed

    mark = len(world.calls.of())
    out = io.StringIO()
    code = main([*args, "--apply"], out=out, err=err, clients=clients, **FAST)
    assert code == 0, out.getvalue() + err.getvalue()
    assert control(world, A, outputs)["HealthCheckConfig"]["Inverted"] is True
    assert dns.resolve(domain(world), A) == B  # A's devices now find B
    made = world.calls.of()[mark:]
    assert len([c for c in made if c.operation == "UpdateHealthCheck"]) == 2  # device domain, CVM
    assert len([c for c in made if c.operation == "DeleteConnection" and c.region == A]) == 3
    assert "5 verify: 0 devices back in eu-west-1, 0 of 3 usable in no region in DNS" in out.getvalue()

    # A rerun observes every step done: no flip, no second sweep (the journal).
    mark = len(world.calls.of())
    out = io.StringIO()
    assert main([*args, "--apply"], out=out, err=err, clients=clients, **FAST) == 0, out.getvalue()
    made = world.calls.of()[mark:]
    assert not [c for c in made if c.operation in ("UpdateHealthCheck", "DeleteConnection")]
    assert "2 controls: 2 of 2 inverted" in out.getvalue()

    # Evacuating B as well would leave the devices nowhere: refused, nothing flipped.
    out, err = io.StringIO(), io.StringIO()
    assert main(["dev", "--outputs", outputs, "--region", B, "--apply", "--journal-dir", str(tmp_path)],
                out=out, err=err, clients=clients, **FAST) == 1
    assert "no other region is in DNS" in err.getvalue() and "Traceback" not in err.getvalue()
    assert control(world, B, outputs)["HealthCheckConfig"]["Inverted"] is False

    out = io.StringIO()
    assert main([*args, "--restore", "--apply"], out=out, err=err, clients=clients, **FAST) == 0, \
        out.getvalue() + err.getvalue()
    assert control(world, A, outputs)["HealthCheckConfig"]["Inverted"] is False
    assert dns.resolve(domain(world), A) == A
    assert f"3 {A} is back in DNS" in out.getvalue()


@pytest.mark.parametrize("rewire, refusal", [
    (lambda children, control: ([c for c in children if c != control], len(children) - 1),
     "is not a child of the region's health check"),
    (lambda children, control: (children, len(children) - 1),
     "stays healthy with one child unhealthy (threshold 2 of 3)"),
], ids=["control not a child", "threshold below the children"])
def test_controls_that_would_not_take_the_region_out_are_refused_before_any_flip(
        world: World, outputs: str, tmp_path: Path, rewire: Any, refusal: str) -> None:
    """Deployed checks that differ from the declared wiring: inverting the control would change
    nothing, so the devices would be disconnected only to reconnect to the same region."""
    route53 = world.client("route53", "us-east-1")
    device = json.loads(Path(outputs).read_text())["regions"][A]["evacuation"]["device"]
    combined = route53.get_health_check(HealthCheckId=device["healthCheckId"])["HealthCheck"]
    declared = combined["HealthCheckConfig"]
    children, threshold = rewire(declared["ChildHealthChecks"], device["controlId"])
    route53.update_health_check(HealthCheckId=combined["Id"], HealthCheckVersion=combined["HealthCheckVersion"],
                                ChildHealthChecks=children, HealthThreshold=threshold)
    try:
        mark = len(world.calls.of())
        out, err = io.StringIO(), io.StringIO()
        code = main(["dev", "--outputs", outputs, "--region", A, "--apply", "--journal-dir", str(tmp_path),
                     "--timeout", "1"],
                    out=out, err=err, clients=clients, **FAST)
        assert code == 1, out.getvalue() + err.getvalue()
        assert "DNS: device: " in err.getvalue() and refusal in err.getvalue() and "pulumi up -s dev" in err.getvalue()
        assert "Traceback" not in err.getvalue()
        assert not [c for c in world.calls.of()[mark:] if c.operation in ("UpdateHealthCheck", "DeleteConnection")]
        assert control(world, A, outputs)["HealthCheckConfig"]["Inverted"] is False
    finally:
        now = route53.get_health_check(HealthCheckId=combined["Id"])["HealthCheck"]
        route53.update_health_check(HealthCheckId=combined["Id"], HealthCheckVersion=now["HealthCheckVersion"],
                                    ChildHealthChecks=declared["ChildHealthChecks"],
                                    HealthThreshold=declared["HealthThreshold"])


def test_a_stale_control_version_is_refused(world: World, outputs: str) -> None:
    """Route53 refuses an update naming an older HealthCheckVersion (moto made faithful)."""
    check = control(world, B, outputs)
    route53 = world.client("route53", "us-east-1")
    route53.update_health_check(HealthCheckId=check["Id"], Inverted=False,
                                HealthCheckVersion=check["HealthCheckVersion"])
    with pytest.raises(route53.exceptions.ClientError, match="HealthCheckVersionMismatch"):
        route53.update_health_check(HealthCheckId=check["Id"], Inverted=True,
                                    HealthCheckVersion=check["HealthCheckVersion"])


def test_bad_arguments_and_outputs_get_one_line(outputs: str, tmp_path: Path) -> None:
    """No AWS call is needed to refuse these."""
    err = io.StringIO()
    assert main(["dev", "--outputs", outputs, "--region", "ap-south-1"], out=io.StringIO(), err=err) == 3
    assert err.getvalue().startswith("error: region 'ap-south-1' is not in the stack")
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"regions": {A: {"tableNames": {}}}}))
    err = io.StringIO()
    assert main(["dev", "--outputs", str(old), "--region", A], out=io.StringIO(), err=err) == 3
    assert "exports no evacuation controls" in err.getvalue() and "Traceback" not in err.getvalue()


def test_an_interrupted_evacuation_says_how_to_resume_and_resumes(world: World, outputs: str,
                                                                  tmp_path: Path) -> None:
    """Ctrl-C while it waits for Route53: one line naming the journal, exit 130; the same
    command then finishes from there (and --restore leaves the region as it was)."""
    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    args = ["dev", "--outputs", outputs, "--region", A, "--journal-dir", str(tmp_path), "--apply"]
    out, err = io.StringIO(), io.StringIO()
    assert main(args, out=out, err=err, clients=clients, sleep=interrupted, poll_seconds=0.0) == 130
    assert f"interrupted: the steps done are in {tmp_path}; the same command resumes" in err.getvalue()
    assert "Traceback" not in err.getvalue()
    assert control(world, A, outputs)["HealthCheckConfig"]["Inverted"] is True  # the flip stays done

    out = io.StringIO()
    assert main(args, out=out, err=err, clients=clients, **FAST) == 0, out.getvalue() + err.getvalue()
    assert "2 controls: 2 of 2 inverted" in out.getvalue()
    assert main([*args, "--restore"], out=io.StringIO(), err=err, clients=clients, **FAST) == 0
    assert control(world, A, outputs)["HealthCheckConfig"]["Inverted"] is False


def test_a_second_evacuation_after_a_restore_disconnects_every_device_again(
        world: World, local_pki: LocalPki, outputs: str, tmp_path: Path) -> None:
    """The journal resumes one evacuation, from its flip to its restore: a later evacuation of
    the same region, with the same --journal-dir, sweeps every device again and its verify
    re-checks them (it counted them all "already done" and disconnected nobody)."""
    connect_in_a(world, local_pki, "again", 2)
    args = ["dev", "--outputs", outputs, "--region", A, "--journal-dir", str(tmp_path), "--apply"]
    err = io.StringIO()
    assert main(args, out=io.StringIO(), err=err, clients=clients, **FAST) == 0, err.getvalue()
    assert main([*args, "--restore"], out=io.StringIO(), err=err, clients=clients, **FAST) == 0, err.getvalue()
    assert control(world, A, outputs)["HealthCheckConfig"]["Inverted"] is False
    assert not list(tmp_path.glob("evacuate-*")), "the restore deletes the evacuation's state and journal"

    def evacuate_sweeps_every_device() -> None:
        mark = len(world.calls.of())
        out = io.StringIO()
        assert main(args, out=out, err=err, clients=clients, **FAST) == 0, out.getvalue() + err.getvalue()
        swept = [c for c in world.calls.of()[mark:] if c.operation == "DeleteConnection" and c.region == A]
        active = int(out.getvalue().split("1 preflight: ", 1)[1].split(" ", 1)[0])
        assert active >= 2 and len(swept) == active, out.getvalue()
        assert "(0 already done by an earlier run)" in out.getvalue()
        assert control(world, A, outputs)["HealthCheckConfig"]["Inverted"] is True

    evacuate_sweeps_every_device()
    # Readmitted by hand (the console, not --restore): the state and journal stay, and the
    # next evacuation still counts nothing of the earlier one (its flip starts a new run).
    route53 = world.client("route53", "us-east-1")
    for endpoint in json.loads(Path(outputs).read_text())["regions"][A]["evacuation"].values():
        check = route53.get_health_check(HealthCheckId=endpoint["controlId"])["HealthCheck"]
        route53.update_health_check(HealthCheckId=check["Id"], Inverted=False,
                                    HealthCheckVersion=check["HealthCheckVersion"])
    evacuate_sweeps_every_device()
    assert main([*args, "--restore"], out=io.StringIO(), err=err, clients=clients, **FAST) == 0
    assert control(world, A, outputs)["HealthCheckConfig"]["Inverted"] is False


def test_an_unwritable_journal_dir_is_refused_before_any_flip(world: World, outputs: str,
                                                               tmp_path: Path) -> None:
    """It was created only when first written, after the controls were flipped: a traceback,
    the region left out of DNS."""
    taken = tmp_path / "a-file"
    taken.write_text("")
    mark = len(world.calls.of())
    out, err = io.StringIO(), io.StringIO()
    code = main(["dev", "--outputs", outputs, "--region", A, "--apply", "--journal-dir", str(taken)],
                out=out, err=err, clients=clients, **FAST)
    assert code == 3, out.getvalue() + err.getvalue()
    assert err.getvalue().startswith(f"error: --journal-dir {taken}: cannot write there (")
    assert "pass a writable directory" in err.getvalue()
    assert len(err.getvalue().splitlines()) == 1 and "Traceback" not in err.getvalue()
    assert not [c for c in world.calls.of()[mark:] if c.operation in ("UpdateHealthCheck", "DeleteConnection")]
    assert control(world, A, outputs)["HealthCheckConfig"]["Inverted"] is False


def test_a_journal_write_failing_midway_gets_one_line_saying_a_rerun_resumes(
        world: World, local_pki: LocalPki, outputs: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tools import replication_reconcile

    connect_in_a(world, local_pki, "midway", 1)

    def full(self: Any, thing_name: str, outcome: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(replication_reconcile.Journal, "record", full)
    args = ["dev", "--outputs", outputs, "--region", A, "--apply", "--journal-dir", str(tmp_path)]
    out, err = io.StringIO(), io.StringIO()
    assert main(args, out=out, err=err, clients=clients, **FAST) == 1, out.getvalue() + err.getvalue()
    assert err.getvalue() == (f"error: the journal in {tmp_path}: No space left on device: fix that (room, "
                              "permissions), then run the same command: it resumes\n")
    monkeypatch.undo()
    assert main(args, out=io.StringIO(), err=err, clients=clients, **FAST) == 0, err.getvalue()
    assert main([*args, "--restore"], out=io.StringIO(), err=err, clients=clients, **FAST) == 0, err.getvalue()
    assert control(world, A, outputs)["HealthCheckConfig"]["Inverted"] is False


@pytest.mark.parametrize("option", ["--ttl-seconds", "--timeout", "--rate"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_number_that_is_not_finite_is_refused(outputs: str, option: str, value: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """nan passed the `< 0` checks: a TTL wait or Route53 timeout of nan seconds."""
    def unreachable(service: str, region: str) -> Any:
        raise AssertionError(f"refused before any AWS client, asked for {service}")

    assert main(["dev", "--outputs", outputs, "--region", A, option, value],
                out=io.StringIO(), err=io.StringIO(), clients=unreachable) == 3  # documented: bad arguments
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"python -m tools.evacuate: error: argument {option}: {value!r} is not a finite number")


def test_an_unknown_profile_gets_one_line(outputs: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    err = io.StringIO()
    assert main(["dev", "--outputs", outputs, "--region", A, "--profile", "nosuch"],
                out=io.StringIO(), err=err) == 3
    assert err.getvalue() == ("error: the AWS profile 'nosuch' is not configured: pass one of "
                              "`aws configure list-profiles` as --profile, or create it (`aws configure sso`)\n")


@pytest.mark.parametrize("content, said", [
    (json.dumps({"regions": {A: "not an object"}}).encode(), "`regions.eu-west-1` is not an object"),
    (json.dumps({"regions": [A]}).encode(), "`regions` is not an object"),
    (b"\xff\xfe{}", "not UTF-8 text"),
], ids=["region entry", "regions", "not utf-8"])
def test_malformed_outputs_name_the_file_in_evacuate_and_reconcile(tmp_path: Path, content: bytes,
                                                                   said: str) -> None:
    """An AttributeError traceback (a region entry, `regions` not an object), or a decode
    error that did not say which file."""
    from tools.reconcile import main as reconcile

    bad = tmp_path / "outputs.json"
    bad.write_bytes(content)
    for tool in (main, reconcile):
        err = io.StringIO()
        assert tool(["dev", "--outputs", str(bad), "--region", A], out=io.StringIO(), err=err) == 3
        assert err.getvalue().startswith(f"error: {bad}: {said}"), err.getvalue()
        assert len(err.getvalue().splitlines()) == 1


@pytest.mark.slow
def test_the_restore_backfill_is_deep(world: World, local_pki: LocalPki, outputs: str,
                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a deep comparison lists each thing's principals: a certificate left attached to a
    disabled device is found (and repaired) before the region is readmitted."""
    import tools.reconcile

    connect_in_a(world, local_pki, "deep", 1)
    real, seen_deep = tools.reconcile.run, []

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen_deep.append(kwargs["deep"])
        return real(*args, **kwargs)

    monkeypatch.setattr(tools.reconcile, "run", spy)
    args = ["dev", "--outputs", outputs, "--region", A, "--journal-dir", str(tmp_path)]
    err = io.StringIO()
    assert main([*args, "--apply"], out=io.StringIO(), err=err, clients=clients, **FAST) == 0, err.getvalue()
    assert main([*args, "--restore", "--apply"], out=io.StringIO(), err=err, clients=clients,
                **FAST) == 0, err.getvalue()
    assert seen_deep == [True]
    assert control(world, A, outputs)["HealthCheckConfig"]["Inverted"] is False
