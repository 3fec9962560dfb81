"""Account- and region-wide settings the stack writes outlive the stack's hold on them.

Such a setting (API Gateway's CloudWatch role, IoT's event configuration and logging options,
the AWSIotLogsV2 log group) serves everything in the account and region. Removing the
capability that declared it, dropping a region or destroying the stack must not reset it or
delete what it uses: every singleton - and the role and policies it points at - is
`retain_on_delete`. A retained resource cannot carry a fixed name unless the config can adopt
it, or declaring it again later would collide with the one left behind. The stack writes them
only when the config says it owns them (`leave` declares none), and the README lists them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from components.edge.settings import CHOICES
from tests.support.provider_facts import FACTS, SINGLETON_NAMES
from tests.support.stacks import PROJECT_DIR
from tools.harness import RecordedResource, StackGraph, evaluate, evaluate_program

GRAPHS = ("dev_graph", "prod_graph", "twenty_region_graph")
README = PROJECT_DIR / "README.md"


def singletons(graph: StackGraph) -> Iterator[tuple[RecordedResource, str]]:
    for resource in graph.custom_resources():
        facts = FACTS.get(resource.type)
        what = facts.singleton if facts else None
        what = what or SINGLETON_NAMES.get((resource.type, str(resource.inputs.get("name"))))
        if what:
            yield resource, what


def dependencies(graph: StackGraph, singleton: RecordedResource) -> list[RecordedResource]:
    """The roles a singleton points at (by ARN), and those roles' policies."""
    values = {str(v) for v in singleton.inputs.values()}
    roles = [r for r in graph.of_type("aws:iam/role:Role") if r.outputs.get("arn") in values]
    handles = {str(r.outputs.get(k)) for r in roles for k in ("name", "arn")} | \
        {r.id for r in roles}
    policies = [p for p in graph.custom_resources() if p.type in (
        "aws:iam/rolePolicy:RolePolicy", "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        and str(p.inputs.get("role")) in handles]
    return roles + policies


def retention_problems(graph: StackGraph) -> list[str]:
    problems = []
    for singleton, what in singletons(graph):
        for resource in (singleton, *dependencies(graph, singleton)):
            if not resource.options["retainOnDelete"]:
                problems.append(f"{resource.name} ({what}): not retained on delete")
            named = resource.inputs.get("name")
            if named and resource is not singleton and resource.type == "aws:iam/role:Role":
                problems.append(f"{resource.name}: retained with a fixed name ({named}); "
                                "declaring the setting again would collide with it")
    return problems


@pytest.mark.parametrize("fixture", GRAPHS)
def test_singletons_and_what_they_use_are_retained(fixture: str,
                                                   request: pytest.FixtureRequest) -> None:
    graph: StackGraph = request.getfixturevalue(fixture)
    found = list(singletons(graph))
    # Our stacks own all of them (iotAccountSettings: manage, cvm.apiGatewayAccount: manage).
    assert {r.type for r, _ in found} == {
        "aws:apigateway/account:Account", "aws:iot/eventConfigurations:EventConfigurations",
        "aws:iot/loggingOptions:LoggingOptions", "aws:cloudwatch/logGroup:LogGroup"}
    assert all(dependencies(graph, r) for r, _ in found
               if r.type in ("aws:apigateway/account:Account",
                             "aws:iot/loggingOptions:LoggingOptions"))
    assert retention_problems(graph) == []


def test_a_named_singleton_can_be_adopted_when_declared_again() -> None:
    # AWSIotLogsV2 has the name AWS IoT writes to: after a removal it stays, and `adopt`
    # imports it instead of colliding (components/edge/settings.py).
    assert "adopt" in CHOICES["iotLogGroup"]


@pytest.mark.slow
def test_leave_declares_no_singleton() -> None:
    graph = evaluate_program(PROJECT_DIR, "dev", config_overrides={
        "iotAccountSettings": {"eventConfigurations": "leave", "loggingOptions": "leave",
                               "iotLogGroup": "leave"},
        "cvm": {"apiGatewayAccount": "leave"}})
    assert list(singletons(graph)) == []


def test_the_readme_lists_every_singleton() -> None:
    section = README.read_text().split("### Account-wide settings this stack may write", 1)
    assert len(section) == 2, "README: the section listing the singletons is missing"
    listed = section[1].split("\n## ", 1)[0]
    for type_ in [t for t, f in FACTS.items() if f.singleton] + [t for t, _ in SINGLETON_NAMES]:
        assert f"`{type_}`" in listed, type_


def test_the_guard_flags_a_singleton_the_stack_would_reset() -> None:
    def program() -> None:
        import pulumi
        import pulumi_aws as aws

        role = aws.iam.Role("logging", name="fixed-logging", assume_role_policy="{}",
                            opts=pulumi.ResourceOptions(retain_on_delete=True))
        aws.iot.LoggingOptions("options", region="eu-west-1", default_log_level="WARN",
                               role_arn=role.arn)

    problems = retention_problems(evaluate(program))
    assert any("options" in p and "not retained" in p for p in problems)
    assert any("fixed name" in p for p in problems)
