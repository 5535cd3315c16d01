"""WAYBILL_INVALID (单号异常): WARNING at an invalid upload, VIOLATION 24h later, RESOLVED by a valid number."""

from processors import order as rules
from processors.lifecycle import warning_id
from tests.drivers import CTX, Order, stages
from tests.factories import PAID, SECOND, days, hours, order_paid, upload

RULE = "WAYBILL_INVALID"
INVALID, VALID = "SF12345", "SF1400000000001"
UPLOADED = PAID + hours(2)
DEADLINE = UPLOADED + hours(24)


def mine(o):
    return [s for s in o.out if s[0] == RULE]


def invalid_upload(at=UPLOADED, number=INVALID):
    return upload(number=number, at=at)


def with_invalid_upload(**paid):
    up = invalid_upload()
    return Order(**paid).apply(up, None).join(up)


def replace(o, at, number=VALID, carrier="SF", now=None):
    up = upload(number=number, carrier=carrier, at=at)
    o.apply(up, now)
    return o.join(up, now=now) if up.waybill_no else o


def test_an_invalid_number_warns_at_its_upload_time_as_soon_as_it_is_read():
    o = Order().apply(invalid_upload(), None)
    assert mine(o) == [(RULE, "WARNING", UPLOADED)], "event-caused: no timer, no scan history needed"


def test_an_invalid_number_never_replaced_becomes_a_violation_exactly_at_upload_plus_24_hours():
    o = with_invalid_upload()
    assert o.next == DEADLINE
    o.at(DEADLINE - SECOND)
    assert mine(o) == [(RULE, "WARNING", UPLOADED)]
    o.at(DEADLINE)
    assert mine(o) == [(RULE, "WARNING", UPLOADED), (RULE, "VIOLATION", DEADLINE)]


def test_a_valid_number_resolves_the_warning_at_its_upload_time():
    o = replace(with_invalid_upload(), UPLOADED + hours(3)).at(DEADLINE + hours(1))
    assert mine(o) == [(RULE, "WARNING", UPLOADED), (RULE, "RESOLVED", UPLOADED + hours(3))]


def test_a_valid_number_one_second_before_the_deadline_still_resolves():
    o = replace(with_invalid_upload(), DEADLINE - SECOND).at(DEADLINE + hours(1))
    assert mine(o) == [(RULE, "WARNING", UPLOADED), (RULE, "RESOLVED", DEADLINE - SECOND)]


def test_a_valid_number_exactly_at_the_deadline_is_too_late():
    o = replace(with_invalid_upload(), DEADLINE).at(DEADLINE)
    assert mine(o) == [(RULE, "WARNING", UPLOADED), (RULE, "VIOLATION", DEADLINE)]


def test_a_valid_number_one_second_after_the_deadline_leaves_the_violation_alone():
    o = with_invalid_upload().at(DEADLINE)
    replace(o, DEADLINE + SECOND, now=DEADLINE + SECOND).at(DEADLINE + hours(5))
    assert mine(o) == [(RULE, "WARNING", UPLOADED), (RULE, "VIOLATION", DEADLINE)]


def test_a_valid_number_read_late_but_uploaded_in_time_resolves_if_the_deadline_has_not_fired():
    o = replace(with_invalid_upload(), DEADLINE - hours(1), now=DEADLINE - hours(1)).at(DEADLINE + hours(1))
    assert mine(o)[-1] == (RULE, "RESOLVED", DEADLINE - hours(1))


def test_switching_to_self_pickup_resolves_the_warning():
    o = replace(with_invalid_upload(), UPLOADED + hours(1), number=None, carrier="SELF_PICKUP").at(DEADLINE)
    assert mine(o) == [(RULE, "WARNING", UPLOADED), (RULE, "RESOLVED", UPLOADED + hours(1))]


def test_a_second_invalid_number_is_a_second_warning_and_resolves_nothing():
    o = replace(with_invalid_upload(), UPLOADED + hours(1), number="SF999").at(DEADLINE)
    assert mine(o) == [(RULE, "WARNING", UPLOADED), (RULE, "WARNING", UPLOADED + hours(1)),
                       (RULE, "VIOLATION", DEADLINE)]
    o.at(DEADLINE + hours(1))
    assert mine(o)[-1] == (RULE, "VIOLATION", DEADLINE + hours(1))


def test_one_valid_number_resolves_every_invalid_number_before_it():
    o = replace(with_invalid_upload(), UPLOADED + hours(1), number="SF999")
    replace(o, UPLOADED + hours(2)).at(DEADLINE + hours(2))
    assert mine(o) == [(RULE, "WARNING", UPLOADED), (RULE, "WARNING", UPLOADED + hours(1)),
                       (RULE, "RESOLVED", UPLOADED + hours(2)), (RULE, "RESOLVED", UPLOADED + hours(2))]


def test_a_valid_number_uploaded_earlier_does_not_resolve_an_invalid_number_that_replaced_it():
    o = replace(Order(), UPLOADED - hours(1))
    up = invalid_upload()
    o.apply(up, None).join(up).at(DEADLINE)
    assert mine(o) == [(RULE, "WARNING", UPLOADED), (RULE, "VIOLATION", DEADLINE)]


def test_a_replacement_read_before_the_invalid_upload_gives_warning_and_resolved_together():
    o = replace(Order(), UPLOADED + hours(3))
    assert mine(o) == []
    o.apply(invalid_upload(), None)
    assert mine(o) == [(RULE, "WARNING", UPLOADED), (RULE, "RESOLVED", UPLOADED + hours(3))]


def test_the_same_invalid_upload_delivered_twice_warns_once():
    up = invalid_upload()
    o = Order().apply(up, None).apply(up, None).join(up).join(up).at(DEADLINE)
    assert mine(o) == [(RULE, "WARNING", UPLOADED), (RULE, "VIOLATION", DEADLINE)]


def test_a_valid_number_never_warns():
    up = upload(number=VALID, at=UPLOADED)
    o = Order().apply(up, None).join(up).at(DEADLINE + days(1))
    assert mine(o) == []


def test_self_pickup_orders_are_checked_too():
    up = invalid_upload()
    o = Order(delivery_mode="self_pickup").apply(up, None).join(up).at(DEADLINE)
    assert mine(o) == [(RULE, "WARNING", UPLOADED), (RULE, "VIOLATION", DEADLINE)]


def test_an_invalid_upload_read_before_its_order_warns_when_the_order_arrives():
    early = rules.apply(None, "O1", invalid_upload(), None, CTX)
    assert stages(early.outputs) == []
    step = rules.apply(early.state, "O1", order_paid(), None, CTX)
    assert [s for s in stages(step.outputs) if s[0] == RULE] == [(RULE, "WARNING", UPLOADED)]


def test_after_resolved_the_occurrence_is_over_and_the_order_is_deleted_at_retention():
    o = replace(with_invalid_upload(), UPLOADED + hours(1))
    replace(o, UPLOADED + hours(4), number="SF1400000000002").at(DEADLINE + days(1))
    assert mine(o) == [(RULE, "WARNING", UPLOADED), (RULE, "RESOLVED", UPLOADED + hours(1))]
    o.at(UPLOADED + hours(4) + days(30))
    assert o.state is None and mine(o) == [(RULE, "WARNING", UPLOADED), (RULE, "RESOLVED", UPLOADED + hours(1))]


def test_after_the_violation_the_occurrence_is_over():
    o = with_invalid_upload().at(DEADLINE)
    o.at(DEADLINE + days(3))
    assert mine(o) == [(RULE, "WARNING", UPLOADED), (RULE, "VIOLATION", DEADLINE)]


def test_stages_share_one_warning_id_and_carry_thresholds_events_and_a_chinese_message():
    up, fix = invalid_upload(), upload(number=VALID, at=UPLOADED + hours(3))
    state = Order().state
    warned = rules.apply(state, "O1", up, None, CTX)
    resolved = rules.apply(warned.state, "O1", fix, None, CTX)
    (warning,) = [w for w in warned.outputs if getattr(w, "rule", None) == RULE]
    (done,) = [w for w in resolved.outputs if getattr(w, "rule", None) == RULE]
    assert warning.warning_id == done.warning_id == warning_id("O1", RULE, up.event_id)
    assert warning.waybill_no == done.waybill_no == INVALID
    assert warning.deadline == DEADLINE and done.deadline is None
    assert warning.evidence["rectify_hours"] == 24
    assert warning.evidence["deadline"] == "2026-03-03T04:00:00Z"
    assert warning.evidence["upload"] == {"upload_event_id": up.event_id, "carrier": "SF", "waybill_no": INVALID,
                                          "uploaded_at": "2026-03-02T04:00:00Z"}
    assert warning.evidence["replacement"] is None  # the fix belongs to the RESOLVED stage
    assert done.evidence["replacement"]["waybill_no"] == VALID
    assert "O1" in warning.message and INVALID in warning.message and "2026-03-03 12:00" in warning.message
    assert VALID in done.message and "2026-03-02 15:00" in done.message


def test_a_duplicate_upload_keeps_the_deadline_timer():
    up = invalid_upload()
    o = Order().apply(up, None).join(up)
    assert o.next == DEADLINE
    o.apply(up, None)
    assert o.next == DEADLINE
