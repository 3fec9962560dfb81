"""AWS IoT Device Defender audits in every region (pulumi-aws-native). See README.md in this
folder. The component loads on first use: the config parser and the operators' tools import
this package without loading Pulumi."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from components.audit.settings import AuditSettings, parse_settings
from components.context import Capability, RegionalContext

if TYPE_CHECKING:
    import pulumi

    from components.audit.component import DeviceDefenderAudit, DeviceDefenderAuditArgs


def build(name: str, ctx: RegionalContext, settings: AuditSettings,
          opts: pulumi.ResourceOptions) -> DeviceDefenderAudit:
    from components.audit.component import DeviceDefenderAudit, DeviceDefenderAuditArgs

    return DeviceDefenderAudit(name, DeviceDefenderAuditArgs(
        region=ctx.region, name_prefix=ctx.name_prefix, account=ctx.account,
        native_provider=ctx.native_provider, alert_topic_arn=ctx.alert_topic_arn,
        alert_key_arn=ctx.key_arn, ownership=ctx.account_settings.audit_configuration,
        settings=settings, tags=ctx.tags), opts)


CAPABILITY: Capability[AuditSettings, DeviceDefenderAudit] = Capability(
    name="audit", config_key="audit", parse_settings=parse_settings, build=build,
    description="Device Defender: daily audit of this design's checks, findings to the alert topic")

__all__ = ["CAPABILITY", "AuditSettings", "DeviceDefenderAudit", "DeviceDefenderAuditArgs"]


def __getattr__(name: str) -> Any:
    if name in ("DeviceDefenderAudit", "DeviceDefenderAuditArgs"):
        from components.audit import component

        return getattr(component, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
