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
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from components.installer_web.bundle import BUNDLE_FILES
from components.installer_web.headers import origin, security_headers
from components.installer_web.site_config import CONFIG_KEY
from tools.local.installer_web.servers import LocalServer, QuietHandler
from tools.local.system import LocalSystem

OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"
HEADERS_POLICY = "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy"


class SiteProblem(Exception):
    """The declared site cannot work as declared; the message says why."""


def declared_config(system: LocalSystem) -> dict[str, Any]:
    objects = [o for o in system.graph.of_type(OBJECT) if o.inputs.get("key") == CONFIG_KEY]
    if len(objects) != 1:
        raise SiteProblem(f"the stack declares {len(objects)} {CONFIG_KEY} objects, not one")
    return dict(json.loads(system.resolver(str(objects[0].inputs["content"]))))


def declared_csp(system: LocalSystem) -> str:
    policies = system.graph.of_type(HEADERS_POLICY)
    if len(policies) != 1:
        raise SiteProblem(f"the stack declares {len(policies)} response headers policies, not one")
    return str(policies[0].inputs["securityHeadersConfig"]["contentSecurityPolicy"]
               ["contentSecurityPolicy"])


def connect_sources(csp: str) -> list[str]:
    for directive in csp.split(";"):
        words = directive.split()
        if words and words[0] == "connect-src":
            return words[1:]
    return []


def localise(config: Mapping[str, Any], csp: str, endpoint: Any,
             device_address: str) -> tuple[dict[str, Any], str]:
    """(config, CSP) with AWS endpoints replaced by `endpoint(region, service key)` and the
    device address by `device_address`; raises SiteProblem if the declared CSP does not allow
    an endpoint the declared config uses."""
    allowed = set(connect_sources(csp))
    mapping: dict[str, str] = {}
    regions = []
    for region in config["regions"]:
        endpoints = {}
        for key, url in region["endpoints"].items():
            if origin(url) not in allowed:
                raise SiteProblem(f"the declared CSP's connect-src does not allow {origin(url)}, "
                                  f"which config.json names for {region['region']} {key}: the "
                                  "browser would block the app's own calls")
            endpoints[key] = endpoint(region["region"], key)
            mapping[origin(url)] = origin(endpoints[key])
        regions.append({**region, "endpoints": endpoints})
    declared_device = config.get("deviceLocalAddress")
    if declared_device:
        if origin(declared_device) not in allowed:
            raise SiteProblem(f"the declared CSP does not allow the device address {declared_device}")
        mapping[origin(declared_device)] = origin(device_address)
    sources = []
    for source in connect_sources(csp):
        if source.startswith("'"):
            sources.append(source)
        elif source in mapping:
            sources.append(mapping[source])
        else:
            raise SiteProblem(f"the declared CSP allows {source}, which config.json never uses")
    local_csp = "; ".join(
        "connect-src " + " ".join(dict.fromkeys(sources)) if d.split()[0] == "connect-src" else d
        for d in (part.strip() for part in csp.split(";")) if d)
    local = {**config, "regions": regions,
             "deviceLocalAddress": device_address if declared_device else None}
    return local, local_csp


class Site:
    def __init__(self, bundle: Path, config: Mapping[str, Any], csp: str) -> None:
        self.bundle = bundle
        self.config = json.dumps(config, indent=2).encode()
        self.headers = security_headers(csp)
        self.requests: list[str] = []
        self._server: LocalServer | None = None

    def start(self) -> str:
        site = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802 (stdlib name)
                site._get(self)

            do_HEAD = do_GET  # noqa: N815

        self._server = LocalServer(Handler, "installer-web-site")
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.url

    def stop(self) -> None:
        if self._server is not None:
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
        request.send_response(status)
        for name, value in {**self.headers, "Content-Type": content_type,
                            "Cache-Control": "no-cache", "Content-Length": str(len(body))}.items():
            request.send_header(name, value)
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(body)
