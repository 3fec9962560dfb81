"""The function's configuration, read once from its environment (set by components/cvm)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lambdas.contracts.environment import CvmRegistrationEnvironment, EnvironmentProblem

PACKAGED_ROOT_CAS = Path(__file__).resolve().parent / "amazon_root_cas.pem"


class ConfigurationError(Exception):
    """The function was deployed without a setting it needs (a deployment bug)."""


@dataclass(frozen=True)
class Config:
    region: str
    provisioning_table: str
    inventory_table: str
    salts_secret_id: str
    device_policy_name: str
    device_endpoint: str  # what devices connect to: the device domain (iot.<domain>)
    root_ca_bundle: str  # verifies the device domain's server certificate
    thing_name_prefix: str = ""
    legacy_batches: frozenset[str] = frozenset()  # batches allowed CreateKeysAndCertificate
    # A claim older than this belongs to an invocation that died (timeout): it may be taken
    # over. The function timeout plus a margin, so a live invocation is never overtaken.
    claim_stale_seconds: int = 60
    rotation_clock_skew_seconds: int = 300

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> Config:
        """Raises ConfigurationError naming what is missing (a deployment bug)."""
        env = os.environ if env is None else env
        try:
            declared: CvmRegistrationEnvironment[str] = \
                CvmRegistrationEnvironment.from_environ(env)
            claim_stale_seconds = declared.integer("claim_stale_seconds", minimum=1)
        except EnvironmentProblem as problem:
            raise ConfigurationError(str(problem)) from None
        if not env.get("AWS_REGION"):
            raise ConfigurationError("missing environment: AWS_REGION")
        legacy = frozenset(b.strip() for b in declared.legacy_batches.split(",") if b.strip())
        return cls(
            region=env["AWS_REGION"],
            provisioning_table=declared.provisioning_table_name,
            inventory_table=declared.inventory_table_name,
            salts_secret_id=declared.salts_secret_arn,
            device_policy_name=declared.device_policy_name,
            device_endpoint=declared.device_endpoint,
            root_ca_bundle=declared.root_ca_bundle_pem or PACKAGED_ROOT_CAS.read_text(),
            thing_name_prefix=declared.thing_name_prefix,
            legacy_batches=legacy,
            claim_stale_seconds=claim_stale_seconds,
        )
