"""What the shell reads and writes: one consumed record, one message to produce."""

from __future__ import annotations

from dataclasses import dataclass

TP = tuple[str, int]  # (topic, partition)


@dataclass
class Record:
    """One consumed record, independent of Faust (tests build these directly)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class Outgoing:
    """One message to produce.

    `origin` is the (side, partition) whose state change caused it: such a message goes into that
    partition's outbox before the state is written. `identity` is set on output topics, where a
    message must appear once (schemas.outputs.identity). `cause` is the (side, partition) whose
    batch or timer made a message without an origin (a dead letter, a watermark, a record
    forwarded to its key's partition): with transactions it goes into that one's transaction.
    """

    topic: str
    key: bytes | None
    value: bytes
    partition: int | None = None
    origin: tuple[str, int] | None = None
    identity: str | None = None
    cause: tuple[str, int] | None = None

    @property
    def transaction(self) -> tuple[str, int] | None:
        """The (side, partition) whose transaction carries this message (streams.kafka.transactions)."""
        return self.origin if self.origin is not None else self.cause
