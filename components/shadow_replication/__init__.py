"""Shadow replication (classic and named shadows, every region to every region). See
README.md in this folder; the Lambda code is `lambdas/shadow_replication/`. The component
loads on first use."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from components.context import Capability, RegionalContext, exported
from components.shadow_replication.settings import FleetOrganisation, parse_settings

if TYPE_CHECKING:
    import pulumi

    from components.monitoring.watch import Watch
    from components.shadow_replication.component import (
        ShadowReplication,
        ShadowReplicationArgs,
    )


def build(name: str, ctx: RegionalContext, settings: FleetOrganisation,
          opts: pulumi.ResourceOptions) -> ShadowReplication:
    from components.shadow_replication.component import ShadowReplication, ShadowReplicationArgs

    return ShadowReplication(name, ShadowReplicationArgs(
        region=ctx.region, name_prefix=ctx.name_prefix, device_data=ctx.tables.device_data,
        tables_key_arn=ctx.tables.key_arn,
        kms_key_arn=ctx.key_arn, log_retention_days=ctx.log_retention_days,
        account=ctx.account, lambda_layer=ctx.lambda_layer, tags=ctx.tags,
        organisation=settings), opts)


def outputs(component: ShadowReplication) -> Mapping[str, Any]:
    return exported(component.outputs)


def watch(component: ShadowReplication) -> Watch:
    """Shadow changes given up on (DLQ) and the function's errors."""
    from components.monitoring.watch import Watch, WatchedFunction, WatchedQueue

    return Watch(queues=(WatchedQueue("shadow-replication", component.dead_letter_queue),),
                 functions=(WatchedFunction("shadow-replication", component.function.function),))


CAPABILITY: Capability[FleetOrganisation, ShadowReplication] = Capability(
    name="shadow_replication", config_key="shadowReplication", parse_settings=parse_settings,
    build=build, outputs=outputs, watch=watch,
    description="replicates classic and named shadows, thing attributes, types and group "
                "memberships between the regions; declares the fleet's types and groups")

__all__ = ["CAPABILITY", "ShadowReplication", "ShadowReplicationArgs"]


def __getattr__(name: str) -> Any:
    if name in ("ShadowReplication", "ShadowReplicationArgs"):
        from components.shadow_replication import component

        return getattr(component, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
