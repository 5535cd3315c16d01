"""Rule 8, PICKUP_BEFORE_PAYMENT (揽收早于支付): the carrier had the parcel before the buyer paid.

Trigger: the first scan of a number the order uploaded is earlier than paid_at -> an immediate
VIOLATION, once per order and number, occurred_at = the latest of the proving events: the scan,
the order-paid, and the upload that joined the scan to the order (contract example ex06).
No WARNING, no deadline, no rectification. Express orders' courier numbers only.
Fires once stream time minus the allowed lateness has reached occurred_at in event mode, when
read in wall mode (see rule 7).
State: none of its own; reads paid_at and the joined scans (processors.order).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from processors.facts import Segment, courier_segments
from processors.lifecycle import Occurrence, RuleResult, collect, local_time
from schemas.state import OrderState

if TYPE_CHECKING:
    from processors.order import Context  # a type only: processors.order imports every rule

RULE = "PICKUP_BEFORE_PAYMENT"


def evaluate(order: OrderState, now: datetime | None, ctx: Context, segments: Sequence[Segment]) -> RuleResult:
    """PICKUP_BEFORE_PAYMENT violations that have happened by `now`."""
    facts = order.facts
    if facts is None:
        return RuleResult()
    occurrences = []
    for segment in courier_segments(order, segments):
        if not segment.scans or segment.scans[0].scan_at >= facts.paid_at:
            continue
        first = segment.scans[0]
        occurrences.append(Occurrence(
            RULE, segment.number or "", warn_at=max(segment.joined(first.scan_at), facts.paid_at), deadline=None,
            violation_only=True, warning_on_event=ctx.decide_on_read, waybill_no=segment.number,
            evidence={"first_scan": {"event_id": first.event_id, "status": first.status, "scan_at": first.scan_at},
                      "paid_at": facts.paid_at, "uploaded_at": segment.start},
            messages={"VIOLATION": f"订单{order.order_id}的运单{segment.number}"
                                   f"在{local_time(first.scan_at)}已有揽收记录，"
                                   f"早于买家付款时间{local_time(facts.paid_at)}，已判定为揽收早于支付。"}))
    return collect(order.order_id, occurrences, now, order.emitted)
