"""Amazon States Language definitions, kept as reviewable JSON files in each capability's folder
(e.g. `components/jitr/jitr.asl.json`).

A definition names its deploy-time values as `${name}` placeholders. `render` fills them:
a string that is exactly `"${name}"` becomes the parameter's JSON value (so numbers such as
retry intervals stay numbers and the file stays valid JSON); a placeholder inside a longer
string is replaced by the parameter's text. Any placeholder left unfilled, and any parameter
the definition does not use, is an error, so a typo cannot deploy a broken machine.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

Scalar = str | int | float | bool


class DefinitionError(ValueError):
    """The definition and its parameters do not match."""


def placeholders(path: Path) -> set[str]:
    """Every `${...}` name the definition file uses."""
    return set(_PLACEHOLDER.findall(path.read_text()))


def _substitute(node: Any, params: dict[str, Scalar], used: set[str]) -> Any:
    if isinstance(node, dict):
        return {key: _substitute(value, params, used) for key, value in node.items()}
    if isinstance(node, list):
        return [_substitute(value, params, used) for value in node]
    if not isinstance(node, str):
        return node
    whole = _PLACEHOLDER.fullmatch(node)
    if whole and whole.group(1) in params:
        used.add(whole.group(1))
        return params[whole.group(1)]

    def text(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in params:
            return match.group(0)  # reported below as unfilled
        used.add(key)
        value = params[key]
        return json.dumps(value) if isinstance(value, bool) else str(value)

    return _PLACEHOLDER.sub(text, node)


def render(path: Path, **params: Scalar) -> str:
    """The definition file with every placeholder filled, as compact JSON."""
    document = json.loads(path.read_text())
    used: set[str] = set()
    rendered = _substitute(document, dict(params), used)
    text = json.dumps(rendered, sort_keys=True, separators=(",", ":"))
    unfilled = sorted(set(_PLACEHOLDER.findall(text)))
    if unfilled:
        raise DefinitionError(f"{path.name}: no value for placeholder(s) {', '.join(unfilled)}")
    unused = sorted(set(params) - used)
    if unused:
        raise DefinitionError(f"{path.name}: parameter(s) {', '.join(unused)} not used by the "
                              "definition (typo?)")
    return text
