"""Computed outputs of the fleet-provisioning resource types, shaped like AWS's.

User pool ids are `<region>_<9 chars>`, identity pool ids `<region>:<uuid>`, app client ids
26 lowercase alphanumerics; the provider name an identity pool expects is the pool's
`endpoint`, `cognito-idp.<region>.amazonaws.com/<pool id>`.
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


@register_outputs("aws:cognito/userPool:UserPool")
def user_pool_outputs(r: RecordedResource) -> dict[str, Any]:
    pool_id = f"{r.region}_{_digest(r.urn, length=9)}"
    return {"id": pool_id, "name": _physical_name(r),
            "arn": f"arn:{PARTITION}:cognito-idp:{r.region}:{ACCOUNT_ID}:userpool/{pool_id}",
            "endpoint": f"cognito-idp.{r.region}.amazonaws.com/{pool_id}"}


@register_outputs("aws:cognito/userPoolClient:UserPoolClient")
def user_pool_client_outputs(r: RecordedResource) -> dict[str, Any]:
    return {"id": _digest(r.urn, length=26), "name": _physical_name(r)}


@register_outputs("aws:cognito/identityPool:IdentityPool")
def identity_pool_outputs(r: RecordedResource) -> dict[str, Any]:
    d = _digest(r.urn)
    pool_id = f"{r.region}:{d[:8]}-{d[8:12]}-4{d[13:16]}-8{d[17:20]}-{d[20:32]}"
    return {"id": pool_id,
            "arn": f"arn:{PARTITION}:cognito-identity:{r.region}:{ACCOUNT_ID}:"
                   f"identitypool/{pool_id}"}


@register_outputs("aws:cognito/userGroup:UserGroup")
def user_group_outputs(r: RecordedResource) -> dict[str, Any]:
    return {"name": _physical_name(r)}


@register_outputs("aws:iot/provisioningTemplate:ProvisioningTemplate")
def provisioning_template_outputs(r: RecordedResource) -> dict[str, Any]:
    name = _physical_name(r)
    return {"name": name, "defaultVersionId": 1,
            "arn": _regional_arn(r, "iot", f"provisioningtemplate/{name}")}

