"""What a capability hands the monitoring of its region: the failures that would otherwise be
silent, as typed references to its resources. `components/monitoring/alarms.py` turns each
entry into alarms (and metric filters), `dashboards.py` into widgets.

A capability exposes them through `Capability.watch` (components/context.py); the graph test
(tests/test_monitoring.py) fails when a dead-letter queue, state machine, pipe or function in
the graph has no alarm, so something added later without an entry here cannot deploy
unnoticed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class WatchedQueue:
    """A dead-letter queue: anything in it is a failure nobody has handled yet."""

    label: str  # short, unique in the region: names its alarms ("jitr", "replication")
    queue: aws.sqs.Queue  # its retention sets the age alarm's threshold


@dataclass(frozen=True)
class WatchedMachine:
    """A state machine: failed, timed-out or aborted executions; and, counted by error name
    from its execution log, the refusals its definition ends in (one alarm per reason)."""

    label: str
    machine: aws.sfn.StateMachine
    log_group: aws.cloudwatch.LogGroup  # the machine's own execution log (level ALL or ERROR)
    reasons: tuple[str, ...] = ()  # error names of the definition's Fail states
    namespace: str = "IotMultiRegion/StateMachines"  # where the by-reason metric lands


@dataclass(frozen=True)
class WatchedPipe:
    """An EventBridge pipe: executions or target invocations that failed (before its retries
    end in the dead-letter queue, which has its own alarm)."""

    label: str
    pipe: aws.pipes.Pipe


@dataclass(frozen=True)
class WatchedFunction:
    """A Lambda function: errors (timeouts included) and throttles."""

    label: str
    function: aws.lambda_.Function


@dataclass(frozen=True)
class WatchedDecisions:
    """Decisions a function logs as JSON (powertools), counted by their reason field.

    `pattern` selects the decision lines that count (a CloudWatch Logs JSON filter pattern),
    `reason_field` the field the metric is dimensioned by. Each entry of `alarms` is a reason
    and the count per 5 minutes that alarms; `total_alarm` alarms on all of them together.
    """

    label: str
    log_group: aws.cloudwatch.LogGroup
    pattern: str
    reason_field: str  # e.g. "$.reason"
    namespace: str
    metric_name: str
    alarms: Mapping[str, int] = field(default_factory=dict)
    total_alarm: int | None = None
    description: str = ""


@dataclass(frozen=True)
class WatchedApi:
    """A REST API stage: 5xx answers and p99 latency."""

    label: str
    api_name: pulumi.Input[str]
    stage_name: str
    latency_p99_milliseconds: int
    server_errors_per_5_minutes: int = 5


@dataclass(frozen=True)
class Watch:
    queues: tuple[WatchedQueue, ...] = ()
    machines: tuple[WatchedMachine, ...] = ()
    pipes: tuple[WatchedPipe, ...] = ()
    functions: tuple[WatchedFunction, ...] = ()
    decisions: tuple[WatchedDecisions, ...] = ()
    apis: tuple[WatchedApi, ...] = ()
    # Alarms the capability already declares itself (KPIs, health): shown on the dashboards.
    alarms: tuple[aws.cloudwatch.MetricAlarm, ...] = ()

    def __add__(self, other: Watch) -> Watch:
        return Watch(*(getattr(self, f) + getattr(other, f) for f in
                       ("queues", "machines", "pipes", "functions", "decisions", "apis",
                        "alarms")))


def fail_state_errors(definition: Path) -> tuple[str, ...]:
    """The static error names of a definition's Fail states (an `ErrorPath` one has none),
    in file order: what an execution of that machine can end in, by design."""

    def walk(states: Mapping[str, object]) -> list[str]:
        found: list[str] = []
        for state in states.values():
            if not isinstance(state, Mapping):
                continue
            if state.get("Type") == "Fail" and isinstance(state.get("Error"), str):
                found.append(str(state["Error"]))
            for branch in state.get("Branches") or []:
                found += walk(branch.get("States", {}))
            for key in ("Iterator", "ItemProcessor"):
                inner = state.get(key)
                if isinstance(inner, Mapping):
                    found += walk(inner.get("States", {}))
        return found

    document = json.loads(definition.read_text())
    return tuple(dict.fromkeys(walk(document["States"])))
