"""STALLED_AFTER_PICKUP (揽收后无更新) and TRACKING_STALLED (轨迹长时间未更新): a scan, then silence."""

from datetime import timedelta

import pytest

from processors import order as rules
from processors import stalls
from processors.facts import order_segments
from tests.drivers import CTX, Order
from tests.factories import PAID, SECOND, days, hours, scan, upload

AFTER_PICKUP, TRACKING = "STALLED_AFTER_PICKUP", "TRACKING_STALLED"
NUMBER = "SF1400000000001"
NEW_NUMBER = "SF1400000000002"
UPLOADED = PAID + hours(2)
PICKED = UPLOADED + hours(3)
WARN_AT = PICKED + hours(24)
DEADLINE = WARN_AT + hours(24)
LATENESS = timedelta(minutes=10)


def mine(o):
    return [s for s in o.out if s[0] in (AFTER_PICKUP, TRACKING)]


def emitted(o):
    return [(e.rule, e.stage, e.warning_id) for e in o.state.emitted if e.rule in (AFTER_PICKUP, TRACKING)]


def recipient(province, city="杭州市"):
    return {"name": "张三", "phone": "13812345678", "province": province, "city": city, "address": "文三路 100 号"}


def uploaded(*history, number=NUMBER, at=UPLOADED, **paid):
    """An order whose number was uploaded at `at`, joined with the number's scan history."""
    up = upload(number=number, at=at)
    return Order(**paid).apply(up, None).join(up, *history)


def picked_up(**paid):
    """An uploaded order whose parcel was picked up at PICKED (read at once)."""
    return uploaded(**paid).scans(NUMBER, scan(at=PICKED), now=PICKED)


def test_a_parcel_picked_up_and_never_scanned_again_warns_after_a_day_and_violates_a_day_later():
    o = picked_up()
    assert o.next == WARN_AT
    o.at(WARN_AT)
    assert mine(o) == [(AFTER_PICKUP, "WARNING", WARN_AT)]
    o.at(DEADLINE)
    assert mine(o) == [(AFTER_PICKUP, "WARNING", WARN_AT), (AFTER_PICKUP, "VIOLATION", DEADLINE)]


def test_nothing_fires_one_second_before_the_warning_time():
    o = picked_up().at(WARN_AT - SECOND)
    assert mine(o) == [] and o.next == WARN_AT


def test_the_violation_waits_until_exactly_the_deadline():
    o = picked_up().at(DEADLINE - SECOND)
    assert mine(o) == [(AFTER_PICKUP, "WARNING", WARN_AT)] and o.next == DEADLINE
    o.at(DEADLINE)
    assert mine(o)[-1] == (AFTER_PICKUP, "VIOLATION", DEADLINE)


def test_a_next_scan_one_second_before_the_warning_time_prevents_it():
    o = picked_up().scans(NUMBER, scan(at=WARN_AT - SECOND, status="IN_TRANSIT"), now=WARN_AT - SECOND)
    o.at(DEADLINE)
    assert mine(o) == []


def test_a_next_scan_exactly_at_the_warning_time_does_not_prevent_it_but_resolves_it():
    o = picked_up().scans(NUMBER, scan(at=WARN_AT, status="IN_TRANSIT"), now=WARN_AT)
    assert mine(o) == [(AFTER_PICKUP, "WARNING", WARN_AT), (AFTER_PICKUP, "RESOLVED", WARN_AT)]


def test_a_next_scan_one_second_after_the_warning_time_resolves_it_at_the_scan_time():
    o = picked_up().at(WARN_AT).scans(NUMBER, scan(at=WARN_AT + SECOND, status="IN_TRANSIT"), now=WARN_AT + SECOND)
    assert mine(o) == [(AFTER_PICKUP, "WARNING", WARN_AT), (AFTER_PICKUP, "RESOLVED", WARN_AT + SECOND)]


def test_a_next_scan_one_second_before_the_deadline_resolves_the_warning():
    o = picked_up().at(WARN_AT)
    o.scans(NUMBER, scan(at=DEADLINE - SECOND, status="IN_TRANSIT"), now=DEADLINE - SECOND).at(DEADLINE)
    assert mine(o) == [(AFTER_PICKUP, "WARNING", WARN_AT), (AFTER_PICKUP, "RESOLVED", DEADLINE - SECOND)]


def test_a_next_scan_exactly_at_the_deadline_leaves_the_violation_and_starts_a_new_stall():
    o = picked_up().at(WARN_AT)
    o.scans(NUMBER, scan(at=DEADLINE, status="IN_TRANSIT"), now=DEADLINE - SECOND).at(DEADLINE)
    assert mine(o) == [(AFTER_PICKUP, "WARNING", WARN_AT), (AFTER_PICKUP, "VIOLATION", DEADLINE)]
    o.at(DEADLINE + hours(48))
    assert mine(o)[-1] == (TRACKING, "WARNING", DEADLINE + hours(48))


@pytest.mark.parametrize("status, rest", [("IN_TRANSIT", 48), ("FAILED_ATTEMPT", 48), ("EXCEPTION", 48),
                                          ("OUT_FOR_DELIVERY", 24)])
def test_a_parcel_resting_after_a_transit_or_delivery_scan_is_tracking_stalled(status, rest):
    moved = PICKED + hours(5)
    o = picked_up().scans(NUMBER, scan(at=moved, status=status), now=moved)
    o.at(moved + hours(rest) - SECOND)
    assert mine(o) == []
    o.at(moved + hours(rest))
    assert mine(o) == [(TRACKING, "WARNING", moved + hours(rest))]
    o.at(moved + hours(rest + 24))
    assert mine(o)[-1] == (TRACKING, "VIOLATION", moved + hours(rest + 24))


@pytest.mark.parametrize("province, rest", [("浙江省", 48), ("内蒙古自治区", 72), ("甘肃省", 72), ("海南", 72),
                                            ("新疆维吾尔自治区", 120), ("西藏自治区", 120)])
def test_an_in_transit_parcel_may_rest_longer_on_its_way_to_a_remote_province(province, rest):
    moved = PICKED + hours(5)
    o = picked_up(recipient=recipient(province)).scans(NUMBER, scan(at=moved, status="IN_TRANSIT"), now=moved)
    o.at(moved + hours(rest) - SECOND)
    assert mine(o) == []
    o.at(moved + hours(rest))
    assert mine(o) == [(TRACKING, "WARNING", moved + hours(rest))]


@pytest.mark.parametrize("province", ["新疆维吾尔自治区", "内蒙古自治区"])
def test_out_for_delivery_and_picked_up_keep_their_24_hours_in_remote_provinces(province):
    o = picked_up(recipient=recipient(province)).at(WARN_AT)
    assert mine(o) == [(AFTER_PICKUP, "WARNING", WARN_AT)]
    out = DEADLINE + hours(1)
    o.scans(NUMBER, scan(at=out, status="OUT_FOR_DELIVERY"), now=out).at(out + hours(24))
    assert mine(o)[-1] == (TRACKING, "WARNING", out + hours(24))


def test_remoteness_comes_from_the_recipients_province_not_from_the_scans():
    moved = PICKED + hours(5)
    in_xinjiang = scan(at=moved, status="IN_TRANSIT", city="乌鲁木齐市").model_copy(update={"province": "新疆"})
    o = picked_up().scans(NUMBER, in_xinjiang, now=moved).at(moved + hours(48))
    assert mine(o) == [(TRACKING, "WARNING", moved + hours(48))]


@pytest.mark.parametrize("status", ["DELIVERED", "RETURNED"])
def test_no_stall_follows_a_delivered_or_returned_scan(status):
    done = PICKED + hours(5)
    o = picked_up().scans(NUMBER, scan(at=done, status=status), now=done).at(done + days(20))
    assert mine(o) == []


def test_a_resolved_stall_then_a_new_stall_from_the_next_scan_has_a_new_warning_id():
    o = picked_up().at(WARN_AT)
    moved = WARN_AT + hours(6)
    o.scans(NUMBER, scan(at=moved, status="IN_TRANSIT"), now=moved).at(moved + hours(48))
    assert mine(o) == [(AFTER_PICKUP, "WARNING", WARN_AT), (AFTER_PICKUP, "RESOLVED", moved),
                       (TRACKING, "WARNING", moved + hours(48))]
    first, resolved, second = emitted(o)
    assert first[2] == resolved[2] != second[2]


def test_two_stalls_of_the_same_rule_have_different_warning_ids():
    o = picked_up().scans(NUMBER, scan(at=PICKED + hours(1), status="IN_TRANSIT"), now=PICKED + hours(1))
    second = PICKED + hours(60)
    o.at(PICKED + hours(49)).scans(NUMBER, scan(at=second, status="IN_TRANSIT"), now=second).at(second + hours(48))
    assert [s[1] for s in mine(o)] == ["WARNING", "RESOLVED", "WARNING"]
    ids = [wid for _, _, wid in emitted(o)]
    assert ids[0] == ids[1] != ids[2]


def test_a_violation_does_not_re_arm_by_itself():
    o = picked_up().at(DEADLINE).at(DEADLINE + days(20))
    assert mine(o) == [(AFTER_PICKUP, "WARNING", WARN_AT), (AFTER_PICKUP, "VIOLATION", DEADLINE)]
    assert stalls.evaluate(o.state, DEADLINE + days(20), CTX, order_segments(o.state, CTX.rules)).next_at is None


def test_a_scan_after_a_violation_does_not_resolve_it_but_starts_a_new_occurrence():
    o = picked_up().at(DEADLINE)
    moved = DEADLINE + hours(10)
    o.scans(NUMBER, scan(at=moved, status="IN_TRANSIT"), now=moved).at(moved + hours(48))
    assert mine(o) == [(AFTER_PICKUP, "WARNING", WARN_AT), (AFTER_PICKUP, "VIOLATION", DEADLINE),
                       (TRACKING, "WARNING", moved + hours(48))]


def test_scans_read_out_of_order_are_judged_in_event_time_order():
    moved = PICKED + hours(10)
    o = uploaded().scans(NUMBER, scan(at=moved, status="IN_TRANSIT"), now=moved)
    o.scans(NUMBER, scan(at=PICKED), now=moved).at(moved + hours(48))
    assert mine(o) == [(TRACKING, "WARNING", moved + hours(48))]


def test_a_next_scan_delayed_within_the_lateness_still_prevents_the_warning():
    o = picked_up()
    o.scans(NUMBER, scan(at=WARN_AT + LATENESS / 2, status="OUT_FOR_DELIVERY"), now=WARN_AT - LATENESS / 2)
    o.scans(NUMBER, scan(at=WARN_AT - SECOND, status="IN_TRANSIT"), now=WARN_AT - LATENESS / 2).at(WARN_AT + hours(1))
    assert mine(o) == []


def test_a_scan_older_than_the_warning_that_arrives_after_it_resolves_it_at_the_warning_time():
    o = picked_up().at(WARN_AT)
    late = PICKED + hours(20)
    o.scans(NUMBER, scan(at=late, status="IN_TRANSIT"), now=WARN_AT + hours(1)).at(late + hours(48))
    assert mine(o) == [(AFTER_PICKUP, "WARNING", WARN_AT), (AFTER_PICKUP, "RESOLVED", WARN_AT),
                       (TRACKING, "WARNING", late + hours(48))]


def test_a_duplicate_scan_has_no_second_effect():
    moved = PICKED + hours(5)
    again = scan(at=moved, status="IN_TRANSIT")
    o = picked_up().scans(NUMBER, again, now=moved)
    before = o.state
    o.scans(NUMBER, again, now=moved)
    assert o.state.scans == before.scans
    o.at(moved + hours(72))
    assert mine(o) == [(TRACKING, "WARNING", moved + hours(48)), (TRACKING, "VIOLATION", moved + hours(72))]


def test_a_pickup_before_the_upload_that_stalled_warns_at_the_upload_and_counts_the_deadline_from_it():
    o = uploaded(scan(at=UPLOADED - hours(30))).at(UPLOADED)
    assert mine(o) == [(AFTER_PICKUP, "WARNING", UPLOADED)]
    o.at(UPLOADED + hours(24) - SECOND)
    assert len(mine(o)) == 1
    o.at(UPLOADED + hours(24))
    assert mine(o)[-1] == (AFTER_PICKUP, "VIOLATION", UPLOADED + hours(24))


def test_a_stall_that_ended_before_the_upload_does_not_warn():
    o = uploaded(scan(at=UPLOADED - hours(40)), scan(at=UPLOADED - hours(1), status="IN_TRANSIT"))
    o.at(UPLOADED + hours(47) - SECOND)
    assert mine(o) == []
    o.at(UPLOADED + hours(47))
    assert mine(o) == [(TRACKING, "WARNING", UPLOADED + hours(47))]


def test_a_stall_whose_next_scan_came_exactly_at_the_upload_warns_and_resolves_at_the_upload():
    o = uploaded(scan(at=UPLOADED - hours(40)), scan(at=UPLOADED, status="IN_TRANSIT")).at(UPLOADED)
    assert mine(o) == [(AFTER_PICKUP, "WARNING", UPLOADED), (AFTER_PICKUP, "RESOLVED", UPLOADED)]


def test_a_pickup_before_the_upload_that_has_not_stalled_yet_warns_at_its_own_time():
    o = uploaded(scan(at=UPLOADED - hours(2))).at(UPLOADED + hours(22))
    assert mine(o) == [(AFTER_PICKUP, "WARNING", UPLOADED + hours(22))]


def test_a_replacement_number_ends_the_open_stall_and_its_own_scans_start_new_ones():
    o = picked_up().at(WARN_AT)
    replaced = WARN_AT + hours(3)
    new = upload(number=NEW_NUMBER, at=replaced)
    o.apply(new, replaced).join(new, now=replaced)
    assert mine(o) == [(AFTER_PICKUP, "WARNING", WARN_AT), (AFTER_PICKUP, "RESOLVED", replaced)]
    picked_again = replaced + hours(1)
    o.scans(NEW_NUMBER, scan(NEW_NUMBER, at=picked_again), now=picked_again).at(picked_again + hours(24))
    assert mine(o)[-1] == (AFTER_PICKUP, "WARNING", picked_again + hours(24))
    first, end, second = emitted(o)
    assert first[2] == end[2] != second[2]
    assert [e.waybill_no for e in o.state.emitted if e.rule == AFTER_PICKUP] == [NUMBER, NUMBER, NEW_NUMBER]


def test_the_replacement_resolution_says_waybill_replaced():
    o = picked_up().at(WARN_AT)
    step = rules.apply(o.state, "O1", upload(number=NEW_NUMBER, at=WARN_AT + hours(3)), WARN_AT + hours(3), CTX)
    (resolved,) = [w for w in step.outputs if getattr(w, "rule", None) == AFTER_PICKUP]
    assert resolved.stage == "RESOLVED" and resolved.evidence["resolution"] == "WAYBILL_REPLACED"


def test_the_old_numbers_scans_after_the_replacement_start_no_stall():
    replaced = PICKED + hours(2)
    new = upload(number=NEW_NUMBER, at=replaced)
    o = picked_up().apply(new, replaced).join(new, scan(NEW_NUMBER, at=replaced + hours(1)), now=replaced)
    o.scans(NUMBER, scan(at=replaced + hours(5), status="IN_TRANSIT"), now=replaced + hours(5))
    o.at(replaced + hours(1) + hours(23))
    assert mine(o) == []
    o.at(replaced + days(10))
    assert [s[0] for s in mine(o)] == [AFTER_PICKUP, AFTER_PICKUP]
    assert {e.waybill_no for e in o.state.emitted if e.rule in (AFTER_PICKUP, TRACKING)} == {NEW_NUMBER}


def test_a_self_pickup_order_gets_no_stall_warning():
    o = picked_up(delivery_mode="self_pickup").at(DEADLINE + days(5))
    assert mine(o) == []


def test_a_self_pickup_upload_gets_no_stall_warning():
    up = upload(number=None, carrier="SELF_PICKUP", at=UPLOADED)
    o = Order().apply(up, None).at(DEADLINE + days(5))
    assert mine(o) == []


def test_an_invalid_number_gets_no_stall_warning_even_with_scans():
    up = upload(number="SF12345", at=UPLOADED)
    o = Order().apply(up, None).join(up, scan("SF12345", at=PICKED)).at(DEADLINE + days(5))
    assert mine(o) == []


def test_the_warning_names_the_last_scan_and_its_evidence_the_threshold_and_destination():
    moved = PICKED + hours(5)
    o = picked_up(recipient=recipient("新疆维吾尔自治区", "乌鲁木齐市"))
    o.scans(NUMBER, scan(at=moved, status="IN_TRANSIT"), now=moved)
    step = rules.on_time(o.state, moved + hours(120), CTX)
    (warning,) = [w for w in step.outputs if w.rule == TRACKING]
    assert warning.waybill_no == NUMBER and warning.deadline == moved + hours(144)
    assert "O1" in warning.message and NUMBER in warning.message and "运输中" in warning.message
    assert warning.evidence["destination"] == "very_remote" and warning.evidence["stall_hours_very_remote"] == 120
    assert warning.evidence["last_scan"]["scan_at"] == "2026-03-02T12:00:00Z"
    assert warning.evidence["stall_rectify_hours"] == 24 and warning.evidence["next_scan"] is None
