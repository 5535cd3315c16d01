"""Rule 4, NO_PICKUP (揽收超时): the courier has not picked up an uploaded number in time.

Trigger: per courier segment (an express order's format-valid carrier upload, `facts.courier_segments`),
at upload + pickup_hours (default 24h) there is no scan of the number with event time strictly
before that instant -> WARNING (occurred_at = upload + pickup_hours). Scans from before the upload
count (the segment's scans reach `scan_retention` back), so a parcel scanned before its number was
uploaded never warns.
Deadline: WARNING + no_pickup_rectify_hours (default 24h) -> VIOLATION at the deadline.
Rectification: the first scan of the number (any status) strictly before the deadline -> RESOLVED at
the scan's time (at the WARNING's time if the scan arrived late but is older than the WARNING).
改单号: the old number's rule stops at the next upload (`Segment.end`): no WARNING at or after it, and
an open WARNING ends RESOLVED with `evidence.resolution = "WAYBILL_REPLACED"`; the new number starts
its own occurrence (keyed by its upload's event_id).
State: none of its own; it reads the order's facts, uploads and scans (processors.order owns and
deletes them) and the emitted stages. One occurrence per courier upload.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from processors.config import RulesConfig
from processors.facts import Segment, courier_segments, scan_evidence, upload_evidence
from processors.lifecycle import Occurrence, RuleResult, collect, local_time
from schemas.state import OrderState

if TYPE_CHECKING:
    from processors.order import Context  # a type only: processors.order imports every rule

RULE = "NO_PICKUP"




def occurrence(order: OrderState, segment: Segment, rules: RulesConfig) -> Occurrence:
    """The NO_PICKUP occurrence of one courier segment."""
    assert order.facts is not None
    platform = rules.platform(order.facts.platform)
    upload = segment.upload
    warn_at = upload.uploaded_at + timedelta(hours=platform.pickup_hours)
    deadline = warn_at + timedelta(hours=platform.no_pickup_rectify_hours)
    first = segment.scans[0] if segment.scans else None
    picked_up = first.scan_at if first is not None else None
    oid, number = order.order_id, segment.number
    if picked_up is not None:
        resolved = f"订单{oid}的运单{number}已于{local_time(picked_up)}有快递揽收记录，揽收超时预警解除。"
    else:
        resolved = (f"订单{oid}已于{local_time(segment.end or warn_at)}更换运单号，"
                    f"原运单{number}的揽收超时预警解除。")
    return Occurrence(
        RULE, upload.event_id, warn_at=warn_at, deadline=deadline, rectified_at=picked_up, ends_at=segment.end,
        waybill_no=number, outcome_keys=("first_scan", "replaced_at"),
        evidence={"upload": upload_evidence(upload), "pickup_hours": platform.pickup_hours,
                  "no_pickup_rectify_hours": platform.no_pickup_rectify_hours,
                  "first_scan": scan_evidence(first), "replaced_at": segment.end},
        messages={
            "WARNING": f"订单{oid}的运单{number}于{local_time(upload.uploaded_at)}上传，"
                       f"至{local_time(warn_at)}仍无快递揽收记录，请尽快联系快递揽收，"
                       f"{local_time(deadline)}前仍未揽收将判定为揽收超时。",
            "RESOLVED": resolved,
            "VIOLATION": f"订单{oid}的运单{number}于{local_time(upload.uploaded_at)}上传，"
                         f"至{local_time(deadline)}仍无快递揽收记录，已构成揽收超时。"})


def evaluate(order: OrderState, now: datetime | None, ctx: Context, segments: Sequence[Segment]) -> RuleResult:
    """NO_PICKUP stages that have happened by `now`, and when to look again."""
    occurrences = [occurrence(order, segment, ctx.rules) for segment in courier_segments(order, segments)]
    return collect(order.order_id, occurrences, now, order.emitted)
