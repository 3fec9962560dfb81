"""CloudFormation and OpenAPI documents as data: JSON or YAML text (CloudFormation's short
tags such as `!Ref` read as `{"Ref": ...}`), or an object; None when absent or unreadable."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
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
    except (ValueError, RecursionError):
        try:
            parsed = yaml.load(value, Loader=_TolerantLoader)  # noqa: S506 - SafeLoader subclass
        except (yaml.YAMLError, ValueError, TypeError, RecursionError):
            return None  # e.g. `2020-13-45` read as a date, or nesting too deep to read
    return parsed if isinstance(parsed, Mapping) else None


def resource_types(template: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """(logical id, Type) of a CloudFormation template's resources."""
    resources = template.get("Resources") if isinstance(template, Mapping) else None
    if not isinstance(resources, Mapping):
        return []
    return [(str(name), str(r.get("Type"))) for name, r in resources.items() if isinstance(r, Mapping)]


class Unresolvable(ValueError):
    """An intrinsic function whose value the pack cannot know offline."""


_SUB = re.compile(r"\$\{([^}!][^}]*)\}")


def resolve(value: Any, parameters: Mapping[str, str]) -> Any:
    """A template value with its intrinsic functions evaluated: `Fn::Join`, `Fn::Sub`, `Ref`
    (parameters and pseudo parameters from `parameters`; a parameter it does not know, e.g. one
    the device sends when it provisions, becomes `*`: any value), `Fn::Select`. Anything else
    raises Unresolvable. Lists and mappings are resolved item by item."""
    if isinstance(value, Mapping):
        if len(value) == 1:
            (name, argument), = value.items()
            if name == "Ref":
                return parameters.get(str(argument), "*")
            if name == "Fn::Join" and isinstance(argument, Sequence) and len(argument) == 2:
                separator, parts = argument
                resolved = resolve(parts, parameters)
                if not isinstance(resolved, list):
                    raise Unresolvable("Fn::Join of something that is not a list")
                return str(separator).join(str(p) for p in resolved)
            if name == "Fn::Sub":
                text, local = (argument, {}) if isinstance(argument, str) else (
                    (argument[0], argument[1]) if isinstance(argument, Sequence) and len(argument) == 2
                    else (None, {}))
                if not isinstance(text, str) or not isinstance(local, Mapping):
                    raise Unresolvable("Fn::Sub takes a string or [string, variables]")
                names = {**parameters, **{str(k): str(resolve(v, parameters)) for k, v in local.items()}}
                return _SUB.sub(lambda m: names.get(m.group(1), "*"), text)
            if name == "Fn::Select" and isinstance(argument, Sequence) and len(argument) == 2:
                items = resolve(argument[1], parameters)
                try:
                    return items[int(str(argument[0]))]
                except (ValueError, IndexError, TypeError):
                    raise Unresolvable("Fn::Select out of range") from None
            if name.startswith("Fn::") or name == "Condition":
                raise Unresolvable(f"{name} cannot be evaluated offline")
        return {str(k): resolve(v, parameters) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [resolve(v, parameters) for v in value]
    return value
