"""Emulations of what moto lacks, each built from the declared resources at start.

A module here registers a factory with `@emulation("name")`: `factory(system)` returns an
object with `describe() -> str` (one report line) and `stop()`, or None when the stack
declares nothing for it. The runner starts every registered emulation after
materialisation and stops them all in reverse order, whatever happens. Journeys reach one
with `system.emulation(RulesEngine)`. A capability adds a module (pipes, provisioning
templates...) without touching the core.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any, Protocol

from tools.local.system import LocalSystem


class Emulation(Protocol):
    def describe(self) -> str: ...

    def stop(self) -> None: ...


Factory = Callable[[LocalSystem], Any]

FACTORIES: dict[str, Factory] = {}


def emulation(name: str) -> Callable[[Factory], Factory]:
    def add(factory: Factory) -> Factory:
        if name in FACTORIES and FACTORIES[name] is not factory:
            raise ValueError(f"emulation {name} registered twice")
        FACTORIES[name] = factory
        return factory
    return add


def load_modules() -> None:
    from tools.local import emulation as package

    for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        importlib.import_module(f"tools.local.emulation.{module.name}")


def start_all(system: LocalSystem) -> list[tuple[str, Emulation]]:
    """Start every emulation; on a failure, stop those already started and re-raise."""
    load_modules()
    started: list[tuple[str, Emulation]] = []
    try:
        for name, factory in FACTORIES.items():
            running = factory(system)
            if running is None:
                continue
            started.append((name, running))
            system.emulations[type(running)] = running
    except BaseException:
        stop_all(started)
        raise
    return started


def stop_all(started: list[tuple[str, Emulation]]) -> list[str]:
    """Stop in reverse order; returns the problems (a stop never hides another one)."""
    problems = []
    for name, running in reversed(started):
        try:
            running.stop()
        except Exception as error:  # keep stopping the others
            problems.append(f"{name}: {type(error).__name__}: {error}")
    return problems
