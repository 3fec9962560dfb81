"""Emulations of what moto lacks, each built from the declared resources of a world.

A module registers `@emulation("name")` on `factory(world)`, which returns an object with
`describe() -> str` and `stop()`, or None when the world declares nothing for it. They are
started after materialisation, in module order, and stopped in reverse; scenarios and
journeys reach one with `world.emulation(RulesEngine)`.
"""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Any

from tools.local.world import World

FACTORIES: dict[str, Callable[[World], Any]] = {}
ORDER = ("lambdas", "rules_engine", "iot_data", "api_gateway", "fleet_provisioning", "streams", "shadows",
         "registry-events")


def emulation(name: str) -> Callable[[Callable[[World], Any]], Callable[[World], Any]]:
    def add(factory: Callable[[World], Any]) -> Callable[[World], Any]:
        FACTORIES[name] = factory
        return factory
    return add


@contextlib.contextmanager
def running(world: World, *, background: bool) -> Iterator[list[Any]]:
    """Every emulation the world needs, stopped in reverse order whatever happens."""
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{module.name}")
    world.background = background
    with contextlib.ExitStack() as stack:
        started = []
        for name in sorted(FACTORIES, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER)):
            instance = FACTORIES[name](world)
            if instance is not None:
                stack.callback(instance.stop)
                world.emulations[type(instance)] = instance
                started.append(instance)
        yield started
