"""What every per-region capability is handed: one frozen `RegionalContext` per region.

`RegionalStack` builds the device edge first, then one context, then each enabled
capability from the registry in `components/capabilities.py`. A capability reads only the
context and its own settings (its section of the stack config, parsed by its own parser),
never the whole `StackConfig` and never `pulumi.Config`.

Adding a capability: a folder `components/<name>/` whose `__init__.py` exposes a
`Capability` value, one line in `components/capabilities.py`, its Lambda code under
`lambdas/<name>_<function>/`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pulumi

from components.account import AwsAccount
from components.edge.cas import DeviceCas
from components.edge.settings import IotAccountSettings
from components.global_tables import RegionalTable
from components.monitoring.watch import Watch
from components.packaging import LambdaLayer


@dataclass(frozen=True)
class RegionalTables:
    """This region's replicas of the three global tables."""

    inventory: RegionalTable
    device_data: RegionalTable
    provisioning: RegionalTable  # CVM / fleet-provisioning device records
    # This region's copy of the tables' multi-region CMK: callers of the tables need
    # `components.iam.table_key_statement` on it.
    key_arn: pulumi.Output[str]


@dataclass(frozen=True)
class EdgeOutputs:
    """What the device edge of this region offers the onboarding capabilities."""

    device_domain: str  # e.g. iot.example.com, the name devices connect to
    hosted_zone_id: str  # the Route53 zone holding device_domain
    ca_certificate_id: pulumi.Output[str]  # our CA as registered in this region
    ca_certificate_pem: str  # public; the same PEM in every region
    device_policy_name: pulumi.Output[str]
    device_policy_arn: pulumi.Output[str]
    data_endpoint: pulumi.Output[str]  # this region's iot:Data-ATS endpoint address
    # Every CA of a rotation (ca_certificate_id/pem above are the issuing one's) and each
    # one's registration id in this region, by CA name.
    device_cas: DeviceCas | None = None
    ca_certificate_ids: Mapping[str, pulumi.Output[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class RegionalContext:
    region: str
    stack_regions: tuple[str, ...]  # every region of the stack, this one included
    primary_region: str
    app_name: str
    environment: str  # "dev" | "prod"
    account: AwsAccount
    key_arn: pulumi.Output[str]  # the regional CMK (logs, queues, topics, Lambda environment)
    tables: RegionalTables
    edge: EdgeOutputs
    lambda_layer: LambdaLayer  # the dependencies layer every function runs with
    log_retention_days: int
    # This region's alert topic (KMS SNS): alarms and audit findings publish to it.
    alert_topic_arn: pulumi.Output[str]
    # The pulumi-aws-native provider pinned to this region (Cloud Control types pulumi-aws
    # lacks, e.g. Device Defender): pass it as `provider=` to every aws-native resource.
    native_provider: pulumi.ProviderResource
    # Who owns the account-wide IoT settings of the region (components/edge/settings.py).
    account_settings: IotAccountSettings = field(default_factory=IotAccountSettings)
    tags: Mapping[str, str] = field(default_factory=dict)
    # https origins of the stack's installer web app (components/installer_web), if any.
    web_origins: tuple[str, ...] = ()

    @property
    def name_prefix(self) -> str:
        """`<app>-<env>-<region>`: IAM and Route53 names are global, so they name the region."""
        return self.resource_name(self.region)

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"

    @property
    def other_regions(self) -> tuple[str, ...]:
        return tuple(r for r in self.stack_regions if r != self.region)

    def resource_name(self, *parts: str) -> str:
        """A deterministic physical name: `<app>-<env>-<parts...>` (same rule as StackConfig)."""
        return "-".join((self.app_name, self.environment, *parts))


Settings = TypeVar("Settings")
# Reports one problem with a field of the capability's config section: (field, message).
ReportProblem = Callable[[str, str], None]


@dataclass(frozen=True)
class Capability(Generic[Settings]):
    """One per-region capability: how to read its settings and how to build it.

    `config_key` names the capability's optional section in the stack config (an object);
    `parse_settings` turns that raw value (None when absent) into the capability's typed
    settings, reporting every problem through `report(field, message)` instead of raising,
    so the whole config is checked at once. `build` declares the capability's component.
    """

    name: str  # resource-name suffix inside RegionalStack and the `capabilities` list entry
    config_key: str
    parse_settings: Callable[[Any, ReportProblem], Settings]
    build: Callable[[str, RegionalContext, Settings, pulumi.ResourceOptions],
                    pulumi.ComponentResource]
    description: str = ""
    # What of the built component can fail silently (dead-letter queues, machines, pipes,
    # functions, logged decisions): RegionalMonitoring gives each its alarms.
    watch: Callable[[Any], Watch] | None = None


def no_settings(raw: Any, report: ReportProblem) -> None:
    """For capabilities without a config section: any value given is a mistake."""
    if raw is not None:
        report("", "this capability takes no settings; remove the key")
    return None
