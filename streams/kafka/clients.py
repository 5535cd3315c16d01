"""Delivery of the output topics without duplicates on a producer that is not idempotent.

The embedded broker refuses aiokafka's idempotent producer, and a plain producer retries a
request whose answer it never got (the connection broke, or it timed out): if the broker had
written it, the retry writes it twice. For `violation-warnings`, `cancellation-outcomes` and
`shop-alerts`, where every record must appear once, the worker uses its own producer that does
not retry such an *ambiguous* failure but fails the send; the shell then reads the partition
back from where the batch started (it is the partition's only writer) and sends only what did
not land. A failure the broker answered (e.g. not the leader) is retried as usual: nothing was
written. Changelogs and the internal feeds stay on Faust's producer: a duplicate there is
harmless (a state written twice; receivers of the feeds ignore what they have seen).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from streams.kafka.overrides import forbid_ambiguous_retries, keep_every_topic

log = logging.getLogger("shipguard")


class OutputClient:
    """The worker's own producer for output topics, and a consumer to read them (and skipped inputs) back."""

    def __init__(self, bootstrap_servers: list[str], client_id: str,
                 client_kwargs: Callable[[], dict] | None = None) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.client_kwargs = client_kwargs or dict
        self.producer: AIOKafkaProducer | None = None
        self.consumer: AIOKafkaConsumer | None = None

    async def send(self, topic: str, key: bytes | None, value: bytes, partition: int) -> Any:
        """Enqueue one record; the returned future fails (no retry) on an ambiguous failure."""
        if self.producer is None:
            producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers, client_id=f"{self.client_id}-outputs",
                                        acks="all", linger_ms=5, max_batch_size=65536, **self.client_kwargs())
            await producer.start()
            forbid_ambiguous_retries(producer)
            keep_every_topic(producer)
            self.producer = producer
        return await self.producer.send(topic, value, key=key, partition=partition)

    async def read_back(self, topic: str, partition: int, start: int, timeout: float = 30.0) -> tuple[list[bytes], int]:
        """The values of `topic`/`partition` from offset `start` to its end, and that end.

        The end is the high-water mark of the Fetch answers themselves (the embedded broker's
        ListOffsets can be too low, and a read that stopped early would send a landed record again).
        """
        records, end = await self._read(topic, partition, start, None, timeout)
        return [record.value for record in records], end

    async def read_range(self, topic: str, partition: int, start: int, stop: int,
                         timeout: float = 30.0) -> list[ConsumerRecord]:
        """The records of `topic`/`partition` from offset `start` up to, not including, `stop`.

        For an input partition whose records the consumer skipped (`streams.worker.reading`). Records
        the broker no longer has (retention) are not there: the read starts at the earliest.
        """
        records, _ = await self._read(topic, partition, start, stop, timeout)
        return records

    async def _read(self, topic: str, partition: int, start: int, stop: int | None,
                    timeout: float) -> tuple[list[ConsumerRecord], int]:
        """Records from `start` to `stop` (None: the high-water mark), and where the read ended."""
        if self.consumer is None:
            consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap_servers, enable_auto_commit=False,
                                        auto_offset_reset="earliest", client_id=f"{self.client_id}-read-back",
                                        **self.client_kwargs())
            await consumer.start()
            self.consumer = consumer
        tp = TopicPartition(topic, partition)
        self.consumer.assign([tp])
        self.consumer.seek(tp, start)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                batch = await self.consumer.getmany(tp, timeout_ms=500, max_records=10_000)
                records.extend(r for r in batch.get(tp, []) if stop is None or r.offset < stop)
                position, highwater = await self.consumer.position(tp), self.consumer.highwater(tp)
                if stop is not None and position >= stop:
                    return records, position
                if stop is None and highwater is not None and position >= highwater:
                    return records, position
                if time.monotonic() > deadline:
                    raise TimeoutError(f"reading {topic}/{partition} from {start} to {stop or 'its end'}: "
                                       f"not done after {timeout:.0f}s (at {position})")
        finally:
            self.consumer.assign([])

    async def stop(self) -> None:
        """Close both clients (at worker shutdown)."""
        for client in (self.producer, self.consumer):
            if client is not None:
                await client.stop()
        self.producer = self.consumer = None
