"""The Faust app: topics, tables, the three side agents and the clock timer, wired to the Shell.

Order side  : order-paid, waybill-uploaded, cancellation-requests, clock-ticks, <app>-order-feed
              -> table `orders` (key order_id) -> violation-warnings, cancellation-outcomes,
                 <app>-waybill-feed, <app>-shop-feed
Waybill side: tracking-scans, <app>-waybill-feed
              -> table `waybills` (key waybill_no) -> <app>-order-feed
Shop side   : <app>-shop-feed -> table `shops` (key shop_id) -> shop-alerts
(streams.topics.side_topics). Every topic has the same partition count, so Faust's assignor
co-partitions them all: partition p of every topic and changelog is served by the same worker.
Faust provides group membership, batching, table restore, the web server and the timer; the
shell does the rest (streams.worker), and where the two meet is streams.kafka.overrides.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from typing import Any, cast

import faust

from processors.config import RulesConfig
from processors.order import Context
from schemas.shop import ShopState
from schemas.state import InputClock, OrderState, Outbox, WaybillState
from streams import topics as T
from streams.config import Settings
from streams.kafka import overrides, security
from streams.kafka.offsets import after_last_records
from streams.runtime.broker import FaustBroker
from streams.runtime.serde import KeyCodec, StateCodec
from streams.runtime.web import install_web
from streams.worker.records import Record
from streams.worker.shell import Shell
from streams.worker.stores import MappingStore, StateStore, Stores

log = logging.getLogger("shipguard")

BATCH_MAX = 1000
BATCH_WITHIN = 0.05
# The shop side decides only once stream time minus the lateness has passed a fact, so it can
# wait longer for a batch: each batch rewrites a touched shop's whole 7-day state to its
# changelog (in a wall-mode run at ~1,200 events/s, 23% of the worker's time with 50 ms batches).
SHOP_BATCH_WITHIN = 1.0
# Watermarks go to every partition of a feed; sent after every batch they were a good share of
# the feed traffic (two workers: 0.13 -> 0.33 broker CPU s per 1,000 events once each mark also
# carried the forward time). At most one round per feed and 100 ms: timers fire up to 0.1 s later.
MARK_INTERVAL_S = 0.1


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
    schema: Any = faust.Schema(key_serializer=key_codec, value_serializer=value_codec)
    changelog = app.topic(f"{app.conf.id}-{name}-changelog", schema=schema, key_serializer=key_codec,
                          value_serializer=value_codec, partitions=partitions, compacting=True,
                          acks=False, internal=True)
    table: Any = app.Table(name, default=None, partitions=partitions, schema=schema, changelog_topic=changelog)
    table.key_serializer, table.value_serializer = key_codec, value_codec
    return table


def _state_store(table: Any, rocksdb: bool, produce: Any, recovery: Any) -> StateStore:
    """The shell's view of a table: the memory store as is, RocksDB addressed by partition.

    Each changelog record the shell writes is also noted where Faust notes the records it read
    (streams.kafka.overrides, row 6): without it, Faust restored a kept partition from before
    the shell's records and wrote them over newer state (docs/delivery.md).
    """
    key_codec, value_codec = table.key_serializer, table.value_serializer
    data: Any = MappingStore(table.data, overrides.note_key_partition)
    if rocksdb:
        data = overrides.RocksDBTableData(table.data, key_codec.dumps, value_codec.dumps, key_codec.loads,
                                          value_codec.loads)
    topic = table.changelog_topic.get_topic_name()

    def written(future: Any) -> None:
        if not future.cancelled() and future.exception() is None:
            overrides.note_changelog_written(table, recovery, rocksdb, future.result())

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
    reads them again and repairs the outboxes (docs/delivery.md).
    """
    try:
        await step
    except asyncio.CancelledError:
        raise
    except Exception:
        log.critical("worker step failed: exiting so that a restart reads its input again", exc_info=True)
        logging.shutdown()
        os._exit(70)


def uses_transactions(settings: Settings, embedded: bool) -> bool:
    """Kafka transactions per batch (streams.kafka.transactions): asked for, on a broker that has them.

    Off by default until the whole integration tier passes with them (docs/delivery.md)."""
    return settings.transactions == "on" and not embedded


def build_app(settings: Settings, rules: RulesConfig, faust_overrides: dict | None = None,
              embedded: bool = False) -> Built:
    """Create the Faust app with shipguard's topics, tables and agents."""
    n = settings.partitions
    overrides.install_every_topic_fix()  # streams.kafka.overrides, row 10
    transactional = uses_transactions(settings, embedded)
    if transactional:
        overrides.install_read_committed()  # row 11
        overrides.install_transactional_ends(  # row 12
            lambda ends: after_last_records(settings.bootstrap_servers, ends, security.aiokafka_kwargs(settings)))
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
        # Faust binds its web server to web_bind (default: every interface); web_host is only the
        # name it advertises. /order and /metrics have no authentication: loopback unless told
        web_bind=settings.web_host,
        web_host=settings.web_host,
        producer_linger=0.005,
        producer_max_batch_size=65536,
        datadir=str(settings.data_dir),
        **security.faust_app_kwargs(settings),
        **(faust_overrides or {}),
    )

    def topic(*names: str) -> Any:
        return app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw", partitions=n)

    orders = _table(app, "orders", OrderState, n)
    waybills = _table(app, "waybills", WaybillState, n)
    shops = _table(app, "shops", ShopState, n)
    outbox = _table(app, "outbox", Outbox, n)
    clocks = _table(app, "clocks", InputClock, n)
    broker = FaustBroker(app, settings, embedded, transactional=transactional)

    @app.on_before_shutdown.connect
    async def _close_clients(*args: Any, **kwargs: Any) -> None:
        await broker.stop()

    rocksdb = settings.store == "rocksdb"
    recovery = cast(Any, app.tables).recovery  # TableManager has it; faust's TableManagerT does not declare it
    stores = Stores(*(_state_store(table, rocksdb, broker.produce, recovery)
                      for table in (orders, waybills, shops, clocks)))
    shell = Shell(
        ctx=Context(rules=rules, salt=settings.pii_salt), broker=broker, stores=stores, clock_mode=settings.clock,
        partitions=n, app_id=settings.app_id, max_message_bytes=settings.max_message_bytes,
        outbox=_state_store(outbox, rocksdb, broker.produce, recovery), mark_interval_s=MARK_INTERVAL_S,
        transactions=broker if transactional else None)
    shell.open.clear()  # until the first assignment's tables are restored
    install_web(app, shell, shell.open.is_set)  # /metrics, /health, /order/{order_id}

    def side_agent(side: str, topics: tuple[str, ...], within: float) -> None:
        async def consume(stream: Any) -> None:
            async for events in stream.take_events(BATCH_MAX, within=within):
                await _or_stop(shell.batch(side, [_record(e) for e in events]))
        app.agent(topic(*topics), name=f"shipguard.{side}-side")(consume)

    for side, topics in T.side_topics(settings.app_id).items():
        side_agent(side, topics, SHOP_BATCH_WITHIN if side == T.SHOP_SIDE else BATCH_WITHIN)

    @app.on_partitions_revoked.connect
    async def _revoked(*args: Any, **kwargs: Any) -> None:
        await shell.pause()

    @app.on_partitions_assigned.connect
    async def _assigned(*args: Any, **kwargs: Any) -> None:
        await shell.pause()
        shell.on_assigned()
        await broker.serve()  # fence the partitions' last owners first
        overrides.commit_what_landed(app.consumer, shell.committable, lambda: shell.reading.landed)

    @app.timer(0.2, name="shipguard.clock")
    async def clock() -> None:
        if not shell.open.is_set():
            if app.rebalancing or not recovery.completed.is_set() or not app.consumer.assignment():
                return
            shell.resume()
            log.info("shipguard worker ready: clock=%s partitions=%d assigned=%d orders=%d waybills=%d",
                     settings.clock, n, len(app.consumer.assignment()), len(shell.stores.orders),
                     len(shell.stores.waybills))
        await _or_stop(shell.tick())

    return Built(app=app, shell=shell, orders=orders, waybills=waybills)
