"""The AWS IoT policy every device certificate gets, and the device topic namespace.

Topic namespace (``<app>`` is the stack's ``appName``, ``<thing>`` the device's thing name,
which is also its certificate CN and its MQTT client id):

    dt/<app>/<thing>/<anything>          device -> cloud telemetry (device publishes)
    cmd/<app>/<thing>/<anything>         cloud -> device commands (device subscribes/receives)
    $aws/things/<thing>/shadow/<...>     the device's own classic and named shadows

A device can only act as itself: every resource below carries the policy variable
``${iot:Connection.Thing.ThingName}``, which AWS IoT fills from the thing the connecting
certificate is attached to, so one device's certificate can never reach another's topics.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from components.facts import THING_IS_ATTACHED_KEY, THING_NAME_VARIABLE

# Filled in by AWS IoT at authorization time; never a value we substitute ourselves.
THING_NAME = THING_NAME_VARIABLE
IS_ATTACHED = THING_IS_ATTACHED_KEY

TELEMETRY_PREFIX = "dt"
COMMAND_PREFIX = "cmd"


def telemetry_topic(app_name: str, thing_name: str) -> str:
    """Root of the topics a device publishes telemetry under (append '/<subject>')."""
    return f"{TELEMETRY_PREFIX}/{app_name}/{thing_name}"


def command_topic(app_name: str, thing_name: str) -> str:
    """Root of the topics the cloud sends a device its commands under."""
    return f"{COMMAND_PREFIX}/{app_name}/{thing_name}"


def shadow_topic(thing_name: str) -> str:
    """Root of a thing's shadow topics (classic: '/get', named: '/name/<n>/get', ...)."""
    return f"$aws/things/{thing_name}/shadow"


def _arns(prefix: str, kind: str, topics: Iterable[str]) -> list[str]:
    return [f"{prefix}:{kind}/{topic}/*" for topic in topics]


def device_policy_statements(app_name: str, partition: str, region: str,
                             account_id: str) -> list[dict[str, Any]]:
    """The statements of the device policy for one region of one account."""
    prefix = f"arn:{partition}:iot:{region}:{account_id}"
    outbound = (telemetry_topic(app_name, THING_NAME), shadow_topic(THING_NAME))
    inbound = (command_topic(app_name, THING_NAME), shadow_topic(THING_NAME))
    return [
        {
            # Client id must equal the thing name, and only while this certificate is
            # attached to that thing (detaching it in the registry locks the device out).
            "Sid": "ConnectAsOwnThingOnly",
            "Effect": "Allow",
            "Action": ["iot:Connect"],
            "Resource": [f"{prefix}:client/{THING_NAME}"],
            "Condition": {"Bool": {IS_ATTACHED: "true"}},
        },
        {
            "Sid": "PublishOwnTelemetryAndShadow",
            "Effect": "Allow",
            "Action": ["iot:Publish"],
            "Resource": _arns(prefix, "topic", outbound),
        },
        {
            "Sid": "SubscribeOwnCommandsAndShadow",
            "Effect": "Allow",
            "Action": ["iot:Subscribe"],
            "Resource": _arns(prefix, "topicfilter", inbound),
        },
        {
            "Sid": "ReceiveOwnCommandsAndShadow",
            "Effect": "Allow",
            "Action": ["iot:Receive"],
            "Resource": _arns(prefix, "topic", inbound),
        },
    ]


def device_policy_document(app_name: str, partition: str, region: str, account_id: str) -> str:
    """The device policy as the JSON text `aws.iot.Policy` takes (stable key order)."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": device_policy_statements(app_name, partition, region, account_id),
    }, sort_keys=True)
