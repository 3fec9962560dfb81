"""Materialiser rows, one module per AWS service (see tools/local/materialise.py).

A row: `@materialiser("aws:<module>/<x>:<X>")` on `fn(resource, system) -> [Materialised]`,
which reads `system.state(resource)` (declared inputs + outputs, identifiers resolved),
creates the object with `system.client(service, region)` and calls
`system.resolver.learn(declared, runtime)` for identifiers moto assigns differently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

GLOBAL_SERVICE_REGION = "us-east-1"  # IAM and other global services: any region will do


def tag_list(tags: Mapping[str, Any] | None, key: str = "Key", value: str = "Value"
             ) -> list[dict[str, str]]:
    return [{key: str(k), value: str(v)} for k, v in sorted((tags or {}).items())]


def whole(value: Any) -> str:
    """Numbers arrive as floats from the engine (300.0); AWS attributes want '300'."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
