"""Recipient PII: a salted hash for reuse checks and masked forms for outputs; never the clear text."""

from __future__ import annotations

import hashlib


def _norm(text: str | None) -> str:
    return "".join((text or "").split())


def recipient_hash(salt: str, name: str, phone: str, address: str) -> str:
    """Salted SHA-256 of the normalised name, phone and address (identifies one recipient)."""
    material = "\x1f".join((salt, _norm(name), _norm(phone), _norm(address)))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]


def mask_name(name: str) -> str:
    """张三 -> 张*, 欧阳娜娜 -> 欧***: the family name's first character only."""
    name = _norm(name)
    return (name[0] + "*" * max(1, len(name) - 1)) if name else ""


def mask_phone(phone: str) -> str:
    """13812345678 -> 138****5678: first three and last four digits; short numbers keep the last two."""
    phone = _norm(phone)
    if len(phone) >= 8:
        return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]
    return "*" * max(0, len(phone) - 2) + phone[-2:]
