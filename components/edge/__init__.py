"""The device edge of one region: domain, TLS, our CA, device policy, logging, latency DNS.
See README.md in this folder.

`DeviceEdge`/`DeviceEdgeArgs` load on first use, so `components.edge.settings` (plain data,
parsed by components/config.py) can be imported without Pulumi.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from components.edge.component import DeviceEdge, DeviceEdgeArgs

__all__ = ["DeviceEdge", "DeviceEdgeArgs"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from components.edge import component

        return getattr(component, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
