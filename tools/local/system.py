"""The running local system: what materialisers, emulations and journeys are handed.

Declared resources come from the harness graph with the harness's stand-in ids and ARNs;
moto assigns its own to some (CA certificate ids, KMS key ids, queue URLs). `Resolver`
maps every declared identifier a materialiser learned to the runtime one, so a declared
value (a rule's SQL naming the CA id, a queue URL in an error action) is translated
wherever it is used, and a wire that names something never declared stays broken.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import boto3
from botocore.config import Config

from tools.harness import GLOBAL, RecordedResource, StackGraph
from tools.local.pki_material import LocalPki
from tools.local.sfn_adapter import SfnAdapter

# Pulumi's wire marker for a secret value ({SIG: SECRET, "value": ...}).
_SECRET_SIG = "4dabf18193072939515e22adb298388d"

# moto accepts any credentials; these are what `--keep` tells the user to use too.
ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"


def plain(value: Any) -> Any:
    """Recorded inputs without Pulumi's secret wrappers (all values are public here)."""
    if isinstance(value, Mapping):
        if _SECRET_SIG in value and "value" in value:
            return plain(value["value"])
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


class Resolver:
    """Declared identifier -> runtime identifier, applied to strings anywhere in a value."""

    def __init__(self) -> None:
        self._map: dict[str, str] = {}
        self._ordered: list[tuple[str, str]] = []

    def learn(self, declared: Any, runtime: Any) -> None:
        if isinstance(declared, str) and isinstance(runtime, str) and declared and declared != runtime:
            self._map[declared] = runtime
            # Longest first, so an ARN is replaced before the id it contains.
            self._ordered = sorted(self._map.items(), key=lambda kv: -len(kv[0]))

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            for declared, runtime in self._ordered:
                if declared in value:
                    value = value.replace(declared, runtime)
            return value
        if isinstance(value, Mapping):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self(v) for v in value]
        return value

    def items(self) -> Iterator[tuple[str, str]]:
        return iter(self._map.items())


class ServerSession:
    """What the project's tools take as a boto3 session (`session.client(service,
    region_name=...)`), handing out the run's clients for the local server."""

    def __init__(self, system: LocalSystem) -> None:
        self._system = system

    def client(self, service: str, region_name: str | None = None, **_: Any) -> Any:
        return self._system.client(service, region_name or self._system.primary_region)

    def resource(self, service: str, region_name: str | None = None) -> Any:
        return self._system.resource(service, region_name or self._system.primary_region)


@dataclass(frozen=True)
class Materialised:
    """One runtime object created from a declared resource."""

    type: str
    name: str  # logical name of the declared resource
    region: str
    physical: str  # what it is called at runtime (table name, CA id, role name...)


E = TypeVar("E")


@dataclass
class LocalSystem:
    stack: str
    project_dir: Path
    graph: StackGraph  # what runs (after any --break mutation)
    evaluated: StackGraph  # the stack as evaluated (untouched)
    regions: tuple[str, ...]  # the regions this run materialises, primary first if selected
    primary_region: str
    endpoint: str
    pki: LocalPki
    adapter: SfnAdapter
    stack_config: Mapping[str, Any] = field(default_factory=dict)
    policy_config: Mapping[str, Any] | None = None
    policy_report: Any = None  # tools.policy_check.Report of the evaluated stack
    resolver: Resolver = field(default_factory=Resolver)
    materialised: list[Materialised] = field(default_factory=list)
    emulations: dict[type, Any] = field(default_factory=dict)
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict)
    _client_lock: threading.Lock = field(default_factory=threading.Lock)
    _session: Any = None

    # -- runtime access ----------------------------------------------------------------------

    def client(self, service: str, region: str) -> Any:
        """A boto3 client for the local server (thread-safe, cached)."""
        key = (service, region)
        with self._client_lock:
            if key not in self._clients:
                if self._session is None:
                    self._session = boto3.session.Session()
                self._clients[key] = self._session.client(
                    service, region_name=region, endpoint_url=self.endpoint,
                    aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY,
                    config=Config(retries={"max_attempts": 2, "mode": "standard"},
                                  connect_timeout=5, read_timeout=30))
            return self._clients[key]

    def resource(self, service: str, region: str) -> Any:
        """A boto3 resource (e.g. a DynamoDB Table) for the local server, cached."""
        key = (f"resource:{service}", region)
        with self._client_lock:
            if key not in self._clients:
                if self._session is None:
                    self._session = boto3.session.Session()
                self._clients[key] = self._session.resource(
                    service, region_name=region, endpoint_url=self.endpoint,
                    aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY)
            return self._clients[key]

    def session(self) -> ServerSession:
        return ServerSession(self)

    def emulation(self, kind: type[E]) -> E:
        found = self.emulations.get(kind)
        if found is None:
            raise LookupError(f"emulation {kind.__name__} is not running")
        return found

    # -- the declared graph ----------------------------------------------------------------

    def declared(self, type_token: str, region: str | None = None) -> list[RecordedResource]:
        return [r for r in self.graph.of_type(type_token) if region is None or r.region == region]

    def state(self, resource: RecordedResource) -> dict[str, Any]:
        """Declared inputs + computed outputs, secrets unwrapped, identifiers resolved."""
        return dict(self.resolver(plain(dict(resource.outputs))))

    def in_scope(self, region: str | None) -> bool:
        return region == GLOBAL or region in self.regions

    def capabilities(self, region: str) -> set[str]:
        """Capabilities the stack enables in `region` (from the program's exports)."""
        regions = self.graph.outputs.get("regions") or {}
        entry = regions.get(region) or {}
        return set(entry.get("capabilities") or [])

    def other_regions(self, region: str) -> list[str]:
        return [r for r in self.regions if r != region]
