"""Every physical name fits AWS's limit at the longest config the parser accepts: the longest
`appName`, the longer environment, the longest names of IoT regions, every capability.

The Pulumi stack name is in no physical name (components/naming.py builds every name from
`appName` and `environment`), so its length cannot matter. Limits and patterns: tests/support/
provider_facts.py (each service's API reference); names too long for their limit are
shortened by components/naming.py, and only those.
"""

from __future__ import annotations

import re
from functools import lru_cache

import pytest

from components.config import _APP_NAME, iot_regions
from components.naming import bounded, role_name, template_name
from tests.support.provider_facts import FACTS
from tests.support.stacks import PROJECT_DIR
from tools.harness import StackGraph, evaluate_program

# The longest appName `_APP_NAME` accepts (3-25 characters).
LONGEST_APP_NAME = "a" + "b" * 23 + "c"
# Pulumi's auto-name: `<logical name>-<7 hex>`.
AUTONAME_SUFFIX = 8


def longest_regions(count: int = 2) -> list[str]:
    return sorted(iot_regions(), key=lambda r: (-len(r), r))[:count]


@lru_cache(maxsize=1)
def longest_graph() -> StackGraph:
    regions = longest_regions()
    return evaluate_program(PROJECT_DIR, "prod", config_overrides={
        "appName": LONGEST_APP_NAME, "environment": "prod", "regions": regions,
        "primaryRegion": regions[0]})


def test_the_config_accepts_the_names_measured_here() -> None:
    assert _APP_NAME.match(LONGEST_APP_NAME) and len(LONGEST_APP_NAME) == 25
    assert not _APP_NAME.match(LONGEST_APP_NAME + "d")
    assert max(map(len, iot_regions())) == len(longest_regions()[0])


def name_problems(graph: StackGraph) -> list[str]:
    problems = []
    for resource in graph.custom_resources():
        rule = FACTS[resource.type].name if resource.type in FACTS else None
        if rule is None:
            continue
        value = resource.inputs.get(rule.input)
        if value is None and FACTS[resource.type].autonamed_limit:
            value = resource.name + "-" + "f" * (AUTONAME_SUFFIX - 1)
        if not isinstance(value, str):
            continue
        if rule.limit is not None and len(value) > rule.limit:
            problems.append(f"{resource.name}: {rule.input} {value!r} is {len(value)} long; "
                            f"{rule.source} allows {rule.limit}")
        if rule.pattern is not None and not re.fullmatch(rule.pattern, value):
            problems.append(f"{resource.name}: {rule.input} {value!r} does not match "
                            f"{rule.pattern} ({rule.source})")
    return problems


@pytest.mark.slow
def test_every_name_fits_at_the_longest_config() -> None:
    graph = longest_graph()
    assert set(longest_regions()) <= {r.region for r in graph.custom_resources()}
    assert name_problems(graph) == []


@pytest.mark.parametrize("fixture", ["dev_graph", "prod_graph", "twenty_region_graph"])
def test_every_name_fits_in_our_stacks(fixture: str, request: pytest.FixtureRequest) -> None:
    assert name_problems(request.getfixturevalue(fixture)) == []


def test_only_names_over_their_limit_are_shortened_and_they_stay_unique() -> None:
    assert bounded("x" * 64, 64) == "x" * 64 and role_name("iotmr-dev-eu-west-1-jitr") == \
        "iotmr-dev-eu-west-1-jitr"
    a, b = role_name("a" * 60 + "-fn-one"), role_name("a" * 60 + "-fn-two")
    assert len(a) == len(b) == 64 and a != b and a == role_name("a" * 60 + "-fn-one")
    assert template_name("iotmr-prod-ap-southeast-2") == "iotmr-prod-ap-southeast-2-fleet"
    assert len(template_name(LONGEST_APP_NAME + "-prod-ap-southeast-2")) == 36


def test_the_guard_flags_a_name_over_its_limit() -> None:
    def program() -> None:
        import pulumi_aws as aws

        aws.iam.Role("r", name="r" * 65, assume_role_policy="{}")
        aws.iot.TopicRule("t", region="eu-west-1", name="has-dash", enabled=True,
                          sql="SELECT * FROM 'a'", sql_version="2016-03-23")

    from tools.harness import evaluate

    problems = name_problems(evaluate(program))
    assert len(problems) == 2 and "65 long" in problems[0] and "does not match" in problems[1]
