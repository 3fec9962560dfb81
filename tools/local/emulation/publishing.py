"""What the emulations of AWS-published MQTT messages share (Device Shadow documents, registry
events): a change queues its message inside the moto call that made it; messages reach the
region's rules engine outside that call, in order, by `publish_pending()` / `settle()` or,
with `world.background`, by a thread of their own. Not an emulation itself (no factory)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from typing import Any

from tools.local.world import World

POLL_SECONDS = 0.05
Message = tuple[str, str, dict[str, Any]]  # region, topic, payload


class QueuedPublisher:
    kind = "messages"  # for errors and thread names

    def __init__(self, world: World, patches: list[Any]) -> None:
        self._world = world
        self._queue: deque[Message] = deque()
        self._lock = threading.Lock()
        self._publishing = threading.Lock()  # one publisher at a time: messages stay in order
        self.published: list[Message] = []
        self._patches = patches
        for patch in self._patches:
            patch.start()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if world.background:
            self._thread = threading.Thread(target=self._loop, name=f"local-{self.kind}",
                                            daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self.publish_pending()

    def _enqueue(self, region: str, topic: str, message: dict[str, Any]) -> None:
        with self._lock:
            self._queue.append((region, topic, message))

    def drain(self) -> Iterator[Message]:
        while True:
            with self._lock:
                if not self._queue:
                    return
                item = self._queue.popleft()
            yield item

    def publish_pending(self) -> int:
        from tools.local.emulation.rules_engine import RulesEngine

        engine = self._world.emulations.get(RulesEngine)
        moved = 0
        with self._publishing:
            for region, topic, message in self.drain():
                self.published.append((region, topic, message))
                if engine is not None:
                    engine.publish(region, topic, message)
                moved += 1
        return moved

    def settle(self, rounds: int = 50) -> None:
        from tools.local.emulation.streams import Streams

        streams = self._world.emulations.get(Streams)
        for _ in range(rounds):
            moved = self.publish_pending()
            if streams is not None:
                streams.settle(rounds)
            if not moved and not self._queue:
                return
        raise TimeoutError(f"{self.kind} still flowing after {rounds} rounds")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for patch in reversed(self._patches):
            patch.stop()
