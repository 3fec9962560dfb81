"""The end of every onboarding journey: the device's inventory row reaches the other regions'
replicas, and the device may connect there without onboarding again (what the replication
capability provides; pending while the stack lacks it)."""

from __future__ import annotations

from functools import partial
from typing import Any

from tools.local.emulation.device_gateway import DeviceGateway
from tools.local.journeys import JourneyRun, plain_item
from tools.local.system import LocalSystem

INVENTORY = "device-inventory"  # the program's export key of the inventory table
REPLICATION_TIMEOUT_SECONDS = 10
USABLE_ELSEWHERE_TIMEOUT_SECONDS = 20


def inventory_table(system: LocalSystem) -> str:
    """The inventory table as the program exports it (not as a wire names it)."""
    return str(system.graph.outputs["tables"][INVENTORY]["name"])


def inventory_row(system: LocalSystem, region: str, thing: str) -> dict[str, Any] | None:
    item = system.client("dynamodb", region).get_item(
        TableName=inventory_table(system), Key={"thingName": {"S": thing}},
        ConsistentRead=True).get("Item")
    return plain_item(item)


def known_elsewhere(run: JourneyRun, region: str, thing: str, row: dict[str, Any] | None,
                    certificate_pem: str, *, without: str) -> None:
    """In every other region: the replica row equals `row`, and `thing` with its certificate
    may connect (`without` completes the title: "without <registering there>")."""
    system = run.system
    for other in system.other_regions(region):
        with run.step(f"the row of {thing} is replicated to {other}", region=other) as step:
            replica = run.wait_for(partial(inventory_row, system, other, thing),
                                   lambda r: r == row, timeout=REPLICATION_TIMEOUT_SECONDS)
            step.check(replica == row, f"replica row {'equals' if replica == row else 'differs from'}"
                                       f" the row written in {region}")
        title = f"{thing} usable in {other} without {without}"
        reason = run.missing("replication", other)
        if reason:
            run.pending(title, region=other, reason=reason)
            continue
        with run.step(title, region=other) as step:
            allowed, why = run.wait_for(
                partial(system.emulation(DeviceGateway).authorize_connect, other,
                        certificate_pem, thing),
                lambda result: result[0], timeout=USABLE_ELSEWHERE_TIMEOUT_SECONDS)
            step.check(allowed, why)
