"""Lambda functions, run in-process: the declared handler with the declared environment.

moto cannot run Lambda code without Docker. Each declared function gets its own copy of its
package's modules, imported on first invocation (a cold start) from `lambdas/<package>`
as the declared handler string names it (`<package>.<module>.<function>`), with the
declared environment variables plus what the Lambda runtime sets (region, function name)
and what the local run needs (the SDK's endpoint and dummy credentials, X-Ray off: there is
no daemon). The process environment is shared, so invocations run one at a time. A
function's stdout (its JSON logs and metrics) is kept per function, not printed.

Registered with the Step Functions adapter under the function's name and ARN, so a
`lambda:invoke` task of a declared state machine reaches it; other emulations call
`LambdaRuntime.invoke`. An AWS service invoking a function (API Gateway, IoT's
pre-provisioning hook) goes through `invoke_as_service`, which first checks the declared
`aws:lambda/permission:Permission` resources the way Lambda evaluates a function's resource
policy (`permits`): the service principal, the action, and the source ARN (ArnLike) and
account the permission names.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from tools.local.emulation import emulation
from tools.local.emulation.policy_eval import allows
from tools.local.server import scoped_environ
from tools.local.system import ACCESS_KEY_ID, SECRET_ACCESS_KEY, LocalSystem

FUNCTION_TYPE = "aws:lambda/function:Function"
PERMISSION_TYPE = "aws:lambda/permission:Permission"
INVOKE_ACTION = "lambda:InvokeFunction"
DEFAULT_TIMEOUT_SECONDS = 3  # Lambda's default when a function declares none
LAMBDAS_PACKAGE = "lambdas"
LAMBDAS_DIR = Path(__file__).resolve().parents[3] / LAMBDAS_PACKAGE

# One process environment: one invocation at a time (re-entrant: a handler may call another).
_INVOKE_LOCK = threading.RLock()


class FunctionNotFound(LookupError):
    pass


class InvokeDenied(Exception):
    """No declared permission lets this service invoke the function for this source."""


@dataclass(frozen=True)
class LambdaContext:
    """The context object Lambda hands a handler; the remaining time counts down from the
    declared timeout."""

    function_name: str
    invoked_function_arn: str
    deadline: float  # time.monotonic() at which Lambda stops the invocation
    memory_limit_in_mb: int = 128
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def permits(permissions: Iterable[Mapping[str, Any]], *, function_name: str, function_arn: str,
            principal: str, source_arn: str, source_account: str,
            action: str = INVOKE_ACTION) -> bool:
    """Would Lambda let `principal`, acting for `source_arn` in `source_account`, perform
    `action` on this function, given these permissions (declared `Permission` inputs:
    function, action, principal, sourceArn, sourceAccount)? Each permission is the resource
    policy statement Lambda's AddPermission writes: the service principal, ArnLike on
    AWS:SourceArn, StringEquals on AWS:SourceAccount."""
    statements = []
    for permission in permissions:
        if permission.get("function") not in (function_name, function_arn):
            continue
        condition: dict[str, dict[str, str]] = {}
        if permission.get("sourceArn"):
            condition["ArnLike"] = {"AWS:SourceArn": str(permission["sourceArn"])}
        if permission.get("sourceAccount"):
            condition["StringEquals"] = {"AWS:SourceAccount": str(permission["sourceAccount"])}
        statements.append({"Effect": "Allow", "Principal": {"Service": permission.get("principal")},
                           "Action": permission.get("action"), "Resource": function_arn,
                           **({"Condition": condition} if condition else {})})
    context = {"AWS:SourceArn": source_arn, "AWS:SourceAccount": source_account}
    return allows([{"Statement": statements}], action, function_arn, context=context,
                  principal_service=principal)


@dataclass
class DeclaredFunction:
    name: str
    arn: str
    region: str
    handler: str
    environment: Mapping[str, str]
    memory_mb: int
    log_group: str
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    output: deque[str] = field(default_factory=lambda: deque(maxlen=500))
    invocations: int = 0
    _callable: Callable[[Any, Any], Any] | None = None


class _Output(io.TextIOBase):
    """A function's stdout: kept, one entry per line."""

    def __init__(self, lines: deque[str]) -> None:
        self._lines = lines

    def write(self, text: str) -> int:
        self._lines.extend(line for line in text.splitlines() if line.strip())
        return len(text)


@contextlib.contextmanager
def _own_modules(package: str) -> Iterator[None]:
    """Import `lambdas.<package>` afresh for one function, leaving sys.modules as it was."""
    prefix = f"{LAMBDAS_PACKAGE}.{package}"

    def ours(name: str) -> bool:
        return name == prefix or name.startswith(prefix + ".")

    saved = {name: module for name, module in sys.modules.items() if ours(name)}
    for name in saved:
        del sys.modules[name]
    parent = sys.modules.get(LAMBDAS_PACKAGE)
    try:
        yield
    finally:
        for name in [n for n in sys.modules if ours(n)]:
            del sys.modules[name]
        sys.modules.update(saved)
        if parent is not None and prefix in saved:
            setattr(parent, package, saved[prefix])


def load_handler(handler: str) -> Callable[[Any, Any], Any]:
    """`pkg.module.function` from lambdas/pkg, as Lambda resolves it in the function's zip."""
    module_path, _, function_name = handler.rpartition(".")
    package = module_path.split(".")[0]
    if not module_path or not (LAMBDAS_DIR / package).is_dir():
        raise ImportError(f"Runtime.ImportModuleError: handler {handler!r}: no package "
                          f"{LAMBDAS_PACKAGE}/{package}")
    with _own_modules(package):
        module: ModuleType = importlib.import_module(f"{LAMBDAS_PACKAGE}.{module_path}")
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ImportError(f"Runtime.HandlerNotFound: {handler!r} has no function {function_name!r}")
    return function


class LambdaRuntime:
    def __init__(self, system: LocalSystem, functions: list[DeclaredFunction],
                 permissions: Iterable[Mapping[str, Any]] = ()) -> None:
        self._endpoint = system.endpoint
        self.permissions = list(permissions)
        self.functions: dict[str, DeclaredFunction] = {}
        for function in functions:
            self.functions[function.name] = function
            self.functions[function.arn] = function
            for key in (function.name, function.arn):
                system.adapter.lambda_handlers[key] = self._handler_for(function.arn)
        self._adapter = system.adapter

    def _handler_for(self, arn: str) -> Callable[[Any, Any], Any]:
        return lambda event, context: self.invoke(arn, event)

    def _environment(self, function: DeclaredFunction) -> dict[str, str]:
        return {
            **{str(k): str(v) for k, v in function.environment.items()},
            "AWS_REGION": function.region, "AWS_DEFAULT_REGION": function.region,
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": function.log_group,
            "AWS_ENDPOINT_URL": self._endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "POWERTOOLS_TRACE_DISABLED": "true",
        }

    def invoke(self, function_name_or_arn: str, event: Any) -> Any:
        """Run the function's handler; its exceptions propagate (callers report them the
        way their AWS counterpart does)."""
        function = self.functions.get(function_name_or_arn)
        if function is None:
            raise FunctionNotFound(f"Function not found: {function_name_or_arn}")
        output = _Output(function.output)
        with _INVOKE_LOCK, scoped_environ(self._environment(function)), \
                contextlib.redirect_stdout(output):
            if function._callable is None:  # cold start: imports see the environment too
                function._callable = load_handler(function.handler)
            function.invocations += 1
            context = LambdaContext(
                function_name=function.name, invoked_function_arn=function.arn,
                deadline=time.monotonic() + function.timeout_seconds,
                memory_limit_in_mb=function.memory_mb, aws_request_id=str(uuid.uuid4()),
                log_group_name=function.log_group, log_stream_name="local")
            return function._callable(event, context)

    def function(self, function_name_or_arn: str) -> DeclaredFunction:
        function = self.functions.get(function_name_or_arn)
        if function is None:
            raise FunctionNotFound(f"Function not found: {function_name_or_arn}")
        return function

    def invoke_as_service(self, function_name_or_arn: str, event: Any, *, principal: str,
                          source_arn: str, source_account: str) -> Any:
        """A service's invocation: allowed only by a declared permission (`permits`)."""
        function = self.function(function_name_or_arn)
        if not permits(self.permissions, function_name=function.name, function_arn=function.arn,
                       principal=principal, source_arn=source_arn,
                       source_account=source_account):
            raise InvokeDenied(f"{principal} may not invoke {function.name} for {source_arn} "
                               f"(no declared permission names this source)")
        return self.invoke(function.arn, event)

    def describe(self) -> str:
        unique = {f.arn: f for f in self.functions.values()}
        return (f"Lambda: {len(unique)} function(s) run in-process with their declared "
                f"environment")

    def stop(self) -> None:
        for key in list(self.functions):
            self._adapter.lambda_handlers.pop(key, None)


@emulation("lambda")
def start(system: LocalSystem) -> LambdaRuntime | None:
    functions = []
    for resource in system.declared(FUNCTION_TYPE):
        if not system.in_scope(resource.region):
            continue
        state = system.state(resource)
        logging_config = state.get("loggingConfig") or {}
        functions.append(DeclaredFunction(
            name=state["name"], arn=state["arn"], region=str(resource.region),
            handler=str(state.get("handler") or ""),
            environment=dict((state.get("environment") or {}).get("variables") or {}),
            memory_mb=int(state.get("memorySize") or 128),
            log_group=logging_config.get("logGroup") or f"/aws/lambda/{state['name']}",
            timeout_seconds=float(state.get("timeout") or DEFAULT_TIMEOUT_SECONDS)))
    permissions = [system.state(p) for p in system.declared(PERMISSION_TYPE)
                   if system.in_scope(p.region)]
    return LambdaRuntime(system, functions, permissions) if functions else None
