"""Records that once stopped the worker (issue 15): times outside the window, ids at their limit,
an order at the window's last instant. Plain data shared by the in-process and broker tiers."""

from __future__ import annotations

import orjson

from schemas import codec
from schemas.events import ClockTick
from tests.factories import PAID, SHIP_BY, cancellation, hours, order_paid, scan, upload

LONG_ORDER = "L" * 128           # cancelled: its fact ids are paid:<128> and cancel:<128>
LONG_OVERDUE = "M" * 128         # left to go overdue: a SHIP_OVERDUE violation with a 128-char order_id
LONG_CANCEL_EVENT = "C" * 128
LATEST = "2099-12-31T23:59:59.999999Z"


def value_of(model) -> dict:
    return orjson.loads(codec.dumps(model))


def line(topic: str, value: dict, key: str | None = None) -> str:
    return orjson.dumps({"topic": topic, "key": key, "value": value}).decode()


HOSTILE = [  # (topic, key, value, the field its dead letter names)
    ("clock-ticks", None, {"at": "0001-01-01T00:00:00+08:00"}, "at"),
    ("order-paid", "H1", {**value_of(order_paid("H1")), "ship_by": "9999-12-31T23:59:59-12:00"}, "ship_by"),
    ("order-paid", "H2", {**value_of(order_paid("H2")), "paid_at": "2100-12-31T10:00:00Z"}, "paid_at"),
    ("waybill-uploaded", "H3", {**value_of(upload("H3", at=PAID)), "uploaded_at": "9999-12-31T23:59:59-12:00"},
     "uploaded_at"),
    ("tracking-scans", "SF1400000000009",
     {**value_of(scan("SF1400000000009", at=PAID)), "scan_at": "2101-01-01T00:00:00+08:00"}, "scan_at"),
    ("cancellation-requests", "H4",
     {**value_of(cancellation("H4", at=PAID)), "requested_at": "2100-12-31T23:59:59+00:00"}, "requested_at"),
]


def long_id_lines() -> list[str]:
    request = {**value_of(cancellation("R1", at=PAID + hours(1))), "event_id": LONG_CANCEL_EVENT,
               "order_id": LONG_ORDER}
    return [
        line("order-paid", value_of(order_paid(LONG_ORDER, event_id="P" * 128)), LONG_ORDER),
        line("order-paid", value_of(order_paid(LONG_OVERDUE, event_id="Q" * 128)), LONG_OVERDUE),
        line("cancellation-requests", request, LONG_ORDER),
        line("clock-ticks", value_of(ClockTick.model_validate({"at": SHIP_BY + hours(1)}))),
    ]


def late_lines() -> list[str]:
    """An order late in 2100 (refused), then one at the window's last instant: its deadlines and
    retention fall in 2100."""
    return [line("order-paid", {**value_of(order_paid("LATE0")), "paid_at": "2100-12-31T10:00:00Z"}, "LATE0"),
            line("order-paid", {**value_of(order_paid("LATE1")), "paid_at": LATEST}, "LATE1"),
            line("waybill-uploaded", {**value_of(upload("LATE1", at=PAID)), "uploaded_at": LATEST}, "LATE1"),
            line("tracking-scans", {**value_of(scan(at=PAID)), "scan_at": LATEST}, "SF1400000000001"),
            line("clock-ticks", {"at": LATEST})]
