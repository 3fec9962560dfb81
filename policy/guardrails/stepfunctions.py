"""Step Functions: full logging with an explicit execution-data decision, and X-Ray."""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import Policy, ResourceValidationArgs, Severity

from ._common import get, resource_guardrail, truthy

STATE_MACHINE = "aws:sfn/stateMachine:StateMachine"


def _logging_all(args: ResourceValidationArgs) -> Iterator[str]:
    logging = args.props.get("loggingConfiguration")
    if get(logging, "level") != "ALL":
        yield f"loggingConfiguration.level is {get(logging, 'level')!r}; log ALL events"
    if not get(logging, "logDestination"):
        yield "loggingConfiguration.logDestination is not set"


def _execution_data_decided(args: ResourceValidationArgs) -> Iterator[str]:
    if get(args.props, "loggingConfiguration", "includeExecutionData") is None:
        yield ("loggingConfiguration.includeExecutionData is unset: decide explicitly whether "
               "inputs/outputs (which may carry device data) go to the logs")


def _tracing(args: ResourceValidationArgs) -> Iterator[str]:
    if not truthy(get(args.props, "tracingConfiguration", "enabled")):
        yield "tracingConfiguration.enabled is not true"


POLICIES: list[Policy] = [
    resource_guardrail(
        "stepfunctions-logging-all",
        "State machines log ALL events to a log group",
        ["CKV_AWS_285", "AwsSolutions-SF1", "AWS Config step-functions-state-machine-logging-enabled"],
        [STATE_MACHINE], _logging_all, severity=Severity.MEDIUM),
    resource_guardrail(
        "stepfunctions-execution-data-decision",
        "State machines set loggingConfiguration.includeExecutionData explicitly",
        ["AwsSolutions-SF1 (log content decision)", "CKV_AWS_285"],
        [STATE_MACHINE], _execution_data_decided, severity=Severity.LOW),
    resource_guardrail(
        "stepfunctions-tracing",
        "State machines trace with X-Ray",
        ["CKV_AWS_284", "AwsSolutions-SF2", "Serverless-StepFunctionStateMachineXray"],
        [STATE_MACHINE], _tracing, severity=Severity.MEDIUM),
]
