"""How other publishers place records: the partitioners of clients we did not write, and the
merged contract examples as one stream (plain data and pure functions, no I/O but reading them).

Kafka's Java client and ours hash a key with murmur2; librdkafka (confluent-kafka, Go, .NET,
Node) hashes it with CRC32 by default (`consistent_random`), sarama (Go) with FNV-1a, and some
platforms choose the partition themselves.
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Callable
from pathlib import Path

from streams.topics import partition_for

EXAMPLES = Path(__file__).resolve().parent / "data" / "examples"
Partitioner = Callable[[bytes | None, int], int]


def crc32(key: bytes | None, partitions: int) -> int:
    """librdkafka's default for keyed records (consistent_random): CRC32 of the key."""
    return zlib.crc32(key or b"") % partitions


def fnv1a(key: bytes | None, partitions: int) -> int:
    """sarama's hash partitioner: 32-bit FNV-1a, as a signed int, modulo, sign dropped."""
    value = 0x811C9DC5
    for byte in key or b"":
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    signed = value - (1 << 32) if value & 0x80000000 else value
    return abs(signed) % partitions  # Go's % keeps the dividend's sign; sarama then drops it


def random_partitioner(seed: int) -> Partitioner:
    """A partition picked at random for each record (a platform that spreads load by hand)."""
    chooser = random.Random(seed)
    return lambda key, partitions: chooser.randrange(partitions)


def murmur2(key: bytes | None, partitions: int) -> int:
    """Kafka's Java default and ours."""
    return partition_for(key, partitions)


PARTITIONERS: dict[str, Partitioner] = {"crc32": crc32, "fnv1a": fnv1a, "random": random_partitioner(7),
                                        "murmur2": murmur2}


def example_lines() -> list[str]:
    """Every contract example's lines as one stream: events in time order, the last clock tick at the end."""
    items = [json.loads(line) for path in sorted(EXAMPLES.glob("*.jsonl"))
             for line in path.read_text(encoding="utf-8").splitlines() if line]
    ticks = [item for item in items if item["topic"] == "clock-ticks"]
    events = sorted((item for item in items if item["topic"] != "clock-ticks"), key=lambda item: item["at"])
    return [json.dumps(item, ensure_ascii=False) for item in events + ticks[-1:]]
