"""The function's configuration, read once from its environment (set by components/cvm)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

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
        env = os.environ if env is None else env
        required = ("AWS_REGION", "PROVISIONING_TABLE_NAME", "INVENTORY_TABLE_NAME",
                    "SALTS_SECRET_ARN", "DEVICE_POLICY_NAME", "DEVICE_ENDPOINT")
        missing = [name for name in required if not env.get(name)]
        if missing:
            raise ConfigurationError(f"missing environment: {', '.join(missing)}")
        bundle = env.get("ROOT_CA_BUNDLE_PEM") or PACKAGED_ROOT_CAS.read_text()
        legacy = frozenset(b.strip() for b in env.get("LEGACY_BATCHES", "").split(",") if b.strip())
        return cls(
            region=env["AWS_REGION"],
            provisioning_table=env["PROVISIONING_TABLE_NAME"],
            inventory_table=env["INVENTORY_TABLE_NAME"],
            salts_secret_id=env["SALTS_SECRET_ARN"],
            device_policy_name=env["DEVICE_POLICY_NAME"],
            device_endpoint=env["DEVICE_ENDPOINT"],
            root_ca_bundle=bundle,
            thing_name_prefix=env.get("THING_NAME_PREFIX", ""),
            legacy_batches=legacy,
            claim_stale_seconds=int(env.get("CLAIM_STALE_SECONDS", "60")),
        )
