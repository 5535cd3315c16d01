"""confluent-kafka (librdkafka) as a publisher and a reader: a client we did not write.

What it does by default is what platforms publishing from C, Go, .NET or Node do: keyed records
go to CRC32 of the key (`consistent_random`), batches may be compressed.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from schemas import codec
from streams.cli.replay import Message


def publish(bootstrap: str, messages: Iterable[Message], *, placement: str = "default", seed: int = 7,
            **config: object) -> int:
    """Publish `messages` in order with a confluent-kafka producer; how many were delivered.

    `placement`: "default" leaves a keyed record to librdkafka's partitioner (CRC32 unless
    `config` names another), "random" gives each keyed record a random partition of its topic.
    A message with its own partition (a clock tick) keeps it.
    """
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False,
                         "max.in.flight.requests.per.connection": 1, "linger.ms": 5, **config})
    chooser = random.Random(seed)
    failed: list[str] = []
    delivered = 0

    def report(error, message) -> None:
        nonlocal delivered
        if error is not None:
            failed.append(str(error))
        else:
            delivered += 1

    counts: dict[str, int] = {}
    for message in messages:
        extra = {}
        if message.partition is not None:
            extra["partition"] = message.partition
        elif placement == "random":
            if message.topic not in counts:
                counts[message.topic] = len(producer.list_topics(message.topic, timeout=10).topics[message.topic]
                                            .partitions)
            extra["partition"] = chooser.randrange(counts[message.topic])
        while True:
            try:
                producer.produce(message.topic, message.value, message.key, on_delivery=report, **extra)
                break
            except BufferError:  # the local queue is full: let deliveries drain
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(60)
    assert left == 0 and failed == [], f"{left} not delivered; errors {failed[:5]}"
    return delivered


def read_all(bootstrap: str, topic: str, timeout: float = 30.0) -> list[dict]:
    """Every value on `topic` from the beginning, decoded (`read_raw`)."""
    return [codec.loads(value) for _, value in read_raw(bootstrap, topic, timeout)]


def read_raw(bootstrap: str, topic: str, timeout: float = 30.0) -> list[tuple[bytes | None, bytes]]:
    """Every (key, value) on `topic` from the beginning, as bytes, read with a confluent-kafka consumer
    (isolation read_committed) until each partition reports its end (librdkafka's partition EOF,
    from the high-water mark of its Fetch answers).

    Not `get_watermark_offsets`: that is ListOffsets, which the embedded broker answers too low
    (the first offset of the last batch + 1; docs/broker.md), so a reader trusting it stops early.
    """
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"confluent-reader-{time.monotonic_ns()}",
                         "enable.auto.commit": False, "isolation.level": "read_committed",
                         "enable.partition.eof": True})
    try:
        partitions = list(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        values: list[tuple[bytes | None, bytes]] = []
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout
        while at_end != set(partitions):
            assert time.monotonic() < deadline, f"{topic}: partitions {sorted(at_end)} of {partitions} read"
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                at_end.add(message.partition())
                continue
            at_end.discard(message.partition())
            values.append((message.key(), message.value()))
        return values
    finally:
        consumer.close()
