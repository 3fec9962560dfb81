"""Test fabric for cross-region replication: two (or more) regions of AWS in moto, wired the
way the *declared* stack wires them.

moto has neither global-table replication nor EventBridge Pipes delivery, and no
`StartSyncExecution`. This fabric builds them from the resource graph of
`tools.harness.evaluate_program` (never from a copy of what the program declares):

* each region gets the declared inventory table (with its stream), device policy, CA
  certificate, dead-letter queue and replication state machine (the declared definition,
  EXPRESS);
* `replicate()` is the global table: it copies each region's *local* writes to the other
  regions' tables, last writer (latest `updatedAt`) wins, as global tables 2019.11.21 do;
  a copied write shows up in the target's stream like a replicated write does;
* `deliver(region)` is that region's pipe: it reads the region's stream, applies the
  declared filter pattern (EventBridge pattern matching), batches by the declared batch
  size, runs the declared machine synchronously, retries failed records up to the declared
  `maximumRetryAttempts` (from the failed record: `batchItemFailures`; a failed execution is
  bisected down to one record) and then sends the batch description to the declared DLQ
  (the pipe semantics are tools/local/emulation/pipes.py's, shared with the local run);
* `StartSyncExecution` (used by tools/reconcile.py) is answered from moto's interpreter;
* every AWS call any client makes (tests, tool, the interpreter's aws-sdk tasks) is logged
  with its region through a botocore `before-call` hook on every client created while the
  fabric is active; `down(region)` makes any call to that region raise `RegionDown`.

moto is made faithful to AWS IoT by the shared `tests/support/faithful_iot.py` (REVOKED is
final, EXCLUSIVE_THING, idempotent CreateThing, ...); `indexed_iot()` below only makes moto's
lookups by name and id fast enough for a 10,000-device backfill.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, cast
from unittest import mock

import boto3
import botocore.session
from moto.iot import models as iot_models
from moto.iot.exceptions import ResourceNotFoundException

from lambdas.contracts import inventory
from lambdas.contracts.inventory import InventoryItem
from tools.harness import ACCOUNT_ID, RecordedResource, StackGraph
from tools.local.emulation.pipes import (
    Delivery,
    dead_letter_message,
    deliver,
    passes_filter,
    pipe_record,
    run_sync_execution,
)
from tools.replication_reconcile import attached_policy

PIPE = "aws:pipes/pipe:Pipe"
STATE_MACHINE = "aws:sfn/stateMachine:StateMachine"
QUEUE = "aws:sqs/queue:Queue"
CA_CERTIFICATE = "aws:iot/caCertificate:CaCertificate"

MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "iot": {"use_valid_cert": True}}


class RegionDown(AssertionError):
    """A call reached a region the test declared down."""


# --- moto IoT: faithful (shared fabric) and indexed (speed only) -----------------------------

_Backend = iot_models.IoTBackend
_MOTO_CREATE_THING = _Backend.create_thing  # before any patch: moto's own


def _thing_arn(backend: Any, thing_name: str) -> str:
    return f"arn:aws:iot:{backend.region_name}:{backend.account_id}:thing/{thing_name}"


def _describe_thing(self: Any, thing_name: str) -> Any:
    thing = self.things.get(_thing_arn(self, thing_name))
    if thing is None:
        raise ResourceNotFoundException()
    return thing


def _describe_certificate(self: Any, certificate_id: str) -> Any:
    certificate = self.certificates.get(certificate_id)
    if certificate is None:
        raise ResourceNotFoundException()
    return certificate


def _get_principal(original: Callable[..., Any]) -> Callable[..., Any]:
    def get_principal(self: Any, principal_arn: str) -> Any:
        if ":cert/" in principal_arn:
            certificate = self.certificates.get(principal_arn.rsplit("/", 1)[-1])
            if certificate is None or certificate.arn != principal_arn:
                raise ResourceNotFoundException()
            return certificate
        return original(self, principal_arn)
    return get_principal


def _principal_index(backend: Any) -> dict[str, set[str]]:
    """principal ARN -> things it is attached to."""
    if not hasattr(backend, "_replication_fabric_things_of"):
        backend._replication_fabric_things_of = {}
    found: dict[str, set[str]] = backend._replication_fabric_things_of
    return found


def _indexed_attach(original: Callable[..., Any]) -> Callable[..., Any]:
    def attach_thing_principal(self: Any, thing_name: str, principal_arn: str) -> None:
        original(self, thing_name=thing_name, principal_arn=principal_arn)
        _principal_index(self).setdefault(principal_arn, set()).add(thing_name)
    return attach_thing_principal


def _indexed_detach(original: Callable[..., Any]) -> Callable[..., Any]:
    def detach_thing_principal(self: Any, thing_name: str, principal_arn: str) -> None:
        original(self, thing_name=thing_name, principal_arn=principal_arn)
        _principal_index(self).get(principal_arn, set()).discard(thing_name)
    return detach_thing_principal


def _create_thing(faithful: Callable[..., Any]) -> Callable[..., Any]:
    """A new name goes straight to moto; an existing one to the faithful layer (which scans
    every thing to compare configurations)."""
    def create_thing(self: Any, thing_name: str, thing_type_name: str,
                     attribute_payload: dict[str, Any] | None,
                     billing_group_name: str | None = None) -> Any:
        create = faithful if _thing_arn(self, thing_name) in self.things else _MOTO_CREATE_THING
        return create(self, thing_name=thing_name, thing_type_name=thing_type_name,
                      attribute_payload=attribute_payload, billing_group_name=billing_group_name)
    return create_thing


def _things_of(backend: Any, principal_arn: str) -> list[str]:
    return sorted(_principal_index(backend).get(principal_arn, set()))


@contextmanager
def indexed_iot() -> Iterator[None]:
    """moto finds things, certificates and a principal's things by scanning lists; with a
    10,000-device backfill that dominates. Same answers, found by key. Enter inside
    `faithful_iot()` (it wraps the methods the faithful layer calls)."""
    from tools.local import faithful_iot as faithful_module

    with ExitStack() as stack:
        for name, replacement in {
            "describe_thing": _describe_thing,
            "describe_certificate": _describe_certificate,
            "_get_principal": _get_principal(_Backend._get_principal),
            "attach_thing_principal": _indexed_attach(_Backend.attach_thing_principal),
            "detach_thing_principal": _indexed_detach(_Backend.detach_thing_principal),
            "create_thing": _create_thing(_Backend.create_thing),
        }.items():
            stack.enter_context(mock.patch.object(_Backend, name, replacement))
        stack.enter_context(mock.patch.object(faithful_module, "_things_of", _things_of))
        yield


# --- every client: call log, region-down guard, StartSyncExecution --------------------------

@dataclass(frozen=True)
class ApiCall:
    region: str
    service: str  # botocore service id in event names, e.g. "iot", "dynamodb", "sfn"
    operation: str  # e.g. "RegisterCertificate"


class ClientHooks:
    """Installs a `before-call` hook on every botocore client created while active."""

    def __init__(self) -> None:
        self.calls: list[ApiCall] = []
        self.down: set[str] = set()
        self.throttle: Callable[[ApiCall], None] | None = None  # raise to throttle a call
        self._lock = threading.Lock()

    def _before_call(self, region: str, event_name: str, **kwargs: Any) -> Any:
        _, service, operation = event_name.split(".")[:3]
        call = ApiCall(region, service, operation)
        with self._lock:
            self.calls.append(call)
        if region in self.down:
            raise RegionDown(f"{service}.{operation} called in {region}, which is down")
        if self.throttle is not None:
            self.throttle(call)
        if service == "sfn" and operation == "StartSyncExecution":
            # before-call sees the serialized request: the JSON protocol's body
            return start_sync_execution(region, json.loads(kwargs["params"]["body"]))
        return None

    def calls_in(self, region: str, service: str | None = None) -> list[ApiCall]:
        return [c for c in self.calls if c.region == region
                and (service is None or c.service == service)]

    @contextmanager
    def active(self) -> Iterator[ClientHooks]:
        original = botocore.session.Session.create_client
        hooks = self

        def create_client(session: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
            client = original(session, service_name, *args, **kwargs)
            client.meta.events.register(
                "before-call", functools.partial(hooks._before_call, client.meta.region_name))
            return client

        with mock.patch.object(botocore.session.Session, "create_client", create_client):
            yield self


_names = itertools.count()


def start_sync_execution(region: str, params: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """moto answers StartSyncExecution with 404: run the execution and answer like AWS."""
    response = run_sync_execution(boto3.client("stepfunctions", region_name=region),
                                  params["stateMachineArn"], params.get("input", "{}"),
                                  name=params.get("name"))
    response.pop("result", None)
    response["ResponseMetadata"] = {"HTTPStatusCode": 200}
    return mock.Mock(status_code=200), response


# --- what the program declares, per region --------------------------------------------------

@dataclass(frozen=True)
class DeclaredRegion:
    region: str
    table_name: str
    machine_name: str
    machine_definition: str
    machine_type: str
    pipe_filter_patterns: tuple[str, ...]
    batch_size: int
    maximum_retry_attempts: int
    invocation_type: str
    dead_letter_queue_name: str
    device_policy_name: str
    ca_certificate_pem: str


_SECRET_SIGNATURE = "4dabf18193072939515e22adb298388d"  # Pulumi's secret sentinel key


def _plain(value: Any) -> Any:
    """Inputs the program marked secret are recorded wrapped; the value is what AWS gets."""
    if isinstance(value, dict) and _SECRET_SIGNATURE in value:
        return value["value"]
    return value


def _one(resources: Sequence[RecordedResource], what: str) -> RecordedResource:
    if len(resources) != 1:
        raise AssertionError(f"expected one {what}, the graph declares {len(resources)}")
    return resources[0]


def declared_regions(graph: StackGraph) -> dict[str, DeclaredRegion]:
    """Everything the fabric builds, read from the evaluated program's resource graph."""
    found: dict[str, DeclaredRegion] = {}
    for pipe in graph.of_type(PIPE):
        region = str(pipe.region)
        source = pipe.inputs["sourceParameters"]
        stream = source["dynamodbStreamParameters"]
        target = pipe.inputs["target"]
        machine = _one([m for m in graph.of_type(STATE_MACHINE)
                        if m.outputs.get("arn") == target], f"state machine {target}")
        queue = _one([q for q in graph.of_type(QUEUE)
                      if q.outputs.get("arn") == stream["deadLetterConfig"]["arn"]], "DLQ")
        ca = _one([c for c in graph.of_type(CA_CERTIFICATE) if c.region == region],
                  f"CA certificate in {region}")
        # arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>
        table_name = str(pipe.inputs["source"]).split(":table/", 1)[1].split("/stream/")[0]
        found[region] = DeclaredRegion(
            region=region,
            table_name=table_name,
            machine_name=str(machine.inputs["name"]),
            machine_definition=str(_plain(machine.inputs["definition"])),
            machine_type=str(machine.inputs["type"]),
            pipe_filter_patterns=tuple(f["pattern"] for f in
                                       source["filterCriteria"]["filters"]),
            batch_size=int(stream["batchSize"]),
            maximum_retry_attempts=int(stream["maximumRetryAttempts"]),
            invocation_type=pipe.inputs["targetParameters"][
                "stepFunctionStateMachineParameters"]["invocationType"],
            dead_letter_queue_name=str(queue.inputs["name"]),
            device_policy_name=attached_policy(str(_plain(machine.inputs["definition"]))),
            ca_certificate_pem=str(_plain(ca.inputs["caCertificatePem"])),
        )
    return found


# --- one region in moto -------------------------------------------------------------------

@dataclass
class Region:
    declared: DeclaredRegion
    iot: Any
    dynamodb: Any
    streams: Any
    sfn: Any
    sqs: Any
    machine_arn: str
    queue_url: str
    ca_certificate_id: str
    stream_arn: str
    shard_iterator: str | None = None
    stream_log: list[dict[str, Any]] = field(default_factory=list)
    replication_cursor: int = 0
    pipe_cursor: int = 0
    replicated_in: list[str] = field(default_factory=list)  # fingerprints of copied writes

    @property
    def name(self) -> str:
        return self.declared.region

    def cert_arn(self, certificate_id: str) -> str:
        return f"arn:aws:iot:{self.name}:{ACCOUNT_ID}:cert/{certificate_id}"

    # registry state, as tests assert it
    def certificate_status(self, certificate_id: str) -> str | None:
        try:
            status: str = self.iot.describe_certificate(
                certificateId=certificate_id)["certificateDescription"]["status"]
            return status
        except self.iot.exceptions.ResourceNotFoundException:
            return None

    def thing_exists(self, thing_name: str) -> bool:
        try:
            self.iot.describe_thing(thingName=thing_name)
            return True
        except self.iot.exceptions.ResourceNotFoundException:
            return False

    def principals_of(self, thing_name: str) -> list[str]:
        try:
            found: list[str] = self.iot.list_thing_principals(thingName=thing_name)["principals"]
            return found
        except self.iot.exceptions.ResourceNotFoundException:
            return []

    def things_of(self, certificate_id: str) -> list[str]:
        found: list[str] = self.iot.list_principal_things(
            principal=self.cert_arn(certificate_id))["things"]
        return found

    def policies_of(self, certificate_id: str) -> list[str]:
        attached = self.iot.list_attached_policies(target=self.cert_arn(certificate_id))
        return [p["policyName"] for p in attached["policies"]]

    def active_certificates_of(self, thing_name: str) -> list[str]:
        ids = [arn.rsplit("/", 1)[-1] for arn in self.principals_of(thing_name)]
        return [i for i in ids if self.certificate_status(i) == "ACTIVE"]

    def usable(self, thing_name: str, certificate_id: str) -> bool:
        """What a device needs to connect and act here with this certificate."""
        return (self.certificate_status(certificate_id) == "ACTIVE"
                and self.things_of(certificate_id) == [thing_name]
                and self.policies_of(certificate_id) == [self.declared.device_policy_name])

    def item(self, thing_name: str) -> dict[str, Any] | None:
        found = self.dynamodb.get_item(TableName=self.declared.table_name,
                                       Key={"thingName": {"S": thing_name}},
                                       ConsistentRead=True).get("Item")
        return None if found is None else {k: next(iter(v.values())) for k, v in found.items()}

    def dead_letters(self) -> list[dict[str, Any]]:
        received = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                            VisibilityTimeout=0)
        return [json.loads(m["Body"]) for m in received.get("Messages", [])]


def _fingerprint(record: Mapping[str, Any]) -> str:
    data = record["dynamodb"]
    image = data.get("NewImage") if record["eventName"] != "REMOVE" else data.get("Keys")
    return json.dumps([record["eventName"] == "REMOVE", image], sort_keys=True)


class ReplicationFabric:
    """The regions of the declared stack in moto, plus global-table replication and pipes.
    Create inside `mock_aws(config=MOTO_CONFIG)`, `faithful_iot()`, an active `SfnAdapter`
    and active `ClientHooks` (see `fabric()` below)."""

    def __init__(self, graph: StackGraph, hooks: ClientHooks,
                 regions: Sequence[str] | None = None) -> None:
        declared = declared_regions(graph)
        self.hooks = hooks
        self.regions: dict[str, Region] = {
            name: self._build(declared[name]) for name in (regions or sorted(declared))}
        self._clock = itertools.count(1)
        hooks.calls.clear()  # the log starts with the test, not with the fabric's setup

    @staticmethod
    def _build(declared: DeclaredRegion) -> Region:
        name = declared.region
        iot = boto3.client("iot", region_name=name)
        dynamodb = boto3.client("dynamodb", region_name=name)
        sfn = boto3.client("stepfunctions", region_name=name)
        sqs = boto3.client("sqs", region_name=name)
        streams = boto3.client("dynamodbstreams", region_name=name)
        ca_id = iot.register_ca_certificate(caCertificate=declared.ca_certificate_pem,
                                            setAsActive=True, allowAutoRegistration=True,
                                            certificateMode="SNI_ONLY")["certificateId"]
        iot.create_policy(policyName=declared.device_policy_name, policyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "iot:Connect",
                           "Resource": f"arn:aws:iot:{name}:{ACCOUNT_ID}:client/"
                                       "${iot:Connection.Thing.ThingName}"}]}))
        table = dynamodb.create_table(
            TableName=declared.table_name, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "thingName", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "thingName", "AttributeType": "S"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
        queue_url = sqs.create_queue(QueueName=declared.dead_letter_queue_name)["QueueUrl"]
        machine_arn = sfn.create_state_machine(
            name=declared.machine_name, definition=declared.machine_definition,
            type=cast(Any, declared.machine_type),
            roleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/{declared.machine_name}-sfn",
        )["stateMachineArn"]
        return Region(declared=declared, iot=iot, dynamodb=dynamodb, streams=streams, sfn=sfn,
                      sqs=sqs, machine_arn=machine_arn, queue_url=queue_url,
                      ca_certificate_id=ca_id,
                      stream_arn=table["TableDescription"]["LatestStreamArn"])

    def __getitem__(self, region: str) -> Region:
        return self.regions[region]

    # -- the writers of other capabilities (JITR, CVM, operator tools), simulated -----------

    def now(self) -> str:
        """A strictly increasing updatedAt: the order of writes decides last-writer-wins."""
        base = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
        moment = base + dt.timedelta(milliseconds=next(self._clock))
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def register_locally(self, region: str, thing_name: str, certificate_pem: str,
                         issuer: str, *, status: str = "ACTIVE") -> str:
        """What JITR / the CVM / fleet provisioning leave in their own region's registry."""
        iot = self[region].iot
        if issuer == "OWN_CA":
            certificate_id: str = iot.register_certificate(
                certificatePem=certificate_pem,
                caCertificatePem=self[region].declared.ca_certificate_pem,
                status=status)["certificateId"]
        else:
            certificate_id = iot.register_certificate_without_ca(
                certificatePem=certificate_pem, status=status)["certificateId"]
        iot.create_thing(thingName=thing_name)
        arn = self[region].cert_arn(certificate_id)
        iot.attach_thing_principal(thingName=thing_name, principal=arn,
                                   thingPrincipalType="EXCLUSIVE_THING")
        iot.attach_policy(policyName=self[region].declared.device_policy_name, target=arn)
        return certificate_id

    def record_device(self, region: str, thing_name: str, certificate_id: str,
                      certificate_pem: str, issuer: str, onboarding: str = "JITR") -> None:
        """The first write of the inventory contract (lambdas/contracts/inventory.py)."""
        item = InventoryItem.first(
            thing_name=thing_name, certificate_id=certificate_id,
            certificate_pem=certificate_pem, issuer=issuer, onboarding=onboarding,
            region=region, not_after="2030-01-01T00:00:00Z", updated_at=self.now(),
            ca_certificate_id=self[region].ca_certificate_id if issuer == "OWN_CA" else None)
        self[region].dynamodb.put_item(**inventory.put_request(
            self[region].declared.table_name, item))

    def onboard(self, region: str, thing_name: str, certificate_pem: str,
                issuer: str = "OWN_CA", onboarding: str = "JITR") -> str:
        certificate_id = self.register_locally(region, thing_name, certificate_pem, issuer)
        self.record_device(region, thing_name, certificate_id, certificate_pem, issuer,
                           onboarding)
        return certificate_id

    def onboard_amazon_issued(self, region: str, thing_name: str,
                              onboarding: str = "CVM") -> str:
        """What the CVM / fleet provisioning do: AWS IoT issues the certificate."""
        iot = self[region].iot
        created = iot.create_keys_and_certificate(setAsActive=True)
        iot.create_thing(thingName=thing_name)
        iot.attach_thing_principal(thingName=thing_name, principal=created["certificateArn"],
                                   thingPrincipalType="EXCLUSIVE_THING")
        iot.attach_policy(policyName=self[region].declared.device_policy_name,
                          target=created["certificateArn"])
        self.record_device(region, thing_name, created["certificateId"],
                           created["certificatePem"], "AMAZON", onboarding)
        certificate_id: str = created["certificateId"]
        return certificate_id

    def write_change(self, region: str, thing_name: str, status: str) -> None:
        """A change of the contract: the next version of the item read, conditional on it."""
        table = self[region].declared.table_name
        raw = self[region].dynamodb.get_item(TableName=table,
                                             Key={"thingName": {"S": thing_name}},
                                             ConsistentRead=True).get("Item")
        if raw is None:
            raise AssertionError(f"{thing_name} is not in {region}'s replica")
        read = InventoryItem.from_attribute_values(raw)
        changed = read.tombstone(writer_region=region, updated_at=self.now(),
                                 now_epoch=int(time.time())) if status == "DELETED" else \
            read.changed(writer_region=region, updated_at=self.now(), status=status)
        self[region].dynamodb.put_item(**inventory.put_request(table, changed, replaces=read))

    def revoke(self, region: str, thing_name: str) -> None:
        """An operator revokes in `region`: registry there, then the item."""
        item = self[region].item(thing_name)
        assert item is not None
        iot = self[region].iot
        iot.update_certificate(certificateId=item["certificateId"], newStatus="REVOKED")
        iot.detach_thing_principal(thingName=thing_name,
                                   principal=self[region].cert_arn(item["certificateId"]))
        self.write_change(region, thing_name, "REVOKED")

    def delete(self, region: str, thing_name: str) -> None:
        """An operator deletes in `region`: registry there, then the tombstone."""
        item = self[region].item(thing_name)
        assert item is not None
        iot, arn = self[region].iot, self[region].cert_arn(item["certificateId"])
        if self[region].certificate_status(item["certificateId"]) == "ACTIVE":
            iot.update_certificate(certificateId=item["certificateId"], newStatus="INACTIVE")
        iot.detach_thing_principal(thingName=thing_name, principal=arn)
        iot.detach_policy(policyName=self[region].declared.device_policy_name, target=arn)
        iot.delete_certificate(certificateId=item["certificateId"])
        iot.delete_thing(thingName=thing_name)
        self.write_change(region, thing_name, "DELETED")

    def expire(self, region: str, thing_name: str) -> None:
        """TTL removes an expired tombstone (a REMOVE record, replicated as a delete)."""
        self[region].dynamodb.delete_item(TableName=self[region].declared.table_name,
                                          Key={"thingName": {"S": thing_name}})

    # -- the global table ------------------------------------------------------------------

    def _read_stream(self, region: Region) -> None:
        if region.shard_iterator is None:
            shard = region.streams.describe_stream(
                StreamArn=region.stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
            region.shard_iterator = region.streams.get_shard_iterator(
                StreamArn=region.stream_arn, ShardId=shard,
                ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while True:
            page = region.streams.get_records(ShardIterator=region.shard_iterator)
            region.shard_iterator = page["NextShardIterator"]
            if not page["Records"]:
                return
            for record in page["Records"]:
                region.stream_log.append(pipe_record(record, region.name, region.stream_arn))

    def replicate(self) -> int:
        """Copy every region's local writes to the others until nothing is left to copy.
        Returns how many writes were applied to other regions."""
        applied = 0
        progress = True
        while progress:
            progress = False
            for source in self.regions.values():
                self._read_stream(source)
                while source.replication_cursor < len(source.stream_log):
                    record = source.stream_log[source.replication_cursor]
                    source.replication_cursor += 1
                    fingerprint = _fingerprint(record)
                    if fingerprint in source.replicated_in:
                        source.replicated_in.remove(fingerprint)  # arrived by replication
                        continue
                    for target in self.regions.values():
                        if target is not source and self._apply_replicated(target, record):
                            applied += 1
                            progress = True
        return applied

    @staticmethod
    def _apply_replicated(target: Region, record: Mapping[str, Any]) -> bool:
        key = record["dynamodb"]["Keys"]
        table = target.declared.table_name
        if record["eventName"] == "REMOVE":
            if "Item" not in target.dynamodb.get_item(TableName=table, Key=key,
                                                      ConsistentRead=True):
                return False
            target.replicated_in.append(_fingerprint(record))
            target.dynamodb.delete_item(TableName=table, Key=key)
            return True
        image = record["dynamodb"]["NewImage"]
        current = target.dynamodb.get_item(TableName=table, Key=key,
                                           ConsistentRead=True).get("Item")
        if current is not None and current.get("updatedAt", {}).get("S", "") > \
                image.get("updatedAt", {}).get("S", ""):
            return False  # the target's write is later: last writer wins everywhere
        target.replicated_in.append(_fingerprint(record))
        target.dynamodb.put_item(TableName=table, Item=image)
        return True

    # -- the pipes ---------------------------------------------------------------------------

    def passes_filter(self, region: str, record: Mapping[str, Any]) -> bool:
        return passes_filter(self[region].declared.pipe_filter_patterns, record)

    def run_machine(self, region: str, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """One synchronous execution of the region's declared machine (REQUEST_RESPONSE)."""
        target = self[region]
        return run_sync_execution(target.sfn, target.machine_arn, json.dumps(list(items)),
                                  name=f"pipe-{next(_names)}")

    def pending(self, region: str) -> list[dict[str, Any]]:
        """Records new in the region's stream that pass its declared filter, in stream
        order; they count as read by the pipe (tests deliver them with `deliver_records`)."""
        target = self[region]
        self._read_stream(target)
        found = [r for r in target.stream_log[target.pipe_cursor:]
                 if self.passes_filter(region, r)]
        target.pipe_cursor = len(target.stream_log)
        return found

    def deliver(self, region: str) -> Delivery:
        """The region's pipe: everything new in its stream, filtered, batched, retried."""
        return self.deliver_records(region, self.pending(region))

    def deliver_records(self, region: str, records: Sequence[dict[str, Any]]) -> Delivery:
        """The declared pipe's semantics (`deliver` of tools/local/emulation/pipes.py)."""
        declared = self[region].declared
        assert declared.invocation_type == "REQUEST_RESPONSE", \
            "the fabric emulates a synchronous pipe target only"

        def dead_letter(failed: list[dict[str, Any]]) -> None:
            self[region].sqs.send_message(
                QueueUrl=self[region].queue_url, MessageBody=json.dumps(dead_letter_message(
                    self[region].machine_arn, self[region].stream_arn, failed)))

        return deliver(records, batch_size=declared.batch_size,
                       maximum_retry_attempts=declared.maximum_retry_attempts,
                       run_target=lambda batch: self.run_machine(region, batch),
                       dead_letter=dead_letter)

    def settle(self, regions: Sequence[str] | None = None) -> dict[str, Delivery]:
        """Replicate and deliver until no region has anything new."""
        deliveries: dict[str, Delivery] = {name: Delivery() for name in self.regions}
        for _ in range(20):
            self.replicate()
            moved = False
            for name in regions or self.regions:
                delivery = self.deliver(name)
                deliveries[name].executions += delivery.executions
                deliveries[name].dead_lettered += delivery.dead_lettered
                moved = moved or bool(delivery.executions)
            if not moved and not self.replicate():
                return deliveries
        raise AssertionError("the regions did not settle")


@contextmanager
def fabric(graph: StackGraph, regions: Sequence[str] | None = None,
           adapter: Any = None) -> Iterator[ReplicationFabric]:
    """moto + faithful IoT + the SFN adapter + client hooks + the declared regions."""
    from moto import mock_aws

    from tests.support.faithful_iot import faithful_iot
    from tests.support.sfn_adapter import SfnAdapter

    hooks = ClientHooks()
    # moto's interpreter logs every caught task error at ERROR with the whole parse tree.
    interpreter_log = logging.getLogger("moto.stepfunctions.parser")
    level = interpreter_log.level
    interpreter_log.setLevel(logging.CRITICAL)
    with ExitStack() as stack:
        stack.callback(interpreter_log.setLevel, level)
        stack.enter_context(mock_aws(config=MOTO_CONFIG))  # type: ignore[call-overload]
        stack.enter_context(faithful_iot())
        stack.enter_context(indexed_iot())
        stack.enter_context((adapter or SfnAdapter()).active())
        stack.enter_context(hooks.active())
        yield ReplicationFabric(graph, hooks, regions)
