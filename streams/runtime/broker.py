"""The shell's broker on Kafka: Faust's consumer for the assignment, our own clients for the rest.

Implements `streams.worker.port.Broker`. End offsets come from our own consumer in this loop
(Faust's consumer thread answers only between long polls: measured median 2.3 s), raised to
the Fetch high-water mark on the embedded broker; output topics go through our own producer (no
ambiguous retries: streams.kafka.clients), changelogs and feeds straight to Faust's producer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.config import Settings
from streams.kafka import admin, overrides, security
from streams.kafka.clients import OutputClient
from streams.kafka.offsets import raise_to_highwater
from streams.worker.records import TP, Outgoing, Record

log = logging.getLogger("shipguard")


class FaustBroker:
    """`streams.worker.port.Broker` over a Faust app and shipguard's own aiokafka clients."""

    def __init__(self, app: Any, settings: Settings, embedded: bool) -> None:
        self.app, self.settings, self.embedded = app, settings, embedded
        self.outputs = OutputClient(settings.bootstrap_servers, settings.app_id,
                                    client_kwargs=lambda: security.aiokafka_kwargs(settings))
        self.offsets_consumer: AIOKafkaConsumer | None = None

    async def produce(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None) -> Any:
        """Straight to Faust's producer: its Topic.send (channels, codecs, FutureMessage) cost 19%
        of the worker's busy time for records that are bytes already."""
        return await self.app.producer.send(topic, key, value, partition, None, None)

    async def send(self, out: list[Outgoing]) -> list[Any]:
        # output topics through our own producer, the rest through Faust's; then wait for all:
        # an offset, or the exception, per message
        futures = [await (self.outputs.send(item.topic, item.key, item.value, item.partition)  # type: ignore[arg-type]  # output topics always have a partition
                          if item.identity is not None else self.produce(item.topic, item.key, item.value,
                                                                          item.partition))
                   for item in out]
        results = await asyncio.gather(*futures, return_exceptions=True)
        return [r if isinstance(r, BaseException) else r.offset for r in results]

    def assigned(self) -> list[TP]:
        return [(tp.topic, tp.partition) for tp in self.app.consumer.assignment()]

    async def end_offsets(self, tps: list[TP]) -> dict[TP, int]:
        consumer = self.offsets_consumer
        if consumer is None:
            consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.bootstrap_servers, enable_auto_commit=False,
                                        client_id=f"{self.settings.app_id}-end-offsets",
                                        **security.aiokafka_kwargs(self.settings))
            await consumer.start()
            self.offsets_consumer = consumer
        ends = await consumer.end_offsets([TopicPartition(t, p) for t, p in tps])
        if self.embedded:  # its ListOffsets is too low (streams.kafka.compat (a))
            ends = await raise_to_highwater(overrides.client_of(consumer), ends)
        return {(tp.topic, tp.partition): end for tp, end in ends.items() if end is not None}

    async def committed(self) -> dict[TP, int]:
        """The group's committed offsets from the broker (Faust's copy is set only after its seek,
        and records can arrive before); a broker that does not answer is asked again (an outage)
        for a minute before the worker gives up."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return await asyncio.to_thread(admin.committed_offsets, self.settings.bootstrap_servers,
                                               self.settings.app_id,
                                               security=security.kafka_python_kwargs(self.settings))
            except Exception as exc:  # BrokerUnreachable, or kafka-python's errors
                if attempt == 12:
                    raise
                log.warning("committed offsets of group %s not read (attempt %d): %s; asking again in 5 s",
                            self.settings.app_id, attempt, exc)
                await asyncio.sleep(5)

    def start_offset(self, tp: TP) -> int:
        return overrides.committed_offset(self.app, *tp)

    def rebalances(self) -> int:
        return int(self.app.rebalancing_count)

    async def read_range(self, topic: str, partition: int, start: int, stop: int) -> list[Record]:
        return [Record(topic, partition, r.offset, r.key, r.value)
                for r in await self.outputs.read_range(topic, partition, start, stop)]

    async def read_back(self, topic: str, partition: int, start: int) -> tuple[list[bytes], int]:
        return await self.outputs.read_back(topic, partition, start)

    async def stop(self) -> None:
        """Close our own clients (at worker shutdown)."""
        consumer, self.offsets_consumer = self.offsets_consumer, None
        if consumer is not None:
            await consumer.stop()
        await self.outputs.stop()
