"""Every input record is processed, whatever the consumer skips, and only what landed is committed.

Faust can hand a partition over with holes, or stop delivering its tail, when a worker starts on
it mid-stream (README "Delivery guarantees"). The shell reads each partition contiguously from
the group's committed offset: a hole is read back when the next record shows it, a tail when the
partition stays quiet. These tests drive the real Shell through the in-process engine with a
consumer that loses records.
"""

import asyncio
import time
from datetime import UTC, datetime

import orjson
import pytest

from streams import topics as T
from streams.inprocess.engine import InProcessEngine
from streams.kafka.overrides import commit_what_landed
from streams.rules_file import load_rules
from streams.worker import reading
from streams.worker.records import Record
from tests.integration.simulated import simulated_stream
from tests.streams.conftest import SCENARIOS, run_files

OUTPUT_TOPICS = (T.VIOLATION_WARNINGS, T.CANCELLATION_OUTCOMES, T.SHOP_ALERTS)


class LossyEngine(InProcessEngine):
    """The in-process engine behind a consumer that silently skips the records `lose` picks."""

    def __init__(self, lose):
        # as in the worker: the feeds carry watermarks, so a side never runs ahead of records
        # the other side has yet to forward (in process they usually arrive at once); the
        # engine reads skipped records back from its log, and nothing is committed yet
        super().__init__(load_rules(), in_band_marks=True)
        self.lose = lose
        self.lost: list[Record] = []

    async def _deliver(self, record):
        if self.lose(record):
            self.lost.append(record)
            return
        await super()._deliver(record)


def outputs(engine):
    """Each output topic's records (sorted: the records read back are processed in another order)."""
    return {topic: sorted(engine.output(topic), key=lambda r: orjson.dumps(r, option=orjson.OPT_SORT_KEYS))
            for topic in OUTPUT_TOPICS}


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    """A simulated stream with every rule, cancellations and shop alerts (150 orders)."""
    events, _ = simulated_stream(tmp_path_factory.mktemp("stream"), "--orders", "150", "--days", "4", "--seed", "5")
    return [events]


@pytest.fixture(scope="module")
def reference(stream):
    return outputs(run_files(InProcessEngine(load_rules()), stream))


def every_other_record(record):
    return record.topic != T.CLOCK_TICKS and record.offset % 2 == 1


def test_records_the_consumer_skipped_are_read_back_and_the_outputs_are_those_of_a_lossless_run(stream, reference):
    engine = LossyEngine(every_other_record)
    run_files(engine, stream)
    assert engine.shell.metrics.offset_gaps > 0  # holes: read back when the next record shows them
    # tails: no later record shows them; read once their partition has been quiet long enough
    rounds = 0
    while any(engine.log[t][p][engine.shell.reading.next_offsets.get((t, p), 0):] for t, p in engine.assigned()):
        rounds += 1
        assert rounds < 20, "the tails were never read"
        engine.shell.reading.stall_checked, engine.shell.reading.last_seen = 0.0, {tp: 0.0 for tp in engine.assigned()}
        asyncio.run(engine.shell._read_stalled())
        asyncio.run(engine._drain())
    assert len(engine.lost) > 1000 and engine.shell.metrics.refetched == len(engine.lost)
    assert outputs(engine) == reference
    assert len(reference[T.VIOLATION_WARNINGS]) > 30 and reference[T.SHOP_ALERTS]


def test_a_partition_whose_tail_was_skipped_is_read_only_after_it_has_been_quiet(monkeypatch):
    engine = LossyEngine(lambda record: record.topic == T.ORDER_PAID)
    run_files(engine, SCENARIOS[:3])
    paid = {(T.ORDER_PAID, p): len(records) for p, records in engine.log[T.ORDER_PAID].items() if records}
    assert paid and engine.shell.metrics.refetched == 0
    asyncio.run(engine.shell._read_stalled())  # just delivered: not yet quiet
    assert engine.shell.metrics.refetched == 0
    clock = {"now": time.monotonic() + 100}
    monkeypatch.setattr(reading.time, "monotonic", lambda: clock["now"])
    asyncio.run(engine.shell._read_stalled())  # first look: every partition's quiet time starts now
    clock["now"] += reading.STALLED_AFTER_S
    asyncio.run(engine.shell._read_stalled())
    assert {tp: engine.shell.committable(tp) for tp in paid} == paid


def test_what_a_partition_may_commit_is_the_offset_after_its_last_landed_record():
    engine = run_files(InProcessEngine(load_rules()), SCENARIOS[:2])
    shell = engine.shell
    tps = [(T.ORDER_PAID, p) for p in range(8)] + [(T.TRACKING_SCANS, p) for p in range(8)]
    ends = {tp: len(engine.log[tp[0]][tp[1]]) for tp in tps}
    assert any(ends[tp] for tp in tps if tp[0] == T.ORDER_PAID) and any(ends[tp] for tp in tps if tp[0] != T.ORDER_PAID)
    assert {tp: shell.committable(tp) for tp in tps} == {tp: end or None for tp, end in ends.items()}


def test_a_replayed_record_neither_moves_the_commit_back_nor_the_processed_offset():
    engine = run_files(InProcessEngine(load_rules()), SCENARIOS[:1])
    shell = engine.shell
    tp, records = next(((T.ORDER_PAID, p), rs) for p, rs in engine.log[T.ORDER_PAID].items() if len(rs) >= 1)
    before, processed = shell.committable(tp), shell.time.processed[tp]
    asyncio.run(shell.batch(T.ORDER_SIDE, [records[0]]))
    assert shell.committable(tp) == before and shell.time.processed[tp] == processed
    assert shell.metrics.replayed == 1


def test_records_of_a_partition_no_longer_assigned_are_dropped_and_never_committed():
    engine = run_files(InProcessEngine(load_rules()), SCENARIOS[:1])
    shell = engine.shell
    owned = [(t, p) for t, p in engine.assigned() if p != 3]
    engine.assigned = lambda: owned
    shell.on_assigned()
    paid = Record(T.ORDER_PAID, 3, 0, b"late", b'{"not": "read"}')
    asyncio.run(shell.batch(T.ORDER_SIDE, [paid]))
    assert shell.metrics.not_owned == 1 and shell.metrics.dead_letters == 0
    assert shell.committable((T.ORDER_PAID, 3)) is None


def test_a_partition_new_to_the_worker_starts_at_the_groups_committed_offset():
    engine = LossyEngine(lambda record: False)
    run_files(engine)
    shell = engine.shell
    tp, records = next(((T.ORDER_PAID, p), rs) for p, rs in engine.log[T.ORDER_PAID].items() if len(rs) >= 2)

    async def committed():
        return {tp: 0}

    engine.committed = committed
    shell.on_assigned()
    shell.reading.next_offsets.pop(tp)  # as if the partition had just been assigned to us
    shell.reading.landed.pop(tp)
    got = asyncio.run(shell.reading.complete([records[-1]]))
    assert got == records  # from the committed offset 0 on, the last one included


def test_watermarks_go_out_again_when_the_partitions_they_vouch_for_change():
    engine = InProcessEngine(load_rules(), in_band_marks=True)
    shell = engine.shell
    at = datetime(2026, 3, 1, tzinfo=UTC)
    every = engine.assigned()
    half = [(t, p) for t, p in every if p < 4]
    engine.assigned = lambda: half
    first = shell.time.marks(at, at)
    assert first and shell.time.marks(at, at) == []  # the same time for the same partitions: nothing new
    engine.assigned = lambda: every  # took over the other half
    again = shell.time.marks(at, at)
    assert again and all(b'"sources":[0,1,2,3,4,5,6,7]' in o.value for o in again)


def test_watermarks_are_sent_at_most_once_per_interval_and_a_later_tick_sends_the_latest():
    engine = InProcessEngine(load_rules(), in_band_marks=True)
    time_ = engine.shell.time
    time_.mark_interval_s = 60.0
    at = datetime(2026, 3, 1, tzinfo=UTC)
    assert time_.marks(at, at), "the first marks go out at once"
    later = datetime(2026, 3, 2, tzinfo=UTC)
    assert time_.marks(later, later) == [], "within the interval: held back"
    time_.marks_sent_at = {side: sent - 61.0 for side, sent in time_.marks_sent_at.items()}
    again = time_.marks(later, later)
    waybill = [o.value for o in again if o.topic == "shipguard-waybill-feed"]
    assert waybill and all(b'"at":"2026-03-02T00:00:00Z"' in value for value in waybill)


class FaustLikeConsumer:
    """Faust's commit computation, reduced to what `commit_what_landed` relies on."""

    def __init__(self, acked):
        self.asked = []
        self._acked = acked  # the partitions Faust delivered (and acknowledged) records of

    def _new_offset(self, tp):
        self.asked.append(tp)
        return 99  # whatever Faust's acknowledgements would say

    def _filter_tps_with_pending_acks(self, topics=None):
        return (tp for tp in self._acked if topics is None or tp in topics or tp.topic in topics)

    def commit_offsets(self):
        """What Faust's force_commit would commit (its `_filter_committable_offsets`)."""
        offsets = {tp: self._new_offset(tp) for tp in self._filter_tps_with_pending_acks()}
        return {tp: offset for tp, offset in offsets.items() if offset is not None}


def test_the_consumer_commits_what_the_shell_says_landed_and_nothing_where_nothing_landed():
    from faust.types import TP

    consumer = FaustLikeConsumer(acked=[TP("order-paid", 0), TP("order-paid", 1)])
    landed = {("order-paid", 0): 7, ("clock-ticks", 5): 1}  # clock-ticks 5: read by the shell alone
    commit_what_landed(consumer, landed.get, lambda: landed)
    commit_what_landed(consumer, landed.get, lambda: landed)  # once per assignment: the second call changes nothing
    assert consumer.commit_offsets() == {TP("order-paid", 0): 7, TP("clock-ticks", 5): 1}
    assert consumer.asked == [TP("order-paid", 0), TP("order-paid", 1), TP("clock-ticks", 5)]  # Faust's own still runs
