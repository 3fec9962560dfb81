"""Cross-region replication of the device inventory into every region's IoT registry. See
README.md in this folder; the reconciliation and backfill tool is `tools/reconcile.py`.
The component loads on first use: the tool reads `settings` without Pulumi."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from components.context import Capability, RegionalContext, exported
from components.replication.settings import ReplicationSettings, parse_settings

if TYPE_CHECKING:
    import pulumi

    from components.monitoring.watch import Watch
    from components.replication.component import ReplicationPipeline, ReplicationPipelineArgs


def build(name: str, ctx: RegionalContext, settings: ReplicationSettings,
          opts: pulumi.ResourceOptions) -> ReplicationPipeline:
    from components.replication.component import ReplicationPipeline, ReplicationPipelineArgs

    return ReplicationPipeline(name, ReplicationPipelineArgs(
        region=ctx.region, name_prefix=ctx.name_prefix,
        machine_name=ctx.names.replication_machine, inventory=ctx.tables.inventory,
        tables_key_arn=ctx.tables.key_arn,
        ca_certificate_pem=ctx.edge.ca_certificate_pem,
        device_policy_name=ctx.edge.device_policy_name, kms_key_arn=ctx.key_arn,
        log_retention_days=ctx.log_retention_days, account=ctx.account, settings=settings,
        tags=ctx.tags, device_cas=ctx.edge.device_cas), opts)


def watch(pipeline: ReplicationPipeline) -> Watch:
    """Records the pipe gave up on, the pipe's own failures, failed replications."""
    from components.monitoring.watch import (
        Watch,
        WatchedMachine,
        WatchedPipe,
        WatchedQueue,
        fail_state_errors,
    )
    from components.replication.component import DEFINITION

    return Watch(
        queues=(WatchedQueue("replication", pipeline.dead_letter_queue),),
        pipes=(WatchedPipe("replication", pipeline.pipe),),
        machines=(WatchedMachine("replication", pipeline.state_machine,
                                 pipeline.machine.log_group,
                                 reasons=fail_state_errors(DEFINITION),
                                 namespace="IotMultiRegion/Replication"),))


def outputs(component: ReplicationPipeline) -> Mapping[str, Any]:
    return exported(component.outputs)


CAPABILITY: Capability[ReplicationSettings, ReplicationPipeline] = Capability(
    name="replication", config_key="replication", parse_settings=parse_settings, build=build,
    outputs=outputs, watch=watch, services=("pipes", "states"),
    description="applies inventory changes written in other regions to this region's registry")

__all__ = ["CAPABILITY", "ReplicationPipeline", "ReplicationPipelineArgs", "ReplicationSettings"]


def __getattr__(name: str) -> Any:
    if name in ("ReplicationPipeline", "ReplicationPipelineArgs"):
        from components.replication import component

        return getattr(component, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
