"""EventBridge Pipes: logging on (replication pipes), CMK encryption of pipe data."""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import Policy, ResourceValidationArgs, Severity

from ._common import ADVISORY, get, is_customer_managed_key, resource_guardrail

PIPE = "aws:pipes/pipe:Pipe"
LOG_DESTINATIONS = ("cloudwatchLogsLogDestination", "firehoseLogDestination", "s3LogDestination")


def _logging(args: ResourceValidationArgs) -> Iterator[str]:
    log = args.props.get("logConfiguration")
    level = str(get(log, "level") or "OFF").upper()
    if level == "OFF":
        yield "logConfiguration.level is OFF: failed deliveries leave no trace"
    elif not any(get(log, d) for d in LOG_DESTINATIONS):
        yield "logConfiguration has no log destination"


def _cmk(args: ResourceValidationArgs) -> Iterator[str]:
    if not is_customer_managed_key(args.props.get("kmsKeyIdentifier")):
        yield "pipe has no customer-managed kmsKeyIdentifier (advisory)"


POLICIES: list[Policy] = [
    resource_guardrail(
        "pipes-logging",
        "EventBridge pipes log (level ERROR or more) to a destination",
        ["AWS Well-Architected SEC04-BP01 (configure service and application logging)",
         "EventBridge Pipes log configuration"],
        [PIPE], _logging, severity=Severity.MEDIUM),
    resource_guardrail(
        "pipes-cmk-encryption",
        "EventBridge pipes encrypt pipe data with a customer-managed key (advisory)",
        ["EventBridge Pipes kmsKeyIdentifier (encryption at rest)"],
        [PIPE], _cmk, level=ADVISORY, severity=Severity.LOW),
]
