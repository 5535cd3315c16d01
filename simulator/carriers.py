"""Carriers and their waybill numbers: valid ones per the contract's formats, and typical mistakes.

The formats are the worker's own table (`processors.carriers`), checked against the normalised
number (upper-cased, spaces stripped, as `schemas.types.normalise_waybill` does on every topic).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from processors.carriers import is_valid_waybill as format_ok
from schemas.types import normalise_waybill

CARRIERS = ("SF", "ZTO", "YTO", "STO", "YUNDA", "JT", "JD", "EMS", "DEPPON", "OTHER")
SELF_PICKUP = "SELF_PICKUP"

CARRIER_NAMES = {
    "SF": "顺丰速运", "ZTO": "中通快递", "YTO": "圆通速递", "STO": "申通快递", "YUNDA": "韵达快递",
    "JT": "极兔速递", "JD": "京东物流", "EMS": "中国邮政", "DEPPON": "德邦快递", "OTHER": "跨越速运",
}


def is_valid_waybill(carrier: str, waybill_no: str | None) -> bool:
    """A real carrier number (SELF_PICKUP has none) in the declared carrier's format."""
    if carrier == SELF_PICKUP or not waybill_no:
        return False
    return format_ok(carrier, normalise_waybill(waybill_no))


def _digits(rng: random.Random, n: int) -> str:
    return str(rng.randrange(10 ** n)).zfill(n)


def _letters(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(n))


# One maker per carrier, shaped like the numbers each carrier really prints.
_MAKERS: dict[str, Callable[[random.Random], str]] = {
    "SF": lambda r: "SF" + r.choice("1345") + _digits(r, 12),
    "ZTO": lambda r: ("7" + r.choice("34568") + _digits(r, 12)) if r.random() < 0.8 else _digits(r, 12),
    "YTO": lambda r: "YT" + r.choice("2468") + _digits(r, 12),
    "STO": lambda r: r.choice(("77", "88", "99")) + _digits(r, 13),
    "YUNDA": lambda r: (r.choice("34") + _digits(r, 14)) if r.random() < 0.7 else "5" + _digits(r, 12),
    "JT": lambda r: "JT" + r.choice("0123") + _digits(r, r.choice((11, 12))),
    "JD": lambda r: "JD" + r.choice(("VA", "VB", "VC", "VD", "X0")) + _digits(r, 11),
    "EMS": lambda r: (r.choice(("E", "L", "C")) + _letters(r, 1) + _digits(r, 9) + "CN") if r.random() < 0.4
    else r.choice("19") + _digits(r, 12),
    "DEPPON": lambda r: "DPK" + r.choice("23") + _digits(r, r.choice((10, 11))),
    "OTHER": lambda r: r.choice(("KY", "ZJS", "DN", "BEST-")) + _digits(r, r.choice((9, 10, 12))),
}


def make_waybill(carrier: str, rng: random.Random) -> str:
    """A fresh, format-valid waybill number for `carrier` (in its normalised form)."""
    return _MAKERS[carrier](rng)


# Mistakes merchants really make when they type or paste a number.
def _truncated(carrier: str, good: str, rng: random.Random) -> str:
    return good[: max(3, len(good) - rng.randint(3, 6))]


def _letter_o_for_zero(carrier: str, good: str, rng: random.Random) -> str:
    tail = good[-8:].replace("0", "O") if "0" in good[-8:] else good[-8:-1] + "O"
    return good[:-8] + tail


def _other_carriers_number(carrier: str, good: str, rng: random.Random) -> str:
    other = rng.choice([c for c in ("SF", "YTO", "JT", "JD", "DEPPON") if c != carrier])
    return make_waybill(other, rng)


def _phone_number(carrier: str, good: str, rng: random.Random) -> str:
    return "1" + rng.choice("3589") + _digits(rng, 9)


def _placeholder(carrier: str, good: str, rng: random.Random) -> str:
    return rng.choice(("补发", "待补", "NO", "0")) + _digits(rng, rng.randint(3, 5))


_MISTAKES = (_truncated, _letter_o_for_zero, _other_carriers_number, _phone_number, _placeholder)


def make_invalid_waybill(carrier: str, rng: random.Random) -> str:
    """A number a merchant might upload for `carrier` that fails the carrier's format."""
    for _ in range(50):
        mistake = rng.choice(_MISTAKES)
        number = mistake(carrier, make_waybill(carrier, rng), rng)
        if normalise_waybill(number) and not is_valid_waybill(carrier, number):
            return number
    raise RuntimeError(f"could not make an invalid {carrier} number")  # pragma: no cover


def with_typing_noise(number: str, rng: random.Random) -> str:
    """The same number as a merchant might type it: lower case or grouped by spaces."""
    if any(ch.isalpha() for ch in number) and rng.random() < 0.5:
        return number.lower()
    cut = rng.randint(2, max(2, len(number) - 2))
    return number[:cut] + " " + number[cut:]
