"""The CVM's KPIs (the seed's "registration success rate" and "attempts per device"): metric
names the function publishes (EMF, namespace/service below), the dashboard body, and the
metric-math expression of the success-rate alarm."""

from __future__ import annotations

import json
from typing import Any

from lambdas.contracts.metrics import CVM, Cvm

# What the function publishes: lambdas/contracts/metrics.py (the function uses it too).
NAMESPACE = CVM.namespace
DIMENSIONS = dict(CVM.dimensions)
ATTEMPTS_PER_DEVICE = Cvm.ATTEMPTS_PER_DEVICE
UNDO_FAILED = Cvm.UNDO_FAILED
ERRORED = Cvm.ERRORED

# Success rate among requests that proved a device identity (403/400 are mostly strangers
# and broken firmware: they have their own widgets). Below MIN_ATTEMPTS in a period the rate
# is reported as 100: three failures of four requests at night are not an incident.
SUCCESS_RATE_PERIOD = 300
MIN_ATTEMPTS = 5
_PROVEN = "(FILL(s,0)+FILL(c,0)+FILL(u,0)+FILL(e,0))"
SUCCESS_RATE_EXPRESSION = f"IF({_PROVEN} >= {MIN_ATTEMPTS}, 100*FILL(s,0)/{_PROVEN}, 100)"
SUCCESS_RATE_INPUTS = {"s": Cvm.SUCCEEDED, "c": Cvm.CONFLICT, "u": Cvm.UNAVAILABLE,
                       "e": Cvm.ERRORED}


def _metric(name: str, stat: str = "Sum", label: str | None = None) -> list[Any]:
    return [NAMESPACE, CVM.metric(name), "service", CVM.name,
            {"stat": stat, "label": label or name}]


def dashboard_body(*, region: str, api_name: str, stage_name: str, function_name: str,
                   web_acl_name: str) -> str:
    def widget(title: str, metrics: list[Any], x: int, y: int, *, stat: str = "Sum",
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"type": "metric", "x": x, "y": y, "width": 12, "height": 6,
                "properties": {"title": title, "region": region, "view": "timeSeries",
                               "stat": stat, "period": SUCCESS_RATE_PERIOD, "metrics": metrics,
                               **(extra or {})}}

    success_rate = [
        [{"expression": SUCCESS_RATE_EXPRESSION, "label": "success rate %", "id": "rate"}],
        *[[NAMESPACE, CVM.metric(name), "service", CVM.name, {"id": key, "visible": False}]
          for key, name in SUCCESS_RATE_INPUTS.items()],
    ]
    widgets = [
        widget("Registration success rate (proven devices, %)", success_rate, 0, 0,
               extra={"yAxis": {"left": {"min": 0, "max": 100}}}),
        widget("Attempts per registered device", [
            _metric(ATTEMPTS_PER_DEVICE, "Average", "average"),
            _metric(ATTEMPTS_PER_DEVICE, "Maximum", "maximum")], 12, 0),
        widget("Registrations by outcome", [
            _metric(name) for name in (Cvm.SUCCEEDED, Cvm.CONFLICT, Cvm.REFUSED, Cvm.INVALID,
                                       Cvm.UNAVAILABLE, Cvm.ERRORED)], 0, 6),
        widget("Rotations and undo failures", [
            _metric(Cvm.ROTATION_SUCCEEDED), _metric(Cvm.UNDO_FAILED)], 12, 6),
        widget("API (stage)", [
            ["AWS/ApiGateway", name, "ApiName", api_name, "Stage", stage_name]
            for name in ("Count", "4XXError", "5XXError")], 0, 12),
        widget("API latency (p99, ms)", [
            ["AWS/ApiGateway", "Latency", "ApiName", api_name, "Stage", stage_name,
             {"stat": "p99"}],
            ["AWS/Lambda", "Duration", "FunctionName", function_name, {"stat": "p99"}]],
            12, 12, stat="p99"),
        widget("WAF", [
            ["AWS/WAFV2", name, "WebACL", web_acl_name, "Region", region, "Rule", "ALL"]
            for name in ("AllowedRequests", "BlockedRequests")], 0, 18),
    ]
    return json.dumps({"widgets": widgets}, sort_keys=True)
