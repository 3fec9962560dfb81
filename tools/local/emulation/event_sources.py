"""Lambda event-source mappings on DynamoDB streams, from the declared mappings.

moto stores no mapping it cannot run. For each declared `aws:lambda/eventSourceMapping`
whose source is a DynamoDB stream of the run, a background poller reads the stream (from
the declared starting position: LATEST = from when the run starts it), shapes each record
as Lambda's DynamoDB event record, passes only the records the declared filter criteria
match (Lambda event filtering), batches them by the declared batch size and invokes the
declared function in-process. With `ReportBatchItemFailures` the batch is retried from the
first failed record, up to the declared `maximumRetryAttempts`; then the record is
described to the declared on-failure destination (an SQS queue), as Lambda does.

Also the building blocks the tests use with moto in-process (`read_stream`,
`stream_event`, `filter_matches`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tools.harness import RecordedResource
from tools.local.emulation import emulation
from tools.local.system import LocalSystem

MAPPING_TYPE = "aws:lambda/eventSourceMapping:EventSourceMapping"
FAST_POLL_SECONDS = 0.05
IDLE_POLL_SECONDS = 0.4


def filter_matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """Lambda event filtering, for the shapes the stack uses: nested objects and lists of
    allowed exact values (every key of the pattern must be present and match)."""
    for key, wanted in pattern.items():
        if key not in event:
            return False
        if isinstance(wanted, list):
            if event[key] not in wanted:
                return False
        elif not isinstance(event[key], Mapping) or not filter_matches(wanted, event[key]):
            return False
    return True


def lambda_record(record: Mapping[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """A DynamoDB stream record as Lambda hands it over (JSON; creation time in seconds)."""
    data = dict(record["dynamodb"])
    created = data.get("ApproximateCreationDateTime")
    if created is not None and hasattr(created, "timestamp"):
        data["ApproximateCreationDateTime"] = int(created.timestamp())
    shaped = {"eventID": record["eventID"], "eventName": record["eventName"],
              "eventVersion": record.get("eventVersion", "1.1"), "eventSource": "aws:dynamodb",
              "awsRegion": region, "dynamodb": data, "eventSourceARN": stream_arn}
    return dict(json.loads(json.dumps(shaped, default=str)))


def read_stream(streams: Any, stream_arn: str) -> list[dict[str, Any]]:
    """Every record of a (moto) DynamoDB stream, oldest first, in Lambda's JSON shape."""
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator)
            records += page["Records"]
            iterator = page.get("NextShardIterator") if page["Records"] else None
    region = stream_arn.split(":")[3]
    return [lambda_record(r, stream_arn, region) for r in records]


def patterns_of(mapping_inputs: Mapping[str, Any]) -> list[dict[str, Any]]:
    filters = (mapping_inputs.get("filterCriteria") or {}).get("filters") or []
    return [json.loads(f["pattern"]) for f in filters]


def passes(patterns: Sequence[Mapping[str, Any]], record: Mapping[str, Any]) -> bool:
    """No filter criteria: everything passes; otherwise any pattern."""
    return not patterns or any(filter_matches(p, record) for p in patterns)


def stream_event(records: list[dict[str, Any]], stream_arn: str,
                 mapping: RecordedResource) -> dict[str, Any]:
    """What the declared event-source mapping hands its function: the records its filters
    pass, shaped as Lambda's DynamoDB stream event."""
    patterns = patterns_of(mapping.inputs)
    shaped = [{**r, "eventSourceARN": stream_arn} for r in records]
    return {"Records": [r for r in shaped if passes(patterns, r)]}


# --- the local run's mappings ---------------------------------------------------------------

@dataclass
class _Mapping:
    name: str
    region: str
    stream_arn: str
    function: str
    patterns: list[dict[str, Any]]
    batch_size: int
    maximum_retry_attempts: int
    report_item_failures: bool
    on_failure: str | None  # SQS queue ARN
    iterators: dict[str, str | None] = field(default_factory=dict)
    pending: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    delivered: int = 0
    invocations: int = 0
    dead_lettered: int = 0
    errors: list[str] = field(default_factory=list)


class EventSourceMappings:
    def __init__(self, system: LocalSystem, mappings: list[_Mapping]) -> None:
        self._system = system
        self.mappings = mappings
        for mapping in mappings:  # LATEST: from now on
            streams = system.client("dynamodbstreams", mapping.region)
            for shard in streams.describe_stream(
                    StreamArn=mapping.stream_arn)["StreamDescription"]["Shards"]:
                mapping.iterators[shard["ShardId"]] = streams.get_shard_iterator(
                    StreamArn=mapping.stream_arn, ShardId=shard["ShardId"],
                    ShardIteratorType="LATEST")["ShardIterator"]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="local-event-sources", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        pause = FAST_POLL_SECONDS
        while not self._stop.wait(pause):
            moved = 0
            for mapping in self.mappings:
                try:
                    moved += self._poll(mapping)
                except (ClientError, BotoCoreError) as error:
                    mapping.errors.append(f"{type(error).__name__}: {error}")
            pause = FAST_POLL_SECONDS if moved else min(pause * 2, IDLE_POLL_SECONDS)

    def _poll(self, mapping: _Mapping) -> int:
        streams = self._system.client("dynamodbstreams", mapping.region)
        for shard, iterator in list(mapping.iterators.items()):
            if iterator is None:
                continue
            page = streams.get_records(ShardIterator=iterator)
            mapping.iterators[shard] = page.get("NextShardIterator")
            shaped = [lambda_record(r, mapping.stream_arn, mapping.region) for r in page["Records"]]
            mapping.pending.extend(r for r in shaped if passes(mapping.patterns, r))
        if not mapping.pending:
            return 0
        batch = mapping.pending[:mapping.batch_size]
        self._deliver(mapping, batch)
        return len(batch)

    def _deliver(self, mapping: _Mapping, batch: list[dict[str, Any]]) -> None:
        from tools.local.emulation.lambdas import LambdaRuntime

        mapping.invocations += 1
        try:
            answer = self._system.emulation(LambdaRuntime).invoke(mapping.function, {"Records": batch})
            failed_ids = [f.get("itemIdentifier") for f in
                          ((answer or {}).get("batchItemFailures") or [])] \
                if mapping.report_item_failures and isinstance(answer, Mapping) else []
        except Exception as error:  # the function failed: the whole batch failed
            mapping.errors.append(f"{mapping.function}: {type(error).__name__}: {error}")
            failed_ids = [batch[0]["dynamodb"].get("SequenceNumber")]
        sequence = [r["dynamodb"].get("SequenceNumber") for r in batch]
        first_failed = next((i for i, s in enumerate(sequence) if s in failed_ids), None)
        if first_failed is None:
            del mapping.pending[:len(batch)]
            mapping.delivered += len(batch)
            mapping.attempts = 0
            return
        del mapping.pending[:first_failed]
        mapping.delivered += first_failed
        mapping.attempts += 1
        if mapping.attempts > mapping.maximum_retry_attempts:
            self._dead_letter(mapping, mapping.pending.pop(0))
            mapping.attempts = 0

    def _dead_letter(self, mapping: _Mapping, record: Mapping[str, Any]) -> None:
        mapping.dead_lettered += 1
        if not mapping.on_failure:
            return
        queue = mapping.on_failure.rsplit(":", 1)[-1]
        sqs = self._system.client("sqs", mapping.region)
        url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        sequence = record["dynamodb"].get("SequenceNumber")
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({
            "requestContext": {"functionArn": mapping.function, "condition": "RetryAttemptsExhausted",
                               "approximateInvokeCount": mapping.maximum_retry_attempts + 1},
            "DDBStreamBatchInfo": {"streamArn": mapping.stream_arn, "batchSize": 1,
                                   "startSequenceNumber": sequence,
                                   "endSequenceNumber": sequence}}))

    def describe(self) -> str:
        return (f"event-source mappings: {len(self.mappings)} stream mapping(s) "
                f"({', '.join(sorted({m.function.rsplit(':', 1)[-1] for m in self.mappings}))}), "
                "declared filters and batch size, partial-batch retries, on-failure queue")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@emulation("event-sources")
def start(system: LocalSystem) -> EventSourceMappings | None:
    mappings = []
    for resource in system.declared(MAPPING_TYPE):
        if not system.in_scope(resource.region):
            continue
        state = system.state(resource)
        source = str(state.get("eventSourceArn") or "")
        if ":dynamodb:" not in source or "/stream/" not in source:
            continue  # only DynamoDB stream sources are emulated
        on_failure = ((state.get("destinationConfig") or {}).get("onFailure") or {}).get(
            "destinationArn")
        mappings.append(_Mapping(
            name=resource.name, region=str(resource.region), stream_arn=source,
            function=str(state["functionName"]), patterns=patterns_of(state),
            batch_size=int(state.get("batchSize") or 100),
            maximum_retry_attempts=int(state.get("maximumRetryAttempts") or 0),
            report_item_failures="ReportBatchItemFailures" in (
                state.get("functionResponseTypes") or []),
            on_failure=on_failure))
    return EventSourceMappings(system, mappings) if mappings else None
