"""An in-process stand-in for the broker that drives the real Shell: no Kafka, same code path.

Records are appended to an in-memory partitioned log (Kafka's murmur2 key partitioner), and
each published record is delivered at once, in publish order, to the side that consumes its
topic; internal feed messages loop back the same way. That is the contract's reference reading
("one at a time in publish order"), so scenarios, property tests and `simulate --check` can run
thousands of orders per second through exactly the worker's logic.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any, Iterable, Optional

from kafka.partitioner.default import murmur2

from processors.config import RulesConfig
from processors.order import Context
from schemas import codec
from streams import topics as T
from streams.cli.replay import Message, read_messages
from streams.worker.shell import Outgoing, Record, Shell, StateStore

FIXED_WALL = datetime(2000, 1, 1, tzinfo=timezone.utc)


def partition_for(key: Optional[bytes], partitions: int, fallback: int = 0) -> int:
    """Kafka's default partitioner: murmur2 of the key bytes, or the fallback for no key."""
    if key is None:
        return fallback
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class InProcessEngine:
    """The Shell on a loopback log: publish records, read the output topics."""

    def __init__(self, rules: RulesConfig, partitions: int = 8, app_id: str = "shipguard",
                 salt: str = "test-salt", clock: str = "event", wall_now: Any = None) -> None:
        self.partitions = partitions
        self.log: dict[str, dict[int, list[Record]]] = defaultdict(lambda: defaultdict(list))
        self.waybill_feed, self.order_feed, self.shop_feed = T.internal_topics(app_id)
        self.order_topics = {T.ORDER_PAID, T.WAYBILL_UPLOADED, T.CANCELLATION_REQUESTS, T.CLOCK_TICKS,
                             self.order_feed}
        self.waybill_topics = {T.TRACKING_SCANS, self.waybill_feed}
        self.shop_topics = {self.shop_feed}
        self.orders: dict[str, Any] = {}
        self.waybills: dict[str, Any] = {}
        self.shops: dict[str, Any] = {}
        self.changelog: list[tuple[str, int, str, Any]] = []
        self.shell = Shell(
            ctx=Context(rules=rules, salt=salt), clock_mode=clock, partitions=partitions, app_id=app_id,
            orders=StateStore(self.orders, self._changelog("orders")),
            waybills=StateStore(self.waybills, self._changelog("waybills")),
            shops=StateStore(self.shops, self._changelog("shops")),
            send=self._send, assigned=self._assigned, end_offsets=self._end_offsets, start_offset=lambda tp: 0,
            wall_now=wall_now or (lambda: FIXED_WALL), in_band_marks=False)
        self._queue: list[Record] = []

    def _changelog(self, table: str) -> Any:
        async def write(partition: int, key: str, value: Any) -> None:
            self.changelog.append((table, partition, key, value))
        return write

    # -- the loopback log ------------------------------------------------------------------
    def _assigned(self) -> list[tuple[str, int]]:
        consumed = self.order_topics | self.waybill_topics | self.shop_topics
        return [(topic, p) for topic in consumed for p in range(self.partitions)]

    async def _end_offsets(self, tps: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        return {(topic, p): len(self.log[topic][p]) for topic, p in tps}

    def _append(self, topic: str, key: Optional[bytes], value: bytes, partition: Optional[int]) -> Record:
        if partition is None:
            partition = partition_for(key, self.partitions)
        log = self.log[topic][partition]
        record = Record(topic, partition, len(log), key, value)
        log.append(record)
        return record

    async def _send(self, out: list[Outgoing]) -> None:
        for item in out:
            record = self._append(item.topic, item.key, item.value, item.partition)
            if item.topic in self.order_topics | self.waybill_topics | self.shop_topics:
                self._queue.append(record)

    async def _deliver(self, record: Record) -> None:
        if record.topic in self.order_topics:
            await self.shell.order_batch([record])
        elif record.topic in self.shop_topics:
            await self.shell.shop_batch([record])
        else:
            await self.shell.waybill_batch([record])

    async def _drain(self) -> None:
        while self._queue:
            await self._deliver(self._queue.pop(0))

    # -- the public side -------------------------------------------------------------------
    async def publish(self, topic: str, key: Optional[bytes], value: bytes, partition: Optional[int] = None) -> None:
        """Publish one record and process everything it causes before returning."""
        record = self._append(topic, key, value, partition)
        if topic in self.order_topics or topic in self.waybill_topics:
            self._queue.append(record)
        await self._drain()

    async def publish_messages(self, messages: Iterable[Message]) -> None:
        """Publish replay messages in order."""
        for message in messages:
            await self.publish(message.topic, message.key, message.value, message.partition)

    async def run_file(self, path: Any) -> None:
        """Publish every line of a replay file, as `shipguard replay` would."""
        for _, messages in read_messages(path, self.partitions):
            await self.publish_messages(messages)

    async def advance_wall(self) -> None:
        """Wall mode: let the shell look at the (injected) wall clock."""
        await self.shell.tick()
        await self._drain()

    def output(self, topic: str) -> list[dict]:
        """Every value on an output topic, decoded, in partition then offset order."""
        return [codec.loads(r.value) for p in sorted(self.log[topic]) for r in self.log[topic][p]]

    def run(self, coro: Any) -> Any:
        """Run a coroutine of this engine to completion (for synchronous callers)."""
        return asyncio.run(coro)
