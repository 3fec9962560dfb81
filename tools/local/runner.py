"""The local run, phase by phase: PKI, evaluate, enforce the pack, serve, materialise,
emulate, drive the journeys; tear everything down whatever happens."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.harness import ProgramFailed, StackGraph, evaluate_program, load_program_stack
from tools.local import emulation, journeys, materialise, pki_material
from tools.local.journeys import JourneyRun, JourneyStopped
from tools.local.progress import Progress
from tools.local.report import JourneyResult, Outcome, PolicySummary, RunReport, StepResult
from tools.local.server import moto_server
from tools.local.faithful_iot import faithful_iot
from tools.local.sfn_adapter import SfnAdapter
from tools.local.system import LocalSystem

PROJECT_DIR = Path(__file__).resolve().parents[2]
POLICY_CONFIG_DIR = PROJECT_DIR / "policy" / "config"
# Executions still running at teardown (a journey failed mid-way) get this long to finish.
EXECUTION_DRAIN_SECONDS = 10


class SetupError(Exception):
    """The run cannot start (bad arguments, the program or its config failed)."""


@dataclass
class RunOptions:
    stack: str = "dev"
    regions: list[str] | None = None
    journey: str | None = None
    breaks: list[str] = field(default_factory=list)
    project_dir: Path = PROJECT_DIR


Hold = Callable[[RunReport, LocalSystem], None]


def _stack_regions(graph: StackGraph, config: dict[str, Any], project: str) -> list[str]:
    exported = graph.outputs.get("regions")
    if isinstance(exported, dict) and exported:
        return list(exported)
    configured = config.get(f"{project}:regions") or []
    return list(json.loads(configured) if isinstance(configured, str) else configured)


def _select_regions(stack_regions: list[str], primary: str, wanted: list[str] | None) -> list[str]:
    if wanted:
        unknown = [r for r in wanted if r not in stack_regions]
        if unknown:
            raise SetupError(f"--regions: {', '.join(unknown)} not in the stack's regions "
                             f"({', '.join(stack_regions)})")
        chosen = [r for r in stack_regions if r in wanted]
    else:
        chosen = list(stack_regions)
    return sorted(chosen, key=lambda r: (r != primary, stack_regions.index(r)))


def _policy_config(stack: str) -> dict[str, Any] | None:
    path = POLICY_CONFIG_DIR / f"{stack}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _select_journeys(name: str | None) -> list[journeys.Journey]:
    available = journeys.ordered()
    if name is None:
        return available
    chosen = [j for j in available if j.name == name]
    if not chosen:
        raise SetupError(f"--journey: no journey {name!r} (available: "
                         f"{', '.join(j.name for j in available)})")
    return chosen


def _drain_executions(system: LocalSystem) -> list[str]:
    """Let executions a failed journey left running finish (or stop them), so no moto
    worker thread outlives the run."""
    warnings = []
    for region in system.regions:
        sfn = system.client("stepfunctions", region)
        for machine in sfn.list_state_machines()["stateMachines"]:
            deadline = time.monotonic() + EXECUTION_DRAIN_SECONDS
            while True:
                running = sfn.list_executions(stateMachineArn=machine["stateMachineArn"],
                                              statusFilter="RUNNING")["executions"]
                if not running:
                    break
                if time.monotonic() > deadline:
                    for execution in running:
                        sfn.stop_execution(executionArn=execution["executionArn"])
                    warnings.append(f"stopped {len(running)} execution(s) of "
                                    f"{machine['name']} still running at teardown")
                    break
                time.sleep(0.1)
    return warnings


def _run_journeys(system: LocalSystem, selected: list[journeys.Journey], report: RunReport,
                  progress: Progress) -> None:
    for item in selected:
        result = JourneyResult(item.name, item.title)
        report.journeys.append(result)
        progress.phase(f"journey {item.name}: {item.title}")
        started = time.monotonic()
        try:
            item.run(JourneyRun(system, result, progress))
        except JourneyStopped:
            pass
        except Exception as error:  # a journey bug must not hide the other journeys
            result.steps.append(StepResult("journey crashed", None, Outcome.FAIL, "",
                                           f"{type(error).__name__}: {error}"))
        result.seconds = time.monotonic() - started
        progress.done()


def run(options: RunOptions, progress: Progress | None = None, *, hold: Hold | None = None) -> RunReport:
    """Run the stack locally. Raises SetupError when it cannot start; otherwise the report
    says what passed and failed."""
    from tools.policy_check import format_report, run_policies

    progress = progress or Progress(enabled=False)
    started = time.monotonic()
    selected = _select_journeys(options.journey)
    journeys.load_modules()
    unknown_wires = [w for w in options.breaks if w not in journeys.WIRES]
    if unknown_wires:
        raise SetupError(f"--break: no wire {', '.join(unknown_wires)} (available: "
                         f"{', '.join(sorted(journeys.WIRES))})")

    progress.phase("PKI bootstrap: root CA and intermediate CA (tools.pki)")
    local_pki = pki_material.bootstrap()

    progress.phase(f"evaluating stack {options.stack} offline with the intermediate as its CA")
    try:
        spec = load_program_stack(options.project_dir, options.stack)
        added, config_notes = journeys.config_overrides(spec.config, spec.project)
        ca_config, ca_note = local_pki.stack_ca_config()
        config_notes.append(ca_note)
        evaluated = evaluate_program(options.project_dir, options.stack,
                                     config_overrides={**added, **ca_config},
                                     drop_keys=("caCertificatePemFile", "caCertificatePem",
                                                "caCertificates"))
    except ProgramFailed as failure:
        problems = [m for level, m in failure.graph.diagnostics if level == "ERROR"]
        raise SetupError("\n".join(problems) or str(failure)) from None
    except (FileNotFoundError, ValueError) as error:
        raise SetupError(str(error)) from None
    stack_regions = _stack_regions(evaluated, spec.config, spec.project)
    primary = str(evaluated.outputs.get("primaryRegion") or stack_regions[0])
    regions = _select_regions(stack_regions, primary, options.regions)
    report = RunReport(stack=options.stack, regions=regions, broken_wires=list(options.breaks),
                       config_added=config_notes)

    progress.phase("enforcing the policy pack (tools.policy_check)")
    policy_config = _policy_config(options.stack)
    policy_report = run_policies(evaluated, policy_config=policy_config, stack_config=spec.config)
    report.policy = PolicySummary(len(policy_report.mandatory), len(policy_report.advisory),
                                  policy_report.policies, policy_report.resources,
                                  format_report(policy_report))
    if policy_report.mandatory:
        report.errors.append("mandatory policy violations: the stack would not deploy")
        report.seconds = time.monotonic() - started
        return report

    graph = evaluated
    for name in options.breaks:
        try:
            graph = journeys.WIRES[name].mutate(graph)
        except LookupError as missing:  # the stack declares nothing this wire could break
            raise SetupError(f"--break {name}: {missing}") from None

    adapter = SfnAdapter()
    system_args: dict[str, Any] = dict(
        stack=options.stack, project_dir=options.project_dir, graph=graph, evaluated=evaluated,
        regions=tuple(regions), primary_region=primary, pki=local_pki, adapter=adapter,
        stack_config=spec.config, policy_config=policy_config, policy_report=policy_report)

    # Only what the run starts from here on must be gone at the end (the harness's Pulumi
    # runtime keeps idle executor threads of its own).
    threads_before = set(threading.enumerate())
    if not any(j.needs_runtime for j in selected):
        system = LocalSystem(endpoint="", **system_args)
        _run_journeys(system, selected, report, progress)
    else:
        with contextlib.ExitStack() as stack:
            progress.phase("starting the moto server on 127.0.0.1")
            endpoint = stack.enter_context(moto_server())
            stack.enter_context(adapter.active())
            # moto is kinder than AWS IoT in ways JITR and replication depend on.
            stack.enter_context(faithful_iot())
            system = LocalSystem(endpoint=endpoint, **system_args)
            report.endpoint = endpoint

            progress.phase(f"materialising the declared resources in {', '.join(regions)}")
            made = materialise.materialise(system)
            report.materialised = {r: dict(c) for r, c in made.by_region().items()}
            report.not_materialised = {materialise.short_type(t): n
                                       for t, n in made.not_materialised.items()}
            report.unhandled_types = dict(made.unhandled)
            report.errors.extend(f"materialise: {e}" for e in made.errors)

            if not report.errors:
                progress.phase("starting the emulations")
                running = emulation.start_all(system)
                stack.callback(lambda: report.warnings.extend(emulation.stop_all(running)))
                stack.callback(lambda: report.warnings.extend(_drain_executions(system)))
                report.emulations = [e.describe() for _, e in running]
                _run_journeys(system, selected, report, progress)
                report.seconds = time.monotonic() - started
                if hold is not None:
                    hold(report, system)
            progress.phase("stopping the emulations and the moto server")

    _join_leftover_threads(threads_before, report)
    report.seconds = time.monotonic() - started
    progress.done()
    return report


def _join_leftover_threads(before: set[threading.Thread], report: RunReport) -> None:
    deadline = time.monotonic() + 5
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    left = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
    if left:
        report.warnings.append(f"threads still alive after teardown: {', '.join(sorted(left))}")
