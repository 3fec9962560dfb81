"""Declared resource graph -> objects in moto, generically by type.

A row per Pulumi type lives in `tools/local/materialisers/<service>.py`
(`@materialiser("aws:sqs/queue:Queue")` on `fn(resource, world) -> [Materialised]`);
`not_materialised(type, reason)` names types with nothing to run locally or run by an
emulation, so the report can list the types nobody handles yet.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from tools.harness import RecordedResource
from tools.local.world import Materialised, World

MaterialiseFunction = Callable[[RecordedResource, World], Iterable[Materialised]]
MATERIALISERS: dict[str, tuple[MaterialiseFunction, bool]] = {}  # type -> (fn, spans regions)
NOT_MATERIALISED: dict[str, str] = {}


def materialiser(type_token: str, *, spans_regions: bool = False
                 ) -> Callable[[MaterialiseFunction], MaterialiseFunction]:
    """`spans_regions`: the row creates objects in several regions (a global table's
    replicas) and picks the world's regions itself."""
    def add(fn: MaterialiseFunction) -> MaterialiseFunction:
        MATERIALISERS[type_token] = (fn, spans_regions)
        return fn
    return add


def not_materialised(type_token: str, reason: str) -> None:
    NOT_MATERIALISED[type_token] = reason


@dataclass
class MaterialiseResult:
    created: list[Materialised] = field(default_factory=list)
    not_materialised: Counter[str] = field(default_factory=Counter)
    unhandled: Counter[str] = field(default_factory=Counter)  # no row: a gap to close
    errors: list[str] = field(default_factory=list)

    def by_region(self) -> dict[str, Counter[str]]:
        out: dict[str, Counter[str]] = {}
        for item in self.created:
            out.setdefault(item.region, Counter())[short_type(item.type)] += 1
        return out


class MaterialiseError(Exception):
    def __init__(self, result: MaterialiseResult) -> None:
        super().__init__("\n".join(result.errors))
        self.result = result


def short_type(type_token: str) -> str:
    """`aws:dynamodb/table:Table` -> `dynamodb table`."""
    package, _, rest = type_token.partition(":")
    module, _, kind = rest.partition(":")
    return f"{module.split('/')[0]} {kind[:1].lower() + kind[1:]}" if package == "aws" else type_token


def materialise(world: World) -> MaterialiseResult:
    """Every declared custom resource the world includes, in registration order (the
    program registers a resource only once its inputs resolved: dependencies first)."""
    from tools.local import materialisers

    for module in pkgutil.iter_modules(materialisers.__path__):
        importlib.import_module(f"tools.local.materialisers.{module.name}")
    result = MaterialiseResult()
    for resource in world.graph.custom_resources():
        fn, spans_regions = MATERIALISERS.get(resource.type, (None, False))
        if not world.includes(resource, any_region=spans_regions):
            continue
        if fn is None:
            unknown = resource.type not in NOT_MATERIALISED
            (result.unhandled if unknown else result.not_materialised)[resource.type] += 1
            continue
        try:
            made = list(fn(resource, world))
        except (ClientError, BotoCoreError, KeyError, ValueError) as error:
            result.errors.append(f"{resource.type} {resource.name}: {type(error).__name__}: {error}")
            continue
        result.created.extend(made)
        world.materialised.extend(made)
    return result
