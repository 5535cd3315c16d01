"""`shipguard replay FILE.jsonl [--until TIME]`: publish a scenario file in order.

Each line is `{"topic", "key"?, "value"}` or `{"topic", "key"?, "raw"}` (raw: sent as those bytes,
unparsed: bad input on purpose). A line's `at` is ignored. A `clock-ticks` line goes to every
partition of `clock-ticks`. Afterwards, with --until, one tick at TIME goes to every partition.
Records are sent strictly in file order (one request in flight), so a record is visible on the
broker before any record that follows it: the event-mode guarantee depends on it.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from schemas import codec
from schemas.types import format_time
from streams import topics as T


class ReplayError(ValueError):
    """A line of the replay file is malformed; the message names the line."""


@dataclass
class Message:
    """One record to publish (partition None: by key)."""

    topic: str
    key: bytes | None
    value: bytes
    partition: int | None = None


@dataclass
class ReplayReport:
    """What a replay sent."""

    sent: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        """Messages sent, over every topic."""
        return sum(self.sent.values())

    def summary(self) -> str:
        """One line: how many were sent, how fast, and per topic."""
        rate = self.total / self.seconds if self.seconds > 0 else 0.0
        parts = ", ".join(f"{topic}={count}" for topic, count in sorted(self.sent.items()))
        return f"sent {self.total} messages in {self.seconds:.1f}s ({rate:,.0f}/s): {parts}"


def tick(at: datetime, partitions: int) -> list[Message]:
    """One clock tick for every partition of clock-ticks."""
    value = codec.dumps({"at": format_time(at)})
    return [Message(T.CLOCK_TICKS, None, value, p) for p in range(partitions)]


def parse_line(number: int, line: str, partitions: int) -> list[Message]:
    """The messages one replay line stands for."""
    try:
        item = codec.loads(line)
    except codec.BadInput as exc:
        raise ReplayError(f"line {number}: {exc}") from None
    if not isinstance(item, dict) or not isinstance(item.get("topic"), str):
        raise ReplayError(f"line {number}: expected an object with a string 'topic'")
    topic = item["topic"]
    if "raw" in item:
        raw = item["raw"]
        value = raw.encode("utf-8") if isinstance(raw, str) else codec.dumps(raw)
    elif "value" in item:
        value = codec.dumps(item["value"])
    else:
        raise ReplayError(f"line {number}: needs 'value' or 'raw'")
    key = item.get("key")
    key_bytes = None if key is None else str(key).encode("utf-8")
    if topic == T.CLOCK_TICKS:
        return [Message(topic, key_bytes, value, p) for p in range(partitions)]
    return [Message(topic, key_bytes, value)]


def read_messages(path: Path, partitions: int) -> Iterator[tuple[int, list[Message]]]:
    """Yield (bytes read so far, messages) per non-empty line of the file."""
    done = 0
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            done += len(line.encode("utf-8"))
            if line.strip():
                yield done, parse_line(number, line, partitions)


def make_producer(bootstrap: list[str], security: Mapping[str, Any] | None = None) -> Any:
    """A plain kafka-python producer that keeps publish order (one request in flight).

    `security`: the client keywords from `streams.security.kafka_python_kwargs` (None: PLAINTEXT).
    """
    from kafka import KafkaProducer

    return KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5, batch_size=262144,
                         max_in_flight_requests_per_connection=1, enable_idempotence=False,
                         client_id="shipguard-replay", **(security or {}))


def replay(path: Path, bootstrap: list[str], partitions: int, until: datetime | None = None,
           progress: bool = True, producer: Any = None,
           security: Mapping[str, Any] | None = None) -> ReplayReport:
    """Publish every line of `path` in order, then ticks to `until`; returns what was sent."""
    from tqdm import tqdm

    report = ReplayReport()
    own = producer is None
    producer = producer or make_producer(bootstrap, security)
    started = time.monotonic()
    size = path.stat().st_size
    bar = tqdm(total=size, unit="B", unit_scale=True, desc=f"replay {path.name}",
               disable=not progress, file=sys.stderr)
    try:
        last = 0
        for done, messages in read_messages(path, partitions):
            for message in messages:
                producer.send(message.topic, key=message.key, value=message.value, partition=message.partition)
                report.sent[message.topic] += 1
            bar.update(done - last)
            last = done
        if until is not None:
            for message in tick(until, partitions):
                producer.send(message.topic, key=None, value=message.value, partition=message.partition)
                report.sent[message.topic] += 1
        producer.flush()
    finally:
        bar.close()
        if own:
            producer.close()
    report.seconds = time.monotonic() - started
    return report
