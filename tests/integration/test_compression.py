"""Publishers compress: every codec Kafka defines is read, and gives what an uncompressed stream gives.

librdkafka producers (confluent-kafka, Go, .NET, Node) often compress. Before the codec package
(cramjam) was installed, one snappy-, lz4- or zstd-compressed record stopped the worker on every
restart (aiokafka's UnsupportedCodecError). Here the merged contract examples are published by
confluent-kafka (librdkafka: a client we did not write, with its own codecs), each record in a
batch of one codec (round robin over gzip, snappy, lz4 and zstd), and the outputs must equal those
of the same stream read one record at a time in process.
"""

import asyncio

import pytest
from confluent_kafka import Producer

from schemas import codec
from streams.cli.replay import parse_line
from streams.cli.supervise import WorkerProcess, read_topic, wait_idle
from streams.inprocess.engine import InProcessEngine
from streams.kafka.embedded import EmbeddedBroker, free_port
from streams.rules_file import load_rules
from tests.publishers import example_lines

CODECS = ("gzip", "snappy", "lz4", "zstd")
OUTPUT_TOPICS = ("violation-warnings", "cancellation-outcomes", "shop-alerts")
APP_ID = "shipguard-codecs"

pytestmark = pytest.mark.integration


def publish(bootstrap: str, lines: list[str]) -> dict[str, int]:
    """Publish each line's messages with the next codec in turn; how many records each codec carried."""
    producers = {name: Producer({"bootstrap.servers": bootstrap, "compression.type": name, "linger.ms": 0,
                                 "enable.idempotence": False, "acks": "all"}) for name in CODECS}
    carried = dict.fromkeys(CODECS, 0)
    failed: list[str] = []

    def delivered(error, message) -> None:
        if error is not None:
            failed.append(str(error))

    for number, line in enumerate(lines, start=1):
        name = CODECS[number % len(CODECS)]
        for message in parse_line(number, line, 8):
            extra = {} if message.partition is None else {"partition": message.partition}
            producers[name].produce(message.topic, message.value, message.key, on_delivery=delivered, **extra)
            producers[name].flush(10)  # in order: a record is on the broker before the next is sent
            carried[name] += 1
    assert failed == [], failed
    return carried


def reference(lines: list[str]) -> dict[str, list[dict]]:
    """The outputs of the same stream read one record at a time, in process."""
    engine = InProcessEngine(load_rules())

    async def go() -> None:
        for number, line in enumerate(lines, start=1):
            await engine.publish_messages(parse_line(number, line, engine.partitions))

    asyncio.run(go())
    return {topic: sorted(engine.output(topic), key=codec.dumps) for topic in OUTPUT_TOPICS}


def test_records_compressed_with_every_codec_are_read_and_give_the_outputs_of_an_uncompressed_stream(tmp_path):
    lines = example_lines()
    expected = reference(lines)
    assert expected["violation-warnings"] and expected["cancellation-outcomes"], "the examples emit something"
    with EmbeddedBroker() as broker:
        worker = WorkerProcess(broker.url, tmp_path / "worker.log", app_id=APP_ID, web_port=free_port())
        with worker:
            carried = publish(broker.bootstrap, lines)
            assert all(carried[name] > 0 for name in CODECS), carried
            wait_idle([broker.bootstrap], APP_ID, timeout=90)
            assert worker.process is not None and worker.process.poll() is None, "the worker is alive"
            got = {topic: sorted(read_topic([broker.bootstrap], topic), key=codec.dumps) for topic in OUTPUT_TOPICS}
            dead = read_topic([broker.bootstrap], "dead-letters")
    assert dead == [], "no compressed record was refused"
    assert got == expected
