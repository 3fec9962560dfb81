"""tools/reconcile.py: comparison, pacing, resumption, and a backfill of a region in moto
that repairs through the declared replication machine."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.certificates import issue
from tools.harness import StackGraph
from tools.local.emulation.streams import Streams
from tools.local.journeys import cvm, jitr
from tools.local.journeys import registry as seen
from tools.local.pki_material import LocalPki
from tools.local.world import World, open_world
from tools.reconcile import main
from tools.replication_reconcile import (
    CONFLICT,
    LEFTOVER,
    MISSING,
    NEW_HERE,
    WRONG_STATE,
    Finding,
    InventoryItem,
    Journal,
    Outcome,
    Progress,
    QuotaLimiter,
    Registry,
    compare,
    planned_calls,
    repair,
)

A, B = "eu-west-1", "us-west-2"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)


# --- pacing -----------------------------------------------------------------------------

def test_limiter_never_exceeds_the_quota_and_uses_it() -> None:
    clock = FakeClock()
    limiter = QuotaLimiter({"RegisterCertificate": 10, "CreateThing": 100}, 0.9,
                           clock=clock, sleep=clock.sleep)
    granted_at = []
    for _ in range(200):
        limiter.acquire({"RegisterCertificate": 1, "CreateThing": 1})
        granted_at.append(clock.now)

    # the binding API (10/s x 0.9) sets the pace; no 1-second window holds more than 9
    # plus the burst allowance (0.2 s of the rate, at least one request)
    windows = [sum(1 for t in granted_at if start <= t < start + 1.0)
               for start in [i * 0.1 for i in range(int(granted_at[-1] * 10))]]
    assert max(windows) <= 9 + 2
    achieved = len(granted_at) / granted_at[-1]
    assert 0.95 * 9 <= achieved <= 9 * 1.05
    assert limiter.granted == {"RegisterCertificate": 200, "CreateThing": 200}


def test_limiter_halves_on_throttling_and_recovers() -> None:
    clock = FakeClock()
    limiter = QuotaLimiter({"AttachPolicy": 10}, 1.0, recovery=0.1, clock=clock,
                           sleep=clock.sleep)
    limiter.throttled()
    assert limiter.rate("AttachPolicy") == pytest.approx(5.0)
    limiter.throttled()  # the same burst (within the cooldown): no second cut
    assert limiter.rate("AttachPolicy") == pytest.approx(5.0)
    clock.now += 1.0
    limiter.throttled()  # recovered to 0.6 meanwhile, then halved
    assert limiter.rate("AttachPolicy") == pytest.approx(3.0)
    clock.now += 4.0
    limiter.acquire({"AttachPolicy": 1})
    assert limiter.factor == pytest.approx(0.7)  # 0.3 + 4 s x 0.1
    clock.now += 60.0
    limiter.acquire({"AttachPolicy": 1})
    assert limiter.factor == 1.0


def test_limiter_refuses_an_api_without_a_quota() -> None:
    limiter = QuotaLimiter({"CreateThing": 100}, 0.9)
    with pytest.raises(KeyError, match="RegisterThing"):
        limiter.acquire({"RegisterThing": 1})


def test_planned_calls_follow_the_machine_paths() -> None:
    new = Finding(B, "t", MISSING, NEW_HERE, InventoryItem("t", "c", "OWN_CA", "ACTIVE", 1, A))
    assert planned_calls(new) == {"CreateThing": 1, "RegisterCertificate": 1,
                                  "AttachThingPrincipal": 1, "AttachPolicy": 1}
    amazon = Finding(B, "t", MISSING, NEW_HERE, InventoryItem("t", "c", "AMAZON", "ACTIVE", 1, A))
    assert "RegisterCertificateWithoutCA" in planned_calls(amazon)
    pending = Finding(B, "t", WRONG_STATE, "certificate PENDING_ACTIVATION",
                      InventoryItem("t", "c", "OWN_CA", "ACTIVE", 1, A))
    assert planned_calls(pending)["UpdateCertificate"] == 1
    gone = Finding(B, "t", LEFTOVER, "x", InventoryItem("t", "c", "OWN_CA", "DELETED", 3, A))
    assert planned_calls(gone)["DeleteThing"] == 1


# --- comparison -------------------------------------------------------------------------

def item(status: str = "ACTIVE", certificate: str | None = "c1") -> InventoryItem:
    return InventoryItem("thing", certificate, "OWN_CA", status, 2, A)


@pytest.mark.parametrize("registry,expected", [
    (Registry(), (MISSING, NEW_HERE)),
    (Registry(things={"thing"}), (MISSING, "certificate not registered")),
    (Registry(certificates={"c1": "ACTIVE"}), (MISSING, "thing missing")),
    (Registry(things={"thing"}, certificates={"c1": "PENDING_ACTIVATION"}, policy_targets={"c1"}),
     (WRONG_STATE, "certificate PENDING_ACTIVATION, expected ACTIVE")),
    (Registry(things={"thing"}, certificates={"c1": "REVOKED"}),
     (CONFLICT, "certificate REVOKED here, ACTIVE in the inventory")),
    (Registry(things={"thing"}, certificates={"c1": "ACTIVE"}),
     (WRONG_STATE, "device policy not attached")),
    (Registry(things={"thing"}, certificates={"c1": "ACTIVE"}, policy_targets={"c1"},
              principals={"thing": ["c1", "c0"]}),
     (WRONG_STATE, "thing principals ['c1', 'c0'], expected [c1]")),
    (Registry(things={"thing"}, certificates={"c1": "ACTIVE"}, policy_targets={"c1"},
              principals={"thing": ["c1"]}), None),
])
def test_compare_an_active_item(registry: Registry, expected: tuple[str, str] | None) -> None:
    found = compare(B, item(), registry)
    assert (None if found is None else (found.kind, found.detail)) == expected


def test_compare_disabled_and_deleted_items() -> None:
    active_here = Registry(things={"thing"}, certificates={"c1": "ACTIVE"}, policy_targets={"c1"})
    assert compare(B, item("REVOKED"), active_here).kind == WRONG_STATE  # type: ignore[union-attr]
    assert compare(B, item("INACTIVE"), Registry(certificates={"c1": "INACTIVE"})) is None
    assert compare(B, item("REVOKED"), Registry()) is None  # nothing here to disable
    assert compare(B, item("DELETED"), active_here).kind == LEFTOVER  # type: ignore[union-attr]
    assert compare(B, item("DELETED"), Registry()) is None
    policy_left = Registry(certificates={"c1": "REVOKED"}, policy_targets={"c1"})
    found = compare(B, item("REVOKED"), policy_left)
    assert found is not None and found.detail == ("device policy still attached to the REVOKED "
                                                  "certificate, expected detached (REVOKED item)")


def test_compare_finds_a_certificate_listed_revoked_that_is_not_revoked_here() -> None:
    rotated = InventoryItem("thing", "c2", "OWN_CA", "REVOKED", 3, A,
                            revoked_certificate_ids=frozenset({"c1"}))
    found = compare(B, rotated, Registry(things={"thing"}, certificates={"c1": "ACTIVE"}))
    assert found is not None and (found.kind, found.detail) == (
        WRONG_STATE, "listed revoked but c1 ACTIVE here, expected REVOKED")
    inactive = compare(B, rotated, Registry(certificates={"c1": "INACTIVE", "c2": "REVOKED"}))
    assert inactive is not None and inactive.kind == WRONG_STATE
    assert compare(B, rotated, Registry(certificates={"c1": "REVOKED"})) is None
    assert compare(B, rotated, Registry()) is None  # never registered here
    listed_active = InventoryItem("thing", "c2", "OWN_CA", "ACTIVE", 3, A,
                                  revoked_certificate_ids=frozenset({"c1"}))
    found = compare(B, listed_active, Registry(
        things={"thing"}, certificates={"c1": "ACTIVE", "c2": "ACTIVE"}, policy_targets={"c2"}))
    assert found is not None and found.kind == WRONG_STATE and "c1 ACTIVE" in found.detail


@pytest.mark.parametrize("status", ["INACTIVE", "REVOKED"])
def test_compare_deep_finds_other_certificates_on_a_disabled_thing(status: str) -> None:
    held = Registry(things={"thing"}, certificates={"c1": status, "c0": "INACTIVE"},
                    principals={"thing": ["c1", "c0"]})
    found = compare(B, item(status), held)
    assert found is not None and (found.kind, found.detail) == (
        WRONG_STATE, f"thing still holds certificates ['c0'], expected none but the item's "
                     f"({status} item)")
    assert compare(B, item(status), Registry(things={"thing"}, certificates={"c1": status},
                                             principals={"thing": ["c1"]})) is None


def test_planned_calls_count_the_listed_revocations() -> None:
    listed = Finding(B, "t", WRONG_STATE, "x", InventoryItem(
        "t", "c", "OWN_CA", "REVOKED", 3, A, revoked_certificate_ids=frozenset({"a", "b"})))
    assert planned_calls(listed)["UpdateCertificate"] == 3


# --- repair loop ------------------------------------------------------------------------

class FakeExecutor:
    def __init__(self, *, throttle_first: int = 0, crash_after: int | None = None) -> None:
        self.applied: list[str] = []
        self.throttle_first = throttle_first
        self.crash_after = crash_after
        self._lock = threading.Lock()

    def apply(self, region: str, thing_name: str) -> Outcome:
        with self._lock:
            if self.crash_after is not None and len(self.applied) >= self.crash_after:
                raise KeyboardInterrupt("the operator's laptop went to sleep")
            if self.throttle_first > 0:
                self.throttle_first -= 1
                return Outcome(False, "Iot.ThrottlingException: Rate exceeded", throttled=True)
            self.applied.append(thing_name)
            return Outcome(True)


def missing(n: int) -> list[Finding]:
    return [Finding(B, f"t{i:03d}", MISSING, NEW_HERE,
                    InventoryItem(f"t{i:03d}", f"c{i}", "OWN_CA", "ACTIVE", 1, A))
            for i in range(n)]


def test_throttled_repairs_are_requeued_and_slow_the_pace() -> None:
    executor = FakeExecutor(throttle_first=3)
    limiter = QuotaLimiter({"CreateThing": 1000, "RegisterCertificate": 1000,
                            "AttachThingPrincipal": 1000, "AttachPolicy": 1000}, 1.0)

    result = repair(missing(20), executor, limiter, backoff_seconds=0.01)

    assert result.repaired == 20 and result.failed == {}
    assert result.throttled_outcomes == 3
    assert sorted(executor.applied) == [f"t{i:03d}" for i in range(20)]
    assert limiter.factor < 1.0


def test_a_crashed_run_resumes_from_its_journal(tmp_path: Path) -> None:
    journal_path = tmp_path / "dev-us-west-2.jsonl"
    quotas = {"CreateThing": 1000, "RegisterCertificate": 1000, "AttachThingPrincipal": 1000,
              "AttachPolicy": 1000}
    first = FakeExecutor(crash_after=7)
    journal = Journal(journal_path)
    with pytest.raises(KeyboardInterrupt):
        repair(missing(20), first, QuotaLimiter(quotas, 1.0), journal=journal, in_flight=1)
    journal.close()
    assert len(journal_path.read_text().splitlines()) == 7

    second = FakeExecutor()
    resumed = Journal(journal_path)
    result = repair(missing(20), second, QuotaLimiter(quotas, 1.0), journal=resumed)
    resumed.close()

    assert result.skipped_done == 7 and result.repaired == 13
    assert sorted(first.applied + second.applied) == [f"t{i:03d}" for i in range(20)]


def test_progress_shows_rate_and_eta() -> None:
    clock = FakeClock()
    out = io.StringIO()
    progress = Progress(100, out, B, clock=clock, every=0)
    clock.now = 10.0
    for _ in range(25):
        progress.update(True)
    line = out.getvalue().rsplit("\r", 1)[-1]
    assert "25/100" in line and "2.5/s" in line and "ETA 0m30s" in line and "25.0%" in line


# --- the tool end to end in a world ------------------------------------------------------

@pytest.fixture(scope="module")
def world(local_graph: StackGraph, local_pki: LocalPki) -> Iterator[World]:
    with open_world(local_graph, regions=[A, B], pki=local_pki,
                    capabilities=["jitr", "replication", "cvm"]) as opened:
        yield opened


@pytest.fixture(scope="module")
def outputs(local_graph: StackGraph, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The stack's outputs as `pulumi stack output --json` writes them: what the tool reads."""
    path = tmp_path_factory.mktemp("outputs") / "dev.json"
    path.write_text(json.dumps(local_graph.outputs))
    return str(path)


def clients(service: str, region: str) -> Any:
    client: Any = boto3.client  # the service is chosen at run time
    return client(service, region_name=region)


@pytest.mark.slow
def test_backfill_of_a_region_through_its_machine(world: World, local_pki: LocalPki, outputs: str,
                                                  tmp_path: Path) -> None:
    ids = {}
    for i in range(4):
        registration, _, _ = jitr.connect_first(world, A, issue(f"dev-{i}", local_pki.intermediate).pem)
        ids[f"dev-{i}"] = registration.certificate_id
    device = cvm.Device("dev-cvm")
    cvm.factory(world, A, [device])
    ids["dev-cvm"] = cvm.post(world, A, device.request()).json()["payload"]["certificate_id"]
    world.client("dynamodb", A).update_item(  # an operator revoked dev-0 (version 2)
        TableName=world.table(seen.INVENTORY), Key={"thingName": {"S": "dev-0"}},
        UpdateExpression="SET #s = :s, #v = :v, writerRegion = :w",
        ExpressionAttributeNames={"#s": "status", "#v": "version"},
        ExpressionAttributeValues={":s": {"S": "REVOKED"}, ":v": {"N": "2"}, ":w": {"S": A}})
    tables = world.emulation(Streams).global_tables
    assert tables is not None
    tables.replicate()  # B's replica has every item; B's pipe never ran (B is new)
    world.client("iot", B).create_thing(thingName="stray")  # a thing no item names
    world.calls.down.add(A)  # reconciling B needs nothing from A
    mark = len(world.calls.of())

    out, err = io.StringIO(), io.StringIO()
    dry = main(["dev", "--outputs", outputs, "--region", B], out=out, err=err, clients=clients)
    assert dry == 2
    assert "us-west-2: 5 devices in its replica: 4 missing, 1 extra" in out.getvalue()

    out = io.StringIO()
    code = main(["dev", "--outputs", outputs, "--region", B, "--apply", "--journal-dir", str(tmp_path)],
                out=out, err=err, clients=clients)

    assert code == 0, out.getvalue()
    assert "repaired 4 in" in out.getvalue() and "0 failed" in out.getvalue()
    assert "ETA" in err.getvalue()
    for thing in ("dev-1", "dev-2", "dev-3", "dev-cvm"):
        assert seen.usable(world, B, thing, ids[thing])
    assert seen.status(world, B, ids["dev-0"]) is None  # revoked: nothing to register
    assert seen.thing_exists(world, B, "stray")  # extra: reported, never deleted
    assert not (tmp_path / "dev-us-west-2.jsonl").exists()  # the run completed: nothing to resume
    made = world.calls.of()[mark:]
    assert {c.region for c in made} == {B}
    assert len([c for c in made if c.operation == "StartSyncExecution"]) == 4  # one repair each

    out = io.StringIO()
    assert main(["dev", "--outputs", outputs, "--region", B, "--deep"], out=out, err=err, clients=clients) == 0
    assert out.getvalue().startswith("us-west-2: 5 devices in its replica: 1 extra")
    world.calls.down.clear()


def test_unknown_region_is_refused(world: World, outputs: str) -> None:
    out = io.StringIO()
    assert main(["dev", "--outputs", outputs, "--region", "ap-south-1"], out=out, err=io.StringIO(),
                clients=clients) == 3
    assert "ap-south-1 not in the stack's regions" in out.getvalue()


def test_bad_arguments_and_an_unwritable_journal_dir_exit_3_before_any_repair(
        world: World, outputs: str, tmp_path: Path) -> None:
    """Exit 3 is "bad arguments" (2 means the dry run found work); a journal that cannot be
    written is found before the first repair, not as a traceback after it."""
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    err = io.StringIO()
    world.calls.clear()
    assert main(["dev", "--outputs", outputs, "--region", B, "--apply", "--journal-dir",
                 str(not_a_directory)], out=io.StringIO(), err=err, clients=clients) == 3
    assert err.getvalue().startswith(f"error: --journal-dir {not_a_directory}: cannot write there")
    assert "nothing was changed" in err.getvalue() and world.calls.of("StartSyncExecution") == []
    assert main(["dev", "--no-such-option"], out=io.StringIO(), err=io.StringIO()) == 3


@pytest.mark.parametrize("apply, said", [
    ([], "interrupted: a dry run, nothing was changed"),
    (["--apply"], "the same command resumes"),
])
def test_an_interrupted_run_says_what_stays_done(world: World, outputs: str, tmp_path: Path,
                                                 apply: list[str], said: str) -> None:
    def interrupting(service: str, region: str) -> Any:  # Ctrl-C at its first AWS client
        raise KeyboardInterrupt

    err = io.StringIO()
    assert main(["dev", "--outputs", outputs, "--region", B, "--journal-dir", str(tmp_path), *apply],
                out=io.StringIO(), err=err, clients=interrupting) == 130
    assert said in err.getvalue() and "Traceback" not in err.getvalue()


def test_the_journal_resumes_only_an_interrupted_run(world: World, local_pki: LocalPki, outputs: str,
                                                      tmp_path: Path) -> None:
    """A completed run deletes its journal: new drift on a device an earlier run repaired is
    repaired (it was skipped as "already done", exit 0). A device the interrupted run's
    journal names that still differs is skipped, but not reported resolved: exit 1."""
    registration, _, _ = jitr.connect_first(world, A, issue("again-1", local_pki.intermediate).pem)
    tables = world.emulation(Streams).global_tables
    assert tables is not None
    tables.replicate()  # B's pipe does not run: again-1 is missing there
    args = ["dev", "--outputs", outputs, "--region", B, "--thing", "again-1", "--registry-only",
            "--apply", "--journal-dir", str(tmp_path)]
    journal = tmp_path / "dev-us-west-2.jsonl"

    def reconcile(expected: int) -> str:
        out, err = io.StringIO(), io.StringIO()
        assert main(args, out=out, err=err, clients=clients) == expected, out.getvalue() + err.getvalue()
        return out.getvalue()

    assert "repaired 1 in" in reconcile(0)
    assert not journal.exists()
    assert seen.usable(world, B, "again-1", registration.certificate_id)

    world.client("iot", B).update_certificate(certificateId=registration.certificate_id, newStatus="INACTIVE")
    said = reconcile(0)
    assert "repaired 1 in" in said and "0 already done" in said, said
    assert seen.usable(world, B, "again-1", registration.certificate_id)

    # An interrupted run finished again-1, which differs anew: skipped, so not in sync.
    world.client("iot", B).update_certificate(certificateId=registration.certificate_id, newStatus="INACTIVE")
    journal.write_text(json.dumps({"thing": "again-1", "ok": True, "error": ""}) + "\n")
    said = reconcile(1)
    assert "1 already done (journal)" in said and "run again" in said, said
    assert not journal.exists()
    assert "repaired 1 in" in reconcile(0)
    assert seen.usable(world, B, "again-1", registration.certificate_id)
