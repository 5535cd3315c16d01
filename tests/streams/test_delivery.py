"""Delivery without duplicates: ambiguous produce failures, outbox repair, and what recovery resends."""

import asyncio
import collections

import pytest
from aiokafka.errors import KafkaConnectionError, NotLeaderForPartitionError
from aiokafka.producer.sender import SendProduceReqHandler
from aiokafka.structs import TopicPartition

from schemas import codec
from schemas.outputs import identity
from streams import topics as T
from streams.inprocess.engine import InProcessEngine
from streams.kafka.overrides import NoAmbiguousRetry
from streams.rules_file import load_rules
from streams.worker.records import Outgoing
from tests.streams.conftest import run_files

OUTPUT_TOPICS = (T.VIOLATION_WARNINGS, T.CANCELLATION_OUTCOMES, T.SHOP_ALERTS)


# ---- the producer: an unanswered request fails instead of being sent again ----------------------
class FakeBatch:
    def __init__(self):
        self.failed_with = None

    def expired(self):
        return False

    def get_data_buffer(self):
        return b""

    def failure(self, exception):
        self.failed_with = exception


class FakeSender:
    def __init__(self, error):
        self._retry_backoff = 0
        self._txn_manager = None
        self._acks = -1
        self._request_timeout_ms = 1000
        self.reenqueued = []
        self._message_accumulator = self
        error_to_raise = error

        class Client:
            api_version = (2, 8)

            async def send(self, node_id, request):
                raise error_to_raise

            async def _maybe_wait_metadata(self):
                return None

            def force_metadata_update(self):
                return None

        self.client = Client()

    def reenqueue(self, batch):
        self.reenqueued.append(batch)


def send_once(handler_class, error):
    sender, batch = FakeSender(error), FakeBatch()
    handler = handler_class(sender, {TopicPartition("violation-warnings", 0): batch})
    asyncio.run(handler.do(0))
    return sender, batch


def test_aiokafka_sends_a_request_again_when_its_answer_was_lost_which_can_write_it_twice():
    sender, batch = send_once(SendProduceReqHandler, KafkaConnectionError("connection lost"))
    assert sender.reenqueued == [batch] and batch.failed_with is None


def test_the_output_producer_fails_a_request_whose_answer_was_lost_instead_of_sending_it_again():
    sender, batch = send_once(NoAmbiguousRetry, KafkaConnectionError("connection lost"))
    assert sender.reenqueued == [] and isinstance(batch.failed_with, KafkaConnectionError)


def test_the_output_producer_still_retries_an_error_the_broker_answered():
    sender, batch = send_once(NoAmbiguousRetry, NotLeaderForPartitionError())
    assert sender.reenqueued == [batch] and batch.failed_with is None


# ---- the shell: outboxes, read-back and repair ---------------------------------------------------
def engine_with_outbox(flaky=None):
    """The in-process engine with an outbox and read-back, and a send that may fail some messages:
    `flaky(item, n)` -> None (delivered), "landed" (written, but reported failed) or "lost"."""
    engine = InProcessEngine(load_rules(), outbox=True)
    sent, failed = collections.Counter(), collections.Counter()
    plain_send = engine.send

    async def send(out):
        results = []
        for item in out:
            if item.identity:  # an output (internal feed messages have none)
                sent[item.identity] += 1
            fate = flaky(item, sent[item.identity]) if flaky and item.identity else None
            if fate != "lost":
                await plain_send([item])
            if fate is not None:
                failed[item.identity] += 1
            results.append(None if fate is None else KafkaConnectionError(fate))
        return results

    async def read_back(topic, partition, start):
        log = engine.log[topic][partition]
        return [r.value for r in log[start:]], len(log)

    async def end_offsets(tps):
        return {(t, p): len(engine.log[t][p]) for t, p in tps}

    engine.send, engine.read_back, engine.end_offsets = send, read_back, end_offsets
    engine.sends, engine.failures = sent, failed  # per output identity: sends, and sends reported failed
    return engine


def outputs(engine):
    return {topic: engine.output(topic) for topic in OUTPUT_TOPICS}


@pytest.fixture(scope="module")
def reference():
    return outputs(run_files(InProcessEngine(load_rules())))


def test_an_output_that_landed_although_its_send_failed_is_not_sent_again(reference, monkeypatch):
    monkeypatch.setattr(asyncio, "sleep", _no_sleep)
    engine = run_files(engine_with_outbox(lambda item, n: "landed" if n == 1 else None))
    assert outputs(engine) == reference and reference[T.VIOLATION_WARNINGS]
    # every output's first send was reported failed, and none was sent a second time
    assert len(engine.sends) == sum(map(len, reference.values()))
    assert set(engine.failures.values()) == {1} and engine.failures.keys() == engine.sends.keys()
    assert set(engine.sends.values()) == {1}


def test_an_output_whose_send_failed_before_it_landed_is_sent_again_once(reference, monkeypatch):
    monkeypatch.setattr(asyncio, "sleep", _no_sleep)
    engine = run_files(engine_with_outbox(lambda item, n: "lost" if n <= 2 else None))
    assert outputs(engine) == reference and reference[T.VIOLATION_WARNINGS]
    # every output was lost twice, sent a third time, and is on its topic once
    assert len(engine.sends) == sum(map(len, reference.values()))
    assert set(engine.failures.values()) == {2} and engine.failures.keys() == engine.sends.keys()
    assert set(engine.sends.values()) == {3}


def test_every_batch_leaves_its_output_messages_in_its_partitions_outbox():
    engine = run_files(engine_with_outbox())
    boxes = dict(engine.shell.delivery.outbox.items())
    held = {item.identity for box in boxes.values() for item in box.items if item.identity}
    emitted = {identity(t, v) for t, values in outputs(engine).items() for v in values}
    assert held and held <= emitted
    assert all(key.split(":")[0] in ("order", "waybill", "shop") for key in boxes)


def test_recovery_sends_what_an_outbox_holds_and_the_topic_lacks_and_never_emits_it_again():
    engine = run_files(engine_with_outbox())
    shell = engine.shell
    # a crash: the last batch of some partition wrote its outbox (and state) but its outputs were lost
    key, box = next((k, b) for k, b in shell.delivery.outbox.items() if any(i.identity for i in b.items))
    lost = [i for i in box.items if i.identity]
    for item in lost:
        log = engine.log[item.topic][item.partition]
        log[:] = [r for r in log if identity(item.topic, codec.loads(r.value)) != item.identity]
    before = {t: len(v) for t, v in outputs(engine).items()}
    shell.on_assigned()
    asyncio.run(shell.tick())
    after = outputs(engine)
    assert sum(len(v) for v in after.values()) == sum(before.values()) + len(lost)
    assert {i.identity for i in lost} <= shell.delivery.recovered
    # the order's input read again derives the same stage: it is not emitted a second time
    again = [Outgoing(i.topic, None, i.value.encode(), i.partition, ("order", box.partition), i.identity) for i in lost]
    asyncio.run(shell._commit(again))
    assert outputs(engine) == after


async def _no_sleep(seconds, *args, **kwargs):
    return None
