"""Declared Lambda functions, run in-process (moto needs Docker); behaviours and AWS pages:
docs/emulation.md, "Lambda". The process environment is shared: invocations of one function
may overlap, another function waits."""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.local.calls import acting_as
from tools.local.emulation import emulation
from tools.local.emulation.policy import permits
from tools.local.world import World

LAMBDAS_DIR = Path(__file__).resolve().parents[3] / "lambdas"
DEFAULT_TIMEOUT_SECONDS = 3.0  # Lambda's default
# Lambda gives every concurrent invocation an environment of its own; here a function has at
# most this many (each costs a cold start: its imports and clients) and a further invocation
# waits for one, the wait counted in its duration (docs/emulation.md). Fifty concurrent
# requests to the CVM took 28 s and 1.3 GB with fifty environments, 4.6 s with four.
MAX_ENVIRONMENTS = 4


class FunctionNotFound(LookupError):
    pass


class InvokeDenied(Exception):
    """No declared permission lets this service invoke the function for this source."""


class FunctionTimeout(Exception):
    """"Task timed out after N seconds": Lambda discards what the handler returned."""


@dataclass(frozen=True)
class LambdaContext:
    function_name: str
    invoked_function_arn: str
    deadline: float  # time.monotonic() when Lambda stops the invocation
    memory_limit_in_mb: int = 128
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class Timing:
    """One invocation's time. The Init phase (a cold start's imports and clients) runs in this
    process on a CPU the whole local run shares: its wall time says how busy the machine was,
    not how long Lambda's Init takes, so it is also measured in the importing thread's own CPU
    time. `counted` is what a caller's time limit should see: that CPU time plus the
    invocation's wall time (tables, waits: counted in full)."""
    init_wall: float = 0.0
    init_cpu: float = 0.0
    run_wall: float = 0.0

    @property
    def counted(self) -> float:
        return self.init_cpu + self.run_wall

    @property
    def wall(self) -> float:
        return self.init_wall + self.run_wall


@dataclass
class DeclaredFunction:
    name: str
    arn: str
    region: str
    handler: str
    environment: Mapping[str, str]
    memory_mb: int = 128
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    output: deque[str] = field(default_factory=lambda: deque(maxlen=500))
    written: int = 0  # lines ever written to `output` (a mark for `logs_since`)
    invocations: int = 0
    loaded: Callable[[Any, Any], Any] | None = None  # the first execution environment
    init: tuple[float, float] | None = None  # (wall, CPU) of a load its first invocation has not yet counted
    busy: bool = False  # the first environment is serving an invocation
    # More environments, idle: as Lambda scales out, an invocation arriving while the others
    # are busy gets one of its own (a cold start) and module state is never shared.
    spare: list[Callable[[Any, Any], Any]] = field(default_factory=list)
    extra: int = 0  # environments besides the first, busy or idle

    def logs_since(self, mark: int) -> list[str]:
        """The lines written after `mark` (a past `written`) still held, readable."""
        lines = list(self.output)[max(0, len(self.output) - (self.written - mark)):]
        return [shown for line in lines if (shown := readable(line)) is not None]

    def variables(self) -> dict[str, str]:
        return {**{str(k): str(v) for k, v in self.environment.items()},
                "AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region,
                "AWS_LAMBDA_FUNCTION_NAME": self.name, "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb)}


# Powertools' structured-log keys every line carries: left out of the report's short form.
_BOILERPLATE = frozenset({"level", "message", "location", "timestamp", "service", "cold_start", "function_name",
                          "function_memory_size", "function_arn", "function_request_id", "xray_trace_id",
                          "sampling_rate"})


def readable(line: str) -> str | None:
    """A log line as a person reads it: a JSON record as `LEVEL message key=value ...`; a
    metrics record (CloudWatch EMF) None; anything else as it is."""
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if not isinstance(record, dict):
        return line
    if "_aws" in record:
        return None
    extra = " ".join(f"{k}={v}" for k, v in record.items() if k not in _BOILERPLATE)
    return " ".join(str(p) for p in (record.get("level", ""), record.get("message", ""), extra) if p)


class _Output(io.TextIOBase):
    """A function's stdout and log records (as its logger formats them), line by line."""

    def __init__(self, function: DeclaredFunction, passthrough: Any = None,
                 invoking: Counter[int] | None = None) -> None:
        # As the process's sys.stdout during invocations: only the invoking threads' writes
        # are the function's; any other thread's (the report, a guide, a device) pass through.
        self._function, self._passthrough, self._invoking = function, passthrough, invoking
        self.handler = logging.Handler()
        self.handler.emit = self._emit  # type: ignore[method-assign]
        self._thread = threading.get_ident()

    def _emit(self, record: logging.LogRecord) -> None:
        own = logging.getLogger(record.name).handlers
        if any(getattr(getattr(h, "stream", None), "_function", None) is self._function for h in own):
            return  # the function's logger writes it to this function's stdout already: once only
        if record.thread == self._thread:
            self.write(self._format(record))

    @staticmethod
    def _format(record: logging.LogRecord) -> str:
        own = next((h.formatter for h in logging.getLogger(record.name).handlers if h.formatter), None)
        return (own or logging.Formatter()).format(record) + "\n"

    def write(self, text: str) -> int:
        if self._passthrough is not None and self._invoking is not None \
                and not self._invoking[threading.get_ident()]:
            return int(self._passthrough.write(text))
        lines = [line for line in text.splitlines() if line.strip()]
        self._function.output.extend(lines)
        self._function.written += len(lines)
        return len(text)


# Loading swaps the package's entries in sys.modules for a moment: one load at a time and,
# in a world whose pollers run in threads (LambdaRuntime.preload), all of them before those
# threads start, so no thread importing a tool that imports the package (tools.evacuate,
# tools.manufacturer) meets the fresh, half-initialised copy.
_LOADING = threading.Lock()


def load_handler(handler: str) -> Callable[[Any, Any], Any]:
    """`pkg.module.function` from lambdas/pkg, in a fresh copy of the package's modules (the
    process's own imports are left as they were)."""
    module_path, _, function_name = handler.rpartition(".")
    package = module_path.split(".")[0]
    if not module_path or not (LAMBDAS_DIR / package).is_dir():
        raise ImportError(f"Runtime.ImportModuleError: handler {handler!r}: no package lambdas/{package}")
    prefix = f"lambdas.{package}"
    with _LOADING:
        ours = [n for n in sys.modules if n == prefix or n.startswith(prefix + ".")]
        saved = {n: sys.modules.pop(n) for n in ours}
        try:
            module = importlib.import_module(f"lambdas.{module_path}")
        finally:
            for name in [n for n in sys.modules if n == prefix or n.startswith(prefix + ".")]:
                del sys.modules[name]
            sys.modules.update(saved)
            if prefix in saved and "lambdas" in sys.modules:
                setattr(sys.modules["lambdas"], package, saved[prefix])
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ImportError(f"Runtime.HandlerNotFound: {handler!r} has no function {function_name!r}")
    return function


# A function's environment variables are its invoking thread's alone: the process's
# os.environ is never changed (another thread copying it while a variable was removed raised
# KeyError: botocore copies it for every new credential chain), and no other thread sees a
# function's variables. Python code reads os.environ (os.getenv too); the class below lays the
# invoking thread's variables over it while a world's functions can run.
_THREAD_ENVIRONMENT = threading.local()


class _FunctionEnvironment(os._Environ):
    @staticmethod
    def _layer() -> dict[str, str] | None:
        return getattr(_THREAD_ENVIRONMENT, "variables", None)

    def __getitem__(self, key: str) -> str:
        layer = self._layer()
        return layer[key] if layer is not None and key in layer else super().__getitem__(key)

    def __setitem__(self, key: str, value: str) -> None:
        layer = self._layer()
        if layer is None:
            super().__setitem__(key, value)
        else:
            layer[key] = value

    def __delitem__(self, key: str) -> None:
        layer = self._layer()
        if layer is not None and key in layer:
            del layer[key]
        else:
            super().__delitem__(key)

    def __iter__(self) -> Iterator[str]:
        keys = list(super().__iter__())  # os._Environ copies its keys at once
        return iter(dict.fromkeys([*keys, *(self._layer() or {})]))

    def __len__(self) -> int:
        return len(list(iter(self)))

    def copy(self) -> dict[str, str]:
        return {key: value for key in self if (value := self.get(key)) is not None}


class LambdaRuntime:
    def __init__(self, world: World, functions: list[DeclaredFunction],
                 permissions: Iterable[Mapping[str, Any]]) -> None:
        os.environ.__class__ = _FunctionEnvironment  # as before outside an invocation; kept
        self._world = world
        self._timings = threading.local()  # per calling thread: invocations may overlap
        self._pool = threading.Condition()  # functions' execution environments (_checkout)
        self._invoking: Counter[int] = Counter()  # thread -> invocations it is running
        self.permissions = list(permissions)
        self.functions = {key: f for f in functions for key in (f.name, f.arn)}
        self._environment = threading.Condition()
        self._owner: str | None = None
        self._running = 0
        self._stdout: Any = sys.stdout
        for key, function in self.functions.items():
            world.adapter.lambda_handlers[key] = functools.partial(self._from_state_machine, function.arn)

    def _from_state_machine(self, arn: str, event: Any, _context: Any) -> Any:
        return self.invoke(arn, event)

    def function(self, name_or_arn: str) -> DeclaredFunction:
        found = self.functions.get(name_or_arn)
        if found is None:
            raise FunctionNotFound(f"Function not found: {name_or_arn}")
        return found

    @contextlib.contextmanager
    def _environment_of(self, function: DeclaredFunction) -> Iterator[None]:
        """Its variables for the invoking thread; sys.stdout (process-wide) to its log, so
        different functions still take turns, while invocations of one function overlap."""
        with self._environment:
            self._environment.wait_for(lambda: self._running == 0 or self._owner == function.name)
            if self._running == 0:
                self._owner = function.name
                self._stdout = sys.stdout
                sys.stdout = _Output(function, self._stdout, self._invoking)
            self._running += 1
            self._invoking[threading.get_ident()] += 1
        outer = getattr(_THREAD_ENVIRONMENT, "variables", None)  # a function invoking another
        _THREAD_ENVIRONMENT.variables = function.variables()
        try:
            yield
        finally:
            _THREAD_ENVIRONMENT.variables = outer
            with self._environment:
                self._running -= 1
                self._invoking[threading.get_ident()] -= 1
                if self._running == 0:
                    self._owner, sys.stdout = None, self._stdout
                    self._environment.notify_all()

    def invoke(self, name_or_arn: str, event: Any) -> Any:
        """Run the handler; its exceptions propagate (callers answer as their AWS
        counterpart does); past the declared timeout the result is lost (FunctionTimeout)."""
        function = self.function(name_or_arn)
        output = _Output(function)
        logging.getLogger().addHandler(output.handler)
        init_wall = init_cpu = 0.0
        started = time.monotonic()
        try:
            with self._environment_of(function), acting_as(f"lambda:{function.name}"):
                handler, first, (init_wall, init_cpu), waited = self._checkout(function)  # a cold start's
                try:  # imports see the environment too
                    function.invocations += 1
                    started = time.monotonic() - waited  # waiting for an environment counts
                    context = LambdaContext(function.name, function.arn,
                                            started + function.timeout_seconds, function.memory_mb,
                                            str(uuid.uuid4()), log_group_name=f"/aws/lambda/{function.name}")
                    result = handler(event, context)
                finally:
                    self._checkin(function, handler, first)
        finally:
            logging.getLogger().removeHandler(output.handler)
            elapsed = time.monotonic() - started
            self._timings.last = Timing(init_wall, init_cpu, elapsed)  # failed invocations too
        if elapsed > function.timeout_seconds:
            raise FunctionTimeout(f"{function.name}: Task timed out after "
                                  f"{function.timeout_seconds:.2f} seconds ({elapsed:.2f} s)")
        return result

    def _checkout(self, function: DeclaredFunction) -> tuple[Callable[[Any, Any], Any], bool,
                                                             tuple[float, float], float]:
        """An idle execution environment, or a new one: (handler, is it the first, Init to
        count, seconds waited for an environment)."""
        arrived = time.monotonic()
        with self._pool:
            while True:
                waited = time.monotonic() - arrived
                if function.loaded is not None and not function.busy:
                    function.busy, (init, function.init) = True, (function.init or (0.0, 0.0), None)
                    return function.loaded, True, init, waited
                if function.spare:
                    return function.spare.pop(), False, (0.0, 0.0), waited
                first = function.loaded is None and not function.busy
                if first or function.extra < MAX_ENVIRONMENTS - 1:
                    break
                self._pool.wait()  # every environment busy: wait for one (see MAX_ENVIRONMENTS)
            if first:
                function.busy = True
            else:
                function.extra += 1
        try:
            handler, init = self._load(function)
        except BaseException:
            with self._pool:
                if first:
                    function.busy = False
                else:
                    function.extra -= 1
                self._pool.notify_all()
            raise
        if first:
            function.loaded = handler
        return handler, first, init, waited

    def _checkin(self, function: DeclaredFunction, handler: Callable[[Any, Any], Any], first: bool) -> None:
        with self._pool:
            if first:
                function.busy = False
            elif function.loaded is not None:  # not after a cold_start() meanwhile
                function.spare.append(handler)
            else:
                function.extra -= 1
            self._pool.notify_all()

    @staticmethod
    def _load(function: DeclaredFunction) -> tuple[Callable[[Any, Any], Any], tuple[float, float]]:
        wall, cpu = time.monotonic(), time.thread_time()
        handler = load_handler(function.handler)
        return handler, (time.monotonic() - wall, time.thread_time() - cpu)

    def preload(self) -> None:
        """Every function's Init, now, while no other thread runs (see _LOADING); its first
        invocation still counts it. A function that fails to load fails when invoked."""
        for function in {f.arn: f for f in self.functions.values()}.values():
            with self._environment_of(function):
                with contextlib.suppress(Exception):
                    function.loaded, function.init = self._load(function)

    def last_timing(self) -> Timing:
        """The time of the last invocation this thread made."""
        return getattr(self._timings, "last", None) or Timing()

    def cold_start(self, name_or_arn: str) -> None:
        """The next invocation gets a new execution environment (modules imported afresh)."""
        function = self.function(name_or_arn)
        with self._pool:
            function.extra -= len(function.spare)
            function.loaded, function.init = None, None
            function.spare.clear()

    def invoke_as_service(self, name_or_arn: str, event: Any, *, principal: str,
                          source_arn: str, source_account: str) -> Any:
        function = self.function(name_or_arn)
        if not permits(self.permissions, function_name=function.name, function_arn=function.arn,
                       principal=principal, source_arn=source_arn, source_account=source_account):
            raise InvokeDenied(f"{principal} may not invoke {function.name} for {source_arn} "
                               "(no declared permission names this source)")
        return self.invoke(function.arn, event)

    def describe(self) -> str:
        unique = {f.arn for f in self.functions.values()}
        return f"Lambda: {len(unique)} function(s) in-process with their declared environment"

    def stop(self) -> None:
        for key in self.functions:
            self._world.adapter.lambda_handlers.pop(key, None)


@emulation("lambdas")
def start(world: World) -> LambdaRuntime | None:
    functions = []
    for resource in world.declared("aws:lambda/function:Function"):
        state = world.state(resource)
        functions.append(DeclaredFunction(
            name=state["name"], arn=state["arn"], region=str(resource.region),
            handler=str(state.get("handler") or ""),
            environment=dict((state.get("environment") or {}).get("variables") or {}),
            memory_mb=int(state.get("memorySize") or 128),
            timeout_seconds=float(state.get("timeout") or DEFAULT_TIMEOUT_SECONDS)))
    permissions = [world.state(p) for p in world.declared("aws:lambda/permission:Permission")]
    if not functions:
        return None
    runtime = LambdaRuntime(world, functions, permissions)
    if world.background:  # pollers in threads (the local run): load before they start
        runtime.preload()
    return runtime
