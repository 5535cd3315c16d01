"""No record stops the worker (issue 15, point 4): a time outside the input window is a dead
letter, ids at their 128-character limit are processed (the shop facts derived from them fit
their own limit), and every state the worker writes reads back equal through the state codec."""

from __future__ import annotations

import asyncio

from schemas.shop import ShopState
from streams.cli.replay import parse_line
from streams.inprocess.engine import InProcessEngine
from streams.rules_file import load_rules
from streams.runtime.serde import StateCodec
from tests.hostile import HOSTILE, LONG_CANCEL_EVENT, LONG_ORDER, LONG_OVERDUE, late_lines, line, long_id_lines


def _run(lines: list[str]) -> InProcessEngine:
    engine = InProcessEngine(load_rules())

    async def go() -> None:
        for number, text in enumerate(lines, 1):
            await engine.publish_messages(parse_line(number, text, engine.partitions))
    asyncio.run(go())
    return engine


def _assert_every_state_reads_back_equal(engine: InProcessEngine) -> None:
    written = [value for _, _, _, value in engine.changelog if value is not None]
    held = [*engine.orders.values(), *engine.waybills.values(), *engine.shops.values()]
    assert written and held
    for state in written + held:
        serde = StateCodec(type(state))
        assert serde.loads(serde.dumps(state)) == state


def test_a_time_outside_the_window_in_any_input_is_a_dead_letter_and_the_worker_goes_on():
    lines = [line(topic, value, key) for topic, key, value, _ in HOSTILE] + long_id_lines()
    engine = _run(lines)
    letters = engine.output("dead-letters")
    assert len(letters) == len(HOSTILE) - 1 + engine.partitions  # the tick went to every partition
    for topic, _, _, field in HOSTILE:
        errors = [letter["error"] for letter in letters if letter["source_topic"] == topic]
        assert errors and any(e.startswith(f"{field}: time out of range") for e in errors), (topic, errors)
    assert not {"H1", "H2", "H3", "H4"} & set(engine.orders)
    assert LONG_ORDER in engine.orders and LONG_OVERDUE in engine.orders
    _assert_every_state_reads_back_equal(engine)


def test_orders_and_requests_with_ids_at_their_limit_are_processed_and_counted_by_their_shop():
    engine = _run(long_id_lines())
    assert engine.output("dead-letters") == []
    (outcome,) = engine.output("cancellation-outcomes")
    assert outcome["request_event_id"] == LONG_CANCEL_EVENT and outcome["merchant_fault"] is True
    overdue = [w for w in engine.output("violation-warnings") if w["order_id"] == LONG_OVERDUE]
    assert {w["stage"] for w in overdue} == {"WARNING", "VIOLATION"}
    (shop,) = engine.shops.values()
    assert isinstance(shop, ShopState)
    assert {c.fact_id for c in shop.paid} == {f"paid:{LONG_ORDER}", f"paid:{LONG_OVERDUE}"}
    assert [c.fact_id for c in shop.cancelled] == [f"cancel:{LONG_CANCEL_EVENT}"]
    assert [c.fact_id for c in shop.overdue] == [f"overdue:{overdue[0]['warning_id']}"]
    _assert_every_state_reads_back_equal(engine)


def test_an_order_at_the_last_instant_of_the_window_keeps_state_that_reads_back_after_a_restart():
    engine = _run(late_lines())
    (letter,) = engine.output("dead-letters")
    assert letter["error"].startswith("paid_at: time out of range") and "LATE0" not in engine.orders
    order = engine.orders["LATE1"]
    assert order.facts is not None and order.facts.ship_by.year == 2100
    assert order.wake_at is not None and order.wake_at.year == 2100
    _assert_every_state_reads_back_equal(engine)
