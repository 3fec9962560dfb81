"""route53-latency-records-evacuable: every latency record can be taken out of DNS on purpose
through an evacuation control the operator owns (components/failover.py)."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    StackValidationArgs,
    StackValidationPolicy,
)

from policy.pack import ALL_POLICIES
from tools.policy_check import wire_props

from .support import provider, urn

NAME = "route53-latency-records-evacuable"
CHECK = "aws:route53/healthCheck:HealthCheck"
RECORD = "aws:route53/record:Record"


def _resource(type_: str, name: str, props: dict[str, Any], ignore: list[str] | None = None) -> PolicyResource:
    options = PolicyResourceOptions(False, ignore or [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)
    return PolicyResource(type_, wire_props(props), urn(type_, name), name, options, provider(), None, [], {})


def _stack(control: dict[str, Any] | None = None, ignore: list[str] | None = None,
           combined: dict[str, Any] | None = None, record: dict[str, Any] | None = None) -> list[PolicyResource]:
    return [
        _resource(CHECK, "alarm", {"id": "hc-alarm", "type": "CLOUDWATCH_METRIC"}),
        _resource(CHECK, "control", {"id": "hc-control", "type": "CALCULATED", "childHealthchecks": [],
                                     "childHealthThreshold": 0, "invertHealthcheck": False, **(control or {})},
                  ["invertHealthcheck"] if ignore is None else ignore),
        _resource(CHECK, "combined", {"id": "hc-combined", "type": "CALCULATED",
                                      "childHealthchecks": ["hc-alarm", "hc-control"],
                                      "childHealthThreshold": 2, **(combined or {})}),
        _resource(RECORD, "record", {"type": "CNAME", "setIdentifier": "eu-west-1", "healthCheckId": "hc-combined",
                                     "latencyRoutingPolicies": [{"region": "eu-west-1"}], **(record or {})}),
    ]


def _violations(resources: list[PolicyResource]) -> list[str]:
    policy = next(p for p in ALL_POLICIES if p.name == NAME)
    assert isinstance(policy, StackValidationPolicy)
    found: list[str] = []
    policy.validate(StackValidationArgs(resources, {}, {}), lambda message, _urn=None: found.append(message))
    return found


def test_a_record_governed_by_an_evacuation_control_passes() -> None:
    assert _violations(_stack()) == []


@pytest.mark.parametrize("case, stack, expected", [
    ("Pulumi would invert it back", _stack(ignore=[]), "no evacuation control"),
    ("declared inverted: the region never serves", _stack(control={"invertHealthcheck": True}), "no evacuation control"),
    ("a control with children is not a switch", _stack(control={"childHealthchecks": ["hc-alarm"]}),
     "no evacuation control"),
    ("threshold 1 of no children is always unhealthy", _stack(control={"childHealthThreshold": 1}),
     "no evacuation control"),
    ("the control is not a child", _stack(combined={"childHealthchecks": ["hc-alarm"], "childHealthThreshold": 1}),
     "no evacuation control"),
    ("one healthy child is enough: the control does not count", _stack(combined={"childHealthThreshold": 1}),
     "need every child"),
    ("the combined check inverted", _stack(combined={"invertHealthcheck": True}), "need every child"),
    ("the record's check is the alarm check", _stack(record={"healthCheckId": "hc-alarm"}), "no evacuation control"),
])
def test_an_unevacuable_record_is_caught(case: str, stack: list[PolicyResource], expected: str) -> None:
    found = _violations(stack)
    assert len(found) == 1 and expected in found[0], (case, found)
