"""An in-process stand-in for the broker that drives the real Shell: no Kafka, same code path.

Records are appended to an in-memory partitioned log (Kafka's murmur2 key partitioner), and
each published record is delivered at once, in publish order, to the side that consumes its
topic; internal feed messages loop back the same way. That is the contract's reference reading
("one at a time in publish order"), so scenarios, property tests and `simulate --check` can run
thousands of orders per second through exactly the worker's logic. The engine is the shell's
`Broker` (streams.worker.port): it serves every partition, and nothing is ever committed.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from processors.config import RulesConfig
from processors.order import Context
from schemas import codec
from streams import topics as T
from streams.cli.replay import Message, read_messages
from streams.topics import partition_for
from streams.worker.records import TP, Outgoing, Record
from streams.worker.shell import Shell
from streams.worker.stores import StateStore, Stores

FIXED_WALL = datetime(2000, 1, 1, tzinfo=UTC)

__all__ = ["FIXED_WALL", "InProcessEngine", "partition_for"]


class InProcessEngine:
    """The Shell on a loopback log: publish records, read the output topics.

    `outbox=True` gives the shell an outbox table (as on Kafka); `in_band_marks=True` makes the
    sides exchange watermarks as on Kafka (in process the forwards arrive at once and need none).
    """

    def __init__(self, rules: RulesConfig, partitions: int = 8, app_id: str = "shipguard",
                 salt: str = "test-salt", clock: str = "event", wall_now: Any = None,
                 outbox: bool = False, in_band_marks: bool = False) -> None:
        self.partitions = partitions
        self.log: dict[str, dict[int, list[Record]]] = defaultdict(lambda: defaultdict(list))
        self.side_of = T.side_of(app_id)
        self.orders: dict[str, Any] = {}
        self.waybills: dict[str, Any] = {}
        self.shops: dict[str, Any] = {}
        self.changelog: list[tuple[str, int, str, Any]] = []
        stores = Stores(StateStore(self.orders, self._changelog("orders")),
                        StateStore(self.waybills, self._changelog("waybills")),
                        StateStore(self.shops, self._changelog("shops")),
                        StateStore({}, None))
        self.shell = Shell(
            ctx=Context(rules=rules, salt=salt), broker=self, stores=stores, clock_mode=clock,
            partitions=partitions, app_id=app_id, outbox=StateStore({}, None) if outbox else None,
            wall_now=wall_now or (lambda: FIXED_WALL), in_band_marks=in_band_marks)
        self._queue: list[Record] = []

    def _changelog(self, table: str) -> Any:
        async def write(partition: int, key: str, value: Any) -> None:
            self.changelog.append((table, partition, key, value))
        return write

    # -- the shell's broker (streams.worker.port.Broker) ---------------------------------------
    def assigned(self) -> list[TP]:
        """Every partition of every consumed topic."""
        return [(topic, p) for topic in self.side_of for p in range(self.partitions)]

    async def end_offsets(self, tps: list[TP]) -> dict[TP, int]:
        return {(topic, p): len(self.log[topic][p]) for topic, p in tps}

    async def committed(self) -> dict[TP, int]:
        return {}  # nothing is committed: every partition starts at 0

    def start_offset(self, tp: TP) -> int:
        return 0

    def rebalances(self) -> int:
        return 0

    async def send(self, out: list[Outgoing]) -> list[Any] | None:
        for item in out:
            record = self._append(item.topic, item.key, item.value, item.partition)
            if item.topic in self.side_of:
                self._queue.append(record)
        return None

    async def read_range(self, topic: str, partition: int, start: int, stop: int) -> list[Record]:
        return self.log[topic][partition][start:stop]

    async def read_back(self, topic: str, partition: int, start: int) -> tuple[list[bytes], int]:
        records = self.log[topic][partition]
        return [r.value for r in records[start:] if r.value is not None], len(records)

    # -- the loopback log ------------------------------------------------------------------
    def _append(self, topic: str, key: bytes | None, value: bytes, partition: int | None) -> Record:
        if partition is None:
            partition = partition_for(key, self.partitions)
        log = self.log[topic][partition]
        record = Record(topic, partition, len(log), key, value)
        log.append(record)
        return record

    async def _deliver(self, record: Record) -> None:
        await self.shell.batch(self.side_of[record.topic], [record])

    async def _drain(self) -> None:
        while self._queue:
            await self._deliver(self._queue.pop(0))

    # -- the public side -------------------------------------------------------------------
    async def publish(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> None:
        """Publish one record and process everything it causes before returning."""
        record = self._append(topic, key, value, partition)
        if topic in self.side_of and self.side_of[topic] != T.SHOP_SIDE:
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
        return [codec.loads(r.value or b"null") for p in sorted(self.log[topic]) for r in self.log[topic][p]]

    def run(self, coro: Any) -> Any:
        """Run a coroutine of this engine to completion (for synchronous callers)."""
        return asyncio.run(coro)
