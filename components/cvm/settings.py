"""The `cvm` section of the stack config (optional; every field has a working default).

```yaml
iot-multi-region:cvm:
  provisioningDomain: provision.iot.example.com  # default: provision.<deviceDomain>
  wafRateLimit: 100            # requests per IP per 5 minutes (WAF rate-based rule)
  throttleRateLimit: 20        # stage steady-state requests per second
  throttleBurstLimit: 40       # stage burst
  legacyBatches: [B2019-07]    # batches whose devices may get a cloud-generated key pair
  thingNamePrefix: ""          # thing name = prefix + device_uid (the seed used "thing_")
  rootCaBundleFile: certs/device-domain-roots.pem  # serverCertificateMode imported only
  reservedConcurrency: 20      # optional cap on concurrent registrations per region
  successRateAlarmPercent: 90
  attemptsPerDeviceAlarm: 3
  apiGatewayAccount: leave     # manage: this stack sets API Gateway's CloudWatch role
```

`apiGatewayAccount`: API Gateway writes access logs with a role set once per account and
region (`aws.apigateway.Account`), a singleton like the edge's `iotAccountSettings`. `leave`
(default, safe in a shared account) declares nothing: the account must already have the role.
`manage`: this stack sets it to a role as AWS documents it (trusted by API Gateway, with the
managed `AmazonAPIGatewayPushToCloudWatchLogs`: the setting serves every API of the region),
and keeps setting and role when it stops declaring them (README, "Account-wide settings").
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.context import ReportProblem
from lambdas.contracts.cvm_device import BATCH_RULE, batch_problem

PROJECT_DIR = Path(__file__).resolve().parents[2]

_DOMAIN_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_THING_PREFIX = re.compile(r"[A-Za-z0-9:_-]{0,32}")
# The Lambda environment (all variables together) is limited to 4 KB.
MAX_BUNDLE_BYTES = 3072
WAF_RATE_LIMIT_RANGE = (10, 2_000_000_000)

FIELDS = ("provisioningDomain", "wafRateLimit", "throttleRateLimit", "throttleBurstLimit",
          "legacyBatches", "thingNamePrefix", "rootCaBundleFile", "reservedConcurrency",
          "successRateAlarmPercent", "attemptsPerDeviceAlarm", "apiGatewayAccount")
ACCOUNT_CHOICES = ("manage", "leave")


@dataclass(frozen=True)
class CvmSettings:
    provisioning_domain: str | None = None  # None: provision.<deviceDomain>
    waf_rate_limit: int = 100
    throttle_rate_limit: float = 20.0
    throttle_burst_limit: int = 40
    legacy_batches: tuple[str, ...] = ()
    thing_name_prefix: str = ""
    # PEM the function returns as `root_ca` instead of Amazon's roots (imported server
    # certificates from another CA); read from rootCaBundleFile at config time.
    root_ca_bundle_pem: str | None = None
    reserved_concurrency: int | None = None
    success_rate_alarm_percent: int = 90
    attempts_per_device_alarm: float = 3.0
    manage_api_gateway_account: bool = False

    def domain_for(self, device_domain: str) -> str:
        return self.provisioning_domain or f"provision.{device_domain}"

    def domains_in_zone(self) -> dict[str, str]:
        """A configured provisioning domain must sit below the stack's hosted zone (checked
        by components/config.py offline, components/dns.py at deploy time); the default,
        provision.<deviceDomain>, is below it whenever deviceDomain is."""
        return {"provisioningDomain": self.provisioning_domain} if self.provisioning_domain else {}


def _int(raw: dict[str, Any], name: str, low: int, high: int, report: ReportProblem
         ) -> int | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        report(name, f"{value!r} must be a whole number from {low} to {high}")
        return None
    return value


def _bundle(path_text: Any, report: ReportProblem, now: dt.datetime) -> str | None:
    from cryptography import x509

    if not isinstance(path_text, str) or not path_text.strip():
        report("rootCaBundleFile", "must be the path of a PEM file of CA certificates")
        return None
    path = Path(path_text)
    path = path if path.is_absolute() else PROJECT_DIR / path
    try:
        text = path.read_text()
    except OSError as error:
        report("rootCaBundleFile", f"cannot read {path_text!r} ({error.strerror}); point it at "
               "the root CA(s) of the device domain's server certificate")
        return None
    if "PRIVATE KEY" in text:
        report("rootCaBundleFile", "contains a private key; give the CA certificates only")
        return None
    try:
        certificates = x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        report("rootCaBundleFile", f"{path_text!r} holds no readable PEM certificate")
        return None
    if any(c.not_valid_after_utc <= now for c in certificates):
        report("rootCaBundleFile", "holds an expired certificate; devices would reject it")
    if len(text.encode()) > MAX_BUNDLE_BYTES:
        report("rootCaBundleFile", f"is larger than {MAX_BUNDLE_BYTES} bytes (the function "
               "environment's limit); keep only the roots that sign the server certificate")
        return None
    return text


def parse_settings(raw: Any, report: ReportProblem, *,
                   now: dt.datetime | None = None) -> CvmSettings:
    if raw is None:
        return CvmSettings()
    if not isinstance(raw, dict):
        report("", f"must be an object with the fields {', '.join(FIELDS)}")
        return CvmSettings()
    now = now or dt.datetime.now(dt.timezone.utc)
    for name in sorted(set(raw) - set(FIELDS)):
        guess = difflib.get_close_matches(name, FIELDS, n=1)
        hint = f"did you mean {guess[0]!r}?" if guess else f"known: {', '.join(FIELDS)}"
        report(name, f"unknown field; {hint}")

    domain = raw.get("provisioningDomain")
    if domain is not None:
        text = str(domain).lower().rstrip(".") if isinstance(domain, str) else ""
        labels = text.split(".")
        if len(labels) < 3 or len(text) > 253 \
                or not all(_DOMAIN_LABEL.fullmatch(x) for x in labels):
            report("provisioningDomain", f"{domain!r} is not a domain name inside the hosted "
                   "zone (e.g. provision.iot.example.com)")
            domain = None
        else:
            domain = text

    waf = _int(raw, "wafRateLimit", *WAF_RATE_LIMIT_RANGE, report)
    burst = _int(raw, "throttleBurstLimit", 1, 5000, report)
    rate_value = raw.get("throttleRateLimit")
    rate: float | None = None
    if rate_value is not None:
        if isinstance(rate_value, bool) or not isinstance(rate_value, (int, float)) \
                or not 0 < rate_value <= 10000:
            report("throttleRateLimit", f"{rate_value!r} must be a number of requests per "
                   "second above 0 (at most 10000)")
        else:
            rate = float(rate_value)

    batches: list[str] = []
    batches_value = raw.get("legacyBatches", [])
    if not isinstance(batches_value, list):
        report("legacyBatches", "must be a list of batch names")
    else:
        for batch in batches_value:
            if batch_problem(batch):
                report("legacyBatches", f"{batch!r} is not a batch name ({BATCH_RULE})")
            elif batch in batches:
                report("legacyBatches", f"{batch!r} is listed twice")
            else:
                batches.append(batch)

    prefix = raw.get("thingNamePrefix", "")
    if not isinstance(prefix, str) or not _THING_PREFIX.fullmatch(prefix):
        report("thingNamePrefix", f"{prefix!r} must be up to 32 thing-name characters "
               "(A-Z a-z 0-9 : _ -)")
        prefix = ""

    bundle = _bundle(raw["rootCaBundleFile"], report, now) if "rootCaBundleFile" in raw else None
    reserved = _int(raw, "reservedConcurrency", 1, 1000, report)
    percent = _int(raw, "successRateAlarmPercent", 1, 100, report)
    attempts_value = raw.get("attemptsPerDeviceAlarm")
    attempts: float | None = None
    if attempts_value is not None:
        if isinstance(attempts_value, bool) or not isinstance(attempts_value, (int, float)) \
                or attempts_value < 1:
            report("attemptsPerDeviceAlarm", f"{attempts_value!r} must be a number >= 1")
        else:
            attempts = float(attempts_value)

    account = raw.get("apiGatewayAccount", "leave")
    if account not in ACCOUNT_CHOICES:
        report("apiGatewayAccount", f"{account!r} is not one of {', '.join(ACCOUNT_CHOICES)}")
        account = "leave"

    defaults = CvmSettings()
    return CvmSettings(
        provisioning_domain=domain,
        waf_rate_limit=waf if waf is not None else defaults.waf_rate_limit,
        throttle_rate_limit=rate if rate is not None else defaults.throttle_rate_limit,
        throttle_burst_limit=burst if burst is not None else defaults.throttle_burst_limit,
        legacy_batches=tuple(batches),
        thing_name_prefix=prefix,
        root_ca_bundle_pem=bundle,
        reserved_concurrency=reserved,
        success_rate_alarm_percent=percent if percent is not None
        else defaults.success_rate_alarm_percent,
        attempts_per_device_alarm=attempts if attempts is not None
        else defaults.attempts_per_device_alarm,
        manage_api_gateway_account=account == "manage",
    )
