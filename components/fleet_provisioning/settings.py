"""The `fleetProvisioning` section of the stack config (optional; defaults fit dev and prod).

    iot-multi-region:fleetProvisioning:
      passwordMinimumLength: 14          # installers' passwords, 12..99
      temporaryPasswordValidityDays: 3   # admin-issued first password, 1..7
      refreshTokenValidityHours: 12      # how long an installer stays signed in, 1..720
      claimClientIdPrefix: provision-    # a claim connects as <prefix><SerialNumber>
      hookBudgetMilliseconds: 3000       # the hook's table budget, 500..4000 (AWS: 5 s total)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from components.context import ReportProblem
from lambdas.contracts import fleet_allow_list as allow_list


@dataclass(frozen=True)
class FleetSettings:
    password_minimum_length: int = 14
    temporary_password_validity_days: int = 3
    refresh_token_validity_hours: int = 12
    # the allow-list contract bounds it so that prefix + serial fits a 128-character client id
    claim_client_id_prefix: str = allow_list.DEFAULT_CLAIM_PREFIX
    hook_budget_milliseconds: int = 3000


# config key -> (field, inclusive range for integers)
_INTEGERS: Mapping[str, tuple[str, int, int]] = {
    "passwordMinimumLength": ("password_minimum_length", 12, 99),
    "temporaryPasswordValidityDays": ("temporary_password_validity_days", 1, 7),
    "refreshTokenValidityHours": ("refresh_token_validity_hours", 1, 720),
    "hookBudgetMilliseconds": ("hook_budget_milliseconds", 500, 4000),
}
_STRINGS = {"claimClientIdPrefix": "claim_client_id_prefix"}
# One window for hook and recorder, fixed by AWS's token life; a stack that still sets the old
# key is told why it went.
_RETIRED_CLAIM_WINDOW = "claimRetryAfterSeconds"


def parse_settings(raw: Any, report: ReportProblem) -> FleetSettings:
    """Every problem reported (field, message); the defaults stand in for bad values."""
    if raw is None:
        return FleetSettings()
    if not isinstance(raw, Mapping):
        report("", f"must be an object of settings, got {raw!r}")
        return FleetSettings()
    known = sorted([*_INTEGERS, *_STRINGS])
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _INTEGERS:
            name, low, high = _INTEGERS[key]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                report(key, f"must be a whole number from {low} to {high}, got {value!r}")
            else:
                values[name] = value
        elif key in _STRINGS:
            problem = allow_list.claim_prefix_problem(value)
            if problem:
                report(key, problem)
            else:
                values[_STRINGS[key]] = value
        elif key == _RETIRED_CLAIM_WINDOW:
            report(key, "is no longer a setting: the claim window is the certificate ownership "
                        "token's life (lambdas/contracts/fleet_allow_list.json, claim); remove it")
        else:
            report(str(key), f"is not a fleetProvisioning setting; known: {', '.join(known)}")
    return FleetSettings(**values)
