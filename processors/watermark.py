"""Stream time in event mode, as the contract defines it, from what the worker has read.

Each input partition keeps the latest event time read from it. Stream time is the minimum of
those over the partitions that still have unread records (a caught-up partition does not hold
it back); when all are caught up, the maximum. It never goes backwards. The order side also
bounds it by the in-band watermarks of the waybill side (`observe_remote`), so no timer fires
before every scan read up to that time has reached the order side; likewise the waybill side
is bounded by the order side's watermarks, so it never expires a number while a registration
for it is on its way. Each side publishes its *local* time (its own inputs only), so the two
bounds do not wait on each other.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from datetime import datetime


class StreamClock:
    """Per-partition latest event times -> monotone stream time."""

    def __init__(self, source_partitions: int = 0) -> None:
        self.latest: dict[Hashable, datetime] = {}
        self.source_partitions = source_partitions
        # (feed topic, feed partition) -> producing side's source partition -> watermark
        self.remote: dict[Hashable, dict[int, datetime]] = {}

    def observe(self, partition: Hashable, at: datetime) -> None:
        """An event with event time `at` was read from `partition`."""
        known = self.latest.get(partition)
        if known is None or at > known:
            self.latest[partition] = at

    def observe_remote(self, feed: Hashable, sources: Iterable[int], at: datetime) -> None:
        """The other side's watermark arrived on `feed` (topic, partition) for its `sources`."""
        marks = self.remote.setdefault(feed, {})
        for source in sources:
            known = marks.get(source)
            if known is None or at > known:
                marks[source] = at

    def local_time(self, assigned: Iterable[Hashable], caught_up: Callable[[Hashable], bool],
                   latest_times: dict[Hashable, datetime] | None = None) -> datetime | None:
        """The contract's stream time over `assigned` partitions (not monotone on its own).

        `latest_times` is a snapshot of the per-partition times to use (default: the live ones).
        """
        times = self.latest if latest_times is None else latest_times
        lagging: list[datetime | None] = []
        everything: list[datetime] = []
        for partition in assigned:
            latest = times.get(partition)
            if latest is not None:
                everything.append(latest)
            if not caught_up(partition):
                lagging.append(latest)
        if lagging:
            if any(t is None for t in lagging):
                return None  # a partition with unread records and no time yet holds everything
            return min(t for t in lagging if t is not None)
        return max(everything) if everything else None

    def remote_bound(self, feed_partitions: Iterable[Hashable]) -> datetime | None:
        """The lowest watermark of the other side over all its sources, on the feeds we read."""
        bound: datetime | None = None
        for feed in feed_partitions:
            marks = self.remote.get(feed, {})
            if len(marks) < self.source_partitions:
                return None
            for at in marks.values():
                bound = at if bound is None or at < bound else bound
        return bound


class SideClock:
    """One side's monotone stream time: its own inputs, bounded by the other side's watermarks."""

    def __init__(self) -> None:
        self.current: datetime | None = None

    def advance(self, candidate: datetime | None) -> datetime | None:
        """Move forward to `candidate` (never backwards); returns the current time."""
        if candidate is not None and (self.current is None or candidate > self.current):
            self.current = candidate
        return self.current
