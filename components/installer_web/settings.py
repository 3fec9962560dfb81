"""The `installerWeb` section of the stack config: the installer web app's hosting, per stack.

    iot-multi-region:installerWeb:
      enabled: true                      # declare the site (default false)
      subdomain: install                 # the site is https://<subdomain>.<deviceDomain>
      deviceLocalAddress: https://setup.device.example.com/provision   # optional
      priceClass: PriceClass_100         # CloudFront price class

`deviceLocalAddress` is where "Send to device" POSTs the hand-over file (a device on its
setup network). The page is https, so browsers block a plain-http target as mixed content:
it must be https (a name the phone trusts) or loopback (a USB bridge on the installer's
laptop). Without it, the installer downloads the file and loads it into the device.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

PRICE_CLASSES = ("PriceClass_100", "PriceClass_200", "PriceClass_All")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class InstallerWebSettings:
    enabled: bool = False
    subdomain: str = "install"
    device_local_address: str | None = None
    price_class: str = "PriceClass_100"

    def site_domain(self, device_domain: str) -> str:
        return f"{self.subdomain}.{device_domain}"

    def origin(self, device_domain: str) -> str:
        return f"https://{self.site_domain(device_domain)}"


def device_address_problem(value: str) -> str | None:
    try:
        parts = urlsplit(value)
    except ValueError:
        return f"{value!r} is not a URL"
    if not parts.hostname:
        return f"{value!r} is not a URL with a host, e.g. https://setup.device.example.com/provision"
    if parts.username or parts.password:
        return "must not carry credentials"
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS):
        return None
    return (f"{value!r}: the site is https, so browsers block a plain-http device address as "
            "mixed content; use https:// with a name the phone trusts, or a loopback address")


def parse_settings(raw: Any, report: Callable[[str, str], None]) -> InstallerWebSettings:
    """Every problem reported as (field, message); defaults stand in for bad values."""
    if raw is None:
        return InstallerWebSettings()
    if not isinstance(raw, Mapping):
        report("", f"must be an object of settings (enabled, subdomain, deviceLocalAddress, "
                   f"priceClass), got {raw!r}")
        return InstallerWebSettings()
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "enabled":
            if not isinstance(value, bool):
                report(key, f"must be true or false, got {value!r}")
            else:
                values["enabled"] = value
        elif key == "subdomain":
            if not isinstance(value, str) or not _LABEL.match(value):
                report(key, f"must be one DNS label (a-z, 0-9, '-'), got {value!r}")
            else:
                values["subdomain"] = value
        elif key == "deviceLocalAddress":
            problem = device_address_problem(value) if isinstance(value, str) else \
                f"must be a URL string, got {value!r}"
            if problem:
                report(key, problem)
            else:
                values["device_local_address"] = value
        elif key == "priceClass":
            if value not in PRICE_CLASSES:
                report(key, f"must be one of {', '.join(PRICE_CLASSES)}, got {value!r}")
            else:
                values["price_class"] = value
        else:
            report(str(key), "is not an installerWeb setting; known: deviceLocalAddress, "
                             "enabled, priceClass, subdomain")
    return InstallerWebSettings(**values)
