"""Reconciliation and backfill of the replication, the logic behind `tools/reconcile.py`.

For each region: read the inventory from *that region's* replica, list that region's IoT
registry in bulk, compare device by device, and (with `apply`) repair every device that is
missing or in the wrong state by starting that region's declared replication state machine
with a repair request. The machine is the only code that changes a registry: a repaired
device converges exactly as a replicated record would (README.md, "Reconciliation").

Pacing: AWS IoT throttles each control-plane API per account and region. Every repair plans
the calls the machine will make for it (`PLANNED_CALLS`, the paths of replication.asl.json),
takes them from one token bucket per API filled at `quota x utilization` (adaptive: halved on
a throttling outcome, recovering linearly), and at most `in_flight` repairs run at once (two
seconds of the binding quota). Inside the machine, throttled calls are retried with
exponential backoff; a repair whose retries ran out is requeued here, never reported lost.

Resumable: a journal (one JSON line per finished device) lets the rerun of an interrupted run
skip what that run finished. Only that: a run that completes deletes its journal, so a later
run repairs every difference it finds, including new drift on a device repaired before.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from lambdas.contracts.inventory import Attr

PIPE = "aws:pipes/pipe:Pipe"
STATE_MACHINE = "aws:sfn/stateMachine:StateMachine"

# Kinds of findings. MISSING / WRONG_STATE / LEFTOVER are repaired through the machine;
# EXTRA (a thing no item names) is reported only: with no item there is nothing to converge
# to, and deleting it could race a registration in progress. CONFLICT cannot be repaired
# (a certificate REVOKED here while the item says ACTIVE: REVOKED is final).
MISSING = "missing"
WRONG_STATE = "wrong-state"
LEFTOVER = "deleted-but-present"
EXTRA = "extra"
CONFLICT = "conflict"
REPAIRABLE = (MISSING, WRONG_STATE, LEFTOVER)
NEW_HERE = "neither thing nor certificate here"


# --- where things are -------------------------------------------------------------------

@dataclass(frozen=True)
class RegionTargets:
    region: str
    table_name: str  # the inventory replica in this region
    machine_name: str  # the replication state machine in this region
    device_policy_name: str


def _plain(value: Any) -> Any:
    """The harness records inputs the program marked secret wrapped with their value."""
    return value.get("value") if isinstance(value, dict) and "value" in value else value


def attached_policy(definition: str) -> str:
    """The device policy the replication machine attaches (its AttachDevicePolicy state)."""
    states = json.loads(definition)["States"]["ApplyRecordsInOrder"]["ItemProcessor"]["States"]
    return str(states["AttachDevicePolicy"]["Parameters"]["PolicyName"])


def targets_from_outputs(outputs: Mapping[str, Any]) -> dict[str, RegionTargets]:
    """Names as the deployed stack reports them (its outputs, tools/stack_outputs.py): every
    region that runs the replication capability. No second copy of the naming rules."""
    found: dict[str, RegionTargets] = {}
    for region, values in (outputs.get("regions") or {}).items():
        replication = values.get("replication")
        if not replication:
            continue
        found[region] = RegionTargets(region, str(values["tableNames"]["inventory"]),
                                      str(replication["stateMachineName"]),
                                      str(values["devicePolicyName"]))
    return found


# --- the inventory ------------------------------------------------------------------------

@dataclass(frozen=True)
class InventoryItem:
    thing_name: str
    certificate_id: str | None
    issuer: str
    status: str
    version: int
    writer_region: str
    # Certificates of this thing revoked anywhere (rotation, re-issue): REVOKED in every region.
    revoked_certificate_ids: frozenset[str] = frozenset()


def _item(raw: Mapping[str, Any]) -> InventoryItem:
    """The projected attributes of an item (lambdas/contracts/inventory.py names them)."""
    def text(name: str) -> str:
        value = raw.get(name, {})
        return str(value.get("S") or value.get("N") or "")

    return InventoryItem(thing_name=text(Attr.THING_NAME),
                         certificate_id=text(Attr.CERTIFICATE_ID) or None,
                         issuer=text(Attr.ISSUER), status=text(Attr.STATUS),
                         version=int(text(Attr.VERSION) or 0),
                         writer_region=text(Attr.WRITER_REGION),
                         revoked_certificate_ids=frozenset(
                             raw.get(Attr.REVOKED_CERTIFICATE_IDS, {}).get("SS") or ()))


# Only what the comparison needs: the PEM (1-2 KB a device) stays in the table.
_PROJECTED = (Attr.THING_NAME, Attr.CERTIFICATE_ID, Attr.ISSUER, Attr.STATUS, Attr.VERSION,
              Attr.WRITER_REGION, Attr.REVOKED_CERTIFICATE_IDS)


def scan_inventory(dynamodb: Any, table_name: str) -> Iterator[InventoryItem]:
    """Every item of one replica (eventually consistent scan; the machine re-reads each
    device with a consistent read before it changes anything)."""
    names = {f"#a{i}": name for i, name in enumerate(_PROJECTED)}  # status, version: reserved
    kwargs: dict[str, Any] = {"TableName": table_name, "ProjectionExpression": ", ".join(names),
                              "ExpressionAttributeNames": names}
    while True:
        page = dynamodb.scan(**kwargs)
        for raw in page.get("Items", []):
            yield _item(raw)
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


# --- the registry -------------------------------------------------------------------------

@dataclass
class Registry:
    """One region's IoT registry, listed in bulk (three paginated APIs, not one call per
    device). `principals` is filled per thing only in deep mode."""

    things: set[str] = field(default_factory=set)
    certificates: dict[str, str] = field(default_factory=dict)  # certificate id -> status
    policy_targets: set[str] = field(default_factory=set)  # certificate ids with the policy
    principals: dict[str, list[str]] | None = None  # thing -> certificate ids attached


def _pages(call: Callable[..., dict[str, Any]], key: str, limiter: QuotaLimiter | None,
           api: str, **kwargs: Any) -> Iterator[Any]:
    marker_in = "marker" if api in ("ListCertificates", "ListTargetsForPolicy") else "nextToken"
    marker_out = "nextMarker" if marker_in == "marker" else "nextToken"
    while True:
        if limiter is not None:
            limiter.acquire({api: 1})
        page = call(**kwargs)
        yield from page.get(key, [])
        token = page.get(marker_out)
        if not token:
            return
        kwargs[marker_in] = token


def list_registry(iot: Any, device_policy_name: str, limiter: QuotaLimiter | None = None,
                  deep_things: Iterable[str] = ()) -> Registry:
    registry = Registry()
    registry.things = {t["thingName"] for t in _pages(iot.list_things, "things", limiter,
                                                      "ListThings", maxResults=250)}
    registry.certificates = {c["certificateId"]: c["status"] for c in _pages(
        iot.list_certificates, "certificates", limiter, "ListCertificates", pageSize=250)}
    try:
        registry.policy_targets = {t.rsplit("/", 1)[-1] for t in _pages(
            iot.list_targets_for_policy, "targets", limiter, "ListTargetsForPolicy",
            policyName=device_policy_name, pageSize=250)}
    except iot.exceptions.ResourceNotFoundException:
        registry.policy_targets = set()  # the region's stack is not deployed yet
    deep = [t for t in deep_things if t in registry.things]
    if deep:
        registry.principals = {}
        for thing in deep:
            registry.principals[thing] = [p.rsplit("/", 1)[-1] for p in _pages(
                iot.list_thing_principals, "principals", limiter, "ListThingPrincipals",
                thingName=thing)]
    return registry


@dataclass(frozen=True)
class Finding:
    region: str
    thing_name: str
    kind: str
    detail: str
    item: InventoryItem | None = None


def compare(region: str, item: InventoryItem, registry: Registry) -> Finding | None:
    """What is wrong with one device in one region (None: it matches its item)."""
    def finding(kind: str, detail: str) -> Finding:
        return Finding(region, item.thing_name, kind, detail, item)

    certificate = item.certificate_id
    status = registry.certificates.get(certificate) if certificate else None
    present = item.thing_name in registry.things
    # A certificate revoked anywhere is REVOKED here whatever the item's status (the machine
    # revokes every listed one); still usable here is the worst drift, reported first.
    unrevoked = sorted(c for c in item.revoked_certificate_ids - {certificate}
                       if registry.certificates.get(c) not in (None, "REVOKED"))
    if unrevoked:
        return finding(WRONG_STATE, "listed revoked but " + ", ".join(
            f"{c} {registry.certificates[c]}" for c in unrevoked) + " here, expected REVOKED")
    if item.status == "ACTIVE":
        if status is None or not present:
            return finding(MISSING, NEW_HERE if status is None and not present
                           else "certificate not registered" if status is None
                           else "thing missing")
        if status == "REVOKED":
            return finding(CONFLICT, "certificate REVOKED here, ACTIVE in the inventory")
        if status != "ACTIVE":
            return finding(WRONG_STATE, f"certificate {status}, expected ACTIVE")
        if certificate not in registry.policy_targets:
            return finding(WRONG_STATE, "device policy not attached")
        if registry.principals is not None and \
                registry.principals.get(item.thing_name) != [certificate]:
            return finding(WRONG_STATE, f"thing principals "
                           f"{registry.principals.get(item.thing_name)}, expected [{certificate}]")
        return None
    if item.status in ("INACTIVE", "REVOKED"):
        if status == "ACTIVE":
            return finding(WRONG_STATE, f"certificate ACTIVE, expected {item.status}")
        if certificate and certificate in registry.policy_targets:
            return finding(WRONG_STATE, f"device policy still attached to the {status} "
                           f"certificate, expected detached ({item.status} item)")
        others = [c for c in (registry.principals or {}).get(item.thing_name, [])
                  if c != certificate]
        if others:
            return finding(WRONG_STATE, f"thing still holds certificates {others}, expected "
                           f"none but the item's ({item.status} item)")
        return None
    if item.status == "DELETED":
        if present or status is not None:
            return finding(LEFTOVER, "tombstoned but "
                           + ("thing" if present else "certificate") + " still here")
        return None
    return finding(CONFLICT, f"unknown item status {item.status!r}")


# --- pacing -------------------------------------------------------------------------------

# The IoT calls the machine makes for one repair, per path of replication.asl.json. Used only
# to pace (the machine decides what it does); an error here costs speed, never correctness.
def planned_calls(finding: Finding) -> dict[str, int]:
    item = finding.item
    planned = _planned(finding, item)
    listed = len(item.revoked_certificate_ids) if item else 0
    if listed:  # the machine revokes every certificate the item lists first
        planned["UpdateCertificate"] = planned.get("UpdateCertificate", 0) + listed
    return planned


def _planned(finding: Finding, item: InventoryItem | None) -> dict[str, int]:
    register = "RegisterCertificate" if item and item.issuer == "OWN_CA" \
        else "RegisterCertificateWithoutCA"
    if item is None or item.status == "ACTIVE":
        new = {"CreateThing": 1, register: 1, "AttachThingPrincipal": 1, "AttachPolicy": 1}
        if finding.kind == MISSING and finding.detail == NEW_HERE:
            return new  # the 4-call path: thing and certificate both new here
        return {**new, "UpdateCertificate": 1, "ListThingPrincipals": 1}
    if item.status in ("INACTIVE", "REVOKED"):
        return {"UpdateCertificate": 1, "DetachThingPrincipal": 1, "DetachPolicy": 1,
                "ListThingPrincipals": 1}
    return {"UpdateCertificate": 1, "DetachThingPrincipal": 1, "DetachPolicy": 1,
            "DeleteCertificate": 1, "ListThingPrincipals": 1, "DeleteThing": 1}


_EPSILON = 1e-9
_MIN_WAIT_SECONDS = 1e-4


class QuotaLimiter:
    """One token bucket per API at `quota x utilization x factor` requests/second, bursts
    of at most `burst_seconds` of that rate. `factor` adapts (AIMD): multiplied by
    `decrease` on throttling, at most once per `cooldown_seconds` (the repairs in flight
    report the same burst), and grows back by `recovery` per second without it."""

    def __init__(self, quotas: Mapping[str, float], utilization: float, *,
                 burst_seconds: float = 0.2, recovery: float = 0.05, decrease: float = 0.5,
                 cooldown_seconds: float = 1.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.quotas = dict(quotas)
        self.utilization = utilization
        self.burst_seconds = burst_seconds
        self.recovery = recovery
        self.decrease = decrease
        self.cooldown_seconds = cooldown_seconds
        self.factor = 1.0
        self._clock = clock
        self._sleep = sleep
        now = clock()
        self._tokens = {api: self._capacity(api) for api in self.quotas}
        self._updated = now
        self._last_throttle = -math.inf
        self._lock = threading.Lock()
        self.granted: Counter[str] = Counter()

    def rate(self, api: str) -> float:
        return self.quotas[api] * self.utilization * self.factor

    def _capacity(self, api: str) -> float:
        return max(1.0, self.rate(api) * self.burst_seconds)

    def _refill(self, now: float) -> None:
        elapsed = now - self._updated
        if elapsed <= 0:
            return
        self.factor = min(1.0, self.factor + self.recovery * (now - max(self._last_throttle,
                                                                        self._updated)))
        for api in self._tokens:
            self._tokens[api] = min(self._capacity(api),
                                    self._tokens[api] + elapsed * self.rate(api))
        self._updated = now

    def acquire(self, calls: Mapping[str, int]) -> None:
        """Block until every API in `calls` has its tokens, then take them all at once."""
        unknown = set(calls) - set(self.quotas)
        if unknown:
            raise KeyError(f"no quota configured for {sorted(unknown)}")
        while True:
            with self._lock:
                self._refill(self._clock())
                waits = [(n - self._tokens[api]) / self.rate(api)
                         for api, n in calls.items() if self._tokens[api] + _EPSILON < n]
                if not waits:
                    for api, n in calls.items():
                        self._tokens[api] -= n
                        self.granted[api] += n
                    return
                delay = max(waits)
            # a floor: a wait shorter than the clock's resolution would never end
            self._sleep(max(delay, _MIN_WAIT_SECONDS))

    def throttled(self) -> None:
        with self._lock:
            now = self._clock()
            self._refill(now)
            if now - self._last_throttle < self.cooldown_seconds:
                return  # the same burst, already answered
            self.factor = max(0.05, self.factor * self.decrease)
            self._last_throttle = now

    def binding_rate(self, apis: Iterable[str]) -> float:
        return min(self.rate(api) for api in apis)


# --- applying repairs ---------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    ok: bool
    error: str = ""
    # The repair met throttling: its retries absorbed it (ok) or ran out (not ok). Either
    # way the pace drops. An executor that cannot see absorbed throttling (Step Functions
    # retries inside the execution) reports only the failures.
    throttled: bool = False


class Executor(Protocol):
    def apply(self, region: str, thing_name: str) -> Outcome: ...


def _is_throttling(error: str) -> bool:
    return "Throttl" in error or "TooManyRequests" in error or "RequestLimitExceeded" in error


class MachineExecutor:
    """Repairs through the region's declared replication machine (StartSyncExecution): the
    same states, the same retries, the same convergence as a replicated record."""

    def __init__(self, sfn_for_region: Callable[[str], Any], machine_arn_for_region:
                 Callable[[str], str]) -> None:
        self._sfn_for_region = sfn_for_region
        self._machine_arn = machine_arn_for_region

    def apply(self, region: str, thing_name: str) -> Outcome:
        request_id = f"reconcile-{uuid.uuid4().hex}"
        response = self._sfn_for_region(region).start_sync_execution(
            stateMachineArn=self._machine_arn(region), name=request_id,
            input=json.dumps([{"eventID": request_id, "reconcile": {"thingName": thing_name}}]))
        if response.get("status") != "SUCCEEDED":
            error = f"{response.get('error')}: {response.get('cause')}"
            return Outcome(False, error, _is_throttling(error))
        result = json.loads(response.get("output") or "{}")
        if result.get("batchItemFailures"):
            failure = result.get("failure") or {}
            error = f"{failure.get('error')}: {failure.get('cause')}"
            return Outcome(False, error, _is_throttling(error))
        return Outcome(True)


class Journal:
    """Append-only record of the devices one run finished: its rerun after a crash skips them.
    It serves only to resume that run: `finish` deletes it once the run completes, and with
    a `run` id only the entries recorded under that id count (a run that spans several
    invocations, like an evacuation from its flip to its restore)."""

    def __init__(self, path: Path | None, run: str | None = None) -> None:
        self.path = path
        self.run = run
        self.done: set[str] = set()
        self._lock = threading.Lock()
        self._file: TextIO | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                for line in path.read_text().splitlines():
                    try:
                        entry = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line cut short by the crash
                    if entry.get("ok") and entry.get("run") == run:
                        self.done.add(entry["thing"])
            self._file = path.open("a", buffering=1)

    def record(self, thing_name: str, outcome: Outcome) -> None:
        with self._lock:
            if outcome.ok:
                self.done.add(thing_name)
            if self._file is not None:
                entry = {"thing": thing_name, "ok": outcome.ok, "error": outcome.error}
                self._file.write(json.dumps({**entry, "run": self.run} if self.run else entry) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def finish(self) -> None:
        """The run completed: nothing is left to resume, so nothing may be skipped later."""
        self.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


class Progress:
    """One self-rewriting line: bar, done/total, rate, ETA, failures."""

    def __init__(self, total: int, out: TextIO | None, label: str,
                 clock: Callable[[], float] = time.monotonic, every: float = 0.5) -> None:
        self.total, self.out, self.label = total, out, label
        self.done = self.failed = 0
        self._clock = clock
        self._start = clock()
        self._last = -math.inf
        self._every = every

    def rate(self) -> float:
        elapsed = self._clock() - self._start
        return self.done / elapsed if elapsed > 0 else 0.0

    def eta_seconds(self) -> float:
        rate = self.rate()
        return (self.total - self.done) / rate if rate > 0 else math.inf

    def update(self, ok: bool, force: bool = False) -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        now = self._clock()
        if self.out is None or (not force and now - self._last < self._every
                                and self.done < self.total):
            return
        self._last = now
        share = self.done / self.total if self.total else 1.0
        bar = "#" * int(share * 30)
        eta = self.eta_seconds()
        eta_text = "--" if math.isinf(eta) else f"{int(eta // 60)}m{int(eta % 60):02d}s"
        self.out.write(f"\r{self.label} [{bar:<30}] {share:6.1%} {self.done}/{self.total} "
                       f"{self.rate():7.1f}/s ETA {eta_text} failed {self.failed}")
        if self.done >= self.total:
            self.out.write("\n")
        self.out.flush()


@dataclass
class RepairResult:
    repaired: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # thing -> last error
    throttled_outcomes: int = 0  # repairs whose in-machine retries ran out (requeued)
    throttled_signals: int = 0  # repairs that met throttling at all (the pace dropped)
    skipped_done: int = 0
    elapsed_seconds: float = 0.0


def repair(findings: Sequence[Finding], executor: Executor, limiter: QuotaLimiter, *,
           journal: Journal | None = None, progress_out: TextIO | None = None,
           in_flight: int | None = None, max_attempts: int = 5,
           backoff_seconds: float = 1.0, clock: Callable[[], float] = time.monotonic,
           sleep: Callable[[float], None] = time.sleep) -> RepairResult:
    """Apply every repairable finding through `executor`, paced by `limiter`. A failed repair
    is retried `max_attempts` times with exponential backoff (throttling halves the rate)."""
    journal = journal or Journal(None)
    todo = [f for f in findings if f.kind in REPAIRABLE]
    result = RepairResult(skipped_done=sum(1 for f in todo if f.thing_name in journal.done))
    queue: deque[tuple[Finding, int, float]] = deque(
        (f, 0, 0.0) for f in todo if f.thing_name not in journal.done)
    if not queue:
        return result
    plans = {f.thing_name: planned_calls(f) for f, _, _ in queue}
    apis = {api for plan in plans.values() for api in plan}
    if in_flight is None:
        in_flight = max(1, min(64, int(2 * limiter.binding_rate(apis))))
    progress = Progress(len(queue), progress_out, f"{queue[0][0].region}", clock)
    start = clock()
    running: dict[Future[Outcome], tuple[Finding, int]] = {}

    def run(finding: Finding) -> Outcome:
        limiter.acquire(plans[finding.thing_name])
        try:
            return executor.apply(finding.region, finding.thing_name)
        except Exception as error:  # an SDK error reaching the tool is a failed attempt
            text = f"{type(error).__name__}: {error}"
            return Outcome(False, text, _is_throttling(text))

    with ThreadPoolExecutor(max_workers=in_flight) as pool:
        while queue or running:
            now = clock()
            while queue and len(running) < in_flight and queue[0][2] <= now:
                finding, attempt, _ = queue.popleft()
                running[pool.submit(run, finding)] = (finding, attempt)
            if not running:
                sleep(max(0.0, queue[0][2] - clock()))
                continue
            finished, _ = wait(list(running), timeout=0.05, return_when=FIRST_COMPLETED)
            for future in finished:
                finding, attempt = running.pop(future)
                outcome = future.result()
                if outcome.throttled:
                    result.throttled_signals += 1
                    limiter.throttled()
                    if not outcome.ok:
                        result.throttled_outcomes += 1
                if outcome.ok or attempt + 1 >= max_attempts:
                    journal.record(finding.thing_name, outcome)
                    progress.update(outcome.ok)
                    if outcome.ok:
                        result.repaired += 1
                    else:
                        result.failed[finding.thing_name] = outcome.error
                else:
                    due = clock() + backoff_seconds * 2 ** attempt
                    queue.append((finding, attempt + 1, due))
    result.elapsed_seconds = clock() - start
    return result


# --- one region, end to end ---------------------------------------------------------------

@dataclass
class RegionReport:
    region: str
    devices: int = 0
    findings: list[Finding] = field(default_factory=list)
    repair: RepairResult | None = None

    def counts(self) -> Counter[str]:
        return Counter(f.kind for f in self.findings)


def reconcile_region(targets: RegionTargets, *, iot: Any, dynamodb: Any,
                     executor: Executor | None, limiter: QuotaLimiter, deep: bool = False,
                     journal: Journal | None = None, progress_out: TextIO | None = None,
                     only_things: set[str] | None = None,
                     in_flight: int | None = None) -> RegionReport:
    """Compare one region with its own replica; repair through `executor` when given."""
    report = RegionReport(targets.region)
    items = [i for i in scan_inventory(dynamodb, targets.table_name)
             if only_things is None or i.thing_name in only_things]
    report.devices = len(items)
    registry = list_registry(iot, targets.device_policy_name, limiter,
                             deep_things=[i.thing_name for i in items if i.status != "DELETED"]
                             if deep else ())
    named = {i.thing_name for i in items}
    for item in sorted(items, key=lambda i: i.thing_name):
        found = compare(targets.region, item, registry)
        if found is not None:
            report.findings.append(found)
    for thing in sorted(registry.things - named):
        if only_things is None or thing in only_things:
            report.findings.append(Finding(targets.region, thing, EXTRA,
                                           "thing in the registry, no inventory item"))
    if executor is not None:
        report.repair = repair(report.findings, executor, limiter, journal=journal,
                               progress_out=progress_out, in_flight=in_flight)
    return report


def render_report(reports: Sequence[RegionReport], out: TextIO, examples: int = 5) -> None:
    for report in reports:
        counts = report.counts()
        summary = ", ".join(f"{counts[k]} {k}" for k in (*REPAIRABLE, CONFLICT, EXTRA)
                            if counts[k]) or "in sync"
        print(f"{report.region}: {report.devices} devices in its replica: {summary}", file=out)
        for finding in report.findings[:examples]:
            print(f"  {finding.kind:<20} {finding.thing_name}: {finding.detail}", file=out)
        if len(report.findings) > examples:
            print(f"  ... {len(report.findings) - examples} more", file=out)
        if report.repair is not None:
            r = report.repair
            print(f"  repaired {r.repaired} in {r.elapsed_seconds:.1f} s, "
                  f"{len(r.failed)} failed, {r.skipped_done} already done (journal), "
                  f"{r.throttled_outcomes} throttled attempts requeued", file=out)
            for thing, error in sorted(r.failed.items())[:examples]:
                print(f"  failed {thing}: {error}", file=out)
            if r.skipped_done:
                print(f"  {r.skipped_done} still differ though the interrupted run repaired them "
                      "(its journal is now deleted): run again to repair them", file=out)
