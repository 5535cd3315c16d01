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


class Transactions(Protocol):
    """A broker with transactions (Apache Kafka; streams.kafka.transactions).

    Between `open_batch` and `commit_batch`, changelog records the stores send and the messages
    `add`ed are collected per (side, partition); `commit_batch` commits, per (side, partition), its
    records, its messages and its input offsets in one transaction, and raises if any did not.
    """

    def open_batch(self) -> None:
        """Start collecting a batch's writes."""

    def add(self, item: Outgoing) -> None:
        """A message of the batch, in the transaction of its `transaction` (side, partition)."""

    async def commit_batch(self, offsets: dict[tuple[str, int], dict[TP, int]]) -> None:
        """Commit each transaction with its input offsets ((side, partition) -> {tp: offset})."""
