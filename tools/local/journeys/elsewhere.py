"""The end of every onboarding journey: the device's inventory row reaches the other regions'
replicas, and the device may connect there without onboarding again (replication's work;
pending while the stack lacks it)."""

from __future__ import annotations

from functools import partial
from typing import Any

from tools.local.emulation.iot_data import IotData
from tools.local.journeys import JourneyRun
from tools.local.journeys import registry as seen

CONVERGE_SECONDS = 20


def known_elsewhere(run: JourneyRun, region: str, thing: str, row: dict[str, Any] | None,
                    certificate_pem: str, *, without: str) -> None:
    world = run.world
    for other in world.other_regions(region):
        with run.step(f"the row of {thing} is replicated to {other}", region=other) as step:
            replica = seen.wait_for(partial(seen.row, world, other, thing), lambda r: r == row,
                                    timeout=CONVERGE_SECONDS, world=world)
            step.check(replica == row, f"replica row {'equals' if replica == row else 'differs from'}"
                                       f" the row written in {region}")
        title = f"{thing} usable in {other} without {without}"
        reason = run.missing("replication", other)
        if reason:
            run.pending(title, region=other, reason=reason)
            continue
        with run.step(title, region=other) as step:
            allowed, why = seen.wait_for(
                partial(world.emulation(IotData).authorize_connect, other, certificate_pem, thing),
                lambda result: result[0], timeout=CONVERGE_SECONDS, world=world)
            step.check(allowed, why)
