"""Test-only additions to the Step Functions adapter: a call log and fault injection.

The adapter itself (what makes moto's interpreter run our ASL the way AWS does: aws-sdk
parameter/result casing, AWS error names, in-process Lambda handlers) lives in
`tools/local/sfn_adapter.py`, shared with the local run. This subclass records every
service call and can inject faults: `fail("iot", "attachPolicy", "InternalFailureException")`
makes the next matching call raise that AWS error.
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


class SfnAdapter(runtime.SfnAdapter):
    """The runtime adapter plus a call log (`calls`) and fault injection (`fail`)."""

    def __init__(self, lambda_handlers: dict[str, Handler] | None = None) -> None:
        super().__init__(lambda_handlers)
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()

    # -- faults and call log -------------------------------------------------------------

    def fail(self, service: str, action: str, code: str, *, skip: int = 0, times: int = 1,
             when: Callable[[dict[str, Any]], bool] | None = None) -> Fault:
        fault = Fault(service, action, code, when=when, skip=skip, times=times)
        self.faults.append(fault)
        return fault

    def calls_to(self, service: str, action: str) -> list[Call]:
        return [c for c in self.calls if c.service == service and c.action == action]

    def _before_call(self, service: str, action: str, parameters: dict[str, Any]) -> None:
        self._record_and_maybe_fail(service, action, parameters)

    def _record_and_maybe_fail(self, service: str, action: str, parameters: dict[str, Any]) -> None:
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
                raise _client_error(fault.code, action)
