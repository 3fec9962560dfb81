"""The function's configuration, read once from its environment (components/shadow_replication
declares it from the same model, lambdas/contracts/environment.py)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from lambdas.contracts.environment import ShadowReplicationEnvironment


@dataclass(frozen=True)
class Config:
    region: str
    device_data_table: str
    dead_letter_queue_url: str

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Config:
        environ = os.environ if environ is None else environ
        env: ShadowReplicationEnvironment[str] = \
            ShadowReplicationEnvironment.from_environ(environ)
        return cls(region=environ["AWS_REGION"], device_data_table=env.device_data_table_name,
                   dead_letter_queue_url=env.dead_letter_queue_url)
