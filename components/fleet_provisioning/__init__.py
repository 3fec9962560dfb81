"""Fleet provisioning by trusted user (installer). See README.md in this folder; the Lambda
code is `lambdas/fleet_provisioning_hook/` and `lambdas/fleet_provisioning_recorder/`."""

from __future__ import annotations

import pulumi

from components.context import Capability, RegionalContext
from components.fleet_provisioning.component import (
    FleetProvisioning,
    FleetProvisioningArgs,
)
from components.fleet_provisioning.settings import FleetSettings, parse_settings


def build(name: str, ctx: RegionalContext, settings: FleetSettings,
          opts: pulumi.ResourceOptions) -> FleetProvisioning:
    return FleetProvisioning(name, FleetProvisioningArgs(
        region=ctx.region, name_prefix=ctx.name_prefix, is_prod=ctx.is_prod,
        device_policy_name=ctx.edge.device_policy_name, inventory=ctx.tables.inventory,
        provisioning=ctx.tables.provisioning, kms_key_arn=ctx.key_arn,
        tables_key_arn=ctx.tables.key_arn,
        log_retention_days=ctx.log_retention_days, account=ctx.account,
        lambda_layer=ctx.lambda_layer, settings=settings, tags=ctx.tags,
        web_origins=ctx.web_origins), opts)


CAPABILITY: Capability[FleetSettings] = Capability(
    name="fleet_provisioning", config_key="fleetProvisioning", parse_settings=parse_settings,
    build=build, description="fleet provisioning by trusted installers (Cognito + claims)")

__all__ = ["CAPABILITY", "FleetProvisioning", "FleetProvisioningArgs", "FleetSettings"]
