"""EventBridge Pipes from DynamoDB streams to Step Functions, as the declared pipes say.

moto stores pipes (`CreatePipe`) but delivers nothing, and has no `StartSyncExecution`.
What a pipe does with a stream source and a synchronous (`REQUEST_RESPONSE`) state-machine
target, shared by the local run and the tests' replication fabric:

* `pipe_record`: a stream record as the pipe hands it on (JSON; the reading region);
* `passes_filter`: the declared filter criteria, EventBridge pattern matching (moto's
  `EventPattern`: exact values, `anything-but`, prefixes, numeric...);
* `deliver`: batches of the declared size, each run on the target synchronously; a record
  the target reports in `batchItemFailures` is retried *from that record* (stream sources
  checkpoint at the first failure), a failed execution is bisected down to one record
  (`AUTOMATIC_BISECT`), and after `maximumRetryAttempts` the failing record's batch
  description (`dead_letter_message`) goes to the dead-letter queue;
* `run_sync_execution`: StartSyncExecution, answered from moto's interpreter (start, wait).

The local run's `@emulation("pipes")` runs every pipe stored in the server: its role must
trust `pipes.amazonaws.com` for that pipe and allow reading the stream, starting the target
(`states:StartSyncExecution`) and sending to the dead-letter queue; a background poller
reads the source stream from the declared starting position and delivers. `delivered(...)`
tells what reached each target.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from moto.events.models import EventPattern

from tools.local.emulation import emulation
from tools.local.emulation.iam_roles import AccessDenied, assume, require
from tools.local.system import LocalSystem

PIPE_TYPE = "aws:pipes/pipe:Pipe"
PIPES_PRINCIPAL = "pipes.amazonaws.com"
FAST_POLL_SECONDS = 0.05
IDLE_POLL_SECONDS = 0.4
EXECUTION_TIMEOUT_SECONDS = 120.0
_names = itertools.count()


def pipe_record(record: Mapping[str, Any], region: str, stream_arn: str) -> dict[str, Any]:
    """The record as a pipe hands it on (JSON, the reading region's ARN and name)."""
    data = dict(record["dynamodb"])
    created = data.get("ApproximateCreationDateTime")
    if isinstance(created, dt.datetime):
        data["ApproximateCreationDateTime"] = int(created.timestamp())
    return {"eventID": record["eventID"], "eventName": record["eventName"],
            "eventVersion": record["eventVersion"], "eventSource": "aws:dynamodb",
            "awsRegion": region, "dynamodb": data, "eventSourceARN": stream_arn}


def passes_filter(patterns: Sequence[str], record: Mapping[str, Any]) -> bool:
    """Any of the declared patterns matches (no filter criteria: everything passes)."""
    event: Any = dict(record)  # moto types it as its own event message
    return not patterns or any(EventPattern.load(p).matches_event(event) for p in patterns)


def wait_for_execution(sfn: Any, execution_arn: str,
                       timeout: float = EXECUTION_TIMEOUT_SECONDS) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.005)
    raise TimeoutError(f"{execution_arn} still running after {timeout} s")


def run_sync_execution(sfn: Any, state_machine_arn: str, execution_input: str,
                       name: str | None = None) -> dict[str, Any]:
    """StartSyncExecution as AWS answers it, run by moto's interpreter (start, then wait).
    The answer carries `result` (the parsed output) when the execution succeeded."""
    started = sfn.start_execution(stateMachineArn=state_machine_arn,
                                  name=name or f"sync-{next(_names)}-{int(time.time())}",
                                  input=execution_input)
    described = wait_for_execution(sfn, started["executionArn"])
    response: dict[str, Any] = {key: described[key] for key in
                ("executionArn", "stateMachineArn", "name", "startDate", "stopDate", "status",
                 "input", "output", "error", "cause") if key in described}
    if described["status"] == "SUCCEEDED":
        response["result"] = json.loads(described.get("output") or "null")
    return response


def dead_letter_message(target_arn: str, stream_arn: str, records: Sequence[Mapping[str, Any]],
                        shard_id: str = "shard-0") -> dict[str, Any]:
    """Like a stream source's DLQ message: where the batch is, not the records."""
    return {
        "context": {"partnerResourceArn": target_arn},
        "DDBStreamBatchInfo": {
            "shardId": shard_id, "streamArn": stream_arn,
            "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
            "batchSize": len(records)},
    }


@dataclass
class Delivery:
    """What one delivery did: executions run (their answers), records dead-lettered."""

    executions: list[dict[str, Any]] = field(default_factory=list)
    dead_lettered: list[dict[str, Any]] = field(default_factory=list)


RunTarget = Callable[[list[dict[str, Any]]], dict[str, Any]]  # batch -> sync execution answer
DeadLetter = Callable[[list[dict[str, Any]]], None]


def deliver(records: Sequence[dict[str, Any]], *, batch_size: int, maximum_retry_attempts: int,
            run_target: RunTarget, dead_letter: DeadLetter) -> Delivery:
    """Pipes semantics for a stream source and a synchronous target (module docstring)."""
    delivery = Delivery()
    pending = list(records)
    while pending:
        batch, pending = pending[:batch_size], pending[batch_size:]
        _deliver_batch(batch, delivery, 0, maximum_retry_attempts, run_target, dead_letter)
    return delivery


def _deliver_batch(batch: list[dict[str, Any]], delivery: Delivery, attempt: int,
                   maximum_retry_attempts: int, run_target: RunTarget,
                   dead_letter: DeadLetter) -> None:
    while batch:
        outcome = run_target(batch)
        delivery.executions.append(outcome)
        if outcome["status"] == "SUCCEEDED":
            result = outcome.get("result")
            failures = (result.get("batchItemFailures") if isinstance(result, Mapping)
                        else None) or []
            if not failures:
                return
            failed_ids = {f["itemIdentifier"] for f in failures}
            first = next((i for i, r in enumerate(batch) if r["eventID"] in failed_ids), 0)
            failed, rest = batch[first:first + 1], batch[first + 1:]
        elif len(batch) > 1:  # AUTOMATIC_BISECT
            half = len(batch) // 2
            _deliver_batch(batch[:half], delivery, attempt, maximum_retry_attempts, run_target,
                           dead_letter)
            batch = batch[half:]
            continue
        else:
            failed, rest = batch, []
        if attempt >= maximum_retry_attempts:
            dead_letter(failed)
            delivery.dead_lettered.extend(failed)
            batch, attempt = rest, 0
        else:
            batch, attempt = failed + rest, attempt + 1


# --- the local run's pipes -------------------------------------------------------------------

@dataclass
class _Pipe:
    name: str
    arn: str
    region: str
    source: str  # a DynamoDB stream ARN
    target: str  # a state machine ARN
    patterns: list[str]
    batch_size: int
    maximum_retry_attempts: int
    starting_position: str
    dead_letter_arn: str | None
    iterators: dict[str, str | None] = field(default_factory=dict)
    delivered: list[dict[str, Any]] = field(default_factory=list)  # records that reached the target
    executions: int = 0
    dead_lettered: int = 0
    failed: str | None = None  # the pipe cannot run (its role): why
    errors: list[str] = field(default_factory=list)


def _stored_pipe(system: LocalSystem, region: str, name: str) -> _Pipe:
    described = system.client("pipes", region).describe_pipe(Name=name)
    source = described.get("SourceParameters") or {}
    stream = source.get("DynamoDBStreamParameters") or {}
    filters = (source.get("FilterCriteria") or {}).get("Filters") or []
    retries = int(stream.get("MaximumRetryAttempts", -1))
    return _Pipe(
        name=name, arn=described["Arn"], region=region, source=described["Source"],
        target=described["Target"], patterns=[f["Pattern"] for f in filters],
        batch_size=int(stream.get("BatchSize") or 100),
        maximum_retry_attempts=retries if retries >= 0 else 10_000,  # -1: until the record expires
        starting_position=str(stream.get("StartingPosition") or "LATEST"),
        dead_letter_arn=(stream.get("DeadLetterConfig") or {}).get("Arn"))


class Pipes:
    def __init__(self, system: LocalSystem, pipes: list[_Pipe]) -> None:
        self._system = system
        self.pipes = pipes
        self._lock = threading.Lock()  # the delivered-records log
        self._polling = threading.Lock()  # one reader of the streams at a time
        for pipe in pipes:
            self._check_role(pipe)
            self._open(pipe)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="local-pipes", daemon=True)
        self._thread.start()

    def _check_role(self, pipe: _Pipe) -> None:
        """The pipe's role as Pipes uses it; a role that does not fit stops the pipe (its
        errors say why), as a pipe that cannot assume its role or read its source fails."""
        described = self._system.client("pipes", pipe.region).describe_pipe(Name=pipe.name)
        role = described["RoleArn"]
        account = pipe.arn.split(":")[4]
        try:
            documents = assume(self._system, role, service=PIPES_PRINCIPAL,
                               source_account=account, source_arn=pipe.arn)
            for action in ("dynamodb:DescribeStream", "dynamodb:GetRecords",
                           "dynamodb:GetShardIterator"):
                require(documents, action, pipe.source, role)
            if pipe.target.startswith("arn:") and ":states:" in pipe.target:
                require(documents, "states:StartSyncExecution", pipe.target, role)
            if pipe.dead_letter_arn:
                require(documents, "sqs:SendMessage", pipe.dead_letter_arn, role)
        except AccessDenied as denied:
            pipe.failed = str(denied)

    def _open(self, pipe: _Pipe) -> None:
        streams = self._system.client("dynamodbstreams", pipe.region)
        iterator_type = "TRIM_HORIZON" if pipe.starting_position == "TRIM_HORIZON" else "LATEST"
        for shard in streams.describe_stream(StreamArn=pipe.source)["StreamDescription"]["Shards"]:
            pipe.iterators[shard["ShardId"]] = streams.get_shard_iterator(
                StreamArn=pipe.source, ShardId=shard["ShardId"],
                ShardIteratorType=iterator_type)["ShardIterator"]

    def _loop(self) -> None:
        pause = FAST_POLL_SECONDS
        while not self._stop.wait(pause):
            moved = self._poll_all()
            pause = FAST_POLL_SECONDS if moved else min(pause * 2, IDLE_POLL_SECONDS)

    def _poll_all(self) -> int:
        moved = 0
        with self._polling:
            for pipe in self.pipes:
                try:
                    moved += self.poll(pipe)
                except (ClientError, BotoCoreError, TimeoutError) as error:
                    pipe.errors.append(f"{type(error).__name__}: {error}")
        return moved

    def drain(self, rounds: int = 20) -> None:
        """Deliver now whatever the sources hold, until they hold nothing new."""
        for _ in range(rounds):
            if not self._poll_all():
                return

    def poll(self, pipe: _Pipe) -> int:
        """Read the pipe's source once and deliver what passes its filter; returns records read."""
        if pipe.failed:
            return 0
        streams = self._system.client("dynamodbstreams", pipe.region)
        records: list[dict[str, Any]] = []
        for shard, iterator in list(pipe.iterators.items()):
            if iterator is None:
                continue
            page = streams.get_records(ShardIterator=iterator)
            pipe.iterators[shard] = page.get("NextShardIterator")
            records.extend(pipe_record(r, pipe.region, pipe.source) for r in page["Records"])
        passed = [r for r in records if passes_filter(pipe.patterns, r)]
        if passed:
            sfn = self._system.client("stepfunctions", pipe.region)

            def run_target(batch: list[dict[str, Any]]) -> dict[str, Any]:
                pipe.executions += 1
                with self._lock:
                    pipe.delivered.extend(batch)
                return run_sync_execution(sfn, pipe.target, json.dumps(batch),
                                          name=f"pipe-{next(_names)}")

            def dead_letter(failed: list[dict[str, Any]]) -> None:
                pipe.dead_lettered += len(failed)
                if pipe.dead_letter_arn:
                    sqs = self._system.client("sqs", pipe.region)
                    url = sqs.get_queue_url(QueueName=pipe.dead_letter_arn.rsplit(":", 1)[-1])
                    sqs.send_message(QueueUrl=url["QueueUrl"], MessageBody=json.dumps(
                        dead_letter_message(pipe.target, pipe.source, failed)))

            deliver(passed, batch_size=pipe.batch_size,
                    maximum_retry_attempts=pipe.maximum_retry_attempts, run_target=run_target,
                    dead_letter=dead_letter)
        return len(records)

    def delivered(self, region: str) -> list[dict[str, Any]]:
        """Every record the region's pipes handed to their targets so far."""
        with self._lock:
            return [r for p in self.pipes if p.region == region for r in p.delivered]

    def problems(self, region: str) -> list[str]:
        return [f"{p.name}: {e}" for p in self.pipes if p.region == region
                for e in ([p.failed] if p.failed else []) + p.errors]

    def describe(self) -> str:
        return (f"pipes: {len(self.pipes)} stream -> state machine pipe(s), declared filter, "
                "batch size, retries, bisect and dead-letter queue; synchronous target")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=EXECUTION_TIMEOUT_SECONDS)


@emulation("pipes")
def start(system: LocalSystem) -> Pipes | None:
    pipes = []
    for resource in system.declared(PIPE_TYPE):
        if not system.in_scope(resource.region):
            continue
        state = system.state(resource)
        pipe = _stored_pipe(system, str(resource.region), state["name"])
        if ":dynamodb:" in pipe.source and "/stream/" in pipe.source:
            pipes.append(pipe)
    return Pipes(system, pipes) if pipes else None
