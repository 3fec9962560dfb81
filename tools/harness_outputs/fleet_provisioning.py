"""Computed outputs of the fleet-provisioning resource types.

Ids are the harness's resource ids (`<logical name>-<8 hex>`, what the program sees as
`.id`); the outputs derived from an id use that same id, so the declared wiring is consistent
(e.g. an identity pool's provider name is the user pool's `endpoint`,
`cognito-idp.<region>.amazonaws.com/<pool id>`, and its role mapping names `<endpoint>:<client
id>`).
"""

from __future__ import annotations

from typing import Any

from tools.harness import (
    ACCOUNT_ID,
    PARTITION,
    RecordedResource,
    _digest,
    _physical_name,
    _regional_arn,
    register_outputs,
)


def resource_id(r: RecordedResource) -> str:
    """The id the harness answers for a created resource (tools.harness RecordingMonitor)."""
    return f"{r.name}-{_digest(r.urn, length=8)}"


@register_outputs("aws:cognito/userPool:UserPool")
def user_pool_outputs(r: RecordedResource) -> dict[str, Any]:
    pool_id = resource_id(r)
    return {"name": _physical_name(r),
            "arn": f"arn:{PARTITION}:cognito-idp:{r.region}:{ACCOUNT_ID}:userpool/{pool_id}",
            "endpoint": f"cognito-idp.{r.region}.amazonaws.com/{pool_id}"}


@register_outputs("aws:cognito/identityPool:IdentityPool")
def identity_pool_outputs(r: RecordedResource) -> dict[str, Any]:
    return {"arn": f"arn:{PARTITION}:cognito-identity:{r.region}:{ACCOUNT_ID}:"
                   f"identitypool/{resource_id(r)}"}


@register_outputs("aws:iot/provisioningTemplate:ProvisioningTemplate")
def provisioning_template_outputs(r: RecordedResource) -> dict[str, Any]:
    name = _physical_name(r)
    return {"name": name, "defaultVersionId": 1,
            "arn": _regional_arn(r, "iot", f"provisioningtemplate/{name}")}
