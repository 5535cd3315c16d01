"""Rule 10, EXPRESS_STOP_REMARK (备注快递停发): the buyer's remark asks not to ship by courier.

Trigger: the order's buyer_remark asks not to ship by courier (`facts.stop_remark`, decided once
by processors.remarks when order-paid is read) -> WARNING at paid_at, brought about by the
order-paid event itself. A reminder to the merchant, so it has no deadline and no VIOLATION.
Rectification: the order's first upload of any kind (a number, or SELF_PICKUP) -> RESOLVED at its
uploaded_at: the merchant has decided how the parcel goes. An upload strictly before paid_at
prevents the WARNING (the contract's general rule for rectifying events).
Applies to every order, express or self-pickup. One occurrence per order.
State: none of its own; it reads the order's facts and uploads (processors.order owns and deletes
them) and the emitted stages. The remark's text is not kept (it may hold names or phone numbers);
only the flag is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from processors.facts import Segment, upload_evidence
from processors.lifecycle import Occurrence, RuleResult, collect, local_time
from processors.waybill_invalid import what_was_uploaded
from schemas.state import OrderState

if TYPE_CHECKING:
    from processors.order import Context  # a type only: processors.order imports every rule

RULE = "EXPRESS_STOP_REMARK"


def evaluate(order: OrderState, now: datetime | None, ctx: Context, segments: Sequence[Segment]) -> RuleResult:
    """EXPRESS_STOP_REMARK stages that have happened by `now` (it never needs a timer)."""
    facts = order.facts
    if facts is None or not facts.stop_remark:
        return RuleResult()
    first = min(order.uploads, key=lambda u: (u.uploaded_at, u.event_id), default=None)
    evidence: dict[str, Any] = {"paid_at": facts.paid_at, "stop_remark": True,
                                "first_upload": upload_evidence(first) if first is not None else None}
    occurrence = Occurrence(
        RULE, "", warn_at=facts.paid_at, deadline=None, warning_on_event=True, outcome_keys=("first_upload",),
        rectified_at=first.uploaded_at if first else None, evidence=evidence, messages={
            "WARNING": f"订单{order.order_id}（{local_time(facts.paid_at)}付款）的买家备注要求不要发快递"
                       f"（如快递停发、到店自提），请先联系买家确认收货方式再发货。",
            "RESOLVED": f"订单{order.order_id}已于{local_time(first.uploaded_at)}上传{what_was_uploaded(first)}，"
                        f"备注快递停发提醒结束。" if first else ""})
    return collect(order.order_id, [occurrence], now, order.emitted)
