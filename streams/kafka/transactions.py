"""Kafka transactions, one per (side, partition) and batch: a batch's writes and input offsets land together.

On Apache Kafka each (side, partition) the worker serves has its own transactional producer, with
the transactional id `{app_id}-{side}-{p}` (Kafka Streams' first exactly-once mode: one producer
per task; Faust assigns each side's topics on their own, so one side's partition 5 and another's
can live on two workers). A batch or timer step sends, per (side, partition) it touched, that
one's changelog records, its outputs, the feed messages it caused and its input offsets in one
transaction. A reader with `isolation_level=read_committed` sees all of it or none of it.

Fencing: a worker that gains a partition starts its producer before it restores the partition's
tables. The broker then aborts the last owner's open transaction and rejects anything that owner
sends afterwards (ProducerFenced): a worker that was frozen or cut off, and wakes up still
believing it owns the partition, writes nothing a read_committed reader sees, and ends itself
(the fail-stop of streams.runtime.app). See docs/delivery.md.

aiokafka 0.14 sends TxnOffsetCommit v0, without the group's generation (KIP-447): a producer per
worker could not be fenced by the group, which is why the producer is per partition.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition

from streams.kafka.overrides import keep_every_topic

TP = tuple[str, int]  # (topic, partition)

log = logging.getLogger("shipguard")

#: How long the broker lets a transaction stay open before it aborts it (a frozen worker's, say).
TRANSACTION_TIMEOUT_MS = 60_000

Message = tuple[str, bytes | None, bytes | None, int | None]  # topic, key, value, partition


Task = tuple[str, int]  # (side, partition): what one transactional producer writes for


def transactional_id(app_id: str, task: Task) -> str:
    """The transactional id of a (side, partition): the same on every worker that serves it."""
    return f"{app_id}-{task[0]}-{task[1]}"


class PartitionTransactions:
    """One transactional producer per served (side, partition); `commit` runs one transaction."""

    def __init__(self, bootstrap_servers: list[str], app_id: str,
                 client_kwargs: Callable[[], dict] | None = None) -> None:
        self.bootstrap_servers, self.app_id = bootstrap_servers, app_id
        self.client_kwargs = client_kwargs or dict
        self.producers: dict[Task, AIOKafkaProducer] = {}
        self.committed = 0  # transactions committed (metrics)

    async def serve(self, tasks: set[Task]) -> None:
        """Have a started producer for each of `tasks` (fencing their last owners), none for others."""
        for task in sorted(set(self.producers) - tasks):
            producer = self.producers.pop(task)
            await _stop_quietly(producer)
        new = sorted(tasks - set(self.producers))
        started = await asyncio.gather(*(self._start(task) for task in new))
        self.producers.update(zip(new, started, strict=True))
        if new:
            log.info("transactional producers started tasks=%s (their last owners are fenced)",
                     " ".join(f"{side}:{partition}" for side, partition in new))

    async def _start(self, task: Task) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers,
                                    client_id=f"{self.app_id}-txn-{task[0]}-{task[1]}",
                                    transactional_id=transactional_id(self.app_id, task),
                                    transaction_timeout_ms=TRANSACTION_TIMEOUT_MS, linger_ms=5,
                                    max_batch_size=65536, **self.client_kwargs())
        await producer.start()  # InitProducerId: bumps the epoch, aborts the old owner's open transaction
        keep_every_topic(producer)
        return producer

    async def commit(self, task: Task, messages: list[Message], offsets: dict[TP, int]) -> list[Any]:
        """Send `messages` and commit `offsets` for the group in one transaction of `task`'s
        producer; return each message's record metadata. Raises (ProducerFenced, a timeout, ...)
        when the transaction did not commit: the caller must not go on as if it had."""
        producer = self.producers.get(task)
        if producer is None:
            raise RuntimeError(f"no transactional producer for {task[0]} partition {task[1]}: not served here")
        await producer.begin_transaction()
        futures = [await producer.send(topic, value, key=key, partition=p) for topic, key, value, p in messages]
        if offsets:
            await producer.send_offsets_to_transaction(
                {TopicPartition(topic, p): offset for (topic, p), offset in offsets.items()}, self.app_id)
        await producer.commit_transaction()
        self.committed += 1
        return [future.result() for future in futures]

    async def stop(self) -> None:
        producers, self.producers = list(self.producers.values()), {}
        for producer in producers:
            await _stop_quietly(producer)


async def _stop_quietly(producer: AIOKafkaProducer) -> None:
    try:
        await producer.stop()
    except Exception as exc:  # a fenced producer may fail to flush: nothing of it counts anyway
        log.info("transactional producer stopped with %r", exc)
