"""Rule 9, NOT_DELIVERED (超时未签收): a parcel is not delivered in time after its first scan.

Trigger: per courier segment (`facts.courier_segments`), at the number's first scan +
not_delivered_days (default 6 days) there is no DELIVERED scan strictly before that instant ->
WARNING. The first scan is the segment's earliest, scans from before the upload included; when
that instant lies before the upload (the scans joined the order later), the WARNING happens at the
upload (`segment.joined`), and a DELIVERED scan strictly before the upload prevents it.
Deadline: WARNING + not_delivered_rectify_days (default 4 days) -> VIOLATION.
Rectification: the first DELIVERED scan strictly before the deadline -> RESOLVED at its time.
改单号: the old number's rule stops at the next upload (`Segment.end`): no WARNING at or after it, an
open WARNING ends RESOLVED with `evidence.resolution = "WAYBILL_REPLACED"`; the new number counts
from its own first scan.
State: none of its own; it reads the order's facts, uploads and scans (processors.order owns and
deletes them) and the emitted stages. At most one occurrence per courier upload, keyed by its event_id.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from processors.config import RulesConfig
from processors.facts import Segment, courier_segments, scan_evidence, threshold_text, upload_evidence
from processors.lifecycle import Occurrence, RuleResult, collect, local_time
from schemas.state import OrderState

if TYPE_CHECKING:
    from processors.order import Context  # a type only: processors.order imports every rule

RULE = "NOT_DELIVERED"


def occurrence(order: OrderState, segment: Segment, rules: RulesConfig) -> Occurrence | None:
    """The NOT_DELIVERED occurrence of one courier segment (None before its first scan)."""
    if not segment.scans or order.facts is None:
        return None
    platform = rules.platform(order.facts.platform)
    first = segment.scans[0]
    delivery = next((s for s in segment.scans if s.status == "DELIVERED"), None)
    delivered = delivery.scan_at if delivery is not None else None
    warn_at = segment.joined(first.scan_at + timedelta(days=platform.not_delivered_days))
    deadline = warn_at + timedelta(days=platform.not_delivered_rectify_days)
    oid, number = order.order_id, segment.number
    since = f"自{local_time(first.scan_at)}首次扫描"
    if delivered is not None:
        resolved = f"订单{oid}的运单{number}已于{local_time(delivered)}签收，超时未签收预警解除。"
    else:
        resolved = f"订单{oid}已于{local_time(segment.end or warn_at)}更换运单号，原运单{number}的超时未签收预警解除。"
    return Occurrence(
        RULE, segment.upload.event_id, warn_at=warn_at, deadline=deadline, rectified_at=delivered,
        ends_at=segment.end, waybill_no=number, outcome_keys=("delivered_scan", "replaced_at"),
        evidence={"upload": upload_evidence(segment.upload), "first_scan": scan_evidence(first),
                  "not_delivered_days": platform.not_delivered_days,
                  "not_delivered_rectify_days": platform.not_delivered_rectify_days,
                  "delivered_scan": scan_evidence(delivery), "replaced_at": segment.end},
        messages={
            "WARNING": f"订单{oid}的运单{number}{since}已满{threshold_text(platform.not_delivered_days)}天仍未签收，"
                       f"请尽快联系快递派送，{local_time(deadline)}前仍未签收将判定为超时未签收。",
            "RESOLVED": resolved,
            "VIOLATION": f"订单{oid}的运单{number}{since}至{local_time(deadline)}仍未签收，已构成超时未签收。"})


def evaluate(order: OrderState, now: datetime | None, ctx: Context, segments: Sequence[Segment]) -> RuleResult:
    """NOT_DELIVERED stages that have happened by `now`, and when to look again."""
    found = (occurrence(order, segment, ctx.rules) for segment in courier_segments(order, segments))
    return collect(order.order_id, [o for o in found if o is not None], now, order.emitted)
