"""What the site sends with every response: a strict Content-Security-Policy naming only
this stack's AWS endpoints (and the device's setup address), HSTS, no framing, no sniffing,
no referrer. One builder, used by the stack (CloudFront response headers policy) and by the
local run's site server, so the browser test runs under the policy the stack deploys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

# The AWS services the app calls in each region (config.json `endpoints`).
SERVICES: Mapping[str, str] = {
    "cognitoIdp": "cognito-idp",
    "cognitoIdentity": "cognito-identity",
    "iot": "iot",
    "dynamodb": "dynamodb",
}
HSTS_MAX_AGE_SECONDS = 63_072_000  # two years, the preload list's expectation
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=(), serial=()"


def regional_endpoints(region: str) -> dict[str, str]:
    """The public endpoints of `region` (standard aws partition)."""
    return {key: f"https://{service}.{region}.amazonaws.com" for key, service in SERVICES.items()}


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(connect: Iterable[str]) -> str:
    """Scripts, styles and images only from the site itself; connections only to the site
    (config.json) and the given origins; no plugins, no framing, no form posts, no <base>;
    DOM sinks only through Trusted Types (none are defined, so none may be used)."""
    origins = sorted({origin(url) for url in connect})
    directives = [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src " + " ".join(["'self'", *origins]),
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
    return "; ".join(directives)


def connect_origins(regions: Iterable[str], device_local_address: str | None) -> list[str]:
    urls = [url for region in regions for url in regional_endpoints(region).values()]
    if device_local_address:
        urls.append(device_local_address)
    return urls


def security_headers(csp: str) -> dict[str, str]:
    """Header name -> value, as the local site server sends them (CloudFront's response
    headers policy sets the same values in its typed form)."""
    return {
        "Content-Security-Policy": csp,
        "Strict-Transport-Security": f"max-age={HSTS_MAX_AGE_SECONDS}; includeSubDomains; preload",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Permissions-Policy": PERMISSIONS_POLICY,
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
    }
