"""Transactions per state partition on Apache Kafka: the last owner of a partition is fenced.

`streams.kafka.transactions` without a worker: two owners of the same partitions, as a frozen
worker and the one that took its partitions over would be. The worker's use of it is off by
default (SHIPGUARD_TRANSACTIONS) until the whole integration tier passes with it (docs/delivery.md).
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import ProducerFenced

from streams.kafka import admin
from tests.integration.brokers import new_broker
from tests.integration.confluent import read_raw

pytestmark = pytest.mark.integration
APP_ID = "fencing"


async def ends_of(bootstrap: str, topic: str) -> tuple[dict, dict]:
    """The read_committed end offsets of `topic`, and the same lowered to after the last committed record."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from streams.kafka.offsets import after_last_records

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed")
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, 0), TopicPartition(topic, 1)])
    finally:
        await consumer.stop()
    return ({tp.partition: end for tp, end in ends.items()},
            {tp.partition: end for tp, end in (await after_last_records([bootstrap], ends, {})).items()})


async def two_owners(bootstrap: str) -> tuple[BaseException | None, dict]:
    from streams.kafka.transactions import PartitionTransactions

    old, new = PartitionTransactions([bootstrap], APP_ID), PartitionTransactions([bootstrap], APP_ID)
    try:
        await old.serve({("order", 0), ("order", 1)})
        await old.commit(("order", 0), [("out", b"k", b"old-committed", 0)], {("in", 0): 5})
        await new.serve({("order", 0), ("order", 1)})  # the partitions move: the old owner is fenced
        await new.commit(("order", 0), [("out", b"k", b"new-committed", 0)], {("in", 0): 9})
        failure = None
        try:
            await old.commit(("order", 0), [("out", b"k", b"zombie", 0)], {("in", 0): 7})
        except BaseException as exc:  # what the zombie gets
            failure = exc
        return failure, admin.committed_offsets([bootstrap], APP_ID)
    finally:
        await new.stop()
        await old.stop()


def test_a_fenced_owner_writes_nothing_a_read_committed_reader_sees_and_its_offsets_do_not_move():
    with new_broker("kafka") as broker:
        admin.ensure_topics([broker.bootstrap], ["in", "out"], 2)
        failure, committed = asyncio.run(two_owners(broker.bootstrap))
        values = sorted(value for _, value in read_raw(broker.bootstrap, "out"))  # read_committed
        stable, last = asyncio.run(ends_of(broker.bootstrap, "out"))
    assert isinstance(failure, ProducerFenced), f"the zombie's commit must be refused: {failure!r}"
    assert committed == {("in", 0): 9}
    assert values == [b"new-committed", b"old-committed"]
    # partition 0: old-committed (0), its marker (1), new-committed (2), its marker (3), then what the
    # fenced owner left: the committed end lies past markers, and Faust's recovery must stop after
    # offset 2 (overrides row 12); partition 1 never had a record
    assert stable[0] > 3 and last == {0: 3, 1: 0}
