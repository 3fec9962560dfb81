"""Multi-region AWS IoT Core: reads the stack config and wires the components."""

import os
from pathlib import Path

import pulumi

from components.account import current_account
from components.capabilities import CAPABILITIES, build_global_parts, region_outputs
from components.config import ConfigError, parse_stack_config, read_pulumi_config
from components.context import GlobalContext, RegionalTables
from components.dns import checked_domains
from components.edge.evacuation import EvacuationAccess, EvacuationAccessArgs
from components.edge.validation import DeviceDomainValidation, DeviceDomainValidationArgs
from components.global_tables import CVM_RECORDS, DEVICE_DATA, INVENTORY, GlobalTables, GlobalTablesArgs
from components.monitoring.component import GlobalDashboard, GlobalDashboardArgs
from components.installer_web import WEB_BUNDLE_DIR, WebBundle
from components.installer_web.wiring import installer_web
from components.packaging import LAYER_ZIP, LambdaLayer, PackagingError
from components.regional import RegionalStack, RegionalStackArgs

try:
    config = parse_stack_config(read_pulumi_config(), capabilities=CAPABILITIES,
                                project_dir=Path(__file__).parent)
    # The built Lambda dependencies layer; the offline harness points this at a stand-in.
    lambda_layer = LambdaLayer.from_zip(Path(os.environ.get("IOTMR_LAMBDA_LAYER_ZIP", LAYER_ZIP)))
    # The built installer web app (`python -m tools.build_web`), when the stack hosts it.
    web_bundle = WebBundle.from_dir(Path(os.environ.get("IOTMR_WEB_BUNDLE_DIR", WEB_BUNDLE_DIR))) \
        if config.installer_web is not None else None
except ConfigError as error:
    for problem in error.problems:
        pulumi.log.error(problem)
    # RunError is reported by the engine without a traceback.
    raise pulumi.RunError(f"stack config has {len(error.problems)} problem(s); see above") from None
except PackagingError as error:
    raise pulumi.RunError(str(error)) from None

account = current_account()
# A CNAME cannot sit at the zone apex: stops the deployment if deviceDomain (or another name
# the stack adds to the zone) is not below it.
device_domain = checked_domains(config.domains_in_zone(), config.hosted_zone_id,
                                config.hosted_zone_name).apply(lambda d: d["deviceDomain"])
tags = {"app": config.app_name, "environment": config.environment, **config.tags}

tables = GlobalTables("tables", GlobalTablesArgs(
    name_prefix=config.resource_name(), primary_region=config.primary_region,
    replica_regions=config.replica_regions, deletion_protection=config.is_prod,
    account=account, tags=tags))

regional = {
    region: RegionalStack(f"region-{region}", RegionalStackArgs(
        config=config, region=region, account=account, lambda_layer=lambda_layer, tags=tags,
        tables=RegionalTables(inventory=tables.in_region(INVENTORY.logical, region),
                              device_data=tables.in_region(DEVICE_DATA.logical, region),
                              provisioning=tables.in_region(CVM_RECORDS.logical, region),
                              key_arn=tables.keys[region])))
    for region in config.regions
}

# What serves every region is declared once, by owners whose names name no region: the edge's
# ACM validation record, then each capability's global part.
primary_certificate = regional[config.primary_region].edge.acm_certificate
if primary_certificate is not None:
    DeviceDomainValidation("device-domain", DeviceDomainValidationArgs(
        domain=config.device_domain, hosted_zone_id=config.hosted_zone_id,
        certificate=primary_certificate))
build_global_parts(
    GlobalContext(app_name=config.app_name, environment=config.environment,
                  primary_region=config.primary_region, stack_regions=config.regions,
                  device_domain=config.device_domain, hosted_zone_id=config.hosted_zone_id,
                  account=account, tags=tags),
    config.capabilities, config.capability_settings,
    {region: stack.capabilities for region, stack in regional.items()})

# The operators' permission to evacuate a region and restore it (tools/evacuate.py).
evacuation = EvacuationAccess("evacuation", EvacuationAccessArgs(
    account=account, tags=tags,
    regions={region: {
        "control_ids": [e.control.id for e in stack.evacuation_endpoints.values()],
        "health_check_ids": [e.health_check.id for e in stack.evacuation_endpoints.values()],
        "inventory_table_arn": stack.context.tables.inventory.arn,
        "tables_key_arn": stack.context.tables.key_arn,
        "device_policy_name": stack.edge.device_policy_name,
        **stack.backfill_targets(),
    } for region, stack in regional.items()}))

# One view of every region's alarms and signals, kept in the primary region.
operations = GlobalDashboard("operations", GlobalDashboardArgs(
    region=config.primary_region, dashboard_name=config.resource_name("operations"),
    regions=[stack.monitoring.signals for stack in regional.values()]))
site = installer_web(config, regional, tables.tables[CVM_RECORDS.logical].name, web_bundle,
                     account, tags)

pulumi.export("primaryRegion", config.primary_region)
pulumi.export("deviceDomain", device_domain)
pulumi.export("tables", {k: {"name": t.name, "arn": t.arn} for k, t in tables.tables.items()})
# What operators' tools read (tools/stack_outputs.py): per region, the edge, the tables and
# each enabled capability's outputs under its config key (cvm, fleetProvisioning, ...).
pulumi.export("regions", {
    region: {
        "inventoryTableArn": stack.context.tables.inventory.arn,
        "inventoryStreamArn": stack.context.tables.inventory.stream_arn,
        "tableNames": {"inventory": stack.context.tables.inventory.name,
                       "deviceData": stack.context.tables.device_data.name,
                       "provisioning": stack.context.tables.provisioning.name},
        "kmsKeyArn": stack.key.arn,
        "caCertificateId": stack.edge.ca_certificate_id,
        "devicePolicyName": stack.edge.device_policy_name,
        "domainConfigurationName": stack.edge.domain_configuration.name,
        "capabilities": sorted(stack.capabilities),
        **region_outputs(config.capabilities, stack.capabilities),
        "alertTopicArn": stack.alert_topic.arn,
        "dashboardName": stack.monitoring.dashboard.dashboard_name,
        # Per latency endpoint (device domain, CVM): its combined check and evacuation control.
        "evacuation": {key: endpoint.outputs()
                       for key, endpoint in stack.evacuation_endpoints.items()},
    }
    for region, stack in regional.items()
})
pulumi.export("evacuationOperatorPolicyArn", evacuation.policy.arn)
pulumi.export("operationsDashboard", operations.dashboard.dashboard_name)
if site is not None:
    pulumi.export("installerWeb", {"url": site.url, "distributionId": site.distribution.id,
                                   "contentSecurityPolicy": site.content_security_policy})
