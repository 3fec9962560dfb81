"""Journeys: what a device (or an operator) does, step by step, against a world.

A capability's module holds its steps (plain functions over a `World`, which the tests call
too), its journey (`@journey(name, title, capability=...)` on `fn(run: JourneyRun)`: the
steps with `with run.step(title, region=...) as step: ... step.check(ok, "<state found>")`)
and the wires the journey proves (`@wire(name, journey=...)` on `fn(graph) -> graph`, a copy
of the graph with that wire broken). A failed check or an error fails the step and ends the
journey; a step needing a capability the stack lacks is `run.pending(...)`, never faked.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tools.harness import StackGraph
from tools.local.progress import Progress
from tools.local.report import JourneyResult, Outcome, StepResult
from tools.local.world import World


class StepFailed(Exception):
    """A check found the wrong state."""


class JourneyStopped(Exception):
    """A step failed; the journey's later steps are not run."""


class Step:
    def __init__(self) -> None:
        self.checked = ""

    def check(self, condition: bool, checked: str, failure: str = "") -> None:
        """Record the state found; fail the step unless `condition` holds."""
        self.checked = checked
        if not condition:
            raise StepFailed(failure or "not the expected state")


@dataclass(frozen=True)
class Journey:
    name: str
    title: str
    run: Callable[[JourneyRun], None]
    capability: str | None = None  # the stack capability it exercises (None: the platform)
    needs_runtime: bool = True  # False: runs on the declared graph alone (no world)
    order: int = 50
    uses: tuple[str, ...] = ()  # other capabilities its steps need in the world


@dataclass(frozen=True)
class Wire:
    name: str
    journey: str  # the journey that must fail when this wire is broken
    description: str
    mutate: Callable[[StackGraph], StackGraph]


JOURNEYS: dict[str, Journey] = {}
WIRES: dict[str, Wire] = {}
# (stack config, project) -> (config overrides, why) or None when the stack has what it needs.
RunConfig = Callable[[Mapping[str, Any], str], tuple[dict[str, Any], str] | None]
RUN_CONFIG: dict[str, RunConfig] = {}


def run_config(name: str) -> Callable[[RunConfig], RunConfig]:
    def add(fn: RunConfig) -> RunConfig:
        if name in RUN_CONFIG and RUN_CONFIG[name] is not fn:
            raise ValueError(f"run config {name} registered twice")
        RUN_CONFIG[name] = fn
        return fn
    return add


def config_overrides(stack_config: Mapping[str, Any], project: str
                     ) -> tuple[dict[str, Any], list[str]]:
    """Every journey module's additions to the stack config: (overrides, why each)."""
    load_modules()
    overrides: dict[str, Any] = {}
    notes: list[str] = []
    for name, contribute in sorted(RUN_CONFIG.items()):
        added = contribute(stack_config, project)
        if added is not None:
            overrides.update(added[0])
            notes.append(added[1])
    return overrides, notes


def journey(name: str, title: str, *, capability: str | None = None, needs_runtime: bool = True,
            order: int = 50, uses: tuple[str, ...] = ()
            ) -> Callable[[Callable[[JourneyRun], None]], Callable[[JourneyRun], None]]:
    def add(fn: Callable[[JourneyRun], None]) -> Callable[[JourneyRun], None]:
        if name in JOURNEYS and JOURNEYS[name].run is not fn:
            raise ValueError(f"journey {name} registered twice")
        JOURNEYS[name] = Journey(name, title, fn, capability, needs_runtime, order, uses)
        return fn
    return add


def wire(name: str, *, journey: str, description: str
         ) -> Callable[[Callable[[StackGraph], StackGraph]], Callable[[StackGraph], StackGraph]]:
    def add(fn: Callable[[StackGraph], StackGraph]) -> Callable[[StackGraph], StackGraph]:
        if name in WIRES and WIRES[name].mutate is not fn:
            raise ValueError(f"wire {name} registered twice")
        WIRES[name] = Wire(name, journey, description, fn)
        return fn
    return add


def load_modules() -> None:
    from tools.local import journeys as package

    for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        importlib.import_module(f"tools.local.journeys.{module.name}")


def ordered() -> list[Journey]:
    load_modules()
    return sorted(JOURNEYS.values(), key=lambda j: (j.order, j.name))


class JourneyRun:
    """One journey's run: its steps' results, and what steps need."""

    def __init__(self, world: World, result: JourneyResult, progress: Progress) -> None:
        self.world = world
        self.result = result
        self._progress = progress

    @contextmanager
    def step(self, title: str, *, region: str | None = None) -> Iterator[Step]:
        step = Step()
        self._progress.status(f"{self.result.name}: {region or ''} {title}")
        try:
            yield step
        except StepFailed as failure:
            self._record(title, region, Outcome.FAIL, step.checked, str(failure))
            raise JourneyStopped from None
        except Exception as error:  # an AWS error or a crash is this step's failure
            self._record(title, region, Outcome.FAIL, step.checked,
                         f"{type(error).__name__}: {error}")
            raise JourneyStopped from None
        self._record(title, region, Outcome.PASS, step.checked, "")

    def _record(self, title: str, region: str | None, outcome: Outcome, checked: str,
                detail: str) -> None:
        self.result.steps.append(StepResult(title, region, outcome, checked, detail))

    def pending(self, title: str, *, region: str | None = None, reason: str) -> None:
        self._record(title, region, Outcome.PENDING, "", reason)

    def skipped(self, title: str, *, region: str | None = None, reason: str) -> None:
        self._record(title, region, Outcome.SKIPPED, "", reason)

    def regions_with(self, capability: str, title: str) -> list[str]:
        """The run's regions where `capability` is enabled; the others get `title` skipped."""
        enabled = [r for r in self.world.regions if capability in self.world.capabilities(r)]
        for region in self.world.regions:
            if region not in enabled:
                self.skipped(title, region=region,
                             reason=f"capability {capability} is not enabled in {region}")
        return enabled

    def missing(self, capability: str, region: str | None = None) -> str | None:
        """Why steps needing `capability` cannot run yet, or None when they can."""
        regions = [region] if region else list(self.world.regions)
        if not any(capability in self.world.capabilities(r) for r in regions):
            return (f"needs capability '{capability}', which stack {self.world.stack} does "
                    f"not have yet")
        load_modules()
        if not any(j.capability == capability for j in JOURNEYS.values()):
            return (f"needs a journey module for capability '{capability}' "
                    f"(tools/local/journeys/), which does not exist yet")
        return None


def short(identifier: str, keep: int = 10) -> str:
    """Long ids (certificate ids, ARNs) shortened for the report."""
    return identifier if len(identifier) <= keep + 2 else identifier[:keep] + "…"
