"""The waybill side keeps a number's scans and sends each order the ones that apply to it."""

from processors.waybill import apply_registration, apply_scan, on_time
from schemas.internal import RegisterUpload
from streams.rules_file import load_rules
from tests.factories import PAID, days, hours, scan

RULES = load_rules()
NUMBER = "SF1400000000001"


def register(order_id, at, recipient="r1", event_id=None):
    return RegisterUpload(order_id=order_id, upload_event_id=event_id or f"{order_id}-up", carrier="SF",
                          waybill_no=NUMBER, uploaded_at=at, recipient_hash=recipient)


def test_a_scan_that_arrives_before_its_upload_waits_and_is_sent_with_the_join():
    step = apply_scan(None, scan(at=PAID + hours(1)), RULES)
    assert step.outputs == []
    step = apply_registration(step.state, register("O1", PAID + hours(2)), RULES)
    (reply,) = step.outputs
    assert reply.order_id == "O1" and reply.join_for == "O1-up"
    assert [s.scan_at for s in reply.scans] == [PAID + hours(1)]


def test_a_scan_after_the_upload_goes_to_the_order_at_once():
    state = apply_registration(None, register("O1", PAID), RULES).state
    step = apply_scan(state, scan(at=PAID + hours(3), status="IN_TRANSIT"), RULES)
    assert [(o.order_id, o.join_for, len(o.scans)) for o in step.outputs] == [("O1", None, 1)]


def test_scans_older_than_thirty_days_before_the_upload_do_not_apply():
    state = apply_scan(None, scan(at=PAID), RULES).state
    state = apply_scan(state, scan(at=PAID + days(2), status="IN_TRANSIT"), RULES).state
    (reply,) = apply_registration(state, register("O1", PAID + days(31)), RULES).outputs
    assert [s.scan_at for s in reply.scans] == [PAID + days(2)]


def test_a_number_that_serves_several_orders_sends_each_scan_to_each_of_them():
    state = apply_registration(None, register("O1", PAID), RULES).state
    step = apply_registration(state, register("O2", PAID + hours(1)), RULES)
    assert {o.order_id for o in step.outputs} == {"O1", "O2"}, "the first order learns of the second"
    step = apply_scan(step.state, scan(at=PAID + hours(4)), RULES)
    assert sorted(o.order_id for o in step.outputs) == ["O1", "O2"]


def test_the_join_tells_an_order_about_other_orders_and_whether_the_recipient_is_the_same():
    state = apply_registration(None, register("O1", PAID, recipient="a"), RULES).state
    state = apply_registration(state, register("O2", PAID, recipient="a"), RULES).state
    reply = apply_registration(state, register("O3", PAID, recipient="b"), RULES).outputs[0]
    assert {(o.order_id, o.same_recipient) for o in reply.others} == {("O1", False), ("O2", False)}


def test_a_duplicate_scan_is_neither_kept_nor_sent_twice():
    state = apply_registration(None, register("O1", PAID), RULES).state
    first = scan(at=PAID + hours(1))
    state = apply_scan(state, first, RULES).state
    step = apply_scan(state, first, RULES)
    assert step.outputs == [] and len(step.state.scans) == 1


def test_a_repeated_registration_gets_the_same_answer_and_adds_nothing():
    state = apply_scan(None, scan(at=PAID + hours(1)), RULES).state
    first = apply_registration(state, register("O1", PAID), RULES)
    again = apply_registration(first.state, register("O1", PAID), RULES)
    assert again.outputs == first.outputs and again.state == first.state


def test_a_numbers_state_is_deleted_thirty_days_after_its_last_scan():
    state = apply_scan(None, scan(at=PAID + days(1)), RULES).state
    assert on_time(state, PAID + days(31) - hours(1), RULES).state is state
    assert on_time(state, PAID + days(31), RULES).state is None
