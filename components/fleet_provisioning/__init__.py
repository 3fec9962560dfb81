"""Fleet provisioning by trusted user (installer). See README.md in this folder; the Lambda
code is `lambdas/fleet_provisioning_hook/` and `lambdas/fleet_provisioning_recorder/`.
The component loads on first use."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from components.context import Capability, RegionalContext, exported
from components.fleet_provisioning.settings import FleetSettings, parse_settings
# The hook logs one line per decision (lambdas/fleet_provisioning_hook/app.py): the reason of
# a denial is one word. These mean the hook could not decide, not that a device was refused:
# the allow-list table was out of reach within the budget, or the hook failed.
HOOK_DECISION_PATTERN = '{ ($.message = "pre-provisioning decision") && ($.allowed IS FALSE) }'
HOOK_OUTAGE_REASONS = {"TABLE_UNAVAILABLE": 1, "HOOK_ERROR": 1}
# Denials of every reason together: a burst means a broken batch or someone probing serials.
HOOK_DENIALS_PER_5_MINUTES = 20

if TYPE_CHECKING:
    import pulumi

    from components.fleet_provisioning.component import (
        FleetProvisioning,
        FleetProvisioningArgs,
    )
    from components.monitoring.watch import Watch


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


def watch(fleet: FleetProvisioning) -> Watch:
    """The hook's denials by reason and its timeouts (Lambda errors), the recorder's errors
    and the records it gave up on."""
    from components.monitoring.watch import Watch, WatchedDecisions, WatchedFunction, WatchedQueue

    return Watch(
        queues=(WatchedQueue("fleet-recorder", fleet.dead_letter_queue),),
        functions=(WatchedFunction("fleet-hook", fleet.hook.function),
                   WatchedFunction("fleet-recorder", fleet.recorder.function)),
        decisions=(WatchedDecisions(
            "fleet-hook-denials", fleet.hook.log_group, HOOK_DECISION_PATTERN, "$.reason",
            namespace="IotMultiRegion/FleetProvisioning", metric_name="HookDenials",
            alarms=HOOK_OUTAGE_REASONS, total_alarm=HOOK_DENIALS_PER_5_MINUTES,
            description="Devices are being refused provisioning."),))


CAPABILITY: Capability[FleetSettings, FleetProvisioning] = Capability(
    name="fleet_provisioning", config_key="fleetProvisioning", parse_settings=parse_settings,
    build=build, outputs=outputs, watch=watch,
    description="fleet provisioning by trusted installers (Cognito + claims)")

__all__ = ["CAPABILITY", "FleetProvisioning", "FleetProvisioningArgs", "FleetSettings"]


def __getattr__(name: str) -> Any:
    if name in ("FleetProvisioning", "FleetProvisioningArgs"):
        from components.fleet_provisioning import component

        return getattr(component, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
