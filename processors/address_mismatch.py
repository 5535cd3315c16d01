"""Rule 7, ADDRESS_MISMATCH (轨迹与收货地址不一致): the parcel is delivered somewhere else.

Trigger: the first OUT_FOR_DELIVERY or DELIVERED scan of a number (by event time) is in a city
other than the recipient's (both normalised: 杭州 = 杭州市) -> an immediate VIOLATION, once per
order and number, occurred_at = that scan's time (or the upload that joined it, if later).
No WARNING, no deadline, no rectification. Express orders' courier numbers only.
"Immediate" in event time: in event mode the VIOLATION fires once stream time minus the allowed
lateness has reached its occurred_at, so that an earlier door-step scan that arrives out of order
within the lateness is still taken as the first one; in wall mode (`Context.decide_on_read`) it
fires when the scan is read.
State: none of its own; reads the order's recipient city and joined scans (processors.order).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from processors.facts import Segment, courier_segments
from processors.geo import normalise_city
from processors.lifecycle import Occurrence, RuleResult, collect, local_time
from schemas.state import OrderState

if TYPE_CHECKING:
    from processors.order import Context  # a type only: processors.order imports every rule

RULE = "ADDRESS_MISMATCH"
AT_DOOR = ("OUT_FOR_DELIVERY", "DELIVERED")


def evaluate(order: OrderState, now: datetime | None, ctx: Context, segments: Sequence[Segment]) -> RuleResult:
    """ADDRESS_MISMATCH violations that have happened by `now`."""
    facts = order.facts
    if facts is None:
        return RuleResult()
    occurrences = []
    for segment in courier_segments(order, segments):
        at_door = [s for s in segment.scans if s.status in AT_DOOR]
        if not at_door or normalise_city(at_door[0].city) == facts.city:
            continue
        first = at_door[0]
        at = segment.joined(first.scan_at)
        occurrences.append(Occurrence(
            RULE, segment.number or "", warn_at=at, deadline=None, violation_only=True,
            warning_on_event=ctx.decide_on_read, waybill_no=segment.number,
            evidence={"scan": {"event_id": first.event_id, "status": first.status, "scan_at": first.scan_at,
                               "city": first.city}, "recipient_city": facts.city},
            messages={"VIOLATION": f"订单{order.order_id}的运单{segment.number}于{local_time(first.scan_at)}在"
                                   f"{first.city}派送/签收，与收货城市{facts.city}不一致，已判定为轨迹与收货地址不一致。"}))
    return collect(order.order_id, occurrences, now, order.emitted)
