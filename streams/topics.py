"""Every topic shipguard reads or writes: the contract's topics and its own internal ones."""

from __future__ import annotations

ORDER_PAID = "order-paid"
WAYBILL_UPLOADED = "waybill-uploaded"
TRACKING_SCANS = "tracking-scans"
CANCELLATION_REQUESTS = "cancellation-requests"
CLOCK_TICKS = "clock-ticks"

VIOLATION_WARNINGS = "violation-warnings"
CANCELLATION_OUTCOMES = "cancellation-outcomes"
SHOP_ALERTS = "shop-alerts"
DEAD_LETTERS = "dead-letters"

INPUT_TOPICS = (ORDER_PAID, WAYBILL_UPLOADED, TRACKING_SCANS, CANCELLATION_REQUESTS, CLOCK_TICKS)
OUTPUT_TOPICS = (VIOLATION_WARNINGS, CANCELLATION_OUTCOMES, SHOP_ALERTS, DEAD_LETTERS)
CONTRACT_TOPICS = INPUT_TOPICS + OUTPUT_TOPICS


def internal_topics(app_id: str) -> tuple[str, str, str]:
    """The worker's own repartition topics: to the waybill side, to the order side, to the shop side."""
    return f"{app_id}-waybill-feed", f"{app_id}-order-feed", f"{app_id}-shop-feed"


def all_topics(app_id: str) -> tuple[str, ...]:
    """Contract topics plus internal feeds: all are created up front with the same partition count."""
    return CONTRACT_TOPICS + internal_topics(app_id)
