"""Typed stack configuration, parsed and validated once.

`parse_stack_config` turns the raw key/value pairs of a Pulumi stack into a frozen
`StackConfig`. It reports *every* problem at once (one line per problem, each naming the
key and the fix) by raising `ConfigError`, so a bad stack fails before any resource is
declared. Components receive `StackConfig` (or parts of it); none of them reads
`pulumi.Config` itself.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from components.edge.settings import IotAccountSettings, parse as parse_iot_account_settings
from components.facts import DEFAULT_TLS_SECURITY_POLICY, TLS_SECURITY_POLICIES

PROJECT = "iot-multi-region"

Environment = Literal["dev", "prod"]
ServerCertificateMode = Literal["acm", "imported"]

# CloudWatch Logs accepts only these retention values.
LOG_RETENTION_DAYS: tuple[int, ...] = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
    2557, 2922, 3288, 3653,
)

_APP_NAME = re.compile(r"^[a-z][a-z0-9-]{1,23}[a-z0-9]$")
_HOSTED_ZONE_ID = re.compile(r"^Z[A-Z0-9]{1,31}$")
_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_TAG_KEY = re.compile(r"^[\w.:/=+\-@ ]{1,128}$")
_ACM_ARN = re.compile(r"^arn:aws[a-z-]*:acm:([a-z0-9-]+):\d{12}:certificate/[0-9a-f-]{36}$")

KNOWN_KEYS: tuple[str, ...] = (
    "appName",
    "environment",
    "regions",
    "primaryRegion",
    "deviceDomain",
    "hostedZoneId",
    "tags",
    "logRetentionDays",
    "caCertificatePem",
    "caCertificatePemFile",
    "tlsSecurityPolicy",
    "serverCertificateMode",
    "importedServerCertificateArns",
    "importedValidationCertificateArns",
    "capabilities",
    "iotAccountSettings",
)
REQUIRED_KEYS: tuple[str, ...] = (
    "appName",
    "environment",
    "regions",
    "primaryRegion",
    "deviceDomain",
    "hostedZoneId",
)


class ConfigError(Exception):
    """Every problem found in a stack's configuration, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class StackConfig:
    app_name: str
    environment: Environment
    regions: tuple[str, ...]
    primary_region: str
    device_domain: str
    hosted_zone_id: str
    ca_certificate_pem: str
    tags: Mapping[str, str] = field(default_factory=dict)
    log_retention_days: int = 365
    tls_security_policy: str = DEFAULT_TLS_SECURITY_POLICY
    server_certificate_mode: ServerCertificateMode = "acm"
    imported_server_certificate_arns: Mapping[str, str] = field(default_factory=dict)
    # Region -> publicly trusted ACM certificate proving we own deviceDomain; AWS IoT needs
    # it when that region's imported server certificate comes from a private CA.
    imported_validation_certificate_arns: Mapping[str, str] = field(default_factory=dict)
    # Enabled per-region capabilities (components/capabilities.py), in build order, and the
    # parsed settings of each (its own config section; None when it takes none).
    capabilities: tuple[str, ...] = ()
    capability_settings: Mapping[str, Any] = field(default_factory=dict)
    # Who owns the account-wide IoT settings (components/edge/settings.py).
    iot_account_settings: IotAccountSettings = field(default_factory=IotAccountSettings)

    @property
    def replica_regions(self) -> tuple[str, ...]:
        """Every configured region except the primary, in configured order."""
        return tuple(r for r in self.regions if r != self.primary_region)

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"

    def resource_name(self, *parts: str) -> str:
        """A deterministic physical name: `<app>-<env>-<parts...>`."""
        return "-".join((self.app_name, self.environment, *parts))


@lru_cache(maxsize=1)
def iot_regions() -> frozenset[str]:
    """Regions of the `aws` partition where AWS IoT Core exists, from botocore's maintained
    endpoint data (what boto3's `get_available_regions("iot")` returns).

    Read as a data file: importing boto3 would double the program's start-up time.
    """
    import importlib.util

    spec = importlib.util.find_spec("botocore")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("botocore is not installed; run `pip install -r requirements.txt`")
    data = Path(spec.submodule_search_locations[0]) / "data" / "endpoints.json"
    partition = next(p for p in json.loads(data.read_text())["partitions"]
                     if p["partition"] == "aws")
    return frozenset(r for r in partition["services"]["iot"]["endpoints"]
                     if r in partition["regions"])


def all_known_keys() -> tuple[str, ...]:
    """The stack's own keys plus each capability's settings section."""
    from components.capabilities import CAPABILITIES

    return KNOWN_KEYS + tuple(c.config_key for c in CAPABILITIES if c.config_key not in KNOWN_KEYS)


def _key(name: str) -> str:
    return f"{PROJECT}:{name}"


def _as_structured(value: Any) -> Any:
    """Pulumi hands structured config to programs as JSON text."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("[", "{"):
            try:
                return json.loads(stripped)
            except json.JSONDecodeError:
                return value
    return value


def _region_hint(value: str, choices: frozenset[str]) -> str:
    import difflib

    match = difflib.get_close_matches(value, sorted(choices), n=1)
    return f"did you mean {match[0]!r}?" if match else f"use one of {', '.join(sorted(choices))}"


def ca_certificate_problems(pem: str, key: str, now: dt.datetime) -> list[str]:
    """Why `pem` cannot be registered as our device CA (empty when it can)."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        return [f"{key}: not a PEM X.509 certificate; give the intermediate CA's certificate "
                "(`python -m tools.pki intermediate-ca` writes one)"]
    from components.x509 import is_ca_certificate

    problems: list[str] = []
    if not is_ca_certificate(cert):
        problems.append(f"{key}: certificate '{cert.subject.rfc4514_string()}' is not a CA "
                        "(basicConstraints CA:TRUE missing); give the intermediate CA certificate, "
                        "not a device or server certificate")
    if cert.not_valid_after_utc <= now:
        problems.append(f"{key}: CA certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}; "
                        "issue a new intermediate CA and update the stack config")
    elif cert.not_valid_before_utc > now:
        problems.append(f"{key}: CA certificate is not valid before "
                        f"{cert.not_valid_before_utc:%Y-%m-%d}; check the issuing clock")
    return problems


class _Problems:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, name: str, message: str) -> None:
        self.lines.append(f"{_key(name)}: {message}")


def _string(raw: Mapping[str, Any], name: str, problems: _Problems) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        problems.add(name, f"must be a string, got {type(value).__name__} {value!r}")
        return None
    return value.strip()


def _read_ca_pem(raw: Mapping[str, Any], project_dir: Path, problems: _Problems,
                 now: dt.datetime) -> str:
    inline = _string(raw, "caCertificatePem", problems)
    path_text = _string(raw, "caCertificatePemFile", problems)
    if inline and path_text:
        problems.add("caCertificatePem", "set either caCertificatePem or caCertificatePemFile, "
                     "not both (`pulumi config rm` one of them)")
        return ""
    if not inline and not path_text:
        problems.add("caCertificatePemFile", "missing; set the intermediate CA certificate with "
                     "`pulumi config set caCertificatePemFile <path-to-ca.pem>`")
        return ""
    if path_text:
        path = Path(path_text)
        if not path.is_absolute():
            path = project_dir / path
        try:
            pem = path.read_text()
        except OSError as err:
            problems.add("caCertificatePemFile", f"cannot read {path_text!r} ({err.strerror}); "
                         "point it at the intermediate CA certificate PEM")
            return ""
        key = "caCertificatePemFile"
    else:
        pem = inline or ""
        key = "caCertificatePem"
    if "PRIVATE KEY" in pem:
        problems.add(key, "contains a private key; the CA private key must never enter Pulumi "
                     "config or state - give the certificate only")
        return ""
    found = ca_certificate_problems(pem, _key(key), now)
    problems.lines.extend(found)
    return pem if not found else ""


def parse_stack_config(
    raw: Mapping[str, Any],
    *,
    project_dir: Path | str = ".",
    now: dt.datetime | None = None,
) -> StackConfig:
    """Validate raw stack config (keys without the project prefix) into a StackConfig.

    Raises ConfigError listing every problem; never returns a partially valid config.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    project_dir = Path(project_dir)
    problems = _Problems()
    raw = {k: _as_structured(v) for k, v in raw.items()}

    known_keys = all_known_keys()
    for name in sorted(set(raw) - set(known_keys)):
        import difflib

        guess = difflib.get_close_matches(name, known_keys, n=1)
        hint = f"did you mean '{guess[0]}'?" if guess else f"known keys: {', '.join(known_keys)}"
        problems.add(name, f"unknown key; {hint}")
    for name in REQUIRED_KEYS:
        if raw.get(name) in (None, ""):
            problems.add(name, f"missing; set it with `pulumi config set {name} <value>` "
                         "(see README, 'Stack configuration')")

    app_name = _string(raw, "appName", problems)
    if app_name and not _APP_NAME.match(app_name):
        problems.add("appName", f"{app_name!r} must be 3-25 lowercase letters, digits or '-', "
                     "starting with a letter (it prefixes every physical name)")

    environment = _string(raw, "environment", problems)
    if environment and environment not in ("dev", "prod"):
        problems.add("environment", f"{environment!r} must be 'dev' or 'prod'")

    regions_value = raw.get("regions")
    regions: list[str] = []
    if regions_value is not None:
        if not isinstance(regions_value, list) or not all(isinstance(r, str) for r in regions_value):
            problems.add("regions", "must be a list of region names, e.g. "
                         "`pulumi config set --path 'regions[0]' eu-west-1`")
        elif not regions_value:
            problems.add("regions", "must name at least one region")
        else:
            known = iot_regions()
            seen: set[str] = set()
            for region in regions_value:
                if region in seen:
                    problems.add("regions", f"{region!r} is listed twice; list each region once")
                seen.add(region)
                if region not in known:
                    problems.add("regions", f"{region!r} is not an AWS region with IoT Core; "
                                 f"{_region_hint(region, known)}")
            regions = list(dict.fromkeys(regions_value))

    primary = _string(raw, "primaryRegion", problems)
    if primary and regions and primary not in regions:
        problems.add("primaryRegion", f"{primary!r} is not in regions {regions}; add it to "
                     "regions or pick one of them")

    domain = _string(raw, "deviceDomain", problems)
    if domain is not None:
        domain = domain.lower().rstrip(".")
        labels = domain.split(".")
        if not domain:
            problems.add("deviceDomain", "is empty; set the device endpoint name, e.g. "
                         "iot.example.com")
        elif len(labels) < 3 or len(domain) > 253 or not all(_DNS_LABEL.match(lbl) for lbl in labels):
            problems.add("deviceDomain", f"{domain!r} is not a valid subdomain name; use a name "
                         "like iot.example.com inside your hosted zone")

    zone = _string(raw, "hostedZoneId", problems)
    if zone and not _HOSTED_ZONE_ID.match(zone):
        problems.add("hostedZoneId", f"{zone!r} is not a Route53 hosted zone id; it looks like "
                     "Z0123456789ABCDEFGHIJ (`aws route53 list-hosted-zones`)")

    tags_value = raw.get("tags", {})
    tags: dict[str, str] = {}
    if not isinstance(tags_value, dict):
        problems.add("tags", "must be a map of tag name to string value")
    else:
        for tag_key, tag_value in tags_value.items():
            if not isinstance(tag_value, str) or not _TAG_KEY.match(str(tag_key)):
                problems.add("tags", f"tag {tag_key!r}: keys need 1-128 tag characters and values "
                             "must be strings")
            elif str(tag_key).lower().startswith("aws:"):
                problems.add("tags", f"tag {tag_key!r}: the 'aws:' prefix is reserved by AWS")
            else:
                tags[str(tag_key)] = tag_value

    retention_value = raw.get("logRetentionDays", 365)
    retention = 365
    if isinstance(retention_value, str) and retention_value.isdigit():
        retention_value = int(retention_value)
    if isinstance(retention_value, bool) or not isinstance(retention_value, int) \
            or retention_value not in LOG_RETENTION_DAYS:
        problems.add("logRetentionDays", f"{retention_value!r} is not a CloudWatch Logs retention; "
                     f"use one of {', '.join(map(str, LOG_RETENTION_DAYS))}")
    else:
        retention = retention_value

    tls_policy = _string(raw, "tlsSecurityPolicy", problems) or DEFAULT_TLS_SECURITY_POLICY
    if tls_policy not in TLS_SECURITY_POLICIES:
        problems.add("tlsSecurityPolicy", f"{tls_policy!r} is not allowed; use one of "
                     f"{', '.join(TLS_SECURITY_POLICIES)} (TLS 1.2+, AWS's exact casing)")

    mode = _string(raw, "serverCertificateMode", problems) or "acm"
    imported_value = raw.get("importedServerCertificateArns", {})
    imported: dict[str, str] = {}
    if mode not in ("acm", "imported"):
        problems.add("serverCertificateMode", f"{mode!r} must be 'acm' (ACM-issued, DNS-validated) "
                     "or 'imported'")
    if not isinstance(imported_value, dict):
        problems.add("importedServerCertificateArns", "must be a map of region to ACM certificate ARN")
    elif mode == "imported":
        for region in regions:
            arn = imported_value.get(region)
            match = _ACM_ARN.match(arn) if isinstance(arn, str) else None
            if match is None:
                problems.add("importedServerCertificateArns", f"needs an ACM certificate ARN for "
                             f"{region!r} (`pulumi config set --path "
                             f"'importedServerCertificateArns.{region}' arn:aws:acm:...`)")
            elif match.group(1) != region:
                problems.add("importedServerCertificateArns", f"the ARN for {region!r} is in "
                             f"{match.group(1)!r}; ACM certificates are regional, import it in "
                             f"{region!r}")
            else:
                imported[region] = match.group(0)
    elif imported_value:
        problems.add("importedServerCertificateArns", "is set but serverCertificateMode is 'acm'; "
                     "set serverCertificateMode to 'imported' or remove the ARNs")

    validation_value = raw.get("importedValidationCertificateArns", {})
    validation_arns: dict[str, str] = {}
    if not isinstance(validation_value, dict):
        problems.add("importedValidationCertificateArns", "must be a map of region to ACM "
                     "certificate ARN")
    elif validation_value and mode != "imported":
        problems.add("importedValidationCertificateArns", "is only used with "
                     "serverCertificateMode 'imported'; remove it")
    else:
        for region, arn in sorted(validation_value.items()):
            match = _ACM_ARN.match(arn) if isinstance(arn, str) else None
            if region not in regions:
                problems.add("importedValidationCertificateArns", f"{region!r} is not in "
                             f"regions {regions}; remove it or add the region")
            elif match is None:
                problems.add("importedValidationCertificateArns", f"the value for {region!r} "
                             "is not an ACM certificate ARN (a public certificate for "
                             "deviceDomain, requested in ACM)")
            elif match.group(1) != region:
                problems.add("importedValidationCertificateArns", f"the ARN for {region!r} is "
                             f"in {match.group(1)!r}; request the certificate in {region!r}")
            else:
                validation_arns[region] = arn

    ca_pem = _read_ca_pem(raw, project_dir, problems, now)
    capabilities, capability_settings = _capabilities(raw, problems)
    iot_account_settings = parse_iot_account_settings(
        raw.get("iotAccountSettings"),
        lambda f, m: problems.add(f"iotAccountSettings.{f}" if f else "iotAccountSettings", m))

    if problems.lines:
        raise ConfigError(problems.lines)
    assert app_name and environment and primary and domain and zone  # guaranteed by checks above
    return StackConfig(
        app_name=app_name,
        environment=environment,  # type: ignore[arg-type]
        regions=tuple(regions),
        primary_region=primary,
        device_domain=domain,
        hosted_zone_id=zone,
        ca_certificate_pem=ca_pem,
        tags=tags,
        log_retention_days=retention,
        tls_security_policy=tls_policy,
        server_certificate_mode=mode,  # type: ignore[arg-type]
        imported_server_certificate_arns=imported,
        imported_validation_certificate_arns=validation_arns,
        capabilities=capabilities,
        capability_settings=capability_settings,
        iot_account_settings=iot_account_settings,
    )


def _capabilities(raw: Mapping[str, Any],
                  problems: _Problems) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The enabled capabilities (default: every registered one) and each one's settings,
    parsed by the capability's own parser from its config section."""
    from components.capabilities import CAPABILITIES

    known = [c.name for c in CAPABILITIES]
    value = raw.get("capabilities")
    if value is None:
        enabled = list(known)
    elif not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.add("capabilities", f"must be a list of capability names, got {value!r}; e.g. "
                     f"`pulumi config set --path 'capabilities[0]' {known[0]}`")
        enabled = []
    else:
        enabled = []
        for name in value:
            if name not in known:
                problems.add("capabilities", f"{name!r} is not a capability; "
                             f"{_region_hint(name, frozenset(known))}")
            elif name in enabled:
                problems.add("capabilities", f"{name!r} is listed twice; list it once")
            else:
                enabled.append(name)
    settings: dict[str, Any] = {}
    for capability in CAPABILITIES:
        section = raw.get(capability.config_key)
        if capability.name not in enabled:
            if section is not None:
                problems.add(capability.config_key, f"is set but capability "
                             f"{capability.name!r} is not enabled; add it to capabilities or "
                             "remove the key")
            continue

        def report(field_name: str, message: str, key: str = capability.config_key) -> None:
            problems.add(f"{key}.{field_name}" if field_name else key, message)

        settings[capability.name] = capability.parse_settings(section, report)
    # Keep registry order: it is the build order.
    return tuple(name for name in known if name in enabled), settings


def read_pulumi_config() -> dict[str, Any]:
    """This project's raw stack config, as the Pulumi runtime holds it (prefix stripped)."""
    from pulumi.runtime import config as runtime_config

    prefix = f"{PROJECT}:"
    merged: dict[str, Any] = {}
    merged.update(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    return {k[len(prefix):]: v for k, v in merged.items() if k.startswith(prefix)}
