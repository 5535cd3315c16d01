"""Strict field types shared by every wire model.

The contract is strict about three things that pydantic's lax mode would let through:
times must be ISO-8601 strings with a UTC offset (no epoch numbers, no naive times),
money is a decimal *string* (never a float), and waybill numbers have one normalised form.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainSerializer, StringConstraints, WithJsonSchema

_MIN_YEAR, _MAX_YEAR = 2000, 2100


def format_time(value: datetime) -> str:
    """Write an instant as UTC ISO-8601 with a trailing Z (the contract's output form)."""
    text = value.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def parse_time(value: Any) -> datetime:
    """Parse an ISO-8601 string that carries a UTC offset into a UTC instant; anything else is
    refused."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("time must carry a UTC offset")
        return value.astimezone(UTC)
    if not isinstance(value, str):
        raise ValueError("time must be an ISO-8601 string with a UTC offset")
    if len(value) > 40:
        raise ValueError("time string is too long")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not an ISO-8601 time: {value!r}") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"time has no UTC offset: {value!r}")
    parsed = parsed.astimezone(UTC)  # every instant inside shipguard is UTC
    if not _MIN_YEAR <= parsed.year <= _MAX_YEAR:
        raise ValueError(f"time out of range {_MIN_YEAR}-{_MAX_YEAR}: {value!r}")
    return parsed


Time = Annotated[
    datetime,
    BeforeValidator(parse_time),
    PlainSerializer(format_time, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time",
                    "description": "ISO-8601 with a UTC offset, e.g. 2026-03-01T10:00:00+08:00"}),
]

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


Id = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=128)]
Text = Annotated[str, StringConstraints(strict=True, max_length=2000)]
ShortText = Annotated[str, StringConstraints(strict=True, max_length=200)]
WaybillNo = Annotated[
    str,
    BeforeValidator(normalise_waybill),
    StringConstraints(strict=True, min_length=1, max_length=64),
]
StrictBool = Annotated[bool, Field(strict=True)]
