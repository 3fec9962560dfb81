"""Fleet provisioning as AWS IoT and Cognito would run it, built from the *declared* stack,
for tests with moto in-process.

The emulation itself (declared template, hook, permission, roles, what AWS grants a claim, identity-pool
role mapping) is `tools/local/emulation/fleet_provisioning.py`, shared with the local run;
the event-source filter and stream shaping are `tools/local/emulation/event_sources.py`.
What is the tests' own: functions run by importing their declared handler directly, with the
declared environment patched into the process (`invoke`), and the hook's declared permission
checked with the Lambda emulation's `permits` before it runs.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

from tools.harness import RecordedResource
from tools.local.emulation import fleet_provisioning as core
from tools.local.emulation.event_sources import (
    filter_matches,
    read_stream,
    stream_event,
)
from tools.local.emulation.fleet_provisioning import (
    AccessDenied,
    AuthenticatorApp,
    Claim,
    ClaimApi,
    DeclaredFleet,
    IdentityPoolClient,
    IdentityPoolEmulation,
    Rejected,
    ScriptedInstaller,
)
from tools.local.emulation.lambdas import InvokeDenied, LambdaContext, permits

__all__ = ["AccessDenied", "AuthenticatorApp", "Claim", "ClaimApi", "DeclaredFleet", "FleetEmulator",
           "IdentityPoolClient", "IdentityPoolEmulation", "LambdaContext", "Rejected",
           "ScriptedInstaller", "declared_environment", "declared_handler", "filter_matches",
           "invoke", "read_stream", "stream_event"]


@contextmanager
def declared_environment(function: RecordedResource, region: str,
                         extra: Mapping[str, str] | None = None) -> Iterator[None]:
    variables = dict(function.inputs.get("environment", {}).get("variables", {}))
    with mock.patch.dict(os.environ, {**variables, "AWS_REGION": region,
                                      "AWS_DEFAULT_REGION": region, **(extra or {})}):
        yield


def declared_handler(function: RecordedResource) -> Callable[[Any, Any], Any]:
    """The function's `handler` setting (`package.module.function`) loaded from lambdas/."""
    module, _, name = str(function.inputs["handler"]).rpartition(".")
    return getattr(importlib.import_module(f"lambdas.{module}"), name)


def invoke(function: RecordedResource, region: str, event: Any,
           extra_environment: Mapping[str, str] | None = None) -> tuple[Any, float]:
    """Run the declared handler with its declared environment; (result, seconds)."""
    timeout = float(function.inputs["timeout"])
    context = LambdaContext(function_name=str(function.inputs["name"]),
                            invoked_function_arn=str(function.outputs["arn"]),
                            deadline=time.monotonic() + timeout)
    with declared_environment(function, region, extra_environment):
        started = time.monotonic()
        result = declared_handler(function)(event, context)
        return result, time.monotonic() - started


@dataclass
class FleetEmulator(core.FleetEmulator):
    """The shared emulation; the hook is the declared handler run in this process, allowed
    only by a declared permission for this template (Lambda's resource policy)."""

    def invoke_hook(self, hook: RecordedResource, event: dict[str, Any], *, source_arn: str,
                    source_account: str) -> tuple[Any, float]:
        if not permits([p.inputs for p in self.declared.hook_permissions],
                       function_name=str(hook.outputs["name"]),
                       function_arn=str(hook.outputs["arn"]), principal=core.IOT_PRINCIPAL,
                       source_arn=source_arn, source_account=source_account):
            raise InvokeDenied(f"no declared permission lets AWS IoT invoke {hook.name} "
                               f"for {source_arn}")
        return invoke(hook, self.region, event)
