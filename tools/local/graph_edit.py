"""Copies of a resource graph with one resource changed (the wires' and journeys' mutations).

The graph the harness returned is never modified: `with_inputs` returns a new StackGraph in
which one resource's inputs (and the outputs that echo them) are replaced.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from tools.harness import RecordedResource, StackGraph


def with_inputs(graph: StackGraph, resource: RecordedResource,
                change: Callable[[dict[str, Any]], dict[str, Any]]) -> StackGraph:
    """A copy of `graph` where `resource`'s inputs are `change(copy of its inputs)`."""
    old_inputs = dict(resource.inputs)
    new_inputs = change(copy.deepcopy(old_inputs))
    outputs = {k: v for k, v in resource.outputs.items()
               if not (k in old_inputs and k not in new_inputs)}
    outputs.update(new_inputs)
    replaced = dataclasses.replace(resource, inputs=new_inputs, outputs=outputs)
    resources = [replaced if r.urn == resource.urn else r for r in graph.resources]
    return dataclasses.replace(graph, resources=resources, outputs=copy.deepcopy(graph.outputs))


def with_each(graph: StackGraph, resources: Sequence[RecordedResource],
              change: Callable[[dict[str, Any]], dict[str, Any]], what: str) -> StackGraph:
    """`graph` with `change` applied to each of `resources`; a wire breaks at least one (`what`)."""
    if not resources:
        raise LookupError(f"no {what}")
    for resource in resources:
        graph = with_inputs(graph, graph.named(resource.name), change)
    return graph


def of_capability(graph: StackGraph, capability: str, type_token: str) -> list[RecordedResource]:
    """Resources of `type_token` inside a component of `capability` (`iotmr:<capability>:*`)."""
    prefix = f"iotmr:{capability}:"
    return [r for r in graph.of_type(type_token)
            if any(a.type.startswith(prefix) for a in graph.ancestors(r))]
