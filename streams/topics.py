"""Every topic shipguard reads or writes: the contract's topics and its own internal ones."""

from __future__ import annotations

from kafka.partitioner.default import murmur2

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


#: The worker's tables; each has a compacted changelog topic `{app_id}-{table}-changelog`.
TABLES = ("orders", "waybills", "shops", "outbox", "clocks")


def changelog_topics(app_id: str) -> tuple[str, ...]:
    """The tables' changelog topics (Faust's names)."""
    return tuple(f"{app_id}-{table}-changelog" for table in TABLES)


def all_topics(app_id: str) -> tuple[str, ...]:
    """Contract topics plus internal feeds: all are created up front with the same partition count."""
    return CONTRACT_TOPICS + internal_topics(app_id)


ORDER_SIDE, WAYBILL_SIDE, SHOP_SIDE = "order", "waybill", "shop"


def side_topics(app_id: str) -> dict[str, tuple[str, ...]]:
    """What each side of the worker consumes: its inputs, then its own feed (the one place that says so)."""
    waybill_feed, order_feed, shop_feed = internal_topics(app_id)
    return {ORDER_SIDE: (ORDER_PAID, WAYBILL_UPLOADED, CANCELLATION_REQUESTS, CLOCK_TICKS, order_feed),
            WAYBILL_SIDE: (TRACKING_SCANS, waybill_feed),
            SHOP_SIDE: (shop_feed,)}


def side_of(app_id: str) -> dict[str, str]:
    """Topic -> the side that consumes it."""
    return {topic: side for side, topics in side_topics(app_id).items() for topic in topics}


def partition_for(key: bytes | None, partitions: int, fallback: int = 0) -> int:
    """Kafka's default partitioner: murmur2 of the key bytes, or the fallback for no key."""
    if key is None:
        return fallback
    return (murmur2(key) & 0x7FFFFFFF) % partitions
