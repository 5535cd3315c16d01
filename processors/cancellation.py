"""Cancellation review (取消发货审核): the contract's seven checks, first match decides.

| # | condition | decision | code |
|---|---|---|---|
| 1 | order unknown after the allowed lateness | REJECTED | ORDER_UNKNOWN |
| 2 | order already cancelled | REJECTED | ALREADY_CANCELLED |
| 3 | a DELIVERED scan exists | REJECTED | ALREADY_DELIVERED |
| 4 | reason OTHER and detail has fewer than 4 non-blank characters | REJECTED | DETAIL_REQUIRED |
| 5 | LOGISTICS_EXCEPTION without logistics evidence (*) | REJECTED | NO_LOGISTICS_EVIDENCE |
| 6 | OUT_OF_STOCK or QUALITY_ISSUE and the carrier already scanned the parcel | REJECTED | IN_TRANSIT |
| 7 | otherwise | APPROVED (order CANCELLED, refund = amount paid) | APPROVED |

(*) an EXCEPTION, FAILED_ATTEMPT or RETURNED scan, or a rule 4/5/6/9 WARNING on the order.

`review` is pure: it sees the order as built from the events before the request (scans count
from when they joined the order; warnings by their occurred_at) and returns the decision.
merchant_fault is true for approved OUT_OF_STOCK, QUALITY_ISSUE and OTHER. processors.order
decides *when* (a timer at requested_at, or requested_at + lateness for an unknown order) and
applies an approval to the order's warnings.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from schemas.state import Emitted, OrderFacts, ScanFact

DETAIL_MIN_CHARS = 4
LOGISTICS_EVIDENCE = ("EXCEPTION", "FAILED_ATTEMPT", "RETURNED")
LOGISTICS_RULES = ("NO_PICKUP", "STALLED_AFTER_PICKUP", "TRACKING_STALLED", "NOT_DELIVERED")
MERCHANT_FAULT = ("OUT_OF_STOCK", "QUALITY_ISSUE", "OTHER")

EXPLANATIONS = {
    "ORDER_UNKNOWN": "未找到该订单的支付记录，无法取消发货。",
    "ALREADY_CANCELLED": "该订单已取消，无需重复申请。",
    "ALREADY_DELIVERED": "包裹已签收，不能取消发货，请走售后退款流程。",
    "DETAIL_REQUIRED": "选择“其他”原因时须填写至少4个字的具体说明。",
    "NO_LOGISTICS_EVIDENCE": "物流轨迹中没有异常、派送失败或退回记录，也没有物流预警，不能以物流异常为由取消。",
    "IN_TRANSIT": "快递已揽收，包裹在途，不能以缺货或质量问题为由取消发货。",
    "APPROVED": "取消发货申请已通过，订单已取消，货款将原路退回买家。",
}


@dataclass(frozen=True)
class Verdict:
    """The outcome of one review."""

    code: str
    approved: bool
    merchant_fault: bool
    refund: tuple[Decimal, str] | None
    explanation: str


def review(facts: OrderFacts | None, *, reason: str, detail: str, requested_at: datetime,
           cancelled: bool, scans: Iterable[tuple[datetime, ScanFact]], emitted: Iterable[Emitted],
           delivered_and_closed: bool = False) -> Verdict:
    """Apply checks 1-7 in order; `scans` are (time the scan joined the order, scan).

    `delivered_and_closed`: the order was delivered and closed (its history dropped, see
    processors.order), so it is known, not cancelled, and delivered.
    """
    before = [scan.status for joined, scan in scans if joined < requested_at]
    if delivered_and_closed:
        code = "ALREADY_DELIVERED"
    elif facts is None:
        code = "ORDER_UNKNOWN"
    elif cancelled:
        code = "ALREADY_CANCELLED"
    elif "DELIVERED" in before:
        code = "ALREADY_DELIVERED"
    elif reason == "OTHER" and sum(not ch.isspace() for ch in detail) < DETAIL_MIN_CHARS:
        code = "DETAIL_REQUIRED"
    elif reason == "LOGISTICS_EXCEPTION" and not any(s in LOGISTICS_EVIDENCE for s in before) and not any(
            e.rule in LOGISTICS_RULES and e.stage == "WARNING" and e.occurred_at < requested_at for e in emitted):
        code = "NO_LOGISTICS_EVIDENCE"
    elif reason in ("OUT_OF_STOCK", "QUALITY_ISSUE") and before:
        code = "IN_TRANSIT"
    else:
        code = "APPROVED"
    approved = code == "APPROVED"
    refund = (facts.amount, facts.currency) if approved and facts is not None else None
    return Verdict(code, approved, approved and reason in MERCHANT_FAULT, refund, EXPLANATIONS[code])
