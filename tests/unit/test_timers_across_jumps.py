"""Every timer fires however far stream time moves in one step: one jump emits what small steps emit.

The contract's Time section: a timer at T fires once the horizon has reached T, "however far
stream time moves in one step: retention never removes state whose timer has not fired yet".
Each scenario below is one order's (or shop's) events read before any time is known (event mode);
then the horizon either jumps 31 or 90 days past the last event at once, or walks there a day at a time.
"""

from datetime import datetime, timedelta

import pytest

from processors import order as rules
from processors import shop_alerts
from processors.waybill import scan_fact
from schemas.internal import ScansForOrder
from schemas.outputs import CancellationOutcome
from schemas.shop import ShopFact
from tests.drivers import CTX
from tests.factories import PAID, WARN_AT, cancellation, days, hours, order_paid, scan, upload

NUMBER = "SF1400000000001"
LATENESS = timedelta(minutes=10)


def _shipped(*scan_offsets_and_statuses):
    up = upload(at=PAID + hours(2))
    scans = [scan(NUMBER, at=PAID + offset, status=status) for offset, status in scan_offsets_and_statuses]
    return [order_paid(), up, ("join", up, scans)]


# one order each: the events it reads, in order (("join", upload, scans) is the waybill side's answer)
SCENARIOS = {
    "a request for an order that never arrives": [cancellation(at=PAID)],
    "two requests for an order that never arrives, a day apart": [
        cancellation(at=PAID), cancellation(at=PAID + days(1), reason="QUALITY_ISSUE")],
    "an order never shipped": [order_paid()],
    "an order never shipped, cancelled after its ship WARNING": [
        order_paid(), cancellation(at=WARN_AT + hours(1))],
    "an order picked up and never delivered": _shipped((hours(5), "PICKED_UP"), (hours(20), "IN_TRANSIT")),
    "a delivered order": _shipped((hours(5), "PICKED_UP"), (days(2), "DELIVERED")),
    "a delivered order with a late request": [
        *_shipped((hours(5), "PICKED_UP"), (days(2), "DELIVERED")), cancellation(at=PAID + days(3))],
    "a shipped order with a logistics request and no evidence": [
        *_shipped((hours(5), "PICKED_UP")), cancellation(at=PAID + days(1), reason="LOGISTICS_EXCEPTION")],
}


def _read(events):
    """The order's state after reading `events` with no time known yet, and when they end."""
    state, last = None, PAID
    for event in events:
        if isinstance(event, tuple):
            _, up, scans = event
            event = ScansForOrder(order_id="O1", waybill_no=up.waybill_no, join_for=up.event_id,
                                  scans=tuple(scan_fact(s) for s in scans))
            last = max([last, *(s.scan_at for s in scans)])
        else:
            last = max(last, rules.event_time(event) or last)
        state = rules.apply(state, "O1", event, None, CTX).state
    return state, last


def _walk(state, instants):
    """Run `on_time` at each instant while the order exists: every output, the last step."""
    outputs, step = [], None
    for now in instants:
        if state is None:
            break
        step = rules.on_time(state, now, CTX)
        state = step.state
        outputs += step.outputs
    return outputs, step


def _per_topic(outputs):
    """The outputs as each topic (or internal feed) sees them: one ordered list per kind."""
    topics: dict[str, list[dict]] = {}
    for output in outputs:
        topics.setdefault(type(output).__name__, []).append(output.model_dump())
    return topics


def _daily(start: datetime, end: datetime):
    now = start
    while now < end:
        now = min(now + days(1), end)
        yield now


@pytest.mark.parametrize("jump", [days(31), days(90)], ids=["31 days", "90 days"])
def test_one_jump_of_stream_time_emits_what_stepping_day_by_day_emits_and_leaves_nothing(jump):
    for name, events in SCENARIOS.items():
        state, last = _read(events)
        jumped, jump_step = _walk(state, [last + jump])
        stepped, walk_step = _walk(state, _daily(last - days(1), last + jump))
        assert _per_topic(jumped) == _per_topic(stepped), name
        assert jump_step.state is None and jump_step.next_deadline is None, name
        assert walk_step.state is None and walk_step.next_deadline is None, name


@pytest.mark.parametrize("jump", [days(25), days(31), days(90)], ids=["25 days", "31 days", "90 days"])
def test_a_request_for_an_order_that_never_arrives_is_rejected_order_unknown_however_far_time_jumps(jump):
    state = rules.apply(None, "O9", cancellation("O9", at=PAID), None, CTX).state
    step = rules.on_time(state, PAID + jump, CTX)
    decided = [o for o in step.outputs if isinstance(o, CancellationOutcome)]
    assert [(o.decision, o.code, o.order_status) for o in decided] == [("REJECTED", "ORDER_UNKNOWN", "UNKNOWN")]
    assert decided[0].decided_at == PAID + LATENESS
    if jump > CTX.rules.order_retention:
        assert step.state is None and step.next_deadline is None


def _shop_facts():
    """A shop's week: 24 orders, three merchant-fault cancellations (above 2.5 %) and two overdue."""
    facts = []
    for n in range(24):
        at = PAID + hours(5 * n)
        facts.append(ShopFact(kind="ORDER_PAID", fact_id=f"paid-{n}", shop_id="shopA", platform="douyin",
                              order_id=f"O{n}", at=at, ship_by=at + hours(48)))
    for n, at in ((1, days(4)), (2, days(4) + hours(1)), (3, days(5))):
        facts.append(ShopFact(kind="MERCHANT_FAULT_CANCEL", fact_id=f"cancel-{n}", shop_id="shopA",
                              platform="douyin", order_id=f"O{n}", at=PAID + at))
    for n, at in ((4, days(6)), (5, days(6) + hours(2))):
        facts.append(ShopFact(kind="SHIP_OVERDUE_VIOLATION", fact_id=f"overdue-{n}", shop_id="shopA",
                              platform="douyin", order_id=f"O{n}", at=PAID + at))
    return facts


@pytest.mark.parametrize("jump", [days(31), days(90)], ids=["31 days", "90 days"])
def test_one_jump_of_a_shops_horizon_alerts_as_stepping_day_by_day_does_and_deletes_the_shop(jump):
    state, rules_config = None, CTX.rules
    for fact in _shop_facts():
        state = shop_alerts.apply(state, fact, None, rules_config).state
    last = max(f.at for f in _shop_facts())
    runs = []
    for instants in ([last + jump], _daily(PAID, last + jump)):
        current, alerts, step = state, [], None
        for now in instants:
            if current is None:
                break
            step = shop_alerts.on_time(current, now, rules_config)
            current, alerts = step.state, alerts + step.outputs
        assert step is not None and step.state is None and step.next_deadline is None
        runs.append([a.model_dump() for a in alerts])
    jumped, stepped = runs
    assert jumped == stepped and [(a["metric"], a["stage"]) for a in jumped] == [
        ("SELLER_FAULT_CANCEL_RATE", "WARNING"), ("LATE_DISPATCH_RATE", "WARNING")]
