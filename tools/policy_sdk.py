"""Every non-public pulumi_policy / pulumi runtime API the offline policy engine relies on, in
one place, so an SDK upgrade breaks here (and in tests/policy/test_policy_sdk.py) rather than
somewhere in the engine.

The public pulumi_policy API covers writing policies; running them outside the Pulumi CLI
needs what the analyzer does inside: the protobuf round trip of props (numbers become floats,
maps and lists read-only proxies that raise on unknown values), the "not applicable" and
"unknown during preview" exceptions, the analyzer servicer (to compare our runner with it),
and the runtime's current stack/project (policies may ask `pulumi.get_stack()`).
Each name below is checked by the test against the versions it was written for.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from pulumi_policy.deserialize import deserialize_properties, serialize_properties
from pulumi_policy.policy import _NotApplicableError as NotApplicableError
from pulumi_policy.policy import _PolicyAnalyzerServicer as AnalyzerServicer
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

# The pulumi runtime's own internals are all in tools/pulumi_internals.py.
from tools.pulumi_internals import set_stack_and_project

# The releases these internals were read in (major.minor); the test fails on any other, so an
# upgrade of pulumi-policy or pulumi re-reads them (pulumi_policy/policy.py, proxy.py,
# deserialize.py; pulumi/runtime/settings.py) before anything else runs on them.
TESTED_RELEASES = {"pulumi_policy": ("1.21",), "pulumi": ("3.",)}

__all__ = ["AnalyzerServicer", "NotApplicableError", "TESTED_RELEASES", "UnknownValueError",
           "deserialize_properties", "installed_releases", "serialize_properties",
           "set_stack_and_project", "unknown_checking_proxy", "unknown_error_message"]


def installed_releases() -> dict[str, str]:
    return {"pulumi_policy": version("pulumi_policy"), "pulumi": version("pulumi")}


def unknown_error_message(error: Any) -> str:
    """The property path an UnknownValueError names (`string value at .policy ...`)."""
    return str(getattr(error, "message", error))
