"""Certificate vending machine: devices without a certificate register with a token (the
seed's contract) and get one. See README.md in this folder; the function is
`lambdas/cvm_registration/`, the factory's tool `tools/manufacturer.py`.

The component modules load on first use, so `components.cvm.settings` (plain data, parsed by
components/config.py) imports without Pulumi.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from components.context import Capability, GlobalContext, RegionalContext, exported
from components.cvm.settings import CvmSettings, parse_settings

# A registration is a CSR check, one IoT call and one DynamoDB transaction: p99 above 5 s
# for 3 of 5 minutes means devices are timing out (the function's own limit is 20 s).
LATENCY_P99_MILLISECONDS = 5000

if TYPE_CHECKING:
    import pulumi

    from components.cvm.component import CertificateVendingMachine, CertificateVendingMachineArgs
    from components.cvm.validation import ProvisioningDomainValidation
    from components.monitoring.watch import Watch


def build(name: str, ctx: RegionalContext, settings: CvmSettings,
          opts: pulumi.ResourceOptions) -> CertificateVendingMachine:
    from components.cvm.component import CertificateVendingMachine, CertificateVendingMachineArgs

    return CertificateVendingMachine(name, CertificateVendingMachineArgs(
        region=ctx.region, name_prefix=ctx.name_prefix,
        salts_secret_name=ctx.names.stack.salts_secret, account=ctx.account,
        kms_key_arn=ctx.key_arn, tables_key_arn=ctx.tables.key_arn,
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


def build_global(name: str, ctx: GlobalContext, settings: CvmSettings,
                 regional: Mapping[str, CertificateVendingMachine],
                 opts: pulumi.ResourceOptions) -> ProvisioningDomainValidation:
    """The provisioning domain's ACM validation record, from the primary region's CVM."""
    from components.cvm.validation import (
        ProvisioningDomainValidation,
        ProvisioningDomainValidationArgs,
    )

    return ProvisioningDomainValidation(name, ProvisioningDomainValidationArgs(
        domain=settings.domain_for(ctx.device_domain), hosted_zone_id=ctx.hosted_zone_id,
        primary=regional[ctx.primary_region]), opts)


def outputs(component: CertificateVendingMachine) -> Mapping[str, Any]:
    return exported(component.outputs)


def watch(cvm: CertificateVendingMachine) -> Watch:
    """5xx and latency of the API, the function's errors; its KPI alarms on the dashboards."""
    from components.cvm.component import STAGE_NAME
    from components.monitoring.watch import Watch, WatchedApi, WatchedFunction

    return Watch(
        functions=(WatchedFunction("cvm", cvm.registration.function),),
        apis=(WatchedApi("cvm-api", cvm.rest_api.name, STAGE_NAME,
                         latency_p99_milliseconds=LATENCY_P99_MILLISECONDS),),
        alarms=(cvm.server_error_alarm, cvm.success_rate_alarm, cvm.attempts_alarm,
                cvm.undo_alarm, cvm.errored_alarm))


CAPABILITY: Capability[CvmSettings, CertificateVendingMachine] = Capability(
    name="cvm", config_key="cvm", parse_settings=parse_settings, build=build,
    build_global=build_global, outputs=outputs, watch=watch,
    description="certificate vending machine: token-authenticated registration over HTTPS")

__all__ = ["CAPABILITY", "CertificateVendingMachine", "CertificateVendingMachineArgs",
           "CvmSettings"]


def __getattr__(name: str) -> Any:
    if name in ("CertificateVendingMachine", "CertificateVendingMachineArgs"):
        from components.cvm import component

        return getattr(component, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
