"""Rule 1, SHIP_OVERDUE (发货超时): the order is not dispatched in time.

Trigger: at ship_by - lead (default 6h) the order has no dispatch strictly before that instant
-> WARNING (occurred_at = ship_by - lead, deadline = ship_by).
Deadline: at ship_by still no dispatch strictly before it -> VIOLATION (occurred_at = ship_by).
Rectification: a dispatch strictly before ship_by, after the WARNING -> RESOLVED at the dispatch's
event time. Dispatch is per platform (`dispatch_evidence`): douyin and taobao count the first
valid upload (a format-valid number, reused or not, or a SELF_PICKUP upload); tiktok counts the
first carrier scan of an uploaded number (its time is the later of scan and upload) or a
SELF_PICKUP upload.
State: none of its own; it reads the order's facts, uploads and scans (processors.order owns and
deletes them) and the emitted stages. One occurrence per order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from processors.facts import Segment, upload_evidence
from processors.lifecycle import Occurrence, RuleResult, collect, local_time
from schemas.state import OrderState

if TYPE_CHECKING:
    from processors.order import Context  # a type only: processors.order imports every rule

RULE = "SHIP_OVERDUE"


def dispatch(order: OrderState, evidence: str) -> tuple[datetime, dict[str, Any]] | None:
    """The order's earliest dispatch: (effective event time, the events that prove it)."""
    candidates: list[tuple[datetime, dict[str, Any]]] = []
    first_upload: dict[str, datetime] = {}
    for upload in order.uploads:
        if upload.carrier == "SELF_PICKUP" or (evidence == "valid_upload" and upload.valid):
            candidates.append((upload.uploaded_at, upload_evidence(upload)))
        if upload.waybill_no and (upload.waybill_no not in first_upload
                                  or upload.uploaded_at < first_upload[upload.waybill_no]):
            first_upload[upload.waybill_no] = upload.uploaded_at
    if evidence == "first_scan":
        for scan in order.scans:
            joined_at = first_upload.get(scan.waybill_no)
            if joined_at is None:
                continue
            candidates.append((max(scan.scan_at, joined_at), {"scan_event_id": scan.event_id,
                                                              "waybill_no": scan.waybill_no,
                                                              "scan_at": scan.scan_at,
                                                              "status": scan.status}))
    return min(candidates, key=lambda c: c[0]) if candidates else None


def evaluate(order: OrderState, now: datetime | None, ctx: Context, segments: Sequence[Segment]) -> RuleResult:
    """SHIP_OVERDUE stages that have happened by `now`, and when to look again."""
    facts = order.facts
    if facts is None:
        return RuleResult()
    platform = ctx.rules.platform(facts.platform)
    ship_by = facts.ship_by
    found = dispatch(order, platform.dispatch_evidence)
    evidence: dict[str, Any] = {
        "paid_at": facts.paid_at, "ship_by": ship_by,
        "ship_window_hours": platform.ship_window_hours,
        "warning_lead_hours": platform.ship_warning_lead_hours,
        "dispatch_evidence": platform.dispatch_evidence,
        "dispatch": found[1] if found else None,
    }
    dispatched = found[0] if found else None
    deadline = local_time(ship_by)
    occurrence = Occurrence(
        RULE, "", warn_at=ship_by - platform.ship_warning_lead, deadline=ship_by, rectified_at=dispatched,
        evidence=evidence, outcome_keys=("dispatch",), messages={
            "WARNING": f"订单{order.order_id}须在{deadline}前发货，目前仍未发货，"
                       "请尽快上传有效运单号，否则将判定为发货超时。",
            "RESOLVED": f"订单{order.order_id}已于{local_time(dispatched) if dispatched else deadline}发货，"
                        "发货超时预警解除。",
            "VIOLATION": f"订单{order.order_id}超过承诺发货时间{deadline}仍未发货，已构成发货超时。"})
    return collect(order.order_id, [occurrence], now, order.emitted)
