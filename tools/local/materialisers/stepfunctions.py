"""State machines with their declared (rendered) definitions; moto executes them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tools.harness import RecordedResource
from tools.local.materialise import materialiser
from tools.local.materialisers import tag_list
from tools.local.world import Materialised, World


@materialiser("aws:sfn/stateMachine:StateMachine")
def state_machine(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    region = str(resource.region)
    args: dict[str, Any] = {"name": state["name"], "definition": state["definition"],
                            "roleArn": state["roleArn"], "type": state.get("type") or "STANDARD",
                            "tags": tag_list(state.get("tags"), "key", "value")}
    logging = state.get("loggingConfiguration") or {}
    if logging:
        args["loggingConfiguration"] = {
            "level": logging.get("level") or "OFF",
            "includeExecutionData": bool(logging.get("includeExecutionData")),
            "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": logging["logDestination"]}}]
            if logging.get("logDestination") else []}
    tracing = state.get("tracingConfiguration") or {}
    if tracing:
        args["tracingConfiguration"] = {"enabled": bool(tracing.get("enabled"))}
    created = system.client("stepfunctions", region).create_state_machine(**args)
    system.resolver.learn(resource.id, created["stateMachineArn"])  # its id is its ARN
    system.resolver.learn(resource.outputs.get("arn"), created["stateMachineArn"])
    return [Materialised(resource.type, resource.name, region, state["name"])]
