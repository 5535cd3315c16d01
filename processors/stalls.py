"""Rules 5 and 6, STALLED_AFTER_PICKUP (揽收后无更新) and TRACKING_STALLED (轨迹长时间未更新).

Both are one logic: after a scan S the parcel may rest for a time that depends on S's status;
if no later scan comes, it has stalled. Per courier segment (`facts.courier_segments`), for each
scan S of the number in event-time order:
  PICKED_UP                                -> STALLED_AFTER_PICKUP, stalled_after_pickup_hours (24h);
  OUT_FOR_DELIVERY                         -> TRACKING_STALLED, out_for_delivery_stall_hours (24h);
  IN_TRANSIT, FAILED_ATTEMPT, EXCEPTION    -> TRACKING_STALLED, stall_hours (48h), stall_hours_remote
                                              (72h) or stall_hours_very_remote (120h) by the
                                              recipient's province (never by the scans' provinces);
  DELIVERED, RETURNED                      -> no stall (the parcel's journey has ended).
Trigger: at S + rest the next scan (the one after S in event-time order) is not strictly before
that instant -> WARNING. A scan that joined the order through a later upload cannot make the order
warn before it had the number: the WARNING's time is `segment.joined(S + rest)`, i.e. the upload
when S + rest lies before it, and a next scan strictly before that time prevents the WARNING (the
stall ended before the order knew the number).
Deadline: WARNING + stall_rectify_hours (24h), counted from the WARNING's time -> VIOLATION.
Rectification: the next scan, any status, strictly before the deadline -> RESOLVED at its time.
Occurrences: one per (upload, scan), keyed by both event_ids: only a new scan starts a new stall,
so a stall that became a VIOLATION stays one and a later scan starts a fresh warning_id. A scan
that arrives out of order simply becomes the next scan of its predecessor (an already emitted
WARNING then resolves at its own time) and starts its own occurrence.
改单号: the old number's stalls stop at the next upload (`Segment.end`): no WARNING at or after it, an
open WARNING ends RESOLVED with `evidence.resolution = "WAYBILL_REPLACED"`.
State: none of its own; it reads the order's facts, uploads and scans (processors.order owns and
deletes them) and the emitted stages.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from processors.config import PlatformRules
from processors.facts import Segment, courier_segments, scan_evidence, threshold_text, upload_evidence
from processors.geo import remoteness
from processors.lifecycle import Occurrence, RuleResult, collect, local_time
from schemas.state import OrderState, ScanFact

if TYPE_CHECKING:
    from processors.order import Context  # a type only: processors.order imports every rule

AFTER_PICKUP = "STALLED_AFTER_PICKUP"
TRACKING = "TRACKING_STALLED"
RULE_NAMES = {AFTER_PICKUP: "揽收后无更新", TRACKING: "轨迹长时间未更新"}
STATUS_NAMES = {"PICKED_UP": "揽收", "IN_TRANSIT": "运输中", "OUT_FOR_DELIVERY": "派件",
                "FAILED_ATTEMPT": "派送失败", "EXCEPTION": "疑难件", "DELIVERED": "签收", "RETURNED": "退回"}
_IN_TRANSIT = ("IN_TRANSIT", "FAILED_ATTEMPT", "EXCEPTION")


def allowed_rest(status: str, destination: str, platform: PlatformRules) -> tuple[str, str, float] | None:
    """(rule, threshold key, hours) a parcel may rest after a scan of `status`; None: it may rest forever."""
    if status == "PICKED_UP":
        return AFTER_PICKUP, "stalled_after_pickup_hours", platform.stalled_after_pickup_hours
    if status == "OUT_FOR_DELIVERY":
        return TRACKING, "out_for_delivery_stall_hours", platform.out_for_delivery_stall_hours
    if status in _IN_TRANSIT:
        key = {"normal": "stall_hours", "remote": "stall_hours_remote",
               "very_remote": "stall_hours_very_remote"}[destination]
        return TRACKING, key, getattr(platform, key)
    return None


def stall(order: OrderState, segment: Segment, scan: ScanFact, following: ScanFact | None,
          destination: str, platform: PlatformRules) -> Occurrence | None:
    """The stall occurrence that starts at `scan` (None for a status after which no stall exists)."""
    assert order.facts is not None
    rest = allowed_rest(scan.status, destination, platform)
    if rest is None:
        return None
    rule, threshold, hours = rest
    warn_at = segment.joined(scan.scan_at + timedelta(hours=hours))
    deadline = warn_at + timedelta(hours=platform.stall_rectify_hours)
    moved = following.scan_at if following is not None else None
    if moved is not None and moved < warn_at and not any(e.rule == rule for e in order.emitted):
        return None  # the next scan came before the WARNING's time: prevented (most scans)
    oid, number, name = order.order_id, segment.number, RULE_NAMES[rule]
    since = f"自{local_time(scan.scan_at)}{STATUS_NAMES[scan.status]}扫描后"
    if moved is not None:
        resolved = f"订单{oid}的运单{number}已于{local_time(moved)}更新物流轨迹，{name}预警解除。"
    else:
        resolved = f"订单{oid}已于{local_time(segment.end or warn_at)}更换运单号，原运单{number}的{name}预警解除。"
    return Occurrence(
        rule, f"{segment.upload.event_id}:{scan.event_id}", warn_at=warn_at, deadline=deadline,
        rectified_at=moved, ends_at=segment.end, waybill_no=number, outcome_keys=("next_scan", "replaced_at"),
        evidence={"upload": upload_evidence(segment.upload), "last_scan": scan_evidence(scan),
                  "threshold": threshold, threshold: hours,
                  "stall_rectify_hours": platform.stall_rectify_hours,
                  "destination_province": order.facts.province, "destination": destination,
                  "next_scan": scan_evidence(following), "replaced_at": segment.end},
        messages={
            "WARNING": f"订单{oid}的运单{number}{since}已超过{threshold_text(hours)}小时无物流更新，"
                       f"请尽快联系快递核实，{local_time(deadline)}前仍无更新将判定为{name}。",
            "RESOLVED": resolved,
            "VIOLATION": f"订单{oid}的运单{number}{since}至{local_time(deadline)}仍无物流更新，已构成{name}。"})


def evaluate(order: OrderState, now: datetime | None, ctx: Context, segments: Sequence[Segment]) -> RuleResult:
    """STALLED_AFTER_PICKUP and TRACKING_STALLED stages that have happened by `now`, and when to look again."""
    if order.facts is None:
        return RuleResult()
    rules = ctx.rules
    platform = rules.platform(order.facts.platform)
    destination = remoteness(order.facts.province, rules.remote_provinces, rules.very_remote_provinces)
    occurrences = []
    for segment in courier_segments(order, segments):
        scans = segment.scans
        for k, scan in enumerate(scans):
            following = scans[k + 1] if k + 1 < len(scans) else None
            found = stall(order, segment, scan, following, destination, platform)
            if found is not None:
                occurrences.append(found)
    return collect(order.order_id, occurrences, now, order.emitted)
