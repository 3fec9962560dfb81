"""Physical names: the one place that says what a stack's resources are called.

The program and the operators' tools (`tools/manufacturer.py`, `tools/reconcile.py`,
`tools/installer.py`) both take names from here, so a tool never re-derives a name by its own
rule. Pure Python: importing it loads neither Pulumi nor pulumi_aws, so a tool starts fast.

Names are `<app>-<env>-<parts...>`; names of per-region resources that live in a global
namespace (IAM, Route53, CloudWatch alarm names read by Route53) name their region too. A
name longer than the limit AWS sets for it is shortened to `<head>-<8 hex of sha256>`: stable,
unique, and only ever applied to a name that could not have been deployed as it was, so
existing stacks keep their names (tests/test_name_lengths.py proves every named resource
fits at the longest config the parser accepts).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

# CreateProvisioningClaim: templateName 1..36 of [0-9A-Za-z_-]
# (https://docs.aws.amazon.com/iot/latest/apireference/API_CreateProvisioningClaim.html).
TEMPLATE_NAME_MAX = 36
_TEMPLATE_NAME = re.compile(r"[0-9A-Za-z_-]{1,36}")
# IAM role names: 64 characters (IAM quotas, "IAM name requirements").
IAM_ROLE_NAME_MAX = 64
_DIGEST_LENGTH = 8

# The logical names of the three global tables (components/global_tables.py declares them).
INVENTORY_TABLE = "device-inventory"
DEVICE_DATA_TABLE = "device-data"
PROVISIONING_TABLE = "cvm-provisioning"


def bounded(name: str, limit: int) -> str:
    """`name`, or when longer than `limit` its head and a stable 8-hex digest of the whole."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:_DIGEST_LENGTH]
    return f"{name[:limit - _DIGEST_LENGTH - 1]}-{digest}"


def role_name(name: str) -> str:
    """An IAM role name within IAM's 64 characters."""
    return bounded(name, IAM_ROLE_NAME_MAX)


@dataclass(frozen=True)
class StackNames:
    """Names of one stack (`appName`, `environment`)."""

    app_name: str
    environment: str

    @property
    def prefix(self) -> str:
        return f"{self.app_name}-{self.environment}"

    def name(self, *parts: str) -> str:
        """`<app>-<env>-<parts...>`."""
        return "-".join((self.app_name, self.environment, *parts))

    def table(self, logical: str) -> str:
        """A global table's name (the same in every region)."""
        return self.name(logical)

    @property
    def salts_secret(self) -> str:
        """The CVM's batch-salts secret: the same name in every region (one secret each)."""
        return f"{self.prefix}/cvm/batch-salts"

    @property
    def device_policy(self) -> str:
        return self.name("device")

    def region(self, region: str) -> RegionNames:
        return RegionNames(self, region)


@dataclass(frozen=True)
class RegionNames:
    """Names of one region of a stack: `<app>-<env>-<region>-...`."""

    stack: StackNames
    region: str

    @property
    def prefix(self) -> str:
        return self.stack.name(self.region)

    def name(self, *parts: str) -> str:
        return "-".join((self.prefix, *parts))

    @property
    def replication_machine(self) -> str:
        return self.name("replication")

    @property
    def fleet_template(self) -> str:
        return template_name(self.prefix)


def template_name(name_prefix: str) -> str:
    """`<name_prefix>-fleet`, shortened with a stable digest when longer than 36."""
    name = bounded(f"{name_prefix}-fleet", TEMPLATE_NAME_MAX)
    if not _TEMPLATE_NAME.fullmatch(name):
        raise ValueError(f"provisioning template name {name!r} is not [0-9A-Za-z_-]{{1,36}}")
    return name
