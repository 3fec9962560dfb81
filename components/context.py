"""What every capability is handed: one frozen `RegionalContext` per region, and one
`GlobalContext` for its optional global part.

`RegionalStack` builds the device edge first, then one context, then each enabled
capability from the registry in `components/capabilities.py`; after every region, each
capability with a global part builds it once (`components/capabilities.py`,
`build_global_parts`). A capability reads only the context and its own settings (its section
of the stack config, parsed by its own parser), never the whole `StackConfig` and never
`pulumi.Config`.

Adding a capability: a folder `components/<name>/` whose `__init__.py` exposes a
`Capability` value, one line in `components/capabilities.py`, its Lambda code under
`lambdas/<name>_<function>/`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from components.naming import RegionNames, StackNames

from components.edge.settings import IotAccountSettings

# Types only: the settings parsers import this module, and the operators' tools import those
# without loading Pulumi or pulumi_aws (tests/test_tool_imports.py).
if TYPE_CHECKING:
    import pulumi

    from components.account import AwsAccount
    from components.edge.cas import DeviceCas
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
    def names(self) -> RegionNames:
        """This region's physical names (components/naming.py, shared with the tools)."""
        return StackNames(self.app_name, self.environment).region(self.region)

    @property
    def name_prefix(self) -> str:
        """`<app>-<env>-<region>`: IAM and Route53 names are global, so they name the region."""
        return self.names.prefix

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"

    @property
    def other_regions(self) -> tuple[str, ...]:
        return tuple(r for r in self.stack_regions if r != self.region)

    def resource_name(self, *parts: str) -> str:
        """A deterministic physical name: `<app>-<env>-<parts...>` (same rule as StackConfig)."""
        return self.names.stack.name(*parts)


@dataclass(frozen=True)
class GlobalContext:
    """What a capability's global part is handed: the stack, not one region."""

    app_name: str
    environment: str
    primary_region: str
    stack_regions: tuple[str, ...]
    device_domain: str
    hosted_zone_id: str
    account: AwsAccount
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def names(self) -> StackNames:
        return StackNames(self.app_name, self.environment)


Settings = TypeVar("Settings")
# The component a capability builds in each region.
Built = TypeVar("Built", bound="pulumi.ComponentResource")
# Reports one problem with a field of the capability's config section: (field, message).
ReportProblem = Callable[[str, str], None]


def exported(outputs: Any) -> dict[str, Any]:
    """A component's typed outputs (a dataclass) as a stack-output map, keys in camelCase."""
    def camel(name: str) -> str:
        head, *rest = name.split("_")
        return head + "".join(part.title() for part in rest)

    return {camel(f.name): getattr(outputs, f.name) for f in fields(outputs)}


@dataclass(frozen=True)
class Capability(Generic[Settings, Built]):
    """One per-region capability: how to read its settings, how to build it in a region, and
    optionally its global part and the outputs operators' tools read.

    `config_key` names the capability's optional section in the stack config (an object);
    `parse_settings` turns that raw value (None when absent) into the capability's typed
    settings, reporting every problem through `report(field, message)` instead of raising,
    so the whole config is checked at once. `build` declares the capability's component in
    one region. `build_global` (optional) declares what one owner must declare for every
    region - e.g. a DNS record ACM asks for in each region - with a logical name that names
    no region, from the regional components it is handed (region -> component); it runs once,
    after every region. `outputs` (optional) picks the component's typed outputs that are
    exported per region (`regions.<region>.<capability>` in the stack outputs).
    """

    name: str  # resource-name suffix inside RegionalStack and the `capabilities` list entry
    config_key: str
    parse_settings: Callable[[Any, ReportProblem], Settings]
    build: Callable[[str, RegionalContext, Settings, pulumi.ResourceOptions], Built]
    description: str = ""
    build_global: Callable[[str, GlobalContext, Settings, Mapping[str, Built],
                            pulumi.ResourceOptions], pulumi.ComponentResource] | None = None
    outputs: Callable[[Built], Mapping[str, Any]] | None = None
    # What of the built component can fail silently (dead-letter queues, machines, pipes,
    # functions, logged decisions): RegionalMonitoring gives each its alarms.
    watch: Callable[[Any], Watch] | None = None
    # AWS services the capability needs in every region it is built in, by botocore's
    # endpoint names (e.g. "pipes"): config refuses a region that does not offer one.
    services: tuple[str, ...] = ()


def no_settings(raw: Any, report: ReportProblem) -> None:
    """For capabilities without a config section: any value given is a mistake."""
    if raw is not None:
        report("", "this capability takes no settings; remove the key")
    return None
