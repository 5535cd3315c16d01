"""Output events, one immutable model per output topic of the contract."""

from __future__ import annotations

from typing import Any, Literal

from schemas.events import CancelReason, Platform, WireModel
from schemas.types import Id, Instant, Money, ShortText, Text

Rule = Literal[
    "SHIP_OVERDUE", "WAYBILL_INVALID", "WAYBILL_REUSED", "NO_PICKUP", "STALLED_AFTER_PICKUP",
    "TRACKING_STALLED", "ADDRESS_MISMATCH", "PICKUP_BEFORE_PAYMENT", "NOT_DELIVERED",
    "EXPRESS_STOP_REMARK",
]
Stage = Literal["WARNING", "VIOLATION", "RESOLVED"]
Severity = Literal["low", "medium", "high"]
Decision = Literal["APPROVED", "REJECTED"]
DecisionCode = Literal["ORDER_UNKNOWN", "ALREADY_CANCELLED", "ALREADY_DELIVERED", "DETAIL_REQUIRED",
                       "NO_LOGISTICS_EVIDENCE", "IN_TRANSIT", "APPROVED"]
ShopMetric = Literal["SELLER_FAULT_CANCEL_RATE", "LATE_DISPATCH_RATE"]


class ViolationWarning(WireModel):
    """`violation-warnings`: one stage of one occurrence of a rule on an order."""

    warning_id: Id
    order_id: Id
    shop_id: Id
    platform: Platform
    rule: Rule
    stage: Stage
    severity: Severity
    occurred_at: Instant
    deadline: Instant | None = None
    waybill_no: ShortText | None = None
    evidence: dict[str, Any]
    message: Text


class Refund(WireModel):
    """Money returned to the buyer by an approved cancellation."""

    amount: Money
    currency: ShortText


class CancellationOutcome(WireModel):
    """`cancellation-outcomes`: the review's decision on one cancellation request."""

    request_event_id: Id
    order_id: Id
    shop_id: Id
    decision: Decision
    reason: CancelReason
    code: DecisionCode
    explanation: Text
    refund: Refund | None = None
    order_status: ShortText
    merchant_fault: bool
    decided_at: Instant


class ShopAlert(WireModel):
    """`shop-alerts`: a shop's rate crossed its threshold (WARNING) or came back (RESOLVED)."""

    alert_id: Id
    shop_id: Id
    platform: Platform
    metric: ShopMetric
    stage: Literal["WARNING", "RESOLVED"]
    value: Money
    threshold: Money
    orders_in_window: int
    window_start: Instant
    window_end: Instant


class DeadLetter(WireModel):
    """`dead-letters`: an input the worker could not accept, with the reason and the original bytes."""

    source_topic: ShortText
    partition: int
    offset: int
    error: Text
    received_at: Instant
    raw: str
    raw_encoding: Literal["utf-8", "base64"] = "utf-8"


def identity(topic: str, value: Any) -> str | None:
    """What must appear once on an output topic (a model or its decoded JSON); None elsewhere.

    violation-warnings: (warning_id, stage); cancellation-outcomes: the request; shop-alerts:
    (alert_id, stage). Dead letters have none: they are delivered at least once.
    """
    get = value.get if isinstance(value, dict) else lambda name: getattr(value, name, None)
    if topic == "violation-warnings":
        return f"{get('warning_id')}|{get('stage')}"
    if topic == "cancellation-outcomes":
        return str(get("request_event_id"))
    if topic == "shop-alerts":
        return f"{get('alert_id')}|{get('stage')}"
    return None


OUTPUT_MODELS: dict[str, type[WireModel]] = {
    "violation-warnings": ViolationWarning,
    "cancellation-outcomes": CancellationOutcome,
    "shop-alerts": ShopAlert,
    "dead-letters": DeadLetter,
}
