"""Reading every record once, without holes, and what the group may commit.

Faust can hand over a partition with a hole when a worker starts on it mid-stream (after a
crash, a restart or a failover: docs/delivery.md), and can drop the last records of such a
partition with no later record to show it. The shell therefore reads each partition on from
the group's committed offset itself: what the consumer skipped is read from the broker
(`complete`), and a partition that stays quiet with records beyond ours is read here
(`stalled`). What is committed is decided here too (`committable`): the offset after the last
record whose batch has landed, every record before it processed.

Owned state: per assigned partition the offset expected next, the offset after its last landed
record and when it last delivered; the group's committed offsets at the last assignment. All of
it is forgotten for partitions that leave the assignment (`on_assigned`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterable

from streams.worker.metrics import Metrics
from streams.worker.port import Broker
from streams.worker.records import TP, Record

log = logging.getLogger("shipguard")

STALLED_AFTER_S = 10.0   # a partition with records beyond ours and none delivered for this long is read by the shell
STALLED_READ_MAX = 5_000  # records read at most per stalled partition and check


class Reading:
    """Where each assigned partition stands: expected next, landed, last delivered."""

    def __init__(self, broker: Broker, metrics: Metrics, markers: bool = False) -> None:
        self.broker, self.metrics = broker, metrics
        self.markers = markers  # transactions: offsets can hold markers that no reader gets
        self.next_offsets: dict[TP, int] = {}  # per partition read: the offset expected next
        self.landed: dict[TP, int] = {}  # partition -> offset after its last landed record
        self.last_seen: dict[TP, float] = {}  # partition -> monotonic time of its last record
        self.stall_checked = 0.0
        self.starts: dict[TP, int] | None = None  # committed offsets at the last assignment

    def on_assigned(self, owned: set[TP]) -> None:
        """A partition kept through a rebalance continues where we were (Faust may deliver it
        again from its last commit: replays); one new to us starts at the group's committed
        offset, asked at its first record."""
        self.next_offsets = {tp: n for tp, n in self.next_offsets.items() if tp in owned}
        self.landed = {tp: n for tp, n in self.landed.items() if tp in owned}
        self.last_seen = {}
        self.starts = None

    async def complete(self, records: list[Record]) -> list[Record]:
        """`records` with every record the consumer skipped put back in place.

        Each partition is expected to continue where the shell left it or, new to this worker,
        at the group's committed offset; a record further on means the records between were
        skipped: they are read from the broker and processed first, and counted (`offset gap`
        warning, offset_gaps and refetched metrics). Records behind are replays (every input has
        an event_id: no effect). Records of a partition no longer assigned (delivered late, from
        before a rebalance) are dropped: its new owner reads them from the committed offset.
        """
        out: list[Record] = []
        owned = set(self.broker.assigned())
        seen = time.monotonic()
        for record in records:
            tp = (record.topic, record.partition)
            if tp not in owned:
                self.metrics.not_owned += 1
                continue
            self.last_seen[tp] = seen
            expected = self.next_offsets.get(tp)
            if expected is None:
                expected = await self.start_of(tp)
            if record.offset > expected:
                missing = await self.broker.read_range(record.topic, record.partition, expected, record.offset)
                if missing:  # none: only transaction markers (or aborted records) lie between
                    self.metrics.offset_gaps += 1
                    log.warning("offset gap topic=%s partition=%d expected=%d got=%d refetched=%d", record.topic,
                                record.partition, expected, record.offset, len(missing))
                    self.metrics.refetched += len(missing)
                    out.extend(missing)
            elif record.offset < expected:
                self.metrics.replayed += 1
            out.append(record)
            self.next_offsets[tp] = max(expected, record.offset + 1)
        return out

    async def stalled(self, consumed: Iterable[str]) -> AsyncIterator[list[Record]]:
        """The records of partitions the consumer stopped delivering, one partition at a time.

        A partition of ours (of a `consumed` topic) with records beyond our position and none
        delivered for STALLED_AFTER_S is read here instead (`partition stalled` warning); if the
        consumer delivers them later, they are replays.
        """
        now = time.monotonic()
        if now - self.stall_checked < STALLED_AFTER_S / 2:
            return
        self.stall_checked = now
        topics = set(consumed)
        quiet = [tp for tp in self.broker.assigned()
                 if tp[0] in topics and now - self.last_seen.setdefault(tp, now) >= STALLED_AFTER_S]
        if not quiet:
            return
        ends = await self.broker.end_offsets(quiet)
        for tp in quiet:
            start = self.next_offsets.get(tp)
            if start is None:
                start = await self.start_of(tp)
            end = min(ends.get(tp, 0), start + STALLED_READ_MAX)
            if end <= start:
                continue
            records = await self.broker.read_range(tp[0], tp[1], start, end)
            if not records:
                if self.markers:
                    # only transaction markers (or aborted records) up to `end`: nothing to process,
                    # and the group may commit past them (else its lag never reaches 0)
                    self.next_offsets[tp] = end
                    self.landed[tp] = max(self.landed.get(tp, 0), end)
                continue  # without transactions: the read came back empty, try again later
            log.warning("partition stalled topic=%s partition=%d at=%d end=%d: read %d records ourselves",
                        tp[0], tp[1], start, ends.get(tp, 0), len(records))
            self.metrics.refetched += len(records)
            yield records

    async def start_of(self, tp: TP) -> int:
        """Where a partition new to this worker starts: the group's committed offset (0 if none)."""
        return (await self.ask_starts()).get(tp, 0)

    async def ask_starts(self) -> dict[TP, int]:
        """Ask the broker once per assignment for the group's committed offsets (`starts`)."""
        if self.starts is None:
            self.starts = await self.broker.committed()
        return self.starts

    def first_offset(self, tp: TP) -> int:
        """Where this worker started on `tp`: the group's committed offset at the assignment.

        Asked from the broker (`starts`); until then, the consumer's idea of it. A partition the
        group had read to its end before it came to us delivers nothing, and the consumer's idea
        can be missing (0): the partition then looked behind for good and held stream time.
        """
        if self.starts is not None:
            return self.starts.get(tp, 0)
        return self.broker.start_offset(tp)

    def land(self, records: list[Record]) -> None:
        """The batch of `records` is processed and its state and messages are on the broker."""
        landed = self.landed
        for record in records:
            tp = (record.topic, record.partition)
            if record.offset >= landed.get(tp, 0):
                landed[tp] = record.offset + 1

    def committable(self, tp: TP) -> int | None:
        """The offset the group may commit for `tp`: every record before it processed and landed.

        None while nothing of `tp` has landed since it was assigned (nothing new to commit).
        """
        return self.landed.get(tp)
