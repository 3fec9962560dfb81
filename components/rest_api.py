"""When a REST API must be deployed again: the fingerprint of everything a deployment serves.

API Gateway serves a snapshot: a stage keeps answering with the deployment it points at
until a new deployment is made ("Deploy a REST API in API Gateway"). `aws.apigateway.
Deployment` is replaced when its `triggers` change (the provider's `triggers` is ForceNew,
terraform-provider-aws internal/service/apigateway/deployment.go), so the triggers must change
whenever any part of the definition does: the API itself, resources, methods, integrations,
request validators, models and gateway responses.

Rather than a hand-kept list of "what matters" (which missed method authorisation, validator
flags and integration URIs before), the fingerprint covers *every input* each part is declared
with: the parts are declared through `ApiDefinition.add`, which keeps what it was given.
Stage-level settings (the stage, its method settings, the base path mapping, the WAF
association) take effect on the stage without a new deployment and depend on the deployment,
so they are not part of it. tests/test_redeploy.py changes each input of each part in turn
and requires a new fingerprint every time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import pulumi

R = TypeVar("R", bound=pulumi.CustomResource)


def _key(name: str) -> str:
    """One spelling for `request_models` (Python) and `requestModels` (the engine's)."""
    return name.replace("_", "").lower()


def canonical(value: Any) -> Any:
    """Plain JSON data with keys in one spelling and unset (None) values left out."""
    if isinstance(value, Mapping):
        return {_key(str(k)): canonical(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if value is not None and not isinstance(value, (str, int, float, bool)):
        raise TypeError(f"{type(value).__name__}: declare a REST API's parts with plain values "
                        "(dicts, not *Args classes), so their fingerprint can read them")
    return value


def fingerprint(parts: Sequence[Mapping[str, Any]]) -> str:
    """Order-independent digest of the parts (`{"kind": ..., "inputs": {...}}` each)."""
    encoded = sorted(json.dumps(canonical(part), sort_keys=True, separators=(",", ":"),
                                default=str) for part in parts)
    return hashlib.sha256("\n".join(encoded).encode()).hexdigest()


class ApiDefinition:
    """The parts of one REST API's definition, declared through `add`, which keeps each part's
    inputs for the deployment's `triggers`."""

    def __init__(self) -> None:
        self.resources: list[pulumi.CustomResource] = []
        self._parts: list[pulumi.Output[dict[str, Any]]] = []

    def add(self, resource_class: type[R], resource_name: str, /, *,
            opts: pulumi.ResourceOptions | None = None, **inputs: Any) -> R:
        resource = resource_class(resource_name, opts=opts, **inputs)
        kind = resource_class.__name__
        self._parts.append(pulumi.Output.from_input(inputs).apply(
            lambda resolved: {"kind": kind, "inputs": canonical(resolved)}))
        self.resources.append(resource)
        return resource

    def triggers(self) -> pulumi.Output[dict[str, str]]:
        """`triggers` for `aws.apigateway.Deployment`: changes when any input of any part does."""
        return pulumi.Output.all(*self._parts).apply(
            lambda parts: {"definition": fingerprint(parts)})
