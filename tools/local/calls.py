"""Every AWS call made while a world is open, by whom, and the faults a scenario injects.

One botocore hook on every client created meanwhile (tests, tools, Lambda handlers, the
state-machine interpreter's SDK tasks) and on the clients the worlds share: calls are logged
with their region, API parameters and caller (`acting_as`); `fail`, `before`, `interrupt`,
`down` and `throttle` act on them. In-process stand-ins for AWS calls (a state machine's
`lambda:invoke`) pass `record` too.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import botocore.session
from botocore.exceptions import ClientError
from moto.core.botocore_stubber import BotocoreStubber

from tools.local.api_bounds import bound_problems, error_code, unused_placeholder_problems

Params = Mapping[str, Any]
# moto's backends are not thread-safe (listing a region's things while another thread creates
# one raises "OrderedDict mutated during iteration"); AWS serves concurrent calls. moto
# handles one request at a time here; answers the world gives itself (`answer`) stay outside.
_MOTO = threading.RLock()
Match = Callable[[Params], bool] | None
_acting = threading.local()
# The calls being logged: one world's at a time. A client's hooks log to whichever is active
# when it calls, so clients are shared by the worlds of a process (building one costs ~10 ms).
_ACTIVE: list[AwsCalls] = []


class RegionDown(ConnectionError):
    """A call reached a region the scenario took down."""


class Interrupted(Exception):
    """The call took effect; the state machine that made it stops here (ABORTED)."""


def client_error(code: str, operation: str, message: str = "injected by the scenario") -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": message},
                     "ResponseMetadata": {"HTTPStatusCode": 400, "RequestId": "injected"}}
    return ClientError(response, operation)


@contextlib.contextmanager
def acting_as(caller: str) -> Iterator[None]:
    """Calls made by this thread in the block are `caller`'s (a function, a state machine)."""
    previous = getattr(_acting, "caller", "")
    _acting.caller = caller
    try:
        yield
    finally:
        _acting.caller = previous


def _request(params: Params) -> dict[str, Any]:
    """What an answer sees of a request: a JSON body parsed, else the API parameters the
    caller gave (REST calls without a body, CBOR bodies). An answer returning None leaves
    the call to moto."""
    body = params.get("body")
    if isinstance(body, (bytes, str)) and body:
        try:
            parsed = json.loads(body)
            if isinstance(parsed, dict):
                return parsed
        except (ValueError, UnicodeDecodeError):
            pass
    return dict(getattr(_acting, "params", None) or {})


@dataclass(frozen=True)
class Call:
    region: str
    service: str  # botocore's, as in event names: iot, dynamodb, sfn, lambda
    operation: str  # API name: AttachPolicy, PutItem
    params: dict[str, Any]
    caller: str  # "" (the scenario or a tool), "lambda:<name>", "states:<machine>"


@dataclass
class Fault:
    operation: str
    code: str  # "" for a `before` callback or an interrupt
    when: Match = None
    skip: int = 0
    times: int = 1
    fired: int = 0
    callback: Callable[[Params], None] | None = None
    interrupt: bool = False
    by: str = ""  # only calls of this caller (prefix): "states:", "lambda:<name>"


@dataclass
class AwsCalls:
    calls: deque[Call] = field(default_factory=lambda: deque(maxlen=200_000))
    faults: list[Fault] = field(default_factory=list)
    down: set[str] = field(default_factory=set)
    throttle: Callable[[Call], None] | None = None  # raise to throttle a call
    answer: dict[str, Callable[[str, Params], dict[str, Any] | None]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- what a scenario asks for ------------------------------------------------------------

    def fail(self, operation: str, code: str, *, when: Match = None, skip: int = 0,
             times: int = 1, by: str = "") -> Fault:
        """The next `times` matching calls raise AWS error `code` (after `skip` others)."""
        return self._add(Fault(operation, code, when, skip, times, by=by))

    def before(self, operation: str, callback: Callable[[Params], None], *,
               when: Match = None, times: int = 1, by: str = "") -> Fault:
        """Run `callback(params)` just before the next matching call (no lock held)."""
        return self._add(Fault(operation, "", when, 0, times, callback=callback, by=by))

    def interrupt(self, operation: str, *, when: Match = None, skip: int = 0,
                  by: str = "") -> Fault:
        """The next matching call takes effect, then its state machine stops (ABORTED)."""
        return self._add(Fault(operation, "", when, skip, 1, interrupt=True, by=by))

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.calls.clear()
            self.down.clear()
            self.throttle = None

    def of(self, operation: str | None = None, *, region: str | None = None,
           service: str | None = None, caller: str | None = None) -> list[Call]:
        with self._lock:
            found = list(self.calls)
        return [c for c in found if (operation is None or c.operation == operation)
                and (region is None or c.region == region)
                and (service is None or c.service == service)
                and (caller is None or c.caller.startswith(caller))]

    def _add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def _due(self, kind: str, operation: str, params: Params) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                wanted = ("callback" if fault.callback else "interrupt" if fault.interrupt
                          else "fail")
                if (wanted != kind or fault.operation != operation or fault.fired >= fault.times
                        or not getattr(_acting, "caller", "").startswith(fault.by)):
                    continue
                if fault.when is not None and not fault.when(params):
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                fault.fired += 1
                return fault
        return None

    # -- every call --------------------------------------------------------------------------

    def record(self, region: str, service: str, operation: str, params: Params) -> None:
        """Log a call and apply the scenario to it: callbacks, regions down, throttling,
        injected errors (raised as AWS would)."""
        while (hook := self._due("callback", operation, params)) is not None:
            hook.callback(params)  # type: ignore[misc]
        call = Call(region, service, operation, dict(params), getattr(_acting, "caller", ""))
        with self._lock:
            self.calls.append(call)
        if region in self.down:
            raise RegionDown(f"{service}.{operation} called in {region}, which is down")
        if self.throttle is not None:
            self.throttle(call)
        fault = self._due("fail", operation, params)
        if fault is not None:
            raise client_error(fault.code, operation)
        _acting.interrupt = self._due("interrupt", operation, params) is not None

    def _before_parameters(self, region: str, event_name: str, params: Params, model: Any = None,
                           **_: Any) -> None:
        parts = event_name.split(".")
        _acting.params = params  # what an answer to this call sees (_request)
        self.record(region, parts[1], parts[2], params)
        problems = bound_problems(params, getattr(model, "input_shape", None), "")
        if parts[1] == "dynamodb":
            problems += unused_placeholder_problems(params)
        if problems:
            raise client_error(error_code(parts[1]), parts[2],
                               f"{len(problems)} validation error(s) detected: {'; '.join(problems)}")

    def _before_call(self, region: str, event_name: str, params: Params, **_: Any) -> Any:
        operation = event_name.split(".")[2]
        answer = self.answer.get(operation)
        if answer is None:
            return None
        answered = answer(region, _request(params))
        return None if answered is None else (mock.Mock(status_code=200), answered)

    @staticmethod
    def _after_call(event_name: str, **_: Any) -> None:
        if getattr(_acting, "interrupt", False):
            _acting.interrupt = False
            raise Interrupted(event_name.split(".")[2])

    @contextlib.contextmanager
    def active(self) -> Iterator[AwsCalls]:
        original = botocore.session.Session.create_client

        def create_client(session: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
            return logged(original(session, service_name, *args, **kwargs))

        original_request = BotocoreStubber.process_request

        def process_request(stubber: Any, request: Any) -> Any:
            with _MOTO:
                return original_request(stubber, request)

        with mock.patch.object(botocore.session.Session, "create_client", create_client), \
                mock.patch.object(BotocoreStubber, "process_request", process_request):
            _ACTIVE.append(self)
            try:
                yield self
            finally:
                _ACTIVE.remove(self)


def _to_active(method: str, region: str, **kwargs: Any) -> Any:
    return getattr(_ACTIVE[-1], method)(region, **kwargs) if _ACTIVE else None


def logged(client: Any) -> Any:
    """`client` with its calls logged to the active `AwsCalls` (idempotent)."""
    region, events = client.meta.region_name, client.meta.events
    events.register("before-parameter-build", functools.partial(_to_active, "_before_parameters", region),
                    unique_id="aws-calls-parameters")
    events.register("before-call", functools.partial(_to_active, "_before_call", region),
                    unique_id="aws-calls-before")
    events.register("after-call", AwsCalls._after_call, unique_id="aws-calls-after")
    return client
