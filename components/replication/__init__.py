"""Cross-region replication of the device inventory into every region's IoT registry. See
README.md in this folder; the reconciliation and backfill tool is `tools/reconcile.py`."""

from __future__ import annotations

import pulumi

from components.context import Capability, RegionalContext
from components.monitoring.watch import (
    Watch,
    WatchedMachine,
    WatchedPipe,
    WatchedQueue,
    fail_state_errors,
)
from components.replication.component import DEFINITION, ReplicationArgs, ReplicationPipeline
from components.replication.settings import ReplicationSettings, parse_settings


def build(name: str, ctx: RegionalContext, settings: ReplicationSettings,
          opts: pulumi.ResourceOptions) -> ReplicationPipeline:
    return ReplicationPipeline(name, ReplicationArgs(
        region=ctx.region, name_prefix=ctx.name_prefix, inventory=ctx.tables.inventory,
        tables_key_arn=ctx.tables.key_arn,
        ca_certificate_pem=ctx.edge.ca_certificate_pem,
        device_policy_name=ctx.edge.device_policy_name, kms_key_arn=ctx.key_arn,
        log_retention_days=ctx.log_retention_days, account=ctx.account, settings=settings,
        tags=ctx.tags, device_cas=ctx.edge.device_cas), opts)


def watch(pipeline: ReplicationPipeline) -> Watch:
    """Records the pipe gave up on, the pipe's own failures, failed replications."""
    return Watch(
        queues=(WatchedQueue("replication", pipeline.dead_letter_queue),),
        pipes=(WatchedPipe("replication", pipeline.pipe),),
        machines=(WatchedMachine("replication", pipeline.state_machine,
                                 pipeline.machine.log_group,
                                 reasons=fail_state_errors(DEFINITION),
                                 namespace="IotMultiRegion/Replication"),))


CAPABILITY: Capability[ReplicationSettings] = Capability(
    name="replication", config_key="replication", parse_settings=parse_settings, build=build,
    description="applies inventory changes written in other regions to this region's registry",
    watch=watch)

__all__ = ["CAPABILITY", "ReplicationArgs", "ReplicationPipeline", "ReplicationSettings"]
