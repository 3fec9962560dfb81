"""Who hears the alarms: config key `alerts` (plain data and a parser, no Pulumi).

    iot-multi-region:alerts:
      subscriptions:
        - protocol: email
          endpoint: iot-oncall@example.com
        - protocol: https
          endpoint: https://events.pagerduty.com/integration/<key>/enqueue

Every region has one alert topic (`<app>-<env>-<region>-alerts`, KMS): every CloudWatch alarm
of the region and the region's Device Defender audit findings publish to it, and each
subscription listed here is made on every region's topic. Email subscriptions must be
confirmed by their recipient (AWS sends a confirmation mail); until then nothing is
delivered, so the README's first-deploy checklist says to confirm them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

CONFIG_KEY = "alerts"

# SNS protocols an operator subscribes a person or an on-call tool with. `sqs`/`lambda` need
# an ARN; `sms` is left out on purpose (account-wide SMS sandbox and spend limits).
PROTOCOLS = ("email", "email-json", "https", "sqs", "lambda")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HTTPS = re.compile(r"^https://[^\s/]+(/\S*)?$")
_ARN = {
    "sqs": re.compile(r"^arn:aws:sqs:[a-z0-9-]+:\d{12}:[\w-]{1,80}$"),
    "lambda": re.compile(r"^arn:aws:lambda:[a-z0-9-]+:\d{12}:function:[\w-]{1,64}(:[\w$-]+)?$"),
}


@dataclass(frozen=True)
class Subscription:
    protocol: str
    endpoint: str


@dataclass(frozen=True)
class AlertSettings:
    subscriptions: tuple[Subscription, ...] = ()


def _endpoint_problem(protocol: str, endpoint: str) -> str | None:
    if protocol in ("email", "email-json") and not _EMAIL.match(endpoint):
        return f"{endpoint!r} is not an email address"
    if protocol == "https" and not _HTTPS.match(endpoint):
        return f"{endpoint!r} is not an https:// URL (SNS delivers alerts over TLS only here)"
    if protocol in _ARN and not _ARN[protocol].match(endpoint):
        return f"{endpoint!r} is not an {protocol} ARN of the standard aws partition"
    return None


def parse(raw: Any, report: Callable[[str, str], None]) -> AlertSettings:
    """The stack's `alerts` section (None when absent); problems go to `report(field, msg)`."""
    if raw is None:
        return AlertSettings()
    if not isinstance(raw, Mapping):
        report("", "must be a map with `subscriptions`, e.g. `pulumi config set --path "
               "'alerts.subscriptions[0].protocol' email` and `... 'alerts.subscriptions[0]."
               "endpoint' oncall@example.com`")
        return AlertSettings()
    for name in sorted(set(raw) - {"subscriptions"}):
        report(str(name), "unknown setting; the only one is `subscriptions`")
    entries = raw.get("subscriptions")
    if entries is None:
        return AlertSettings()
    if not isinstance(entries, list):
        report("subscriptions", "must be a list of {protocol, endpoint} maps")
        return AlertSettings()
    subscriptions: list[Subscription] = []
    for index, entry in enumerate(entries):
        where = f"subscriptions[{index}]"
        if not isinstance(entry, Mapping) or set(entry) != {"protocol", "endpoint"}:
            report(where, "must be a map with exactly `protocol` and `endpoint`")
            continue
        protocol, endpoint = entry["protocol"], entry["endpoint"]
        if protocol not in PROTOCOLS:
            report(f"{where}.protocol", f"{protocol!r} is not one of {', '.join(PROTOCOLS)}")
            continue
        problem = _endpoint_problem(protocol, endpoint) if isinstance(endpoint, str) else \
            f"must be a string, got {type(endpoint).__name__}"
        if problem:
            report(f"{where}.endpoint", problem)
            continue
        subscription = Subscription(protocol, endpoint)
        if subscription in subscriptions:
            report(where, f"{protocol} {endpoint} is listed twice; list it once")
            continue
        subscriptions.append(subscription)
    return AlertSettings(tuple(subscriptions))
