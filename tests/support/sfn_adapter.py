"""Test-only additions to the Step Functions adapter: a call log and fault injection.

The adapter itself (what makes moto's interpreter run our ASL the way AWS does: aws-sdk
parameter/result casing, AWS error names, in-process Lambda handlers) lives in
`tools/local/sfn_adapter.py`, shared with the local run. This subclass records every
service call and can inject faults: `fail("iot", "attachPolicy", "InternalFailureException")`
makes the next matching call raise that AWS error, and
`before("iot", "attachPolicy", callback)` runs `callback(parameters)` just before the next
matching call (outside the adapter's lock, so it may even run another execution: that is
how tests stage a race at an exact point), and
`interrupt("iot", "updateCertificate")` lets the next matching call take effect and then
stops the execution there (as `StopExecution` or a timeout would: ABORTED, no Catch, no
rollback), which is how tests leave the registry the way an interrupted run does.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tools.local import sfn_adapter as runtime
from tools.local.sfn_adapter import (  # noqa: F401  (re-exported: tests import them from here)
    FakeLambdaContext,
    Handler,
    to_boto_parameters,
    to_sfn_result,
)

_client_error = runtime.client_error


@dataclass(frozen=True)
class Call:
    service: str  # as in the ASL resource: iot, dynamodb, lambda
    action: str  # as in the ASL resource: describeCertificate, putItem, invoke
    parameters: dict[str, Any]


@dataclass
class Fault:
    service: str
    action: str
    code: str
    when: Callable[[dict[str, Any]], bool] | None = None
    skip: int = 0  # matching calls to let through first
    times: int = 1  # how many matching calls fail (then the fault is spent)
    fired: int = 0
    interrupt: bool = False  # let the call happen, then stop the execution (no error)


@dataclass
class Hook:
    service: str
    action: str
    callback: Callable[[dict[str, Any]], None]
    when: Callable[[dict[str, Any]], bool] | None = None
    times: int = 1
    fired: int = 0


class SfnAdapter(runtime.SfnAdapter):
    """The runtime adapter plus a call log (`calls`) and fault injection (`fail`)."""

    def __init__(self, lambda_handlers: dict[str, Handler] | None = None) -> None:
        super().__init__(lambda_handlers)
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self.hooks: list[Hook] = []
        self._lock = threading.Lock()

    # -- faults and call log -------------------------------------------------------------

    def fail(self, service: str, action: str, code: str, *, skip: int = 0, times: int = 1,
             when: Callable[[dict[str, Any]], bool] | None = None) -> Fault:
        fault = Fault(service, action, code, when=when, skip=skip, times=times)
        self.faults.append(fault)
        return fault

    def before(self, service: str, action: str, callback: Callable[[dict[str, Any]], None],
               *, times: int = 1, when: Callable[[dict[str, Any]], bool] | None = None) -> Hook:
        """Run `callback(parameters)` just before the next `times` matching calls."""
        hook = Hook(service, action, callback, when=when, times=times)
        self.hooks.append(hook)
        return hook

    def interrupt(self, service: str, action: str, *, skip: int = 0,
                  when: Callable[[dict[str, Any]], bool] | None = None) -> Fault:
        """The next matching call takes effect, then its execution stops (ABORTED)."""
        fault = Fault(service, action, "Interrupted", when=when, skip=skip, interrupt=True)
        self.faults.append(fault)
        return fault

    def calls_to(self, service: str, action: str) -> list[Call]:
        return [c for c in self.calls if c.service == service and c.action == action]

    def _before_call(self, service: str, action: str, parameters: dict[str, Any]) -> bool:
        return self._record_and_maybe_fail(service, action, parameters) is not None

    def _record_and_maybe_fail(self, service: str, action: str,
                               parameters: dict[str, Any]) -> Fault | None:
        """Runs hooks, records the call; raises an injected error, or returns an interrupt."""
        for hook in self.hooks:
            with self._lock:
                due = ((hook.service, hook.action) == (service, action)
                       and hook.fired < hook.times
                       and (hook.when is None or hook.when(parameters)))
                if due:
                    hook.fired += 1
            if due:
                hook.callback(parameters)
        with self._lock:
            self.calls.append(Call(service, action, json.loads(json.dumps(parameters,
                                                                          default=str))))
            for fault in self.faults:
                if (fault.service, fault.action) != (service, action) or fault.fired >= fault.times:
                    continue
                if fault.when is not None and not fault.when(parameters):
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                fault.fired += 1
                if fault.interrupt:
                    return fault
                raise _client_error(fault.code, action)
        return None
