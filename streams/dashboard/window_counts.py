"""`WindowCounts`: counts per key over a sliding window of record time, in a bounded number of slots."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable
from datetime import datetime, timedelta


class WindowCounts:
    """Counts per key over a sliding window of record time, kept in `slots` slots.

    A slot's counts leave the totals when the slot leaves the window, so at most slots + 1 slots
    exist; a record older than the window counts nowhere.
    """

    def __init__(self, window: timedelta, slots: int) -> None:
        self.width = window.total_seconds() / slots
        self.slots = slots
        self.total: Counter = Counter()
        self._slots: dict[int, Counter] = {}
        self._newest: int | None = None

    def _slot(self, at: datetime) -> int:
        return math.floor(at.timestamp() / self.width)

    def add(self, key: Hashable, at: datetime) -> bool:
        """Count `key` at `at`; False when `at` is already out of the window."""
        slot = self._slot(at)
        if self._newest is None or slot > self._newest:
            self._newest = slot
            self._drop_before(slot - self.slots)
        elif slot < self._newest - self.slots:
            return False
        self._slots.setdefault(slot, Counter())[key] += 1
        self.total[key] += 1
        return True

    def expire(self, now: datetime) -> None:
        """Drop the slots that ended before `now` - window."""
        self._drop_before(self._slot(now) - self.slots)

    def forget(self, key: Hashable) -> None:
        """Remove every count of `key`."""
        for counts in self._slots.values():
            counts.pop(key, None)
        self.total.pop(key, None)

    def __len__(self) -> int:
        return len(self._slots)

    def _drop_before(self, oldest: int) -> None:
        for slot in [s for s in self._slots if s < oldest]:
            self.total.subtract(self._slots.pop(slot))
        for key in [k for k, n in self.total.items() if n <= 0]:
            del self.total[key]
