"""Settings of the `audit` capability (config key `audit`); plain data and a parser.

    iot-multi-region:audit:
      deviceCertificateExpiringDays: 30     # findings this many days before a certificate expires
      deviceCertificateAgeDays: 730         # opt-in: DEVICE_CERTIFICATE_AGE_CHECK (off when absent)
      mitigations: [deactivateRevokedDeviceCertificates]   # opt-in, default none
      resetOnDelete: false                  # see below

Who owns the region's account-wide audit configuration is `iotAccountSettings.auditConfiguration`
(manage | adopt | leave), like the other singletons. A managed configuration is *retained*
when the stack stops declaring it (removal of the capability or a region, `pulumi destroy`):
`DeleteAccountAuditConfiguration` would disable every check of the account in that region.
`resetOnDelete: true` says otherwise: deleting it then restores AWS's defaults (all checks
off), as `pulumi destroy` of a dedicated account wants.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from components.audit.checks import MITIGATIONS_BY_SETTING

FIELDS = ("deviceCertificateExpiringDays", "deviceCertificateAgeDays", "mitigations",
          "resetOnDelete")
# AWS's bounds for the two thresholds ("Device certificate expiring", "Device certificate
# age check" pages of the Device Defender guide): 30 to 3652 days; the expiry default is 30.
MIN_DAYS, MAX_DAYS = 30, 3652
DEFAULT_EXPIRING_DAYS = 30


@dataclass(frozen=True)
class AuditSettings:
    device_certificate_expiring_days: int = DEFAULT_EXPIRING_DAYS
    device_certificate_age_days: int | None = None
    mitigations: tuple[str, ...] = ()
    reset_on_delete: bool = False


def _days(raw: Mapping[str, Any], key: str, report: Callable[[str, str], None]) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_DAYS <= value <= MAX_DAYS:
        report(key, f"{value!r} must be a whole number of days from {MIN_DAYS} to {MAX_DAYS}")
        return None
    return value


def parse_settings(raw: Any, report: Callable[[str, str], None]) -> AuditSettings:
    if raw is None:
        return AuditSettings()
    if not isinstance(raw, Mapping):
        report("", f"must be a map with any of {', '.join(FIELDS)}, e.g. `pulumi config set "
               "--path 'audit.deviceCertificateExpiringDays' 45`")
        return AuditSettings()
    for name in sorted(set(raw) - set(FIELDS)):
        report(str(name), f"unknown setting; use one of {', '.join(FIELDS)}")
    expiring = _days(raw, "deviceCertificateExpiringDays", report)
    age = _days(raw, "deviceCertificateAgeDays", report)
    mitigations: list[str] = []
    chosen = raw.get("mitigations") or []
    if not isinstance(chosen, list) or not all(isinstance(m, str) for m in chosen):
        report("mitigations", f"must be a list of names from {', '.join(MITIGATIONS_BY_SETTING)}")
    else:
        for name in chosen:
            if name not in MITIGATIONS_BY_SETTING:
                report("mitigations", f"{name!r} is not a mitigation; use "
                       f"{', '.join(MITIGATIONS_BY_SETTING)}")
            elif name not in mitigations:
                mitigations.append(name)
    reset = raw.get("resetOnDelete", False)
    if isinstance(reset, str) and reset.lower() in ("true", "false"):
        reset = reset.lower() == "true"
    if not isinstance(reset, bool):
        report("resetOnDelete", f"{reset!r} must be true or false")
        reset = False
    return AuditSettings(
        device_certificate_expiring_days=expiring or DEFAULT_EXPIRING_DAYS,
        device_certificate_age_days=age, mitigations=tuple(mitigations), reset_on_delete=reset)
