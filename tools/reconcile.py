"""Compare the device inventory with each region's IoT registry; repair, backfill a new region.

    python -m tools.reconcile dev                         # dry run: report only
    python -m tools.reconcile dev --apply                 # repair every region
    python -m tools.reconcile prod --region ap-south-1 --apply   # backfill a new region

Device state too: in every region that runs `shadow_replication`, the device-data records
(shadows, attributes, thing type, group memberships) are compared with the region's shadows
and registry and, with `--apply`, written there by the replication function's own code
(tools/state_reconcile.py; `--registry-only` skips it). It paces itself by the same limiter.

For each region the tool reads that region's inventory replica (never another region's),
lists the region's registry in bulk and reports devices missing, in the wrong state, left
over after deletion, conflicting, or extra (a thing no item names: reported, not deleted).
`--apply` repairs through the region's declared replication state machine
(`StartSyncExecution` with a repair request), the same code path as a replicated record.

Adding a region to a live fleet: add it to `regions`, `pulumi up` (the new replica and its
replication pipeline), then run this with `--region <new> --apply`. It paces itself by the
IoT API quotas in the stack config (`replication.iotApiQuotas`, AWS defaults when absent)
at `replication.backfillUtilization`, adapts to throttling, shows progress and an ETA, and
writes a journal (`--journal-dir`) so a rerun after a crash skips finished devices. Only
then: a run that completes deletes its journal, and a device it skips that still differs
is not in sync (exit 1; the next run repairs it).

Exit status: 0 in sync (or everything repaired), 1 failures, conflicts or differences remain
(a device the journal skipped included), 2 the dry
run found something to repair, 3 bad arguments or stack, or AWS not reachable (no credentials,
region or network: one line naming the fix).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from tools import stack_outputs
from tools.aws_clients import ClientFactory, boto3_clients
from tools.aws_errors import AWS_ERRORS, describe
from tools.files import journal_dir_refusal
from tools.state_reconcile import (
    FAILED,
    reconcile_state,
    render_state_reports,
    state_quotas,
    state_tables_from_outputs,
)
from tools.replication_reconcile import (
    CONFLICT,
    REPAIRABLE,
    Journal,
    MachineExecutor,
    QuotaLimiter,
    RegionReport,
    RegionTargets,
    reconcile_region,
    render_report,
    targets_from_outputs,
)

PROJECT_DIR = Path(__file__).resolve().parent.parent


def load_stack(program: Path, stack: str, outputs: Mapping[str, Any]
               ) -> tuple[dict[str, RegionTargets], Any]:
    """The deployed names per region (the stack's outputs) and the stack's replication
    settings (its config section, parsed by the capability's own parser)."""
    from components.replication.settings import parse_settings
    from tools.harness import load_program_stack

    spec = load_program_stack(program, stack)
    raw = spec.config.get(f"{spec.project}:replication")
    problems: list[str] = []
    settings = parse_settings(raw, lambda field, message: problems.append(
        f"{spec.project}:replication{'.' + field if field else ''}: {message}"))
    if problems:
        raise ValueError("; ".join(problems))
    targets = targets_from_outputs(outputs)
    if not targets:
        raise ValueError(f"stack {stack!r} does not run the replication capability in any "
                         "region (its outputs have no `regions.<region>.replication`)")
    return targets, settings


def run(targets: dict[str, RegionTargets], settings: Any, clients: ClientFactory, *,
        regions: list[str], apply: bool, deep: bool, journal_dir: Path | None,
        stack: str, utilization: float | None, things: set[str] | None,
        out: TextIO, progress: TextIO | None,
        state_tables: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep) -> tuple[int, list[RegionReport]]:
    """`state_tables` (region -> device-data replica): also reconcile device state there.
    `clock` and `sleep` pace the quota limiters (a test paces on a virtual clock)."""
    unknown = sorted(set(regions) - set(targets))
    if unknown:
        print(f"error: {', '.join(unknown)} not in the stack's regions "
              f"({', '.join(sorted(targets))})", file=out)
        return 3, []
    identity = clients("sts", regions[0]).get_caller_identity()
    account, partition = identity["Account"], identity["Arn"].split(":")[1]

    def machine_arn(region: str) -> str:
        return (f"arn:{partition}:states:{region}:{account}:stateMachine:"
                f"{targets[region].machine_name}")

    executor = MachineExecutor(lambda region: clients("stepfunctions", region), machine_arn) \
        if apply else None
    reports = []
    for region in regions:
        # One limiter per region: the quotas are per account *and region*.
        limiter = QuotaLimiter(settings.iot_api_quotas,
                               utilization or settings.backfill_utilization, clock=clock, sleep=sleep)
        journal = Journal(journal_dir / f"{stack}-{region}.jsonl"
                          if apply and journal_dir else None)
        try:
            reports.append(reconcile_region(
                targets[region], iot=clients("iot", region),
                dynamodb=clients("dynamodb", region), executor=executor, limiter=limiter,
                deep=deep, journal=journal, progress_out=progress, only_things=things))
        finally:
            journal.close()
        journal.finish()  # the region's run completed: nothing to resume
    render_report(reports, out)
    state = []
    for region in regions:
        if region in (state_tables or {}):
            state.append(reconcile_state(
                region, dynamodb=clients("dynamodb", region),
                table_name=(state_tables or {})[region], iot=clients("iot", region),
                iot_data=clients("iot-data", region),
                limiter=QuotaLimiter(state_quotas(settings.iot_api_quotas),
                                     utilization or settings.backfill_utilization, clock=clock, sleep=sleep),
                apply=apply, progress_out=progress))
    render_state_reports(state, out)
    state_failed = any(r.counts[FAILED] for r in state)
    if apply:
        unresolved = any(r.repair and (r.repair.failed or r.repair.skipped_done) for r in reports) or \
            any(f.kind == CONFLICT for r in reports for f in r.findings) or state_failed
        return (1 if unresolved else 0), reports
    pending = any(f.kind in REPAIRABLE or f.kind == CONFLICT for r in reports
                  for f in r.findings) or any(r.pending for r in state)
    return (2 if pending else 0), reports


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None,
         clients: ClientFactory | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr  # per call: redirected streams are used
    parser = argparse.ArgumentParser(prog="python -m tools.reconcile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stack", help="stack name (reads Pulumi.<stack>.yaml)")
    parser.add_argument("--region", action="append", default=[],
                        help="only this region (repeatable; default: every region)")
    parser.add_argument("--apply", action="store_true",
                        help="repair through each region's replication machine "
                             "(default: dry run, report only)")
    parser.add_argument("--deep", action="store_true",
                        help="also check each thing's attached certificates "
                             "(one ListThingPrincipals per device)")
    parser.add_argument("--thing", action="append", default=None,
                        help="only this thing (repeatable)")
    parser.add_argument("--journal-dir", type=Path, default=Path(".reconcile"),
                        help="where --apply keeps its resume journal (default: .reconcile)")
    parser.add_argument("--utilization", type=float, default=None,
                        help="share of each IoT API quota to use (default: from the stack)")
    parser.add_argument("--outputs", type=Path, default=None,
                        help="the stack's outputs as JSON (`pulumi stack output --json`); "
                             "default: ask the Pulumi CLI")
    parser.add_argument("--program", type=Path, default=PROJECT_DIR,
                        help="Pulumi program directory")
    parser.add_argument("--profile", default=None, help="AWS profile")
    parser.add_argument("--registry-only", action="store_true",
                        help="skip the device state (shadows, attributes, groups)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # argparse's usage error is 2, documented here as the dry run's
        return 3 if done.code == 2 else int(done.code or 0)

    if args.utilization is not None and not 0 < args.utilization <= 1:
        print("error: --utilization must be in (0, 1]", file=err)
        return 3
    try:
        outputs = stack_outputs.load(args.stack, outputs_file=args.outputs, program=args.program)
        targets, settings = load_stack(args.program, args.stack, outputs)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=err)
        return 3
    refusal = args.apply and journal_dir_refusal(args.journal_dir, "")
    if refusal:
        print(refusal, file=err)
        return 3
    try:
        code, _ = run(targets, settings, clients or boto3_clients(args.profile),
                      regions=args.region or sorted(targets), apply=args.apply, deep=args.deep,
                      journal_dir=args.journal_dir, stack=args.stack,
                      utilization=args.utilization,
                      things=set(args.thing) if args.thing else None, out=out, progress=err,
                      state_tables=None if args.registry_only
                      else state_tables_from_outputs(outputs))
    except AWS_ERRORS as error:  # no credentials, region or network, or refused: one line
        print(f"error: {describe(error)}", file=err)
        return 3
    except OSError as error:  # the journal (a full disk) or a file it reads
        print(f"error: {error.filename or args.journal_dir}: {error.strerror or error}: fix that, "
              "then run the same command: it resumes", file=err)
        return 1
    except KeyboardInterrupt:  # what was repaired stays repaired
        print("\ninterrupted: " + (f"the repairs done are in {args.journal_dir}; the same command resumes"
                                    if args.apply else "a dry run, nothing was changed"), file=err)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
