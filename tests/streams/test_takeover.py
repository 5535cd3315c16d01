"""A rebalance hands partitions and their state from one worker to another without changing outputs.

docs/delivery.md (Takeover): the shell pauses from a rebalance until the new
assignment's tables are restored; Faust's restore does not read the shell's own changelog
records again over newer state; each side's time starts again when partitions are gained; and
only keys of the partitions a worker serves are scheduled and fired (a table can hold standby
copies of other workers' keys).
"""

import asyncio
from collections import Counter
from datetime import UTC, datetime
from types import SimpleNamespace

from faust.types import TP

from schemas import codec
from schemas.state import OrderState
from streams import topics as T
from streams.inprocess.engine import InProcessEngine
from streams.rules_file import load_rules
from streams.runtime.app import _state_store
from streams.runtime.serde import KeyCodec, StateCodec
from streams.worker.stores import StateStore
from tests.factories import order_paid
from tests.streams.conftest import SCENARIOS, run_files

AT = datetime(2026, 3, 1, tzinfo=UTC)


def paid_record(engine, order_id="takeover-1"):
    """A valid order-paid record appended to the engine's log (not yet delivered)."""
    return engine._append(T.ORDER_PAID, order_id.encode(), codec.dumps(order_paid(order_id, at=AT)), None)


def applied(engine, order_id="takeover-1"):
    """Whether the order's state is in the store."""
    return order_id in engine.orders


def test_a_paused_worker_processes_no_batch_until_the_restore_ends_and_then_processes_it():
    engine = InProcessEngine(load_rules())
    shell = engine.shell
    record = paid_record(engine)

    async def go():
        await shell.pause()
        batch = asyncio.create_task(shell.batch(T.ORDER_SIDE, [record]))
        await asyncio.sleep(0.2)
        waited = not batch.done() and shell.committable((record.topic, record.partition)) is None
        waited = waited and not applied(engine)
        await shell.tick()  # the clock does nothing while paused either
        shell.resume()
        await asyncio.wait_for(batch, 2)
        return waited

    assert asyncio.run(go())
    assert applied(engine) and engine.output(T.DEAD_LETTERS) == [], "the batch, processed after the restore, applies"
    assert shell.committable((record.topic, record.partition)) == record.offset + 1
    assert shell.metrics.consumed[T.ORDER_PAID] == 1 and shell.metrics.deferred == 0


def test_a_batch_waiting_when_the_next_rebalance_starts_is_dropped_uncommitted_for_a_later_read():
    engine = InProcessEngine(load_rules())
    shell = engine.shell
    rebalances = {"count": 1}
    engine.rebalances = lambda: rebalances["count"]
    record = paid_record(engine)

    async def go():
        await shell.pause()
        batch = asyncio.create_task(shell.batch(T.ORDER_SIDE, [record]))
        await asyncio.sleep(0.1)
        rebalances["count"] += 1  # Faust waits for the batch before it revokes: it must end
        await asyncio.wait_for(batch, 2)
        dropped = not applied(engine) and shell.committable((record.topic, record.partition)) is None
        shell.resume()  # the new assignment restored: the record is read again
        await asyncio.wait_for(shell.batch(T.ORDER_SIDE, [record]), 2)
        return dropped

    assert asyncio.run(go())
    assert shell.metrics.deferred == 1 and shell.metrics.consumed[T.ORDER_PAID] == 1
    assert applied(engine) and engine.output(T.DEAD_LETTERS) == [], "the later read applies the dropped batch's order"
    assert shell.committable((record.topic, record.partition)) == record.offset + 1


def test_keys_of_partitions_the_worker_does_not_serve_are_neither_scheduled_nor_fired():
    engine = run_files(InProcessEngine(load_rules()), SCENARIOS)
    shell = engine.shell
    waiting = {key: state for key, state in engine.orders.items() if state.wake_at is not None}
    assert ({s.partition for s in waiting.values()} & {0, 1, 2, 3}
            and {s.partition for s in waiting.values()} - {0, 1, 2, 3})
    half = [(t, p) for t, p in engine.assigned() if p < 4]
    engine.assigned = lambda: half
    shell.rebuild_deadlines()
    orders = shell.sides[T.ORDER_SIDE]
    assert set(orders.deadlines.due_at) == {k for k, s in waiting.items() if s.partition < 4}
    for key in waiting:  # as if a stale heap held them all
        orders.deadlines.set(key, AT)
    judged = []

    def on_time(state, now):
        judged.append(state.partition)
        return SimpleNamespace(next_deadline=None, state=state, outputs=[])

    orders.on_time = on_time
    shell.runner.fire(orders, AT.replace(year=2027))
    assert judged and set(judged) <= {0, 1, 2, 3}
    others = [k for k, s in waiting.items() if s.partition >= 4]
    assert all(engine.orders[k] == waiting[k] for k in others)  # not touched


def test_each_sides_time_starts_again_when_the_worker_gains_partitions_and_not_when_it_loses_some():
    engine = InProcessEngine(load_rules())
    shell = engine.shell
    every = engine.assigned()
    half = [(t, p) for t, p in every if p < 4]

    def clocks():
        return shell.time.order_clock, shell.time.waybill_clock, shell.time.shop_clock

    engine.assigned = lambda: half
    shell.on_assigned()
    for clock in clocks():
        clock.advance(AT)
    engine.assigned = lambda: every  # took over the other half: their feeds are not read yet
    shell.on_assigned()
    assert [c.current for c in clocks()] == [None] * 3
    for clock in clocks():
        clock.advance(AT)
    engine.assigned = lambda: half  # gave half away: what was read still bounds the rest
    shell.on_assigned()
    assert [c.current for c in clocks()] == [AT] * 3


class _Recovery:
    def __init__(self):
        self.active_offsets = Counter()


class _Changelog:
    def get_topic_name(self):
        return "shipguard-orders-changelog"


class _Table:
    def __init__(self):
        self.data = {}
        self.key_serializer, self.value_serializer = KeyCodec(), StateCodec(OrderState)
        self.changelog_topic = _Changelog()


class _Meta:
    def __init__(self, topic, partition, offset):
        self.topic, self.partition, self.offset = topic, partition, offset


def test_each_changelog_record_the_shell_writes_moves_fausts_restore_offset_forward_never_back():
    recovery = _Recovery()
    offsets = iter([7, 3, 9])  # the broker's answers, one per record (the second one late)

    async def produce(topic, key, value, partition):
        future = asyncio.get_running_loop().create_future()
        future.set_result(_Meta(topic, partition, next(offsets)))
        return future

    store = _state_store(_Table(), False, produce, recovery)

    async def go():
        for n in range(3):
            store.put(f"o{n}", OrderState(order_id=f"o{n}", partition=2), 2)
            await store.flush()

    asyncio.run(go())
    assert recovery.active_offsets == Counter({TP("shipguard-orders-changelog", 2): 9})
    assert set(store.data.mapping) == {"o0", "o1", "o2"}


def test_a_partition_the_group_had_read_to_its_end_before_it_came_to_us_does_not_hold_stream_time():
    engine = run_files(InProcessEngine(load_rules()), SCENARIOS[:2])
    shell = engine.shell
    before = asyncio.run(shell.time.confirmed_local_time())
    tp = next((T.ORDER_PAID, p) for p, records in engine.log[T.ORDER_PAID].items() if records)
    shell.time.processed.pop(tp)  # as if gained in a takeover: read to its end by its last owner,
    shell.time.clock.latest.pop(tp)  # nothing of it delivered to this worker
    engine.start_offset = lambda tp: 0  # and the consumer does not know the committed offset

    async def committed():
        return {tp: len(engine.log[tp[0]][tp[1]])}

    engine.committed = committed
    shell.on_assigned()
    assert before is not None and asyncio.run(shell.time.confirmed_local_time()) is not None
    assert shell.reading.first_offset(tp) == len(engine.log[tp[0]][tp[1]])


def test_a_worker_that_gains_partitions_read_to_their_end_takes_up_their_stream_time():
    first = InProcessEngine(load_rules())
    run_files(first, SCENARIOS)
    before = asyncio.run(first.shell.time.confirmed_local_time())
    written = first.shell.stores.clocks.data.mapping
    assert before is not None and max(c.at for c in written.values()) == before

    restarted = InProcessEngine(load_rules())  # nothing left to read: every partition committed to its end
    restarted.log = first.log
    restarted.shell.stores.clocks = StateStore(dict(written), None)

    async def committed():
        return {(t, p): len(records) for t, partitions in first.log.items() for p, records in partitions.items()}

    restarted.committed = committed
    restarted.shell.on_assigned()
    restarted.shell.resume()
    assert asyncio.run(restarted.shell.time.confirmed_local_time()) == before
