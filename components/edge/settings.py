"""Who owns the account-wide AWS IoT settings of a region: config key `iotAccountSettings`.

Three things the device edge could declare are singletons of the *account and region*, not
of this stack: the registry event configuration, the logging options and the `AWSIotLogsV2`
log group. Declaring them overwrites what anything else in the account relies on, and what
the stack declared is retained when it stops declaring it (tests/test_singletons.py). So
ownership is a choice, per singleton (see components/edge/README.md, "Account-wide
settings"):

    iot-multi-region:iotAccountSettings:
      eventConfigurations: manage | adopt | leave
      loggingOptions: manage | leave
      iotLogGroup: manage | adopt | leave
      auditConfiguration: manage | adopt | leave

* `leave` (the default for all three, safe in a shared account): not declared at all.
* `manage`: this stack owns it - event types it does not use are turned *off*; logging is
  set to our level and role; the log group is created (KMS, retention).
* `adopt`: take over what exists without clobbering it - only the event types we need are
  turned on, the others stay as they are; the existing log group is imported as it is.

The fourth, the Device Defender audit configuration (`auditConfiguration`), is declared by the
`audit` capability (components/audit/): `manage` enables this design's checks (and turns the
others off), with our audit role and alert topic; `adopt` imports the existing configuration
as it is; `leave` declares none (the scheduled audit then needs our checks enabled by
whoever owns it). Both `manage` and `adopt` keep it when the stack stops declaring it unless
`audit.resetOnDelete` is true.

Plain data and a parser, no Pulumi: `components/config.py` calls `parse` once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Ownership = Literal["manage", "adopt", "leave"]

CONFIG_KEY = "iotAccountSettings"
CHOICES: Mapping[str, tuple[Ownership, ...]] = {
    "eventConfigurations": ("manage", "adopt", "leave"),
    # AWS keeps exactly one logging setting per region: there is nothing to adopt.
    "loggingOptions": ("manage", "leave"),
    "iotLogGroup": ("manage", "adopt", "leave"),
    "auditConfiguration": ("manage", "adopt", "leave"),
}


@dataclass(frozen=True)
class IotAccountSettings:
    event_configurations: Ownership = "leave"
    logging_options: Ownership = "leave"
    iot_log_group: Ownership = "leave"
    audit_configuration: Ownership = "leave"


_FIELDS = {"eventConfigurations": "event_configurations", "loggingOptions": "logging_options",
           "iotLogGroup": "iot_log_group", "auditConfiguration": "audit_configuration"}


def parse(raw: Any, report: Callable[[str, str], None]) -> IotAccountSettings:
    """The stack's `iotAccountSettings` section (None when absent); problems go to
    `report(field, message)` (field "" for the section itself), never raised."""
    if raw is None:
        return IotAccountSettings()
    if not isinstance(raw, Mapping):
        report("", f"must be a map of {', '.join(CHOICES)} to an ownership choice, e.g. "
               f"`pulumi config set --path '{CONFIG_KEY}.loggingOptions' manage`")
        return IotAccountSettings()
    chosen: dict[str, Ownership] = {}
    for name in sorted(set(raw) - set(CHOICES)):
        report(str(name), f"unknown setting; use one of {', '.join(CHOICES)}")
    for name, allowed in CHOICES.items():
        value = raw.get(name)
        if value is None:
            continue
        if value not in allowed:
            hint = ("; AWS keeps one logging setting per region, so 'manage' overwrites it and "
                    "'leave' keeps it" if name == "loggingOptions" and value == "adopt" else "")
            report(name, f"{value!r} is not one of {', '.join(allowed)}{hint}")
            continue
        chosen[_FIELDS[name]] = value
    return IotAccountSettings(**chosen)
