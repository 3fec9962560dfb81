"""Declared resource graph -> runtime objects in the moto server, generically by type.

`MATERIALISERS` maps a Pulumi type token to a function that creates the runtime object(s)
of one declared resource (boto3 calls against the local server) and teaches the resolver
the runtime identifiers. Rows live in `tools/local/materialisers/<service>.py` and register
with `@materialiser("aws:sqs/queue:Queue")`; a capability with new resource types adds a
module there (no edit here). `not_materialised(type, reason)` records types with nothing to
run locally (DNS, ACM, alarms...) or run by an emulation, so the report can name the types
nobody handles yet.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from tools.harness import RecordedResource
from tools.local.system import LocalSystem, Materialised

MaterialiseFunction = Callable[[RecordedResource, LocalSystem], Iterable[Materialised]]


@dataclass(frozen=True)
class Row:
    function: MaterialiseFunction
    # The resource creates objects in several regions (a global table's replicas): it is
    # handed over whatever region it is declared in, and picks the run's regions itself.
    spans_regions: bool = False


MATERIALISERS: dict[str, Row] = {}
NOT_MATERIALISED: dict[str, str] = {}


def materialiser(type_token: str, *, spans_regions: bool = False
                 ) -> Callable[[MaterialiseFunction], MaterialiseFunction]:
    def add(fn: MaterialiseFunction) -> MaterialiseFunction:
        if type_token in MATERIALISERS and MATERIALISERS[type_token].function is not fn:
            raise ValueError(f"materialiser for {type_token} registered twice")
        MATERIALISERS[type_token] = Row(fn, spans_regions)
        return fn
    return add


def not_materialised(type_token: str, reason: str) -> None:
    NOT_MATERIALISED[type_token] = reason


def load_rows() -> None:
    from tools.local import materialisers

    for module in pkgutil.iter_modules(materialisers.__path__):
        importlib.import_module(f"tools.local.materialisers.{module.name}")


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


def short_type(type_token: str) -> str:
    """`aws:dynamodb/table:Table` -> `dynamodb table`."""
    package, _, rest = type_token.partition(":")
    module, _, kind = rest.partition(":")
    return f"{module.split('/')[0]} {kind[:1].lower() + kind[1:]}" if package == "aws" else type_token


def materialise(system: LocalSystem) -> MaterialiseResult:
    """Create every declared custom resource of the run's regions, in registration order
    (the program registers a resource only once its inputs resolved: dependencies first)."""
    load_rows()
    result = MaterialiseResult()
    for resource in system.graph.custom_resources():
        row = MATERIALISERS.get(resource.type)
        if row is None:
            counter = result.not_materialised if resource.type in NOT_MATERIALISED else result.unhandled
            counter[resource.type] += 1
            continue
        if not row.spans_regions and not system.in_scope(resource.region):
            continue
        try:
            made = list(row.function(resource, system))
        except (ClientError, BotoCoreError, KeyError, ValueError) as error:
            result.errors.append(f"{resource.type} {resource.name}: {type(error).__name__}: {error}")
            continue
        result.created.extend(made)
        system.materialised.extend(made)
    return result
