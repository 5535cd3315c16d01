"""Placeholder: buyer remarks that ask not to ship by courier (快递停发, 自提 ...), filled in by issue 3."""

from __future__ import annotations

from typing import Optional


def asks_no_courier(remark: Optional[str]) -> bool:
    """True when the buyer's remark asks not to ship by courier."""
    return False
