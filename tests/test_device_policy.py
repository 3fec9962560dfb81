"""The device IoT policy: a device acts only as its own thing, only on its own topics."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.edge.device_policy import (
    THING_NAME,
    command_topic,
    device_policy_document,
    shadow_topic,
    telemetry_topic,
)
from tools.local.emulation.policy import allows

ACCOUNT = "123456789012"
IOT_DEVICE_ACTIONS = {"iot:Connect", "iot:Publish", "iot:Subscribe", "iot:Receive"}


def statements(app: str = "iotmr", partition: str = "aws", region: str = "eu-west-1",
               account: str = ACCOUNT) -> list[dict[str, Any]]:
    document = json.loads(device_policy_document(app, partition, region, account))
    assert document["Version"] == "2012-10-17"
    return list(document["Statement"])


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def allowed(policy: str, action: str, arn: str, thing: str = "pump-0001") -> bool:
    """The policy as AWS IoT evaluates it for a connection of `thing`, attached to its
    certificate (the emulation's one IAM/IoT evaluator)."""
    return allows([policy], action, arn, context={
        "iot:ClientId": thing, "iot:Connection.Thing.ThingName": thing,
        "iot:Connection.Thing.IsAttached": "true"})


def check_policy(app: str, partition: str, region: str, account: str) -> None:
    stmts = statements(app, partition, region, account)
    prefix = f"arn:{partition}:iot:{region}:{account}:"
    assert stmts, "policy has no statements"
    for s in stmts:
        assert s["Effect"] == "Allow"
        actions = as_list(s["Action"])
        for action in actions:
            assert action in IOT_DEVICE_ACTIONS, f"{action} is not a device data-plane action"
            assert "*" not in action and "?" not in action
        for resource in as_list(s["Resource"]):
            assert resource != "*"
            assert resource.startswith(prefix), f"{resource} not scoped to {prefix}"
            assert THING_NAME in resource, f"{resource} is not scoped to the thing name"
            # The thing name is a whole path segment, never a prefix another thing shares.
            assert re.search(re.escape(THING_NAME) + r"(/|$)", resource)
    connect = [s for s in stmts if "iot:Connect" in as_list(s["Action"])]
    assert len(connect) == 1
    assert as_list(connect[0]["Resource"]) == [f"{prefix}client/{THING_NAME}"]
    assert connect[0]["Condition"] == {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}
    for s in stmts:
        if s is not connect[0]:
            assert "iot:Connect" not in as_list(s["Action"])


def test_policy_is_least_privilege_and_thing_scoped() -> None:
    check_policy("iotmr", "aws", "eu-west-1", ACCOUNT)


@settings(max_examples=60, deadline=None)
@given(
    app=st.from_regex(r"[a-z][a-z0-9-]{1,23}[a-z0-9]", fullmatch=True),
    partition=st.sampled_from(["aws", "aws-cn", "aws-us-gov"]),
    region=st.from_regex(r"[a-z]{2}(-[a-z]+)+-[1-9]", fullmatch=True),
    account=st.from_regex(r"[0-9]{12}", fullmatch=True),
)
def test_policy_holds_for_any_app_and_region(app: str, partition: str, region: str,
                                             account: str) -> None:
    check_policy(app, partition, region, account)


def test_device_reaches_its_own_topics() -> None:
    stmts = device_policy_document("iotmr", "aws", "eu-west-1", ACCOUNT)
    arn = f"arn:aws:iot:eu-west-1:{ACCOUNT}:"
    own_telemetry = telemetry_topic("iotmr", "pump-0001")
    own_commands = command_topic("iotmr", "pump-0001")
    own_shadow = shadow_topic("pump-0001")
    assert allowed(stmts, "iot:Connect", f"{arn}client/pump-0001")
    assert allowed(stmts, "iot:Publish", f"{arn}topic/{own_telemetry}/temperature")
    assert allowed(stmts, "iot:Publish", f"{arn}topic/{own_shadow}/update")
    assert allowed(stmts, "iot:Subscribe", f"{arn}topicfilter/{own_commands}/#")
    assert allowed(stmts, "iot:Subscribe", f"{arn}topicfilter/{own_shadow}/update/accepted")
    assert allowed(stmts, "iot:Receive", f"{arn}topic/{own_commands}/reboot")
    assert allowed(stmts, "iot:Receive", f"{arn}topic/{own_shadow}/get/accepted")


@pytest.mark.parametrize("action,resource", [
    ("iot:Connect", "client/pump-0002"),                     # another client id
    ("iot:Connect", "client/pump-0001-extra"),               # client id merely prefixed
    ("iot:Publish", "topic/dt/iotmr/pump-0002/temperature"),  # another thing's telemetry
    ("iot:Publish", "topic/dt/iotmr/pump-00011/temperature"),  # thing name as a prefix
    ("iot:Publish", "topic/cmd/iotmr/pump-0001/reboot"),     # forging its own commands
    ("iot:Publish", "topic/dt/other-app/pump-0001/x"),       # another app's namespace
    ("iot:Publish", "topic/$aws/things/pump-0002/shadow/update"),
    ("iot:Subscribe", "topicfilter/cmd/iotmr/+/reboot"),     # everyone's commands
    ("iot:Subscribe", "topicfilter/#"),
    ("iot:Subscribe", "topicfilter/dt/iotmr/pump-0002/#"),
    ("iot:Receive", "topic/cmd/iotmr/pump-0002/reboot"),
    ("iot:Receive", "topic/dt/iotmr/pump-0001/temperature"),  # its own telemetry echoed
    ("iot:UpdateThingShadow", "thing/pump-0001"),            # no management-plane actions
    ("iot:RetainPublish", "topic/dt/iotmr/pump-0001/x"),
])
def test_device_cannot_reach_anything_else(action: str, resource: str) -> None:
    stmts = device_policy_document("iotmr", "aws", "eu-west-1", ACCOUNT)
    assert not allowed(stmts, action, f"arn:aws:iot:eu-west-1:{ACCOUNT}:{resource}")


def test_policy_is_scoped_to_its_region_and_account() -> None:
    stmts = device_policy_document("iotmr", "aws", "eu-west-1", ACCOUNT)
    assert not allowed(stmts, "iot:Connect", f"arn:aws:iot:us-west-2:{ACCOUNT}:client/pump-0001")
    assert not allowed(stmts, "iot:Connect", "arn:aws:iot:eu-west-1:210987654321:client/pump-0001")


def test_policy_text_is_deterministic() -> None:
    first = device_policy_document("iotmr", "aws", "eu-west-1", ACCOUNT)
    assert first == device_policy_document("iotmr", "aws", "eu-west-1", ACCOUNT)
    assert first == json.dumps(json.loads(first), sort_keys=True)
