"""When a REST API must be deployed again: the fingerprint of everything a deployment serves.

API Gateway serves a snapshot: a stage keeps answering with the deployment it points at
until a new deployment is made ("Deploy a REST API in API Gateway"). `aws.apigateway.
Deployment` is replaced when its `triggers` change (the provider's `triggers` is ForceNew,
terraform-provider-aws internal/service/apigateway/deployment.go), so the triggers must change
whenever any part of the definition does: the API itself, resources, methods, integrations,
request validators, models and gateway responses.

Rather than a hand-kept list of "what matters" (which missed method authorisation, validator
flags and integration URIs before), the fingerprint covers *every input property* of every
part, read from the declared resources themselves (the property names come from each type's
`*Args` class). Stage-level settings (the stage, its method settings, the base path mapping,
the WAF association) take effect on the stage without a new deployment and depend on the
deployment, so they are not part of it. tests/test_redeploy.py changes each input of each
part in turn and requires a new fingerprint every time.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi


def _key(name: str) -> str:
    """One spelling for `request_models` (Python) and `requestModels` (the engine's)."""
    return name.replace("_", "").lower()


def canonical(value: Any) -> Any:
    """Plain JSON data with keys in one spelling and unset (None) values left out."""
    if isinstance(value, Mapping):
        return {_key(str(k)): canonical(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return value


def input_property_names(resource_class: type) -> tuple[str, ...]:
    """The input properties of a pulumi_aws resource type (its `*Args` class' fields)."""
    args_class = getattr(inspect.getmodule(resource_class), f"{resource_class.__name__}Args")
    return tuple(name for name in inspect.signature(args_class.__init__).parameters
                 if name not in ("self", "__self__"))


def part_properties(resource: pulumi.CustomResource) -> pulumi.Output[dict[str, Any]]:
    """`{"kind": <type name>, "inputs": {...}}` of one part, with every input property."""
    names = input_property_names(type(resource))
    values = pulumi.Output.all(*[getattr(resource, name) for name in names])
    kind = type(resource).__name__
    return values.apply(lambda resolved: {"kind": kind, "inputs": canonical(
        dict(zip(names, resolved, strict=True)))})


def fingerprint(parts: Sequence[Mapping[str, Any]]) -> str:
    """Order-independent digest of the parts' properties."""
    encoded = sorted(json.dumps(canonical(part), sort_keys=True, separators=(",", ":"),
                                default=str) for part in parts)
    return hashlib.sha256("\n".join(encoded).encode()).hexdigest()


def deployment_triggers(parts: Sequence[pulumi.CustomResource]) -> pulumi.Output[dict[str, str]]:
    """`triggers` for `aws.apigateway.Deployment`: changes when any input of any part does."""
    return pulumi.Output.all(*[part_properties(part) for part in parts]).apply(
        lambda resolved: {"definition": fingerprint(resolved)})
