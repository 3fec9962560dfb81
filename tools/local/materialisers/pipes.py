"""EventBridge Pipes, stored as declared (source, filter, stream parameters, target, role);
the pipes emulation reads them back and delivers (moto delivers nothing)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tools.harness import RecordedResource
from tools.local.materialise import materialiser
from tools.local.world import Materialised, World

# Pulumi's DynamoDB stream parameters -> the API's names.
STREAM_PARAMETERS = {
    "startingPosition": "StartingPosition", "batchSize": "BatchSize",
    "maximumBatchingWindowInSeconds": "MaximumBatchingWindowInSeconds",
    "maximumRetryAttempts": "MaximumRetryAttempts",
    "maximumRecordAgeInSeconds": "MaximumRecordAgeInSeconds",
    "onPartialBatchItemFailure": "OnPartialBatchItemFailure",
    "parallelizationFactor": "ParallelizationFactor",
}
_INTEGERS = {"BatchSize", "MaximumBatchingWindowInSeconds", "MaximumRetryAttempts",
             "MaximumRecordAgeInSeconds", "ParallelizationFactor"}


def source_parameters(declared: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    stream = declared.get("dynamodbStreamParameters") or {}
    if stream:
        parameters = {name: int(stream[key]) if name in _INTEGERS else stream[key]
                      for key, name in STREAM_PARAMETERS.items() if stream.get(key) is not None}
        if (stream.get("deadLetterConfig") or {}).get("arn"):
            parameters["DeadLetterConfig"] = {"Arn": stream["deadLetterConfig"]["arn"]}
        out["DynamoDBStreamParameters"] = parameters
    filters = (declared.get("filterCriteria") or {}).get("filters") or []
    if filters:
        out["FilterCriteria"] = {"Filters": [{"Pattern": f["pattern"]} for f in filters]}
    return out


def target_parameters(declared: Mapping[str, Any]) -> dict[str, Any]:
    machine = declared.get("stepFunctionStateMachineParameters") or {}
    if machine:
        return {"StepFunctionStateMachineParameters": {"InvocationType": machine["invocationType"]}}
    return {}


@materialiser("aws:pipes/pipe:Pipe")
def pipe(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    region = str(resource.region)
    args: dict[str, Any] = {
        "Name": state["name"], "Source": state["source"], "Target": state["target"],
        "RoleArn": state["roleArn"], "DesiredState": state.get("desiredState") or "RUNNING",
        "Tags": {str(k): str(v) for k, v in (state.get("tags") or {}).items()}}
    if state.get("description"):
        args["Description"] = state["description"]
    if state.get("sourceParameters"):
        args["SourceParameters"] = source_parameters(state["sourceParameters"])
    if state.get("targetParameters"):
        args["TargetParameters"] = target_parameters(state["targetParameters"])
    if state.get("kmsKeyIdentifier"):
        args["KmsKeyIdentifier"] = state["kmsKeyIdentifier"]
    created = system.client("pipes", region).create_pipe(**args)
    system.resolver.learn(resource.outputs.get("arn"), created["Arn"])
    return [Materialised(resource.type, resource.name, region, state["name"])]
