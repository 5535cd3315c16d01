"""Overrides of aiokafka internals that need a real broker to show (streams.kafka.overrides)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer

from streams.kafka import admin
from streams.kafka.overrides import keep_every_topic
from tests.integration.brokers import both_brokers, new_broker

pytestmark = pytest.mark.integration


async def topics_known_after_a_new_topic(bootstrap: str, fixed: bool) -> set[str]:
    """Send to `known`, then to `late` (created after the producer started), refresh; what the producer knows."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, client_id="overrides-test")
    await producer.start()
    try:
        if fixed:
            keep_every_topic(producer)
        while "known" not in producer.client.cluster.topics():  # a new topic reaches a broker's metadata late
            await producer.client.force_metadata_update()
            await asyncio.sleep(0.1)
        await asyncio.wait_for(producer.send_and_wait("known", b"first", partition=0), 30)
        assert "known" in producer.client.cluster.topics()
        await asyncio.to_thread(admin.ensure_topics, [bootstrap], ["late"], 2)
        assert "late" not in producer.client.cluster.topics(), "the producer has not heard of `late` yet"
        await asyncio.wait_for(producer.send_and_wait("late", b"second", partition=1), 30)
        await producer.client.force_metadata_update()
        known = set(producer.client.cluster.topics())
        if fixed:  # and a batch for the other topic is still sent
            await asyncio.wait_for(producer.send_and_wait("known", b"third", partition=1), 30)
        return known
    finally:
        await producer.stop()


@both_brokers
def test_a_producer_that_waited_for_a_new_topic_still_knows_every_other_topic(kind):
    with new_broker(kind) as broker:
        admin.ensure_topics([broker.bootstrap], ["known"], 2)
        assert {"known", "late"} <= asyncio.run(topics_known_after_a_new_topic(broker.bootstrap, fixed=True))


@both_brokers
def test_without_the_fix_the_producer_forgets_every_topic_but_the_new_one(kind):
    # what the override is for (aiokafka 0.14): if this starts failing, aiokafka changed and row 10 may go
    with new_broker(kind) as broker:
        admin.ensure_topics([broker.bootstrap], ["known"], 2)
        assert asyncio.run(topics_known_after_a_new_topic(broker.bootstrap, fixed=False)) == {"late"}


def test_the_faust_consumer_reads_only_committed_records_once_the_fix_is_installed(monkeypatch):
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    from streams.kafka.overrides import install_read_committed

    class Consumer:
        _isolation_level = "read_uncommitted"  # what Faust 0.15.3 gives outside its exactly_once

    monkeypatch.setattr(AIOKafkaConsumerThread, "_create_worker_consumer", lambda self, transport: Consumer())
    assert install_read_committed() is True
    assert install_read_committed() is False  # idempotent
    assert AIOKafkaConsumerThread._create_worker_consumer(object(), None)._isolation_level == "read_committed"
