"""DynamoDB global-table replication between the run's regional tables.

moto has no global tables: the materialiser creates one regional table per replica region
(same name). This emulation reads each regional table's stream and copies every write to
the table's other regions, asynchronously (a background thread polling the streams), the
way global tables 2019.11.21 behave: last writer wins by write time (ties: region name),
a replicated write does not replicate again, items arrive unchanged. Which tables and
regions replicate comes from the declared tables' `replicas`.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tools.local.emulation import emulation
from tools.local.materialisers.dynamodb import table_regions
from tools.local.system import LocalSystem

TABLE_TYPE = "aws:dynamodb/table:Table"
FAST_POLL_SECONDS = 0.05
IDLE_POLL_SECONDS = 0.4


@dataclass
class _Stream:
    table: str
    region: str
    arn: str
    iterators: dict[str, str | None] = field(default_factory=dict)  # shard id -> iterator


def _key_of(keys: Mapping[str, Any]) -> str:
    return json.dumps(keys, sort_keys=True)


class GlobalTableReplication:
    def __init__(self, system: LocalSystem, tables: dict[str, list[str]]) -> None:
        self._system = system
        self.tables = tables  # table name -> regions in this run
        self._streams: list[_Stream] = []
        # Writes we made ourselves: (region, table, key, image) we expect back on a stream.
        self._echoes: Counter[tuple[str, str, str, str]] = Counter()
        # (table, key) -> (write time, origin region, image or None) of the winning write.
        self._latest: dict[tuple[str, str], tuple[float, str, str | None]] = {}
        self.replicated = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._held = threading.Event()
        self._polling = threading.Lock()
        for table, regions in tables.items():
            for region in regions:
                arn = system.client("dynamodb", region).describe_table(
                    TableName=table)["Table"]["LatestStreamArn"]
                self._streams.append(_Stream(table, region, arn))
        self._thread = threading.Thread(target=self._loop, name="local-global-tables",
                                        daemon=True)
        self._thread.start()

    # -- replication -------------------------------------------------------------------------

    def _loop(self) -> None:
        pause = FAST_POLL_SECONDS
        while not self._stop.wait(pause):
            try:
                moved = self.poll()
            except (ClientError, BotoCoreError) as error:
                self.errors.append(f"{type(error).__name__}: {error}")
                moved = 0
            pause = FAST_POLL_SECONDS if moved else min(pause * 2, IDLE_POLL_SECONDS)

    def poll(self) -> int:
        """Read every stream once and replicate what they carried; returns records handled.
        All regions' new writes of an item are weighed together, so a region's own write
        that lost to a later write elsewhere is overwritten there too (never kept)."""
        with self._polling:
            if self._held.is_set():
                return 0
            return self._poll()

    def _poll(self) -> int:
        writes: dict[tuple[str, str], list[tuple[float, str, str | None, Mapping[str, Any]]]] = {}
        handled = 0
        for stream in self._streams:
            for record in self._read(stream):
                handled += 1
                change = record["dynamodb"]
                key = _key_of(change["Keys"])
                image = change.get("NewImage") if record["eventName"] != "REMOVE" else None
                image_text = json.dumps(image, sort_keys=True) if image is not None else None
                echo = (stream.region, stream.table, key, image_text or "")
                if self._echoes[echo]:
                    self._echoes[echo] -= 1  # our own replicated write coming back
                    continue
                written = change["ApproximateCreationDateTime"].timestamp()
                writes.setdefault((stream.table, key), []).append(
                    (written, stream.region, image_text, change["Keys"]))
        for (table, key), found in writes.items():
            self._settle(table, key, found)
        return handled

    def _settle(self, table: str, key: str,
                found: list[tuple[float, str, str | None, Mapping[str, Any]]]) -> None:
        """Last writer wins (write time, then region name) across every region's writes."""
        written, region, image_text, keys = max(found, key=lambda w: (w[0], w[1]))
        latest = self._latest.get((table, key))
        if latest is None or (written, region) > (latest[0], latest[1]):
            self._latest[(table, key)] = (written, region, image_text)
            for target in self.tables[table]:
                if target != region:
                    self._write(table, target, keys, image_text)
            return
        # Every new write lost to an earlier-replicated later one: bring those regions back.
        for target in sorted({w[1] for w in found}):
            self._write(table, target, keys, latest[2])

    def _read(self, stream: _Stream) -> list[dict[str, Any]]:
        streams = self._system.client("dynamodbstreams", stream.region)
        if not stream.iterators:
            shards = streams.describe_stream(StreamArn=stream.arn)["StreamDescription"]["Shards"]
            for shard in shards:
                stream.iterators[shard["ShardId"]] = streams.get_shard_iterator(
                    StreamArn=stream.arn, ShardId=shard["ShardId"],
                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records: list[dict[str, Any]] = []
        for shard, iterator in stream.iterators.items():
            if iterator is None:
                continue
            page = streams.get_records(ShardIterator=iterator)
            stream.iterators[shard] = page.get("NextShardIterator")
            records.extend(page["Records"])
        return records

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Replication paused for the block (writes in several regions within the
        replication delay); what was written meanwhile replicates afterwards."""
        self._held.set()
        with self._polling:  # a poll already under way finishes first
            pass
        try:
            yield
        finally:
            self._held.clear()

    def _write(self, table: str, region: str, keys: Mapping[str, Any], image_text: str | None) -> None:
        self._echoes[(region, table, _key_of(keys), image_text or "")] += 1
        dynamodb = self._system.client("dynamodb", region)
        if image_text is None:
            dynamodb.delete_item(TableName=table, Key=dict(keys))
        else:
            dynamodb.put_item(TableName=table, Item=json.loads(image_text))
        self.replicated += 1

    # -- lifecycle ---------------------------------------------------------------------------

    def describe(self) -> str:
        regions = sorted({r for rs in self.tables.values() for r in rs})
        return (f"global tables: {len(self.tables)} table(s) replicated between "
                f"{', '.join(regions)} (stream-driven, last writer wins)")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@emulation("global-tables")
def start(system: LocalSystem) -> GlobalTableReplication | None:
    tables: dict[str, list[str]] = {}
    for resource in system.declared(TABLE_TYPE):
        state = system.state(resource)
        if not state.get("streamEnabled"):
            continue
        regions = [r for r in table_regions(state, str(resource.region)) if r in system.regions]
        if len(regions) > 1:
            tables[state["name"]] = regions
    return GlobalTableReplication(system, tables) if tables else None
