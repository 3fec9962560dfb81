"""The recorder's configuration, read once from its environment (components/fleet_provisioning
declares it from the same model, lambdas/contracts/environment.py)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from lambdas.contracts import fleet_allow_list as allow_list
from lambdas.contracts.environment import FleetRecorderEnvironment

from .logic import Timing

POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Config:
    region: str
    inventory_table: str
    provisioning_table: str
    timing: Timing

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Config:
        environ = os.environ if environ is None else environ
        env: FleetRecorderEnvironment[str] = FleetRecorderEnvironment.from_environ(environ)
        return cls(region=environ["AWS_REGION"], inventory_table=env.inventory_table_name,
                   provisioning_table=env.provisioning_table_name,
                   timing=Timing(wait_seconds=env.integer("confirm_wait_seconds"),
                                 poll_seconds=POLL_SECONDS,
                                 give_up_after=allow_list.CLAIM_STALE_AFTER))
