"""Replacements a `pulumi up` would make must not collide with, or be undone by, the resource
they replace - for every resource of the dev, prod and 20-region graphs.

Pulumi replaces a resource by creating the new one first and deleting the old one last. When
the physical identity (a fixed name, "the" association of a stage, "the" integration of a
method) stays the same while a replace-forcing input changes, the create fails on the old
resource or - for put-style APIs - overwrites it and the later delete removes what was just
written. The facts per resource type are in tests/support/provider_facts.py (cited).

Rules, per resource:
* its type has facts (a new type must be looked up before it is used);
* a replace-forcing input it declares outside its identity needs `delete_before_replace`, or
  a pin (the value the facts say must not change), unless the resource is stateful: then the
  collision is what stops a replacement before data is lost, and deleting first is refused;
* a stateful resource whose identity AWS generates (nothing collides) must keep every
  replace-forcing input it declares pinned;
* an input whose updates pile up versions the provider never prunes is replaced instead;
* no two resources claim one physical identity, and a physical identity keeps its URN when
  the config changes (primary region, regions added or removed): a new URN for the same thing
  is a create (that overwrites or collides) followed by a delete of the same thing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from tests.support.provider_facts import ABSENT, ANY, FACTS, UNPRUNED_VERSIONS, Facts
from tests.support.snapshots import STATEFUL_TYPES
from tests.support.stacks import PROJECT_DIR
from tools.harness import UNKNOWN, RecordedResource, StackGraph, evaluate, evaluate_program

GRAPHS = ("dev_graph", "prod_graph", "twenty_region_graph")
MISSING = object()
# Stateful resources whose replacement loses what they hold (data, keys, accounts, salts):
# never deleted first. (CA registrations, domain configurations and device policies are
# stateful too - their URNs are guarded by the snapshot test - but hold nothing a
# delete-first replacement would lose.)
HOLDS_DATA = frozenset({
    "aws:dynamodb/table:Table", "aws:kms/key:Key", "aws:kms/replicaKey:ReplicaKey",
    "aws:cognito/userPool:UserPool", "aws:cognito/identityPool:IdentityPool",
    "aws:secretsmanager/secret:Secret",
}) & STATEFUL_TYPES


def declared(resource: RecordedResource, path: str) -> Any:
    """The value the program declares for `path` (`a.b` for nested), or MISSING."""
    value: Any = resource.inputs
    for part in path.split("."):
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if not isinstance(value, Mapping) or value.get(part) is None:
            return MISSING
        value = value[part]
    return value


def physical_identity(resource: RecordedResource, facts: Facts) -> tuple[str, ...] | None:
    """The inputs that make it unique; None when AWS or Pulumi generates its name (a resource
    the program declares without a name is auto-named `<logical>-<random>`)."""
    if facts.identity is None:
        return None
    if facts.name is not None and facts.name.input in facts.identity \
            and declared(resource, facts.name.input) is MISSING:
        return None
    return facts.identity


def aws_resources(graph: StackGraph) -> Iterator[tuple[RecordedResource, Facts]]:
    for resource in graph.custom_resources():
        if resource.type.startswith("aws:"):
            yield resource, FACTS[resource.type]


def replacement_problems(resource: RecordedResource, facts: Facts) -> list[str]:
    forcing = {path: value for path in (*facts.replace_on,
                                        *resource.options.get("replaceOnChanges", ()))
               if (value := declared(resource, path)) is not MISSING}
    stateful = resource.type in HOLDS_DATA
    dbr = resource.options["deleteBeforeReplace"]
    problems = []
    pinned = {path for path, value in forcing.items() if path in facts.pins
              and (facts.pins[path][0] is ANY or facts.pins[path][0] == value)}
    for path in sorted(set(facts.pins) & set(forcing) - pinned):
        problems.append(f"{path} = {forcing[path]!r}, but it is pinned to "
                        f"{facts.pins[path][0]!r}: {facts.pins[path][1]}")
    if physical_identity(resource, facts) is None:
        if stateful:
            problems += [f"stateful and AWS-named: replacing it on {path} loses what it holds; "
                         "pin the input in tests/support/provider_facts.py or migrate"
                         for path in sorted(set(forcing) - set(facts.pins))]
        return problems
    outside = set(forcing) - set(facts.identity or ()) - {"region"}
    if stateful:
        if dbr:
            problems.append("stateful, yet delete_before_replace: a replacement would delete "
                            "it before anything else runs")
        return problems
    for path in sorted(outside - pinned):
        if not dbr:
            problems.append(f"{path} replaces it while its identity "
                            f"({', '.join(facts.identity) or 'one per region'}) stays: the new "
                            "one collides with (or is deleted with) the old; set "
                            "delete_before_replace, or a name that changes with it")
    return problems


def missing_facts(graph: StackGraph) -> list[str]:
    return sorted({r.type for r in graph.custom_resources()
                   if r.type.startswith("aws:") and r.type not in FACTS})


@pytest.mark.parametrize("fixture", GRAPHS)
def test_every_resource_type_has_its_provider_facts(fixture: str,
                                                    request: pytest.FixtureRequest) -> None:
    graph: StackGraph = request.getfixturevalue(fixture)
    missing = missing_facts(graph)
    assert missing == [], ("look up which inputs force a replacement and what makes the "
                           f"physical resource unique, then add them to "
                           f"tests/support/provider_facts.py: {missing}")


def collisions(graph: StackGraph) -> list[str]:
    return [f"{r.name} ({r.type}): {problem}" for r, facts in aws_resources(graph)
            for problem in replacement_problems(r, facts)]


@pytest.mark.parametrize("fixture", GRAPHS)
def test_no_replacement_collides_with_what_it_replaces(fixture: str,
                                                       request: pytest.FixtureRequest) -> None:
    graph: StackGraph = request.getfixturevalue(fixture)
    assert collisions(graph) == []


@pytest.mark.parametrize("fixture", GRAPHS)
def test_versions_the_provider_never_prunes_are_replaced_instead(
        fixture: str, request: pytest.FixtureRequest) -> None:
    graph: StackGraph = request.getfixturevalue(fixture)
    for type_, (path, limit, source) in UNPRUNED_VERSIONS.items():
        for resource in graph.of_type(type_):
            assert path in resource.options["replaceOnChanges"], (
                f"{resource.name}: each change of {path} adds a version and AWS keeps {limit} "
                f"({source}); replace the resource on it")
            assert resource.options["deleteBeforeReplace"], resource.name


# --- one physical identity, one owner -----------------------------------------------------------

def identity(resource: RecordedResource, facts: Facts) -> tuple[Any, ...] | None:
    paths = physical_identity(resource, facts)
    if paths is None:
        return None
    values = []
    for path in paths:
        value = declared(resource, path)
        value = ABSENT if value is MISSING else value
        if value == UNKNOWN:
            return None
        values.append(str(value).rstrip(".").lower() if path == "name" and
                      resource.type == "aws:route53/record:Record" else value)
    return (resource.type, resource.region, *map(str, values))


def owners(graph: StackGraph) -> dict[tuple[Any, ...], list[RecordedResource]]:
    found: dict[tuple[Any, ...], list[RecordedResource]] = {}
    for resource, facts in aws_resources(graph):
        key = identity(resource, facts)
        if key is not None:
            found.setdefault(key, []).append(resource)
    return found


@pytest.mark.parametrize("fixture", GRAPHS)
def test_no_two_resources_own_one_physical_resource(fixture: str,
                                                    request: pytest.FixtureRequest) -> None:
    graph: StackGraph = request.getfixturevalue(fixture)
    shared = {key: [r.name for r in found] for key, found in owners(graph).items()
              if len(found) > 1}
    assert shared == {}


# The data tier's primary region cannot move by config (the tables and the multi-region key
# live there; moving them is a migration, README "Stack configuration"): its resources are
# left out of the primary-region change below.
DATA_TIER = "iotmr:global_tables:GlobalTables"
CONFIG_CHANGES = {
    "primary region moved": {"primaryRegion": "us-west-2"},
    "region added": {"regions": ["eu-west-1", "us-west-2", "ap-south-1"]},
    "region dropped": {"regions": ["eu-west-1"]},
}


@pytest.mark.slow
@pytest.mark.parametrize("change", list(CONFIG_CHANGES))
def test_a_physical_resource_keeps_its_urn_when_the_config_changes(
        change: str, dev_graph: StackGraph) -> None:
    after = evaluate_program(PROJECT_DIR, "dev", config_overrides=CONFIG_CHANGES[change])
    assert moved(dev_graph, after, skip=DATA_TIER) == [], (
        f"{change}: these would be created anew and then deleted - the same physical "
        "resource; give them a logical name that does not depend on the change (one global "
        "owner) or an alias")


def moved(before: StackGraph, after: StackGraph, skip: str = "\0") -> list[str]:
    """Physical resources both graphs declare under different URNs (and no alias)."""
    before_owners = owners(before)
    found = []
    for key, resources in owners(after).items():
        if key not in before_owners or any(skip in r.urn for r in resources):
            continue
        for resource in resources:
            old_urns = {r.urn for r in before_owners[key]}
            if resource.urn not in old_urns and not old_urns & set(resource.aliases):
                found.append(f"{key[0]} {key[2:]}: {sorted(old_urns)} -> {resource.urn}")
    return found


# --- the guards themselves: each flags the class it exists for -----------------------------------

def _pipe(delete_first: bool) -> None:
    import pulumi
    import pulumi_aws as aws

    aws.pipes.Pipe("p", region="eu-west-1", name="fixed", role_arn="arn:aws:iam::1:role/r",
                   source="arn:aws:dynamodb:eu-west-1:1:table/t/stream/x",
                   target="arn:aws:states:eu-west-1:1:stateMachine:m",
                   source_parameters=aws.pipes.PipeSourceParametersArgs(
                       dynamodb_stream_parameters=aws.pipes
                       .PipeSourceParametersDynamodbStreamParametersArgs(
                           starting_position="LATEST")),
                   opts=pulumi.ResourceOptions(delete_before_replace=delete_first))


def test_the_guard_flags_a_fixed_name_with_replace_forcing_inputs() -> None:
    found = collisions(evaluate(lambda: _pipe(False)))
    assert len(found) == 2 and any("source replaces it" in line for line in found)
    assert any("startingPosition" in line for line in found)
    assert collisions(evaluate(lambda: _pipe(True))) == []


def test_the_guard_flags_a_type_without_facts() -> None:
    def program() -> None:
        import pulumi_aws as aws

        aws.sfn.Activity("a", region="eu-west-1", name="approve")  # a type the program never uses

    assert missing_facts(evaluate(program)) == ["aws:sfn/activity:Activity"]


def _validation_record(primary: str) -> None:
    import pulumi_aws as aws

    # The old CVM design: the primary region's component owns the account-wide record.
    aws.route53.Record(f"region-{primary}-validation", zone_id="Z1", name="_x.provision.d",
                       type="CNAME", ttl=300, records=["_y.acm-validations.aws."],
                       allow_overwrite=True)


def test_the_guard_flags_a_region_named_owner_of_an_account_wide_record() -> None:
    before = evaluate(lambda: _validation_record("eu-west-1"))
    assert len(moved(before, evaluate(lambda: _validation_record("us-west-2")))) == 1
    assert moved(before, evaluate(lambda: _validation_record("eu-west-1"))) == []
