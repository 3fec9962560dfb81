"""The one way to stand the declared system up in moto, for the tests and the local run
(docs/emulation.md): `open_world(graph, ...)` starts moto in this process, made faithful
(moto_fidelity.py, sfn_adapter.py), logs every AWS call (calls.py), creates the declared
resources of the chosen regions and capabilities (materialise.py), starts the emulations of
what moto lacks (emulation/) and yields the `World` scenarios and journeys drive. A world
like one opened before in the process (same graph object, regions and capabilities) starts
from a copy of what materialising that one left in moto, not from the calls again.

The harness invents ids moto assigns differently (a CA's, a REST API's): materialise.py
teaches the resolver the runtime ones, and `state(resource)` resolves every declared value
naming one; what a wire names but nothing declared stays unresolved, as on AWS.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import copyreg
import functools
import logging
import os
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import boto3

from tools.harness import GLOBAL, RecordedResource, StackGraph
from tools.local.calls import AwsCalls, logged
from tools.local.moto_fidelity import faithful_moto
from tools.local.pki_material import LocalPki
from tools.local.sfn_adapter import SfnAdapter, start_sync_execution_answer

PROJECT_DIR = Path(__file__).resolve().parents[2]
ACCESS_KEY_ID = SECRET_ACCESS_KEY = "testing"  # moto accepts any; `--keep` prints these
ENVIRONMENT = {"AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
               "AWS_SESSION_TOKEN": "testing", "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
               "MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP": "true",  # Cognito checks TOTP codes
               "POWERTOOLS_TRACE_DISABLED": "true"}  # no X-Ray daemon
E = TypeVar("E")
# How long a journey waits for something eventual (replication, a stream consumer) before its
# step fails; a run that expects a failure (a broken wire) may wait less.
CONVERGE_SECONDS = 30.0


@functools.lru_cache(maxsize=1)
def capability_names() -> frozenset[str]:
    """The capabilities' names, which are also their components' type-token modules
    (`iotmr:<capability>:<Component>`, tests/test_component_names.py); the rest is platform."""
    from components.capabilities import CAPABILITIES

    return frozenset(capability.name for capability in CAPABILITIES)


@functools.lru_cache(maxsize=1)
def shared_session() -> Any:
    """One boto3 session for every world of the process: service models load once."""
    return boto3.session.Session()


_SHARED_CLIENTS: dict[tuple[str, str], Any] = {}
_SHARED_CLIENTS_LOCK = threading.Lock()


def shared_client(service: str, region: str) -> Any:
    """One client per service and region for every world of the process (thread-safe, as
    botocore's clients are); its calls are logged to the world open when it calls."""
    with _SHARED_CLIENTS_LOCK:
        if (service, region) not in _SHARED_CLIENTS:
            _SHARED_CLIENTS[(service, region)] = logged(shared_session().client(service, region_name=region))
        return _SHARED_CLIENTS[(service, region)]


def plain(value: Any) -> Any:
    """Recorded inputs without Pulumi's secret wrappers (all values are public here)."""
    if isinstance(value, Mapping):
        if "4dabf18193072939515e22adb298388d" in value and "value" in value:  # Pulumi's secret marker
            return plain(value["value"])
        return {k: plain(v) for k, v in value.items()}
    return [plain(v) for v in value] if isinstance(value, (list, tuple)) else value


class Resolver:
    """Declared identifier -> runtime identifier, applied to strings anywhere in a value."""

    def __init__(self) -> None:
        self._known: dict[str, str] = {}

    def learn(self, declared: Any, runtime: Any) -> None:
        if isinstance(declared, str) and isinstance(runtime, str) and declared and declared != runtime:
            # Longest first: an ARN is replaced before the id it contains.
            self._known = dict(sorted({**self._known, declared: runtime}.items(), key=lambda kv: -len(kv[0])))

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            for declared, runtime in self._known.items():
                value = value.replace(declared, runtime)
            return value
        if isinstance(value, Mapping):
            return {k: self(v) for k, v in value.items()}
        return [self(v) for v in value] if isinstance(value, (list, tuple)) else value


@dataclass(frozen=True)
class Materialised:
    type: str
    name: str  # the declared resource's logical name
    region: str
    physical: str


@dataclass
class World:
    graph: StackGraph  # what runs (after any --break mutation)
    regions: tuple[str, ...]  # primary first
    pki: LocalPki
    stack: str = "dev"
    project_dir: Path = PROJECT_DIR
    evaluated: StackGraph | None = None  # the stack as evaluated (untouched)
    capabilities_run: frozenset[str] | None = None  # None: every capability
    stack_config: Mapping[str, Any] = field(default_factory=dict)
    policy_config: Mapping[str, Any] | None = None
    policy_report: Any = None
    calls: AwsCalls = field(default_factory=AwsCalls)
    resolver: Resolver = field(default_factory=Resolver)
    materialised: list[Materialised] = field(default_factory=list)
    emulations: dict[type, Any] = field(default_factory=dict)
    made: Any = None  # materialise.MaterialiseResult
    background: bool = False  # stream consumers on their own thread (else `settle()`)
    converge_seconds: float = CONVERGE_SECONDS
    endpoint: str = ""  # set by serve()
    _closing: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def __post_init__(self) -> None:
        self.adapter = SfnAdapter(self.calls)

    @property
    def primary_region(self) -> str:
        return self.regions[0]

    @functools.cached_property
    def account(self) -> str:
        """The account every call of the world is made in (STS GetCallerIdentity, asked once)."""
        return str(self.client("sts").get_caller_identity()["Account"])

    def client(self, service: str, region: str | None = None) -> Any:
        """A boto3 client in `region` (default: the primary one); thread-safe."""
        return shared_client(service, region or self.primary_region)

    def resource(self, service: str, region: str | None = None) -> Any:
        return shared_session().resource(service, region_name=region or self.primary_region)

    def session(self) -> Any:
        """What the project's tools take as a boto3 session."""
        return shared_session()

    def emulation(self, kind: type[E]) -> E:
        if kind not in self.emulations:
            raise LookupError(f"emulation {kind.__name__} is not running")
        return self.emulations[kind]

    def settle(self, rounds: int = 50) -> None:
        """Let every stream consumer (global tables, event-source mappings, pipes) catch up."""
        for streams in [e for e in self.emulations.values() if hasattr(e, "settle")]:
            streams.settle(rounds)

    def declared(self, type_token: str, region: str | None = None) -> list[RecordedResource]:
        return [r for r in self.graph.of_type(type_token)
                if region in (None, r.region) and self.includes(r)]

    def state(self, resource: RecordedResource) -> dict[str, Any]:
        """Declared inputs + computed outputs, secrets unwrapped, identifiers resolved."""
        return dict(self.resolver(plain(dict(resource.outputs))))

    @functools.cached_property
    def _regions_below(self) -> dict[str, frozenset[str]]:
        """Component URN -> the regions of the resources declared below it."""
        below: dict[str, set[str]] = {}
        for resource in self.graph.custom_resources():
            if resource.region not in (None, GLOBAL):
                for ancestor in self.graph.ancestors(resource):
                    below.setdefault(ancestor.urn, set()).add(str(resource.region))
        return {urn: frozenset(regions) for urn, regions in below.items()}

    def regions_served(self, resource: RecordedResource) -> frozenset[str]:
        """Its region; for a global service's resource (an IAM role, a Route 53 health check)
        the regions of the resources its component declares; empty: it serves every region."""
        if resource.region != GLOBAL:
            return frozenset({resource.region or ""})  # none: no region of any world
        for ancestor in self.graph.ancestors(resource):
            if regions := self._regions_below.get(ancestor.urn):
                return regions
        return frozenset()

    def includes(self, resource: RecordedResource, *, any_region: bool = False) -> bool:
        """In the world's regions (a global service's resource: serving one of them or all) and,
        inside a capability component, of a chosen capability."""
        served = self.regions_served(resource)
        if not any_region and served and not served & set(self.regions):
            return False
        owners = {a.type.split(":")[1] for a in self.graph.ancestors(resource) if a.type.startswith("iotmr:")}
        capabilities = owners & capability_names()
        return self.capabilities_run is None or not capabilities or bool(capabilities & self.capabilities_run)

    def capabilities(self, region: str) -> set[str]:
        """Capabilities the stack enables in `region` and this world runs."""
        enabled = set(((self.graph.outputs.get("regions") or {}).get(region) or {}).get("capabilities") or [])
        return enabled if self.capabilities_run is None else enabled & self.capabilities_run

    def other_regions(self, region: str) -> list[str]:
        return [r for r in self.regions if r != region]

    def table(self, key: str) -> str:
        """A global table's name as the program exports it (`device-inventory`...)."""
        return str(self.graph.outputs["tables"][key]["name"])

    def serve(self) -> str:
        """The world over HTTP on 127.0.0.1 (a free port) until it closes: for the AWS CLI
        (`--keep`) and the emulations that forward to moto (the installer web app's gateway)."""
        if not self.endpoint:
            from moto.server import ThreadedMotoServer

            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            self._closing.callback(getattr(server, "_server").server_close)  # stop() leaves it open
            self._closing.callback(server.stop)
            host, port = server.get_host_and_port()
            self.endpoint = f"http://{host}:{port}"
        return self.endpoint


@contextlib.contextmanager
def open_world(graph: StackGraph, *, regions: Sequence[str], pki: LocalPki,
               capabilities: Iterable[str] | None = None, background: bool = False,
               **context: Any) -> Iterator[World]:
    """`graph` stood up in moto for `regions` (primary first) and `capabilities` (None: all);
    with `background` the stream consumers run on their own thread, otherwise `settle()`."""
    from moto import mock_aws

    from tools.botocore_models import share_service_models
    from tools.local import emulation, materialise

    share_service_models()  # each emulated cold start's session would parse the models again

    world = World(graph=graph, regions=tuple(regions), pki=pki, capabilities_run=None if capabilities is None
                  else frozenset(capabilities), **context)
    with world._closing as stack:
        stack.enter_context(mock.patch.dict(os.environ, {**ENVIRONMENT, "AWS_DEFAULT_REGION": world.primary_region}))
        for name in ("werkzeug", "moto.stepfunctions.parser"):  # a line per request, per ASL error
            logger = logging.getLogger(name)
            stack.callback(logger.setLevel, logger.level)
            logger.setLevel(logging.CRITICAL)
        stack.enter_context(mock_aws(config={
            "stepfunctions": {"execute_state_machine": True},  # run the declared ASL
            "iot": {"use_valid_cert": True}}))  # certificate ids as AWS computes them
        stack.enter_context(faithful_moto())
        stack.enter_context(world.calls.active())
        world.calls.answer["StartSyncExecution"] = start_sync_execution_answer
        stack.enter_context(world.adapter.active())
        world.made = _materialise(world)
        stack.enter_context(emulation.running(world, background=background))
        yield world


@dataclass(frozen=True)
class _Stood:
    """What materialising a graph left: moto's backends of the account (one per backend dict)
    and the world's own record of it (learned ids, what was made, the calls made)."""

    graph: weakref.ref[StackGraph]
    backend_dicts: tuple[Any, ...]  # moto's, module-level: never copied
    state: tuple[Any, ...]


# The last worlds materialised, by graph, regions and capabilities: the tests open ~190
# worlds of a dozen kinds, and materialising one (60-300 calls) costs 0.1-1 s where copying
# its moto state costs milliseconds.
_STOOD: collections.OrderedDict[tuple[Any, ...], _Stood] = collections.OrderedDict()
_STOOD_KEPT = 8
_LOCKS = (type(threading.Lock()), type(threading.RLock()), threading.Condition)


def _copied(state: Any, keep: Iterable[Any]) -> Any:
    """A deep copy in which the objects in `keep` stay themselves and a lock (an SQS queue's)
    is a new, free one: nothing runs while a world is copied."""
    memo = {id(kept): kept for kept in keep}
    for kind in _LOCKS:
        copyreg.dispatch_table[kind] = lambda _, kind=kind: (kind, ())  # type: ignore[misc]
    try:
        return copy.deepcopy(state, memo)
    finally:
        for kind in _LOCKS:
            copyreg.dispatch_table.pop(kind, None)


def _materialise(world: World) -> Any:
    """`materialise.materialise(world)`, or a copy of what it left for an identical world."""
    from moto.core.base_backend import BackendDict

    from tools.local import materialise

    # moto's backend dicts holding state since the mock started (the next start resets them)
    in_use: list[Any] = BackendDict._instances  # type: ignore[misc]

    key = (id(world.graph), world.regions, world.capabilities_run, os.environ.get("MOTO_ACCOUNT_ID"))
    stood = _STOOD.get(key)
    if stood is not None and stood.graph() is world.graph:
        _STOOD.move_to_end(key)
        account, backends, known, materialised, made, calls = _copied(stood.state, stood.backend_dicts)
        world.__dict__["account"] = account  # the cached property, as materialising asked it
        for backend_dict, account_backend in zip(stood.backend_dicts, backends):
            backend_dict[account] = account_backend
            if backend_dict not in in_use:
                in_use.append(backend_dict)
        world.resolver._known, world.materialised = known, materialised
        world.calls.calls.extend(calls)
        return made
    made = materialise.materialise(world)
    if made.errors:
        raise materialise.MaterialiseError(made)
    account = world.account
    backend_dicts = tuple(b for b in in_use if account in b)
    try:
        state = _copied((account, [b[account] for b in backend_dicts], world.resolver._known,
                         world.materialised, made, list(world.calls.calls)), backend_dicts)
    except (TypeError, copy.Error, RecursionError):  # moto state that does not copy: materialise each time
        return made
    _STOOD[key] = _Stood(weakref.ref(world.graph), backend_dicts, state)
    while len(_STOOD) > _STOOD_KEPT:
        _STOOD.popitem(last=False)
    return made
