"""NOT_DELIVERED (超时未签收): WARNING 6 days after the first scan without DELIVERED, VIOLATION 4 days later."""

from datetime import timedelta

from processors import not_delivered
from processors import order as rules
from processors.facts import order_segments
from tests.drivers import CTX, Order
from tests.factories import PAID, SECOND, days, hours, scan, upload

RULE = "NOT_DELIVERED"
NUMBER = "SF1400000000001"
NEW_NUMBER = "SF1400000000002"
UPLOADED = PAID + hours(2)
PICKED = UPLOADED + hours(3)
WARN_AT = PICKED + days(6)
DEADLINE = WARN_AT + days(4)
LATENESS = timedelta(minutes=10)


def mine(o):
    return [s for s in o.out if s[0] == RULE]


def uploaded(*history, number=NUMBER, at=UPLOADED, **paid):
    """An order whose number was uploaded at `at`, joined with the number's scan history."""
    up = upload(number=number, at=at)
    return Order(**paid).apply(up, None).join(up, *history)


def picked_up(**paid):
    """An uploaded order whose parcel was picked up at PICKED (read at once)."""
    return uploaded(**paid).scans(NUMBER, scan(at=PICKED), now=PICKED)


def delivered(o, at, now=None, number=NUMBER):
    return o.scans(number, scan(number, at=at, status="DELIVERED"), now=at if now is None else now)


def test_a_parcel_never_delivered_warns_six_days_after_its_first_scan_and_violates_four_days_later():
    o = picked_up().at(WARN_AT)
    assert mine(o) == [(RULE, "WARNING", WARN_AT)]
    o.at(DEADLINE)
    assert mine(o) == [(RULE, "WARNING", WARN_AT), (RULE, "VIOLATION", DEADLINE)]


def test_a_number_without_any_scan_gets_no_not_delivered_warning():
    o = uploaded().at(UPLOADED + days(20))
    assert mine(o) == []


def test_nothing_fires_one_second_before_the_warning_time():
    o = picked_up().at(WARN_AT - SECOND)
    assert mine(o) == []


def test_the_violation_waits_until_exactly_the_deadline():
    o = picked_up().at(DEADLINE - SECOND)
    assert mine(o) == [(RULE, "WARNING", WARN_AT)]
    o.at(DEADLINE)
    assert mine(o)[-1] == (RULE, "VIOLATION", DEADLINE)


def test_a_delivery_one_second_before_the_warning_time_prevents_it():
    o = delivered(picked_up(), WARN_AT - SECOND).at(DEADLINE + days(1))
    assert mine(o) == []


def test_a_delivery_exactly_at_the_warning_time_does_not_prevent_it_but_resolves_it():
    o = delivered(picked_up(), WARN_AT).at(DEADLINE + days(1))
    assert mine(o) == [(RULE, "WARNING", WARN_AT), (RULE, "RESOLVED", WARN_AT)]


def test_a_delivery_one_second_after_the_warning_time_resolves_it_at_the_delivery_time():
    o = delivered(picked_up().at(WARN_AT), WARN_AT + SECOND)
    assert mine(o) == [(RULE, "WARNING", WARN_AT), (RULE, "RESOLVED", WARN_AT + SECOND)]


def test_a_delivery_one_second_before_the_deadline_resolves_the_warning():
    o = delivered(picked_up().at(WARN_AT), DEADLINE - SECOND).at(DEADLINE)
    assert mine(o) == [(RULE, "WARNING", WARN_AT), (RULE, "RESOLVED", DEADLINE - SECOND)]


def test_a_delivery_exactly_at_the_deadline_is_too_late_even_when_read_before_the_timer_fired():
    o = delivered(picked_up().at(WARN_AT), DEADLINE, now=DEADLINE - SECOND).at(DEADLINE)
    assert mine(o) == [(RULE, "WARNING", WARN_AT), (RULE, "VIOLATION", DEADLINE)]


def test_a_delivery_after_the_violation_changes_nothing():
    o = delivered(picked_up().at(DEADLINE), DEADLINE + SECOND)
    assert mine(o) == [(RULE, "WARNING", WARN_AT), (RULE, "VIOLATION", DEADLINE)]
    assert not_delivered.evaluate(o.state, DEADLINE + days(5), CTX, order_segments(o.state, CTX.rules)).next_at is None


def test_other_scans_do_not_resolve_it():
    o = picked_up().at(WARN_AT)
    for status in ("IN_TRANSIT", "OUT_FOR_DELIVERY", "FAILED_ATTEMPT", "RETURNED"):
        o.scans(NUMBER, scan(at=WARN_AT + hours(1), status=status), now=WARN_AT + hours(1))
    o.at(DEADLINE)
    assert mine(o) == [(RULE, "WARNING", WARN_AT), (RULE, "VIOLATION", DEADLINE)]


def test_the_six_days_count_from_the_earliest_scan_even_when_it_is_read_after_a_later_one():
    o = uploaded().scans(NUMBER, scan(at=PICKED + days(1), status="IN_TRANSIT"), now=PICKED + days(1))
    o.scans(NUMBER, scan(at=PICKED), now=PICKED + days(1)).at(WARN_AT)
    assert mine(o) == [(RULE, "WARNING", WARN_AT)]


def test_a_delivery_delayed_within_the_lateness_still_prevents_the_warning():
    o = picked_up().scans(NUMBER, scan(at=WARN_AT + LATENESS / 2, status="RETURNED"), now=WARN_AT - LATENESS / 2)
    delivered(o, WARN_AT - SECOND, now=WARN_AT - LATENESS / 2).at(DEADLINE)
    assert mine(o) == []


def test_a_delivery_older_than_the_warning_that_arrives_after_it_resolves_it_at_the_warning_time():
    o = delivered(picked_up().at(WARN_AT), WARN_AT - days(1), now=WARN_AT + hours(1))
    assert mine(o) == [(RULE, "WARNING", WARN_AT), (RULE, "RESOLVED", WARN_AT)]


def test_a_duplicate_delivery_has_no_second_effect():
    o = picked_up().at(WARN_AT)
    delivered(delivered(o, WARN_AT + hours(1)), WARN_AT + hours(1)).at(DEADLINE)
    assert mine(o) == [(RULE, "WARNING", WARN_AT), (RULE, "RESOLVED", WARN_AT + hours(1))]


def test_the_first_scan_may_predate_the_upload():
    first = UPLOADED - days(2)
    o = uploaded(scan(at=first)).at(first + days(6) - SECOND)
    assert mine(o) == []
    o.at(first + days(6))
    assert mine(o) == [(RULE, "WARNING", first + days(6))]


def test_a_parcel_already_overdue_when_its_number_is_uploaded_warns_at_the_upload():
    late_upload = PAID + days(7)
    first = PAID + hours(1)
    o = uploaded(scan(at=first), at=late_upload).at(late_upload)
    assert mine(o) == [(RULE, "WARNING", late_upload)]
    o.at(late_upload + days(4))
    assert mine(o)[-1] == (RULE, "VIOLATION", late_upload + days(4))


def test_a_parcel_delivered_before_its_number_is_uploaded_never_warns():
    late_upload = PAID + days(7)
    o = uploaded(scan(at=PAID + hours(1)), scan(at=PAID + days(6) + hours(2), status="DELIVERED"),
                 at=late_upload).at(late_upload + days(20))
    assert mine(o) == []


def test_a_replacement_number_ends_the_open_warning_and_counts_from_its_own_first_scan():
    o = picked_up().at(WARN_AT)
    replaced = WARN_AT + hours(3)
    new = upload(number=NEW_NUMBER, at=replaced)
    o.apply(new, replaced).join(new, now=replaced)
    assert mine(o) == [(RULE, "WARNING", WARN_AT), (RULE, "RESOLVED", replaced)]
    first_new = replaced + hours(5)
    o.scans(NEW_NUMBER, scan(NEW_NUMBER, at=first_new), now=first_new).at(first_new + days(6))
    assert mine(o)[-1] == (RULE, "WARNING", first_new + days(6))
    ids = [(e.warning_id, e.waybill_no) for e in o.state.emitted if e.rule == RULE]
    assert ids[0] == ids[1] and ids[0][0] != ids[2][0] and ids[2][1] == NEW_NUMBER


def test_the_replacement_resolution_says_waybill_replaced():
    o = picked_up().at(WARN_AT)
    step = rules.apply(o.state, "O1", upload(number=NEW_NUMBER, at=WARN_AT + hours(3)), WARN_AT + hours(3), CTX)
    (resolved,) = [w for w in step.outputs if getattr(w, "rule", None) == RULE]
    assert resolved.evidence["resolution"] == "WAYBILL_REPLACED" and "更换运单号" in resolved.message


def test_a_delivery_of_the_old_number_after_the_replacement_does_not_resolve_anything():
    o = picked_up().at(WARN_AT)
    new = upload(number=NEW_NUMBER, at=WARN_AT + hours(3))
    delivered(o.apply(new, None).join(new), WARN_AT + hours(4))
    assert mine(o) == [(RULE, "WARNING", WARN_AT), (RULE, "RESOLVED", WARN_AT + hours(3))]


def test_a_self_pickup_order_gets_no_not_delivered_warning():
    o = picked_up(delivery_mode="self_pickup").at(DEADLINE + days(1))
    assert mine(o) == []


def test_a_self_pickup_upload_gets_no_not_delivered_warning():
    up = upload(number=None, carrier="SELF_PICKUP", at=UPLOADED)
    o = Order().apply(up, None).at(DEADLINE + days(1))
    assert mine(o) == []


def test_an_invalid_number_gets_no_not_delivered_warning_even_with_scans():
    up = upload(number="SF12345", at=UPLOADED)
    o = Order().apply(up, None).join(up, scan("SF12345", at=PICKED)).at(DEADLINE + days(1))
    assert mine(o) == []


def test_the_warning_names_the_first_scan_and_its_evidence_the_thresholds():
    step = rules.on_time(picked_up().state, WARN_AT, CTX)
    (warning,) = [w for w in step.outputs if w.rule == RULE]
    assert warning.deadline == DEADLINE and warning.waybill_no == NUMBER
    assert "O1" in warning.message and NUMBER in warning.message and "2026-03-02 15:00" in warning.message
    assert warning.evidence["not_delivered_days"] == 6 and warning.evidence["not_delivered_rectify_days"] == 4
    assert warning.evidence["first_scan"]["scan_at"] == "2026-03-02T07:00:00Z"
    assert warning.evidence["delivered_scan"] is None
