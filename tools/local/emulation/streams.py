"""DynamoDB streams and the consumers moto does not run (global-table replication, Lambda
event-source mappings, EventBridge pipes to a synchronous state machine): one reader, one
filter matcher (moto's EventBridge `EventPattern`, which Lambda and Pipes filtering both
follow), one delivery loop. Behaviours and AWS pages: docs/emulation.md, "Streams".
`settle()` steps everything until quiet (tests); with `world.background` a thread does.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.utilities import dynamo_json_dump
from moto.events.models import EventPattern

from tools.local.calls import RegionDown
from tools.local.emulation import emulation
from tools.local.emulation.policy import AccessDenied, assume, require
from tools.local.materialise import GLOBAL_SERVICE_REGION
from tools.local.sfn_adapter import run_sync_execution
from tools.local.world import World

# Fast while records flow, backing off to 50 ms when idle: an idle poll only peeks at each
# shard (about 0.2 ms a round), so a short idle pause costs ~1% of a core and saves every
# hop of a replication chain up to 0.4 s of waiting.
POLL_SECONDS = (0.02, 0.05)
Record = dict[str, Any]


def matches(patterns: Sequence[str | Mapping[str, Any]], record: Mapping[str, Any]) -> bool:
    """Event filtering: any pattern matches (none declared: everything passes)."""
    event: Any = dict(record)
    return not patterns or any(
        EventPattern.load(p if isinstance(p, str) else json.dumps(p)).matches_event(event)
        for p in patterns)


class StreamReader:
    """The one shard moto keeps per table's stream, read from a starting position; `read()`
    returns what is new, as Lambda and Pipes hand records on (JSON, creation time in epoch
    seconds, the region).

    Like a Lambda or Pipes poller it checkpoints the last sequence number it read and reads
    on after it (GetShardIterator `AFTER_SEQUENCE_NUMBER`,
    https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_GetShardIterator.html),
    looking the table's shard up afresh on every read: moto restores a table from a copy when
    a transaction is cancelled, and a shard held across that is the discarded copy. Every
    consumer polls every 20-50 ms, so a read takes moto's records straight from the shard,
    as its GetRecords would return them, instead of three API round trips (about 4 s of the
    local run's interpreter time); it still counts as a GetRecords call (`World.calls`: the call log, a region
    taken down, injected faults), made only when the shard changed since the last read."""

    def __init__(self, world: World, region: str, stream_arn: str, position: str = "LATEST") -> None:
        self.region, self.stream_arn = region, stream_arn
        self._calls = world.calls
        _, _, _, _, self._account, resource = stream_arn.split(":", 5)
        self._table = resource.split("/")[1]
        self._last: int | None = None  # the sequence number of the last record read
        self._read_state: tuple[int, int] | None = None
        if position != "TRIM_HORIZON":  # LATEST: what the shard holds now is behind us
            self.read_raw()

    def _shard(self) -> Any:
        try:
            return dynamodb_backends[self._account][self.region].tables[self._table].stream_shard
        except KeyError:
            return None

    def read_raw(self) -> list[dict[str, Any]]:
        """New records as the streams API returns them (creation time a UTC datetime)."""
        shard = self._shard()
        if shard is None:
            return []
        state = id(shard.items), len(shard.items)
        if state == self._read_state:  # moto's list is the one last read, unchanged: nothing new
            return []
        self._calls.record(self.region, "dynamodbstreams", "GetRecords", {"ShardIterator": self.stream_arn})
        self._read_state = state
        start = shard.starting_sequence_number if self._last is None else self._last + 1
        # GetRecords's body (moto's own encoder: times in epoch seconds), as botocore parses it.
        records = [json.loads(dynamo_json_dump(r)) for r in shard.get(start, len(shard.items))]
        for record in records:
            change = record["dynamodb"]
            change["ApproximateCreationDateTime"] = dt.datetime.fromtimestamp(
                change["ApproximateCreationDateTime"], dt.timezone.utc)
        if records:
            self._last = int(records[-1]["dynamodb"]["SequenceNumber"])
        return records

    def read(self) -> list[Record]:
        return [self.shape(r) for r in self.read_raw()]

    def shape(self, record: Mapping[str, Any]) -> Record:
        data = dict(record["dynamodb"])
        created = data.get("ApproximateCreationDateTime")
        if isinstance(created, dt.datetime):
            data["ApproximateCreationDateTime"] = int(created.timestamp())
        shaped = {"eventID": record["eventID"], "eventName": record["eventName"],
                  "eventVersion": record.get("eventVersion", "1.1"), "eventSource": "aws:dynamodb",
                  "awsRegion": self.region, "dynamodb": data, "eventSourceARN": self.stream_arn}
        return dict(json.loads(json.dumps(shaped, default=str)))


class TargetFailed(Exception):
    """The whole batch failed (the function raised, the execution failed)."""


def deliver(records: Sequence[Record], *, batch_size: int, maximum_retry_attempts: int,
            bisect: bool, run: Callable[[list[Record]], list[str]],
            dead_letter: Callable[[list[Record]], None]) -> None:
    """A stream source's delivery: `run(batch)` returns the failed records' event ids
    (`batchItemFailures`) or raises TargetFailed; the batch is retried from the first failed
    record, a failed batch bisected where declared, and after the retries the failing
    records go to `dead_letter`; then delivery goes on with the records after them."""
    pending = list(records)
    while pending:
        batch, pending = pending[:batch_size], pending[batch_size:]
        _deliver(batch, 0, maximum_retry_attempts, bisect, run, dead_letter)


def _deliver(batch: list[Record], attempt: int, retries: int, bisect: bool,
             run: Callable[[list[Record]], list[str]],
             dead_letter: Callable[[list[Record]], None]) -> None:
    while batch:
        try:
            failed_ids = run(batch)
            if not failed_ids:
                return
            first = next((i for i, r in enumerate(batch) if r["eventID"] in failed_ids), 0)
            failed, rest = batch[first:first + 1], batch[first + 1:]
        except TargetFailed:
            if bisect and len(batch) > 1:
                half = len(batch) // 2
                _deliver(batch[:half], attempt, retries, bisect, run, dead_letter)
                batch = batch[half:]
                continue
            failed, rest = batch, []
        if attempt >= retries:
            dead_letter(failed)
            batch, attempt = rest, 0
        else:
            batch, attempt = failed + rest, attempt + 1


def batch_info(stream_arn: str, records: Sequence[Record]) -> dict[str, Any]:
    return {"shardId": "shard-0", "streamArn": stream_arn, "batchSize": len(records),
            "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"]}


@dataclass
class Consumer:
    """A Lambda event-source mapping or a pipe on one stream."""

    kind: str  # "lambda" or "pipe"
    name: str
    region: str
    target: str  # function name/ARN, or state machine ARN
    reader: StreamReader
    patterns: list[str]
    batch_size: int
    maximum_retry_attempts: int
    bisect: bool
    dead_letter_arn: str | None
    delivered: list[Record] = field(default_factory=list)  # records that reached the target
    executions: list[dict[str, Any]] = field(default_factory=list)
    dead_lettered: list[Record] = field(default_factory=list)
    failed: str = ""  # the consumer cannot run (a pipe's role): why
    errors: list[str] = field(default_factory=list)


class GlobalTables:
    """Replication between the replicas of each declared global table in the world: every
    write reaches the other replicas in write order, unless a replica holds a later one."""

    def __init__(self, world: World, tables: dict[str, list[str]]) -> None:
        self._world = world
        self.tables = tables  # table name -> regions
        self._readers = {(t, r): StreamReader(world, r, world.client("dynamodb", r).describe_table(
            TableName=t)["Table"]["LatestStreamArn"], "TRIM_HORIZON")
            for t, regions in tables.items() for r in regions}
        self._echoes: dict[tuple[str, str, str, str], int] = {}  # our own writes coming back
        self._held: dict[tuple[str, str, str], float] = {}  # (table, key, region) -> time held
        self._undelivered: list[tuple[float, str, str, str, str | None]] = []  # region down
        self.replicated = 0
        self._paused = False

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Writes in the block stay where they were made (within the replication delay)."""
        self._paused = True
        try:
            yield
        finally:
            self._paused = False

    def replicate(self) -> int:
        """Read every replica's stream once and apply its writes elsewhere, in write order (the
        write's own time); a replica that holds a later write of the item keeps it. Returns
        the records read."""
        if self._paused:
            return 0
        writes: list[tuple[float, str, str, str, str | None]] = []  # time, region, table, key, image
        for (table, region), reader in self._readers.items():
            try:
                found = reader.read_raw()
            except RegionDown:  # its writes replicate once it is back
                continue
            for record in found:
                change = record["dynamodb"]
                key = json.dumps(change["Keys"], sort_keys=True)
                image = None if record["eventName"] == "REMOVE" else json.dumps(
                    change.get("NewImage"), sort_keys=True, default=str)
                echo = (region, table, key, image or "")
                if self._echoes.get(echo):
                    self._echoes[echo] -= 1
                    continue
                writes.append((change["ApproximateCreationDateTime"].timestamp(), region, table, key, image))
        for written, region, table, key, _ in writes:  # what each replica holds, as written
            self._held[(table, key, region)] = max(written, self._held.get((table, key, region), 0.0))
        retry, self._undelivered = self._undelivered, []
        for written, region, table, key, image in sorted(retry) + sorted(writes):
            for target in (region,) if (written, region, table, key, image) in retry else \
                    [r for r in self.tables[table] if r != region]:
                if written > self._held.get((table, key, target), 0.0):
                    self._write(written, target, table, key, image)
        return len(writes)

    def _write(self, written: float, region: str, table: str, key: str, image: str | None) -> None:
        dynamodb = self._world.client("dynamodb", region)
        echo = (region, table, key, image or "")
        self._echoes[echo] = self._echoes.get(echo, 0) + 1
        try:
            if image is None:
                dynamodb.delete_item(TableName=table, Key=json.loads(key))
            else:
                dynamodb.put_item(TableName=table, Item=json.loads(image))
            self._held[(table, key, region)] = written
            self.replicated += 1
        except (RegionDown, ClientError, BotoCoreError):
            self._echoes[echo] -= 1
            self._undelivered.append((written, region, table, key, image))


class Streams:
    def __init__(self, world: World, tables: GlobalTables | None, consumers: list[Consumer]) -> None:
        self._world = world
        self.global_tables = tables
        self.consumers = consumers
        self._tick_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if world.background:
            self._thread = threading.Thread(target=self._loop, name="local-streams", daemon=True)
            self._thread.start()

    def consumer(self, kind: str, region: str) -> Consumer:
        found = [c for c in self.consumers if c.kind == kind and c.region == region]
        if len(found) != 1:
            raise LookupError(f"{len(found)} {kind} consumers in {region}")
        return found[0]

    # -- stepping ----------------------------------------------------------------------------

    def tick(self) -> int:
        """Replicate once, then poll every consumer once; returns records moved."""
        with self._tick_lock:
            moved = self.global_tables.replicate() if self.global_tables else 0
            for consumer in self.consumers:
                if consumer.failed:
                    continue
                try:
                    moved += self.deliver(consumer, consumer.reader.read())
                except RegionDown:
                    # The region is out (a scenario took it down): its pollers wait, as an
                    # AWS poller resumes from its checkpoint after an outage; not an error.
                    continue
                except (ClientError, BotoCoreError, TimeoutError) as error:
                    consumer.errors.append(f"{type(error).__name__}: {error}")
            return moved

    def settle(self, rounds: int = 50) -> None:
        for _ in range(rounds):
            if not self.tick():
                return
        raise TimeoutError(f"streams still moving after {rounds} rounds")

    def _loop(self) -> None:
        pause = POLL_SECONDS[0]
        while not self._stop.wait(pause):
            moved = self.tick()
            pause = POLL_SECONDS[0] if moved else min(pause * 2, POLL_SECONDS[1])

    # -- delivery ----------------------------------------------------------------------------

    def deliver(self, consumer: Consumer, records: Sequence[Record]) -> int:
        """Hand `records` to the consumer as its source would (filter, batches, retries)."""
        passed = [r for r in records if matches(consumer.patterns, r)]
        deliver(passed, batch_size=consumer.batch_size,
                maximum_retry_attempts=consumer.maximum_retry_attempts, bisect=consumer.bisect,
                run=lambda batch: self.run(consumer, batch),
                dead_letter=lambda failed: self._dead_letter(consumer, failed))
        return len(records)

    def run(self, consumer: Consumer, batch: list[Record]) -> list[str]:
        """One invocation of the consumer's target; the failed records' event ids."""
        consumer.delivered += batch
        if consumer.kind == "pipe":
            outcome = run_sync_execution(self._world.client("stepfunctions", consumer.region),
                                         consumer.target, json.dumps(batch))
            consumer.executions.append(outcome)
            if outcome["status"] != "SUCCEEDED":
                raise TargetFailed(outcome.get("error"))
            answer = outcome.get("result")
        else:
            from tools.local.emulation.lambdas import LambdaRuntime

            try:
                answer = self._world.emulation(LambdaRuntime).invoke(consumer.target, {"Records": batch})
            except Exception as error:  # the function failed: the whole batch did
                consumer.errors.append(f"{consumer.target}: {type(error).__name__}: {error}")
                raise TargetFailed(str(error)) from None
        failures = (answer.get("batchItemFailures") if isinstance(answer, Mapping) else None) or []
        return [str(f.get("itemIdentifier")) for f in failures]

    def _dead_letter(self, consumer: Consumer, failed: list[Record]) -> None:
        consumer.dead_lettered += failed
        if not consumer.dead_letter_arn:
            return
        info = batch_info(consumer.reader.stream_arn, failed)
        if consumer.kind == "pipe":
            body = {"context": {"partnerResourceArn": consumer.target}, "DDBStreamBatchInfo": info}
        else:
            body = {"requestContext": {"functionArn": consumer.target,
                                       "condition": "RetryAttemptsExhausted",
                                       "approximateInvokeCount": consumer.maximum_retry_attempts + 1},
                    "DDBStreamBatchInfo": info}
        sqs = self._world.client("sqs", consumer.region)
        url = sqs.get_queue_url(QueueName=consumer.dead_letter_arn.rsplit(":", 1)[-1])["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))

    def describe(self) -> str:
        kinds = [c.kind for c in self.consumers]
        tables = len(self.global_tables.tables) if self.global_tables else 0
        return (f"streams: {tables} global table(s) (last writer wins), "
                f"{kinds.count('lambda')} event-source mapping(s), {kinds.count('pipe')} pipe(s)")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=120)


def _pipe(world: World, region: str, name: str) -> Consumer:
    described = world.client("pipes", region).describe_pipe(Name=name)
    source = described.get("SourceParameters") or {}
    stream = source.get("DynamoDBStreamParameters") or {}
    retries = int(stream.get("MaximumRetryAttempts", -1))  # -1: until the record expires
    consumer = Consumer(
        "pipe", name, region, described["Target"],
        StreamReader(world, region, described["Source"], str(stream.get("StartingPosition") or "LATEST")),
        [f["Pattern"] for f in (source.get("FilterCriteria") or {}).get("Filters") or []],
        int(stream.get("BatchSize") or 100), retries if retries >= 0 else 10_000,
        stream.get("OnPartialBatchItemFailure") == "AUTOMATIC_BISECT",
        (stream.get("DeadLetterConfig") or {}).get("Arn"))
    try:  # the role as Pipes uses it: a role that does not fit stops the pipe
        documents = assume(world.client("iam", GLOBAL_SERVICE_REGION), described["RoleArn"],
                           service="pipes.amazonaws.com", source_account=described["Arn"].split(":")[4],
                           source_arn=described["Arn"])
        needs = [(a, described["Source"]) for a in ("dynamodb:DescribeStream", "dynamodb:GetRecords",
                                                   "dynamodb:GetShardIterator")]
        needs.append(("states:StartSyncExecution", described["Target"]))
        needs += [("sqs:SendMessage", consumer.dead_letter_arn)] if consumer.dead_letter_arn else []
        for action, resource in needs:
            require(documents, action, resource, described["RoleArn"])
    except AccessDenied as denied:
        consumer.failed = str(denied)
    invocation = ((described.get("TargetParameters") or {}).get("StepFunctionStateMachineParameters")
                  or {}).get("InvocationType")
    if invocation != "REQUEST_RESPONSE":
        consumer.failed = f"target invocation {invocation}: only REQUEST_RESPONSE is emulated"
    return consumer


def _mapping(world: World, state: Mapping[str, Any], region: str) -> Consumer:
    on_failure = ((state.get("destinationConfig") or {}).get("onFailure") or {}).get("destinationArn")
    retries = int(state.get("maximumRetryAttempts", -1))  # -1 (Lambda's default): until expiry
    return Consumer(
        "lambda", state.get("uuid") or state["functionName"], region, str(state["functionName"]),
        StreamReader(world, region, str(state["eventSourceArn"]), str(state.get("startingPosition") or "LATEST")),
        [f["pattern"] for f in (state.get("filterCriteria") or {}).get("filters") or []],
        int(state.get("batchSize") or 100), retries if retries >= 0 else 10_000,
        bool(state.get("bisectBatchOnFunctionError")), on_failure)


@emulation("streams")
def start(world: World) -> Streams | None:
    from tools.local.materialise import table_regions

    tables = {}
    for resource in world.declared("aws:dynamodb/table:Table") + [
            r for r in world.graph.of_type("aws:dynamodb/table:Table")
            if r.region not in world.regions and world.includes(r, any_region=True)]:
        state = world.state(resource)
        regions = [r for r in table_regions(state, str(resource.region)) if r in world.regions]
        if state.get("streamEnabled") and len(regions) > 1:
            tables[state["name"]] = regions
    consumers = [_pipe(world, str(p.region), world.state(p)["name"])
                 for p in world.declared("aws:pipes/pipe:Pipe")]
    consumers += [_mapping(world, world.state(m), str(m.region))
                  for m in world.declared("aws:lambda/eventSourceMapping:EventSourceMapping")
                  if "/stream/" in str(world.state(m).get("eventSourceArn"))]
    if not tables and not consumers:
        return None
    return Streams(world, GlobalTables(world, tables) if tables else None, consumers)
