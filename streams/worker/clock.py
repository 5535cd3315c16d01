"""Stream time and watermarks: when each side may fire its timers.

In event mode, stream time comes from what this worker has read (`processors.watermark`): each
input partition's latest event time, with "caught up" confirmed by the broker's end offsets.
Each side's timer horizon is its stream time bounded by the other side's in-band watermarks on
the feed it reads, minus the allowed lateness: the order side waits for the waybill side's
scans, the waybill side for the order side's registrations, the shop side for the facts the
order side sends. In wall mode every horizon is the wall clock minus the lateness.

Records published in another partition than their key's reach their key's owner one hop late,
through a feed (`streams.worker.sides.SideRunner.misplaced`). So a worker's local time is its own
inputs' stream time (`raw_local`, which it vouches for in the `read` of its watermarks on the
order and waybill feeds) bounded by every worker's forward marks on the feed partitions it reads: it never counts
time past a record still on its way to it, and everything it vouches for downstream (its
watermarks) includes what others forwarded to it.

Owned state: per input partition the last offset processed and latest event time (forgotten
with the partition's assignment), the three side clocks (restarted when partitions are gained)
and the last watermark sent per feed and sources.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import cast

from processors.watermark import SideClock, StreamClock
from schemas import codec
from schemas.internal import Watermark
from streams import topics as T
from streams.worker.metrics import Metrics
from streams.worker.port import Broker
from streams.worker.reading import Reading
from streams.worker.records import TP, Outgoing, Record

log = logging.getLogger("shipguard")


class StreamTime:
    """This worker's stream time, its three side clocks and the watermarks it sends."""

    def __init__(self, broker: Broker, reading: Reading, metrics: Metrics, *, mode: str, partitions: int,
                 app_id: str, lateness: timedelta, in_band_marks: bool, wall_now: Callable[[], datetime],
                 mark_interval_s: float = 0.0) -> None:
        self.broker, self.reading, self.metrics = broker, reading, metrics
        self.mode, self.partitions, self.lateness = mode, partitions, lateness
        # False only where forwards are delivered synchronously (streams.inprocess): then the
        # order side cannot run ahead of the waybill side and needs no in-band watermarks.
        self.in_band_marks = in_band_marks
        self.wall_now = wall_now
        self.waybill_feed, self.order_feed, self.shop_feed = T.internal_topics(app_id)
        self.external = set(T.INPUT_TOPICS)
        self.clock = StreamClock(source_partitions=partitions)
        self.order_clock, self.waybill_clock, self.shop_clock = SideClock(), SideClock(), SideClock()
        self.processed: dict[TP, int] = {}  # input partition -> the last offset processed
        self.ends: dict[TP, int] = {}  # input partition -> its end offset, as last confirmed
        self.dirty: set[TP] = set()  # input partitions whose latest event time moved since the last write
        self.facts_in_flight = 0  # shop facts sent and not yet applied (counted without in-band marks)
        self.forwards = StreamClock(source_partitions=partitions)  # (feed, partition) -> source -> a mark's `read`
        self.raw_local: datetime | None = None  # stream time of this worker's own inputs, at the last tick
        # (feed side, the partitions it vouches for) -> the last watermark sent: a mark for other
        # sources (partitions taken over in a rebalance) goes out even at the same time
        self.last_marks: dict[tuple[str, tuple[int, ...]], tuple[datetime | None, datetime | None]] = {}
        # at most one mark per feed and sources per interval (a later tick sends what moved since):
        # a mark sent late still vouches for what it says, it only holds the other side back longer
        self.mark_interval_s = mark_interval_s
        self.marks_sent_at: dict[str, float] = {}  # feed side -> monotonic time of its last marks

    # ---- what was read ----------------------------------------------------------------------
    def observe(self, record: Record, at: datetime | None) -> None:
        """`record` was read (at event time `at`, if it has one)."""
        tp = (record.topic, record.partition)
        if record.offset > self.processed.get(tp, -1):  # a replay does not take a partition back
            self.processed[tp] = record.offset
        if at is None:
            return
        known = self.clock.latest.get(tp)
        if known is None or at > known:
            self.clock.observe(tp, at)
            self.dirty.add(tp)
        current = self.order_clock.current
        if self.mode == "event" and current is not None and at < current - self.lateness:
            self.metrics.late_events += 1

    def observe_mark(self, record: Record, mark: Watermark) -> None:
        """The other side's watermark arrived on a feed partition."""
        feed = (record.topic, record.partition)
        if mark.at is not None:
            self.clock.observe_remote(feed, mark.sources, mark.at)
        if mark.read is not None:
            self.forwards.observe_remote(feed, mark.sources, mark.read)

    def take_dirty(self) -> dict[TP, datetime]:
        """The latest event time of each input partition that moved since the last call."""
        dirty, self.dirty = self.dirty, set()
        return {tp: self.clock.latest[tp] for tp in dirty}

    def take_up(self, tp: TP, at: datetime) -> None:
        """A partition's latest event time as its last owner wrote it (after a takeover)."""
        self.clock.observe(tp, at)

    def restart_sides(self) -> None:
        """Partitions were gained: each side's time was bounded by the marks on the feed
        partitions it read; the new partitions' feeds are not read yet, and their keys must not
        be judged by it: time starts again from the marks and inputs of every partition now served."""
        self.order_clock, self.waybill_clock, self.shop_clock = SideClock(), SideClock(), SideClock()

    # ---- stream time ------------------------------------------------------------------------
    def caught_up(self, tp: TP, processed: dict[TP, int] | None = None) -> bool:
        """True when every record of `tp` up to its confirmed end offset has been processed."""
        end = self.ends.get(tp)
        if end is None:
            return False
        done = (processed if processed is not None else self.processed).get(tp)
        return (done + 1 if done is not None else self.reading.first_offset(tp)) >= end

    async def confirmed_local_time(self) -> datetime | None:
        """Stream time from the external partitions, with "caught up" confirmed by the broker.

        A consumer's cached high-water mark can be older than records already published (a
        partition whose next fetch is pending), so trusting it lets stream time jump past unread
        records. We snapshot what was processed, then ask for the real end offsets: records
        published before anything in the snapshot are counted in them.
        """
        if self.mode == "wall":
            return self.wall_now()
        external = [tp for tp in self.broker.assigned() if tp[0] in self.external]
        await self.reading.ask_starts()
        processed, latest = dict(self.processed), dict(self.clock.latest)
        asked = time.monotonic()
        self.ends = await self.broker.end_offsets(external)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("end offsets of %d partitions in %.1f ms", len(external), (time.monotonic() - asked) * 1000)
        own = self.clock.local_time(external, lambda tp: self.caught_up(cast(TP, tp), processed), latest)
        self.raw_local = own
        if not self.in_band_marks or own is None:
            return own
        forwarded = self.forwards.remote_bound([(topic, p) for topic, p in self.broker.assigned()
                                                if topic in (self.order_feed, self.waybill_feed)])
        return None if forwarded is None else min(own, forwarded)

    def lagging(self) -> list[TP]:
        """The input partitions not caught up (for the debug log)."""
        return [tp for tp in self.broker.assigned() if tp[0] in self.external and not self.caught_up(tp)]

    # ---- the sides' horizons ------------------------------------------------------------------
    def _horizon(self, side: SideClock, feed: str, local: datetime | None) -> datetime | None:
        """A side's timer horizon: its stream time, bounded by the other side's marks, - lateness."""
        if self.mode == "wall":
            return self.wall_now() - self.lateness
        if self.in_band_marks:
            remote = self.remote_bound(feed)
            local = None if local is None or remote is None else min(local, remote)
        current = side.advance(local)
        return current - self.lateness if current else None

    def remote_bound(self, feed: str) -> datetime | None:
        """The lowest watermark the other side sent on the partitions of `feed` we read."""
        return self.clock.remote_bound([(topic, p) for topic, p in self.broker.assigned() if topic == feed])

    def order_horizon(self, local: datetime | None) -> datetime | None:
        """Order timers wait for the waybill side's marks: no deadline before its scans arrive."""
        return self._horizon(self.order_clock, self.order_feed, local)

    def waybill_horizon(self, local: datetime | None) -> datetime | None:
        """Waybill expiry waits for the order side's marks: no number expires under a registration."""
        return self._horizon(self.waybill_clock, self.waybill_feed, local)

    def shop_horizon(self, order_horizon: datetime | None) -> datetime | None:
        """Shop facts are evaluated at their time once every fact up to it has arrived.

        The order side sends a fact when it happens or, for a request that waited for its order,
        one lateness later; so the shop side trails the order side's horizon by the lateness:
        in event mode through the order side's marks on the shop feed, else directly.
        """
        if self.mode == "event" and self.in_band_marks:
            return self.shop_clock.advance(self.remote_bound(self.shop_feed))
        if not self.in_band_marks and self.facts_in_flight:
            # in process: facts this side sent are still queued; they may be older than the horizon
            return self.shop_clock.current
        return self.shop_clock.advance(order_horizon - self.lateness if order_horizon else None)

    def current_horizon(self) -> datetime | None:
        """The order side's horizon as of the last tick (events are applied against it)."""
        if self.mode == "wall":
            return self.wall_now() - self.lateness
        current = self.order_clock.current
        return current - self.lateness if current else None

    def shop_now(self) -> datetime | None:
        """The shop side's time as of the last tick (facts are applied against it)."""
        return self.shop_clock.current

    # ---- facts in flight (in process only) ------------------------------------------------------
    def fact_sent(self) -> None:
        """A shop fact was routed to the shop side (counted only without in-band marks)."""
        self.facts_in_flight += not self.in_band_marks

    def fact_arrived(self) -> None:
        """A shop fact reached the shop side."""
        if not self.in_band_marks:
            self.facts_in_flight = max(0, self.facts_in_flight - 1)

    # ---- watermarks ---------------------------------------------------------------------------
    def marks(self, local: datetime | None, horizon: datetime | None) -> list[Outgoing]:
        """Watermarks for the other side's feed, each only when it moved (event mode, in band).

        To the waybill side: every registration caused by an event read up to `local` was sent.
        To the shop side: every shop fact up to the order horizon minus the lateness was sent.
        To the order side: every scan read up to `local` was forwarded *and* every registration
        the order side's marks vouch for was answered, so min(local, those marks): an order then
        cannot settle before it has heard of another order's earlier upload of its number. The
        order side publishes its local time only, so the two never wait on each other.
        The marks on the order and waybill feeds also carry `read`, this worker's own inputs' time
        (`raw_local`, not bounded by anyone's marks, so that no two workers wait on each other):
        every record it read in another partition than its key's is on its way. A mark goes out
        when either moved (`at` may still be unknown while `read` is).
        """
        if not (self.in_band_marks and self.mode == "event"):
            return []
        out: list[Outgoing] = []
        assigned = list(self.broker.assigned())
        owned = {topic: tuple(sorted(p for t, p in assigned if t == topic))
                 for topic in (T.TRACKING_SCANS, T.WAYBILL_UPLOADED, T.ORDER_PAID)}
        registrations = self.remote_bound(self.waybill_feed)
        answered = None if local is None or registrations is None else min(local, registrations)
        facts_sent = horizon - self.lateness if horizon is not None else None
        read = self.raw_local
        now = time.monotonic()
        for feed, sources, at, forwards, last, sender in (
                (self.waybill_feed, owned[T.WAYBILL_UPLOADED], local, read, "waybill", T.ORDER_SIDE),
                (self.order_feed, owned[T.TRACKING_SCANS], answered, read, "order", T.WAYBILL_SIDE),
                (self.shop_feed, owned[T.ORDER_PAID], facts_sent, None, "shop", T.ORDER_SIDE)):
            sent = self.last_marks.get((last, sources), (None, None))
            latest = (_later(sent[0], at), _later(sent[1], forwards))  # each never back
            if not sources or latest == sent:
                continue
            if now - self.marks_sent_at.get(last, -math.inf) < self.mark_interval_s:
                continue  # too soon after the last ones: a later tick sends the marks as they are then
            self.marks_sent_at[last] = now
            self.last_marks[(last, sources)] = latest
            mark = codec.dumps(Watermark(sources=sources, at=latest[0], read=latest[1]))
            cause = (sender, sources[0])  # with transactions: in one of the sources' transactions
            out.extend(Outgoing(feed, None, mark, partition=p, cause=cause) for p in range(self.partitions))
        return out


def _later(sent: datetime | None, now: datetime | None) -> datetime | None:
    """A mark's value: what it says now when that moved past what was sent, else what was sent."""
    return now if now is not None and (sent is None or now > sent) else sent
