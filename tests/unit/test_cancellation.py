"""Cancellation review: each of the seven checks, their precedence, timing, refunds and duplicates."""

from dataclasses import replace
from datetime import timedelta

import pytest

from processors import order as rules
from schemas.outputs import CancellationOutcome
from tests.drivers import CTX, Order
from tests.factories import PAID, SHIP_BY, WARN_AT, cancellation, hours, order_paid, scan, upload

LATENESS = timedelta(minutes=10)
NUMBER = "SF1400000000001"
WALL_CTX = replace(CTX, decide_on_read=True)  # the worker in wall clock mode: the review decides on read


def outcomes(step_outputs):
    return [o for o in step_outputs if isinstance(o, CancellationOutcome)]


class Reviewed(Order):
    """The order driver that also keeps the cancellation outcomes."""

    def __init__(self, ctx=CTX, **paid):
        self.decisions = []
        super().__init__(ctx=ctx, **paid)

    def apply(self, event, now):
        step = rules.apply(self.state, "O1", event, now, self.ctx)
        self.state, self.next = step.state, step.next_deadline
        self.decisions += outcomes(step.outputs)
        self.out += [(o.rule, o.stage, o.occurred_at) for o in step.outputs if hasattr(o, "stage")]
        return self

    def at(self, now):
        step = rules.on_time(self.state, now, self.ctx)
        self.state, self.next = step.state, step.next_deadline
        self.decisions += outcomes(step.outputs)
        self.out += [(o.rule, o.stage, o.occurred_at) for o in step.outputs if hasattr(o, "stage")]
        return self

    def codes(self):
        return [(o.decision, o.code) for o in self.decisions]


def shipped(*scans):
    up = upload(at=PAID + hours(2))
    return Reviewed().apply(up, None).join(up, *scans)


def test_out_of_stock_before_pickup_is_approved_with_the_paid_amount_refunded_and_merchant_fault():
    o = Reviewed().apply(cancellation(at=PAID + hours(3)), None).at(PAID + hours(3))
    (outcome,) = o.decisions
    assert (outcome.decision, outcome.code, outcome.order_status) == ("APPROVED", "APPROVED", "CANCELLED")
    assert str(outcome.refund.amount) == "129.00" and outcome.refund.currency == "CNY" and outcome.merchant_fault
    assert outcome.decided_at == PAID + hours(3) and "取消" in outcome.explanation


def test_a_request_is_judged_only_once_stream_time_reaches_it():
    o = Reviewed().apply(cancellation(at=PAID + hours(3)), PAID + hours(3) - timedelta(seconds=1))
    assert o.decisions == [] and o.next == PAID + hours(3)


def test_in_wall_mode_a_request_on_a_known_order_is_decided_when_it_is_read():
    o = Reviewed(ctx=WALL_CTX).apply(cancellation(at=PAID + hours(3)), PAID + hours(3) - LATENESS)
    assert o.codes() == [("APPROVED", "APPROVED")] and o.decisions[0].decided_at == PAID + hours(3)


def test_in_wall_mode_a_request_for_an_unknown_order_still_waits_the_lateness():
    step = rules.apply(None, "O9", cancellation("O9", at=PAID), PAID - LATENESS, WALL_CTX)
    assert outcomes(step.outputs) == [] and step.next_deadline == PAID + LATENESS


@pytest.mark.parametrize("reason, fault", [("QUALITY_ISSUE", True), ("OTHER", True), ("LOGISTICS_EXCEPTION", False)])
def test_merchant_fault_follows_the_reason(reason, fault):
    o = shipped(scan(at=PAID + hours(4), status="EXCEPTION")) if reason == "LOGISTICS_EXCEPTION" else Reviewed()
    o.apply(cancellation(at=PAID + hours(5), reason=reason, detail="买家不想要了"), None).at(PAID + hours(5))
    assert [(d.code, d.merchant_fault) for d in o.decisions] == [("APPROVED", fault)]


def test_a_second_request_after_an_approval_is_already_cancelled():
    o = Reviewed().apply(cancellation(at=PAID + hours(3)), None)
    o.apply(cancellation(at=PAID + hours(4), reason="OTHER", detail="重复申请一下"), None).at(PAID + hours(5))
    assert o.codes() == [("APPROVED", "APPROVED"), ("REJECTED", "ALREADY_CANCELLED")]


def test_a_delivered_parcel_cannot_be_cancelled_even_after_the_order_was_closed():
    o = shipped(scan(at=PAID + hours(4)), scan(at=PAID + hours(20), status="DELIVERED"))
    o.at(PAID + hours(21))
    assert o.state.closed
    o.apply(cancellation(at=PAID + hours(30), reason="QUALITY_ISSUE", detail="破损"), None).at(PAID + hours(30))
    assert o.codes() == [("REJECTED", "ALREADY_DELIVERED")] and o.decisions[0].order_status == "DELIVERED"


@pytest.mark.parametrize("detail, code", [("   ", "DETAIL_REQUIRED"), ("不 想 要", "DETAIL_REQUIRED"),
                                          ("不想要了", "APPROVED")])
def test_other_needs_four_non_blank_characters_of_detail(detail, code):
    o = Reviewed().apply(cancellation(at=PAID + hours(3), reason="OTHER", detail=detail), None).at(PAID + hours(3))
    assert o.codes()[0][1] == code


def test_logistics_exception_needs_evidence_in_the_scans_or_a_logistics_warning():
    o = shipped(scan(at=PAID + hours(4)))
    o.apply(cancellation(at=PAID + hours(10), reason="LOGISTICS_EXCEPTION"), None).at(PAID + hours(10))
    assert o.codes() == [("REJECTED", "NO_LOGISTICS_EVIDENCE")]


def test_a_stall_warning_before_the_request_is_logistics_evidence():
    o = shipped(scan(at=PAID + hours(4)))  # PICKED_UP, then nothing: stalled after 24h
    o.apply(cancellation(at=PAID + hours(30), reason="LOGISTICS_EXCEPTION"), None).at(PAID + hours(30))
    assert ("STALLED_AFTER_PICKUP", "WARNING", PAID + hours(28)) in o.out
    assert o.codes() == [("APPROVED", "APPROVED")]
    assert ("STALLED_AFTER_PICKUP", "RESOLVED", PAID + hours(30)) in o.out


def test_out_of_stock_after_the_carrier_scanned_the_parcel_is_in_transit():
    o = shipped(scan(at=PAID + hours(4)))
    o.apply(cancellation(at=PAID + hours(5)), None).at(PAID + hours(5))
    assert o.codes() == [("REJECTED", "IN_TRANSIT")]


def test_a_scan_joined_by_an_upload_after_the_request_does_not_count_as_scanned_before_it():
    early = scan(at=PAID + hours(1))
    o = Reviewed().apply(cancellation(at=PAID + hours(3)), None)
    up = upload(at=PAID + hours(4))
    o.apply(up, None).join(up, early).at(PAID + hours(4))
    assert o.codes() == [("APPROVED", "APPROVED")]


def test_precedence_delivered_wins_over_a_missing_detail():
    o = shipped(scan(at=PAID + hours(4), status="DELIVERED"))
    o.apply(cancellation(at=PAID + hours(6), reason="OTHER", detail=""), None).at(PAID + hours(6))
    assert o.codes() == [("REJECTED", "ALREADY_DELIVERED")]


def test_an_approval_resolves_open_warnings_at_the_request_and_stops_new_ones():
    o = Reviewed().at(WARN_AT)
    o.apply(cancellation(at=WARN_AT + hours(1)), None).at(SHIP_BY + hours(5))
    assert o.out == [("SHIP_OVERDUE", "WARNING", WARN_AT), ("SHIP_OVERDUE", "RESOLVED", WARN_AT + hours(1))]


def test_a_request_for_an_unknown_order_waits_the_lateness_then_is_order_unknown():
    step = rules.apply(None, "O9", cancellation("O9", at=PAID), PAID, CTX)
    assert outcomes(step.outputs) == [] and step.next_deadline == PAID + LATENESS
    step = rules.on_time(step.state, PAID + LATENESS, CTX)
    (outcome,) = outcomes(step.outputs)
    assert (outcome.code, outcome.decided_at, outcome.refund) == ("ORDER_UNKNOWN", PAID + LATENESS, None)


def test_an_order_paid_within_the_lateness_is_reviewed_normally_at_the_end_of_the_wait():
    step = rules.apply(None, "O9", cancellation("O9", at=PAID + hours(1)), PAID + hours(1), CTX)
    step = rules.apply(step.state, "O9", order_paid("O9"), PAID + hours(1) + timedelta(minutes=5), CTX)
    assert outcomes(step.outputs) == []
    step = rules.on_time(step.state, PAID + hours(1) + LATENESS, CTX)
    (outcome,) = outcomes(step.outputs)
    assert (outcome.code, outcome.decided_at) == ("APPROVED", PAID + hours(1) + LATENESS)


def test_the_same_request_twice_gives_one_outcome():
    request = cancellation(at=PAID + hours(3))
    o = Reviewed().apply(request, None).apply(request, None).at(PAID + hours(3)).apply(request, PAID + hours(4))
    assert len(o.decisions) == 1
