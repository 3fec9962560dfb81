"""Computed outputs of KMS aliases: the policy runner judges what an alias points at."""

from __future__ import annotations

from typing import Any

from tools.harness import ACCOUNT_ID, PARTITION, RecordedResource, register_outputs


@register_outputs("aws:kms/alias:Alias")
def alias_outputs(r: RecordedResource) -> dict[str, Any]:
    """What CreateAlias/DescribeKey give back: the alias ARN and the target key's ARN (the
    target may be given as a key id or as a key ARN)."""
    name = r.inputs.get("name")
    name = name if isinstance(name, str) else f"alias/{r.name}"
    target = str(r.inputs.get("targetKeyId") or "")
    region = r.region or ""
    target_arn = target if target.startswith("arn:") else \
        f"arn:{PARTITION}:kms:{region}:{ACCOUNT_ID}:key/{target}"
    return {"name": name, "arn": f"arn:{PARTITION}:kms:{region}:{ACCOUNT_ID}:{name}",
            "targetKeyArn": target_arn}
