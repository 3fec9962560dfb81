"""Replication: API calls and state transitions per replicated device, cost per million
devices next to the seed's design, and a quota-paced backfill of a new region.

    python -m benchmarks.replication                          # default run, ~2 minutes
    python -m benchmarks.replication --devices 50000 --quota-scale 20

1. Per device (the declared machine, executed in a world of the dev stack,
   tools/local/world.py; devices onboarded by JITR and the CVM in A; region A is *down*
   while B applies): AWS API calls
   each replicated device costs region B, by path, and calls to any other region (target:
   <= 6 for a new device: 5 registry calls and the re-read that lets nothing stale win;
   0 cross-region); state transitions per device (the same
   definition run as a STANDARD copy, whose history moto keeps).
2. Cost per million devices per extra region at us-east-1 list prices, ours vs the seed
   (EventBridge Pipe -> custom bus -> Standard machine + cross-region Lambda).
3. Backfill: `tools.replication_reconcile` adds a region holding --devices items and an
   empty registry, against moto IoT with a per-API throttle injected at AWS's default quotas
   x --quota-scale (default: 60 % of what moto serves here; token bucket, 1 s burst; excess
   calls get ThrottlingException). moto's interpreter runs ~10 executions/s, so this part
   drives the tool's scheduler with an executor that makes, call for call, the machine's
   new-device path (checked against the sequence part 1 recorded) with the machine's retry
   policy. Reports achieved rate /
   quota for the binding API, throttles absorbed by retries, throttles that escaped
   (retries exhausted: requeued by the tool), and the projected time to add a region to a
   --fleet-device fleet at AWS's default quotas.
4. Shadows (`--only-shadows` runs this part alone): shadow changes in A applied in B by
   the declared capture rules, function and event source mapping; calls per change on each
   side, calls from B to other regions (target 0), and the cost per million changes per
   extra region at us-east-1 list prices.
5. Device organisation (`--only-organisation` runs this part alone; also run with
   `--only-shadows`): attribute and group-membership changes in A applied in B by the
   registry-event rules, the same function and mapping; calls per change on each side, B's
   echo captures (all recognised by the applied log), calls from B to other regions (target 0),
   and the cost per million changes per extra region.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

from botocore.exceptions import ClientError  # noqa: E402

from components.replication.settings import DEFAULT_IOT_API_QUOTAS, ReplicationSettings  # noqa: E402
from lambdas.contracts.certificates import certificate_id as contract_certificate_id  # noqa: E402
from tools.harness import StackGraph, evaluate_program, load_program_stack  # noqa: E402
from tools.local import journeys, pki_material  # noqa: E402
from tools.local.emulation.streams import Streams, matches  # noqa: E402
from tools.local.journeys import cvm, jitr  # noqa: E402
from tools.local.pki_material import LocalPki  # noqa: E402
from tools.local.sfn_adapter import wait_for_execution  # noqa: E402
from tools.local.world import World, open_world  # noqa: E402
from tools.replication_reconcile import (  # noqa: E402
    Journal,
    Outcome,
    QuotaLimiter,
    RegionTargets,
    reconcile_region,
    targets_from_outputs,
)

A, B = "eu-west-1", "us-west-2"  # the dev stack's regions: B replicates what A writes

# --- list prices, us-east-1 (README.md "Cost" cites the pages) ----------------------------
PIPE_REQUEST = 0.40 / 1e6  # EventBridge Pipes, per request after filtering (64 KB chunks)
BUS_EVENT = 1.00 / 1e6  # EventBridge custom event published to a bus
EXPRESS_REQUEST = 1.00 / 1e6  # Step Functions Express, per execution
EXPRESS_GB_SECOND = 0.00001667  # first 1,000 GB-hours/month; billed in 100 ms, 64 MB chunks
STANDARD_TRANSITION = 0.025 / 1000  # Step Functions Standard
LAMBDA_REQUEST = 0.20 / 1e6
LAMBDA_GB_SECOND = 0.0000166667  # x86 (the seed's SAM default)
DYNAMODB_READ_UNIT = 0.125 / 1e6  # on-demand RRU (a consistent read of <= 4 KB)
LOGS_INGEST_GB = 0.50  # CloudWatch Logs ingestion
INTER_REGION_GB = 0.02  # data transfer between regions
SEED_TRANSITIONS_REPLICA = 9  # Start, Choice, Fetch (Lambda), Register, CreateThing,
#                               Attach, AttachPolicy, Activate, Success (seed's ASL)
SEED_TRANSITIONS_ORIGIN = 3  # Start, Choice, No Op: its unfiltered pipe wakes the origin too


def stack_graph(pki: LocalPki) -> StackGraph:
    """The dev stack as the local run evaluates it (the run's PKI as its CA)."""
    spec = load_program_stack(PROJECT_DIR, "dev")
    added, _ = journeys.config_overrides(spec.config, spec.project)
    return evaluate_program(PROJECT_DIR, "dev", drop_keys=("caCertificatePemFile",),
                            config_overrides={**added, "caCertificatePem": pki.intermediate_pem})


# --- 1. per device ---------------------------------------------------------------------------

@dataclass
class PathFigures:
    calls_per_device: float
    operations: list[str]  # the first device's calls, in order
    cross_region_calls: int
    transitions: int = 0
    history_bytes: int = 0  # log volume at level ALL with execution data
    history_bytes_without_data: int = 0


def _apply_in_b(world: World, records: list[dict[str, Any]]) -> tuple[list[Any], int]:
    """Deliver records to B's pipe while A is down; B's machine's calls, calls outside B."""
    streams = world.emulation(Streams)
    pipe = streams.consumer("pipe", B)
    world.calls.down.add(A)
    mark, letters = len(world.calls.of()), len(pipe.dead_lettered)
    try:
        streams.deliver(pipe, records)
    finally:
        world.calls.down.discard(A)
    if len(pipe.dead_lettered) != letters:
        raise SystemExit("a record failed in the benchmark")
    everything = world.calls.of()[mark:]
    machine = [c for c in everything if c.caller.startswith("states:")]  # the machine's own
    return machine, sum(1 for c in everything if c.region != B)


def _figures(world: World, records: list[dict[str, Any]]) -> PathFigures:
    calls, outside = _apply_in_b(world, records)
    per_record = len(calls) / len(records)
    first = [c.operation for c in calls[:round(per_record)]]
    return PathFigures(per_record, first, outside)


def _transitions(world: World, standard_arn: str,
                 record: dict[str, Any]) -> tuple[int, int, int]:
    """States entered (Standard would bill each) and history size, for one record alone."""
    sfn = world.client("stepfunctions", B)
    started = sfn.start_execution(stateMachineArn=standard_arn, name=f"copy-{record['eventID']}",
                                  input=json.dumps([record]))
    wait_for_execution(sfn, started["executionArn"])
    events = sfn.get_execution_history(executionArn=started["executionArn"],
                                       maxResults=1000)["events"]
    entered = sum(1 for e in events if e["type"].endswith("StateEntered"))
    size = sum(len(json.dumps(e, default=str)) for e in events)
    bare = sum(len(json.dumps(without_data(e), default=str)) for e in events)
    return entered, size, bare


def without_data(event: dict[str, Any]) -> dict[str, Any]:
    return {k: ({f: v for f, v in d.items() if f not in ("input", "output", "parameters")}
                if isinstance(d, dict) else d) for k, d in event.items()}


def per_device(sample: int) -> dict[str, PathFigures]:
    pki = pki_material.bootstrap()
    results: dict[str, PathFigures] = {}
    with open_world(stack_graph(pki), regions=[A, B], pki=pki,
                    capabilities=["jitr", "replication", "cvm"]) as world:
        streams = world.emulation(Streams)
        pipe = streams.consumer("pipe", B)
        sfn = world.client("stepfunctions", B)
        declared = sfn.describe_state_machine(stateMachineArn=pipe.target)
        standard_arn = sfn.create_state_machine(
            name=f"{declared['name']}-standard-copy", definition=declared["definition"],
            type="STANDARD", roleArn=declared["roleArn"])["stateMachineArn"]

        own = [f"own-{i}" for i in range(sample + 1)]
        for name in own:
            jitr.connect_first(world, A, pki.device(name).pem)
        devices = [cvm.Device(f"cvm-{i}") for i in range(sample + 1)]
        cvm.factory(world, A, devices)
        amazon = [cvm.post(world, A, d.request()).json()["payload"]["thing_name"] for d in devices]
        tables = streams.global_tables
        if tables is None:
            raise SystemExit("the dev stack declares no global table")

        def pending() -> dict[str, dict[str, Any]]:
            tables.replicate()
            return {r["dynamodb"]["Keys"]["thingName"]["S"]: r for r in pipe.reader.read()
                    if matches(pipe.patterns, r)}

        def measured(names: list[str], label: str) -> None:
            figures = _figures(world, [records[n] for n in names[:-1]])
            figures.transitions, figures.history_bytes, figures.history_bytes_without_data = \
                _transitions(world, standard_arn, records[names[-1]])
            results[label] = figures

        records = pending()
        measured(own, "new device, our CA")
        measured(amazon, "new device, Amazon-issued")
        results["same record again"] = _figures(world, [records[n] for n in own[:-1]])

        dynamodb, table = world.client("dynamodb", A), world.table("device-inventory")
        for names, status in ((own, "REVOKED"), (amazon, "DELETED")):  # an operator's changes
            for name in names:
                dynamodb.update_item(TableName=table, Key={"thingName": {"S": name}},
                                     UpdateExpression="SET #s = :s, version = version + :one, "
                                                      "writerRegion = :a",
                                     ExpressionAttributeNames={"#s": "status"},
                                     ExpressionAttributeValues={":s": {"S": status},
                                                                ":one": {"N": "1"}, ":a": {"S": A}})
        records = pending()
        measured(own, "revocation")
        measured(amazon, "tombstone (deletion)")
    return results


# --- 2. cost -----------------------------------------------------------------------------------

def cost_per_million(figures: PathFigures, *, call_ms: float, batch_size: int) -> dict[str, float]:
    """Ours, per million devices per extra region (a new device)."""
    duration = math.ceil(figures.calls_per_device * call_ms / 100) / 10  # 100 ms steps
    gb_seconds = 0.0625 * duration  # 64 MB: definition + payload stay far below
    million = 1e6
    return {
        "pipe requests (records written elsewhere only)": PIPE_REQUEST * million,
        "Express requests (1 execution per record, worst case)": EXPRESS_REQUEST * million,
        f"Express duration (~{duration:.1f} s x 64 MB)": EXPRESS_GB_SECOND * gb_seconds * million,
        "DynamoDB consistent GetItem (1 RRU)": DYNAMODB_READ_UNIT * million,
        f"CloudWatch Logs (level ALL with data, ~{figures.history_bytes // 1000} KB)":
            LOGS_INGEST_GB * figures.history_bytes / 1e9 * million,
        f"  (logExecutionData false: ~{figures.history_bytes_without_data // 1000} KB)":
            LOGS_INGEST_GB * figures.history_bytes_without_data / 1e9 * million,
        f"  (batch of {batch_size}: Express requests would be)":
            EXPRESS_REQUEST * million / batch_size,
    }


def seed_cost_per_million(*, lambda_ms: float) -> dict[str, float]:
    million = 1e6
    lambda_gb_seconds = 0.125 * math.ceil(lambda_ms) / 1000  # 128 MB, 1 ms billing
    return {
        "Standard transitions (9 per replicated device)":
            STANDARD_TRANSITION * SEED_TRANSITIONS_REPLICA * million,
        "Standard transitions in the origin region (3, no-op)":
            STANDARD_TRANSITION * SEED_TRANSITIONS_ORIGIN * million,
        "pipe requests (unfiltered: both regions)": 2 * PIPE_REQUEST * million,
        "custom bus events (both regions)": 2 * BUS_EVENT * million,
        "Lambda: cross-region DescribeCertificate": (
            LAMBDA_REQUEST + LAMBDA_GB_SECOND * lambda_gb_seconds) * million,
        "inter-region transfer (~2 KB PEM)": INTER_REGION_GB * 2e3 / 1e9 * million,
        "CloudWatch Logs (the seed configures none)": 0.0,
    }


# --- 3. backfill -------------------------------------------------------------------------------

class InjectedQuota:
    """AWS-like throttling per IoT API: a token bucket of `rate` per second, 1 s burst."""

    def __init__(self, rates: Mapping[str, float]) -> None:
        self.rates = dict(rates)
        self._tokens = dict(rates)
        self._updated = time.monotonic()
        self._lock = threading.Lock()
        self.accepted: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()

    def __call__(self, call: Any) -> None:
        if call.service != "iot" or call.operation not in self.rates:
            return
        with self._lock:
            now = time.monotonic()
            elapsed, self._updated = now - self._updated, now
            for api, rate in self.rates.items():
                self._tokens[api] = min(rate, self._tokens[api] + elapsed * rate)
            if self._tokens[call.operation] < 1:
                self.throttled[call.operation] += 1
                raise ClientError({"Error": {"Code": "ThrottlingException",
                                             "Message": "Rate exceeded"}}, call.operation)
            self._tokens[call.operation] -= 1
            self.accepted[call.operation] += 1


@dataclass
class ReplayStats:
    absorbed: int = 0  # throttled calls retried successfully (inside "the machine")
    escaped: int = 0  # repairs whose retries ran out (reported to the tool, requeued)
    lock: threading.Lock = field(default_factory=threading.Lock)


class MachinePathExecutor:
    """The machine's new-device path, call for call, with its Retry policy (interval,
    backoff, FULL jitter, attempts): what an Express execution does for a repair request
    whose device is new in the region."""

    OPERATIONS = ["GetItem", "CreateThing", "Register", "AttachThingPrincipal", "AttachPolicy",
                  "GetItem"]

    def __init__(self, *, iot: Any, dynamodb: Any, table: str, policy: str, ca_pem: str,
                 account: str, settings: ReplicationSettings, stats: ReplayStats) -> None:
        self.iot, self.dynamodb, self.table, self.policy = iot, dynamodb, table, policy
        self.ca_pem, self.account, self.settings, self.stats = ca_pem, account, settings, stats
        self._names = iter(range(10**12))
        self._lock = threading.Lock()

    def _retrying(self, call: Any, seen: list[bool], **kwargs: Any) -> Any:
        attempt = 0
        while True:
            try:
                return call(**kwargs)
            except ClientError as error:
                if error.response["Error"]["Code"] != "ThrottlingException" or \
                        attempt >= self.settings.retry_max_attempts:
                    raise
                delay = (self.settings.retry_interval_seconds
                         * self.settings.retry_backoff_rate ** attempt)
                attempt += 1
                seen[0] = True
                with self.stats.lock:
                    self.stats.absorbed += 1
                time.sleep(random.uniform(0, delay))  # JitterStrategy FULL

    def apply(self, region: str, thing_name: str) -> Outcome:
        with self._lock:
            execution = f"bench-{next(self._names)}"
        seen = [False]  # met throttling
        try:
            item = self.dynamodb.get_item(TableName=self.table, ConsistentRead=True,
                                          Key={"thingName": {"S": thing_name}})["Item"]
            self._retrying(self.iot.create_thing, seen, thingName=thing_name, attributePayload={
                "attributes": {"replicatedBy": f"{execution}/{thing_name}"}})
            if item["issuer"]["S"] == "OWN_CA":
                self._retrying(self.iot.register_certificate, seen,
                               certificatePem=item["certificatePem"]["S"],
                               caCertificatePem=self.ca_pem, status="ACTIVE")
            else:
                self._retrying(self.iot.register_certificate_without_ca, seen,
                               certificatePem=item["certificatePem"]["S"], status="ACTIVE")
            arn = f"arn:aws:iot:{region}:{self.account}:cert/{item['certificateId']['S']}"
            self._retrying(self.iot.attach_thing_principal, seen, thingName=thing_name,
                           principal=arn, thingPrincipalType="EXCLUSIVE_THING")
            self._retrying(self.iot.attach_policy, seen, policyName=self.policy, target=arn)
            self.dynamodb.get_item(TableName=self.table, ConsistentRead=True,  # RecheckAfterEnabling
                                   Key={"thingName": {"S": thing_name}})
            return Outcome(True, throttled=seen[0])
        except ClientError as error:
            code = error.response["Error"]["Code"]
            throttled = code == "ThrottlingException"
            if throttled:
                with self.stats.lock:
                    self.stats.escaped += 1
            return Outcome(False, f"Iot.{code}", throttled)


certificate_id = contract_certificate_id  # what AWS IoT names a certificate


def per_device_calls(amazon_share: float) -> dict[str, float]:
    """IoT calls per new device, by API, for a fleet with this share of Amazon-issued
    certificates (the 4-call path of the machine)."""
    return {"CreateThing": 1.0, "AttachThingPrincipal": 1.0, "AttachPolicy": 1.0,
            "RegisterCertificate": 1.0 - amazon_share,
            "RegisterCertificateWithoutCA": amazon_share}


def device_rate(quotas: Mapping[str, float], calls: Mapping[str, float]) -> tuple[float, str]:
    """Devices per second the quotas allow, and the API that binds."""
    return min(((quotas[api] / n, api) for api, n in calls.items() if n > 0))


@contextmanager
def indexed_iot() -> Iterator[None]:
    """moto finds things, certificates and a principal's things by scanning lists; at 10,000
    devices that dominates. Same answers, found by key (speed only)."""
    from moto.iot import models as iot_models
    from moto.iot.exceptions import ResourceNotFoundException

    from tools.local import moto_fidelity

    backend = iot_models.IoTBackend
    things_of: dict[int, dict[str, set[str]]] = {}

    def index(self: Any) -> dict[str, set[str]]:
        return things_of.setdefault(id(self), {})

    def describe_thing(self: Any, thing_name: str) -> Any:
        found = self.things.get(f"arn:aws:iot:{self.region_name}:{self.account_id}:thing/{thing_name}")
        if found is None:
            raise ResourceNotFoundException()
        return found

    def describe_certificate(self: Any, certificate_id: str) -> Any:
        if certificate_id not in self.certificates:
            raise ResourceNotFoundException()
        return self.certificates[certificate_id]

    attach, detach = backend.attach_thing_principal, backend.detach_thing_principal

    def attach_indexed(self: Any, thing_name: str, principal_arn: str) -> None:
        attach(self, thing_name=thing_name, principal_arn=principal_arn)
        index(self).setdefault(principal_arn, set()).add(thing_name)

    def detach_indexed(self: Any, thing_name: str, principal_arn: str) -> None:
        detach(self, thing_name=thing_name, principal_arn=principal_arn)
        index(self).get(principal_arn, set()).discard(thing_name)

    with ExitStack() as stack:
        for name, replacement in (("describe_thing", describe_thing),
                                  ("describe_certificate", describe_certificate),
                                  ("attach_thing_principal", attach_indexed),
                                  ("detach_thing_principal", detach_indexed)):
            stack.enter_context(mock.patch.object(backend, name, replacement))
        stack.enter_context(mock.patch.object(
            moto_fidelity, "_things_of", lambda self, principal: sorted(index(self).get(principal, ()))))
        yield


@contextmanager
def serialized_moto() -> Iterator[None]:
    """moto's backends are not thread-safe; the scheduler's threads take turns in it."""
    from moto.core.botocore_stubber import BotocoreStubber

    lock = threading.Lock()
    original = BotocoreStubber.__call__

    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return original(self, *args, **kwargs)

    with mock.patch.object(BotocoreStubber, "__call__", call):
        yield


PROBE_DEVICES = 300
HEADROOM = 0.6  # the injected quota, as a share of what moto served in the probe


def _inventory_items(names: Sequence[str], certificates: Sequence[str],
                     amazon: Sequence[bool], ca_id: str) -> Iterator[dict[str, Any]]:
    """First writes in region A, per the inventory contract."""
    from lambdas.contracts.inventory import InventoryItem, Issuer, Onboarding

    for name, pem, is_amazon in zip(names, certificates, amazon):
        yield InventoryItem.first(
            thing_name=name, certificate_id=certificate_id(pem), certificate_pem=pem,
            issuer=Issuer.AMAZON if is_amazon else Issuer.OWN_CA,
            ca_certificate_id=None if is_amazon else ca_id,
            onboarding=Onboarding.FLEET if is_amazon else Onboarding.JITR, region=A,
            not_after="2030-01-01T00:00:00.000Z",
            updated_at="2026-01-01T00:00:00.000Z").to_attribute_values()


def backfill(devices: int, quota_scale: float | None, amazon_share: float, utilization: float,
             recorded_path: Sequence[str], in_flight: int) -> dict[str, Any]:
    """Backfill `devices` into region B against injected per-API quotas. With no
    `quota_scale`, the quotas are AWS's defaults scaled to HEADROOM of what moto serves on this
    machine (measured first on PROBE_DEVICES devices), so the figure measures the tool's
    pacing rather than moto's speed."""
    import concurrent.futures
    from itertools import islice

    import boto3

    from tests.support.certificates import issue

    expected = ["GetItem", "CreateThing", "RegisterCertificate", "AttachThingPrincipal",
                "AttachPolicy", "GetItem"]
    if list(recorded_path) != expected:
        raise SystemExit(f"the machine's new-device path changed: {recorded_path}; "
                         "update MachinePathExecutor")
    pki = pki_material.bootstrap()
    graph = stack_graph(pki)
    targets: RegionTargets = targets_from_outputs(graph.outputs)[B]
    settings = ReplicationSettings()  # the machine's production retry policy
    calls = per_device_calls(amazon_share)

    started = time.monotonic()
    total = devices + PROBE_DEVICES
    names = [f"fleet-{i:06d}" if i < devices else f"probe-{i:06d}" for i in range(total)]
    amazon = [i % 100 < amazon_share * 100 for i in range(total)]
    ca: Any = pki.intermediate  # a key and its certificate, as `issue` takes them
    certificates = [issue(name, None if is_amazon else ca).pem
                    for name, is_amazon in zip(names, amazon)]
    with open_world(graph, regions=[B], pki=pki, capabilities=["replication"]) as world, \
            indexed_iot(), serialized_moto():
        [registered_ca] = world.declared("aws:iot/caCertificate:CaCertificate", B)
        dynamodb = boto3.client("dynamodb", region_name=B)
        items = _inventory_items(names, certificates, amazon, certificate_id(pki.intermediate_pem))
        while batch := list(islice(items, 25)):
            dynamodb.batch_write_item(RequestItems={targets.table_name: [
                {"PutRequest": {"Item": item}} for item in batch]})
        stats = ReplayStats()
        executor = MachinePathExecutor(
            iot=boto3.client("iot", region_name=B), dynamodb=dynamodb,
            table=targets.table_name, policy=targets.device_policy_name,
            ca_pem=world.state(registered_ca)["caCertificatePem"], account="123456789012",
            settings=settings, stats=stats)
        setup_seconds = time.monotonic() - started

        probe_started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(in_flight) as pool:
            assert all(o.ok for o in pool.map(lambda n: executor.apply(B, n), names[devices:]))
        moto_capacity = PROBE_DEVICES / (time.monotonic() - probe_started)
        if quota_scale is None:
            quota_scale = HEADROOM * moto_capacity / device_rate(DEFAULT_IOT_API_QUOTAS,
                                                                 calls)[0]
        scaled = {api: q * quota_scale for api, q in DEFAULT_IOT_API_QUOTAS.items()}

        quota = InjectedQuota(scaled)
        world.calls.throttle = quota
        limiter = QuotaLimiter(scaled, utilization)
        with tempfile.TemporaryDirectory() as journal_dir:
            journal = Journal(Path(journal_dir) / "backfill.jsonl")
            report = reconcile_region(targets, iot=boto3.client("iot", region_name=B),
                                      dynamodb=dynamodb, executor=executor, limiter=limiter,
                                      journal=journal, progress_out=sys.stderr,
                                      in_flight=in_flight)
            journal.close()
        world.calls.throttle = None
        assert report.repair is not None
        attached = len(world.client("iot", B).list_targets_for_policy(
            policyName=targets.device_policy_name, pageSize=250)["targets"])
    repaired = report.repair
    elapsed = repaired.elapsed_seconds
    binding_rate, binding_api = device_rate(scaled, calls)
    ratio = quota.accepted[binding_api] / elapsed / scaled[binding_api]
    default_rate, default_api = device_rate(DEFAULT_IOT_API_QUOTAS, calls)
    return {
        "devices": devices, "setup_seconds": setup_seconds,
        "moto_capacity_devices_per_second": moto_capacity, "quota_scale": quota_scale,
        "elapsed_seconds": elapsed, "repaired": repaired.repaired,
        "failed": len(repaired.failed), "devices_with_policy_in_b": attached,
        "binding_api": binding_api, "binding_quota": scaled[binding_api],
        "ideal_devices_per_second": binding_rate,
        "achieved_devices_per_second": repaired.repaired / elapsed,
        "achieved_over_quota": ratio,
        "per_api_use": {api: quota.accepted[api] / elapsed / scaled[api]
                        for api in calls if calls[api] > 0},
        "throttled_calls": sum(quota.throttled.values()),
        "absorbed_by_retries": stats.absorbed,
        "repairs_that_met_throttling": repaired.throttled_signals,
        "escaped_throttles": repaired.throttled_outcomes,
        "default_binding_api": default_api,
        "default_devices_per_second": default_rate * ratio,
    }


# --- report ------------------------------------------------------------------------------------

# --- 4. shadows ------------------------------------------------------------------------------

# us-east-1 list prices (components/shadow_replication/README.md, "Sources").
SHADOW_OPERATION = 1.25e-6  # Device Shadow operation (per 1 KB)
RULE_TRIGGERED = 0.15e-6
RULE_ACTION = 0.15e-6
DYNAMODB_WRITE = 0.625e-6  # WRU and replicated WRU, on demand
DYNAMODB_READ = 0.125e-6  # RRU
LAMBDA_REQUEST = 0.20e-6
LAMBDA_GB_SECOND = 0.0000166667


def shadow_changes(changes: int) -> dict[str, Any]:
    """`changes` shadow changes in A (new classic, update removing a key, named, delete), all
    applied in B: calls per change by the capture (A) and the apply (B), calls from B's
    function to A, and what B's rules handed its function (echoes)."""
    from tools.local.journeys import shadows as sh

    pki = pki_material.bootstrap()
    with open_world(stack_graph(pki), regions=[A, B], pki=pki,
                    capabilities=["shadow_replication"]) as world:
        for index in range(changes // 4):
            sh.ensure_thing(world, A, f"bench-{index}")
            sh.ensure_thing(world, B, f"bench-{index}")
        # Each change replicates before the next (changes spaced in time; closer ones
        # coalesce: B applies only the current record, the others are superseded).
        return each_applied_in_b(world, [
            change
            for index in range(changes // 4)
            for thing in [f"bench-{index}"]
            for change in (
                partial(sh.update, world, A, thing, {"reported": {"t": index, "fw": "1.0"}}),
                partial(sh.update, world, A, thing, {"reported": {"fw": None}}),
                partial(sh.update, world, A, thing, {"desired": {"mode": "eco"}}, shadow="config"),
                partial(sh.delete, world, A, thing, shadow="config"))])


def each_applied_in_b(world: World, changes: list[Callable[[], Any]]) -> dict[str, Any]:
    """Make each change in A and let B apply it before the next; `per_change` of the calls."""
    from tools.local.emulation.rules_engine import RulesEngine

    world.settle()
    world.calls.clear()
    deliveries = len(world.emulation(RulesEngine).deliveries)
    for change in changes:
        change()
        world.settle()
    b_rules = [d for d in world.emulation(RulesEngine).deliveries[deliveries:]
               if B.replace("-", "_") in d.rule and d.action == "lambda"]
    return per_change(list(world.calls.calls), b_rules, len(changes))


def per_change(calls: list[Any], b_rules: list[Any], done: int) -> dict[str, Any]:
    """Calls per change by A's capture and B's apply, B's calls to other regions, and the
    rule invocations that reached B's function."""
    apply = Counter(c.operation for c in calls if c.caller.endswith(f"{B}-shadow-replication"))
    capture = Counter(c.operation for c in calls if c.caller.endswith(f"{A}-shadow-replication"))
    cross = sum(1 for c in calls if c.caller.endswith(f"{B}-shadow-replication") and c.region != B)
    return {"changes": done, "apply": {k: v / done for k, v in apply.items()},
            "capture": {k: v / done for k, v in capture.items()}, "cross_region": cross,
            "b_rule_invocations_per_change": len(b_rules) / done}


def shadow_cost_per_million(figures: Mapping[str, Any], *, lambda_ms: float) -> dict[str, float]:
    apply = figures["apply"]
    shadow_ops = sum(v for k, v in apply.items() if k.endswith("ThingShadow"))
    million = 1e6
    return {
        "global table replicated write (1 rWRU, record <= 1 KB)": DYNAMODB_WRITE * million,
        "consistent GetItem (measured per change)": DYNAMODB_READ * apply.get("GetItem", 0) * million,
        "Device Shadow operations (measured per change)": SHADOW_OPERATION * shadow_ops * million,
        "Lambda requests (batch of 1, worst case)": LAMBDA_REQUEST * million,
        f"Lambda duration ({lambda_ms:.0f} ms at 256 MB)":
            LAMBDA_GB_SECOND * 0.25 * lambda_ms / 1000 * million,
        "rules triggered by applied updates (WHERE drops them)": RULE_TRIGGERED * million,
        "rule actions that reach the function in B (deletes: content check)":
            RULE_ACTION * figures["b_rule_invocations_per_change"] * million,
    }


# --- 5. device organisation -----------------------------------------------------------------

def organisation_changes(changes: int) -> dict[str, Any]:
    """`changes` organisation changes in A (attributes set, group joined, second group
    joined, first group left), each applied in B before the next."""
    from tools.local.journeys import shadows as sh

    pki = pki_material.bootstrap()
    with open_world(stack_graph(pki), regions=[A, B], pki=pki,
                    capabilities=["shadow_replication"]) as world:
        for region in (A, B):
            for group in ("bench-a", "bench-b"):
                sh.ensure_group(world, region, group)
        for index in range(changes // 4):
            sh.ensure_thing(world, A, f"bench-org-{index}")
            sh.ensure_thing(world, B, f"bench-org-{index}")
        figures = each_applied_in_b(world, [
            change
            for index in range(changes // 4)
            for thing in [f"bench-org-{index}"]
            for change in (partial(sh.describe, world, A, thing, {"site": f"s{index}"}),
                           partial(sh.join, world, A, thing, "bench-a"),
                           partial(sh.join, world, A, thing, "bench-b"),
                           partial(sh.leave, world, A, thing, "bench-a"))])
        in_sync = all(sh.organisation(world, B, f"bench-org-{i}")
                      == sh.organisation(world, A, f"bench-org-{i}") for i in range(changes // 4))
    return {**figures, "in_sync": in_sync}


def organisation_cost_per_million(figures: Mapping[str, Any], *,
                                  lambda_ms: float) -> dict[str, float]:
    """B's share: the replicated write, the apply (consistent read, registry calls: free),
    and the echo each applied change causes (a rule, its action, an invocation, one read)."""
    echoes = figures["b_rule_invocations_per_change"]
    invocations = 1 + echoes
    million = 1e6
    return {
        "global table replicated write (1 rWRU, record <= 1 KB)": DYNAMODB_WRITE * million,
        "consistent GetItem (apply + echo checks, measured)":
            DYNAMODB_READ * figures["apply"].get("GetItem", 0) * million,
        "applied log PutItem in B (entry + its consumption, measured)":
            DYNAMODB_WRITE * figures["apply"].get("PutItem", 0) * million,
        "applied log replicated to the other region (1 rWRU per PutItem)":
            DYNAMODB_WRITE * figures["apply"].get("PutItem", 0) * million,
        "registry API calls (DescribeThing, UpdateThing, Add/Remove...: free)": 0.0,
        "rules triggered by the applied change's event (measured)": RULE_TRIGGERED * echoes * million,
        "rule actions reaching B's function (measured)": RULE_ACTION * echoes * million,
        "Lambda requests (apply + echo captures)": LAMBDA_REQUEST * invocations * million,
        f"Lambda duration ({lambda_ms:.0f} ms each at 256 MB)":
            LAMBDA_GB_SECOND * 0.25 * lambda_ms / 1000 * invocations * million,
    }


def organisation_part(args: argparse.Namespace) -> int:
    print(f"\n== 5. Device organisation: {args.organisation_changes} changes in A applied in B")
    figures = organisation_changes(args.organisation_changes)
    print_calls(figures)
    print(f"  {'B echo captures per change':<34} {figures['b_rule_invocations_per_change']:.2f} "
          "(the registry events of applied changes: recognised by the applied log)")
    print(f"  {'B equals A after every change':<34} {figures['in_sync']}")
    total = print_costs("organisation", organisation_cost_per_million(
        figures, lambda_ms=args.shadow_lambda_ms))
    print(f"  a million devices each changing groups or attributes once a day (30 M changes a "
          f"month): ${total * 30:,.0f} per extra region per month")
    return 0


def print_calls(figures: Mapping[str, Any]) -> None:
    for side in ("capture", "apply"):
        shown = ", ".join(f"{k} {v:.2f}" for k, v in sorted(figures[side].items()))
        print(f"  {side + ' calls per change':<34} {shown}")
    print(f"  {'calls from B to other regions':<34} {figures['cross_region']}")


def print_costs(kind: str, rows: Mapping[str, float]) -> float:
    """The cost rows per million changes and their total (returned)."""
    width = max(len(label) for label in rows)
    print(f"  cost per million {kind} changes per extra region, us-east-1 list prices:")
    for label, dollars in rows.items():
        print(f"    {label:<{width}} ${dollars:>7.2f}")
    total = sum(rows.values())
    print(f"    {'total':<{width}} ${total:>7.2f}")
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=int, default=8, help="devices per path in part 1")
    parser.add_argument("--devices", type=int, default=10_000, help="backfill inventory size")
    parser.add_argument("--quota-scale", type=float, default=None,
                        help="injected quota = AWS default x this (default: 60%% of what "
                             "moto serves on this machine)")
    parser.add_argument("--amazon-share", type=float, default=0.5,
                        help="share of Amazon-issued certificates in the fleet")
    parser.add_argument("--utilization", type=float, default=ReplicationSettings().backfill_utilization)
    parser.add_argument("--fleet", type=int, default=1_000_000)
    parser.add_argument("--call-ms", type=float, default=100.0,
                        help="assumed latency of one AWS call inside Step Functions (cost)")
    parser.add_argument("--lambda-ms", type=float, default=300.0,
                        help="assumed duration of the seed's cross-region Lambda (cost)")
    parser.add_argument("--in-flight", type=int, default=8,
                        help="concurrent repairs (moto answers in ~1 ms, an Express "
                             "execution in ~1 s: the tool's default is 2 s of the quota)")
    parser.add_argument("--skip-backfill", action="store_true")
    parser.add_argument("--shadow-changes", type=int, default=40,
                        help="shadow changes in part 4 (a multiple of 4)")
    parser.add_argument("--shadow-lambda-ms", type=float, default=50.0,
                        help="assumed duration of one shadow apply invocation (cost)")
    parser.add_argument("--only-shadows", action="store_true",
                        help="run parts 4 and 5 only (device state)")
    parser.add_argument("--organisation-changes", type=int, default=40,
                        help="organisation changes in part 5 (a multiple of 4)")
    parser.add_argument("--only-organisation", action="store_true", help="run part 5 only")
    args = parser.parse_args(argv)
    if args.only_organisation:
        return organisation_part(args)
    if args.only_shadows:
        shadow_part(args)
        return organisation_part(args)
    wall = time.monotonic()

    print("== 1. API calls and state transitions per replicated device (region B; A down)")
    figures = per_device(args.sample)
    print(f"{'path':<28}{'calls/device':>13}{'cross-region':>14}{'transitions':>13}  calls")
    for label, fig in figures.items():
        transitions = str(fig.transitions) if fig.transitions else "-"
        print(f"{label:<28}{fig.calls_per_device:>13.1f}{fig.cross_region_calls:>14}"
              f"{transitions:>13}  {', '.join(fig.operations)}")
    new = figures["new device, our CA"]
    verdict = "OK" if new.calls_per_device <= 6 and all(
        f.cross_region_calls == 0 for f in figures.values()) else "MISSED"
    print(f"target: <= 6 calls for a new device (5 registry + the re-read), 0 cross-region: {verdict}")

    print("\n== 2. Cost per million devices per extra region, us-east-1 list prices")
    batch = ReplicationSettings().batch_size
    ours = cost_per_million(new, call_ms=args.call_ms, batch_size=batch)
    seed = seed_cost_per_million(lambda_ms=args.lambda_ms)
    for title, rows in (("ours (pipe filter -> Express, REQUEST_RESPONSE)", ours),
                        ("seed (pipe -> bus -> Standard + cross-region Lambda)", seed)):
        print(title)
        total = 0.0
        for label, dollars in rows.items():
            print(f"  {label:<58} ${dollars:>9.2f}")
            total += 0 if label.startswith("  ") else dollars
        print(f"  {'total':<58} ${total:>9.2f}")
    print("  (both: X-Ray at $5.00 per million traces recorded if every execution is "
          "sampled; IoT registry APIs are free)")
    print(f"  (our machine as a Standard workflow: {new.transitions} transitions = "
          f"${STANDARD_TRANSITION * new.transitions * 1e6:.2f} per million: why Express)")

    if not args.skip_backfill:
        print(f"\n== 3. Backfill of {args.devices} devices into a new region "
              f"(utilization {args.utilization})")
        result = backfill(args.devices, args.quota_scale, args.amazon_share, args.utilization,
                          new.operations, args.in_flight)
        for key, value in result.items():
            shown = (f"{value:.3f}" if isinstance(value, float) else
                     ", ".join(f"{k} {v:.2f}" for k, v in value.items())
                     if isinstance(value, dict) else value)
            print(f"  {key:<32} {shown}")
        hours = args.fleet / result["default_devices_per_second"] / 3600
        print(f"target: achieved/quota >= 0.9: "
              f"{'OK' if result['achieved_over_quota'] >= 0.9 else 'MISSED'}; "
              f"escaped throttling errors 0: "
              f"{'OK' if result['escaped_throttles'] == 0 else 'MISSED'}")
        print(f"projected: a new region for a {args.fleet:,}-device fleet at AWS's default "
              f"quotas ({result['default_binding_api']} binds): {hours:.1f} h")
    shadow_part(args)
    organisation_part(args)
    print(f"\n(benchmark wall time {time.monotonic() - wall:.0f} s)")
    return 0


def shadow_part(args: argparse.Namespace) -> int:
    print(f"\n== 4. Shadow replication: {args.shadow_changes} changes in A applied in B")
    figures = shadow_changes(args.shadow_changes)
    print_calls(figures)
    print(f"  {'B rule invocations per change':<34} {figures['b_rule_invocations_per_change']:.2f} "
          "(applied updates dropped by the rules' WHERE; applied deletes reach the function)")
    total = print_costs("shadow", shadow_cost_per_million(figures, lambda_ms=args.shadow_lambda_ms))
    print(f"  a million devices changing a shadow once an hour (720 M changes a month): "
          f"${total * 720:,.0f} per extra region per month")
    return 0


if __name__ == "__main__":
    sys.exit(main())
