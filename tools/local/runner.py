"""The local run, phase by phase: PKI, evaluate, enforce the pack, break wires, open the world
(materialise and emulate the capabilities the chosen journeys need), drive the journeys;
everything torn down whatever happens."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.harness import ProgramFailed, ProgramStack, StackGraph, evaluate_program, load_program_stack
from tools.local import journeys, pki_material
from tools.local.journeys import JourneyRun, JourneyStopped
from tools.local.materialise import MaterialiseError, short_type
from tools.local.report import JourneyResult, Outcome, PolicySummary, Progress, RunReport, StepResult
from tools.local.world import CONVERGE_SECONDS, PROJECT_DIR, World, open_world

POLICY_CONFIG_DIR = PROJECT_DIR / "policy" / "config"
DRAIN_SECONDS = 10  # executions a failed journey left running get this long at teardown


class SetupError(Exception):
    """The run cannot start (bad arguments, the program or its config failed)."""


@dataclass
class RunOptions:
    stack: str = "dev"
    regions: list[str] | None = None
    journey: str | None = None
    breaks: list[str] = field(default_factory=list)
    project_dir: Path = PROJECT_DIR
    pki: pki_material.LocalPki | None = None  # None: a new one (runs that share one share
    # the stack's evaluation and its policy check within the process)
    journeys: bool = True  # False: stand the world up (every capability) for `hold` only
    serve: bool = True  # the moto server for `hold` (--keep); `invoke` needs none
    converge_seconds: float = CONVERGE_SECONDS


# (project, stack, config overrides) -> (evaluated graph, policy report): the same stack with
# the same CA evaluates to the same graph, so runs in one process evaluate it once.
_EVALUATED: dict[str, tuple[StackGraph, Any]] = {}


Hold = Callable[[RunReport, World], None]


def run_config(spec: ProgramStack, local_pki: pki_material.LocalPki) -> tuple[dict[str, Any], list[str]]:
    """The config the run evaluates the stack with (its journeys' additions, the run's CAs),
    and a note on each addition for the report."""
    added, notes = journeys.config_overrides(spec.config, spec.project)
    ca_config, ca_note = local_pki.stack_ca_config()
    return {**added, **ca_config}, [*notes, ca_note]


def evaluated_for_run(project_dir: Path, stack: str, overrides: dict[str, Any],
                      share: Callable[[Callable[[], tuple[StackGraph, Any]]], tuple[StackGraph, Any]]
                      = lambda it: it(), *, checked_with: Mapping[str, Any] | None = None
                      ) -> tuple[str, StackGraph, Any]:
    """The stack evaluated with the run's config, once per process: its key in `_EVALUATED`,
    the graph and the policy pack's report if a run of this process checked it already.
    `share` runs the evaluation (the tests share one between their workers); `checked_with`
    (the stack's config) has it check the policy pack too (a run otherwise checks it beside
    materialising the stack)."""
    memo = json.dumps([str(project_dir), stack, overrides], sort_keys=True)

    def evaluation() -> tuple[StackGraph, Any]:
        graph = evaluate_program(project_dir, stack, config_overrides=overrides,
                                 drop_keys=("caCertificatePemFile", "caCertificatePem", "caCertificates"))
        return graph, None if checked_with is None else check_pack(graph, stack, checked_with)

    if memo not in _EVALUATED:
        _EVALUATED[memo] = share(evaluation)
    return memo, *_EVALUATED[memo]


def policy_config(stack: str) -> dict[str, Any] | None:
    """The policy pack's settings for `stack` (policy/config/<stack>.json), if any."""
    path = POLICY_CONFIG_DIR / f"{stack}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def check_pack(graph: StackGraph, stack: str, stack_config: Mapping[str, Any], *, beside: bool = False) -> Any:
    """The policy pack over `graph` with `stack`'s settings and config: its report, or with
    `beside` a forked run of it to collect later (`.result()`, `.close()`)."""
    from tools.policy_check import forked_policy_run, run_policies

    return (forked_policy_run if beside else run_policies)(
        graph, policy_config=policy_config(stack), stack_config=stack_config)


class _Refused(Exception):
    """Mandatory policy violations: the run stops before the journeys."""


def _regions(config: dict[str, Any], project: str, wanted: list[str] | None) -> list[str]:
    """The stack's regions (primary first), or those of `wanted`, checked before evaluating."""
    configured = config.get(f"{project}:regions") or []
    stack_regions = list(json.loads(configured) if isinstance(configured, str) else configured)
    primary = str(config.get(f"{project}:primaryRegion") or (stack_regions or [""])[0])
    unknown = [r for r in wanted or [] if r not in stack_regions]
    if unknown:
        raise SetupError(f"--regions: {', '.join(unknown)} not in the stack's regions "
                         f"({', '.join(stack_regions)})")
    chosen = [r for r in stack_regions if not wanted or r in wanted]
    return sorted(chosen, key=lambda r: (r != primary, stack_regions.index(r)))


def _drain(world: World) -> list[str]:
    """Let executions a failed journey left running finish (or stop them)."""
    warnings = []
    for region in world.regions:
        sfn = world.client("stepfunctions", region)
        for machine in sfn.list_state_machines()["stateMachines"]:
            deadline = time.monotonic() + DRAIN_SECONDS
            while running := sfn.list_executions(stateMachineArn=machine["stateMachineArn"],
                                                 statusFilter="RUNNING")["executions"]:
                if time.monotonic() > deadline:
                    for execution in running:
                        sfn.stop_execution(executionArn=execution["executionArn"])
                    warnings.append(f"stopped {len(running)} execution(s) of {machine['name']}")
                    break
                time.sleep(0.1)
    return warnings


def _run_one(world: World, item: journeys.Journey, result: JourneyResult, progress: Progress,
             stopping: threading.Event, **run_options: Any) -> None:
    started = time.monotonic()
    try:
        item.run(JourneyRun(world, result, progress, stopping, **run_options))
    except JourneyStopped:
        pass
    except KeyboardInterrupt:  # keep what ran; the caller tears down and reports it
        result.steps.append(StepResult("interrupted (Ctrl-C or SIGTERM)", None, Outcome.FAIL, "",
                                       "the run was stopped here; later journeys did not run"))
        stopping.set()
    except Exception as error:  # a journey bug must not hide the other journeys
        result.steps.append(StepResult("journey crashed", None, Outcome.FAIL, "",
                                       f"{type(error).__name__}: {error}"))
    result.seconds = time.monotonic() - started


def run_journeys(world: World, selected: list[journeys.Journey], report: RunReport,
                  progress: Progress, prepared: dict[str, Any] | None = None) -> None:
    """In order; a background journey (the browser's) in its own thread alongside the
    journeys that allow it, awaited before any other (and where one of them calls
    `run.alone(region)`, until it said it is done with that region)."""
    results = {item.name: JourneyResult(item.name, item.title) for item in selected}
    prepared = prepared or {}
    started: set[str] = set()
    stopping = threading.Event()
    waiting = [j for j in selected if j.background]
    running: dict[str, threading.Thread] = {}
    released: dict[str, set[str | None]] = {}  # background journey -> regions it is done with (None: all)
    changed = threading.Condition()

    def release(name: str, region: str | None) -> None:
        with changed:
            released.setdefault(name, set()).add(region)
            changed.notify_all()

    def in_background(item: journeys.Journey) -> None:
        try:
            _run_one(world, item, results[item.name], Progress(enabled=False), stopping,
                     done_with=lambda region: release(item.name, region), prepared=prepared.get(item.name))
        finally:
            release(item.name, None)

    def start_background() -> None:
        for item in waiting:
            progress.phase(f"journey {item.name}: {item.title} (in the background)")
            running[item.name] = threading.Thread(target=in_background, args=(item,), name=f"journey-{item.name}",
                                                  daemon=True)
            running[item.name].start()
            started.add(item.name)
        waiting.clear()

    def await_background(region: str | None = None, *, start: bool = False) -> None:
        if start:  # at the end: one that no journey was allowed beside runs alone
            start_background()
        if region is not None:
            with changed:
                changed.wait_for(lambda: all(released.get(name, set()) & {region, None} for name in running))
            return
        for thread in running.values():
            thread.join()
        running.clear()

    try:
        for item in selected:
            if item.background:
                continue
            if item.beside_background:
                start_background()
            else:
                await_background()
            progress.phase(f"journey {item.name}: {item.title}")
            started.add(item.name)
            _run_one(world, item, results[item.name], progress, stopping, await_background=await_background,
                     prepared=prepared.get(item.name))
            progress.done()
            if stopping.is_set():
                break
        else:
            await_background(start=True)
    except KeyboardInterrupt:  # while waiting for a background journey
        stopping.set()
    finally:
        report.journeys.extend(r for name, r in results.items() if name in started)
    if stopping.is_set():
        report.interrupted = True
        for name, thread in running.items():  # its next step sees `stopping`; its browser closes
            thread.join(timeout=DRAIN_SECONDS)
            if thread.is_alive():
                results[name].steps.append(StepResult(
                    "still running when the run stopped", None, Outcome.FAIL, "",
                    f"not finished {DRAIN_SECONDS} s after the interrupt"))


def run(options: RunOptions, progress: Progress | None = None, *, hold: Hold | None = None) -> RunReport:
    """Run the stack locally. Raises SetupError when it cannot start; otherwise the report
    says what passed and failed."""
    with contextlib.ExitStack() as prepared:
        return _run(options, progress or Progress(enabled=False), hold, prepared)


def _run(options: RunOptions, progress: Progress, hold: Hold | None, prepared: contextlib.ExitStack) -> RunReport:
    from tools.policy_check import format_report

    started = time.monotonic()
    selected = [j for j in journeys.ordered() if options.journey in (None, j.name) and options.journeys]
    if not selected and options.journeys:
        raise SetupError(f"--journey: no journey {options.journey!r} (available: "
                         f"{', '.join(j.name for j in journeys.ordered())})")
    unknown = [w for w in options.breaks if w not in journeys.WIRES]
    if unknown:
        raise SetupError(f"--break: no wire {', '.join(unknown)} (available: "
                         f"{', '.join(sorted(journeys.WIRES))})")
    # A wire proves its journey fails; with that journey not run, the run would say OK.
    unproved = [w for w in options.breaks if journeys.WIRES[w].journey not in {j.name for j in selected}]
    if unproved:
        raise SetupError("--break " + ", ".join(
            f"{w}: its journey {journeys.WIRES[w].journey!r} is not selected" for w in unproved)
            + f"; add --journey {journeys.WIRES[unproved[0]].journey} or leave --journey out")

    try:
        spec = load_program_stack(options.project_dir, options.stack)
        regions = _regions(spec.config, spec.project, options.regions)
    except (FileNotFoundError, ValueError) as error:
        raise SetupError(str(error)) from None
    # What a journey starts early (a browser) uses the core the PKI and the evaluation leave
    # idle; started once the options name a stack and its regions (not for a refused run).
    early = {j.name: prepared.enter_context(j.prepare()) for j in selected if j.prepare and j.needs_runtime}
    progress.phase("PKI bootstrap: root CA and intermediate CA (tools.pki)")
    local_pki = options.pki or pki_material.bootstrap()
    progress.phase(f"evaluating stack {options.stack} offline with the intermediate as its CA")
    try:
        overrides, notes = run_config(spec, local_pki)
        memo, evaluated, policy_report = evaluated_for_run(options.project_dir, options.stack, overrides)
    except ProgramFailed as failure:
        problems = [m for level, m in failure.graph.diagnostics if level == "ERROR"]
        raise SetupError("\n".join(problems) or str(failure)) from None
    except (FileNotFoundError, ValueError) as error:
        raise SetupError(str(error)) from None
    report = RunReport(stack=options.stack, regions=regions, broken_wires=list(options.breaks),
                       config_added=notes)

    stack_policy = policy_config(options.stack)
    runtime = [j for j in selected if j.needs_runtime]
    materialising = bool(runtime) or not options.journeys

    def enforce(found: Any) -> None:
        """The pack's verdict into the report; mandatory violations stop the run."""
        _EVALUATED[memo] = (evaluated, found)
        advisory = Counter(v.policy + ("" if v.judged else " (not judged)") for v in found.advisory)
        report.policy = PolicySummary(len(found.mandatory), len(found.advisory), found.policies,
                                      found.resources, format_report(found), dict(advisory))
        if found.mandatory:
            report.errors.append("mandatory policy violations: the stack would not deploy")
            report.seconds = time.monotonic() - started
            raise _Refused

    if policy_report is None and not materialising:
        policy_report = check_pack(evaluated, options.stack, spec.config)
    if policy_report is not None:
        progress.phase("enforcing the policy pack (tools.policy_check)")
        try:
            enforce(policy_report)
        except _Refused:
            return report

    graph = evaluated
    for name in options.breaks:
        try:
            graph = journeys.WIRES[name].mutate(graph)
        except LookupError as missing:  # the stack declares nothing this wire could break
            raise SetupError(f"--break {name}: {missing}") from None
    context: dict[str, Any] = dict(
        regions=regions, pki=local_pki, stack=options.stack, project_dir=options.project_dir,
        evaluated=evaluated, stack_config=spec.config, policy_config=stack_policy,
        policy_report=policy_report, converge_seconds=options.converge_seconds)
    threads_before = set(threading.enumerate())
    if not materialising:
        run_journeys(World(graph=graph, **{k: v for k, v in context.items() if k != "regions"},
                           regions=tuple(regions)), selected, report, progress)
    else:
        every = options.journey is None
        capabilities = None if every else {c for j in runtime for c in (j.capability, *j.uses) if c}
        check = None if policy_report is not None else check_pack(evaluated, options.stack, spec.config,
                                                                   beside=True)
        progress.phase(f"materialising the declared resources in {', '.join(regions)} and "
                       "starting the emulations" + ("" if check is None else
                                                    "; beside it, enforcing the policy pack"))
        try:
            with open_world(graph, capabilities=capabilities, background=True, **context) as world:
                if check is not None:
                    world.policy_report = check.result()
                    enforce(world.policy_report)
                made = world.made
                report.materialised = {r: dict(c) for r, c in made.by_region().items()}
                report.not_materialised = {short_type(t): n for t, n in made.not_materialised.items()}
                report.unhandled_types = dict(made.unhandled)
                report.emulations = [e.describe() for e in world.emulations.values()]
                try:
                    run_journeys(world, selected, report, progress, early)
                    report.seconds = time.monotonic() - started
                    if hold is not None and not report.interrupted:
                        report.endpoint = world.serve() if options.serve else ""
                        hold(report, world)
                finally:
                    report.warnings += _drain(world)
                progress.phase("stopping the emulations")
        except MaterialiseError as failed:
            if check is not None:  # the pack's verdict first: a refused stack says so
                with contextlib.suppress(_Refused):
                    enforce(check.result())
            report.errors += [f"materialise: {e}" for e in failed.result.errors]
        except _Refused:
            pass
        finally:
            if check is not None:
                check.close()
    deadline = time.monotonic() + 5
    for thread in set(threading.enumerate()) - threads_before:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    left = sorted(t.name for t in set(threading.enumerate()) - threads_before if t.is_alive())
    if left:
        report.warnings.append(f"threads still alive after teardown: {', '.join(left)}")
    report.seconds = time.monotonic() - started
    progress.done()
    return report
