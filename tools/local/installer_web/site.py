"""The built installer web app, served as CloudFront would serve it for this stack: the
bundle's files, the stack's own config.json and the stack's own security headers, with every
AWS endpoint (and the device's setup address) pointed at this machine.

Nothing is made up here: the config comes from the declared `config.json` object (declared
ids resolved to the run's ids), the Content-Security-Policy from the declared response
headers policy. Before pointing them elsewhere, the site checks that the declared CSP allows
every endpoint the declared config names, so a stack whose CSP would block its own app fails
the run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from components.installer_web.bundle import BUNDLE_FILES
from components.installer_web.headers import origin, security_headers
from components.installer_web.site_config import CONFIG_KEY
from tools.local.http_servers import LocalServer, reply
from tools.local.world import World

OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"
HEADERS_POLICY = "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy"


class SiteProblem(Exception):
    """The declared site cannot work as declared; the message says why."""


def _one(found: list[Any], what: str) -> Any:
    if len(found) != 1:
        raise SiteProblem(f"the stack declares {len(found)} {what}, not one")
    return found[0].inputs


def declared_config(world: World) -> dict[str, Any]:
    config = _one([o for o in world.graph.of_type(OBJECT) if o.inputs.get("key") == CONFIG_KEY], CONFIG_KEY)
    return dict(json.loads(world.resolver(str(config["content"]))))


def declared_csp(world: World) -> str:
    policy = _one(world.graph.of_type(HEADERS_POLICY), "response headers policies")
    return str(policy["securityHeadersConfig"]["contentSecurityPolicy"]["contentSecurityPolicy"])


def connect_sources(csp: str) -> list[str]:
    return next((d.split()[1:] for d in csp.split(";") if d.split()[:1] == ["connect-src"]), [])


def localise(config: Mapping[str, Any], csp: str, endpoint: Callable[[str, str], str],
             device_address: str) -> tuple[dict[str, Any], str]:
    """(config, CSP) with AWS endpoints replaced by `endpoint(region, service key)` and the
    device address by `device_address`; raises SiteProblem if the declared CSP does not allow
    an endpoint the declared config uses."""
    allowed, mapping, regions = set(connect_sources(csp)), {}, []
    for region in config["regions"]:
        for key, url in region["endpoints"].items():
            if origin(url) not in allowed:
                raise SiteProblem(f"the declared CSP's connect-src does not allow {origin(url)}, which "
                                  f"config.json names for {region['region']} {key}: the browser would "
                                  "block the app's own calls")
            mapping[origin(url)] = origin(endpoint(region["region"], key))
        regions.append({**region, "endpoints": {k: endpoint(region["region"], k) for k in region["endpoints"]}})
    declared_device = config.get("deviceLocalAddress")
    if declared_device:
        if origin(declared_device) not in allowed:
            raise SiteProblem(f"the declared CSP does not allow the device address {declared_device}")
        mapping[origin(declared_device)] = origin(device_address)
    unused = [s for s in connect_sources(csp) if not s.startswith("'") and s not in mapping]
    if unused:
        raise SiteProblem(f"the declared CSP allows {unused[0]}, which config.json never uses")
    sources = dict.fromkeys(mapping.get(s, s) for s in connect_sources(csp))
    local_csp = "; ".join("connect-src " + " ".join(sources) if d.split()[0] == "connect-src" else d
                          for d in (part.strip() for part in csp.split(";")) if d)
    return {**config, "regions": regions, "deviceLocalAddress": device_address if declared_device else None}, local_csp


class Site:
    def __init__(self, bundle: Path, config: Mapping[str, Any], csp: str) -> None:
        self.bundle, self.config = bundle, json.dumps(config, indent=2).encode()
        self.headers = security_headers(csp)
        self.requests: list[str] = []
        self._server = LocalServer("installer-web-site", self._get, ("GET", "HEAD"))
        self.url = self._server.url

    def stop(self) -> None:
        self._server.stop()

    def _get(self, request: BaseHTTPRequestHandler) -> None:
        path = request.path.split("?", 1)[0].lstrip("/") or "index.html"
        self.requests.append(path)
        if path == CONFIG_KEY:
            status, body, content_type = 200, self.config, "application/json"
        elif path in BUNDLE_FILES:
            status, body, content_type = 200, (self.bundle / path).read_bytes(), BUNDLE_FILES[path]
        else:  # CloudFront with OAC answers 403 for a key the bucket does not hold
            status, body, content_type = 403, b"AccessDenied", "text/plain"
        reply(request, status, body, {**self.headers, "Content-Type": content_type, "Cache-Control": "no-cache"})
