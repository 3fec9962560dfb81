"""CloudWatch dashboard bodies: one per region (everything its `Watch` lists) and one global
view (the same signals, one row per region, in the primary region's dashboard list).

Plain functions of resolved names and ARNs, so tests read the JSON. Dashboard body format:
https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/CloudWatch-Dashboard-Body-Structure.html
(a metric widget names its own `region`, which is what makes the global view cross-region).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from components.monitoring.alarms import FAILURES_BY_REASON, PERIOD, REASON


@dataclass(frozen=True)
class RegionSignals:
    """One region's watched resources, by resolved name (what the widgets plot)."""

    region: str
    queues: Sequence[str] = ()  # queue names
    machines: Sequence[tuple[str, str, str]] = ()  # (label, ARN, by-reason namespace)
    pipes: Sequence[str] = ()
    functions: Sequence[str] = ()
    decisions: Sequence[tuple[str, str, str]] = ()  # (label, namespace, metric name)
    apis: Sequence[tuple[str, str]] = ()  # (API name, stage)
    alarm_arns: Sequence[str] = field(default_factory=tuple)


def _widget(title: str, region: str, metrics: list[Any], *, x: int, y: int, width: int = 8,
            stat: str = "Sum", extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "metric", "x": x, "y": y, "width": width, "height": 6,
            "properties": {"title": title, "region": region, "view": "timeSeries",
                           "stat": stat, "period": PERIOD, "metrics": metrics,
                           **(extra or {})}}


def _searches(rows: Sequence[tuple[str, str, str]]) -> list[Any]:
    """One SEARCH per (label, namespace, metric): every reason dimension of that metric."""
    return [[{"expression": f"SEARCH('{{{namespace},{REASON}}} MetricName=\"{metric}\"', "
                            f"'Sum', {PERIOD})", "label": label, "id": f"s{index}"}]
            for index, (label, namespace, metric) in enumerate(rows)]


def region_widgets(signals: RegionSignals, y: int = 0, *, title_prefix: str = "") -> list[dict[str, Any]]:
    """The widgets of one region, starting at row `y` (three 8-wide widgets per row)."""
    region = signals.region
    t = f"{title_prefix}{region}: " if title_prefix else ""
    panels: list[tuple[str, list[Any], str]] = [
        (f"{t}dead letters (messages)", [["AWS/SQS", "ApproximateNumberOfMessagesVisible",
                                          "QueueName", q] for q in signals.queues], "Maximum"),
        (f"{t}oldest dead letter (s)", [["AWS/SQS", "ApproximateAgeOfOldestMessage",
                                         "QueueName", q] for q in signals.queues], "Maximum"),
        (f"{t}failed executions", [["AWS/States", "ExecutionsFailed", "StateMachineArn", arn,
                                    {"label": label}] for label, arn, _ in signals.machines],
         "Sum"),
        (f"{t}refusals by reason", _searches([(label, namespace, FAILURES_BY_REASON)
                                              for label, _, namespace in signals.machines]),
         "Sum"),
        (f"{t}pipe failures", [["AWS/EventBridge/Pipes", metric, "PipeName", p]
                               for p in signals.pipes
                               for metric in ("ExecutionFailed", "TargetStageFailed")], "Sum"),
        (f"{t}function errors + throttles", [["AWS/Lambda", metric, "FunctionName", f]
                                             for f in signals.functions
                                             for metric in ("Errors", "Throttles")], "Sum"),
        (f"{t}decisions by reason", _searches(signals.decisions), "Sum"),
        (f"{t}API 5xx", [["AWS/ApiGateway", "5XXError", "ApiName", api, "Stage", stage]
                         for api, stage in signals.apis], "Sum"),
        (f"{t}API latency p99 (ms)", [["AWS/ApiGateway", "Latency", "ApiName", api, "Stage",
                                       stage, {"stat": "p99"}] for api, stage in signals.apis],
         "p99"),
    ]
    widgets = []
    for index, (title, metrics, stat) in enumerate(p for p in panels if p[1]):
        widgets.append(_widget(title, region, metrics, x=(index % 3) * 8, y=y + (index // 3) * 6,
                               stat=stat))
    return widgets


# An alarm status widget shows at most 100 alarms.
ALARMS_PER_WIDGET = 100


def _alarm_status(title: str, alarm_arns: Sequence[str], y: int) -> list[dict[str, Any]]:
    arns = sorted(alarm_arns)
    chunks = [arns[i:i + ALARMS_PER_WIDGET] for i in range(0, len(arns), ALARMS_PER_WIDGET)]
    return [{"type": "alarm", "x": 0, "y": y + 6 * index, "width": 24, "height": 6,
             "properties": {"title": title if len(chunks) == 1 else
                            f"{title} ({index + 1}/{len(chunks)})",
                            "alarms": chunk, "sortBy": "stateUpdatedTimestamp"}}
            for index, chunk in enumerate(chunks)]


def _height(widgets: list[dict[str, Any]]) -> int:
    return max((w["y"] + w["height"] for w in widgets), default=0)


def regional_dashboard_body(signals: RegionSignals) -> str:
    widgets = _alarm_status(f"{signals.region}: alarms", signals.alarm_arns, 0)
    widgets += region_widgets(signals, _height(widgets))
    return json.dumps({"widgets": widgets}, sort_keys=True)


def global_dashboard_body(regions: Sequence[RegionSignals]) -> str:
    """Every region's alarms in one status widget, then one block of widgets per region."""
    widgets = _alarm_status("alarms, every region",
                            [arn for r in regions for arn in r.alarm_arns], 0)
    for signals in regions:
        widgets += region_widgets(signals, _height(widgets), title_prefix=" ")
    return json.dumps({"widgets": widgets}, sort_keys=True)
