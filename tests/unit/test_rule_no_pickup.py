"""NO_PICKUP (揽收超时): WARNING at upload + 24h without a scan, VIOLATION 24h later, RESOLVED by any scan."""

from datetime import timedelta

from processors import no_pickup
from processors import order as rules
from processors.facts import order_segments
from tests.drivers import CTX, Order
from tests.factories import PAID, SECOND, days, hours, scan, upload

RULE = "NO_PICKUP"
NUMBER = "SF1400000000001"
NEW_NUMBER = "SF1400000000002"
UPLOADED = PAID + hours(2)
WARN_AT = UPLOADED + hours(24)
DEADLINE = WARN_AT + hours(24)
LATENESS = timedelta(minutes=10)


def mine(o):
    return [s for s in o.out if s[0] == RULE]


def ids(o):
    return [(e.stage, e.warning_id) for e in o.state.emitted if e.rule == RULE]


def uploaded(*history, number=NUMBER, at=UPLOADED, **paid):
    """An order whose number was uploaded at `at`, joined with the number's scan history."""
    up = upload(number=number, at=at)
    return Order(**paid).apply(up, None).join(up, *history)


def test_a_number_never_scanned_warns_a_day_after_the_upload_and_violates_a_day_later():
    o = uploaded()
    assert o.next == WARN_AT
    o.at(WARN_AT)
    assert mine(o) == [(RULE, "WARNING", WARN_AT)]
    assert o.next == DEADLINE
    o.at(DEADLINE)
    assert mine(o) == [(RULE, "WARNING", WARN_AT), (RULE, "VIOLATION", DEADLINE)]


def test_nothing_fires_one_second_before_the_warning_time():
    o = uploaded().at(WARN_AT - SECOND)
    assert mine(o) == [] and o.next == WARN_AT


def test_a_scan_one_second_before_the_warning_time_prevents_it():
    o = uploaded().scans(NUMBER, scan(at=WARN_AT - SECOND), now=WARN_AT - SECOND).at(DEADLINE + days(1))
    assert mine(o) == []


def test_a_scan_exactly_at_the_warning_time_does_not_prevent_it_but_resolves_it():
    o = uploaded().scans(NUMBER, scan(at=WARN_AT), now=WARN_AT)
    assert mine(o) == [(RULE, "WARNING", WARN_AT), (RULE, "RESOLVED", WARN_AT)]
    o.at(DEADLINE + days(1))
    assert len(mine(o)) == 2


def test_a_scan_one_second_after_the_warning_time_resolves_it_at_the_scan_time():
    o = uploaded().at(WARN_AT).scans(NUMBER, scan(at=WARN_AT + SECOND), now=WARN_AT + SECOND)
    assert mine(o) == [(RULE, "WARNING", WARN_AT), (RULE, "RESOLVED", WARN_AT + SECOND)]


def test_a_scan_one_second_before_the_deadline_resolves_the_warning():
    o = uploaded().at(WARN_AT).scans(NUMBER, scan(at=DEADLINE - SECOND), now=DEADLINE - SECOND).at(DEADLINE)
    assert mine(o) == [(RULE, "WARNING", WARN_AT), (RULE, "RESOLVED", DEADLINE - SECOND)]


def test_the_violation_waits_until_exactly_the_deadline():
    o = uploaded().at(DEADLINE - SECOND)
    assert mine(o) == [(RULE, "WARNING", WARN_AT)] and o.next == DEADLINE
    o.at(DEADLINE)
    assert mine(o)[-1] == (RULE, "VIOLATION", DEADLINE)


def test_a_scan_exactly_at_the_deadline_is_too_late_even_when_read_before_the_timer_fired():
    o = uploaded().at(WARN_AT).scans(NUMBER, scan(at=DEADLINE), now=DEADLINE - SECOND).at(DEADLINE)
    assert mine(o) == [(RULE, "WARNING", WARN_AT), (RULE, "VIOLATION", DEADLINE)]


def test_a_scan_one_second_after_the_deadline_changes_nothing_after_the_violation():
    o = uploaded().at(DEADLINE).scans(NUMBER, scan(at=DEADLINE + SECOND), now=DEADLINE + SECOND)
    assert mine(o) == [(RULE, "WARNING", WARN_AT), (RULE, "VIOLATION", DEADLINE)]


def test_a_scan_from_before_the_upload_counts_and_prevents_the_warning():
    o = uploaded(scan(at=UPLOADED - hours(5))).at(DEADLINE + days(1))
    assert mine(o) == []


def test_a_scan_older_than_the_warning_that_arrives_after_it_resolves_it_at_the_warning_time():
    o = uploaded().at(WARN_AT).scans(NUMBER, scan(at=WARN_AT - hours(3)), now=WARN_AT + hours(1))
    assert mine(o) == [(RULE, "WARNING", WARN_AT), (RULE, "RESOLVED", WARN_AT)]


def test_an_earlier_scan_read_after_a_later_one_within_the_lateness_still_prevents_the_warning():
    o = uploaded()
    o.scans(NUMBER, scan(at=WARN_AT + LATENESS / 2, status="IN_TRANSIT"), now=WARN_AT - LATENESS / 2)
    o.scans(NUMBER, scan(at=WARN_AT - SECOND), now=WARN_AT - LATENESS / 2).at(DEADLINE + days(1))
    assert mine(o) == []


def test_a_scan_later_than_the_lateness_after_the_resolving_one_changes_nothing():
    o = uploaded().at(WARN_AT)
    o.scans(NUMBER, scan(at=WARN_AT + hours(5), status="IN_TRANSIT"), now=WARN_AT + hours(5))
    o.scans(NUMBER, scan(at=WARN_AT + hours(2)), now=WARN_AT + hours(5))
    assert mine(o) == [(RULE, "WARNING", WARN_AT), (RULE, "RESOLVED", WARN_AT + hours(5))]


def test_a_duplicate_scan_and_a_duplicate_upload_have_no_second_effect():
    up = upload(number=NUMBER, at=UPLOADED)
    o = Order().apply(up, None).join(up).apply(up, None).at(WARN_AT)
    picked = scan(at=WARN_AT + hours(1))
    o.scans(NUMBER, picked, now=WARN_AT + hours(1)).scans(NUMBER, picked, now=WARN_AT + hours(1)).at(DEADLINE)
    assert mine(o) == [(RULE, "WARNING", WARN_AT), (RULE, "RESOLVED", WARN_AT + hours(1))]


def test_a_replacement_number_ends_the_open_warning_and_starts_its_own_clock():
    o = uploaded().at(WARN_AT)
    replaced = WARN_AT + hours(3)
    new = upload(number=NEW_NUMBER, at=replaced)
    o.apply(new, replaced).join(new, now=replaced)
    assert mine(o) == [(RULE, "WARNING", WARN_AT), (RULE, "RESOLVED", replaced)]
    o.at(replaced + hours(24))
    assert mine(o)[-1] == (RULE, "WARNING", replaced + hours(24))
    (old_warning, old_end, new_warning) = ids(o)
    assert old_warning[1] == old_end[1] != new_warning[1]
    assert [e.waybill_no for e in o.state.emitted if e.rule == RULE] == [NUMBER, NUMBER, NEW_NUMBER]


def test_the_replacement_resolution_says_waybill_replaced():
    o = uploaded().at(WARN_AT)
    new = upload(number=NEW_NUMBER, at=WARN_AT + hours(3))
    step = rules.apply(o.state, "O1", new, WARN_AT + hours(3), CTX)
    (resolved,) = [w for w in step.outputs if getattr(w, "rule", None) == RULE]
    assert resolved.stage == "RESOLVED" and resolved.evidence["resolution"] == "WAYBILL_REPLACED"
    assert "更换运单号" in resolved.message and NUMBER in resolved.message


def test_a_scan_of_the_old_number_after_the_replacement_does_not_resolve_anything():
    o = uploaded().at(WARN_AT)
    new = upload(number=NEW_NUMBER, at=WARN_AT + hours(3))
    o.apply(new, None).join(new).scans(NUMBER, scan(at=WARN_AT + hours(4)), now=WARN_AT + hours(4))
    assert mine(o) == [(RULE, "WARNING", WARN_AT), (RULE, "RESOLVED", WARN_AT + hours(3))]


def test_a_number_replaced_before_its_warning_time_never_warns():
    new = upload(number=NEW_NUMBER, at=WARN_AT - SECOND)
    o = uploaded().apply(new, None).join(new, scan(NEW_NUMBER, at=WARN_AT)).at(DEADLINE + days(2))
    assert mine(o) == []


def test_a_number_replaced_exactly_at_its_warning_time_never_warns():
    new = upload(number=NEW_NUMBER, at=WARN_AT)
    o = uploaded().apply(new, None).join(new, scan(NEW_NUMBER, at=WARN_AT)).at(DEADLINE + days(2))
    assert mine(o) == []


def test_a_self_pickup_order_gets_no_pickup_warning():
    o = uploaded(delivery_mode="self_pickup").at(DEADLINE + days(1))
    assert mine(o) == []


def test_a_self_pickup_upload_gets_no_pickup_warning():
    up = upload(number=None, carrier="SELF_PICKUP", at=UPLOADED)
    o = Order().apply(up, None).at(DEADLINE + days(1))
    assert mine(o) == []


def test_an_invalid_number_gets_no_pickup_warning():
    up = upload(number="SF12345", at=UPLOADED)
    o = Order().apply(up, None).join(up).at(DEADLINE + days(1))
    assert mine(o) == []


def test_an_order_without_an_upload_gets_no_pickup_warning():
    assert mine(Order().at(DEADLINE + days(1))) == []


def test_no_wake_up_is_left_once_the_violation_is_out():
    o = uploaded().at(DEADLINE)
    assert no_pickup.evaluate(o.state, None, CTX, order_segments(o.state, CTX.rules)).next_at is None


def test_the_warning_names_order_number_and_local_deadline_and_its_evidence_the_thresholds():
    o = uploaded()
    step = rules.on_time(o.state, WARN_AT, CTX)
    (warning,) = [w for w in step.outputs if w.rule == RULE]
    assert warning.deadline == DEADLINE and warning.waybill_no == NUMBER
    assert "O1" in warning.message and NUMBER in warning.message and "2026-03-04 12:00" in warning.message
    assert warning.evidence["pickup_hours"] == 24 and warning.evidence["no_pickup_rectify_hours"] == 24
    assert warning.evidence["upload"]["uploaded_at"] == "2026-03-02T04:00:00Z"
    assert warning.evidence["first_scan"] is None
