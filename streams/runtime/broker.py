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

from streams import topics as T
from streams.config import Settings
from streams.kafka import admin, overrides, security
from streams.kafka.clients import OutputClient
from streams.kafka.offsets import raise_to_highwater
from streams.kafka.transactions import Message, PartitionTransactions
from streams.worker.records import TP, Outgoing, Record

log = logging.getLogger("shipguard")


class FaustBroker:
    """`streams.worker.port.Broker` over a Faust app and shipguard's own aiokafka clients."""

    def __init__(self, app: Any, settings: Settings, embedded: bool, transactional: bool = False) -> None:
        self.app, self.settings, self.embedded = app, settings, embedded
        # with transactions, our own readers see only committed records (the LSO is their end)
        self.isolation = {"isolation_level": "read_committed"} if transactional else {}
        self.outputs = OutputClient(settings.bootstrap_servers, settings.app_id,
                                    client_kwargs=lambda: {**security.aiokafka_kwargs(settings), **self.isolation})
        self.offsets_consumer: AIOKafkaConsumer | None = None
        self.transactions = PartitionTransactions(
            settings.bootstrap_servers, settings.app_id,
            client_kwargs=lambda: security.aiokafka_kwargs(settings)) if transactional else None
        self.collecting: dict[tuple[str, int], list[tuple[Message, asyncio.Future | None]]] | None = None
        tables = {"orders": T.ORDER_SIDE, "waybills": T.WAYBILL_SIDE, "shops": T.SHOP_SIDE}
        self.changelog_side = {f"{settings.app_id}-{table}-changelog": side for table, side in tables.items()}
        self.side_of = T.side_of(settings.app_id)

    async def produce(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None) -> Any:
        """Straight to Faust's producer: its Topic.send (channels, codecs, FutureMessage) cost 19%
        of the worker's busy time for records that are bytes already. Inside a transactional
        batch (`open_batch`), into the transaction of `partition` (a changelog record's partition
        is its key's state partition); the future completes when that transaction commits."""
        if self.collecting is not None:
            assert partition is not None and key is not None, "a changelog record names its key and partition"
            # the clocks table's keys are "topic:partition": the side that reads that topic
            side = self.changelog_side.get(topic) or self.side_of[key.decode("utf-8").rsplit(":", 1)[0]]
            future = asyncio.get_running_loop().create_future()
            self.collecting.setdefault((side, partition), []).append(((topic, key, value, partition), future))
            return future
        return await self.app.producer.send(topic, key, value, partition, None, None)

    # ---- streams.worker.port.Transactions, when the broker has transactions ----------------------
    def open_batch(self) -> None:
        self.collecting = {}

    def add(self, item: Outgoing) -> None:
        transaction = item.transaction
        assert self.collecting is not None and transaction is not None, f"a message without a transaction: {item}"
        self.collecting.setdefault(transaction, []).append(((item.topic, item.key, item.value, item.partition), None))

    async def commit_batch(self, offsets: dict[tuple[str, int], dict[TP, int]]) -> None:
        assert self.transactions is not None
        transactions, batch, self.collecting = self.transactions, self.collecting or {}, None

        async def commit(transaction: tuple[str, int]) -> None:
            entries = batch.get(transaction, [])
            try:
                results = await transactions.commit(transaction, [message for message, _ in entries],
                                                    offsets.get(transaction, {}))
            except BaseException as exc:
                for _, future in entries:
                    if future is not None and not future.done():
                        future.set_exception(exc)
                raise
            for (_, future), result in zip(entries, results, strict=True):
                if future is not None:
                    future.set_result(result)

        await asyncio.gather(*(commit(p) for p in sorted(set(batch) | set(offsets))))

    async def serve(self) -> None:
        """The (side, partition)s this worker serves now: their transactional producers (fencing
        the last owners) before their tables are restored."""
        if self.transactions is not None:
            await self.transactions.serve({(self.side_of[t], p) for t, p in self.assigned() if t in self.side_of})

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
                                        **security.aiokafka_kwargs(self.settings), **self.isolation)
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
        if self.transactions is not None:
            await self.transactions.stop()
