"""EventBridge: event bus policies that let no one outside the account in."""

from __future__ import annotations

from pulumi_policy import Policy

from ._common import resource_guardrail
from ._exposure import resource_policy_check

BUS_POLICY = "aws:cloudwatch/eventBusPolicy:EventBusPolicy"

POLICIES: list[Policy] = [
    resource_guardrail(
        "events-bus-policy-not-public",
        "Event bus policies admit no one outside the account (shared resource-policy judgement)",
        ["IAM Access Analyzer external access findings (AWS::Events::EventBus)"],
        [BUS_POLICY], resource_policy_check({BUS_POLICY: ("policy",)})),
]
