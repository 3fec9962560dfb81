"""Computed outputs of the replication capability's resource types (EventBridge Pipes)."""

from __future__ import annotations

from typing import Any

from tools.harness import PARTITION, ACCOUNT_ID, RecordedResource, register_outputs


@register_outputs("aws:pipes/pipe:Pipe")
def pipe_outputs(r: RecordedResource) -> dict[str, Any]:
    """What AWS returns after CreatePipe: the name and `arn:<p>:pipes:<region>:<acct>:pipe/<name>`."""
    name = r.inputs.get("name")
    name = name if isinstance(name, str) else r.name
    return {"name": name, "arn": f"arn:{PARTITION}:pipes:{r.region}:{ACCOUNT_ID}:pipe/{name}",
            "currentState": "RUNNING"}
