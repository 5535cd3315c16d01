"""The Faust app: topics, tables and the two batch agents, wired to the Shell.

Order side  : order-paid, waybill-uploaded, cancellation-requests, clock-ticks, <app>-order-feed
              -> table `orders` (key order_id) -> violation-warnings, <app>-waybill-feed
Waybill side: tracking-scans, <app>-waybill-feed
              -> table `waybills` (key waybill_no) -> <app>-order-feed
Every topic has the same partition count, so Faust's assignor co-partitions them all: partition
p of every topic and changelog is served by the same worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from typing import Any, Optional

import faust
from faust.types import TP

from processors.config import RulesConfig
from processors.order import Context
from schemas.shop import ShopState
from schemas.state import InputClock, Outbox, OrderState, WaybillState
from streams.kafka import security
from streams import topics as T
from streams.config import Settings
from streams.kafka.clients import OutputClient, commit_what_landed
from streams.runtime.web import install_web
from streams.runtime.serde import KeyCodec, StateCodec
from streams.worker.shell import Outgoing, PartitionedStore, Record, Shell, StateStore

log = logging.getLogger("shipguard")

BATCH_MAX = 1000
BATCH_WITHIN = 0.05
# The shop side decides only once stream time minus the lateness has passed a fact, so it can
# wait longer for a batch: each batch rewrites a touched shop's whole 7-day state to its
# changelog (in a wall-mode run at ~1,200 events/s, 23% of the worker's time with 50 ms batches).
SHOP_BATCH_WITHIN = 1.0


@dataclass
class Built:
    """The app and the handles a caller (CLI, tests) may want."""

    app: faust.App
    shell: Shell
    orders: Any
    waybills: Any


def _record(event: Any) -> Record:
    message = event.message
    return Record(message.topic, message.partition, message.offset, message.key, message.value)


def _table(app: faust.App, name: str, model: type, partitions: int) -> Any:
    """A table whose keys are UTF-8 strings and whose values are one state model, via our codec.

    Faust derives a table's serializers from key_type/value_type (falling back to JSON, which
    would turn an order id like "570001" into an int on recovery) and ignores `schema`, so the
    table gets an explicit changelog topic that decodes with our codecs.
    """
    key_codec, value_codec = KeyCodec(), StateCodec(model)
    schema = faust.Schema(key_serializer=key_codec, value_serializer=value_codec)
    changelog = app.topic(f"{app.conf.id}-{name}-changelog", schema=schema, key_serializer=key_codec,
                          value_serializer=value_codec, partitions=partitions, compacting=True,
                          acks=False, internal=True)
    table = app.Table(name, default=None, partitions=partitions, schema=schema, changelog_topic=changelog)
    table.key_serializer, table.value_serializer = key_codec, value_codec
    return table


def _state_store(table: Any, rocksdb: bool, produce: Any, recovery: Any) -> StateStore:
    """The shell's view of a table: the memory store as is, RocksDB addressed by partition.

    Each changelog record the shell writes is also noted where Faust notes the records it read
    (`recovery.active_offsets`). Faust restores a partition kept through a rebalance from the
    last offset it knows of: without the note, it read the shell's own records since the last
    restore again and wrote them over newer state (orders emitting a stage twice, shops losing
    facts: README "Delivery guarantees").
    """
    data = table.data
    key_codec, value_codec = table.key_serializer, table.value_serializer
    if rocksdb:
        data = PartitionedStore(data, key_codec.dumps, value_codec.dumps, key_codec.loads, value_codec.loads)
    topic = table.changelog_topic.get_topic_name()

    def written(future: Any) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        meta = future.result()
        tp = TP(meta.topic, meta.partition)
        known = recovery.active_offsets.get(tp)
        if known is None or meta.offset > known:
            recovery.active_offsets[tp] = meta.offset
        if rocksdb:  # what Faust's Table._on_changelog_sent does: a restart reads only what follows
            table.data.set_persisted_offset(tp, meta.offset)

    async def write(partition: int, key: str, value: Any) -> Any:
        future = await produce(topic, key_codec.dumps(key), None if value is None else value_codec.dumps(value),
                               partition)
        future.add_done_callback(written)
        return future

    return StateStore(data, write)


async def _or_stop(step: Any) -> None:
    """Run a batch or tick; if it fails, end the process at once.

    A failed step may have changed state in memory that never reached the changelog, and Faust
    acknowledges a batch's records even when the batch raised: going on would lose them. Ending
    the process leaves their offsets uncommitted, so the restarted worker (a supervisor's job)
    reads them again and repairs the outboxes (README "Delivery guarantees").
    """
    try:
        await step
    except asyncio.CancelledError:
        raise
    except Exception:
        log.critical("worker step failed: exiting so that a restart reads its input again", exc_info=True)
        logging.shutdown()
        os._exit(70)


def build_app(settings: Settings, rules: RulesConfig, faust_overrides: Optional[dict] = None,
              embedded: bool = False) -> Built:
    """Create the Faust app with shipguard's topics, tables and agents."""
    n = settings.partitions
    app = faust.App(
        settings.app_id,
        broker=settings.broker,
        store="rocksdb://" if settings.store == "rocksdb" else "memory://",
        topic_partitions=n,
        topic_replication_factor=1,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        web_port=settings.web_port,
        web_host="127.0.0.1",
        producer_linger=0.005,
        producer_max_batch_size=65536,
        datadir=str(settings.data_dir),
        **security.faust_app_kwargs(settings),
        **(faust_overrides or {}),
    )
    waybill_feed, order_feed, shop_feed = T.internal_topics(settings.app_id)

    def topic(*names: str) -> Any:
        return app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw", partitions=n)

    orders = _table(app, "orders", OrderState, n)
    waybills = _table(app, "waybills", WaybillState, n)
    shops = _table(app, "shops", ShopState, n)
    outbox = _table(app, "outbox", Outbox, n)
    clocks = _table(app, "clocks", InputClock, n)
    outputs = OutputClient(settings.bootstrap_servers, settings.app_id,
                           client_kwargs=lambda: security.aiokafka_kwargs(settings))

    async def produce(topic: str, key: Optional[bytes], value: Optional[bytes], partition: Optional[int]) -> Any:
        # straight to the producer: Faust's Topic.send (channels, codecs, FutureMessage) cost
        # 19% of the worker's busy time for records that are bytes already
        return await app.producer.send(topic, key, value, partition, None, None)

    async def send(out: list[Outgoing]) -> list[Any]:
        # output topics through our own producer (no ambiguous retries: streams.kafka.clients), the
        # rest through Faust's; then wait for all: an offset, or the exception, per message
        futures = [await (outputs.send(item.topic, item.key, item.value, item.partition)  # type: ignore[arg-type]
                          if item.identity is not None else produce(item.topic, item.key, item.value, item.partition))
                   for item in out]
        results = await asyncio.gather(*futures, return_exceptions=True)
        return [r if isinstance(r, BaseException) else r.offset for r in results]

    def assigned() -> list[tuple[str, int]]:
        return [(tp.topic, tp.partition) for tp in app.consumer.assignment()]

    offsets_client: dict[str, Any] = {"embedded": embedded}

    async def end_offsets(tps: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        # Our own consumer in this loop: Faust's consumer thread answers only between long polls
        # (measured: median 2.3 s). On the embedded broker compat raises ListOffsets' answer to
        # the Fetch high-water mark (its ListOffsets is too low).
        from aiokafka import AIOKafkaConsumer, TopicPartition

        from streams.kafka import compat

        consumer = offsets_client.get("consumer")
        if consumer is None:
            consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False,
                                        client_id=f"{settings.app_id}-end-offsets",
                                        **security.aiokafka_kwargs(settings))
            await consumer.start()
            offsets_client["consumer"] = consumer
        ends = await consumer.end_offsets([TopicPartition(t, p) for t, p in tps])
        if offsets_client.get("embedded"):
            ends = await compat.raise_to_highwater(consumer._client, ends)
        return {(tp.topic, tp.partition): end for tp, end in ends.items() if end is not None}

    @app.on_before_shutdown.connect
    async def _close_offsets_client(*args: Any, **kwargs: Any) -> None:
        consumer = offsets_client.pop("consumer", None)
        if consumer is not None:
            await consumer.stop()
        await outputs.stop()

    async def committed() -> dict[tuple[str, int], int]:
        # the group's committed offsets from the broker (Faust's copy is set only after its
        # seek, and records can arrive before: the hole Shell._complete closes); a broker that
        # does not answer is asked again (an outage) for a minute before the worker gives up
        from streams.kafka import admin

        attempt = 0
        while True:
            attempt += 1
            try:
                return await asyncio.to_thread(admin.committed_offsets, settings.bootstrap_servers, settings.app_id,
                                               security=security.kafka_python_kwargs(settings))
            except Exception as exc:  # BrokerUnreachable, or kafka-python's errors
                if attempt == 12:
                    raise
                log.warning("committed offsets of group %s not read (attempt %d): %s; asking again in 5 s",
                            settings.app_id, attempt, exc)
                await asyncio.sleep(5)

    async def read_range(topic: str, partition: int, start: int, stop: int) -> list[Record]:
        return [Record(topic, partition, r.offset, r.key, r.value)
                for r in await outputs.read_range(topic, partition, start, stop)]

    def start_offset(key: tuple[str, int]) -> int:
        return app.consumer._committed_offset.get(TP(*key)) or 0

    rocksdb = settings.store == "rocksdb"
    recovery = app.tables.recovery
    shell = Shell(
        ctx=Context(rules=rules, salt=settings.pii_salt), clock_mode=settings.clock, partitions=n,
        app_id=settings.app_id,
        orders=_state_store(orders, rocksdb, produce, recovery),
        waybills=_state_store(waybills, rocksdb, produce, recovery),
        shops=_state_store(shops, rocksdb, produce, recovery),
        send=send, assigned=assigned, end_offsets=end_offsets, start_offset=start_offset,
        max_message_bytes=settings.max_message_bytes,
        outbox=_state_store(outbox, rocksdb, produce, recovery), read_back=outputs.read_back,
        read_range=read_range, committed=committed, rebalances=lambda: app.rebalancing_count,
        clocks=_state_store(clocks, rocksdb, produce, recovery))
    shell.open.clear()  # until the first assignment's tables are restored
    install_web(app, shell, shell.open.is_set)  # /metrics, /health, /order/{order_id}

    @app.agent(topic(T.ORDER_PAID, T.WAYBILL_UPLOADED, T.CANCELLATION_REQUESTS, T.CLOCK_TICKS, order_feed),
               name="shipguard.order-side")
    async def order_side(stream: Any) -> None:
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):
            await _or_stop(shell.order_batch([_record(e) for e in events]))

    @app.agent(topic(T.TRACKING_SCANS, waybill_feed), name="shipguard.waybill-side")
    async def waybill_side(stream: Any) -> None:
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):
            await _or_stop(shell.waybill_batch([_record(e) for e in events]))

    @app.agent(topic(shop_feed), name="shipguard.shop-side")
    async def shop_side(stream: Any) -> None:
        async for events in stream.take_events(BATCH_MAX, within=SHOP_BATCH_WITHIN):
            await _or_stop(shell.shop_batch([_record(e) for e in events]))

    @app.on_partitions_revoked.connect
    async def _revoked(*args: Any, **kwargs: Any) -> None:
        await shell.pause()

    @app.on_partitions_assigned.connect
    async def _assigned(*args: Any, **kwargs: Any) -> None:
        await shell.pause()
        shell.on_assigned()
        commit_what_landed(app.consumer, shell.committable, lambda: shell.landed)

    @app.timer(0.2, name="shipguard.clock")
    async def clock() -> None:
        if not shell.open.is_set():
            if app.rebalancing or not recovery.completed.is_set() or not app.consumer.assignment():
                return
            shell.resume()
            log.info("shipguard worker ready: clock=%s partitions=%d assigned=%d orders=%d waybills=%d",
                     settings.clock, n, len(app.consumer.assignment()), len(shell.orders), len(shell.waybills))
        await _or_stop(shell.tick())

    return Built(app=app, shell=shell, orders=orders, waybills=waybills)
