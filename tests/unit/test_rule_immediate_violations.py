"""Rules 7 and 8: immediate VIOLATIONs (in event time), once per order and number."""

from dataclasses import replace
from datetime import timedelta

from tests.drivers import CTX, Order
from tests.factories import PAID, SECOND, hours, scan, upload

LATE = timedelta(minutes=10)
NUMBER = "SF1400000000001"
WALL_CTX = replace(CTX, decide_on_read=True)  # the worker in wall clock mode: rules 7 and 8 decide on read


def delivered_order(city_at_door, *, platform="douyin", out_of_order=False):
    up = upload(at=PAID + hours(2))
    o = Order(platform=platform).apply(up, None).join(up)
    ofd = scan(at=PAID + hours(20), status="OUT_FOR_DELIVERY", city=city_at_door)
    done = scan(at=PAID + hours(22), status="DELIVERED", city="杭州市")
    for s in ([done, ofd] if out_of_order else [ofd, done]):
        o.scans(NUMBER, s, now=PAID + hours(19))
    return o


def test_the_first_door_step_scan_in_another_city_is_a_violation_at_its_time():
    o = delivered_order("宁波市").at(PAID + hours(30))
    assert ("ADDRESS_MISMATCH", "VIOLATION", PAID + hours(20)) in o.out


def test_a_door_step_scan_in_the_recipients_city_under_another_name_is_fine():
    o = delivered_order("杭州").at(PAID + hours(30))
    assert [s for s in o.out if s[0] == "ADDRESS_MISMATCH"] == []


def test_the_violation_waits_for_the_allowed_lateness_and_takes_the_earliest_door_step_scan():
    o = delivered_order("宁波市", out_of_order=True)
    o.at(PAID + hours(20) - SECOND)
    assert [s for s in o.out if s[0] == "ADDRESS_MISMATCH"] == []
    o.at(PAID + hours(20))
    assert [s for s in o.out if s[0] == "ADDRESS_MISMATCH"] == [("ADDRESS_MISMATCH", "VIOLATION", PAID + hours(20))]


def test_an_address_mismatch_is_reported_once_per_number():
    o = delivered_order("宁波市").at(PAID + hours(30)).at(PAID + hours(40))
    assert len([s for s in o.out if s[0] == "ADDRESS_MISMATCH"]) == 1


def test_a_scan_before_payment_joined_by_a_later_upload_violates_at_the_upload():
    early = scan(at=PAID - hours(1))
    up = upload(at=PAID + hours(1))
    o = Order().apply(up, None).join(up, early).at(PAID + hours(1))
    assert ("PICKUP_BEFORE_PAYMENT", "VIOLATION", PAID + hours(1)) in o.out


def test_a_first_scan_exactly_at_payment_is_not_before_it():
    up = upload(at=PAID - hours(2))
    o = Order().apply(up, None).join(up, scan(at=PAID)).at(PAID + hours(5))
    assert [s for s in o.out if s[0] == "PICKUP_BEFORE_PAYMENT"] == []


def test_a_self_pickup_order_gets_no_scan_rules():
    up = upload(at=PAID + hours(1))
    o = Order(delivery_mode="self_pickup").apply(up, None).join(up, scan(at=PAID - hours(1)))
    o.scans(NUMBER, scan(at=PAID + hours(20), status="DELIVERED", city="宁波"))
    o.at(PAID + hours(30))
    assert [s for s in o.out if s[0] in ("PICKUP_BEFORE_PAYMENT", "ADDRESS_MISMATCH")] == []


def test_in_wall_mode_an_address_mismatch_is_reported_as_soon_as_its_scan_is_read():
    up = upload(at=PAID + hours(2))
    o = Order(ctx=WALL_CTX).apply(up, None).join(up)
    o.scans(NUMBER, scan(at=PAID + hours(20), status="OUT_FOR_DELIVERY", city="宁波市"), now=PAID + hours(19))
    assert [s for s in o.out if s[0] == "ADDRESS_MISMATCH"] == [("ADDRESS_MISMATCH", "VIOLATION", PAID + hours(20))]


def test_in_wall_mode_a_pickup_before_payment_is_reported_as_soon_as_the_scan_is_read():
    up = upload(at=PAID + hours(2))
    o = Order(ctx=WALL_CTX).apply(up, None).join(up, scan(at=PAID - hours(1), status="PICKED_UP"), now=PAID)
    assert [s for s in o.out if s[0] == "PICKUP_BEFORE_PAYMENT"] == [
        ("PICKUP_BEFORE_PAYMENT", "VIOLATION", PAID + hours(2))]
