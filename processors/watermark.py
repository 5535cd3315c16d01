"""Stream time in event mode, as the contract defines it, from what the worker has read.

Each input partition keeps the latest event time read from it. Stream time is the minimum of
those over the partitions that still have unread records (a caught-up partition does not hold
it back); when all are caught up, the maximum. It never goes backwards. The order side also
bounds it by the in-band watermarks of the waybill side (`observe_remote`), so no timer fires
before every scan read up to that time has reached the order side.
"""

from __future__ import annotations

from datetime import datetime
from typing import Callable, Hashable, Iterable, Optional


class StreamClock:
    """Per-partition latest event times -> monotone stream time."""

    def __init__(self, source_partitions: int = 0) -> None:
        self.latest: dict[Hashable, datetime] = {}
        self.current: Optional[datetime] = None
        self.source_partitions = source_partitions
        # feed partition -> waybill-side source partition -> watermark
        self.remote: dict[int, dict[int, datetime]] = {}

    def observe(self, partition: Hashable, at: datetime) -> None:
        """An event with event time `at` was read from `partition`."""
        known = self.latest.get(partition)
        if known is None or at > known:
            self.latest[partition] = at

    def observe_remote(self, feed_partition: int, sources: Iterable[int], at: datetime) -> None:
        """A waybill-side watermark arrived on `feed_partition` for its `sources`."""
        marks = self.remote.setdefault(feed_partition, {})
        for source in sources:
            known = marks.get(source)
            if known is None or at > known:
                marks[source] = at

    def local_time(self, assigned: Iterable[Hashable], caught_up: Callable[[Hashable], bool]) -> Optional[datetime]:
        """The contract's stream time over `assigned` partitions (not monotone on its own)."""
        lagging: list[Optional[datetime]] = []
        everything: list[datetime] = []
        for partition in assigned:
            latest = self.latest.get(partition)
            if latest is not None:
                everything.append(latest)
            if not caught_up(partition):
                lagging.append(latest)
        if lagging:
            if any(t is None for t in lagging):
                return None  # a partition with unread records and no time yet holds everything
            return min(t for t in lagging if t is not None)
        return max(everything) if everything else None

    def remote_bound(self, feed_partitions: Iterable[int]) -> Optional[datetime]:
        """The lowest waybill-side watermark over all sources, on the feed partitions we own."""
        bound: Optional[datetime] = None
        for feed in feed_partitions:
            marks = self.remote.get(feed, {})
            if len(marks) < self.source_partitions:
                return None
            for at in marks.values():
                bound = at if bound is None or at < bound else bound
        return bound

    def advance(self, candidate: Optional[datetime]) -> Optional[datetime]:
        """Move stream time forward to `candidate` (never backwards); returns the current time."""
        if candidate is not None and (self.current is None or candidate > self.current):
            self.current = candidate
        return self.current
