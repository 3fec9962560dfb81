"""Every per-region capability the program can deploy, in the order RegionalStack builds
them. A stack enables a subset with the `capabilities` config key (default: all).

A new capability = a folder under components/ exposing `CAPABILITY` + one line here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from components import audit, cvm, fleet_provisioning, jitr, replication, shadow_replication
from components.context import Capability, GlobalContext

if TYPE_CHECKING:
    import pulumi

CAPABILITIES: tuple[Capability[Any, Any], ...] = (
    jitr.CAPABILITY,
    replication.CAPABILITY,
    shadow_replication.CAPABILITY,
    cvm.CAPABILITY,
    fleet_provisioning.CAPABILITY,
    audit.CAPABILITY,
)


def by_name() -> dict[str, Capability[Any, Any]]:
    return {capability.name: capability for capability in CAPABILITIES}


def build_global_parts(ctx: GlobalContext, enabled: tuple[str, ...],
                       settings: Mapping[str, Any],
                       regional: Mapping[str, Mapping[str, pulumi.ComponentResource]]
                       ) -> dict[str, pulumi.ComponentResource]:
    """Each enabled capability's global part, built once after every region:
    `<capability>-global`, handed the capability's component of every region."""
    import pulumi

    parts: dict[str, pulumi.ComponentResource] = {}
    for capability in CAPABILITIES:
        if capability.name not in enabled or capability.build_global is None:
            continue
        components = {region: built[capability.name] for region, built in regional.items()}
        parts[capability.name] = capability.build_global(
            f"{capability.name}-global", ctx, settings.get(capability.name), components,
            pulumi.ResourceOptions())
    return parts


def region_outputs(enabled: tuple[str, ...],
                   built: Mapping[str, pulumi.ComponentResource]) -> dict[str, Any]:
    """One region's capability outputs for the stack outputs, keyed by capability config key."""
    return {capability.config_key: capability.outputs(built[capability.name])
            for capability in CAPABILITIES
            if capability.name in enabled and capability.outputs is not None}
