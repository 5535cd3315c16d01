"""What the shell reads and writes: one consumed record, one message to produce."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

TP = tuple[str, int]  # (topic, partition)


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
