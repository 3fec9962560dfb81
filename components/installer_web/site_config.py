"""The site's `config.json`, written by the stack next to the bundle: the regions and, per
region, the public identifiers the app needs. Identifiers only: user pool and app-client
ids, identity pool ids, role ARNs and table names are not secrets (a browser app has to
know them); the config holds no key, token or password (the policy pack checks it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from components.installer_web.headers import regional_endpoints

CONFIG_KEY = "config.json"
CONFIG_VERSION = 1
DEVICE_PORT = 8883  # MQTT over TLS on the device domain


@dataclass(frozen=True)
class SiteRegion:
    """One region's fleet-provisioning identifiers (components/fleet_provisioning)."""

    region: str
    user_pool_id: pulumi.Input[str]
    user_pool_client_id: pulumi.Input[str]
    identity_pool_id: pulumi.Input[str]
    template_name: pulumi.Input[str]
    installer_role_arn: pulumi.Input[str]
    admin_role_arn: pulumi.Input[str]
    allow_list_table: pulumi.Input[str]
    # This region's AWS IoT data endpoint (iot:Data-ATS): a claim is valid only in the region
    # that issued it, so the device provisions there, not through the latency-routed domain.
    provisioning_endpoint: pulumi.Input[str]


def config_document(*, stack: str, device_domain: str, claim_client_id_prefix: str,
                    installers_group: str, admins_group: str, device_local_address: str | None,
                    regions: Sequence[Mapping[str, Any]]) -> str:
    """`regions`: one mapping per region with SiteRegion's fields as plain values."""
    return json.dumps({
        "version": CONFIG_VERSION,
        "stack": stack,
        "deviceEndpoint": device_domain,
        "devicePort": DEVICE_PORT,
        "claimClientIdPrefix": claim_client_id_prefix,
        "installersGroup": installers_group,
        "adminsGroup": admins_group,
        "deviceLocalAddress": device_local_address,
        "regions": [{
            "region": r["region"],
            "userPoolId": r["user_pool_id"],
            "userPoolClientId": r["user_pool_client_id"],
            "identityPoolId": r["identity_pool_id"],
            "templateName": r["template_name"],
            "installerRoleArn": r["installer_role_arn"],
            "adminRoleArn": r["admin_role_arn"],
            "allowListTable": r["allow_list_table"],
            "provisioningEndpoint": r["provisioning_endpoint"],
            "endpoints": regional_endpoints(r["region"]),
        } for r in regions],
    }, indent=2, sort_keys=True)


def region_values(region: SiteRegion) -> pulumi.Output[dict[str, Any]]:
    fields = ("user_pool_id", "user_pool_client_id", "identity_pool_id", "template_name",
              "installer_role_arn", "admin_role_arn", "allow_list_table", "provisioning_endpoint")
    return pulumi.Output.all(*(getattr(region, f) for f in fields)).apply(
        lambda values: {"region": region.region, **dict(zip(fields, values))})
