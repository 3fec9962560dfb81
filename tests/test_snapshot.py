"""The resource graph of dev, prod and a 20-region stack against committed snapshots, and
the URNs of stateful resources against the list `pulumi up` must never replace.

After an intended change, regenerate with `venv/bin/python -m tests.support.snapshots`
(see tests/support/snapshots.py) and review the diff of tests/snapshots/.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from tests.support.snapshots import (
    STACKS,
    STATEFUL_TYPES,
    UPDATE_COMMAND,
    answered_urns,
    graph_snapshot,
    read_snapshot,
    read_stateful,
    stateful_urns,
)
from tools.harness import StackGraph, evaluate

FIXTURES = {"dev": "dev_graph", "prod": "prod_graph", "twenty-regions": "twenty_region_graph"}


def test_every_snapshot_stack_has_a_fixture() -> None:
    assert sorted(FIXTURES) == sorted(STACKS)


def describe_differences(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> list[str]:
    before = {e["urn"]: e for e in expected}
    after = {a["urn"]: a for a in actual}
    lines = [f"new:     {urn}" for urn in sorted(after.keys() - before.keys())]
    lines += [f"gone:    {urn}" for urn in sorted(before.keys() - after.keys())]
    for urn in sorted(before.keys() & after.keys()):
        changed = sorted(k for k in before[urn] if before[urn][k] != after[urn].get(k))
        if changed:
            lines.append(f"changed: {urn} ({', '.join(changed)})")
    return lines


@pytest.mark.parametrize("stack", list(FIXTURES))
def test_resource_graph_matches_the_snapshot(stack: str, request: pytest.FixtureRequest) -> None:
    graph: StackGraph = request.getfixturevalue(FIXTURES[stack])
    differences = describe_differences(read_snapshot(stack), graph_snapshot(graph))
    shown = "\n".join(differences[:25]) + ("\n..." if len(differences) > 25 else "")
    assert differences == [], (
        f"the {stack} resource graph differs from tests/snapshots/{stack}.json "
        f"({len(differences)} resources):\n{shown}\n"
        f"if the change is intended, regenerate with `{UPDATE_COMMAND}`")


@pytest.mark.parametrize("stack", list(FIXTURES))
def test_stateful_resources_keep_their_urns(stack: str, request: pytest.FixtureRequest) -> None:
    """A changed URN makes `pulumi up` replace a table, key, CA registration, domain
    configuration or device policy: each recorded URN must still exist, or be an alias."""
    graph: StackGraph = request.getfixturevalue(FIXTURES[stack])
    known = answered_urns(graph)
    recorded = read_stateful()[stack]
    assert recorded, "no stateful URNs recorded"
    replaced = sorted(urn for urn, type_ in recorded.items() if known.get(urn) != type_)
    assert replaced == [], (
        "these deployed resources would be replaced (their URN changed); keep the name, type "
        "and parent, or add `aliases=[pulumi.Alias(...)]` with the old one:\n" + "\n".join(replaced))
    # Every stateful resource of today is recorded (the updater adds new ones).
    assert sorted(stateful_urns(graph).keys() - recorded.keys()) == []


def test_the_stateful_list_covers_every_kind_it_guards() -> None:
    recorded = read_stateful()["dev"]
    assert set(recorded.values()) == STATEFUL_TYPES


# --- the guard itself: a move fails, a move with an alias passes --------------------------

def _program(parent_type: str, alias: bool) -> None:
    class Outer(pulumi.ComponentResource):
        def __init__(self, name: str) -> None:
            super().__init__(parent_type, name)

    class Edge(pulumi.ComponentResource):
        def __init__(self, name: str, opts: pulumi.ResourceOptions) -> None:
            super().__init__("iotmr:edge:DeviceEdge", name, None, opts)
            import pulumi_aws as aws

            aws.iot.CaCertificate(f"{name}-ca", region="eu-west-1", active=True,
                                  allow_auto_registration=True, ca_certificate_pem="pem",
                                  certificate_mode="SNI_ONLY",
                                  opts=pulumi.ResourceOptions(parent=self))

    outer = Outer("region-eu-west-1")
    old_parent = pulumi.Alias(parent=outer) if alias else None
    Edge("region-eu-west-1-edge", pulumi.ResourceOptions(
        parent=None if alias else outer, aliases=[old_parent] if old_parent else None))


def _ca_urns(graph: StackGraph) -> set[str]:
    return {u for u, t in answered_urns(graph).items() if t == "aws:iot/caCertificate:CaCertificate"}


def test_reparenting_a_component_changes_the_urns_below_it_unless_aliased() -> None:
    """The harness computes URNs like the engine: a component moved to another parent
    changes its children's URNs (a replacement), and an alias on the component keeps them."""
    before = evaluate(lambda: _program("iotmr:regional:RegionalStack", alias=False))
    [ca] = before.of_type("aws:iot/caCertificate:CaCertificate")
    assert ca.urn == ("urn:pulumi:test::project::iotmr:regional:RegionalStack$iotmr:edge:DeviceEdge"
                      "$aws:iot/caCertificate:CaCertificate::region-eu-west-1-edge-ca")
    moved = evaluate(lambda: _program("iotmr:regional:Other", alias=False))
    assert ca.urn not in _ca_urns(moved)
    # Moving the edge to the stack root with an alias to its old parent keeps the component;
    # Pulumi then derives the children's old URNs from the component's aliases.
    aliased = evaluate(lambda: _program("iotmr:regional:RegionalStack", alias=True))
    [edge] = aliased.of_type("iotmr:edge:DeviceEdge")
    assert edge.aliases == (before.of_type("iotmr:edge:DeviceEdge")[0].urn,)
    [moved_ca] = aliased.of_type("aws:iot/caCertificate:CaCertificate")
    assert moved_ca.urn != ca.urn
    assert ca.urn in _ca_urns(aliased)
