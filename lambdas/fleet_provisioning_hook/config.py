"""The hook's configuration, read from its environment at each invocation (cheap, and a
misconfigured function denies instead of failing to start). components/fleet_provisioning
declares the environment from the same model (lambdas/contracts/environment.py)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from lambdas.contracts import fleet_allow_list as allow_list
from lambdas.contracts.environment import FleetHookEnvironment

from .logic import HookConfig


def running_in_lambda(environ: Mapping[str, str] | None = None) -> bool:
    """Lambda sets AWS_LAMBDA_FUNCTION_NAME (and AWS_REGION) before the module is imported."""
    return bool((os.environ if environ is None else environ).get("AWS_LAMBDA_FUNCTION_NAME"))


@dataclass(frozen=True)
class Config:
    region: str
    provisioning_table: str
    inventory_table: str
    budget_ms: int  # the table work's share of AWS IoT's 5 seconds
    rules: HookConfig

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Config:
        environ = os.environ if environ is None else environ
        env: FleetHookEnvironment[str] = FleetHookEnvironment.from_environ(environ)
        return cls(
            region=environ["AWS_REGION"], provisioning_table=env.provisioning_table_name,
            inventory_table=env.inventory_table_name,
            budget_ms=env.integer("hook_budget_ms", minimum=1),
            rules=HookConfig(
                template_arn=env.template_arn,
                claim_client_id_prefix=env.claim_client_id_prefix,
                claim_stale_after=allow_list.CLAIM_STALE_AFTER,
                region=environ["AWS_REGION"]))
