"""Every per-region capability the program can deploy, in the order RegionalStack builds
them. A stack enables a subset with the `capabilities` config key (default: all).

A new capability = a folder under components/ exposing `CAPABILITY` + one line here.
"""

from __future__ import annotations

from typing import Any

from components import audit, cvm, fleet_provisioning, jitr, replication
from components.context import Capability

CAPABILITIES: tuple[Capability[Any], ...] = (
    jitr.CAPABILITY,
    replication.CAPABILITY,
    cvm.CAPABILITY,
    fleet_provisioning.CAPABILITY,
    audit.CAPABILITY,
)


def by_name() -> dict[str, Capability[Any]]:
    return {capability.name: capability for capability in CAPABILITIES}
