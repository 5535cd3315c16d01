"""Input times are refused at the edge outside the documented window (2000-01-01 to 2099-12-31,
UTC), with a validation error and never another exception, so that every instant the worker
derives from them (deadlines, retention) is one its state codec writes and reads back."""

from __future__ import annotations

import types
import typing
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas import codec
from schemas.events import INPUT_MODELS, ClockTick, OrderPaid
from schemas.state import OrderState
from schemas.types import EARLIEST_INPUT_TIME, LATEST_INPUT_TIME, parse_time
from streams.rules_file import load_rules
from tests.factories import PAID, cancellation, order_paid, scan, upload

TEMPLATE_VALUES = {topic: orjson.loads(codec.dumps(model)) for topic, model in (
    ("order-paid", order_paid("T1")), ("waybill-uploaded", upload("T1", at=PAID)),
    ("tracking-scans", scan(at=PAID)), ("cancellation-requests", cancellation("T1", at=PAID)),
    ("clock-ticks", ClockTick.model_validate({"at": PAID})))}

HOSTILE_TIMES = ["0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-12:00", "2100-12-31T23:59:59+00:00",
                 "2101-01-01T00:00:00+08:00", "2100-01-01T00:00:00Z", "2099-12-31T23:00:00-12:00",
                 "2000-01-01T07:59:59+08:00", "0001-01-01T00:00:00-23:59", "9999-12-31T23:59:59+23:59"]


def _is_time(annotation) -> bool:
    if annotation is datetime:
        return True
    if typing.get_origin(annotation) is typing.Annotated:
        return _is_time(typing.get_args(annotation)[0])
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return any(_is_time(arg) for arg in typing.get_args(annotation))
    return False


TIME_FIELDS = [(topic, name) for topic, model in sorted(INPUT_MODELS.items())
               for name, field in model.model_fields.items() if _is_time(field.annotation)]


def test_every_time_field_of_every_input_model_is_covered():
    assert set(TIME_FIELDS) == {("order-paid", "paid_at"), ("order-paid", "ship_by"),
                                ("waybill-uploaded", "uploaded_at"), ("tracking-scans", "scan_at"),
                                ("cancellation-requests", "requested_at"), ("clock-ticks", "at")}


@pytest.mark.parametrize("value", HOSTILE_TIMES)
@pytest.mark.parametrize(("topic", "field"), TIME_FIELDS)
def test_a_time_outside_the_window_in_any_input_field_is_a_bad_input_naming_the_field(topic, field, value):
    data = {**TEMPLATE_VALUES[topic], field: value}
    with pytest.raises(codec.BadInput, match=rf"^{field}: time out of range 2000-01-01T00:00:00Z"):
        codec.decode_input(topic, orjson.dumps(data))


@pytest.mark.parametrize("at", [datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=8))),
                                datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-12)))])
def test_an_aware_datetime_that_overflows_in_utc_is_a_validation_error_not_an_overflow(at):
    with pytest.raises(ValidationError, match="time out of range"):
        ClockTick.model_validate({"at": at})


def test_the_first_and_last_instants_of_the_window_are_accepted_in_any_offset():
    assert ClockTick.model_validate({"at": "2000-01-01T08:00:00+08:00"}).at == EARLIEST_INPUT_TIME
    assert ClockTick.model_validate({"at": "2099-12-31T11:59:59.999999-12:00"}).at == LATEST_INPUT_TIME
    assert EARLIEST_INPUT_TIME == datetime(2000, 1, 1, tzinfo=UTC)
    assert LATEST_INPUT_TIME == datetime(2099, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


@given(year=st.integers(1, 9999), month=st.integers(1, 12), day=st.integers(1, 28),
       seconds=st.integers(0, 86399), offset=st.integers(-(24 * 60 - 1), 24 * 60 - 1))
def test_any_offset_on_any_year_is_accepted_inside_the_window_or_refused_with_a_value_error(
        year, month, day, seconds, offset):
    sign, minutes = ("+" if offset >= 0 else "-"), abs(offset)
    text = (f"{year:04d}-{month:02d}-{day:02d}T{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
            f"{sign}{minutes // 60:02d}:{minutes % 60:02d}")
    try:
        parsed = parse_time(text)
    except ValueError as exc:
        assert str(exc).startswith("time out of range")
    else:
        assert EARLIEST_INPUT_TIME <= parsed <= LATEST_INPUT_TIME and parsed.utcoffset() == timedelta(0)


def _longest_reach(rules) -> timedelta:
    """Every packaged duration added up: more than any chain of deadlines and retention reaches."""
    total = (rules.allowed_lateness + rules.scan_retention + rules.order_retention)
    for platform in rules.platforms.values():
        hours = sum(v for k, v in platform.model_dump().items() if k.endswith("_hours"))
        days = sum(v for k, v in platform.model_dump().items() if k.endswith("_days"))
        total += timedelta(hours=hours, days=days)
    return total


def test_state_holding_the_latest_input_time_plus_every_threshold_reads_back_equal():
    reach = _longest_reach(load_rules())
    assert reach > timedelta(days=60)
    paid = OrderPaid.model_validate({**TEMPLATE_VALUES["order-paid"], "paid_at": "2099-12-31T23:59:59Z"})
    state = OrderState(order_id=paid.order_id, last_activity=paid.paid_at, wake_at=paid.paid_at + reach,
                       cancelled_at=EARLIEST_INPUT_TIME - reach)
    assert state.wake_at.year == 2100
    assert OrderState.model_validate(codec.loads(codec.dumps_state(state))) == state
