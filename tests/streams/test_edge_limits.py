"""No record stops the worker (issue 15, point 4): a time outside the input window is a dead
letter, ids at their 128-character limit are processed (the shop facts derived from them fit
their own limit), and every state the worker writes reads back equal through the state codec."""

from __future__ import annotations

import asyncio

import orjson

from schemas import codec
from schemas.events import ClockTick
from schemas.shop import ShopState
from streams.cli.replay import parse_line
from streams.inprocess.engine import InProcessEngine
from streams.rules_file import load_rules
from streams.runtime.serde import StateCodec
from tests.factories import PAID, SHIP_BY, cancellation, hours, order_paid, scan, upload

LONG_ORDER = "L" * 128           # cancelled: its fact ids are paid:<128> and cancel:<128>
LONG_OVERDUE = "M" * 128         # left to go overdue: a SHIP_OVERDUE violation with a 128-char order_id
LONG_CANCEL_EVENT = "C" * 128
LATEST = "2099-12-31T23:59:59.999999Z"


def _value(model) -> dict:
    return orjson.loads(codec.dumps(model))


def _line(topic: str, value: dict, key: str | None = None) -> str:
    return orjson.dumps({"topic": topic, "key": key, "value": value}).decode()


HOSTILE = [  # (topic, key, value, the field its dead letter names)
    ("clock-ticks", None, {"at": "0001-01-01T00:00:00+08:00"}, "at"),
    ("order-paid", "H1", {**_value(order_paid("H1")), "ship_by": "9999-12-31T23:59:59-12:00"}, "ship_by"),
    ("order-paid", "H2", {**_value(order_paid("H2")), "paid_at": "2100-12-31T10:00:00Z"}, "paid_at"),
    ("waybill-uploaded", "H3", {**_value(upload("H3", at=PAID)), "uploaded_at": "9999-12-31T23:59:59-12:00"},
     "uploaded_at"),
    ("tracking-scans", "SF1400000000009",
     {**_value(scan("SF1400000000009", at=PAID)), "scan_at": "2101-01-01T00:00:00+08:00"}, "scan_at"),
    ("cancellation-requests", "H4",
     {**_value(cancellation("H4", at=PAID)), "requested_at": "2100-12-31T23:59:59+00:00"}, "requested_at"),
]


def _long_id_lines() -> list[str]:
    request = {**_value(cancellation("R1", at=PAID + hours(1))), "event_id": LONG_CANCEL_EVENT,
               "order_id": LONG_ORDER}
    return [
        _line("order-paid", _value(order_paid(LONG_ORDER, event_id="P" * 128)), LONG_ORDER),
        _line("order-paid", _value(order_paid(LONG_OVERDUE, event_id="Q" * 128)), LONG_OVERDUE),
        _line("cancellation-requests", request, LONG_ORDER),
        _line("clock-ticks", _value(ClockTick.model_validate({"at": SHIP_BY + hours(1)}))),
    ]


def _late_lines() -> list[str]:
    """An order late in 2100 (refused), then one at the window's last instant: its deadlines and
    retention fall in 2100."""
    return [_line("order-paid", {**_value(order_paid("LATE0")), "paid_at": "2100-12-31T10:00:00Z"}, "LATE0"),
            _line("order-paid", {**_value(order_paid("LATE1")), "paid_at": LATEST}, "LATE1"),
            _line("waybill-uploaded", {**_value(upload("LATE1", at=PAID)), "uploaded_at": LATEST}, "LATE1"),
            _line("tracking-scans", {**_value(scan(at=PAID)), "scan_at": LATEST}, "SF1400000000001"),
            _line("clock-ticks", {"at": LATEST})]


def _run(lines: list[str]) -> InProcessEngine:
    engine = InProcessEngine(load_rules())

    async def go() -> None:
        for number, line in enumerate(lines, 1):
            await engine.publish_messages(parse_line(number, line, engine.partitions))
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
    lines = [_line(topic, value, key) for topic, key, value, _ in HOSTILE] + _long_id_lines()
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
    engine = _run(_long_id_lines())
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
    engine = _run(_late_lines())
    (letter,) = engine.output("dead-letters")
    assert letter["error"].startswith("paid_at: time out of range") and "LATE0" not in engine.orders
    order = engine.orders["LATE1"]
    assert order.facts is not None and order.facts.ship_by.year == 2100
    assert order.wake_at is not None and order.wake_at.year == 2100
    _assert_every_state_reads_back_equal(engine)
