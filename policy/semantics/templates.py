"""CloudFormation and OpenAPI documents as data: JSON or YAML text (CloudFormation's short
tags such as `!Ref` read as `{"Ref": ...}`), or an object; None when absent or unreadable."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml


class _TolerantLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation's short-form tags (`!Ref x` -> {"Ref": "x"},
    `!GetAtt a.b` -> {"Fn::GetAtt": "a.b"})."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    name = suffix if suffix == "Ref" or suffix == "Condition" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_TolerantLoader.add_multi_constructor("!", _tagged)


def load(value: Any) -> Mapping[str, Any] | None:
    """The document, or None when it is absent or not a JSON/YAML object."""
    if isinstance(value, Mapping):
        return value
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        try:
            parsed = yaml.load(value, Loader=_TolerantLoader)  # noqa: S506 - SafeLoader subclass
        except yaml.YAMLError:
            return None
    return parsed if isinstance(parsed, Mapping) else None


def resource_types(template: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """(logical id, Type) of a CloudFormation template's resources."""
    resources = template.get("Resources") if isinstance(template, Mapping) else None
    if not isinstance(resources, Mapping):
        return []
    return [(str(name), str(r.get("Type"))) for name, r in resources.items() if isinstance(r, Mapping)]
