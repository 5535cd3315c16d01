"""Rule 3, WAYBILL_REUSED (单号重复): a number another buyer's order already uploaded.

Trigger: a courier upload of an express order (`facts.courier_segments`) whose carrier + number
another order uploaded strictly earlier, at most `reuse_window_days` before, for a different
recipient (`OtherUpload.same_recipient` False; one recipient's orders may share a number, 合并发货)
-> WARNING at the upload's time, brought about by the upload (the later of the proving uploads),
whenever the other order becomes known; deadline = upload + `reused_waybill_rectify_hours`.
Only the later upload is flagged: the order that had the number first did nothing wrong.
Deadline: still the same number -> VIOLATION (occurred_at = the deadline).
Rectification: the first later upload of another number (or carrier, or SELF_PICKUP) strictly
before the deadline -> RESOLVED at that upload's time. Uploading the flagged number again changes
nothing: the occurrence of its first flagged upload goes on, and no second one starts.
One occurrence per flagged upload (key: its event_id). Evidence names the other orders by
order_id and upload time only, never their recipients.
State: none of its own; it reads the order's facts, uploads and `others` (the orders that uploaded
the same numbers, filled in by the waybill side; processors.order owns and deletes them) and the
emitted stages.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from processors.facts import Segment, is_courier, is_express, upload_evidence
from processors.lifecycle import RuleResult, collect
from processors.waybill_invalid import upload_fix_occurrence
from schemas.state import OrderState, OtherUpload, UploadFact

if TYPE_CHECKING:
    from processors.order import Context  # a type only: processors.order imports every rule

RULE = "WAYBILL_REUSED"


def _same_number(a: UploadFact, b: UploadFact) -> bool:
    return (a.carrier, a.waybill_no) == (b.carrier, b.waybill_no)


def earlier_uses(order: OrderState, courier: list[Segment], window: timedelta) -> dict[int, list[OtherUpload]]:
    """Per courier segment (by index): the other recipients' uploads of its number that flag it."""
    flagged: dict[int, list[OtherUpload]] = {}
    for other in order.others:
        if other.same_recipient:
            continue
        hits = [s for s in courier if s.upload.carrier == other.carrier and s.number == other.waybill_no
                and other.uploaded_at < s.start <= other.uploaded_at + window]
        for s in hits:
            flagged.setdefault(s.index, []).append(other)
    return flagged


def evaluate(order: OrderState, now: datetime | None, ctx: Context, segments: Sequence[Segment]) -> RuleResult:
    """WAYBILL_REUSED stages that have happened by `now`, and when to look again."""
    facts = order.facts
    if facts is None or not is_express(order):
        return RuleResult()
    platform = ctx.rules.platform(facts.platform)
    rectify = timedelta(hours=platform.reused_waybill_rectify_hours)
    flagged = earlier_uses(order, [s for s in segments if is_courier(s.upload)],
                           timedelta(days=platform.reuse_window_days))
    occurrences = []
    for span in segments:
        upload, others = span.upload, flagged.get(span.index)
        if not others:
            continue
        before = segments[span.index - 1] if span.index else None
        if before is not None and _same_number(before.upload, upload) and before.index in flagged:
            continue  # the same number again: the earlier upload's occurrence goes on
        fix = next((s.upload for s in segments[span.index + 1:] if not _same_number(s.upload, upload)), None)
        deadline = upload.uploaded_at + rectify
        evidence: dict[str, Any] = {
            "upload": upload_evidence(upload),
            "other_orders": [{"order_id": o.order_id, "uploaded_at": o.uploaded_at}
                             for o in sorted(others, key=lambda o: (o.uploaded_at, o.order_id))],
            "reuse_window_days": platform.reuse_window_days,
            "rectify_hours": platform.reused_waybill_rectify_hours,
            "deadline": deadline,
        }
        occurrences.append(upload_fix_occurrence(
            RULE, order.order_id, upload, fix, deadline, evidence,
            warning="已被其他收件人的订单使用，请在{by}前更换为本订单的运单号，否则将判定为单号重复。",
            violation="与其他收件人的订单重复，截至{by}仍未更换，已构成单号重复。",
            fixed="更换为", name="单号重复"))
    return collect(order.order_id, occurrences, now, order.emitted)
