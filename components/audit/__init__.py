"""AWS IoT Device Defender audits in every region (pulumi-aws-native). See README.md in this
folder."""

from __future__ import annotations

import pulumi

from components.audit.component import DeviceDefenderAudit, DeviceDefenderAuditArgs
from components.audit.settings import AuditSettings, parse_settings
from components.context import Capability, RegionalContext


def build(name: str, ctx: RegionalContext, settings: AuditSettings,
          opts: pulumi.ResourceOptions) -> DeviceDefenderAudit:
    return DeviceDefenderAudit(name, DeviceDefenderAuditArgs(
        region=ctx.region, name_prefix=ctx.name_prefix, account=ctx.account,
        native_provider=ctx.native_provider, alert_topic_arn=ctx.alert_topic_arn,
        alert_key_arn=ctx.key_arn, ownership=ctx.account_settings.audit_configuration,
        settings=settings, tags=ctx.tags), opts)


CAPABILITY: Capability[AuditSettings] = Capability(
    name="audit", config_key="audit", parse_settings=parse_settings, build=build,
    description="Device Defender: daily audit of this design's checks, findings to the alert topic")

__all__ = ["CAPABILITY", "DeviceDefenderAudit", "DeviceDefenderAuditArgs", "AuditSettings"]
