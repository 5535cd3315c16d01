"""Waybill number formats per carrier (the contract's table), checked on the normalised number."""

from __future__ import annotations

import re

_FORMATS: dict[str, tuple[str, ...]] = {
    "SF": (r"SF[0-9A-Z]\d{12}",),
    "ZTO": (r"7[3-68]\d{12}", r"\d{12}"),
    "YTO": (r"YT\d{13}",),
    "STO": (r"(77|88|99)\d{13}",),
    "YUNDA": (r"[34]\d{14}", r"5\d{12}"),
    "JT": (r"JT\d{12,13}",),
    "JD": (r"JD[0-9A-Z]{2}\d{11}",),
    "EMS": (r"[A-Z]{2}\d{9}[A-Z]{2}", r"[189]\d{12}"),
    "DEPPON": (r"DPK\d{11,12}",),
    "OTHER": (r"[0-9A-Z-]{8,30}",),
}
CARRIER_PATTERNS: dict[str, re.Pattern[str]] = {
    carrier: re.compile("|".join(f"(?:{p})" for p in patterns))
    for carrier, patterns in _FORMATS.items()
}


def is_valid_waybill(carrier: str, waybill_no: str | None) -> bool:
    """True when the normalised number matches the declared carrier's format (SELF_PICKUP: no number)."""
    if carrier == "SELF_PICKUP":
        return True
    pattern = CARRIER_PATTERNS.get(carrier)
    return bool(pattern and waybill_no and pattern.fullmatch(waybill_no))
