"""Whoever partitions the input, each record is applied where its key's state lives, once.

A publisher with another partitioner (librdkafka's CRC32, sarama's FNV-1a, a random or explicit
partition) puts a record in another partition than its key's murmur2 partition. The worker
forwards such a record once, through the side's internal feed, to the key's partition; an
order-paid travels with its recipient already reduced (hash, region, masks), never in clear.
In process every partition is served by one worker, so here the outputs must equal those of a
murmur2 publisher and every state must sit in its key's partition (what two workers need: the
integration tier runs those).
"""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from schemas import codec
from schemas.internal import Watermark
from streams.cli.replay import parse_line
from streams.inprocess.engine import InProcessEngine, partition_for
from streams.rules_file import load_rules
from streams.worker.records import Record
from tests.factories import SHIP_BY, hours, order_paid, upload
from tests.publishers import PARTITIONERS, example_lines

OUTPUT_TOPICS = ("violation-warnings", "cancellation-outcomes", "shop-alerts", "dead-letters")


def published(partitioner, in_band_marks: bool = False, sent: list | None = None, bad: int = 0) -> InProcessEngine:
    """The merged examples published with `partitioner` (clock ticks still go to every partition);
    every message the shell sends is appended to `sent` when given; `bad` records that are not JSON first."""
    engine = InProcessEngine(load_rules(), in_band_marks=in_band_marks)
    if sent is not None:
        send = engine.shell.broker.send

        async def spy(out):
            sent.extend(out)
            return await send(out)

        engine.shell.broker.send = spy

    async def go() -> None:
        for n in range(bad):
            await engine.publish("order-paid", f"BAD{n}".encode(), b"{not json", n % engine.partitions)
        for number, line in enumerate(example_lines(), start=1):
            for message in parse_line(number, line, engine.partitions):
                partition = message.partition
                if partition is None:
                    partition = partitioner(message.key, engine.partitions)
                await engine.publish(message.topic, message.key, message.value, partition)

    asyncio.run(go())
    return engine


def outputs(engine: InProcessEngine) -> dict[str, list[bytes]]:
    return {topic: sorted(codec.dumps(item) for item in engine.output(topic)) for topic in OUTPUT_TOPICS}


@pytest.mark.parametrize("name", ["crc32", "fnv1a", "random"])
def test_the_examples_published_with_another_partitioner_give_exactly_the_outputs_of_murmur2(name):
    reference, engine = published(PARTITIONERS["murmur2"]), published(PARTITIONERS[name])
    assert reference.shell.metrics.forwarded == {}, "murmur2 puts every record in its key's partition"
    moved = engine.shell.metrics.forwarded
    assert moved[("order-paid", "partition")] > 0 and moved[("tracking-scans", "partition")] > 0, moved
    assert reference.output("violation-warnings") and reference.output("cancellation-outcomes")
    assert outputs(engine) == outputs(reference)


@pytest.mark.parametrize("name", ["crc32", "random"])
def test_with_in_band_watermarks_as_on_a_broker_the_outputs_are_still_those_of_murmur2(name):
    reference = published(PARTITIONERS["murmur2"])
    engine = published(PARTITIONERS[name], in_band_marks=True)
    marks = [r for p in engine.log["shipguard-order-feed"].values() for r in p
             if codec.loads(r.value).get("read") is not None]
    assert marks, "marks with `read` went out on the order feed"
    assert sum(engine.shell.metrics.forwarded.values()) > 0
    assert outputs(engine) == outputs(reference)


def test_a_workers_local_time_waits_for_every_workers_forward_marks_on_the_feeds_it_reads(engine):
    engine = InProcessEngine(load_rules(), in_band_marks=True)
    time = engine.shell.time
    at = datetime(2026, 3, 2, 10, tzinfo=UTC)
    for p in range(engine.partitions):  # every input partition read up to `at`, nothing unread
        engine.log["order-paid"][p].append(Record("order-paid", p, 0, b"k", b"{}"))
        time.observe(Record("order-paid", p, 0, b"k", b"{}"), at)
    assert asyncio.run(time.confirmed_local_time()) is None, "no forward mark yet: nothing vouched for"
    assert time.raw_local == at
    earlier = at - timedelta(hours=1)
    for feed in ("shipguard-order-feed", "shipguard-waybill-feed"):
        for p in range(engine.partitions):
            for sources in ((0, 1, 2, 3), (4, 5, 6, 7)):  # two workers' marks on each partition
                time.observe_mark(Record(feed, p, 0, None, b""), Watermark(sources=sources,
                                                                         read=earlier if sources[0] else at))
    assert asyncio.run(time.confirmed_local_time()) == earlier, "the slowest worker's mark bounds it"
    assert time.clock.remote_bound([("shipguard-order-feed", 0)]) is None, "`read` is not a side's watermark"
    sent = time.marks(None, None)  # no side's time known yet: the marks go out for `read` alone
    forward = [codec.loads(o.value) for o in sent if b'"read"' in o.value]
    assert {(o.topic, o.partition) for o in sent if codec.loads(o.value).get("read")} == {
        (feed, p) for feed in ("shipguard-order-feed", "shipguard-waybill-feed") for p in range(engine.partitions)}
    assert {f["read"] for f in forward} == {"2026-03-02T10:00:00Z"}, "a worker vouches for its own inputs' time"
    assert {f["at"] for f in forward} == {None}


@pytest.mark.parametrize("name", ["crc32", "random"])
def test_every_order_and_waybill_state_sits_in_its_keys_partition_whoever_partitioned_the_input(name):
    engine = published(PARTITIONERS[name])
    assert engine.orders and engine.waybills
    for table in (engine.orders, engine.waybills):
        for key, state in table.items():
            assert state.partition == partition_for(key.encode(), engine.partitions), key


def test_a_record_is_forwarded_once_and_applied_once_in_its_keys_partition(engine):
    wrong = (partition_for(b"O1", engine.partitions) + 1) % engine.partitions

    async def go():
        await engine.publish("order-paid", b"O1", codec.dumps(order_paid("O1")), wrong)
        await engine.publish("waybill-uploaded", b"O1", codec.dumps(upload("O1", at=SHIP_BY - hours(1))), wrong)
    asyncio.run(go())
    feed = [r for p in engine.log["shipguard-order-feed"].values() for r in p
            if codec.loads(r.value)["kind"] in ("paid", "rekeyed")]  # not the waybill side's answer
    assert [r.partition for r in feed] == [partition_for(b"O1", engine.partitions)] * 2
    assert engine.shell.metrics.forwarded == {("order-paid", "partition"): 1, ("waybill-uploaded", "partition"): 1}
    order = engine.orders["O1"]
    assert order.partition == partition_for(b"O1", engine.partitions)
    assert len(order.seen) == 2 and len(order.uploads) == 1 and order.facts is not None


@pytest.mark.parametrize("key", [None, b"not-the-order", b"\xff\xfe", "wrong-partition"])
def test_an_order_paid_in_the_wrong_place_is_forwarded_without_its_recipient_in_clear(engine, key):
    paid = order_paid("O1")
    direct = InProcessEngine(load_rules())
    asyncio.run(direct.publish("order-paid", b"O1", codec.dumps(paid)))
    wrong = (partition_for(b"O1", engine.partitions) + 1) % engine.partitions
    if key == "wrong-partition":
        key = b"O1"
    asyncio.run(engine.publish("order-paid", key, codec.dumps(paid), wrong))
    feed = [r.value for p in engine.log["shipguard-order-feed"].values() for r in p]
    assert len(feed) == 1 and codec.loads(feed[0])["kind"] == "paid"
    recipient = paid.recipient
    for clear in (recipient.name, recipient.phone, recipient.address):
        assert clear.encode() not in feed[0], clear
    assert engine.orders["O1"].facts == direct.orders["O1"].facts
    assert engine.output("dead-letters") == []


def test_every_message_the_shell_sends_names_the_side_and_partition_whose_transaction_carries_it():
    # with transactions (streams.kafka.transactions) each message goes into one partition's transaction
    sent: list = []
    engine = published(PARTITIONERS["crc32"], in_band_marks=True, sent=sent, bad=3)
    kinds = {item.topic for item in sent}
    feeds = {"shipguard-order-feed", "shipguard-waybill-feed", "shipguard-shop-feed"}
    assert {"violation-warnings", "dead-letters", *feeds} <= kinds, kinds
    assert engine.shell.metrics.forwarded, "some records were read in another partition than their key's"
    assert [item for item in sent if item.transaction is None] == []
    outputs = [item for item in sent if item.identity is not None]
    assert outputs and all(item.transaction[1] == item.partition for item in outputs), \
        "an output is written by the transaction of its own partition"
