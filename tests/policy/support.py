"""Drive single guardrails in-process with engine-shaped arguments."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policy.check import resolve_policies, wire_props
from policy.pack import ALL_POLICIES

BY_NAME = {p.name: p for p in ALL_POLICIES}
REGION = "eu-west-1"


def _options(parent: str | None = None) -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], parent)


def provider(region: str = REGION, **extra: Any) -> PolicyProviderResource:
    return PolicyProviderResource("pulumi:providers:aws", wire_props({"region": region, **extra}),
                                  "urn:pulumi:test::proj::pulumi:providers:aws::default_7_51_0",
                                  "default_7_51_0")


def _config(name: str, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    policy = BY_NAME[name]
    resolved = resolve_policies([policy], {name: dict(overrides)} if overrides else None)
    return resolved[0].config


def urn(type_: str, name: str) -> str:
    return f"urn:pulumi:test::proj::{type_}::{name}"


def resource_violations(name: str, type_: str, props: Mapping[str, Any], *,
                        config: Mapping[str, Any] | None = None, resource_name: str = "res",
                        prov: PolicyProviderResource | None = None) -> list[str]:
    policy = BY_NAME[name]
    assert isinstance(policy, ResourceValidationPolicy)
    messages: list[str] = []
    args = ResourceValidationArgs(type_, wire_props(props), urn(type_, resource_name), resource_name,
                                  _options(), prov or provider(), _config(name, config), {})
    policy.validate(args, lambda message, _urn=None: messages.append(message))
    return messages


def stack_violations(name: str, resources: Sequence[tuple[str, Mapping[str, Any]] |
                                                   tuple[str, Mapping[str, Any], str]],
                     *, config: Mapping[str, Any] | None = None) -> list[tuple[str, str | None]]:
    """resources: (type, props) or (type, props, logical name); region via props['region']."""
    policy = BY_NAME[name]
    assert isinstance(policy, StackValidationPolicy)
    built = []
    for index, spec in enumerate(resources):
        type_, props = spec[0], spec[1]
        logical = spec[2] if len(spec) > 2 else f"r{index}"  # type: ignore[misc]
        built.append(PolicyResource(type_, wire_props(props), urn(type_, logical), logical,
                                    _options(), provider(), None, [], {}))
    found: list[tuple[str, str | None]] = []
    policy.validate(StackValidationArgs(built, _config(name, config), {}),
                    lambda message, u=None: found.append((message, u)))
    return found
