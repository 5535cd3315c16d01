"""WAYBILL_REUSED (单号重复): another recipient's order uploaded the number first; flag the later upload."""

from processors import order as rules
from processors.lifecycle import warning_id
from schemas.internal import ScansForOrder
from tests.drivers import CTX, Order, OtherUpload
from tests.factories import PAID, SECOND, days, hours, upload

RULE = "WAYBILL_REUSED"
NUMBER, FRESH = "SF1400000000001", "SF1400000000002"
UPLOADED = PAID + hours(2)
DEADLINE = UPLOADED + hours(24)
EARLIER = UPLOADED - hours(5)  # when another recipient's order uploaded the number


def mine(o):
    return [s for s in o.out if s[0] == RULE]


def other(at=EARLIER, *, order_id="O2", carrier="SF", same_recipient=False, number=NUMBER):
    return OtherUpload(order_id=order_id, upload_event_id=f"{order_id}-up", carrier=carrier, uploaded_at=at,
                       same_recipient=same_recipient, waybill_no=number)


def reused(*others, at=UPLOADED, number=NUMBER, carrier="SF", **paid):
    """An order that uploads `number`; the waybill side answers with the `others` that used it."""
    up = upload(number=number, carrier=carrier, at=at)
    return Order(**paid).apply(up, None).join(up, others=others)


def replace(o, at, number=FRESH, carrier="SF", now=None):
    up = upload(number=number, carrier=carrier, at=at)
    o.apply(up, now)
    return o.join(up, now=now) if up.waybill_no else o


def learn_later(o, *others, number=NUMBER, now=None):
    """The waybill side tells the order of another order that registered the number after it did."""
    return o.apply(ScansForOrder(order_id="O1", waybill_no=number, others=others), now)


def test_a_number_another_recipient_uploaded_earlier_warns_at_the_upload_time():
    o = reused(other())
    assert mine(o) == [(RULE, "WARNING", UPLOADED)]


def test_a_reused_number_kept_becomes_a_violation_exactly_at_upload_plus_24_hours():
    o = reused(other()).at(DEADLINE - SECOND)
    assert mine(o) == [(RULE, "WARNING", UPLOADED)]
    o.at(DEADLINE)
    assert mine(o) == [(RULE, "WARNING", UPLOADED), (RULE, "VIOLATION", DEADLINE)]


def test_a_number_shared_with_the_same_recipient_is_a_merged_shipment_not_a_reuse():
    o = reused(other(same_recipient=True)).at(DEADLINE + days(1))
    assert mine(o) == []


def test_only_the_later_upload_is_flagged():
    o = reused(other(at=UPLOADED + hours(1))).at(DEADLINE + days(1))
    assert mine(o) == []


def test_an_upload_at_the_same_instant_as_the_other_is_not_flagged():
    o = reused(other(at=UPLOADED)).at(DEADLINE + days(1))
    assert mine(o) == []


def test_an_upload_exactly_thirty_days_after_the_other_is_still_inside_the_window():
    assert mine(reused(other(at=UPLOADED - days(30)))) == [(RULE, "WARNING", UPLOADED)]
    assert mine(reused(other(at=UPLOADED - days(30) + SECOND))) == [(RULE, "WARNING", UPLOADED)]


def test_an_upload_thirty_days_and_one_second_after_the_other_is_outside_the_window():
    assert mine(reused(other(at=UPLOADED - days(30) - SECOND)).at(DEADLINE + days(1))) == []


def test_the_same_number_under_another_carrier_is_not_a_reuse():
    o = reused(other(carrier="EMS", number="EA123456789CN"), number="EA123456789CN", carrier="EMS")
    assert mine(o) == [(RULE, "WARNING", UPLOADED)]
    o = reused(other(carrier="OTHER", number="EA123456789CN"), number="EA123456789CN", carrier="EMS").at(
        DEADLINE + days(1))
    assert mine(o) == []


def test_another_number_resolves_the_warning_at_its_upload_time_and_is_not_flagged_itself():
    o = replace(reused(other()), UPLOADED + hours(3)).at(DEADLINE + days(1))
    assert mine(o) == [(RULE, "WARNING", UPLOADED), (RULE, "RESOLVED", UPLOADED + hours(3))]


def test_another_number_one_second_before_the_deadline_still_resolves():
    o = replace(reused(other()), DEADLINE - SECOND).at(DEADLINE + hours(1))
    assert mine(o) == [(RULE, "WARNING", UPLOADED), (RULE, "RESOLVED", DEADLINE - SECOND)]


def test_another_number_exactly_at_the_deadline_is_too_late():
    o = replace(reused(other()), DEADLINE).at(DEADLINE)
    assert mine(o) == [(RULE, "WARNING", UPLOADED), (RULE, "VIOLATION", DEADLINE)]


def test_another_number_one_second_after_the_deadline_leaves_the_violation_alone():
    o = reused(other()).at(DEADLINE)
    replace(o, DEADLINE + SECOND, now=DEADLINE + SECOND).at(DEADLINE + hours(5))
    assert mine(o) == [(RULE, "WARNING", UPLOADED), (RULE, "VIOLATION", DEADLINE)]


def test_switching_to_self_pickup_resolves_the_warning():
    o = replace(reused(other()), UPLOADED + hours(1), number=None, carrier="SELF_PICKUP").at(DEADLINE)
    assert mine(o) == [(RULE, "WARNING", UPLOADED), (RULE, "RESOLVED", UPLOADED + hours(1))]


def test_uploading_the_flagged_number_again_neither_resolves_nor_starts_a_second_warning():
    o = replace(reused(other()), UPLOADED + hours(1), number=NUMBER).at(DEADLINE)
    assert mine(o) == [(RULE, "WARNING", UPLOADED), (RULE, "VIOLATION", DEADLINE)]


def test_the_earlier_other_order_learned_later_still_flags_the_upload_at_its_own_time():
    o = reused().at(UPLOADED + hours(1))
    assert mine(o) == []
    learn_later(o, other(), now=UPLOADED + hours(4)).at(DEADLINE)
    assert mine(o) == [(RULE, "WARNING", UPLOADED), (RULE, "VIOLATION", DEADLINE)]


def test_a_replacement_read_before_the_reused_upload_gives_warning_and_resolved_together():
    o = replace(Order(), UPLOADED + hours(3))
    up = upload(number=NUMBER, at=UPLOADED)
    o.apply(up, None).join(up, others=[other()])
    assert mine(o) == [(RULE, "WARNING", UPLOADED), (RULE, "RESOLVED", UPLOADED + hours(3))]


def test_the_same_upload_and_the_same_other_order_delivered_twice_warn_once():
    up = upload(number=NUMBER, at=UPLOADED)
    o = Order().apply(up, None).apply(up, None).join(up, others=[other()]).join(up, others=[other()])
    learn_later(o, other()).at(DEADLINE)
    assert mine(o) == [(RULE, "WARNING", UPLOADED), (RULE, "VIOLATION", DEADLINE)]


def test_several_other_orders_make_one_warning_that_names_them_all():
    up = upload(number=NUMBER, at=UPLOADED)
    step = rules.apply(Order().state, "O1", up, None, CTX)
    step = rules.apply(step.state, "O1", ScansForOrder(
        order_id="O1", waybill_no=NUMBER, join_for=up.event_id,
        others=(other(order_id="O3", at=UPLOADED - hours(1)), other(order_id="O2"))), None, CTX)
    (warning,) = [w for w in step.outputs if getattr(w, "rule", None) == RULE]
    assert warning.evidence["other_orders"] == [{"order_id": "O2", "uploaded_at": "2026-03-01T23:00:00Z"},
                                                {"order_id": "O3", "uploaded_at": "2026-03-02T03:00:00Z"}]


def test_self_pickup_orders_are_not_checked():
    o = reused(other(), delivery_mode="self_pickup").at(DEADLINE + days(1))
    assert mine(o) == []


def test_an_invalid_number_is_left_to_the_invalid_number_rule():
    o = reused(other(), number="SF12345").at(DEADLINE + days(1))
    assert mine(o) == [] and ("WAYBILL_INVALID", "WARNING", UPLOADED) in o.out


def test_after_resolved_the_occurrence_is_over_and_the_order_is_deleted_at_retention():
    o = replace(reused(other()), UPLOADED + hours(1))
    replace(o, UPLOADED + hours(2), number="SF1400000000003").at(DEADLINE + days(2))
    assert mine(o) == [(RULE, "WARNING", UPLOADED), (RULE, "RESOLVED", UPLOADED + hours(1))]
    o.at(UPLOADED + hours(2) + days(30))
    assert o.state is None


def test_after_the_violation_a_late_other_order_or_replacement_adds_nothing():
    o = reused(other()).at(DEADLINE)
    learn_later(o, other(order_id="O9", at=UPLOADED - hours(9)), now=DEADLINE)
    replace(o, DEADLINE + hours(1), now=DEADLINE + hours(1)).at(DEADLINE + days(2))
    assert mine(o) == [(RULE, "WARNING", UPLOADED), (RULE, "VIOLATION", DEADLINE)]


def test_stages_share_one_warning_id_and_the_evidence_shows_thresholds_but_no_other_recipient():
    up = upload(number=NUMBER, at=UPLOADED)
    step = rules.apply(Order().state, "O1", up, None, CTX)
    step = rules.apply(step.state, "O1", ScansForOrder(order_id="O1", waybill_no=NUMBER, join_for=up.event_id,
                                                       others=(other(),)), None, CTX)
    (warning,) = [w for w in step.outputs if getattr(w, "rule", None) == RULE]
    step = rules.on_time(step.state, DEADLINE, CTX)
    (violation,) = [w for w in step.outputs if getattr(w, "rule", None) == RULE]
    assert warning.warning_id == violation.warning_id == warning_id("O1", RULE, up.event_id)
    assert warning.waybill_no == NUMBER and warning.deadline == DEADLINE
    assert warning.evidence["reuse_window_days"] == 30 and warning.evidence["rectify_hours"] == 24
    assert warning.evidence["upload"]["waybill_no"] == NUMBER
    assert set(warning.evidence["other_orders"][0]) == {"order_id", "uploaded_at"}
    assert "O1" in warning.message and NUMBER in warning.message and "2026-03-03 12:00" in warning.message
    assert NUMBER in violation.message


def test_with_two_numbers_of_one_carrier_only_the_reused_one_is_flagged():
    o = replace(Order(), UPLOADED - hours(1))
    up = upload(number=NUMBER, at=UPLOADED)
    o.apply(up, None).join(up, others=[other()]).at(DEADLINE)
    assert mine(o) == [(RULE, "WARNING", UPLOADED), (RULE, "VIOLATION", DEADLINE)]
