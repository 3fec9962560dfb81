"""Take a region out of the device domain on purpose, move its devices, and bring it back.

    python -m tools.evacuate dev --region eu-west-1                 # dry run: the plan
    python -m tools.evacuate dev --region eu-west-1 --apply         # evacuate
    python -m tools.evacuate dev --region eu-west-1 --restore --apply   # backfill, readmit

Evacuate, each step decided by what it observes (a rerun picks up where one stopped):
1. preflight: another region is in DNS (its controls not inverted, its Route53 status
   healthy), every ACTIVE device of the inventory is usable there (the comparison of
   `tools.reconcile`, tools/replication_reconcile.py, against that region's registry), and
   inverting the region's controls would take it out of DNS (each is a child of its
   endpoint's combined check, which needs every child healthy);
2. flip every evacuation control of the region (device domain, CVM): `Inverted` (the stack
   declares them and Pulumi ignores the flag: components/failover.py);
3. wait until Route53 reports the region's combined checks unhealthy (CloudWatch
   `AWS/Route53 HealthCheckStatus`: GetHealthCheckStatus does not serve calculated checks),
   then the record's TTL, so resolvers stop answering with the region;
4. disconnect the devices still connected there (AWS IoT data plane DeleteConnection, one
   call per ACTIVE device of the inventory, `ResourceNotFoundException` = not connected),
   paced by `--rate`, with a progress bar and a journal; devices reconnect through DNS to
   the next region. The journal belongs to this evacuation, from its flip to its restore: a
   rerun skips the devices it already disconnected, a later evacuation sweeps them all again;
5. verify: the devices disconnected are not back in the region (a second DeleteConnection
   finds none) and every device is usable in another region in DNS.
Restore: backfill the region (`tools.reconcile --region X --apply`, the same code), then
invert the controls back (the evacuation is over: its state and journal are deleted) and wait
for Route53 to report the region healthy.

Exit status: 0 done (or nothing to do), 1 a step failed or a check did not hold, 2 the dry
run found work, 3 bad arguments or stack, or AWS not reachable (one line naming the fix).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TextIO

from botocore.exceptions import ClientError

from tools import stack_outputs
from tools.aws_clients import ClientFactory, boto3_clients
from tools.aws_errors import AWS_ERRORS, describe
from tools.files import journal_dir_refusal
from tools.replication_reconcile import (
    Journal,
    Outcome,
    Progress,
    QuotaLimiter,
    RegionTargets,
    reconcile_region,
    targets_from_outputs,
)

PROJECT_DIR = Path(__file__).resolve().parent.parent
# Route53 publishes health-check metrics in us-east-1 (CloudWatch, "Monitoring health checks").
ROUTE53_METRICS_REGION = "us-east-1"
# The device domain's latency records' TTL (components/edge/component.py LATENCY_RECORD_TTL).
DEFAULT_TTL_SECONDS = 60
# AWS publishes no rate for DeleteConnection on the IoT Core quotas page we could find: a
# conservative default, raise with --rate once the account's quota is known.
DEFAULT_DISCONNECT_RATE = 20.0
# The registry's list APIs, read at half their AWS default rates (requests per second).
REGISTRY_LIST_QUOTAS = {"ListThings": 10.0, "ListCertificates": 10.0, "ListTargetsForPolicy": 10.0}


class EvacuationError(Exception):
    """A step cannot go on; one line naming what to do."""


@dataclass(frozen=True)
class Endpoint:
    key: str  # "device", "cvm"
    health_check_id: str
    control_id: str


@dataclass(frozen=True)
class RegionPlan:
    region: str
    endpoints: tuple[Endpoint, ...]
    targets: RegionTargets | None


def endpoints_from_outputs(outputs: Mapping[str, Any]) -> dict[str, RegionPlan]:
    """Per region, its latency endpoints' checks and controls as the stack exports them."""
    targets = targets_from_outputs(outputs)
    plans = {}
    for region, values in (outputs.get("regions") or {}).items():
        evacuation = values.get("evacuation")
        if not isinstance(evacuation, Mapping) or "device" not in evacuation:
            raise stack_outputs.OutputsError(
                f"region {region} exports no evacuation controls (`regions.{region}.evacuation`): "
                "deploy the stack with this version (`pulumi up`) first")
        plans[region] = RegionPlan(region, tuple(
            Endpoint(key, str(e["healthCheckId"]), str(e["controlId"]))
            for key, e in sorted(evacuation.items())), targets.get(region))
    return plans


# --- observed state -----------------------------------------------------------------------

def control_inverted(route53: Any, control_id: str) -> tuple[bool, int]:
    check = route53.get_health_check(HealthCheckId=control_id)["HealthCheck"]
    return bool(check["HealthCheckConfig"].get("Inverted")), int(check["HealthCheckVersion"])


def control_problem(route53: Any, endpoint: Endpoint) -> str | None:
    """Why inverting the endpoint's control would leave the region in DNS; None when it would
    take it out: the control must be a child of the endpoint's combined CALCULATED check, which
    needs every child healthy and is not inverted itself (API HealthCheckConfig:
    ChildHealthChecks, HealthThreshold, Inverted). The control's own type is not checked: the
    README's fallback for it is a CLOUDWATCH_METRIC check on an always-OK alarm."""
    combined = route53.get_health_check(HealthCheckId=endpoint.health_check_id)["HealthCheck"]["HealthCheckConfig"]
    children = list(combined.get("ChildHealthChecks") or [])
    if combined.get("Type") != "CALCULATED" or endpoint.control_id not in children:
        return (f"{endpoint.key}: control {endpoint.control_id} is not a child of the region's "
                f"health check {endpoint.health_check_id}")
    if combined.get("Inverted") or int(combined.get("HealthThreshold", 0)) < len(children):
        return (f"{endpoint.key}: health check {endpoint.health_check_id} stays healthy with one "
                f"child unhealthy (threshold {combined.get('HealthThreshold')} of {len(children)}"
                + (", inverted" if combined.get("Inverted") else "") + ")")
    return None


def set_control(route53: Any, control_id: str, inverted: bool) -> bool:
    """Invert (or un-invert) one control; False when it already was. The version guards
    against an intervening change (UpdateHealthCheck, HealthCheckVersion)."""
    current, version = control_inverted(route53, control_id)
    if current == inverted:
        return False
    route53.update_health_check(HealthCheckId=control_id, Inverted=inverted,
                                HealthCheckVersion=version)
    return True


def route53_healthy(cloudwatch: Any, health_check_id: str, now: datetime) -> bool | None:
    """Route53's latest verdict on a check (HealthCheckStatus, 1 healthy, 0 not); None when
    no datapoint in the last five minutes."""
    answer = cloudwatch.get_metric_statistics(
        Namespace="AWS/Route53", MetricName="HealthCheckStatus",
        Dimensions=[{"Name": "HealthCheckId", "Value": health_check_id}],
        StartTime=now - timedelta(minutes=5), EndTime=now, Period=60, Statistics=["Minimum"])
    points = sorted(answer.get("Datapoints") or [], key=lambda p: p["Timestamp"])
    return None if not points else points[-1]["Minimum"] >= 1


@dataclass
class State:
    """What an evacuation decided so far (a file per stack and region): its run id (minted
    when it flips the controls, the id its journal's entries carry) and the DNS wait's start;
    every other step reads AWS again. Unreadable, it is empty: a new run, every device swept."""

    path: Path | None
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None) -> State:
        if path is not None and path.exists():
            try:
                data = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                data = None
            if isinstance(data, dict):
                return cls(path, data)
        return cls(path)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value
        self._write()

    def reset(self, **data: Any) -> None:
        self.data = dict(data)
        self._write()

    def clear(self) -> None:
        self.data = {}
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def _write(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.data))


@dataclass
class Run:
    plans: dict[str, RegionPlan]
    region: str
    clients: ClientFactory
    out: TextIO
    progress: TextIO | None
    apply: bool
    state: State
    journal_dir: Path | None
    stack: str
    rate: float
    ttl_seconds: float
    timeout_seconds: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
    poll_seconds: float = 10.0
    settle_seconds: float = 30.0  # before checking that no disconnected device came back
    calls: dict[str, int] = field(default_factory=dict)

    def say(self, text: str) -> None:
        print(text, file=self.out)

    def journal_path(self) -> Path | None:
        return (self.journal_dir / f"evacuate-{self.stack}-{self.region}.jsonl"
                if self.journal_dir else None)

    @property
    def route53(self) -> Any:
        return self.clients("route53", ROUTE53_METRICS_REGION)

    @property
    def cloudwatch(self) -> Any:
        return self.clients("cloudwatch", ROUTE53_METRICS_REGION)

    # -- steps -------------------------------------------------------------------------------

    def in_dns(self, region: str) -> bool:
        plan = self.plans[region]
        if any(control_inverted(self.route53, e.control_id)[0] for e in plan.endpoints):
            return False
        device = next(e for e in plan.endpoints if e.key == "device")
        return route53_healthy(self.cloudwatch, device.health_check_id, self.now()) is not False

    def usable_elsewhere(self, others: list[str]) -> tuple[int, list[str]]:
        """(ACTIVE devices, those usable in none of `others`), by reconcile's comparison."""
        problems: dict[str, set[str]] = {}
        devices: set[str] = set()
        for other in others:
            targets = self.plans[other].targets
            if targets is None:
                raise EvacuationError(f"{other} does not run replication: its registry cannot be "
                                      "compared with the inventory")
            report = reconcile_region(targets, iot=self.clients("iot", other),
                                      dynamodb=self.clients("dynamodb", other), executor=None,
                                      limiter=QuotaLimiter(REGISTRY_LIST_QUOTAS, 0.5))
            devices |= set(active_things(self.clients("dynamodb", other), targets.table_name))
            for finding in report.findings:
                if finding.item is not None and finding.item.status == "ACTIVE":
                    problems.setdefault(finding.thing_name, set()).add(other)
        stranded = sorted(t for t, where in problems.items() if where == set(others))
        return len(devices), stranded

    def wait_for(self, what: str, done: Callable[[], bool], seconds: float) -> bool:
        deadline = self.clock() + seconds
        while True:
            if done():
                return True
            if self.clock() >= deadline:
                self.say(f"  {what}: not yet after {seconds:.0f} s")
                return False
            self.sleep(self.poll_seconds)

    def evacuate(self) -> int:
        plan = self.plans[self.region]
        others = [r for r in sorted(self.plans) if r != self.region and self.in_dns(r)]
        self.say(f"evacuate {self.region} ({', '.join(e.key for e in plan.endpoints)}); "
                 f"regions in DNS besides it: {', '.join(others) or 'none'}")
        if not others:
            raise EvacuationError(f"no other region is in DNS: evacuating {self.region} would leave "
                                  "devices nowhere to go (restore another region first)")
        devices, stranded = self.usable_elsewhere(others)
        self.say(f"1 preflight: {devices} ACTIVE devices, {len(stranded)} usable in no other region"
                 + (f" (e.g. {', '.join(stranded[:5])})" if stranded else ""))
        if stranded:
            raise EvacuationError(f"{len(stranded)} devices are not usable in {', '.join(others)}: "
                                  f"run `python -m tools.reconcile {self.stack} --region <r> --apply` "
                                  "for those regions first")
        unwired = [problem for e in plan.endpoints if (problem := control_problem(self.route53, e))]
        if unwired:
            raise EvacuationError("inverting the controls would leave the region in DNS: "
                                  + "; ".join(unwired) + f". Deploy the stack as declared "
                                  f"(`pulumi up -s {self.stack}`), then evacuate")
        flips = [e for e in plan.endpoints if not control_inverted(self.route53, e.control_id)[0]]
        self.say(f"2 controls: {len(plan.endpoints) - len(flips)} of {len(plan.endpoints)} inverted"
                 + (f"; invert {', '.join(e.key for e in flips)}" if flips else ""))
        if not self.apply:
            self.say(f"3 then wait for Route53 and {self.ttl_seconds:.0f} s of TTL; 4 disconnect the "
                     f"devices connected in {self.region} at {self.rate:g}/s; 5 verify. Dry run: "
                     "nothing changed (--apply to act)")
            return 2
        if flips or not self.state.data.get("run"):
            # A new evacuation: the region was in DNS (or its controls were inverted by hand),
            # so any device may be connected there. Minted before the flip: a crash between
            # the two cannot leave an earlier evacuation's journal counting.
            self.state.reset(run=uuid.uuid4().hex)
        for endpoint in flips:
            set_control(self.route53, endpoint.control_id, True)
        if not self.wait_for(f"Route53 reports {self.region} unhealthy", lambda: all(
                route53_healthy(self.cloudwatch, e.health_check_id, self.now()) is False
                for e in plan.endpoints), self.timeout_seconds):
            return 1
        since = self.state.data.get("outOfDnsAt")
        if since is None:
            since = self.now().timestamp()
            self.state.set("outOfDnsAt", since)
        remaining = self.ttl_seconds - (self.now().timestamp() - float(since))
        self.say(f"3 Route53 reports {self.region} unhealthy; TTL wait {max(0.0, remaining):.0f} s")
        if remaining > 0:
            self.sleep(remaining)
        moved = self.disconnect()
        return self.verify(others, moved)

    def disconnect(self) -> list[str]:
        targets = self.plans[self.region].targets
        if targets is None:
            raise EvacuationError(f"{self.region} does not run replication: no inventory to list")
        things = active_things(self.clients("dynamodb", self.region), targets.table_name)
        journal = Journal(self.journal_path(), run=self.state.data.get("run"))
        limiter = QuotaLimiter({"DeleteConnection": self.rate}, 1.0, clock=self.clock,
                               sleep=self.sleep)
        data = self.clients("iot-data", self.region)
        todo = [t for t in things if t not in journal.done]
        progress = Progress(len(todo), self.progress, f"4 disconnect {self.region}", self.clock)
        moved: list[str] = []
        start = self.clock()
        try:
            for thing in todo:
                limiter.acquire({"DeleteConnection": 1})
                self.calls["DeleteConnection"] = self.calls.get("DeleteConnection", 0) + 1
                try:
                    data.delete_connection(clientId=thing, preventWillMessage=False)
                    moved.append(thing)
                except ClientError as error:
                    if error_code(error) == "ThrottlingException":
                        limiter.throttled()
                        journal.record(thing, Outcome(False, "throttled", True))
                        progress.update(False)
                        continue
                    if error_code(error) != "ResourceNotFoundException":
                        raise
                    # not connected here
                journal.record(thing, Outcome(True))
                progress.update(True)
        finally:
            journal.close()
        self.say(f"4 disconnected {len(moved)} of {len(things)} devices "
                 f"({len(things) - len(todo)} already done by an earlier run) with {len(todo)} "
                 f"DeleteConnection calls in {self.clock() - start:.1f} s")
        return moved

    def verify(self, others: list[str], moved: list[str]) -> int:
        """Devices disconnected here that came back (a resolver ignoring the TTL) are found
        by a second DeleteConnection, which moves them again; the rest must be usable in a
        region in DNS."""
        data = self.clients("iot-data", self.region)
        back = []
        if moved:
            self.sleep(self.settle_seconds)  # time to reconnect, wherever DNS sends them
        for thing in moved:
            self.calls["DeleteConnection"] = self.calls.get("DeleteConnection", 0) + 1
            try:
                data.delete_connection(clientId=thing, preventWillMessage=False)
                back.append(thing)
            except ClientError as error:
                if error_code(error) != "ResourceNotFoundException":
                    raise
        devices, stranded = self.usable_elsewhere(others)
        self.say(f"5 verify: {len(back)} devices back in {self.region}, {len(stranded)} of {devices} "
                 f"usable in no region in DNS")
        if back:
            self.say(f"  reconnected to {self.region} (a resolver ignoring the TTL?) and disconnected "
                     f"again: {', '.join(back[:5])}; run again to check them")
        return 1 if back or stranded else 0

    def restore(self) -> int:
        plan = self.plans[self.region]
        inverted = [e for e in plan.endpoints if control_inverted(self.route53, e.control_id)[0]]
        self.say(f"restore {self.region}: {len(inverted)} of {len(plan.endpoints)} controls inverted")
        if not self.apply:
            self.say(f"1 backfill {self.region} (tools.reconcile --apply); 2 readmit (invert the "
                     "controls back); 3 wait for Route53. Dry run: nothing changed (--apply to act)")
            return 2 if inverted else 0
        from tools.reconcile import load_stack, run as reconcile

        targets, settings = load_stack(self.program, self.stack, self.outputs)
        # Deep: only listing each thing's principals finds a certificate left attached to a
        # disabled device, so the backfill before readmitting the region must list them.
        code, _ = reconcile(targets, settings, self.clients, regions=[self.region], apply=True,
                            deep=True, journal_dir=self.journal_dir, stack=self.stack,
                            utilization=None, things=None, out=self.out, progress=self.progress)
        if code != 0:
            self.say(f"1 backfill left failures or conflicts: {self.region} stays out of DNS")
            return 1
        for endpoint in inverted:
            set_control(self.route53, endpoint.control_id, False)
        # The evacuation is over: the next one starts afresh (a new run id, every device).
        self.state.clear()
        Journal(self.journal_path()).finish()
        if not self.wait_for(f"Route53 reports {self.region} healthy", lambda: all(
                route53_healthy(self.cloudwatch, e.health_check_id, self.now()) is True
                for e in plan.endpoints), self.timeout_seconds):
            return 1
        self.say(f"3 {self.region} is back in DNS")
        return 0

    program: Path = PROJECT_DIR
    outputs: Mapping[str, Any] = field(default_factory=dict)


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def active_things(dynamodb: Any, table_name: str) -> list[str]:
    """The ACTIVE devices of one inventory replica (tools/replication_reconcile.py's scan)."""
    from tools.replication_reconcile import scan_inventory

    return sorted(i.thing_name for i in scan_inventory(dynamodb, table_name) if i.status == "ACTIVE")


def finite(value: str) -> float:
    """A number option: nan or inf would pass every range check and wait forever, or not."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"{value!r} is not a finite number")
    return number


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None,
         clients: ClientFactory | None = None, **run_options: Any) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    parser = argparse.ArgumentParser(prog="python -m tools.evacuate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stack", help="stack name (reads Pulumi.<stack>.yaml)")
    parser.add_argument("--region", required=True, help="the region to evacuate or restore")
    parser.add_argument("--restore", action="store_true", help="backfill and readmit the region")
    parser.add_argument("--apply", action="store_true", help="act (default: dry run, the plan)")
    parser.add_argument("--rate", type=finite, default=DEFAULT_DISCONNECT_RATE,
                        help="DeleteConnection calls per second (default %(default)s)")
    parser.add_argument("--ttl-seconds", type=finite, default=DEFAULT_TTL_SECONDS,
                        help="wait after Route53 drops the region (the records' TTL)")
    parser.add_argument("--timeout", type=finite, default=900.0,
                        help="how long to wait for Route53 (seconds)")
    parser.add_argument("--journal-dir", type=Path, default=Path(".evacuate"),
                        help="where --apply keeps its resume state (default: .evacuate)")
    parser.add_argument("--outputs", type=Path, default=None,
                        help="the stack's outputs as JSON (`pulumi stack output --json`)")
    parser.add_argument("--program", type=Path, default=PROJECT_DIR, help="Pulumi program directory")
    parser.add_argument("--profile", default=None, help="AWS profile")
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # argparse's usage error is 2, documented here as the dry run's
        return 3 if done.code == 2 else int(done.code or 0)
    if not args.rate > 0 or args.ttl_seconds < 0 or args.timeout <= 0:
        print("error: --rate and --timeout must be positive, --ttl-seconds not negative", file=err)
        return 3
    try:
        outputs = stack_outputs.load(args.stack, outputs_file=args.outputs, program=args.program)
        plans = endpoints_from_outputs(outputs)
        stack_outputs.region(outputs, args.region)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=err)
        return 3
    refusal = args.apply and journal_dir_refusal(
        args.journal_dir, ", the same on every run of this evacuation (a rerun resumes from it)")
    if refusal:
        print(refusal, file=err)
        return 3
    try:
        run = Run(plans, args.region, clients or boto3_clients(args.profile), out,
                  err if err.isatty() else None, args.apply,
                  State.load(args.journal_dir / f"evacuate-{args.stack}-{args.region}.json"
                             if args.apply else None),
                  args.journal_dir if args.apply else None, args.stack, args.rate, args.ttl_seconds,
                  args.timeout, program=args.program, outputs=outputs, **run_options)
        return run.restore() if args.restore else run.evacuate()
    except EvacuationError as error:
        print(f"error: {error}", file=err)
        return 1
    except AWS_ERRORS as error:
        print(f"error: {describe(error)}", file=err)
        return 3
    except OSError as error:  # a file it keeps (journal, state: a full disk) or reads
        where = error.filename or f"the journal in {args.journal_dir}"
        print(f"error: {where}: {error.strerror or error}: fix that (room, permissions), then run "
              "the same command: it resumes", file=err)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: what is done stays done
        print("\ninterrupted: " + (f"the steps done are in {args.journal_dir}; the same command resumes"
                                    if args.apply else "a dry run, nothing was changed"), file=err)
        return 130


if __name__ == "__main__":
    sys.exit(main())
