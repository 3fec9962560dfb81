"""The alarms (and log metric filters) each watched resource gets: one builder per kind.

Thresholds are fixed here, in one place, with the reason for each; every alarm treats a
missing datapoint as not breaching (AWS publishes most of these metrics only when something
happens). Alarm actions are not set here: `RegionalStack` adds the region's alert topic to
every alarm of the region (`alarm_actions_transformation`), so no alarm can be silent.

Metric names and dimensions are AWS's, each cited where it is used:
* SQS: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-available-cloudwatch-metrics.html
* Step Functions: https://docs.aws.amazon.com/step-functions/latest/dg/procedure-cw-metrics.html
* Pipes: https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-pipes-monitoring.html
* Lambda: https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html
* API Gateway: https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-metrics-and-dimensions.html
* Metric filters on JSON logs, with dimensions from fields:
  https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntax.html
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.monitoring.watch import (
    WatchedApi,
    WatchedDecisions,
    WatchedFunction,
    WatchedMachine,
    WatchedPipe,
    WatchedQueue,
)

PERIOD = 300  # seconds; every alarm looks at 5-minute sums unless it says otherwise
# A dead letter older than this has been ignored for a working day (or half of a short
# retention, so it is noticed well before SQS deletes it).
DEAD_LETTER_AGE_SECONDS = 24 * 3600
# The metric Step Functions' execution log feeds, by error name.
FAILURES_BY_REASON = "ExecutionsFailedByReason"
REASON = "Reason"
# An execution-failed event in a state machine's CloudWatch Logs ("Logging using CloudWatch
# Logs": type ExecutionFailed, details.error = the Fail state's error name).
EXECUTION_FAILED_PATTERN = '{ $.type = "ExecutionFailed" }'
EXECUTION_FAILED_REASON = "$.details.error"


@dataclass(frozen=True)
class Where:
    """Where a builder declares: the owning component, its logical name (prefix of every
    child's logical name), the region, the physical-name prefix and the tags."""

    parent: pulumi.Resource
    name: str
    region: str
    prefix: str  # `<app>-<env>-<region>`: every alarm name starts with it
    tags: Mapping[str, str]


@dataclass(frozen=True)
class Declared:
    """What one builder declared: its alarms (for dashboards and the graph test)."""

    alarms: tuple[aws.cloudwatch.MetricAlarm, ...]
    metric_filters: tuple[aws.cloudwatch.LogMetricFilter, ...] = ()


def _alarm(name: str, *, at: Where, alarm_name: str, description: pulumi.Input[str],
           threshold: pulumi.Input[float],
           namespace: str | None = None, metric_name: str | None = None,
           dimensions: Mapping[str, pulumi.Input[str]] | None = None, statistic: str = "Sum",
           extended_statistic: str | None = None, period: int = PERIOD,
           evaluation_periods: int = 1, datapoints_to_alarm: int | None = None,
           queries: Sequence[aws.cloudwatch.MetricAlarmMetricQueryArgs] | None = None,
           comparison: str = "GreaterThanOrEqualToThreshold") -> aws.cloudwatch.MetricAlarm:
    single = not queries
    return aws.cloudwatch.MetricAlarm(
        name, region=at.region, name=alarm_name, alarm_description=description,
        comparison_operator=comparison, threshold=threshold,
        evaluation_periods=evaluation_periods,
        datapoints_to_alarm=datapoints_to_alarm or evaluation_periods,
        treat_missing_data="notBreaching", metric_queries=list(queries) if queries else None,
        namespace=namespace if single else None, metric_name=metric_name if single else None,
        dimensions=dict(dimensions or {}) if single else None,
        period=period if single else None,
        statistic=statistic if single and not extended_statistic else None,
        extended_statistic=extended_statistic if single else None,
        tags=dict(at.tags), opts=pulumi.ResourceOptions(parent=at.parent))


def _sum_of(expression_label: str, metrics: Mapping[str, tuple[str, str, Mapping[str, pulumi.Input[str]]]],
            statistic: str = "Sum") -> list[aws.cloudwatch.MetricAlarmMetricQueryArgs]:
    """Metric math: the sum of several metrics (a missing one counts 0)."""
    total = "+".join(f"FILL({key},0)" for key in metrics)
    return [aws.cloudwatch.MetricAlarmMetricQueryArgs(
        id="total", expression=total, label=expression_label, return_data=True),
        *[aws.cloudwatch.MetricAlarmMetricQueryArgs(
            id=key, return_data=False,
            metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                namespace=namespace, metric_name=metric, dimensions=dict(dimensions),
                stat=statistic, period=PERIOD))
          for key, (namespace, metric, dimensions) in metrics.items()]]


def dead_letter_alarms(watched: WatchedQueue, at: Where) -> Declared:
    """Depth: one message is one failure nobody replayed. Age: it has waited too long."""
    name = f"{at.name}-{watched.label}-dlq"
    dimensions = {"QueueName": watched.queue.name}
    retention = watched.queue.message_retention_seconds
    # SQS's default retention (4 days) when the queue leaves it unset.
    age = retention.apply(lambda seconds: min(DEAD_LETTER_AGE_SECONDS,
                                              (seconds or 4 * 86400) // 2))
    return Declared((
        _alarm(f"{name}-depth", at=at,
               alarm_name=f"{at.prefix}-{watched.label}-dlq-depth",
               description=(f"{watched.label}: messages in the dead-letter queue - failures "
                            "that were not retried successfully; inspect and replay them"),
               threshold=1, namespace="AWS/SQS",
               metric_name="ApproximateNumberOfMessagesVisible", dimensions=dimensions,
               statistic="Maximum"),
        _alarm(f"{name}-age", at=at,
               alarm_name=f"{at.prefix}-{watched.label}-dlq-age",
               description=pulumi.Output.all(age, retention).apply(
                   lambda v: f"{watched.label}: the oldest dead letter is over {v[0] // 3600} h "
                             f"old; SQS deletes it after {(v[1] or 4 * 86400) // 86400} days"),
               threshold=age, namespace="AWS/SQS",
               metric_name="ApproximateAgeOfOldestMessage", dimensions=dimensions,
               statistic="Maximum"),
    ))


def machine_alarms(watched: WatchedMachine, at: Where) -> Declared:
    """Any execution that failed, timed out or was aborted; and one alarm per refusal reason
    of the definition, counted from the execution log by a metric filter."""
    name = f"{at.name}-{watched.label}"
    dimensions = {"StateMachineArn": watched.machine.arn}
    alarms = [_alarm(
        f"{name}-failed-executions", at=at,
        alarm_name=f"{at.prefix}-{watched.label}-failed-executions",
        description=(f"{watched.label}: executions failed, timed out or were aborted; the "
                     "execution history (or the machine's log) says why"),
        threshold=1,
        queries=_sum_of("failed + timed out + aborted", {
            metric.lower(): ("AWS/States", metric, dimensions)
            for metric in ("ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted")}))]
    metric_filter = aws.cloudwatch.LogMetricFilter(
        f"{name}-failures-by-reason", region=at.region, name=f"{at.prefix}-{watched.label}-failures",
        log_group_name=watched.log_group.name, pattern=EXECUTION_FAILED_PATTERN,
        metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(
            name=FAILURES_BY_REASON, namespace=watched.namespace, value="1", unit="Count",
            dimensions={REASON: EXECUTION_FAILED_REASON}),
        opts=pulumi.ResourceOptions(parent=at.parent))
    for reason in watched.reasons:
        slug = reason.split(".")[-1]
        alarms.append(_alarm(
            f"{name}-reason-{slug}", at=at,
            alarm_name=f"{at.prefix}-{watched.label}-{slug}",
            description=f"{watched.label}: executions ended in {reason}",
            threshold=1, namespace=watched.namespace,
            metric_name=FAILURES_BY_REASON, dimensions={REASON: reason}))
    return Declared(tuple(alarms), (metric_filter,))


def pipe_alarms(watched: WatchedPipe, at: Where) -> Declared:
    dimensions = {"PipeName": watched.pipe.name}
    return Declared((_alarm(
        f"{at.name}-{watched.label}-pipe-failures", at=at, alarm_name=f"{at.prefix}-{watched.label}-pipe-failures",
        description=(f"{watched.label}: pipe executions failed or timed out, or the target "
                     "failed (the pipe retries, then dead-letters)"),
        threshold=1,
        queries=_sum_of("failed executions + timeouts + target failures", {
            metric.lower(): ("AWS/EventBridge/Pipes", metric, dimensions)
            for metric in ("ExecutionFailed", "ExecutionTimeout", "TargetStageFailed")})),))


def function_alarms(watched: WatchedFunction, at: Where) -> Declared:
    dimensions = {"FunctionName": watched.function.name}
    return Declared((_alarm(
        f"{at.name}-{watched.label}-function-errors", at=at, alarm_name=f"{at.prefix}-{watched.label}-function-errors",
        description=(f"{watched.label}: the function failed (errors include timeouts) or "
                     "was throttled"),
        threshold=1,
        queries=_sum_of("errors + throttles", {
            metric.lower(): ("AWS/Lambda", metric, dimensions)
            for metric in ("Errors", "Throttles")})),))


def decision_alarms(watched: WatchedDecisions, at: Where) -> Declared:
    name = f"{at.name}-{watched.label}"
    metric_filter = aws.cloudwatch.LogMetricFilter(
        f"{name}-by-reason", region=at.region, name=f"{at.prefix}-{watched.label}",
        log_group_name=watched.log_group.name, pattern=watched.pattern,
        metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(
            name=watched.metric_name, namespace=watched.namespace, value="1", unit="Count",
            dimensions={REASON: watched.reason_field}),
        opts=pulumi.ResourceOptions(parent=at.parent))
    alarms = [
        _alarm(f"{name}-{reason.lower()}", at=at,
               alarm_name=f"{at.prefix}-{watched.label}-{reason.lower().replace('_', '-')}",
               description=f"{watched.label}: {threshold}+ decisions {reason} in 5 minutes",
               threshold=threshold, namespace=watched.namespace,
               metric_name=watched.metric_name, dimensions={REASON: reason})
        for reason, threshold in watched.alarms.items()]
    filters = [metric_filter]
    if watched.total_alarm is not None:
        # Alarms cannot sum a SEARCH over the reasons: a second filter counts them all.
        filters.append(aws.cloudwatch.LogMetricFilter(
            f"{name}-total", region=at.region, name=f"{at.prefix}-{watched.label}-total",
            log_group_name=watched.log_group.name, pattern=watched.pattern,
            metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(
                name=f"{watched.metric_name}Total", namespace=watched.namespace, value="1",
                default_value="0", unit="Count"),
            opts=pulumi.ResourceOptions(parent=at.parent)))
        alarms.append(_alarm(
            f"{name}-total", at=at,
            alarm_name=f"{at.prefix}-{watched.label}-total",
            description=(f"{watched.label}: {watched.total_alarm}+ in 5 minutes, every reason "
                         f"together. {watched.description}").strip(),
            threshold=watched.total_alarm, namespace=watched.namespace,
            metric_name=f"{watched.metric_name}Total"))
    return Declared(tuple(alarms), tuple(filters))


def api_alarms(watched: WatchedApi, at: Where) -> Declared:
    name = f"{at.name}-{watched.label}"
    dimensions = {"ApiName": watched.api_name, "Stage": watched.stage_name}
    return Declared((
        _alarm(f"{name}-5xx", at=at,
               alarm_name=f"{at.prefix}-{watched.label}-5xx",
               description=f"{watched.label}: the API answered server errors (5xx)",
               threshold=watched.server_errors_per_5_minutes,
               namespace="AWS/ApiGateway", metric_name="5XXError", dimensions=dimensions),
        _alarm(f"{name}-latency", at=at,
               alarm_name=f"{at.prefix}-{watched.label}-latency-p99",
               description=(f"{watched.label}: p99 latency above "
                            f"{watched.latency_p99_milliseconds} ms in 3 of 5 minutes"),
               threshold=watched.latency_p99_milliseconds,
               namespace="AWS/ApiGateway", metric_name="Latency", dimensions=dimensions,
               extended_statistic="p99", period=60, evaluation_periods=5,
               datapoints_to_alarm=3, comparison="GreaterThanThreshold"),
    ))
