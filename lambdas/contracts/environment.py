"""The environment each function is deployed with: one model per function, used on both
sides. The component that declares the function builds the model from its values (Pulumi
inputs) and hands `variables()` to the function's `environment`; the function reads its
configuration with `from_environ(os.environ)` and nothing else from the environment (AWS's
own variables aside, e.g. AWS_REGION). A variable's name is its field name in upper case,
so neither side can spell it differently.

`from_environ` refuses a missing (or, unless allowed, empty) variable with
`EnvironmentProblem` naming it: a deployment bug, never a device's fault.
`variables()` adds powertools' `POWERTOOLS_SERVICE_NAME` / `POWERTOOLS_METRICS_NAMESPACE`
from the function's `metrics.Service`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from . import metrics

V = TypeVar("V")
E = TypeVar("E", bound="FunctionEnvironment[Any]")
SERVICE_NAME_VARIABLE = "POWERTOOLS_SERVICE_NAME"
METRICS_NAMESPACE_VARIABLE = "POWERTOOLS_METRICS_NAMESPACE"


class EnvironmentProblem(Exception):
    """The function was deployed without a setting it needs, or with an unusable one."""


@dataclass(frozen=True)
class FunctionEnvironment(Generic[V]):
    """Base of the per-function models. Fields defaulting to None are optional variables;
    `MAY_BE_EMPTY` names the fields whose variable may be present but empty."""

    SERVICE: ClassVar[metrics.Service]
    MAY_BE_EMPTY: ClassVar[frozenset[str]] = frozenset()

    @staticmethod
    def variable_name(field_name: str) -> str:
        return field_name.upper()

    @classmethod
    def variable_names(cls) -> tuple[str, ...]:
        return tuple(cls.variable_name(f.name) for f in dataclasses.fields(cls))

    def variables(self) -> dict[str, V | str]:
        """The function's `environment.variables` (an absent optional field is left out)."""
        declared: dict[str, V | str] = {
            self.variable_name(f.name): getattr(self, f.name)
            for f in dataclasses.fields(self) if getattr(self, f.name) is not None}
        declared[SERVICE_NAME_VARIABLE] = self.SERVICE.name
        declared[METRICS_NAMESPACE_VARIABLE] = self.SERVICE.namespace
        return declared

    @classmethod
    def from_environ(cls: type[E], environ: Mapping[str, str]) -> E:
        values: dict[str, Any] = {}
        missing = []
        for item in dataclasses.fields(cls):
            name = cls.variable_name(item.name)
            value = environ.get(name)
            optional = item.default is None
            if value is None or (value == "" and item.name not in cls.MAY_BE_EMPTY
                                 and not optional):
                if not optional:
                    missing.append(name)
                continue
            values[item.name] = value
        if missing:
            raise EnvironmentProblem(f"{cls.SERVICE.name}: environment variable(s) "
                                     f"{', '.join(missing)} missing or empty")
        return cls(**values)

    def integer(self, field_name: str, *, minimum: int = 0) -> int:
        """A whole-number variable, or EnvironmentProblem naming it."""
        value = getattr(self, field_name)
        try:
            number = int(str(value))
        except ValueError:
            number = minimum - 1
        if number < minimum:
            raise EnvironmentProblem(f"{self.variable_name(field_name)}={value!r} must be a "
                                     f"whole number >= {minimum}")
        return number


@dataclass(frozen=True)
class JitrCheckEnvironment(FunctionEnvironment[V]):
    SERVICE: ClassVar[metrics.Service] = metrics.JITR_CHECK

    ca_certificate_pem: V  # public: the CA certificate(s) device certificates must chain to


@dataclass(frozen=True)
class CvmRegistrationEnvironment(FunctionEnvironment[V]):
    SERVICE: ClassVar[metrics.Service] = metrics.CVM
    MAY_BE_EMPTY: ClassVar[frozenset[str]] = frozenset({"thing_name_prefix", "legacy_batches"})

    provisioning_table_name: V
    inventory_table_name: V
    salts_secret_arn: V
    device_policy_name: V
    device_endpoint: V  # the device domain devices connect to
    thing_name_prefix: V
    legacy_batches: V  # comma-separated batches allowed CreateKeysAndCertificate
    claim_stale_seconds: V
    root_ca_bundle_pem: V | None = None  # default: the packaged Amazon root CAs


@dataclass(frozen=True)
class FleetHookEnvironment(FunctionEnvironment[V]):
    SERVICE: ClassVar[metrics.Service] = metrics.FLEET_HOOK

    provisioning_table_name: V
    inventory_table_name: V
    template_arn: V
    claim_client_id_prefix: V
    hook_budget_ms: V


@dataclass(frozen=True)
class FleetRecorderEnvironment(FunctionEnvironment[V]):
    SERVICE: ClassVar[metrics.Service] = metrics.FLEET_RECORDER

    provisioning_table_name: V
    inventory_table_name: V
    confirm_wait_seconds: V  # how long one invocation polls AWS IoT
    # (the claim window itself is the allow-list contract's CLAIM_STALE_AFTER)


@dataclass(frozen=True)
class ShadowReplicationEnvironment(FunctionEnvironment[V]):
    SERVICE: ClassVar[metrics.Service] = metrics.SHADOW_REPLICATION

    device_data_table_name: V
    dead_letter_queue_url: V


# Lambda package (lambdas/<package>) -> its environment model.
BY_PACKAGE: Mapping[str, type[FunctionEnvironment[Any]]] = {
    "jitr_certificate_check": JitrCheckEnvironment,
    "cvm_registration": CvmRegistrationEnvironment,
    "fleet_provisioning_hook": FleetHookEnvironment,
    "fleet_provisioning_recorder": FleetRecorderEnvironment,
    "shadow_replication": ShadowReplicationEnvironment,
}
