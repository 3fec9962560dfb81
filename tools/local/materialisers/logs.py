"""CloudWatch log groups (KMS key and retention as declared)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tools.harness import RecordedResource
from tools.local.materialise import materialiser
from tools.local.world import Materialised, World


@materialiser("aws:cloudwatch/logGroup:LogGroup")
def log_group(resource: RecordedResource, system: World) -> Iterable[Materialised]:
    state = system.state(resource)
    region = str(resource.region)
    logs = system.client("logs", region)
    args: dict[str, Any] = {"logGroupName": state["name"],
                            "tags": {str(k): str(v) for k, v in (state.get("tags") or {}).items()}}
    if state.get("kmsKeyId"):
        args["kmsKeyId"] = state["kmsKeyId"]
    logs.create_log_group(**args)
    if state.get("retentionInDays"):
        logs.put_retention_policy(logGroupName=state["name"],
                                  retentionInDays=int(state["retentionInDays"]))
    return [Materialised(resource.type, resource.name, region, state["name"])]
