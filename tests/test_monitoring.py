"""An alarm for every failure that would otherwise be silent, in every region (mocks).

The graph test reads the resource graph, not the watch lists: every dead-letter queue, state
machine, pipe and function the program declares must have its alarms, and every alarm must
notify its region's alert topic. Something added later without an alarm fails here.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from components.jitr.component import DEFINITION as JITR_DEFINITION
from components.monitoring.settings import AlertSettings, Subscription, parse
from components.monitoring.watch import fail_state_errors
from components.replication.component import DEFINITION as REPLICATION_DEFINITION
from tests.support.stacks import configured_regions
from tools.harness import RecordedResource, StackGraph, evaluate_program

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
FILTER = "aws:cloudwatch/logMetricFilter:LogMetricFilter"
TOPIC = "aws:sns/topic:Topic"


def alarms(graph: StackGraph, region: str) -> list[RecordedResource]:
    return [a for a in graph.of_type(ALARM) if a.region == region]


def metrics_of(alarm: RecordedResource) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(namespace, metric, dimensions) of every metric the alarm reads."""
    inputs = alarm.inputs
    if inputs.get("metricName"):
        yield inputs["namespace"], inputs["metricName"], dict(inputs.get("dimensions") or {})
    for query in inputs.get("metricQueries") or []:
        metric = query.get("metric")
        if metric:
            yield metric["namespace"], metric["metricName"], dict(metric.get("dimensions") or {})


def watched_by(graph: StackGraph, region: str, namespace: str, metric: str,
               dimension: str, value: str) -> list[str]:
    return [a.inputs["name"] for a in alarms(graph, region)
            for ns, name, dims in metrics_of(a)
            if ns == namespace and name == metric and dims.get(dimension) == value]


def unwatched(graph: StackGraph) -> list[str]:
    """Every failure source in the graph without the alarm it must have."""
    missing: list[str] = []
    needs = {
        "aws:sqs/queue:Queue": [("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "name"),
                                ("AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", "name")],
        "aws:sfn/stateMachine:StateMachine": [("AWS/States", "ExecutionsFailed", "StateMachineArn", "arn"),
                                             ("AWS/States", "ExecutionsTimedOut", "StateMachineArn", "arn")],
        "aws:pipes/pipe:Pipe": [("AWS/EventBridge/Pipes", "ExecutionFailed", "PipeName", "name"),
                                ("AWS/EventBridge/Pipes", "TargetStageFailed", "PipeName", "name")],
        "aws:lambda/function:Function": [("AWS/Lambda", "Errors", "FunctionName", "name"),
                                         ("AWS/Lambda", "Throttles", "FunctionName", "name")],
    }
    for type_, required in needs.items():
        for resource in graph.of_type(type_):
            for namespace, metric, dimension, output in required:
                value = resource.outputs[output]
                if not watched_by(graph, resource.region or "", namespace, metric, dimension, value):
                    missing.append(f"{resource.name}: no alarm on {namespace} {metric}")
    return missing


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_queue_machine_pipe_and_function_has_its_alarms(stack, request):
    graph = request.getfixturevalue(f"{stack}_graph")
    assert graph.of_type("aws:sqs/queue:Queue") and graph.of_type("aws:pipes/pipe:Pipe")
    assert unwatched(graph) == []


def test_the_coverage_check_finds_a_resource_without_alarms(dev_graph):
    """Drop the alarms of one dead-letter queue: the check must name it (it can fail)."""
    queue = dev_graph.of_type("aws:sqs/queue:Queue")[0]
    kept = [r for r in dev_graph.resources
            if not (r.type == ALARM and any(d.get("QueueName") == queue.outputs["name"]
                                             for _, _, d in metrics_of(r)))]
    broken = dataclasses.replace(dev_graph, resources=kept)
    assert unwatched(broken) == [
        f"{queue.name}: no alarm on AWS/SQS ApproximateNumberOfMessagesVisible",
        f"{queue.name}: no alarm on AWS/SQS ApproximateAgeOfOldestMessage"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_alarm_notifies_its_regions_alert_topic(stack, request):
    graph = request.getfixturevalue(f"{stack}_graph")
    topics = {t.region: t.outputs["arn"] for t in graph.of_type(TOPIC)}
    assert sorted(topics) == sorted(configured_regions(stack))
    every = graph.of_type(ALARM)
    assert len(every) > 30 * len(topics)
    for alarm in every:
        assert alarm.inputs["alarmActions"] == [topics[alarm.region]], alarm.name
        assert alarm.inputs["okActions"] == [topics[alarm.region]], alarm.name
        assert alarm.inputs["name"].startswith(f"iotmr-{stack}-{alarm.region}-"), alarm.name
        assert alarm.inputs["treatMissingData"] == "notBreaching", alarm.name


def test_dead_letter_age_alarm_fires_well_before_sqs_deletes_the_message(dev_graph):
    for queue in dev_graph.of_type("aws:sqs/queue:Queue"):
        [age] = [a for a in alarms(dev_graph, queue.region or "")
                 if a.inputs.get("metricName") == "ApproximateAgeOfOldestMessage"
                 and a.inputs["dimensions"]["QueueName"] == queue.outputs["name"]]
        retention = queue.inputs["messageRetentionSeconds"]
        assert 0 < age.inputs["threshold"] <= retention / 2


@pytest.mark.parametrize("definition,label", [(JITR_DEFINITION, "jitr"),
                                              (REPLICATION_DEFINITION, "replication")])
def test_refusals_by_reason_every_fail_state_of_the_definition(dev_graph, definition, label):
    reasons = fail_state_errors(definition)
    assert reasons
    for region in configured_regions("dev"):
        # The state machine's group: the pipe's and a function's names end in -replication too
        # (which one came first depended on registration order).
        [machine_log] = [g for g in dev_graph.of_type("aws:cloudwatch/logGroup:LogGroup")
                         if g.region == region and g.inputs["name"].startswith("/aws/vendedlogs/states/")
                         and g.inputs["name"].endswith(f"-{label}")]
        [metric_filter] = [f for f in dev_graph.of_type(FILTER) if f.region == region
                           and f.inputs["logGroupName"] == machine_log.outputs["name"]]
        transformation = metric_filter.inputs["metricTransformation"]
        assert metric_filter.inputs["pattern"] == '{ $.type = "ExecutionFailed" }'
        assert transformation["dimensions"] == {"Reason": "$.details.error"}
        alarmed = {dims["Reason"] for a in alarms(dev_graph, region)
                   for ns, metric, dims in metrics_of(a)
                   if ns == transformation["namespace"] and metric == transformation["name"]}
        assert alarmed == set(reasons)


def test_jitr_reasons_come_from_the_definitions_fail_states():
    assert fail_state_errors(JITR_DEFINITION)[:3] == (
        "Jitr.InvalidEvent", "Jitr.CertificateUnreadable", "Jitr.ForeignCertificate")
    assert "Jitr.RollbackIncomplete" in fail_state_errors(JITR_DEFINITION)


def test_hook_denials_by_reason_and_outages(dev_graph):
    for region in configured_regions("dev"):
        hook_log = next(g for g in dev_graph.of_type("aws:cloudwatch/logGroup:LogGroup")
                        if g.region == region and g.inputs["name"].endswith("-fleet-hook"))
        filters = [f for f in dev_graph.of_type(FILTER) if f.region == region
                   and f.inputs["logGroupName"] == hook_log.outputs["name"]]
        assert {f.inputs["pattern"] for f in filters} == {
            '{ ($.message = "pre-provisioning decision") && ($.allowed IS FALSE) }'}
        names = {a.inputs["name"] for a in alarms(dev_graph, region)}
        prefix = f"iotmr-dev-{region}-fleet-hook-denials"
        assert {f"{prefix}-table-unavailable", f"{prefix}-hook-error", f"{prefix}-total"} <= names


def test_cvm_5xx_and_latency(dev_graph):
    for region in configured_regions("dev"):
        api = f"iotmr-dev-{region}-cvm"
        assert watched_by(dev_graph, region, "AWS/ApiGateway", "5XXError", "ApiName", api)
        [latency] = [a for a in alarms(dev_graph, region) if a.inputs.get("metricName") == "Latency"]
        assert latency.inputs["extendedStatistic"] == "p99"
        assert latency.inputs["dimensions"] == {"ApiName": api, "Stage": "v1"}


def _policy(resource: RecordedResource, key: str = "policy") -> dict[str, Any]:
    return json.loads(resource.inputs[key])


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_alert_topic_is_encrypted_tls_only_and_open_to_our_alarms_only(stack, request):
    graph = request.getfixturevalue(f"{stack}_graph")
    keys = {k.region: k for k in graph.of_type("aws:kms/key:Key") if k.region != "global"
            and "logs and queues" in k.inputs.get("description", "")}
    for topic in graph.of_type(TOPIC):
        region = topic.region
        prefix = f"iotmr-{stack}-{region}"
        assert topic.inputs["name"] == f"{prefix}-alerts"
        assert topic.inputs["kmsMasterKeyId"] == keys[region].outputs["arn"]
        [policy] = [p for p in graph.of_type("aws:sns/topicPolicy:TopicPolicy")
                    if p.inputs["arn"] == topic.outputs["arn"]]
        statements = _policy(policy)["Statement"]
        [allow] = [s for s in statements if s["Effect"] == "Allow"]
        source = f"arn:aws:cloudwatch:{region}:123456789012:alarm:{prefix}-*"
        assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
        assert allow["Condition"]["ArnLike"]["aws:SourceArn"] == source
        assert any(s["Effect"] == "Deny" and s["Condition"] == {
            "Bool": {"aws:SecureTransport": "false"}} for s in statements)
        [key_grant] = [s for s in _policy(keys[region])["Statement"]
                       if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
        assert key_grant["Condition"]["ArnLike"]["aws:SourceArn"] == source
        subscriptions = [s for s in graph.of_type("aws:sns/topicSubscription:TopicSubscription")
                         if s.inputs["topic"] == topic.outputs["arn"]]
        assert [(s.inputs["protocol"], s.inputs["endpoint"]) for s in subscriptions] == [
            ("email", f"iot-{stack}-oncall@example.com")]


def test_dashboards_one_per_region_and_a_global_one(dev_graph):
    dashboards = {d.inputs["dashboardName"]: d for d in dev_graph.of_type(
        "aws:cloudwatch/dashboard:Dashboard")}
    regions = configured_regions("dev")
    every_alarm: set[str] = set()
    for region in regions:
        body = json.loads(dashboards[f"iotmr-dev-{region}-operations"].inputs["dashboardBody"])
        listed = {arn for w in body["widgets"] if w["type"] == "alarm"
                  for arn in w["properties"]["alarms"]}
        assert listed == {a.outputs["arn"] for a in alarms(dev_graph, region)}
        assert {w["properties"]["region"] for w in body["widgets"] if w["type"] == "metric"} == {region}
        every_alarm |= listed
    global_board = dashboards["iotmr-dev-operations"]
    assert global_board.region == "eu-west-1"
    body = json.loads(global_board.inputs["dashboardBody"])
    assert {arn for w in body["widgets"] if w["type"] == "alarm"
            for arn in w["properties"]["alarms"]} == every_alarm
    assert {w["properties"]["region"] for w in body["widgets"] if w["type"] == "metric"} == set(regions)
    assert all(len(w["properties"]["alarms"]) <= 100 for w in body["widgets"] if w["type"] == "alarm")


def test_a_new_capability_without_a_watch_would_be_caught(monkeypatch):
    """A capability that lists nothing to watch: its queue, machine and function have no
    alarm, and the graph test says which."""
    # Through sys.modules: the harness forgets the program's modules after each evaluation,
    # so `from components import ...` could hand back a stale module object.
    capabilities = importlib.import_module("components.capabilities")
    regional = importlib.import_module("components.regional")
    unwatching = tuple(dataclasses.replace(c, watch=None) if c.name == "jitr" else c
                       for c in capabilities.CAPABILITIES)
    monkeypatch.setattr(capabilities, "CAPABILITIES", unwatching)
    monkeypatch.setattr(regional, "CAPABILITIES", unwatching)
    graph = evaluate_program(".", "dev", config_overrides={"capabilities": ["jitr"],
                                                           "regions": ["eu-west-1"]},
                             drop_keys=("cvm", "installerWeb"))
    assert sorted(unwatched(graph)) == sorted([
        "region-eu-west-1-jitr-check: no alarm on AWS/Lambda Errors",
        "region-eu-west-1-jitr-check: no alarm on AWS/Lambda Throttles",
        "region-eu-west-1-jitr-dlq: no alarm on AWS/SQS ApproximateNumberOfMessagesVisible",
        "region-eu-west-1-jitr-dlq: no alarm on AWS/SQS ApproximateAgeOfOldestMessage",
        "region-eu-west-1-jitr-machine: no alarm on AWS/States ExecutionsFailed",
        "region-eu-west-1-jitr-machine: no alarm on AWS/States ExecutionsTimedOut"])


@pytest.mark.parametrize("raw,expected,problem", [
    (None, AlertSettings(), None),
    ({"subscriptions": [{"protocol": "email-json", "endpoint": "a@b.io"},
                        {"protocol": "lambda", "endpoint":
                         "arn:aws:lambda:eu-west-1:123456789012:function:pager"}]},
     AlertSettings((Subscription("email-json", "a@b.io"), Subscription(
         "lambda", "arn:aws:lambda:eu-west-1:123456789012:function:pager"))), None),
    ({"subscriptions": [{"protocol": "email", "endpoint": "a@b.io"}] * 2},
     AlertSettings((Subscription("email", "a@b.io"),)), "listed twice"),
    ({"subscriptions": [{"protocol": "sqs", "endpoint": "my-queue"}]}, AlertSettings(),
     "is not an sqs ARN"),
    ({"subscriptions": [{"protocol": "email"}]}, AlertSettings(),
     "exactly `protocol` and `endpoint`"),
    ("ops@example.com", AlertSettings(), "must be a map with `subscriptions`"),
])
def test_alert_settings(raw, expected, problem):
    reported: list[tuple[str, str]] = []
    assert parse(raw, lambda f, m: reported.append((f, m))) == expected
    if problem is None:
        assert reported == []
    else:
        assert len(reported) == 1 and problem in reported[0][1], reported
