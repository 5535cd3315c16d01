"""EXPRESS_STOP_REMARK (备注快递停发): WARNING at payment when the remark asks for no courier, RESOLVED by an upload."""

from processors import order as rules
from processors.lifecycle import warning_id
from tests.drivers import CTX, Order, stages
from tests.factories import PAID, SECOND, days, hours, order_paid, upload

RULE = "EXPRESS_STOP_REMARK"
REMARK = "快递停发了，先别发，我自己来拿"


def mine(o):
    return [s for s in o.out if s[0] == RULE]


def with_remark(remark=REMARK, **paid):
    return Order(buyer_remark=remark, **paid)


def uploaded(o, at, number="SF1400000000001", carrier="SF", now=None):
    up = upload(number=number, carrier=carrier, at=at)
    o.apply(up, now)
    return o.join(up, now=now) if up.waybill_no else o


def test_a_remark_asking_for_no_courier_warns_at_payment_as_soon_as_the_order_is_read():
    assert mine(with_remark()) == [(RULE, "WARNING", PAID)]


def test_an_order_without_remark_or_with_a_harmless_one_never_warns():
    assert mine(Order().at(PAID + days(3))) == []
    assert mine(with_remark("请尽快发快递").at(PAID + days(3))) == []


def test_the_first_upload_resolves_the_warning_at_its_upload_time():
    o = uploaded(with_remark(), PAID + hours(5)).at(PAID + days(3))
    assert mine(o) == [(RULE, "WARNING", PAID), (RULE, "RESOLVED", PAID + hours(5))]


def test_a_self_pickup_upload_resolves_it_too():
    o = uploaded(with_remark(), PAID + hours(1), number=None, carrier="SELF_PICKUP")
    assert mine(o) == [(RULE, "WARNING", PAID), (RULE, "RESOLVED", PAID + hours(1))]


def test_an_invalid_number_is_an_upload_as_well():
    o = uploaded(with_remark(), PAID + hours(1), number="SF12345")
    assert mine(o) == [(RULE, "WARNING", PAID), (RULE, "RESOLVED", PAID + hours(1))]


def test_it_never_becomes_a_violation_and_sets_no_timer():
    o = with_remark()
    assert o.next == PAID + hours(42), "SHIP_OVERDUE's timer, none of its own"
    o.at(PAID + days(29))
    assert mine(o) == [(RULE, "WARNING", PAID)]


def test_an_upload_one_second_after_payment_resolves_at_its_time():
    o = uploaded(with_remark(), PAID + SECOND)
    assert mine(o) == [(RULE, "WARNING", PAID), (RULE, "RESOLVED", PAID + SECOND)]


def test_an_upload_exactly_at_payment_does_not_prevent_the_warning_but_resolves_it_at_once():
    o = uploaded(with_remark(), PAID)
    assert mine(o) == [(RULE, "WARNING", PAID), (RULE, "RESOLVED", PAID)]


def test_an_upload_read_before_the_order_resolves_the_warning_as_soon_as_the_order_arrives():
    early = rules.apply(None, "O1", upload(at=PAID + hours(2)), None, CTX)
    step = rules.apply(early.state, "O1", order_paid(buyer_remark=REMARK), None, CTX)
    assert [s for s in stages(step.outputs) if s[0] == RULE] == [(RULE, "WARNING", PAID),
                                                                 (RULE, "RESOLVED", PAID + hours(2))]


def test_an_upload_one_second_before_payment_prevents_the_warning():
    early = rules.apply(None, "O1", upload(at=PAID - SECOND), None, CTX)
    step = rules.apply(early.state, "O1", order_paid(buyer_remark=REMARK), None, CTX)
    assert [s for s in stages(step.outputs) if s[0] == RULE] == []


def test_a_second_upload_adds_nothing_and_the_occurrence_is_over():
    o = uploaded(with_remark(), PAID + hours(1))
    uploaded(o, PAID + hours(2), number="SF1400000000002").at(PAID + days(3))
    assert mine(o) == [(RULE, "WARNING", PAID), (RULE, "RESOLVED", PAID + hours(1))]


def test_an_earlier_upload_read_after_the_resolution_does_not_resolve_again():
    o = uploaded(with_remark(), PAID + hours(3))
    uploaded(o, PAID + hours(1), number="SF1400000000002")
    assert mine(o) == [(RULE, "WARNING", PAID), (RULE, "RESOLVED", PAID + hours(3))]


def test_the_same_order_paid_and_upload_delivered_twice_warn_and_resolve_once():
    o = with_remark().apply(order_paid(buyer_remark=REMARK), None)
    up = upload(at=PAID + hours(1))
    o.apply(up, None).apply(up, None).join(up)
    assert mine(o) == [(RULE, "WARNING", PAID), (RULE, "RESOLVED", PAID + hours(1))]


def test_self_pickup_orders_are_reminded_too():
    assert mine(with_remark("自提", delivery_mode="self_pickup")) == [(RULE, "WARNING", PAID)]


def test_the_order_is_deleted_at_retention_after_the_resolution():
    o = uploaded(with_remark(), PAID + hours(1)).at(PAID + hours(1) + days(30))
    assert o.state is None and mine(o) == [(RULE, "WARNING", PAID), (RULE, "RESOLVED", PAID + hours(1))]


def test_stages_share_one_warning_id_and_keep_the_remark_text_out_of_the_output():
    remark = "自提，电话13812345678"
    warned = rules.apply(None, "O1", order_paid(buyer_remark=remark), None, CTX)
    resolved = rules.apply(warned.state, "O1", upload(at=PAID + hours(1)), None, CTX)
    (warning,) = [w for w in warned.outputs if getattr(w, "rule", None) == RULE]
    (done,) = [w for w in resolved.outputs if getattr(w, "rule", None) == RULE]
    assert warning.warning_id == done.warning_id == warning_id("O1", RULE)
    assert warning.deadline is None and warning.waybill_no is None
    assert warning.evidence["paid_at"] == "2026-03-02T02:00:00Z" and warning.evidence["stop_remark"] is True
    assert done.evidence["first_upload"]["uploaded_at"] == "2026-03-02T03:00:00Z"
    assert "13812345678" not in warning.model_dump_json() and "13812345678" not in done.model_dump_json()
    assert "O1" in warning.message and "2026-03-02 10:00" in warning.message
    assert "SF1400000000001" in done.message and "2026-03-02 11:00" in done.message
