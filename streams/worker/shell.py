"""The worker's shell around the processors: one coordinator over rooms of one concern each.

    records --> reading.complete --> sides.apply (decode, route, the processors' steps)
            --> commit sequence: outboxes, state, messages --> reading.land --> tick
    tick: stream time (clock) --> each side's timers (sides.fire) --> watermarks --> commit sequence

| room | module |
|---|---|
| stream time and watermarks | `streams.worker.clock` |
| reading every record once, and commits | `streams.worker.reading` |
| delivery: the outbox, sending, read-back, recovery | `streams.worker.delivery` |
| stores | `streams.worker.stores` |
| deadlines | `streams.worker.deadlines` |
| the sides: one step contract, one batch loop | `streams.worker.sides` (with `routing`, `decode`) |
| the broker, as the shell sees it | `streams.worker.port` |

The shell knows nothing of Faust: `streams.runtime.app` drives it from Faust's agents, timer
and rebalance signals; `streams.inprocess` drives it from a loopback log. No business rule lives
here. One batch or tick runs at a time (`lock`), and none while paused for a rebalance (`open`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from processors import order as order_rules
from streams import topics as T
from streams.worker.clock import StreamTime
from streams.worker.decode import MAX_MESSAGE_BYTES, Decoder
from streams.worker.delivery import Delivery, OutboxDelivery
from streams.worker.metrics import Metrics
from streams.worker.port import Broker, Transactions
from streams.worker.reading import Reading
from streams.worker.records import TP, Outgoing, Record
from streams.worker.routing import Router
from streams.worker.sides import SideRunner, build_sides
from streams.worker.stores import StateStore, Stores

log = logging.getLogger("shipguard")
UTC = UTC


class Shell:
    """Routes records to the processors and their results to tables and topics."""

    def __init__(self, *, ctx: order_rules.Context, broker: Broker, stores: Stores, clock_mode: str,
                 partitions: int, app_id: str, outbox: StateStore | None = None,
                 wall_now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 in_band_marks: bool = True, max_message_bytes: int = MAX_MESSAGE_BYTES,
                 mark_interval_s: float = 0.0, transactions: Transactions | None = None) -> None:
        if clock_mode == "wall" and not ctx.decide_on_read:
            ctx = replace(ctx, decide_on_read=True)
        self.ctx, self.broker, self.stores = ctx, broker, stores
        self.clock_mode, self.partitions, self.app_id = clock_mode, partitions, app_id
        self.shop_feed = T.internal_topics(app_id)[2]
        self.side_of = T.side_of(app_id)  # topic -> the side that reads it
        self.metrics = Metrics()
        self.reading = Reading(broker, self.metrics, markers=transactions is not None)
        self.time = StreamTime(broker, self.reading, self.metrics, mode=clock_mode, partitions=partitions,
                               app_id=app_id, lateness=ctx.rules.allowed_lateness, in_band_marks=in_band_marks,
                               wall_now=wall_now, mark_interval_s=mark_interval_s)
        # Crash safety (docs/delivery.md): with an outbox, each batch's messages are on the
        # broker before its state is, and after an assignment the outboxes are checked against
        # the output partitions before anything else runs. Without one (in process) nothing can
        # crash between the two.
        # With transactions (Apache Kafka) a batch's writes and input offsets commit together per
        # partition, and a new owner fences the old: no outbox is needed (streams.kafka.transactions).
        self.transactions = transactions
        self.delivery = (OutboxDelivery(broker, outbox) if outbox is not None and transactions is None
                         else Delivery(broker))
        self.router = Router(app_id, self.metrics, self.time)
        self.sides = build_sides(ctx, stores, self.time, app_id)
        self.runner = SideRunner(Decoder(self.time, self.metrics, wall_now, max_message_bytes), self.time,
                                 self.router, self.metrics, self.owned_partitions)
        # One batch or tick at a time: a watermark must never be enqueued between a batch's
        # processing (which marks its records read) and the sending of that batch's forwards.
        self.lock = asyncio.Lock()
        # Paused from a rebalance's start until the tables of the new assignment are restored
        # (`pause`, `resume`): no batch or timer runs against state that Faust is still writing.
        self.open = asyncio.Event()
        self.open.set()
        self.serving: set[int] = set()  # the partitions served since the last assignment

    # ---- entry points ---------------------------------------------------------------------
    async def batch(self, side: str, records: list[Record]) -> None:
        """Apply a batch delivered by the consumer on `side`, once the worker is not paused.

        A batch that cannot wait (a new rebalance started) is dropped: nothing of it lands, so
        nothing is committed, and its records are read again (`Reading.complete`, `stalled`).
        """
        started = time.monotonic()
        await self._run(side, records)
        if self.sides[side].measured:
            self.metrics.latency.observe(time.monotonic() - started)

    async def _run(self, side: str, records: list[Record]) -> None:
        if await self._wait_open():
            async with self.lock:
                if self.open.is_set():
                    await self._recover_if_needed()
                    await self._handle(side, records)
                    return
        self.metrics.deferred += len(records)

    async def tick(self) -> None:
        """Stream time may have moved: read stalled partitions, fire due timers, send watermarks."""
        async with self.lock:
            if not self.open.is_set():
                return
            await self._recover_if_needed()
            await self._read_stalled()
            await self._tick()

    async def _read_stalled(self) -> None:
        """Read, apply and land what the consumer stopped delivering (`Reading.stalled`)."""
        async for records in self.reading.stalled(self.side_of):
            await self._handle(self.side_of[records[0].topic], records)

    def owned_partitions(self) -> set[int]:
        """The state partitions this worker serves (every topic is co-partitioned with order-paid).

        A table can also hold other workers' keys (Faust's standby copies): their owners fire them.
        """
        return {p for t, p in self.broker.assigned() if t == T.ORDER_PAID}

    def pending_deadlines(self) -> int:
        """Keys waiting for a timer, over the three sides."""
        return sum(len(side.deadlines) for side in self.sides.values())

    def committable(self, tp: TP) -> int | None:
        """The offset the group may commit for `tp` (`Reading.committable`)."""
        return self.reading.committable(tp)

    # ---- a batch, a tick, and how they become durable -------------------------------------------
    async def _handle(self, side: str, records: list[Record]) -> None:
        """Complete `records` (what the consumer skipped put back), apply them on `side`, land them."""
        records = await self.reading.complete(records)
        await self._commit(self.runner.apply(self.sides[side], records), records)
        await self._tick()
        self.reading.land(records)

    async def _tick(self) -> None:
        local = await self.time.confirmed_local_time()
        horizon = self.time.order_horizon(local)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("clock local=%s remote=%s horizon=%s lagging=%s", local,
                      self.time.remote_bound(self.time.order_feed), horizon, self.time.lagging()[:5])
        out = self.runner.fire(self.sides[T.ORDER_SIDE], horizon)
        out += self.runner.fire(self.sides[T.WAYBILL_SIDE], self.time.waybill_horizon(local))
        out += self.runner.fire(self.sides[T.SHOP_SIDE], self.time.shop_horizon(horizon))
        out += self.time.marks(local, horizon)  # after the timers: a mark follows what it vouches for
        await self._commit(out)

    async def _commit(self, out: list[Outgoing], records: list[Record] | None = None) -> None:
        """How a batch becomes durable, each step on the broker before the next starts.

        1. outputs an outbox held at the last recovery are dropped (sent then);
        2. the messages go to their partitions' outboxes (`OutboxDelivery`);
        3. every dirty state and input clock goes to its changelog;
        4. the messages are sent, and what failed is repaired;
        5. (the caller) the batch's records land: the group may commit past them.
        A crash before 2 leaves no trace of the batch: its input is read again. A crash after it
        is repaired by recovery: what the outbox holds and the output partitions lack is sent, and
        the stages it holds are never emitted again.
        """
        if self.transactions is not None:
            await self._commit_transactions(self.transactions, out, records or [])
            return
        out = self.delivery.unsent(out)
        await self.delivery.write_outboxes(out)
        self.stores.write_clocks(self.time.take_dirty())
        await self.stores.flush()
        if out:
            await self.delivery.deliver(out)

    async def _commit_transactions(self, transactions: Transactions, out: list[Outgoing],
                                   records: list[Record]) -> None:
        """The same with transactions: per (side, partition), its changelog records, the messages it
        caused and its input offsets in one transaction (Faust may give one side's partition 5 to
        one worker and another side's partition 5 to another). A failure (a fenced producer: another
        worker owns the partition now) raises, and the worker ends itself."""
        self.stores.write_clocks(self.time.take_dirty())
        transactions.open_batch()
        written = await self.stores.send()
        for item in out:
            transactions.add(item)
        self.reading.land(records)  # only the offsets: nothing goes on if the commit fails
        offsets: dict[tuple[str, int], dict[TP, int]] = {}
        for topic, partition in {(r.topic, r.partition) for r in records}:
            offset = self.reading.committable((topic, partition))
            if offset is not None:
                offsets.setdefault((self.side_of[topic], partition), {})[(topic, partition)] = offset
        await transactions.commit_batch(offsets)
        if written:
            await asyncio.gather(*written)  # done: their callbacks note what Faust would restore

    # ---- rebalances ------------------------------------------------------------------------
    async def pause(self) -> None:
        """A rebalance started: stop processing, and wait for the batch or tick under way.

        Its changelog records are then on the broker before Faust reads the changelogs to
        restore the new assignment's tables.
        """
        if self.open.is_set():
            log.info("paused for a rebalance: finishing the batch under way")
        self.open.clear()
        async with self.lock:
            pass

    def on_assigned(self) -> None:
        """Partitions were (re)assigned: check their outboxes before the next batch or tick;
        forget what the old assignment's partitions held."""
        self.delivery.on_assigned()
        gained = self.owned_partitions() - self.serving
        self.serving = self.owned_partitions()
        if gained:
            self.time.restart_sides()
        self.reading.on_assigned(set(self.broker.assigned()))
        self.time.last_marks = {}  # (side, sources) of the old assignment: forgotten

    def resume(self) -> None:
        """The tables of the new assignment are restored: schedule their keys, take up each
        input partition's stream time, and go on."""
        self.rebuild_deadlines()
        for topic, partition in self.broker.assigned():
            if topic in self.time.external:
                stored = self.stores.clocks.get(f"{topic}:{partition}", partition)
                if stored is not None:
                    self.time.take_up((topic, partition), stored.at)
        self.open.set()
        log.info("resumed after a rebalance: partitions=%s deferred_records=%d",
                 sorted(self.owned_partitions()), self.metrics.deferred)

    def rebuild_deadlines(self) -> None:
        """After recovery or a rebalance, schedule every key of ours again (the heap is not stored)."""
        for side in self.sides.values():
            self.runner.rebuild(side)

    async def _wait_open(self) -> bool:
        """Wait until the worker is not paused; False if another rebalance started meanwhile."""
        started = self.broker.rebalances()
        while not self.open.is_set():
            if self.broker.rebalances() != started:
                return False
            try:
                await asyncio.wait_for(self.open.wait(), timeout=0.5)
            except TimeoutError:
                pass
        return True

    async def _recover_if_needed(self) -> None:
        await self.delivery.recover_if_needed(list(self.broker.assigned()), self.shop_feed)
