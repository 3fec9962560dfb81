"""The device edge of one region: domain, TLS, our CA, device policy, logging, latency DNS.
See README.md in this folder."""

from components.edge.component import DeviceEdge, DeviceEdgeArgs

__all__ = ["DeviceEdge", "DeviceEdgeArgs"]
