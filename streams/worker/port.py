"""The one interface between the shell and Kafka.

`streams.runtime.app` implements it on Faust and aiokafka, `streams.inprocess` on a loopback log,
and tests on whatever they need to break. The shell never touches a client itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from streams.worker.records import TP, Outgoing, Record


class Broker(Protocol):
    """What the shell needs of the broker and of the group it consumes in."""

    def assigned(self) -> Iterable[TP]:
        """The input and feed partitions assigned to this worker now."""

    async def end_offsets(self, tps: list[TP]) -> dict[TP, int]:
        """The end offset of each partition, asked of the broker now (not a cached high-water mark)."""

    async def committed(self) -> dict[TP, int]:
        """The group's committed offsets, asked of the broker."""

    def start_offset(self, tp: TP) -> int:
        """The consumer's own idea of where it started on `tp` (0 when it has none)."""

    def rebalances(self) -> int:
        """How many rebalances have started so far."""

    async def send(self, out: list[Outgoing]) -> list[Any] | None:
        """Send every message and wait: per message its offset or the exception it failed with."""

    async def read_range(self, topic: str, partition: int, start: int, stop: int) -> list[Record]:
        """The records of a partition from `start` up to `stop` (what the consumer skipped)."""

    async def read_back(self, topic: str, partition: int, start: int) -> tuple[list[bytes], int]:
        """The values of an output partition from `start` to its end, and that end."""
