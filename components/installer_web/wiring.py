"""From the stack's config and regions to the one InstallerWeb of the stack (or none)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi

from components.account import AwsAccount
from components.config import StackConfig
from components.fleet_provisioning import FleetProvisioning, FleetSettings
from components.fleet_provisioning.component import ALLOW_LIST_ADMINS_GROUP, INSTALLERS_GROUP
from components.installer_web.bundle import WebBundle
from components.installer_web.component import InstallerWeb, InstallerWebArgs
from components.installer_web.site_config import SiteRegion

LOGICAL_NAME = "installer-web"


def installer_web(config: StackConfig, regional: Mapping[str, Any],
                  allow_list_table: pulumi.Input[str], bundle: WebBundle | None,
                  account: AwsAccount, tags: Mapping[str, str]) -> InstallerWeb | None:
    """`regional`: region -> RegionalStack (its `capabilities` hold each region's fleet)."""
    settings = config.installer_web
    if settings is None or bundle is None:
        return None
    regions = []
    for region, stack in regional.items():
        fleet = stack.capabilities.get("fleet_provisioning")
        if not isinstance(fleet, FleetProvisioning):
            continue
        regions.append(SiteRegion(
            region=region, user_pool_id=fleet.user_pool.id,
            user_pool_client_id=fleet.user_pool_client.id,
            identity_pool_id=fleet.identity_pool.id, template_name=fleet.template_name,
            installer_role_arn=fleet.installer_role.arn, admin_role_arn=fleet.admin_role.arn,
            allow_list_table=allow_list_table, provisioning_endpoint=stack.edge.data_endpoint))
    fleet_settings = config.capability_settings.get("fleet_provisioning") or FleetSettings()
    return InstallerWeb(LOGICAL_NAME, InstallerWebArgs(
        name_prefix=config.resource_name(), stack=config.environment,
        primary_region=config.primary_region,
        site_domain=settings.site_domain(config.device_domain),
        hosted_zone_id=config.hosted_zone_id, device_domain=config.device_domain,
        claim_client_id_prefix=fleet_settings.claim_client_id_prefix,
        installers_group=INSTALLERS_GROUP, admins_group=ALLOW_LIST_ADMINS_GROUP,
        regions=tuple(regions), bundle=bundle, account=account, is_prod=config.is_prod,
        device_local_address=settings.device_local_address, price_class=settings.price_class,
        tags=tags))
