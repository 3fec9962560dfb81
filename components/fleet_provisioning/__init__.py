"""Fleet provisioning by trusted user (installer). See README.md in this folder; the Lambda
code is `lambdas/fleet_provisioning_hook/` and `lambdas/fleet_provisioning_recorder/`.
The component loads on first use."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from components.context import Capability, RegionalContext, exported
from components.fleet_provisioning.settings import FleetSettings, parse_settings

if TYPE_CHECKING:
    import pulumi

    from components.fleet_provisioning.component import (
        FleetProvisioning,
        FleetProvisioningArgs,
    )


def build(name: str, ctx: RegionalContext, settings: FleetSettings,
          opts: pulumi.ResourceOptions) -> FleetProvisioning:
    from components.fleet_provisioning.component import FleetProvisioning, FleetProvisioningArgs

    return FleetProvisioning(name, FleetProvisioningArgs(
        region=ctx.region, name_prefix=ctx.name_prefix, template_name=ctx.names.fleet_template,
        is_prod=ctx.is_prod, device_policy_name=ctx.edge.device_policy_name,
        inventory=ctx.tables.inventory, provisioning=ctx.tables.provisioning,
        kms_key_arn=ctx.key_arn, tables_key_arn=ctx.tables.key_arn,
        log_retention_days=ctx.log_retention_days, account=ctx.account,
        lambda_layer=ctx.lambda_layer, settings=settings, tags=ctx.tags,
        web_origins=ctx.web_origins), opts)


def outputs(component: FleetProvisioning) -> Mapping[str, Any]:
    return exported(component.outputs)


CAPABILITY: Capability[FleetSettings, FleetProvisioning] = Capability(
    name="fleet_provisioning", config_key="fleetProvisioning", parse_settings=parse_settings,
    build=build, outputs=outputs,
    description="fleet provisioning by trusted installers (Cognito + claims)")

__all__ = ["CAPABILITY", "FleetProvisioning", "FleetProvisioningArgs", "FleetSettings"]


def __getattr__(name: str) -> Any:
    if name in ("FleetProvisioning", "FleetProvisioningArgs"):
        from components.fleet_provisioning import component

        return getattr(component, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
