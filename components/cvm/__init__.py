"""Certificate vending machine: devices without a certificate register with a token (the
seed's contract) and get one. See README.md in this folder; the function is
`lambdas/cvm_registration/`, the factory's tool `tools/manufacturer.py`."""

from __future__ import annotations

import pulumi

from components.context import Capability, RegionalContext
from components.cvm.component import CertificateVendingMachine, CvmArgs
from components.cvm.settings import CvmSettings, parse_settings


def build(name: str, ctx: RegionalContext, settings: CvmSettings,
          opts: pulumi.ResourceOptions) -> CertificateVendingMachine:
    return CertificateVendingMachine(name, CvmArgs(
        region=ctx.region, primary_region=ctx.primary_region, name_prefix=ctx.name_prefix,
        stack_prefix=ctx.resource_name(), account=ctx.account, kms_key_arn=ctx.key_arn,
        tables_key_arn=ctx.tables.key_arn,
        provisioning=ctx.tables.provisioning, inventory=ctx.tables.inventory,
        device_domain=ctx.edge.device_domain, hosted_zone_id=ctx.edge.hosted_zone_id,
        provisioning_domain=settings.domain_for(ctx.edge.device_domain),
        device_policy_name=ctx.edge.device_policy_name, lambda_layer=ctx.lambda_layer,
        log_retention_days=ctx.log_retention_days, is_prod=ctx.is_prod,
        waf_rate_limit=settings.waf_rate_limit,
        throttle_rate_limit=settings.throttle_rate_limit,
        throttle_burst_limit=settings.throttle_burst_limit,
        legacy_batches=settings.legacy_batches, thing_name_prefix=settings.thing_name_prefix,
        root_ca_bundle_pem=settings.root_ca_bundle_pem,
        reserved_concurrency=settings.reserved_concurrency,
        success_rate_alarm_percent=settings.success_rate_alarm_percent,
        attempts_per_device_alarm=settings.attempts_per_device_alarm,
        manage_api_gateway_account=settings.manage_api_gateway_account,
        tags=ctx.tags), opts)


CAPABILITY: Capability[CvmSettings] = Capability(
    name="cvm", config_key="cvm", parse_settings=parse_settings, build=build,
    description="certificate vending machine: token-authenticated registration over HTTPS")

__all__ = ["CAPABILITY", "CertificateVendingMachine", "CvmArgs", "CvmSettings"]
