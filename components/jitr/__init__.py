"""Just-in-time registration of devices our CA issued. See README.md in this folder; the
check function is `lambdas/jitr_certificate_check/`. The component loads on first use."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from components.context import Capability, RegionalContext, exported, no_settings

if TYPE_CHECKING:
    import pulumi

    from components.jitr.component import JitrPipeline, JitrPipelineArgs
    from components.monitoring.watch import Watch


def build(name: str, ctx: RegionalContext, settings: None,
          opts: pulumi.ResourceOptions) -> JitrPipeline:
    from components.jitr.component import JitrPipeline, JitrPipelineArgs

    return JitrPipeline(name, JitrPipelineArgs(
        region=ctx.region, name_prefix=ctx.name_prefix,
        ca_certificate_id=ctx.edge.ca_certificate_id,
        ca_certificate_pem=ctx.edge.ca_certificate_pem,
        device_policy_name=ctx.edge.device_policy_name,
        inventory=ctx.tables.inventory, kms_key_arn=ctx.key_arn,
        tables_key_arn=ctx.tables.key_arn,
        log_retention_days=ctx.log_retention_days, account=ctx.account,
        lambda_layer=ctx.lambda_layer, tags=ctx.tags, device_cas=ctx.edge.device_cas,
        ca_certificate_ids=ctx.edge.ca_certificate_ids or None), opts)


def watch(pipeline: JitrPipeline) -> Watch:
    """Undeliverable events, failed registrations and every refusal reason of the
    definition (JITR refusals by reason), the check function."""
    from components.jitr.component import DEFINITION
    from components.monitoring.watch import (
        Watch,
        WatchedFunction,
        WatchedMachine,
        WatchedQueue,
        fail_state_errors,
    )

    return Watch(
        queues=(WatchedQueue("jitr", pipeline.dead_letter_queue),),
        machines=(WatchedMachine("jitr", pipeline.state_machine, pipeline.machine.log_group,
                                 reasons=fail_state_errors(DEFINITION),
                                 namespace="IotMultiRegion/Jitr"),),
        functions=(WatchedFunction("jitr-check", pipeline.check.function),))


def outputs(component: JitrPipeline) -> Mapping[str, Any]:
    return exported(component.outputs)


CAPABILITY: Capability[None, JitrPipeline] = Capability(
    name="jitr", config_key="jitr", parse_settings=no_settings, build=build, outputs=outputs,
    watch=watch, description="just-in-time registration of devices our CA issued")

__all__ = ["CAPABILITY", "JitrPipeline", "JitrPipelineArgs"]


def __getattr__(name: str) -> Any:
    if name in ("JitrPipeline", "JitrPipelineArgs"):
        from components.jitr import component

        return getattr(component, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
