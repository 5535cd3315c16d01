"""Strict field types shared by every wire model.

The contract is strict about three things that pydantic's lax mode would let through:
times must be ISO-8601 strings with a UTC offset (no epoch numbers, no naive times) inside
the input window, money is a decimal *string* (never a float), and waybill numbers have one normalised form.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainSerializer, StringConstraints, WithJsonSchema

# The input window: an input time outside it is refused at the edge. Every instant the worker
# derives from an input time (deadlines, retention, shop windows: days to weeks either side with
# the packaged rules.toml) then stays millennia inside what `datetime` and the state codec can
# hold, so a restart always reads back the state the worker wrote. See docs/contract-readings.md.
EARLIEST_INPUT_TIME = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_INPUT_TIME = datetime(2099, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
_WINDOW = "2000-01-01T00:00:00Z to 2099-12-31T23:59:59.999999Z"


def format_time(value: datetime) -> str:
    """Write an instant as UTC ISO-8601 with a trailing Z (the contract's output form)."""
    text = value.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def _to_utc(value: datetime) -> datetime:
    """An aware instant in UTC; ValueError when UTC cannot hold it (year 1 at +08:00, 9999-12-31
    at -12:00 leave datetime's range: OverflowError, which pydantic would not turn into a
    validation error)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"time has no UTC offset: {value.isoformat()!r}")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"time out of range {_WINDOW}: {value.isoformat()!r}") from None


def parse_instant(value: Any) -> datetime:
    """Parse an ISO-8601 string (or aware datetime) with a UTC offset into a UTC instant, with no
    window: what the worker itself wrote (state, internal feeds, outputs) always reads back."""
    if isinstance(value, datetime):
        return _to_utc(value)
    if not isinstance(value, str):
        raise ValueError("time must be an ISO-8601 string with a UTC offset")
    if len(value) > 40:
        raise ValueError("time string is too long")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not an ISO-8601 time: {value!r}") from None
    return _to_utc(parsed)  # every instant inside shipguard is UTC


def parse_time(value: Any) -> datetime:
    """Parse an input time: as `parse_instant`, and refused outside the input window (in UTC)."""
    parsed = parse_instant(value)
    if not EARLIEST_INPUT_TIME <= parsed <= LATEST_INPUT_TIME:
        shown = value if isinstance(value, str) else value.isoformat()
        raise ValueError(f"time out of range {_WINDOW}: {shown!r}")
    return parsed


_TIME_JSON = {"type": "string", "format": "date-time",
              "description": "ISO-8601 with a UTC offset, e.g. 2026-03-01T10:00:00+08:00"}

Time = Annotated[
    datetime,
    BeforeValidator(parse_time),
    PlainSerializer(format_time, return_type=str, when_used="json"),
    WithJsonSchema({**_TIME_JSON, "description": _TIME_JSON["description"]
                    + f"; from {_WINDOW}"}),
]
"""An input time (wire events): inside the input window."""

Instant = Annotated[
    datetime,
    BeforeValidator(parse_instant),
    PlainSerializer(format_time, return_type=str, when_used="json"),
    WithJsonSchema(_TIME_JSON),
]
"""An instant the worker writes (state, internal feeds, outputs): derived from input times, so
possibly past the input window (a deadline of an order paid on its last day)."""

_DECIMAL_RE = re.compile(r"^\d{1,12}(\.\d{1,4})?$")


def parse_money(value: Any) -> Decimal:
    """Parse a non-negative decimal string such as "129.00"; floats and numbers are refused."""
    if isinstance(value, Decimal):
        return value
    if not isinstance(value, str):
        raise ValueError('money must be a decimal string such as "129.00", not a number')
    if not _DECIMAL_RE.match(value):
        raise ValueError(f"not a non-negative decimal string: {value!r}")
    try:
        return Decimal(value)
    except InvalidOperation:  # pragma: no cover - the regex already guards this
        raise ValueError(f"not a decimal: {value!r}") from None


Money = Annotated[
    Decimal,
    BeforeValidator(parse_money),
    PlainSerializer(lambda d: str(d), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": _DECIMAL_RE.pattern,
                    "description": 'non-negative decimal string, e.g. "129.00"'}),
]


def normalise_waybill(value: Any) -> Any:
    """Upper-case a waybill number and strip every space: its one identity on every topic."""
    if isinstance(value, str):
        return "".join(value.split()).upper()
    return value


ID_MAX_CHARS = 128
Id = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=ID_MAX_CHARS)]
"""An id read from the wire (event_id, order_id, shop_id) or written as an output id."""

FACT_ID_MAX_CHARS = ID_MAX_CHARS + 16
FactId = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=FACT_ID_MAX_CHARS)]
"""An internal id derived from an input id: `<kind>:<input id>` with a kind prefix of at most 16
characters (`paid:`, `cancel:`, `overdue:`), so an input id at its own limit always fits."""
TEXT_MAX_CHARS = 2000
Text = Annotated[str, StringConstraints(strict=True, max_length=TEXT_MAX_CHARS)]


def _truncate_marked(value: Any) -> Any:
    """A free text over TEXT_MAX_CHARS, cut to fit with a marker that says so and how long it was."""
    if isinstance(value, str) and len(value) > TEXT_MAX_CHARS:
        marker = f" [truncated by shipguard: {len(value)} characters]"
        return value[:TEXT_MAX_CHARS - len(marker)] + marker
    return value


FreeText = Annotated[str, BeforeValidator(_truncate_marked), StringConstraints(strict=True, max_length=TEXT_MAX_CHARS)]
"""Free text a person typed (a buyer's remark, a scan's description, a request's detail): an
over-long one is truncated and marked, never a reason to refuse the event that carries it."""
ShortText = Annotated[str, StringConstraints(strict=True, max_length=200)]
WaybillNo = Annotated[
    str,
    BeforeValidator(normalise_waybill),
    StringConstraints(strict=True, min_length=1, max_length=64),
]
StrictBool = Annotated[bool, Field(strict=True)]
