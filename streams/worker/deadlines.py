"""Which key must wake at which instant, per side: timers are an index over the stored states.

The heap is not stored: after a restart or a rebalance it is rebuilt from the states of the
partitions this worker serves (`Shell.rebuild_deadlines`). A key leaves it when it fires or when
its state says it needs no wake-up (`set(key, None)`).
"""

from __future__ import annotations

import heapq
from datetime import datetime


class Deadlines:
    """Which key must wake at which instant: a heap with lazy deletion."""

    def __init__(self) -> None:
        self.heap: list[tuple[datetime, str]] = []
        self.due_at: dict[str, datetime] = {}

    def set(self, key: str, when: datetime | None) -> None:
        """Wake `key` at `when` (None: never), replacing what was set before."""
        if when is None:
            self.due_at.pop(key, None)
            return
        if self.due_at.get(key) != when:
            self.due_at[key] = when
            heapq.heappush(self.heap, (when, key))

    def pop_due(self, now: datetime) -> list[str]:
        """The keys due by `now`, in deadline order; they are no longer scheduled."""
        due = []
        while self.heap and self.heap[0][0] <= now:
            when, key = heapq.heappop(self.heap)
            if self.due_at.get(key) == when:
                del self.due_at[key]
                due.append(key)
        return due

    def __len__(self) -> int:
        return len(self.due_at)
