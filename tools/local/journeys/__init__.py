"""Journeys: what a device (or an operator) does, step by step, against a world.

A capability's module holds its steps (plain functions over a `World`, which the tests call
too), its journey (`@journey(name, title, capability=...)` on `fn(run)`, each step a
`with run.step(title, region=...) as step: ... step.check(ok, "<state found>")`) and the
wires the journey proves (`@wire(name, journey=...)` on `fn(graph) -> graph`, a copy of the
graph with that wire broken). A failed check or an error fails the step and ends the
journey; a step needing a capability the stack lacks is pending, never faked.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from tools.harness import StackGraph
from tools.local.report import JourneyResult, Outcome, Progress, StepResult
from tools.local.world import World

Mutation = Callable[[StackGraph], StackGraph]
# (stack config, project) -> (config overrides, why) or None when the stack has what it needs.
RunConfig = Callable[[Mapping[str, Any], str], tuple[dict[str, Any], str] | None]


class StepFailed(Exception):
    """A check found the wrong state."""


class JourneyStopped(Exception):
    """A step failed; the journey's later steps are not run."""


class Step:
    checked = ""
    LOG_LINES = 12  # per function, the last ones: the report stays readable

    def __init__(self, world: World | None = None, title: str = "") -> None:
        self._world, self.title = world, title
        self._marks: dict[str, tuple[Any, int]] = {}  # function name -> (function, lines written)

    def logs_of(self, *functions: str) -> None:
        """Functions (names or ARNs) this step relies on: if it fails, the report shows what
        they logged during the step (e.g. the fleet hook's reason to deny)."""
        from tools.local.emulation.lambdas import FunctionNotFound, LambdaRuntime

        if self._world is None or LambdaRuntime not in self._world.emulations:
            return
        for name in functions:
            try:
                function = self._world.emulation(LambdaRuntime).function(name)
            except FunctionNotFound:
                continue
            self._marks[function.name] = (function, function.written)

    def logs(self) -> list[str]:
        return [f"{name}: {line}" for name, (function, mark) in sorted(self._marks.items())
                for line in function.logs_since(mark)[-self.LOG_LINES:]]

    def check(self, condition: bool, checked: str, failure: str = "") -> None:
        """Record the state found; fail the step unless `condition` holds. `failure` says what
        was expected; without one, the step's title (which states what must hold) does."""
        self.checked = checked
        if not condition:
            raise StepFailed(failure or (f"expected: {self.title}" if self.title else "not the expected state"))


@dataclass(frozen=True)
class Journey:
    name: str
    title: str
    run: Callable[[JourneyRun], None]
    capability: str | None = None  # the stack capability it exercises (None: the platform)
    needs_runtime: bool = True  # False: runs on the declared graph alone (no world)
    order: int = 50
    uses: tuple[str, ...] = ()  # other capabilities its steps need in the world
    # Runs in its own thread from the first journey that allows it (it mostly waits on a
    # browser); the run waits for it before any journey that does not.
    background: bool = False
    # May run while a background journey runs: it uses only its own devices, users and items,
    # and takes nothing down (no region, no endpoint, no CA) that another journey relies on,
    # or waits with `run.alone(region)` until the background journey no longer uses it.
    beside_background: bool = False
    # Started before the world is materialised (a browser), given to the journey as
    # `run.prepared` and closed at the end of the run.
    prepare: Callable[[], AbstractContextManager[Any]] | None = None


@dataclass(frozen=True)
class Wire:
    name: str
    journey: str  # the journey that must fail when this wire is broken
    description: str
    mutate: Mutation


JOURNEYS: dict[str, Journey] = {}
WIRES: dict[str, Wire] = {}
RUN_CONFIG: dict[str, RunConfig] = {}


def journey(name: str, title: str, **options: Any) -> Callable[[Callable[[JourneyRun], None]], Any]:
    return lambda fn: JOURNEYS.setdefault(name, Journey(name, title, fn, **options)).run


def wire(name: str, *, journey: str, description: str) -> Callable[[Mutation], Mutation]:
    return lambda fn: WIRES.setdefault(name, Wire(name, journey, description, fn)).mutate


def run_config(name: str) -> Callable[[RunConfig], RunConfig]:
    return lambda fn: RUN_CONFIG.setdefault(name, fn)


def also_affected(wire_name: str) -> list[str]:
    """Journeys a broken wire may fail besides its own: those whose steps use the capability
    its journey proves (the replication journey onboards with CVM and JITR)."""
    capability = JOURNEYS[WIRES[wire_name].journey].capability
    return sorted(j.name for j in JOURNEYS.values()
                  if capability and capability in j.uses and j.name != WIRES[wire_name].journey)


def load_modules() -> None:
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{module.name}")


def ordered() -> list[Journey]:
    load_modules()
    return sorted(JOURNEYS.values(), key=lambda j: (j.order, j.name))


def config_overrides(stack_config: Mapping[str, Any], project: str) -> tuple[dict[str, Any], list[str]]:
    """Every journey module's additions to the stack config: (overrides, why each)."""
    load_modules()
    added = [a for _, fn in sorted(RUN_CONFIG.items()) if (a := fn(stack_config, project))]
    return {k: v for overrides, _ in added for k, v in overrides.items()}, [why for _, why in added]


class JourneyRun:
    """One journey's run: its steps' results, and what steps need."""

    def __init__(self, world: World, result: JourneyResult, progress: Progress,
                 stopping: threading.Event | None = None,
                 await_background: Callable[[str | None], None] = lambda region: None,
                 done_with: Callable[[str], None] = lambda region: None, prepared: Any = None) -> None:
        self.world, self.result, self._progress, self.prepared = world, result, progress, prepared
        self._stopping = stopping  # set when the run is interrupted: no further step starts
        self._await_background, self._done_with = await_background, done_with

    def alone(self, region: str | None = None) -> None:
        """Wait until no background journey uses `region` (None: until none runs): the steps
        after this take it down (out of DNS) under a journey beside it."""
        self._await_background(region)

    def done_with(self, region: str) -> None:
        """(In a background journey) no later step uses `region`: `alone(region)` goes on."""
        self._done_with(region)

    @contextmanager
    def step(self, title: str, *, region: str | None = None) -> Iterator[Step]:
        if self._stopping is not None and self._stopping.is_set():
            self._record(title, region, Outcome.FAIL, "", "the run was stopped (Ctrl-C or SIGTERM) before this step")
            raise JourneyStopped
        step = Step(self.world, title)
        self._progress.status(f"{self.result.name}: {region or ''} {title}")
        try:
            yield step
        except Exception as error:  # a failed check, an AWS error or a crash
            detail = str(error) if isinstance(error, StepFailed) else f"{type(error).__name__}: {error}"
            self._record(title, region, Outcome.FAIL, step.checked, detail, step.logs())
            raise JourneyStopped from None
        self._record(title, region, Outcome.PASS, step.checked, "")

    def _record(self, title: str, region: str | None, outcome: Outcome, checked: str, detail: str,
                logs: list[str] | None = None) -> None:
        self.result.steps.append(StepResult(title, region, outcome, checked, detail, logs or []))

    def skipped(self, title: str, *, region: str | None = None, reason: str,
                outcome: Outcome = Outcome.SKIPPED) -> None:
        self._record(title, region, outcome, "", reason)

    def pending(self, title: str, *, region: str | None = None, reason: str) -> None:
        self.skipped(title, region=region, reason=reason, outcome=Outcome.PENDING)

    def regions_with(self, capability: str, title: str) -> list[str]:
        """The run's regions where `capability` is enabled; the others get `title` skipped."""
        enabled = [r for r in self.world.regions if capability in self.world.capabilities(r)]
        for region in set(self.world.regions) - set(enabled):
            self.skipped(title, region=region, reason=f"capability {capability} is not enabled in {region}")
        return enabled

    def known_elsewhere(self, region: str, thing: str, row: dict[str, Any] | None, pem: str,
                        *, without: str) -> None:
        """The end of every onboarding: in each other region the replica row equals `row`
        and the device may connect there without onboarding (replication's work)."""
        from tools.local.emulation.iot_data import IotData
        from tools.local.journeys import registry as seen

        world = self.world
        for other in world.other_regions(region):
            with self.step(f"the row of {thing} is replicated to {other}", region=other) as step:
                replica = seen.wait_for(partial(seen.row, world, other, thing), lambda r: r == row,
                                        timeout=world.converge_seconds, world=world)
                step.check(replica == row, f"replica row {'equals' if replica == row else 'differs from'}"
                                           f" the row written in {region}")
            title = f"{thing} usable in {other} without {without}"
            if "replication" not in world.capabilities(other):
                self.pending(title, region=other, reason=f"needs capability 'replication', which stack "
                                                         f"{world.stack} does not have")
                continue
            with self.step(title, region=other) as step:
                allowed, why = seen.wait_for(partial(world.emulation(IotData).authorize_connect, other, pem, thing),
                                             lambda result: result[0], timeout=world.converge_seconds, world=world)
                step.check(allowed, why)


def shown(value: Any) -> str:
    """A value as the report shows it, never as a Python repr: collections comma-separated
    ("none" when empty), mappings as `key value`, None as "none"."""
    if value is None:
        return "none"
    if isinstance(value, Mapping):
        return ", ".join(f"{shown(k)} {shown(v)}" for k, v in value.items()) or "none"
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return ", ".join(shown(v) for v in items) or "none"
    return str(value)


def short(identifier: str, keep: int = 10) -> str:
    """Long ids (certificate ids, ARNs) shortened for the report."""
    return identifier if len(identifier) <= keep + 2 else identifier[:keep] + "…"
