"""Every part of the Pulumi Python SDK (`pulumi`) the offline tools use that the SDK does not
make public, in one place (the program itself uses only public APIs; pulumi_policy's
internals are in tools/policy_sdk.py).

The harness answers `RegisterResource` itself (our URNs, our computed outputs, a record of
each registration), which the public `pulumi.runtime.Mocks` cannot do: it never sees the
parent, the aliases or the resource options. So it subclasses the SDK's `MockMonitor` and
speaks its wire format, and drives the SDK's event loop from synchronous code, exactly as
`MockMonitor` itself does. tests/test_pulumi_internals.py checks each of these against the
installed SDK and fails naming this module when an upgrade moves or changes one: fix it
here, nowhere else.

| here | SDK internal |
|---|---|
| `MonitorBase`, `registered` | `pulumi.runtime.mocks.MockMonitor` (+ `.resources`, `.ResourceRegistration`) |
| `deserialize_inputs`, `register_response`, `stack_response` | `pulumi.runtime.rpc.(de)serialize_properties`, `pulumi.runtime.proto.resource_pb2` |
| `sync_await`, `ensure_event_loop` | `pulumi.runtime.sync_await._sync_await` / `_ensure_event_loop` |
| `run_program` | `pulumi.runtime.stack.run_pulumi_func`; `pulumi.runtime.resource._get_stack_trace` (skipped) |
| `stack_exports` | the root `Stack` resource's `outputs` |
| `is_unknown`, `UNKNOWN` | `pulumi.output.Unknown`, `pulumi.runtime.rpc.UNKNOWN` |
| `set_stack_and_project` (the policy engine) | `pulumi.runtime.settings._set_stack` / `_set_project` |
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import pulumi
from pulumi.output import Unknown as _Unknown
from pulumi.runtime import resource as _resource
from pulumi.runtime import rpc as _rpc
from pulumi.runtime import settings as _settings
from pulumi.runtime.mocks import MockMonitor as _MockMonitor
from pulumi.runtime.proto import resource_pb2 as _resource_pb2
from pulumi.runtime.proto import source_pb2 as _source_pb2
from pulumi.runtime.stack import run_pulumi_func as _run_pulumi_func
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

T = TypeVar("T")

# The engine's marker for a value not known until the update (a preview's computed output).
UNKNOWN: str = _rpc.UNKNOWN

# Subclassed by the harness's recording monitor; `pulumi.runtime.set_mocks(monitor=...)`
# (public) accepts it.
MonitorBase = _MockMonitor


def is_unknown(value: Any) -> bool:
    """A value the program saw as unknown (an Output resolved during a preview)."""
    return isinstance(value, _Unknown)


def sync_await(awaitable: Awaitable[T]) -> T:
    """Wait for `awaitable` on the SDK's event loop from synchronous code."""
    return _sync_await(awaitable)


def ensure_event_loop() -> None:
    """The SDK's event loop for this thread (deserialising resource references needs it)."""
    _ensure_event_loop()


def _no_stack_trace() -> Any:
    return _source_pb2.StackTrace()


def run_program(program: Callable[[], None]) -> None:
    """Run `program` in the root stack `set_mocks` created, and wait until every
    registration it started has been answered.

    The SDK walks the Python stack at every registration to send the engine source
    positions; offline nothing reads them and the walk is about a tenth of an evaluation,
    so it is skipped while the program runs."""
    original = _resource._get_stack_trace
    _resource._get_stack_trace = _no_stack_trace
    try:
        sync_await(_run_pulumi_func(program))
    finally:
        _resource._get_stack_trace = original


def stack_exports(root: pulumi.Resource | None) -> dict[str, Any]:
    """What the program passed to `pulumi.export`, resolved."""
    outputs: Mapping[str, Any] = getattr(root, "outputs", None) or {}

    async def resolve() -> dict[str, Any]:
        return {k: await pulumi.Output.from_input(v).future() for k, v in outputs.items()}

    return sync_await(resolve())


def deserialize_inputs(request: Any) -> dict[str, Any]:
    """A RegisterResource request's inputs as Python values (Outputs resolved)."""
    return dict(_rpc.deserialize_properties(request.object))


def registered(monitor: Any, urn: str, resource_id: str, state: Mapping[str, Any]) -> None:
    """Record a registration in the monitor the way MockMonitor does (reads, `exists`)."""
    monitor.resources[urn] = _MockMonitor.ResourceRegistration(urn, resource_id, dict(state))


def register_response(urn: str, resource_id: str, state: Mapping[str, Any]) -> Any:
    """The engine's answer to a RegisterResource: the URN, id and output properties."""
    properties = sync_await(_rpc.serialize_properties(dict(state), {}))
    return _resource_pb2.RegisterResourceResponse(urn=urn, id=resource_id, object=properties)


def stack_response(urn: str) -> Any:
    """The answer to the root stack's own registration."""
    return _resource_pb2.RegisterResourceResponse(urn=urn)


def set_stack_and_project(stack: str, project: str) -> None:
    """What pulumi_policy's analyzer leaves behind before it runs policies:
    `pulumi.get_stack()` / `get_project()` answer for the stack being checked (in the
    current context)."""
    _settings._set_stack(stack)
    _settings._set_project(project)
