"""SHIP_OVERDUE (发货超时): WARNING at ship_by - 6h, VIOLATION at ship_by, RESOLVED by a dispatch before it."""

from datetime import timedelta

import pytest

from processors import order as rules
from processors.waybill import scan_fact
from schemas.internal import ScansForOrder
from tests.drivers import CTX
from tests.drivers import Order as Driver
from tests.factories import PAID, SECOND, SHIP_BY, WARN_AT, hours, order_paid, scan, upload

LATENESS = timedelta(minutes=10)


def Order(platform="douyin", **paid):
    """The order driver, collecting SHIP_OVERDUE stages only."""
    return Driver(platform=platform, only="SHIP_OVERDUE", **paid)


def test_an_order_never_dispatched_warns_six_hours_before_ship_by_and_violates_at_ship_by():
    o = Order()
    assert o.next == WARN_AT
    o.at(WARN_AT)
    assert o.out == [("SHIP_OVERDUE", "WARNING", WARN_AT)]
    o.at(SHIP_BY)
    assert o.out[-1] == ("SHIP_OVERDUE", "VIOLATION", SHIP_BY)


def test_nothing_fires_one_second_before_the_warning_time():
    o = Order().at(WARN_AT - SECOND)
    assert o.out == [] and o.next == WARN_AT


def test_a_valid_upload_strictly_before_the_warning_time_prevents_it():
    up = upload(at=WARN_AT - SECOND)
    o = Order().apply(up, None).join(up).at(SHIP_BY + hours(1))
    assert o.out == []


def test_an_upload_exactly_at_the_warning_time_does_not_prevent_it_but_resolves_it():
    up = upload(at=WARN_AT)
    o = Order().apply(up, None).join(up).at(WARN_AT)
    assert o.out == [("SHIP_OVERDUE", "WARNING", WARN_AT), ("SHIP_OVERDUE", "RESOLVED", WARN_AT)]


def test_an_upload_one_second_before_ship_by_resolves_the_warning_at_the_upload_time():
    o = Order().at(WARN_AT)
    up = upload(at=SHIP_BY - SECOND)
    o.apply(up, SHIP_BY - SECOND - LATENESS).join(up).at(SHIP_BY + hours(2))
    assert o.out == [("SHIP_OVERDUE", "WARNING", WARN_AT), ("SHIP_OVERDUE", "RESOLVED", SHIP_BY - SECOND)]


def test_an_upload_exactly_at_ship_by_is_too_late_and_the_violation_stands():
    o = Order().at(WARN_AT)
    up = upload(at=SHIP_BY)
    o.apply(up, None).join(up).at(SHIP_BY)
    assert o.out == [("SHIP_OVERDUE", "WARNING", WARN_AT), ("SHIP_OVERDUE", "VIOLATION", SHIP_BY)]


def test_an_invalid_number_is_not_a_dispatch_on_douyin():
    up = upload(number="SF12345", at=PAID + hours(1))
    o = Order().apply(up, None).join(up).at(SHIP_BY)
    assert [s[1] for s in o.out] == ["WARNING", "VIOLATION"]


def test_a_self_pickup_upload_counts_as_dispatch():
    up = upload(number=None, carrier="SELF_PICKUP", at=PAID + hours(1))
    o = Order().apply(up, None).at(SHIP_BY)
    assert o.out == []


def test_tiktok_counts_the_first_carrier_scan_not_the_upload():
    up = upload(at=PAID + hours(1))
    o = Order(platform="tiktok").apply(up, None).join(up).at(WARN_AT)
    assert o.out == [("SHIP_OVERDUE", "WARNING", WARN_AT)]
    first = scan(at=WARN_AT + hours(2))
    o.apply(ScansForOrder(order_id="O1", waybill_no=up.waybill_no,
                          scans=(scan_fact(first),)),
            WARN_AT + hours(2)).at(SHIP_BY)
    assert o.out[-1] == ("SHIP_OVERDUE", "RESOLVED", WARN_AT + hours(2))


def test_on_tiktok_a_scan_before_the_upload_dispatches_at_the_upload_time():
    early = scan(at=PAID + hours(1))
    up = upload(at=WARN_AT + hours(1))
    o = Order(platform="tiktok").at(WARN_AT).apply(up, None).join(up, early)
    assert o.out[-1] == ("SHIP_OVERDUE", "RESOLVED", WARN_AT + hours(1))


def test_an_explicit_ship_by_replaces_the_ship_window():
    ship_by = PAID + hours(100)
    o = Order(presale=True, ship_by=ship_by.isoformat()).at(SHIP_BY)
    assert o.out == [] and o.next == ship_by - hours(6)


def test_a_duplicate_order_paid_has_no_second_effect():
    o = Order()
    before = o.state
    o.apply(order_paid(), None)
    assert o.state == before


def test_timers_wait_while_a_scan_history_is_on_its_way():
    up = upload(at=WARN_AT - hours(1))
    o = Order(platform="tiktok").apply(up, None).at(SHIP_BY + hours(5))
    assert o.out == [], "no stage may fire before the waybill side has answered"
    o.join(up, scan(at=PAID + hours(2))).at(SHIP_BY + hours(5))
    assert o.out == []


def test_a_late_upload_after_the_violation_changes_nothing():
    o = Order().at(SHIP_BY)
    up = upload(at=SHIP_BY - hours(1))
    o.apply(up, SHIP_BY).join(up, now=SHIP_BY)
    assert [s[1] for s in o.out] == ["WARNING", "VIOLATION"]


def test_the_order_state_is_deleted_thirty_days_after_its_last_activity():
    o = Order().at(SHIP_BY)
    assert o.next == PAID + timedelta(days=30)
    o.at(PAID + timedelta(days=30))
    assert o.state is None


@pytest.mark.parametrize("platform", ["douyin", "taobao", "tiktok"])
def test_every_platform_uses_a_48_hour_ship_window_by_default(platform):
    assert Order(platform=platform).next == PAID + hours(42)


def test_evidence_shows_the_thresholds_and_writes_times_in_utc():
    step = rules.on_time(Order().state, WARN_AT, CTX)
    (warning,) = step.outputs
    assert warning.evidence["ship_by"] == "2026-03-04T02:00:00Z"
    assert warning.evidence["ship_window_hours"] == 48 and warning.evidence["warning_lead_hours"] == 6
    assert warning.evidence["recipient"] == {"name": "张*", "phone": "138****5678", "province": "浙江", "city": "杭州"}


def test_an_order_waiting_for_its_scan_history_is_not_deleted_at_retention_and_fires_once_it_arrives():
    up = upload(number="SF12345", at=PAID + hours(1))
    o = Order().apply(up, None).at(PAID + timedelta(days=40))
    assert o.state is not None and o.out == []
    o.join(up, now=PAID + timedelta(days=40))
    assert [s[1] for s in o.out] == ["WARNING", "VIOLATION"]
    o.at(PAID + timedelta(days=40))
    assert o.state is None
