"""The worker's shell around the processors: decode, route, persist, emit, keep time.

Two batch handlers run in Faust agents: the order side (order-paid, waybill-uploaded,
cancellation-requests, clock-ticks and the order feed) and the waybill side (tracking-scans and
the waybill feed). Each batch is decoded, applied to the processors synchronously, its dirty
table keys written once each to the changelog partition they belong to, then its outputs sent.
No business rule lives here.
"""

from __future__ import annotations

import asyncio
import heapq
import time
import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Hashable, Iterable, Optional

from pydantic import ValidationError

from processors import order as order_rules
from processors import shop_alerts as shop_rules
from processors import waybill as waybill_rules
from processors.watermark import SideClock, StreamClock
from schemas import codec
from schemas.codec import BadInput
from schemas.events import ClockTick, OrderPaid, ParcelScanned, WireModel
from schemas.internal import (ORDER_FEED_KINDS, SHOP_FEED_KINDS, WAYBILL_FEED_KINDS, RegisterUpload, Rekeyed,
                              ScansForOrder, Watermark)
from schemas.outputs import CancellationOutcome, DeadLetter, ShopAlert, ViolationWarning, identity
from schemas.shop import ShopFact
from schemas.state import InputClock, Outbox, OutboxItem
from schemas.types import format_time
from streams import topics as T
from streams.worker.metrics import Histogram

log = logging.getLogger("shipguard")
UTC = timezone.utc
MAX_MESSAGE_BYTES = 262_144  # default of SHIPGUARD_MAX_MESSAGE_BYTES
OUTBOX_CHUNK_BYTES = 262_144  # an outbox record stays well below Kafka's default 1 MB message limit
DEAD_LETTER_RAW_BYTES = 65_536  # a dead letter keeps at most this much of the original record
STALLED_AFTER_S = 10.0   # a partition with records beyond ours and none delivered for this long is read by the shell
STALLED_READ_MAX = 5_000  # records read at most per stalled partition and check


@dataclass
class Record:
    """One consumed record, independent of Faust (tests build these directly)."""

    topic: str
    partition: int
    offset: int
    key: Optional[bytes]
    value: Optional[bytes]


@dataclass
class Outgoing:
    """One message to produce.

    `origin` is the (side, partition) whose state change caused it: such a message goes into that
    partition's outbox before the state is written. `identity` is set on output topics, where a
    message must appear once (schemas.outputs.identity).
    """

    topic: str
    key: Optional[bytes]
    value: bytes
    partition: Optional[int] = None
    origin: Optional[tuple[str, int]] = None
    identity: Optional[str] = None


class StateStore:
    """A keyed table the shell writes with an explicit changelog partition.

    Faust's `table[k] = v` writes the changelog partition of the *current event*, which inside a
    batch is the batch's last event: wrong for the others; and it queues the write in Faust's
    ProducerBuffer, which drains one message per loop turn and stalls the stream when full.
    We write the store at once and queue one changelog record per dirty key; `flush` sends them
    (awaited, in order) before the batch's outputs.

    `data` is a mapping of key -> state (Faust's memory store, or a dict in process) or a
    `PartitionedStore` (RocksDB); a mapping is wrapped in a `MappingStore`.
    """

    def __init__(self, data: Any, send_changelog: Optional[Callable[[int, str, Any], Awaitable[Any]]]) -> None:
        self.data = data if isinstance(data, PartitionedStore) else MappingStore(data)
        self.send_changelog = send_changelog
        self.pending: dict[str, tuple[int, Any]] = {}

    def get(self, key: str, partition: Optional[int] = None) -> Any:
        return self.data.get(key, partition)

    def put(self, key: str, value: Any, partition: int) -> None:
        self.data.put(key, value, partition)
        if self.send_changelog is not None:
            self.pending.pop(key, None)  # keep the changelog in write order
            self.pending[key] = (partition, value)

    async def flush(self) -> None:
        """Send the queued changelog records (the latest value of each key written since) and
        wait until the broker has them all."""
        pending, self.pending = self.pending, {}
        if self.send_changelog is not None:
            sent = [await self.send_changelog(partition, key, value) for key, (partition, value) in pending.items()]
            delivered = [future for future in sent if future is not None]
            if delivered:
                await asyncio.gather(*delivered)

    def __len__(self) -> int:
        return len(self.data)

    def items(self) -> Iterable[tuple[str, Any]]:
        """Every stored (key, state), one at a time (a list of a million states would stay in
        the process's heap after use)."""
        return self.data.items()


class MappingStore:
    """A mapping of key -> state (Faust's memory store, or a dict in process)."""

    def __init__(self, mapping: Any) -> None:
        self.mapping = mapping

    def get(self, key: str, partition: Optional[int] = None) -> Any:
        return self.mapping.get(key)

    def put(self, key: str, value: Any, partition: int) -> None:
        if value is None:
            self.mapping.pop(key, None)
        else:
            self.mapping[key] = value
        key_partition = getattr(self.mapping, "_key_partition", None)
        if key_partition is not None:  # Faust's memory store drops revoked partitions' keys by it
            if value is None:
                key_partition.pop(key, None)
            else:
                key_partition[key] = partition

    def items(self) -> Iterable[tuple[str, Any]]:
        return iter(self.mapping.items())

    def __len__(self) -> int:
        return len(self.mapping)


class PartitionedStore:
    """Faust's RocksDB store addressed by partition (one database per changelog partition).

    Faust's own `__getitem__`/`__setitem__` pick the database of `current_event()`'s partition,
    which inside a batch is the batch's last record: wrong for every other key of the batch.
    Here the caller names the partition (every topic is co-partitioned, so a key's partition is
    that of the record that brought it); without one (timers), the key's last known partition
    or a search over the open databases.
    """

    def __init__(self, store: Any, encode_key: Callable[[str], bytes], encode_value: Callable[[Any], bytes],
                 decode_key: Callable[[bytes], str], decode_value: Callable[[bytes], Any]) -> None:
        self.store = store
        self.encode_key, self.encode_value = encode_key, encode_value
        self.decode_key, self.decode_value = decode_key, decode_value

    def get(self, key: str, partition: Optional[int] = None) -> Any:
        raw_key = self.encode_key(key)
        if partition is None:
            found = self.store._get_bucket_for_key(raw_key)
            raw = found.value if found is not None else None
        else:
            raw = self.store._db_for_partition(partition).get(raw_key)
            if raw is not None:
                self.store._key_index[raw_key] = partition
        return None if raw is None else self.decode_value(raw)

    def put(self, key: str, value: Any, partition: int) -> None:
        raw_key = self.encode_key(key)
        db = self.store._db_for_partition(partition)
        if value is None:
            db.delete(raw_key)
            self.store._key_index.pop(raw_key, None)
        else:
            db.put(raw_key, self.encode_value(value))
            self.store._key_index[raw_key] = partition

    def items(self) -> Iterable[tuple[str, Any]]:
        return ((self.decode_key(k), self.decode_value(v)) for k, v in self.store._iteritems())

    def __len__(self) -> int:
        return self.store._size()


def _chunks(items: list[Outgoing], limit: int) -> list[list[Outgoing]]:
    """`items` in order, cut into runs of at most about `limit` bytes (at least one item each)."""
    chunks: list[list[Outgoing]] = [[]]
    size = 0
    for item in items:
        cost = len(item.value) + len(item.key or b"") + 128
        if chunks[-1] and size + cost > limit:
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += cost
    return chunks


class Deadlines:
    """Which key must wake at which instant: a heap with lazy deletion."""

    def __init__(self) -> None:
        self.heap: list[tuple[datetime, str]] = []
        self.due_at: dict[str, datetime] = {}

    def set(self, key: str, when: Optional[datetime]) -> None:
        if when is None:
            self.due_at.pop(key, None)
            return
        if self.due_at.get(key) != when:
            self.due_at[key] = when
            heapq.heappush(self.heap, (when, key))

    def pop_due(self, now: datetime) -> list[str]:
        due = []
        while self.heap and self.heap[0][0] <= now:
            when, key = heapq.heappop(self.heap)
            if self.due_at.get(key) == when:
                del self.due_at[key]
                due.append(key)
        return due

    def __len__(self) -> int:
        return len(self.due_at)


@dataclass
class Metrics:
    """Counters a person asks about: what came in, what went out, what was refused or late."""

    consumed: Counter = field(default_factory=Counter)
    outputs: Counter = field(default_factory=Counter)
    dead_letters: int = 0
    late_events: int = 0
    duplicates: int = 0
    latency: Histogram = field(default_factory=Histogram)  # seconds per batch, from read to delivered
    offset_gaps: int = 0  # a record further on than the next one of its partition (skipped records)
    replayed: int = 0     # a record behind the next one of its partition (read again)
    refetched: int = 0    # records the consumer skipped, read by the worker itself (`Shell._complete`)
    deferred: int = 0     # records delivered while the worker was paused for a rebalance, read again after
    not_owned: int = 0    # records of a partition no longer assigned, delivered late and dropped


class Shell:
    """Routes records to the processors and their results to tables and topics."""

    def __init__(self, *, ctx: order_rules.Context, clock_mode: str, partitions: int, app_id: str,
                 orders: StateStore, waybills: StateStore, shops: StateStore,
                 send: Callable[[list[Outgoing]], Awaitable[None]],
                 assigned: Callable[[], Iterable[Hashable]],
                 end_offsets: Callable[[list[tuple[str, int]]], Awaitable[dict[tuple[str, int], int]]],
                 start_offset: Callable[[tuple[str, int]], int],
                 wall_now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 in_band_marks: bool = True, max_message_bytes: int = MAX_MESSAGE_BYTES,
                 outbox: Optional[StateStore] = None,
                 read_back: Optional[Callable[[str, int, int], Awaitable[tuple[list[bytes], int]]]] = None,
                 read_range: Optional[Callable[[str, int, int, int], Awaitable[list[Record]]]] = None,
                 committed: Optional[Callable[[], Awaitable[dict[tuple[str, int], int]]]] = None,
                 rebalances: Callable[[], int] = lambda: 0,
                 clocks: Optional[StateStore] = None,
) -> None:
        if clock_mode == "wall" and not ctx.rules.decide_on_read:
            ctx = replace(ctx, rules=ctx.rules.model_copy(update={"decide_on_read": True}))
        self.ctx = ctx
        self.max_message_bytes = max_message_bytes
        self.clock_mode = clock_mode
        self.partitions = partitions
        self.waybill_feed, self.order_feed, self.shop_feed = T.internal_topics(app_id)
        self.external = set(T.INPUT_TOPICS)
        self.orders = orders
        self.waybills = waybills
        self.shops = shops
        self.shop_deadlines = Deadlines()
        self.send = send
        self.assigned = assigned
        self.end_offsets = end_offsets
        self.start_offset = start_offset
        self.ends: dict[tuple[str, int], int] = {}
        # One batch or tick at a time: a watermark must never be enqueued between a batch's
        # processing (which marks its records read) and the sending of that batch's forwards.
        self.lock = asyncio.Lock()
        self.wall_now = wall_now
        self.clock = StreamClock(source_partitions=partitions)
        self.order_clock = SideClock()
        self.waybill_clock = SideClock()
        self.shop_clock = SideClock()
        self.facts_in_flight = 0  # shop facts sent and not yet applied (counted without in-band marks)
        self.order_deadlines = Deadlines()
        self.waybill_deadlines = Deadlines()
        self.processed: dict[tuple[str, int], int] = {}
        self.next_offsets: dict[tuple[str, int], int] = {}  # per partition read: the offset expected next
        self.metrics = Metrics()
        # (feed side, the partitions it vouches for) -> the last watermark sent: a mark for other
        # sources (partitions taken over in a rebalance) goes out even at the same time
        self.last_marks: dict[tuple[str, tuple[int, ...]], datetime] = {}
        # False only where forwards are delivered synchronously (streams.inprocess.engine): then the
        # order side cannot run ahead of the waybill side and needs no in-band watermarks.
        self.in_band_marks = in_band_marks
        # Crash safety (README "Delivery guarantees"): each batch's messages go to its outbox and
        # are on the broker before its state is; after an assignment the outboxes are checked
        # against the output partitions before anything else runs. Without an outbox (in
        # process) nothing can crash between the two.
        self.outbox = outbox
        self.read_back = read_back
        self.needs_recovery = outbox is not None
        self.output_next: dict[tuple[str, int], int] = {}  # output partition -> its end, as we wrote it
        self.recovered: set[str] = set()  # identities an outbox held at the last recovery: never again
        self.outbox_chunks: dict[tuple[str, int], int] = {}  # outbox records per (side, partition)
        # Read completeness (README "Delivery guarantees"): Faust can skip records of a partition
        # it starts mid-stream. The shell reads each partition on from the group's committed
        # offset without holes: what the consumer skipped it reads itself (read_range). What is
        # committed is decided here too (`committable`): the offset after the last record whose
        # batch has landed, every record before it processed.
        self.read_range = read_range
        self.committed = committed
        self.starts: Optional[dict[tuple[str, int], int]] = None  # committed offsets at the last assignment
        self.landed: dict[tuple[str, int], int] = {}  # partition -> offset after its last landed record
        self.last_seen: dict[tuple[str, int], float] = {}  # partition -> monotonic time of its last record
        self.stall_checked = 0.0
        # Paused from a rebalance's start until the tables of the new assignment are restored
        # (`pause`, `resume`): no batch or timer runs against state that Faust is still
        # writing. `rebalances` counts rebalances started (Faust's counter): a batch waiting for
        # the end of one is dropped when the next starts, since Faust waits for it to finish.
        self.open = asyncio.Event()
        self.open.set()
        self.serving: set[int] = set()  # the partitions served since the last assignment
        self.rebalances = rebalances
        # Stream time survives a takeover: each input partition's latest event time is written
        # with the batch's state (`clocks`, key "topic:partition"), and read back on resume. A
        # partition its last owner read to the end has nothing left to read; without it the
        # new owner's time stayed below the true one and the last timers never fired.
        self.clocks = clocks
        self.clock_dirty: set[tuple[str, int]] = set()
        self.sides: dict[str, Callable[[list[Record]], Awaitable[None]]] = {
            **{topic: self._order_batch for topic in (T.ORDER_PAID, T.WAYBILL_UPLOADED, T.CANCELLATION_REQUESTS,
                                                      T.CLOCK_TICKS, self.order_feed)},
            T.TRACKING_SCANS: self._waybill_batch, self.waybill_feed: self._waybill_batch,
            self.shop_feed: self._shop_batch}

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

    def resume(self) -> None:
        """The tables of the new assignment are restored: schedule their keys, take up each
        input partition's stream time, and go on."""
        self.rebuild_deadlines()
        if self.clocks is not None:
            for topic, partition in self.assigned():
                if topic in self.external:
                    stored = self.clocks.get(f"{topic}:{partition}", partition)
                    if stored is not None:
                        self.clock.observe((topic, partition), stored.at)
        self.open.set()
        log.info("resumed after a rebalance: partitions=%s deferred_records=%d",
                 sorted(self.owned_partitions()), self.metrics.deferred)

    async def _wait_open(self) -> bool:
        """Wait until the worker is not paused; False if another rebalance started meanwhile."""
        started = self.rebalances()
        while not self.open.is_set():
            if self.rebalances() != started:
                return False
            try:
                await asyncio.wait_for(self.open.wait(), timeout=0.5)
            except asyncio.TimeoutError:
                pass
        return True

    async def _run(self, side: Callable[[list[Record]], Awaitable[None]], records: list[Record]) -> None:
        """Process a batch delivered by the consumer, once the worker is not paused.

        A batch that cannot wait (a new rebalance started) is dropped: nothing of it lands, so
        nothing is committed, and its records are read again (`_complete`, `_read_stalled`).
        """
        if await self._wait_open():
            async with self.lock:
                if self.open.is_set():
                    await self._recover_if_needed()
                    await self._handle(side, records)
                    return
        self.metrics.deferred += len(records)

    def owned_partitions(self) -> set[int]:
        """The state partitions this worker serves (every topic is co-partitioned with order-paid).

        A table can also hold other workers' keys (Faust's standby copies): their owners fire them.
        """
        return {p for t, p in self.assigned() if t == T.ORDER_PAID}

    # ---- time -----------------------------------------------------------------------------
    def caught_up(self, tp: tuple[str, int], processed: Optional[dict] = None) -> bool:
        """True when every record of `tp` up to its confirmed end offset has been processed."""
        end = self.ends.get(tp)
        if end is None:
            return False
        done = (processed if processed is not None else self.processed).get(tp)
        return (done + 1 if done is not None else self.first_offset(tp)) >= end

    def first_offset(self, tp: tuple[str, int]) -> int:
        """Where this worker started on `tp`: the group's committed offset at the assignment.

        Asked from the broker (`starts`); until then, the consumer's idea of it. A partition the
        group had read to its end before it came to us delivers nothing, and the consumer's idea
        can be missing (0): the partition then looked behind for good and held stream time.
        """
        if self.starts is not None:
            return self.starts.get(tp, 0)
        return self.start_offset(tp)

    async def confirmed_local_time(self) -> Optional[datetime]:
        """Stream time from the external partitions, with "caught up" confirmed by the broker.

        A consumer's cached high-water mark can be older than records already published (a
        partition whose next fetch is pending), so trusting it lets stream time jump past unread
        records. We snapshot what was processed, then ask for the real end offsets: records
        published before anything in the snapshot are counted in them.
        """
        if self.clock_mode == "wall":
            return self.wall_now()
        external = [tp for tp in self.assigned() if tp[0] in self.external]
        await self._ask_starts()
        processed, latest = dict(self.processed), dict(self.clock.latest)
        asked = time.monotonic()
        self.ends = await self.end_offsets(external)  # type: ignore[arg-type]
        if log.isEnabledFor(logging.DEBUG):
            log.debug("end offsets of %d partitions in %.1f ms", len(external), (time.monotonic() - asked) * 1000)
        return self.clock.local_time(external, lambda tp: self.caught_up(tp, processed), latest)

    def _horizon(self, side: SideClock, feed: str, local: Optional[datetime]) -> Optional[datetime]:
        """A side's timer horizon: its stream time, bounded by the other side's marks, - lateness."""
        if self.clock_mode == "wall":
            return self.wall_now() - self.ctx.rules.allowed_lateness
        if self.in_band_marks:
            feeds = [(topic, p) for topic, p in self.assigned() if topic == feed]
            remote = self.clock.remote_bound(feeds)
            local = None if local is None or remote is None else min(local, remote)
        current = side.advance(local)
        return current - self.ctx.rules.allowed_lateness if current else None

    def order_horizon(self, local: Optional[datetime]) -> Optional[datetime]:
        """Order timers wait for the waybill side's marks: no deadline before its scans arrive."""
        return self._horizon(self.order_clock, self.order_feed, local)

    def waybill_horizon(self, local: Optional[datetime]) -> Optional[datetime]:
        """Waybill expiry waits for the order side's marks: no number expires under a registration."""
        return self._horizon(self.waybill_clock, self.waybill_feed, local)

    def current_horizon(self) -> Optional[datetime]:
        """The horizon as of the last tick (events are applied against it; timers fire in tick)."""
        if self.clock_mode == "wall":
            return self.wall_now() - self.ctx.rules.allowed_lateness
        current = self.order_clock.current
        return current - self.ctx.rules.allowed_lateness if current else None

    def _observe(self, record: Record, at: Optional[datetime]) -> None:
        tp = (record.topic, record.partition)
        if record.offset > self.processed.get(tp, -1):  # a replay does not take a partition back
            self.processed[tp] = record.offset
        if at is None:
            return
        known = self.clock.latest.get(tp)
        if known is None or at > known:
            self.clock.observe(tp, at)
            self.clock_dirty.add(tp)
        current = self.order_clock.current
        if self.clock_mode == "event" and current is not None \
                and at < current - self.ctx.rules.allowed_lateness:
            self.metrics.late_events += 1

    # ---- decoding -------------------------------------------------------------------------
    def _dead_letter(self, record: Record, error: str) -> Outgoing:
        raw = record.value
        if raw is not None and len(raw) > DEAD_LETTER_RAW_BYTES:  # a dead letter must fit on its topic
            error += f" (raw: the first {DEAD_LETTER_RAW_BYTES} of {len(raw)} bytes)"
            raw = raw[:DEAD_LETTER_RAW_BYTES]
        text, encoding = codec.raw_text(raw)
        letter = DeadLetter(source_topic=record.topic, partition=record.partition, offset=record.offset,
                            error=error, received_at=self.wall_now(), raw=text,
                            raw_encoding=encoding)  # type: ignore[arg-type]
        self.metrics.dead_letters += 1
        log.warning("dead letter topic=%s partition=%d offset=%d error=%s",
                    record.topic, record.partition, record.offset, error[:200])
        return Outgoing(T.DEAD_LETTERS, record.key, codec.dumps(letter))

    def _internal(self, record: Record, kinds: dict[str, type]) -> Any:
        data = codec.loads(record.value or b"null")
        if not isinstance(data, dict) or data.get("kind") not in kinds:
            kind = data.get("kind") if isinstance(data, dict) else type(data).__name__
            raise BadInput(f"kind: unknown internal message kind {str(kind)[:40]!r}")  # not the content: PII
        try:
            return kinds[data["kind"]].model_validate(data)
        except ValidationError as exc:
            raise BadInput(codec.describe(exc)) from None

    async def _complete(self, records: list[Record]) -> list[Record]:
        """`records` with every record the consumer skipped put back in place.

        Faust can hand over a partition with a hole when a worker starts on it mid-stream (after a
        crash, a restart or a failover: README "Delivery guarantees"). Each partition is expected
        to continue where the shell left it or, new to this worker, at the group's committed
        offset; a record further on means the records between were skipped: they are read from
        the broker and processed first, and counted (`offset gap` warning, offset_gaps and
        refetched metrics). Records behind are replays (every input has an event_id: no effect).
        Records of a partition no longer assigned (delivered late, from before a rebalance) are
        dropped: its new owner reads them from the committed offset.
        """
        out: list[Record] = []
        owned = set(self.assigned())
        seen = time.monotonic()
        for record in records:
            tp = (record.topic, record.partition)
            if tp not in owned:
                self.metrics.not_owned += 1
                continue
            self.last_seen[tp] = seen
            expected = self.next_offsets.get(tp)
            if expected is None:
                expected = await self._start_of(tp, record.offset)
            if record.offset > expected:
                self.metrics.offset_gaps += 1
                missing = await self.read_range(record.topic, record.partition, expected, record.offset) \
                    if self.read_range is not None else []
                log.warning("offset gap topic=%s partition=%d expected=%d got=%d refetched=%d", record.topic,
                            record.partition, expected, record.offset, len(missing))
                self.metrics.refetched += len(missing)
                out.extend(missing)
            elif record.offset < expected:
                self.metrics.replayed += 1
            out.append(record)
            self.next_offsets[tp] = max(expected, record.offset + 1)
        return out

    async def _read_stalled(self) -> None:
        """Read, process and land the records of partitions the consumer stopped delivering.

        Faust can also drop the last records of a partition it starts mid-stream: no later
        record shows the hole, and its commit stays behind. A partition of ours with records
        beyond our position and none delivered for STALLED_AFTER_S is read here instead
        (`partition stalled` warning); if the consumer delivers them later, they are replays.
        """
        now = time.monotonic()
        if self.read_range is None or now - self.stall_checked < STALLED_AFTER_S / 2:
            return
        self.stall_checked = now
        quiet = [tp for tp in self.assigned()
                 if tp[0] in self.sides and now - self.last_seen.setdefault(tp, now) >= STALLED_AFTER_S]
        if not quiet:
            return
        ends = await self.end_offsets(quiet)
        for tp in quiet:
            start = self.next_offsets.get(tp)
            if start is None:
                start = await self._start_of(tp, ends.get(tp, 0))
            end = min(ends.get(tp, 0), start + STALLED_READ_MAX)
            if end <= start:
                continue
            records = await self.read_range(tp[0], tp[1], start, end)
            log.warning("partition stalled topic=%s partition=%d at=%d end=%d: read %d records ourselves",
                        tp[0], tp[1], start, ends.get(tp, 0), len(records))
            self.metrics.refetched += len(records)
            await self._handle(self.sides[tp[0]], records)

    async def _start_of(self, tp: tuple[str, int], first: int) -> int:
        """Where a partition new to this worker starts: the group's committed offset (0 if none).

        Without a way to ask (in process, unit tests) the first record delivered is trusted.
        """
        if self.committed is None:
            return first
        await self._ask_starts()
        return self.starts.get(tp, 0)  # type: ignore[union-attr]

    async def _ask_starts(self) -> None:
        """Ask the broker once per assignment for the group's committed offsets (`starts`)."""
        if self.starts is None and self.committed is not None:
            self.starts = await self.committed()

    async def _handle(self, side: Callable[[list[Record]], Awaitable[None]], records: list[Record]) -> None:
        """Complete `records` (what the consumer skipped put back), apply them on `side`, land them."""
        records = await self._complete(records)
        await side(records)
        self._land(records)

    def _land(self, records: list[Record]) -> None:
        """The batch of `records` is processed and its state and messages are on the broker."""
        landed = self.landed
        for record in records:
            tp = (record.topic, record.partition)
            if record.offset >= landed.get(tp, 0):
                landed[tp] = record.offset + 1

    def committable(self, tp: tuple[str, int]) -> Optional[int]:
        """The offset the group may commit for `tp`: every record before it processed and landed.

        None while nothing of `tp` has landed since it was assigned (nothing new to commit).
        """
        return self.landed.get(tp)

    def _decode(self, record: Record, feed: str, kinds: dict[str, type], out: list[Outgoing]) -> Any:
        """An input model or internal message; None for a watermark (recorded) or bad input
        (sent to dead-letters via `out`)."""
        self.metrics.consumed[record.topic] += 1
        try:
            if record.value is not None and len(record.value) > self.max_message_bytes:
                raise BadInput(f"(value): {len(record.value)} bytes, more than the maximum of "
                               f"{self.max_message_bytes} (SHIPGUARD_MAX_MESSAGE_BYTES)")
            if record.topic != feed:
                return codec.decode_input(record.topic, record.value)
            message = self._internal(record, kinds)
            if isinstance(message, Watermark):
                self.clock.observe_remote((record.topic, record.partition), message.sources, message.at)
                return None
            if isinstance(message, Rekeyed):
                return codec.decode_input(message.topic, codec.dumps(message.value))
            return message
        except BadInput as exc:
            self._observe(record, None)
            out.append(self._dead_letter(record, str(exc)))
            return None

    # ---- order side -----------------------------------------------------------------------
    async def order_batch(self, records: list[Record]) -> None:
        """Apply a batch of order-side records, persist dirty orders, emit, then fire timers."""
        started = time.monotonic()
        await self._run(self._order_batch, records)
        self.metrics.latency.observe(time.monotonic() - started)

    async def _order_batch(self, records: list[Record]) -> None:
        out: list[Outgoing] = []
        dirty: dict[str, order_rules.OrderState] = {}
        dirty_partition: dict[str, int] = {}
        horizon = self.current_horizon()
        for record in records:
            message = self._decode(record, self.order_feed, ORDER_FEED_KINDS, out)
            if message is None:
                continue
            if isinstance(message, ClockTick):
                self._observe(record, message.at)
                continue
            order_id = message.order_id
            if record.topic in self.external:
                self._observe(record, order_rules.event_time(message))
                if record.key != order_id.encode("utf-8"):
                    out.append(self._rekey(record.topic, order_id, message))
                    continue
            state = dirty.get(order_id) or self.orders.get(order_id, record.partition)
            step = order_rules.apply(state, order_id, message, horizon, self.ctx)
            if step.state is state and not step.outputs:
                self.metrics.duplicates += int(state is not None and order_rules.event_id(message) in state.seen)
            if step.outputs and log.isEnabledFor(logging.DEBUG):
                log.debug("event order=%s topic=%s horizon=%s pending=%s scans=%d", order_id, record.topic, horizon,
                          step.state and step.state.joins_pending, step.state and len(step.state.scans))
            dirty[order_id] = step.state  # type: ignore[assignment]
            dirty_partition[order_id] = record.partition
            self.order_deadlines.set(order_id, step.next_deadline)
            out.extend(self._route(order_id, step.outputs, record.partition))
        for order_id, state in dirty.items():
            self._put_order(order_id, state, dirty_partition[order_id])
        await self._emit(out)
        await self._tick()

    def _rekey(self, topic: str, key: str, message: WireModel) -> Outgoing:
        """A record under the wrong key goes back through the feed under its real key."""
        feed = self.waybill_feed if topic == T.TRACKING_SCANS else self.order_feed
        value = Rekeyed(topic=topic, value=message.model_dump(mode="json"))
        return Outgoing(feed, key.encode("utf-8"), codec.dumps(value))

    def _put(self, store: StateStore, key: str, state: Any, partition: int) -> None:
        """Store a key's new state (None deletes it), stamped with the partition it lives in."""
        if state is not None and state.partition != partition:
            state = state.model_copy(update={"partition": partition})
        store.put(key, state, partition)

    def _put_order(self, order_id: str, state: Optional[order_rules.OrderState], partition: int) -> None:
        wake = self.order_deadlines.due_at.get(order_id)
        if state is not None and state.wake_at != wake:
            state = state.model_copy(update={"wake_at": wake})
        self._put(self.orders, order_id, state, partition)

    def _route(self, order_id: str, outputs: list[Any], partition: int, side: str = "order") -> list[Outgoing]:
        """Messages for a key's outputs. Output topics get the key's own partition number, so
        that each output partition has one writer (the owner of that partition)."""
        routed = []
        origin = (side, partition)
        for item in outputs:
            if isinstance(item, ViolationWarning):
                self.metrics.outputs[(item.rule, item.stage)] += 1
                log.info("warning order=%s rule=%s stage=%s occurred_at=%s warning_id=%s",
                         item.order_id, item.rule, item.stage, format_time(item.occurred_at),
                         item.warning_id)
                routed.append(Outgoing(T.VIOLATION_WARNINGS, order_id.encode("utf-8"), codec.dumps(item), partition,
                                       origin, identity(T.VIOLATION_WARNINGS, item)))
            elif isinstance(item, CancellationOutcome):
                self.metrics.outputs[("CANCELLATION", item.code)] += 1
                log.info("cancellation order=%s request=%s decision=%s code=%s", item.order_id,
                         item.request_event_id, item.decision, item.code)
                routed.append(Outgoing(T.CANCELLATION_OUTCOMES, order_id.encode("utf-8"), codec.dumps(item), partition,
                                       origin, identity(T.CANCELLATION_OUTCOMES, item)))
            elif isinstance(item, ShopFact):
                self.facts_in_flight += not self.in_band_marks
                routed.append(Outgoing(self.shop_feed, item.shop_id.encode("utf-8"), codec.dumps(item), origin=origin))
            elif isinstance(item, ShopAlert):
                self.metrics.outputs[(item.metric, item.stage)] += 1
                log.info("shop alert shop=%s metric=%s stage=%s value=%s window_end=%s", item.shop_id, item.metric,
                         item.stage, item.value, format_time(item.window_end))
                routed.append(Outgoing(T.SHOP_ALERTS, item.shop_id.encode("utf-8"), codec.dumps(item), partition,
                                       origin, identity(T.SHOP_ALERTS, item)))
            elif isinstance(item, RegisterUpload):
                routed.append(Outgoing(self.waybill_feed, item.waybill_no.encode("utf-8"), codec.dumps(item),
                                       origin=origin))
        return routed

    # ---- waybill side ---------------------------------------------------------------------
    async def waybill_batch(self, records: list[Record]) -> None:
        """Apply a batch of scans and registrations, persist dirty numbers, forward to orders."""
        started = time.monotonic()
        await self._run(self._waybill_batch, records)
        self.metrics.latency.observe(time.monotonic() - started)

    async def _waybill_batch(self, records: list[Record]) -> None:
        out: list[Outgoing] = []
        dirty: dict[str, Any] = {}
        dirty_partition: dict[str, int] = {}
        for record in records:
            message = self._decode(record, self.waybill_feed, WAYBILL_FEED_KINDS, out)
            if message is None:
                continue
            number = message.waybill_no
            if record.topic in self.external:
                self._observe(record, message.scan_at)  # type: ignore[union-attr]
                if record.key != number.encode("utf-8"):
                    out.append(self._rekey(record.topic, number, message))
                    continue
            state = dirty.get(number) or self.waybills.get(number, record.partition)
            if isinstance(message, ParcelScanned):
                step = waybill_rules.apply_scan(state, message, self.ctx.rules)
            else:
                step = waybill_rules.apply_registration(state, message, self.ctx.rules)
            dirty[number] = step.state
            dirty_partition[number] = record.partition
            self.waybill_deadlines.set(number, step.next_deadline)
            out.extend(Outgoing(self.order_feed, o.order_id.encode("utf-8"), codec.dumps(o),
                                origin=("waybill", record.partition)) for o in step.outputs)
        for number, state in dirty.items():
            self._put(self.waybills, number, state, dirty_partition[number])
        await self._emit(out)
        await self._tick()

    # ---- timers ---------------------------------------------------------------------------
    def _marks(self, local: Optional[datetime], horizon: Optional[datetime]) -> list[Outgoing]:
        """Watermarks for the other side's feed, each only when it moved.

        To the waybill side: every registration caused by an event read up to `local` was sent.
        To the shop side: every shop fact up to the order horizon minus the lateness was sent.
        To the order side: every scan read up to `local` was forwarded *and* every registration
        the order side's marks vouch for was answered, so min(local, those marks): an order then
        cannot settle before it has heard of another order's earlier upload of its number. The
        order side publishes its local time only, so the two never wait on each other.
        """
        out: list[Outgoing] = []
        owned = {topic: tuple(sorted(p for t, p in self.assigned() if t == topic))
                 for topic in (T.TRACKING_SCANS, T.WAYBILL_UPLOADED, T.ORDER_PAID)}
        registrations = self.clock.remote_bound([(t, p) for t, p in self.assigned() if t == self.waybill_feed])
        answered = None if local is None or registrations is None else min(local, registrations)
        facts_sent = horizon - self.ctx.rules.allowed_lateness if horizon is not None else None
        for feed, sources, at, last in ((self.waybill_feed, owned[T.WAYBILL_UPLOADED], local, "waybill"),
                                        (self.order_feed, owned[T.TRACKING_SCANS], answered, "order"),
                                        (self.shop_feed, owned[T.ORDER_PAID], facts_sent, "shop")):
            sent = self.last_marks.get((last, sources))
            if not sources or at is None or (sent is not None and at <= sent):
                continue
            self.last_marks[(last, sources)] = at
            mark = codec.dumps(Watermark(sources=sources, at=at))
            out.extend(Outgoing(feed, None, mark, partition=p) for p in range(self.partitions))
        return out

    async def tick(self) -> None:
        """Stream time may have moved: publish the waybill-side watermark, fire due timers."""
        async with self.lock:
            if not self.open.is_set():
                return
            await self._recover_if_needed()
            await self._read_stalled()
            await self._tick()

    async def _tick(self) -> None:
        out: list[Outgoing] = []
        local = await self.confirmed_local_time()
        horizon = self.order_horizon(local)
        if log.isEnabledFor(logging.DEBUG):
            feeds = [(topic, p) for topic, p in self.assigned() if topic == self.order_feed]
            log.debug("clock local=%s remote=%s horizon=%s lagging=%s", local, self.clock.remote_bound(feeds),
                      horizon, [tp for tp in self.assigned() if tp[0] in self.external and not self.caught_up(tp)][:5])
        if horizon is not None:
            for order_id, step, partition in self._fire(self.order_deadlines, self.orders, horizon,
                                                        lambda state, now: order_rules.on_time(state, now, self.ctx),
                                                        self._put_order):
                out.extend(self._route(order_id, step.outputs, partition))
        waybill_now = self.waybill_horizon(local)
        if waybill_now is not None:
            self._fire(self.waybill_deadlines, self.waybills, waybill_now,  # expiry only: no outputs
                       lambda state, now: waybill_rules.on_time(state, now, self.ctx.rules),
                       lambda key, state, partition: self._put(self.waybills, key, state, partition))
        shop_now = self.shop_horizon(horizon)
        if shop_now is not None:
            for shop_id, step, partition in self._fire(
                    self.shop_deadlines, self.shops, shop_now,
                    lambda state, now: shop_rules.on_time(state, now, self.ctx.rules),
                    lambda key, state, partition: self._put(self.shops, key, state, partition)):
                out.extend(self._route(shop_id, step.alerts, partition, "shop"))
        if self.in_band_marks and self.clock_mode == "event":
            # after this tick's timers: a mark must follow the facts and forwards it vouches for
            out.extend(self._marks(local, horizon))
        await self._emit(out)

    def shop_horizon(self, order_horizon: Optional[datetime]) -> Optional[datetime]:
        """Shop facts are evaluated at their time once every fact up to it has arrived.

        The order side sends a fact when it happens or, for a request that waited for its order,
        one lateness later; so the shop side trails the order side's horizon by the lateness:
        in event mode through the order side's marks on the shop feed, else directly.
        """
        lateness = self.ctx.rules.allowed_lateness
        if self.clock_mode == "event" and self.in_band_marks:
            feeds = [(topic, p) for topic, p in self.assigned() if topic == self.shop_feed]
            return self.shop_clock.advance(self.clock.remote_bound(feeds))
        if not self.in_band_marks and self.facts_in_flight:
            # in process: facts this side sent are still queued; they may be older than the horizon
            return self.shop_clock.current
        return self.shop_clock.advance(order_horizon - lateness if order_horizon else None)

    def _fire(self, deadlines: Deadlines, store: StateStore, now: datetime,
              on_time: Callable[[Any, datetime], Any],
              put: Callable[[str, Any, int], None]) -> list[tuple[str, Any, int]]:
        """Run `on_time` for every key due by `now`, reschedule and store it: (key, step, partition) each."""
        fired = []
        owned = self.owned_partitions()
        for key in deadlines.pop_due(now):
            state = store.get(key)
            if state is None or state.partition not in owned:
                continue
            step = on_time(state, now)
            deadlines.set(key, step.next_deadline)  # before the put: an order stores its wake_at
            put(key, step.state, state.partition)
            fired.append((key, step, state.partition))
        return fired

    async def shop_batch(self, records: list[Record]) -> None:
        """Apply a batch of shop facts: rates per shop, alerts to shop-alerts."""
        await self._run(self._shop_batch, records)

    async def _shop_batch(self, records: list[Record]) -> None:
        out: list[Outgoing] = []
        dirty: dict[str, Any] = {}
        dirty_partition: dict[str, int] = {}
        now = self.shop_clock.current
        for record in records:
            fact = self._decode(record, self.shop_feed, SHOP_FEED_KINDS, out)
            if fact is None:
                continue
            if not self.in_band_marks:
                self.facts_in_flight = max(0, self.facts_in_flight - 1)
            state = dirty.get(fact.shop_id) or self.shops.get(fact.shop_id, record.partition)
            step = shop_rules.apply(state, fact, now, self.ctx.rules)
            dirty[fact.shop_id] = step.state
            dirty_partition[fact.shop_id] = record.partition
            self.shop_deadlines.set(fact.shop_id, step.next_deadline)
            out.extend(self._route(fact.shop_id, step.alerts, record.partition, "shop"))
        for shop_id, state in dirty.items():
            self._put(self.shops, shop_id, state, dirty_partition[shop_id])
        await self._emit(out)
        await self._tick()

    def rebuild_deadlines(self) -> None:
        """After recovery or a rebalance, schedule every key of ours again (the heap is not stored)."""
        owned = self.owned_partitions()
        self.order_deadlines = Deadlines()
        self.waybill_deadlines = Deadlines()
        for order_id, state in self.orders.items():
            if state.partition not in owned:
                continue
            wake = state.wake_at if state.wake_at is not None else order_rules.next_deadline(state, self.ctx)
            self.order_deadlines.set(order_id, wake)
        for number, state in self.waybills.items():
            if state.partition in owned:
                self.waybill_deadlines.set(number, state.expires_at(self.ctx.rules.scan_retention))
        self.shop_deadlines = Deadlines()
        for shop_id, state in self.shops.items():
            if state.partition in owned:
                self.shop_deadlines.set(shop_id, shop_rules.next_deadline(state, self.ctx.rules))

    # ---- delivery -------------------------------------------------------------------------
    async def _emit(self, out: list[Outgoing]) -> None:
        """Outbox, then state, then the messages, each on the broker before the next starts.

        A crash before the outbox lands leaves no trace of the batch: its input is read again.
        A crash after it is repaired by `_recover`: what the outbox holds and the output
        partitions lack is sent, and the stages it holds are never emitted again, so orders whose
        state did not land cannot repeat them when their input is read again.
        """
        if self.recovered:
            out = [o for o in out if o.identity is None or o.identity not in self.recovered]
        if self.outbox is not None:
            boxes: dict[tuple[str, int], list[Outgoing]] = {}
            for item in out:
                if item.origin is not None:
                    boxes.setdefault(item.origin, []).append(item)
            for (side, partition), items in boxes.items():
                chunks = _chunks(items, OUTBOX_CHUNK_BYTES)
                for n, chunk in enumerate(chunks):
                    self.outbox.put(f"{side}:{partition}:{n}", await self._outbox(partition, chunk), partition)
                for n in range(len(chunks), self.outbox_chunks.get((side, partition), 0)):
                    self.outbox.put(f"{side}:{partition}:{n}", None, partition)  # an older batch's
                self.outbox_chunks[(side, partition)] = len(chunks)
            await self.outbox.flush()
        if self.clocks is not None:
            for topic, partition in self.clock_dirty:
                self.clocks.put(f"{topic}:{partition}",
                                InputClock(partition=partition, at=self.clock.latest[(topic, partition)]), partition)
            self.clock_dirty = set()
        await asyncio.gather(self.orders.flush(), self.waybills.flush(), self.shops.flush(),
                             *([self.clocks.flush()] if self.clocks is not None else []))
        if out:
            await self._deliver(out)

    async def _outbox(self, partition: int, items: list[Outgoing]) -> Outbox:
        """One partition's outbox: its messages, and where each output partition ends now."""
        tps = sorted({(o.topic, o.partition) for o in items if o.identity is not None and o.partition is not None})
        unknown = [tp for tp in tps if tp not in self.output_next]
        if unknown:  # not written since the last recovery: we are its only writer, so its end is ours
            self.output_next.update(await self.end_offsets(unknown))
        return Outbox(partition=partition, bases={topic: self.output_next[(topic, p)] for topic, p in tps},
                      items=tuple(OutboxItem(topic=o.topic, partition=o.partition, value=o.value.decode("utf-8"),
                                             key=None if o.key is None else o.key.decode("utf-8"),
                                             identity=o.identity) for o in items))

    async def _deliver(self, out: list[Outgoing],
                       bases: Optional[dict[tuple[str, Optional[int]], Optional[int]]] = None) -> None:
        """Send and wait for every message; repair what failed (see streams.kafka.clients). `bases`:
        where each output partition stood before these messages (default: as we wrote it)."""
        if bases is None:
            bases = {(o.topic, o.partition): self.output_next.get((o.topic, o.partition))  # type: ignore[arg-type]
                     for o in out if o.identity is not None}
        failed = self._delivered(out, await self.send(out))
        attempt = 0
        while failed:
            attempt += 1
            log.warning("delivery failed messages=%d attempt=%d: reading the output partitions back",
                        len(failed), attempt)
            await asyncio.sleep(min(5.0, 0.2 * 2 ** attempt))
            try:
                missing = await self._not_landed(failed, bases)
                failed = self._delivered(missing, await self.send(missing))
            except Exception as exc:  # the broker is still away: try again
                log.warning("delivery repair failed attempt=%d error=%r", attempt, exc)
        if attempt:
            log.info("delivery repaired attempts=%d", attempt)

    def _delivered(self, out: list[Outgoing], results: Optional[list[Any]]) -> list[Outgoing]:
        """Note where output partitions now end; return the messages whose send failed."""
        failed = []
        for item, result in zip(out, results or [None] * len(out)):
            if isinstance(result, BaseException):
                failed.append(item)
            elif item.identity is not None and isinstance(result, int):
                tp = (item.topic, item.partition)
                self.output_next[tp] = max(self.output_next.get(tp, 0), result + 1)  # type: ignore[index]
        return failed

    async def _not_landed(self, items: list[Outgoing], bases: dict[tuple[str, Optional[int]], Optional[int]]
                          ) -> list[Outgoing]:
        """Of `items`, those not on the broker: output messages absent from their partition
        since `bases`; feed messages all (their readers ignore a repeat)."""
        landed: dict[tuple[str, int], set[str]] = {}
        for topic, partition in {(o.topic, o.partition) for o in items if o.identity is not None}:
            assert partition is not None and self.read_back is not None
            start = bases.get((topic, partition))
            if start is None:  # no base known (not expected): what is there now is not ours
                start = (await self.end_offsets([(topic, partition)]))[(topic, partition)]
            values, end = await self.read_back(topic, partition, start)
            landed[(topic, partition)] = {identity(topic, codec.loads(v)) for v in values}  # type: ignore[misc]
            self.output_next[(topic, partition)] = end
        return [o for o in items if o.identity is None or o.identity not in landed[(o.topic, o.partition)]]  # type: ignore[index]

    def on_assigned(self) -> None:
        """Partitions were (re)assigned: check their outboxes before the next batch or tick."""
        self.needs_recovery = self.outbox is not None
        # a partition kept through the rebalance continues where we were (Faust may deliver it
        # again from its last commit: replays); one new to us starts at the group's committed
        # offset, asked at its first record (_complete)
        owned = set(self.assigned())
        gained = self.owned_partitions() - self.serving
        self.serving = self.owned_partitions()
        if gained:
            # each side's time was bounded by the marks on the feed partitions it read; the new
            # partitions' feeds are not read yet, and their keys must not be judged by it: time
            # starts again from the marks and inputs of every partition now served
            self.order_clock, self.waybill_clock, self.shop_clock = SideClock(), SideClock(), SideClock()
        self.next_offsets = {tp: n for tp, n in self.next_offsets.items() if tp in owned}
        self.landed = {tp: n for tp, n in self.landed.items() if tp in owned}
        self.last_seen = {}
        self.last_marks = {}  # (side, sources) of the old assignment: forgotten
        self.starts = None

    async def _recover_if_needed(self) -> None:
        if self.needs_recovery:
            self.needs_recovery = False
            await self._recover()

    async def _recover(self) -> None:
        """Finish what the last owner of each assigned partition may have left half done.

        Every outbox of an assigned partition is compared with the output partitions from its
        bases on: output messages found there are not sent again, the others are; feed messages
        are sent again (their readers ignore repeats). Each output message an outbox held is
        remembered, so that reading its input again cannot emit it a second time.
        """
        assert self.outbox is not None
        started = time.monotonic()
        owned = self.assigned()
        sides = {"order": T.ORDER_PAID, "waybill": T.TRACKING_SCANS, "shop": self.shop_feed}
        pending: list[Outgoing] = []
        bases: dict[tuple[str, Optional[int]], Optional[int]] = {}
        self.output_next, self.recovered = {}, set()
        for side, topic in sides.items():
            for partition in sorted(p for t, p in owned if t == topic):
                # a batch writes chunks 0..n-1 in order on one changelog partition, then deletes
                # the older batch's beyond: chunk n+1 can only be there if chunk n is
                boxes = []
                while (box := self.outbox.get(f"{side}:{partition}:{len(boxes)}", partition)) is not None:
                    boxes.append(box)
                self.outbox_chunks[(side, partition)] = len(boxes)
                for box, item in ((box, item) for box in boxes for item in box.items):
                    pending.append(Outgoing(item.topic, None if item.key is None else item.key.encode("utf-8"),
                                            item.value.encode("utf-8"), item.partition, (side, partition),
                                            item.identity))
                    if item.identity is not None:
                        self.recovered.add(item.identity)
                        base, known = box.bases.get(item.topic), bases.get((item.topic, item.partition))
                        # chunks of two batches (a crash between them): read from the older base
                        bases[(item.topic, item.partition)] = base if known is None or base is None else min(base, known)
        missing = await self._not_landed(pending, bases) if pending else []
        if missing:
            await self._deliver(missing, bases)
        log.info("outboxes checked partitions=%d held=%d resent=%d outputs_resent=%d in_ms=%.0f",
                 len({p for t, p in owned}), len(pending), len(missing),
                 sum(o.identity is not None for o in missing), (time.monotonic() - started) * 1000)
