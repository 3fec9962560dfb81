"""Typed stack configuration, parsed and validated once.

`parse_stack_config` turns the raw key/value pairs of a Pulumi stack into a frozen
`StackConfig`. It reports *every* problem at once (one line per problem, each naming the
key and the fix: `iot-multi-region:<key>: <problem>; <fix>`) by raising `ConfigError`, so
a bad stack fails before any resource is declared. Components receive `StackConfig` (or
parts of it); none of them reads `pulumi.Config` itself.

Each key has its own small parser in `KEYS` (key -> parser, required or not, the
`StackConfig` field it fills). Parsers run in table order and may read what earlier
parsers produced (`primaryRegion` reads `regions`), so a new key is one parser function,
one line in `KEYS` and one `StackConfig` field.

The capability registry (components/capabilities.py) is an argument, not an import: the
registry imports the capabilities, and they import what config imports, never config's
caller. The checks of the device domain against its zone and of the CA certificate live
beside DNS and X.509 (components/dns.py, components/x509.py); config only calls them.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Protocol

from components.dns import device_domain_zone_problem
from components.edge.cas import DeviceCas, single
from components.edge.cas import parse as parse_device_cas
from components.edge.settings import IotAccountSettings
from components.edge.settings import parse as parse_account_settings
from components.facts import (
    DEFAULT_TLS_SECURITY_POLICY,
    PROJECT,
    TLS_SECURITY_POLICIES,
    full_key,
)
from components.monitoring.settings import AlertSettings
from components.monitoring.settings import parse as parse_alert_settings
from components.naming import StackNames
from components.x509 import ca_certificate_problems

Environment = Literal["dev", "prod"]
ServerCertificateMode = Literal["acm", "imported"]

# CloudWatch Logs accepts only these retention values.
LOG_RETENTION_DAYS: tuple[int, ...] = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
    2557, 2922, 3288, 3653,
)
DEFAULT_LOG_RETENTION_DAYS = 365

_APP_NAME = re.compile(r"^[a-z][a-z0-9-]{1,23}[a-z0-9]$")
_HOSTED_ZONE_ID = re.compile(r"^Z[A-Z0-9]{1,31}$")
_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_TAG_KEY = re.compile(r"^[\w.:/=+\-@ ]{1,128}$")
_ACM_ARN = re.compile(r"^arn:aws[a-z-]*:acm:([a-z0-9-]+):\d{12}:certificate/[0-9a-f-]{36}$")
_README = "(see README, 'Stack configuration')"


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
    # The hosted zone's name when configured: deviceDomain was then checked against it
    # offline; when None, the program looks the zone up at deploy time (components/dns.py).
    hosted_zone_name: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    log_retention_days: int = DEFAULT_LOG_RETENTION_DAYS
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
    # Who is subscribed to every region's alert topic (components/monitoring/settings.py).
    alert_settings: AlertSettings = field(default_factory=AlertSettings)
    # `caCertificates` (components/edge/cas.py) when a rotation is configured; None: the one
    # CA of caCertificatePem(File). `device_cas` is the list either way.
    ca_certificates: DeviceCas | None = None
    # The AWS provider's `aws:allowedAccountIds`: the only accounts the stack may deploy to,
    # and the home account(s) the policy pack judges cross-account grants against.
    allowed_account_ids: tuple[str, ...] = ()
    # The installer web app's hosting (components/installer_web/settings.py); None: no site.
    installer_web: Any = None
    # Names an enabled capability's settings add to the hosted zone ("cvm.provisioningDomain"
    # -> domain), from the settings' optional `domains_in_zone()`.
    capability_domains: Mapping[str, str] = field(default_factory=dict)

    @property
    def device_cas(self) -> DeviceCas:
        """Our device CAs; `ca_certificate_pem` is always the issuing one."""
        return self.ca_certificates or single(self.ca_certificate_pem)

    @property
    def web_origins(self) -> tuple[str, ...]:
        """The https origins of the stack's installer web app (none when it has no site)."""
        if self.installer_web is None:
            return ()
        return (self.installer_web.origin(self.device_domain),)

    def domains_in_zone(self) -> dict[str, str]:
        """Every name the stack adds to its hosted zone, by the config key that sets it:
        each must sit strictly below the zone (components/dns.py)."""
        return {"deviceDomain": self.device_domain, **self.capability_domains}

    @property
    def replica_regions(self) -> tuple[str, ...]:
        """Every configured region except the primary, in configured order."""
        return tuple(r for r in self.regions if r != self.primary_region)

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"

    @property
    def names(self) -> StackNames:
        """The stack's physical names (components/naming.py, shared with the tools)."""
        return StackNames(self.app_name, self.environment)

    def resource_name(self, *parts: str) -> str:
        """A deterministic physical name: `<app>-<env>-<parts...>`."""
        return self.names.name(*parts)


# --- regions ------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _endpoint_partitions() -> list[dict[str, Any]]:
    """botocore's maintained endpoint data, read as a data file: importing boto3 would
    double the program's start-up time. Read once (1.2 MB of JSON)."""
    import importlib.util

    spec = importlib.util.find_spec("botocore")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("botocore is not installed; run `pip install -r requirements.txt`")
    data = Path(spec.submodule_search_locations[0]) / "data" / "endpoints.json"
    partitions: list[dict[str, Any]] = json.loads(data.read_text())["partitions"]
    return partitions


@lru_cache(maxsize=16)
def service_regions(service: str) -> frozenset[str]:
    """Regions of the `aws` partition that offer `service` (what boto3's
    `get_available_regions(service)` returns)."""
    partition = next(p for p in _endpoint_partitions() if p["partition"] == "aws")
    return frozenset(r for r in partition["services"].get(service, {}).get("endpoints", {})
                     if r in partition["regions"])


def iot_regions() -> frozenset[str]:
    """Regions of the `aws` partition where AWS IoT Core exists."""
    return service_regions("iot")


@lru_cache(maxsize=64)
def unsupported_partition(region: str) -> str | None:
    """`AWS China`, `AWS GovCloud (US)`, ... when `region` belongs to a partition other
    than the standard one (this program's ARNs, endpoints and IAM assume `aws`)."""
    for partition in _endpoint_partitions():
        if partition["partition"] == "aws":
            continue
        if region in partition["regions"] or re.match(partition["regionRegex"], region):
            return f"{partition['partitionName']} (partition {partition['partition']})"
    return None


def _closest(value: str, choices: Iterable[str]) -> str:
    options = sorted(choices)
    match = difflib.get_close_matches(value, options, n=1)
    return f"did you mean {match[0]!r}?" if match else f"use one of {', '.join(options)}"


# --- the per-key parsers -------------------------------------------------------------------

class KnownCapability(Protocol):
    """What config parsing needs of a registered capability (components.context.Capability)."""

    @property
    def name(self) -> str: ...

    @property
    def config_key(self) -> str: ...

    @property
    def services(self) -> tuple[str, ...]: ...

    def parse_settings(self, raw: Any, report: Callable[[str, str], None]) -> Any: ...


class Report(Protocol):
    """Reports one problem with the key being parsed (or with `key`, a related one)."""

    def __call__(self, message: str, *, key: str | None = None) -> None: ...


@dataclass(frozen=True)
class ParseContext:
    """What a key parser may read besides its own value."""

    project_dir: Path
    now: dt.datetime
    # Results of the keys parsed before this one (None when absent-and-optional or invalid).
    parsed: Mapping[str, Any]
    capabilities: Sequence[KnownCapability] = ()  # the registry, in build order

    def get(self, name: str) -> Any:
        return self.parsed.get(name)


KeyParser = Callable[[Any, ParseContext, Report], Any]


def received(value: Any) -> str:
    """How a wrong value is described back to the user."""
    if isinstance(value, str):
        return f"got the plain string {value!r}"
    return f"got {type(value).__name__} {value!r}"


def list_forms(name: str, items: list[str]) -> str:
    """How to set list `name` with the Pulumi CLI and with `tools.plan --set`."""
    path_form = " && ".join(f"pulumi config set --path '{name}[{i}]' {item}"
                            for i, item in enumerate(items))
    return f"`{path_form}` (or, for tools.plan, `--set '{name}={json.dumps(items, separators=(',', ':'))}'`)"


def _split_words(text: str) -> list[str]:
    return [word for word in re.split(r"[\s,;\[\]\"']+", text) if word]


def _string(value: Any, report: Report) -> str | None:
    if not isinstance(value, str):
        report(f"must be a string, {received(value)}")
        return None
    return value.strip()


def parse_app_name(value: Any, ctx: ParseContext, report: Report) -> str | None:
    name = _string(value, report)
    if name and not _APP_NAME.match(name):
        report(f"{name!r} must be 3-25 lowercase letters, digits or '-', starting with a "
               "letter (it prefixes every physical name)")
        return None
    return name


def parse_environment(value: Any, ctx: ParseContext, report: Report) -> str | None:
    environment = _string(value, report)
    if environment and environment not in ("dev", "prod"):
        report(f"{environment!r} must be 'dev' or 'prod'")
        return None
    return environment


def parse_regions(value: Any, ctx: ParseContext, report: Report) -> tuple[str, ...] | None:
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        example = _split_words(value) if isinstance(value, str) else []
        report(f"must be a list of region names, {received(value)}; set it with "
               f"{list_forms('regions', example or ['eu-west-1', 'us-west-2'])}")
        return None
    if not value:
        report("must name at least one region")
        return None
    known = iot_regions()
    seen: set[str] = set()
    for region in value:
        if region in seen:
            report(f"{region!r} is listed twice; list each region once")
        seen.add(region)
        if region in known:
            continue
        partition = unsupported_partition(region)
        if partition:
            report(f"{region!r} is in {partition}, which this program does not support; "
                   "use regions of the standard aws partition")
        else:
            report(f"{region!r} is not an AWS region with IoT Core; {_closest(region, known)}")
    # Returned even when an entry is wrong, so primaryRegion and the per-region maps are
    # still checked against it (every problem at once).
    return tuple(dict.fromkeys(value))


def parse_primary_region(value: Any, ctx: ParseContext, report: Report) -> str | None:
    primary = _string(value, report)
    regions = ctx.get("regions")
    if primary and regions and primary not in regions:
        report(f"{primary!r} is not in regions {list(regions)}; add it to regions or pick one "
               "of them")
        return None
    return primary


def _dns_name(value: str) -> str:
    return value.lower().rstrip(".")


def _is_dns_name(name: str, min_labels: int) -> bool:
    labels = name.split(".")
    return (len(labels) >= min_labels and len(name) <= 253
            and all(_DNS_LABEL.match(label) for label in labels))


def parse_device_domain(value: Any, ctx: ParseContext, report: Report) -> str | None:
    text = _string(value, report)
    if text is None:
        return None
    domain = _dns_name(text)
    if not _is_dns_name(domain, min_labels=3):
        report(f"{domain!r} is not a valid subdomain name; use a name like iot.example.com "
               "inside your hosted zone")
        return None
    return domain


def parse_hosted_zone_id(value: Any, ctx: ParseContext, report: Report) -> str | None:
    zone = _string(value, report)
    if zone and not _HOSTED_ZONE_ID.match(zone):
        report(f"{zone!r} is not a Route53 hosted zone id; it looks like Z0123456789ABCDEFGHIJ "
               "(`aws route53 list-hosted-zones`)")
        return None
    return zone


def parse_hosted_zone_name(value: Any, ctx: ParseContext, report: Report) -> str | None:
    """Optional: lets deviceDomain be checked against its zone offline (else at deploy time)."""
    if value is None:
        return None
    text = _string(value, report)
    if text is None:
        return None
    zone = _dns_name(text)
    if not _is_dns_name(zone, min_labels=2):
        report(f"{zone!r} is not a DNS zone name; give the hosted zone's name, e.g. example.com "
               "(`aws route53 get-hosted-zone --id <hostedZoneId>`)")
        return None
    domain = ctx.get("deviceDomain")
    problem = device_domain_zone_problem(domain, zone) if domain else None
    if problem:
        report(problem, key="deviceDomain")
        return None
    return zone


def parse_tags(value: Any, ctx: ParseContext, report: Report) -> dict[str, str] | None:
    if value is None:
        return {}
    if not isinstance(value, dict):
        report(f"must be a map of tag name to string value, {received(value)}; e.g. "
               "`pulumi config set --path 'tags.owner' iot-platform` (or, for tools.plan, "
               "`--set 'tags={\"owner\":\"iot-platform\"}'`)")
        return None
    tags: dict[str, str] = {}
    ok = True
    for tag_key, tag_value in value.items():
        if not isinstance(tag_value, str) or not _TAG_KEY.match(str(tag_key)):
            report(f"tag {tag_key!r}: keys need 1-128 tag characters and values must be strings")
            ok = False
        elif str(tag_key).lower().startswith("aws:"):
            report(f"tag {tag_key!r}: the 'aws:' prefix is reserved by AWS")
            ok = False
        else:
            tags[str(tag_key)] = tag_value
    return tags if ok else None


def parse_log_retention_days(value: Any, ctx: ParseContext, report: Report) -> int | None:
    if value is None:
        return DEFAULT_LOG_RETENTION_DAYS
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value not in LOG_RETENTION_DAYS:
        report(f"{value!r} is not a CloudWatch Logs retention; use one of "
               f"{', '.join(map(str, LOG_RETENTION_DAYS))}")
        return None
    return value


def parse_tls_security_policy(value: Any, ctx: ParseContext, report: Report) -> str | None:
    if value is None:
        return DEFAULT_TLS_SECURITY_POLICY
    policy = _string(value, report)
    if policy is not None and policy not in TLS_SECURITY_POLICIES:
        report(f"{policy!r} is not allowed; use one of {', '.join(TLS_SECURITY_POLICIES)} "
               "(TLS 1.2+, AWS's exact casing)")
        return None
    return policy


def parse_server_certificate_mode(value: Any, ctx: ParseContext, report: Report) -> str | None:
    if value is None:
        return "acm"
    mode = _string(value, report)
    if mode is not None and mode not in ("acm", "imported"):
        report(f"{mode!r} must be 'acm' (ACM-issued, DNS-validated) or 'imported'")
        return None
    return mode


def parse_imported_server_certificate_arns(value: Any, ctx: ParseContext,
                                           report: Report) -> dict[str, str] | None:
    """Region -> imported ACM certificate; every region needs one in `imported` mode."""
    value = {} if value is None else value
    mode, regions = ctx.get("serverCertificateMode"), ctx.get("regions") or ()
    if not isinstance(value, dict):
        report(f"must be a map of region to ACM certificate ARN, {received(value)}")
        return None
    if mode != "imported":
        if value and mode == "acm":
            report("is set but serverCertificateMode is 'acm'; set serverCertificateMode to "
                   "'imported' or remove the ARNs")
            return None
        return {}
    arns: dict[str, str] = {}
    ok = True
    for region in regions:
        arn = value.get(region)
        match = _ACM_ARN.match(arn) if isinstance(arn, str) else None
        if match is None:
            report(f"needs an ACM certificate ARN for {region!r} (`pulumi config set --path "
                   f"'importedServerCertificateArns.{region}' arn:aws:acm:...`)")
            ok = False
        elif match.group(1) != region:
            report(f"the ARN for {region!r} is in {match.group(1)!r}; ACM certificates are "
                   f"regional, import it in {region!r}")
            ok = False
        else:
            arns[region] = match.group(0)
    return arns if ok else None


def parse_imported_validation_certificate_arns(value: Any, ctx: ParseContext,
                                               report: Report) -> dict[str, str] | None:
    value = {} if value is None else value
    mode, regions = ctx.get("serverCertificateMode"), list(ctx.get("regions") or ())
    if not isinstance(value, dict):
        report(f"must be a map of region to ACM certificate ARN, {received(value)}")
        return None
    if value and mode != "imported":
        report("is only used with serverCertificateMode 'imported'; remove it")
        return None
    arns: dict[str, str] = {}
    ok = True
    for region, arn in sorted(value.items()):
        match = _ACM_ARN.match(arn) if isinstance(arn, str) else None
        if region not in regions:
            report(f"{region!r} is not in regions {regions}; remove it or add the region")
        elif match is None:
            report(f"the value for {region!r} is not an ACM certificate ARN (a public "
                   "certificate for deviceDomain, requested in ACM)")
        elif match.group(1) != region:
            report(f"the ARN for {region!r} is in {match.group(1)!r}; request the certificate "
                   f"in {region!r}")
        else:
            arns[region] = arn
            continue
        ok = False
    return arns if ok else None


def parse_ca_certificate_pem(value: Any, ctx: ParseContext, report: Report) -> str | None:
    """The CA certificate inline; checked together with caCertificatePemFile (next key)."""
    if value is None:
        return None
    return _string(value, report)


def _read_ca_pem(path_text: str | None, inline: str | None, key: str, ctx: ParseContext,
                 report: Report, *, allow_expired: bool = False) -> str | None:
    """One CA certificate from a file (relative to the project) or inline, checked; problems
    are reported under `key` (a full key name, or a `caCertificates[i]` path)."""
    if path_text:
        path = Path(path_text)
        if not path.is_absolute():
            path = ctx.project_dir / path
        try:
            pem = path.read_text()
        except OSError as err:
            report(f"cannot read {path_text!r} ({err.strerror}); point it at the intermediate "
                   "CA certificate PEM", key=key)
            return None
        except UnicodeDecodeError:
            report(f"{path_text!r} is not PEM text (DER?); convert it with `openssl x509 "
                   f"-inform DER -in {path_text} -out ca.pem` and point the key at ca.pem", key=key)
            return None
        source = f"file {path_text!r}"
    else:
        pem, source = str(inline), ""
    if "PRIVATE KEY" in pem:
        report("contains a private key; the CA private key must never enter Pulumi config or "
               "state - give the certificate only", key=key)
        return None
    problems = ca_certificate_problems(pem, full_key(key), ctx.now, source)
    if allow_expired:  # a CA being retired may well have expired: that is why it goes
        problems = [p for p in problems if "expired on" not in p]
    for line in problems:
        report(line.removeprefix(f"{full_key(key)}: "), key=key)
    return None if problems else pem


def parse_ca_certificates(value: Any, ctx: ParseContext, report: Report) -> DeviceCas | bool | None:
    """The CAs of a rotation (components/edge/cas.py); None when absent, False when invalid."""
    if value is None:
        return None

    def read(entry: Mapping[str, Any], where: str, report_field: Callable[[str, str], None],
             may_be_expired: bool) -> str | None:
        path_text, inline = entry.get("pemFile"), entry.get("pem")
        if (path_text is None) == (inline is None) or not isinstance(path_text or inline, str):
            report_field(where, "give exactly one of pemFile (a path) or pem (the certificate)")
            return None
        return _read_ca_pem(path_text, inline, f"caCertificates{where}", ctx, report,
                            allow_expired=may_be_expired)

    parsed = parse_device_cas(value, read, lambda field_name, message: report(
        message, key=f"caCertificates{field_name}" if field_name else None))
    return parsed if parsed is not None else False


def parse_ca_certificate_pem_file(value: Any, ctx: ParseContext, report: Report) -> str | None:
    """The device CA's certificate: from this file, or inline from caCertificatePem, or the
    issuing CA of caCertificates."""
    inline = ctx.get("caCertificatePem")
    path_text = None if value is None else _string(value, report)
    if value is not None and path_text is None:
        return None
    rotation = ctx.get("caCertificates")
    if rotation is not None:
        if inline or path_text:
            report("set either caCertificates or caCertificatePem(File), not both; move this "
                   "CA into caCertificates (name it `ca` to keep its resources)",
                   key="caCertificates")
            return None
        return rotation.issuing.pem if isinstance(rotation, DeviceCas) else None
    if inline and path_text:
        report("set either caCertificatePem or caCertificatePemFile, not both "
               "(`pulumi config rm` one of them)", key="caCertificatePem")
        return None
    if not inline and not path_text:
        report("missing; set the intermediate CA certificate with "
               "`pulumi config set caCertificatePemFile <path-to-ca.pem>`")
        return None
    key = "caCertificatePemFile" if path_text else "caCertificatePem"
    return _read_ca_pem(path_text, inline, key, ctx, report)


def parse_capabilities(value: Any, ctx: ParseContext, report: Report) -> tuple[str, ...] | None:
    """The enabled per-region capabilities (default: every registered one), in build order."""
    known = [c.name for c in ctx.capabilities]
    if value is None:
        return tuple(known)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        example = _split_words(value) if isinstance(value, str) else []
        report(f"must be a list of capability names, {received(value)}; set it with "
               f"{list_forms('capabilities', example or known[:1])}")
        return None
    enabled: list[str] = []
    ok = True
    for name in value:
        if name not in known:
            report(f"{name!r} is not a capability; {_closest(name, known)}")
            ok = False
        elif name in enabled:
            report(f"{name!r} is listed twice; list it once")
            ok = False
        else:
            enabled.append(name)
    # Registry order is the build order.
    return tuple(name for name in known if name in enabled) if ok else None


def parse_iot_account_settings(value: Any, ctx: ParseContext,
                               report: Report) -> IotAccountSettings:
    """Who owns the account-wide IoT settings of each region (components/edge/settings.py)."""
    return parse_account_settings(
        value, lambda field_name, message: report(
            message, key=f"iotAccountSettings.{field_name}" if field_name else None))


def parse_alerts(value: Any, ctx: ParseContext, report: Report) -> AlertSettings:
    """Subscriptions of every region's alert topic (components/monitoring/settings.py)."""
    return parse_alert_settings(
        value, lambda field_name, message: report(
            message, key=f"alerts.{field_name}" if field_name else None))


def parse_installer_web(value: Any, ctx: ParseContext, report: Report) -> Any:
    """The installer web app's hosting (components/installer_web/settings.py); None unless
    enabled. It serves the fleet-provisioning capability, which must be enabled too."""
    from components.installer_web.settings import parse_settings

    settings = parse_settings(value, lambda field_name, message: report(
        message, key=f"installerWeb.{field_name}" if field_name else None))
    if not settings.enabled:
        return None
    capabilities = ctx.get("capabilities")
    if capabilities is not None and "fleet_provisioning" not in capabilities:
        report("is enabled but capability 'fleet_provisioning' is not: the site is that "
               "capability's installer app; add it to capabilities or disable installerWeb")
        return None
    return settings


@dataclass(frozen=True)
class Key:
    """One stack config key: how to parse it and which StackConfig field it fills."""

    name: str
    parse: KeyParser
    field: str | None  # None: only read by a later key's parser
    required: bool = False


_ACCOUNT_ID = re.compile(r"^\d{12}$")
ALLOWED_ACCOUNT_IDS = "aws:allowedAccountIds"


def parse_allowed_account_ids(value: Any, ctx: ParseContext, report: Report) -> tuple[str, ...] | None:
    """The AWS provider's allow-list of accounts: 12-digit ids as strings (YAML would read an
    unquoted id as a number and drop leading zeros)."""
    fix = (f"list your account id(s) as quoted strings in the stack file, e.g. "
           f"`{ALLOWED_ACCOUNT_IDS}: [\"123456789012\"]` "
           f"(or, for tools.plan, `--set '{ALLOWED_ACCOUNT_IDS}=[\"123456789012\"]'`)")
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        report(f"must be a non-empty list of 12-digit account ids, {received(value)}; {fix}")
        return None
    bad = [v for v in value if not (isinstance(v, str) and _ACCOUNT_ID.match(v))]
    if bad:
        report(f"{', '.join(repr(b) for b in bad)}: not a 12-digit account id string; {fix}")
        return None
    if len(set(value)) != len(value):
        report(f"lists an account twice ({value}); list each account once")
        return None
    return tuple(value)


# In parse order: a parser may read the results of the keys above it.
KEYS: tuple[Key, ...] = (
    Key("appName", parse_app_name, "app_name", required=True),
    Key("environment", parse_environment, "environment", required=True),
    Key("regions", parse_regions, "regions", required=True),
    Key("primaryRegion", parse_primary_region, "primary_region", required=True),
    Key("deviceDomain", parse_device_domain, "device_domain", required=True),
    Key("hostedZoneId", parse_hosted_zone_id, "hosted_zone_id", required=True),
    Key("hostedZoneName", parse_hosted_zone_name, "hosted_zone_name"),
    Key("tags", parse_tags, "tags"),
    Key("logRetentionDays", parse_log_retention_days, "log_retention_days"),
    Key("tlsSecurityPolicy", parse_tls_security_policy, "tls_security_policy"),
    Key("serverCertificateMode", parse_server_certificate_mode, "server_certificate_mode"),
    Key("importedServerCertificateArns", parse_imported_server_certificate_arns,
        "imported_server_certificate_arns"),
    Key("importedValidationCertificateArns", parse_imported_validation_certificate_arns,
        "imported_validation_certificate_arns"),
    Key("caCertificates", parse_ca_certificates, "ca_certificates"),
    Key("caCertificatePem", parse_ca_certificate_pem, None),
    Key("caCertificatePemFile", parse_ca_certificate_pem_file, "ca_certificate_pem"),
    Key("capabilities", parse_capabilities, "capabilities"),
    Key("iotAccountSettings", parse_iot_account_settings, "iot_account_settings"),
    Key("alerts", parse_alerts, "alert_settings"),
    Key(ALLOWED_ACCOUNT_IDS, parse_allowed_account_ids, "allowed_account_ids"),
    Key("installerWeb", parse_installer_web, "installer_web"),
)
KNOWN_KEYS: tuple[str, ...] = tuple(k.name for k in KEYS)
REQUIRED_KEYS: tuple[str, ...] = tuple(k.name for k in KEYS if k.required)


def all_known_keys(capabilities: Sequence[KnownCapability]) -> tuple[str, ...]:
    """The stack's own keys plus each capability's settings section."""
    return KNOWN_KEYS + tuple(c.config_key for c in capabilities
                              if c.config_key not in KNOWN_KEYS)


# --- the whole config ----------------------------------------------------------------------

class _Problems:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, name: str, message: str) -> None:
        self.lines.append(f"{full_key(name)}: {message}")

    def reporter(self, name: str) -> Report:
        def report(message: str, *, key: str | None = None) -> None:
            self.add(key or name, message)
        return report


def as_structured(value: Any) -> Any:
    """Pulumi hands structured config to programs as JSON text; a blank value is absent."""
    if isinstance(value, str):
        stripped = value.strip()
        if not stripped:
            return None
        if stripped[:1] in ("[", "{"):
            try:
                return json.loads(stripped)
            except json.JSONDecodeError:
                return value
    return value


def unknown_key_problems(raw: Mapping[str, Any], report: Callable[[str, str], None],
                         capabilities: Sequence[KnownCapability]) -> None:
    known = all_known_keys(capabilities)
    for name in sorted(set(raw) - set(known)):
        namespace, _, short = name.rpartition(":")
        if namespace and namespace != ALLOWED_ACCOUNT_IDS.split(":")[0]:
            # A misspelt project namespace (read_pulumi_config keeps it for this message).
            guess = difflib.get_close_matches(short, known, n=1)
            report(name, f"unknown namespace {namespace!r}; this project's keys are "
                         f"'{PROJECT}:<key>'" + (f": did you mean '{PROJECT}:{guess[0]}'?"
                                                  if guess else ""))
            continue
        guess = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean '{guess[0]}'?" if guess else f"known keys: {', '.join(known)}"
        report(name, f"unknown key; {hint}")


def capability_settings(raw: Mapping[str, Any], enabled: tuple[str, ...] | None,
                        report: Callable[[str, str], None],
                        capabilities: Sequence[KnownCapability]) -> dict[str, Any]:
    """Each enabled capability's settings, parsed by its own parser from its section."""
    settings: dict[str, Any] = {}
    for capability in capabilities:
        section = raw.get(capability.config_key)
        if enabled is None:
            continue  # the capabilities list itself is wrong: reported already
        if capability.name not in enabled:
            if section is not None:
                report(capability.config_key, f"is set but capability {capability.name!r} is "
                       "not enabled; add it to capabilities or remove the key")
            continue

        def report_field(field_name: str, message: str, key: str = capability.config_key) -> None:
            report(f"{key}.{field_name}" if field_name else key, message)

        settings[capability.name] = capability.parse_settings(section, report_field)
    return settings


def parse_stack_config(
    raw: Mapping[str, Any],
    *,
    capabilities: Sequence[KnownCapability],
    project_dir: Path | str = ".",
    now: dt.datetime | None = None,
) -> StackConfig:
    """Validate raw stack config (keys without the project prefix) into a StackConfig;
    `capabilities` is the registry (components.capabilities.CAPABILITIES).

    Raises ConfigError listing every problem; never returns a partially valid config.
    """
    problems = _Problems()
    values = {k: as_structured(v) for k, v in raw.items()}
    parsed: dict[str, Any] = {}
    context = ParseContext(project_dir=Path(project_dir),
                           now=now or dt.datetime.now(dt.timezone.utc), parsed=parsed,
                           capabilities=tuple(capabilities))

    unknown_key_problems(values, problems.add, context.capabilities)
    for key in KEYS:
        value = values.get(key.name)
        if value is None and key.required:
            problems.add(key.name, f"missing; set it with `pulumi config set {key.name} <value>` "
                         f"{_README}")
            parsed[key.name] = None
            continue
        parsed[key.name] = key.parse(value, context, problems.reporter(key.name))
    settings = capability_settings(values, parsed["capabilities"], problems.add,
                                   context.capabilities)

    for capability in context.capabilities:  # a service the capability needs, in each region
        if capability.name not in (parsed["capabilities"] or ()):
            continue
        for service in capability.services:
            missing = [r for r in parsed["regions"] or () if r not in service_regions(service)]
            if missing:
                problems.add("regions", f"{', '.join(missing)} does not offer {service}, which "
                             f"capability {capability.name!r} needs in every region (botocore's "
                             f"endpoint data); choose other regions or remove {capability.name!r} "
                             "from capabilities")
    zone = parsed.get("hostedZoneName")
    capability_domains: dict[str, str] = {}
    for capability in context.capabilities:  # the names a capability adds to the zone
        names: Mapping[str, str] = getattr(settings.get(capability.name), "domains_in_zone",
                                           lambda: {})()
        for field_name, domain in sorted(names.items()):
            setting = f"{capability.config_key}.{field_name}"
            capability_domains[setting] = domain
            problem = device_domain_zone_problem(domain, zone) if zone else None
            if problem:
                problems.add(setting, problem)

    if problems.lines:
        raise ConfigError(problems.lines)
    fields = {key.field: parsed[key.name] for key in KEYS if key.field}
    return StackConfig(**fields, capability_settings=settings,
                       capability_domains=capability_domains)


def read_pulumi_config() -> dict[str, Any]:
    """This project's raw stack config (prefix stripped), plus the provider keys the program
    validates too (`aws:allowedAccountIds`, full key), as the Pulumi language host hands it to
    the program: the PULUMI_CONFIG environment variable, read with the SDK's public
    `get_config_env` (tools/harness.py hands config over the same way offline)."""
    from pulumi.runtime import get_config_env

    prefix = f"{PROJECT}:"
    given = get_config_env()
    raw = {k[len(prefix):]: v for k, v in given.items() if k.startswith(prefix)}
    if ALLOWED_ACCOUNT_IDS in given:
        raw[ALLOWED_ACCOUNT_IDS] = given[ALLOWED_ACCOUNT_IDS]
    for key, value in given.items():
        # Other namespaces belong to providers, except near-misses of ours and of the
        # account guard: kept so the parser names them instead of the stack silently
        # taking a default (or running unguarded).
        namespace = key.partition(":")[0]
        if key not in raw and not key.startswith(prefix) and (
                difflib.SequenceMatcher(None, namespace, PROJECT).ratio() >= 0.8
                or difflib.get_close_matches(key, [ALLOWED_ACCOUNT_IDS], cutoff=0.9)):
            raw[key] = value
    return raw
