"""Drive guardrails in-process with engine-shaped arguments.

Props go through `tools.policy_check.wire_props`, i.e. the protobuf round trip the engine makes
(numbers arrive as floats, maps/lists as read-only proxies, unknown sentinels as unknowns).
"""

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

from tools.policy_check import resolve_policies, wire_props
from policy.pack import ALL_POLICIES
from tools.harness import UNKNOWN

BY_NAME = {p.name: p for p in ALL_POLICIES}
RESOURCE_POLICIES = [p for p in ALL_POLICIES if isinstance(p, ResourceValidationPolicy)]
STACK_POLICIES = [p for p in ALL_POLICIES if isinstance(p, StackValidationPolicy)]
REGION = "eu-west-1"

# (type, props[, logical name[, ignoreChanges]])
StackSpec = (tuple[str, Mapping[str, Any]] | tuple[str, Mapping[str, Any], str]
             | tuple[str, Mapping[str, Any], str, Sequence[str]])


def _options(parent: str | None = None) -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], parent)


def provider(region: str = REGION, **extra: Any) -> PolicyProviderResource:
    return PolicyProviderResource("pulumi:providers:aws", wire_props({"region": region, **extra}),
                                  "urn:pulumi:test::proj::pulumi:providers:aws::default_7_51_0",
                                  "default_7_51_0")


def _config(name: str, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    if not overrides:
        return dict(_DEFAULT_CONFIG[name])
    resolved = resolve_policies([BY_NAME[name]], {name: dict(overrides)})
    return resolved[0].config


_DEFAULT_CONFIG = {r.policy.name: r.config for r in resolve_policies(ALL_POLICIES, None)}


def urn(type_: str, name: str) -> str:
    return f"urn:pulumi:test::proj::{type_}::{name}"


def resource_args(name: str, type_: str, props: Mapping[str, Any], *,
                  config: Mapping[str, Any] | None = None, resource_name: str = "res",
                  prov: PolicyProviderResource | None = None) -> ResourceValidationArgs:
    return ResourceValidationArgs(type_, wire_props(props), urn(type_, resource_name), resource_name,
                                  _options(), prov or provider(), _config(name, config), {})


def resource_violations(name: str, type_: str, props: Mapping[str, Any], *,
                        config: Mapping[str, Any] | None = None, resource_name: str = "res",
                        prov: PolicyProviderResource | None = None) -> list[str]:
    """Messages the one guardrail `name` reports for a resource."""
    policy = BY_NAME[name]
    assert isinstance(policy, ResourceValidationPolicy)
    messages: list[str] = []
    args = resource_args(name, type_, props, config=config, resource_name=resource_name, prov=prov)

    def report(message: str, _urn: str | None = None) -> None:
        messages.append(message)

    policy.validate(args, report)
    return messages


def fired(type_: str, props: Mapping[str, Any], *, config: Mapping[str, Mapping[str, Any]] | None = None,
          resource_name: str = "res", prov: PolicyProviderResource | None = None) -> dict[str, list[str]]:
    """What the whole pack's resource guardrails report for one resource: policy -> messages."""
    found: dict[str, list[str]] = {}
    wired = wire_props(props)
    prov = prov or provider()
    for policy in RESOURCE_POLICIES:
        args = ResourceValidationArgs(type_, wired, urn(type_, resource_name), resource_name, _options(), prov,
                                      _config(policy.name, (config or {}).get(policy.name)), {})
        messages = found.setdefault(policy.name, [])

        def report(message: str, _urn: str | None = None, sink: list[str] = messages) -> None:
            sink.append(message)

        policy.validate(args, report)
    return {name: messages for name, messages in found.items() if messages}


def stack_resources(resources: Sequence[StackSpec],
                    prov: PolicyProviderResource | None = None) -> list[PolicyResource]:
    built = []
    for index, spec in enumerate(resources):
        type_, props = spec[0], spec[1]
        logical = str(spec[2]) if len(spec) > 2 else f"r{index}"
        options = _options()
        if len(spec) > 3:
            options.ignore_changes = list(spec[3])
        built.append(PolicyResource(type_, wire_props(props), urn(type_, logical), logical,
                                    options, prov or provider(), None, [], {}))
    return built


def stack_violations(name: str, resources: Sequence[StackSpec], *,
                     config: Mapping[str, Any] | None = None,
                     prov: PolicyProviderResource | None = None) -> list[tuple[str, str | None]]:
    """resources: (type, props) or (type, props, logical name); region via props['region']."""
    policy = BY_NAME[name]
    assert isinstance(policy, StackValidationPolicy)
    found: list[tuple[str, str | None]] = []

    def report(message: str, urn_: str | None = None) -> None:
        found.append((message, urn_))

    policy.validate(StackValidationArgs(stack_resources(resources, prov), _config(name, config), {}), report)
    return found


def unknown_leaves(value: Any) -> Any:
    """The same shape with every scalar replaced by the engine's unknown sentinel."""
    if isinstance(value, Mapping):
        return {k: unknown_leaves(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [unknown_leaves(v) for v in value]
    return UNKNOWN


def unknown_top_level(value: Mapping[str, Any]) -> dict[str, Any]:
    return {k: UNKNOWN for k in value}
