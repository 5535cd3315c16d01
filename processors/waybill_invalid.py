"""Rule 2, WAYBILL_INVALID (单号异常): an uploaded number does not fit its declared carrier's format.

Trigger: an upload whose normalised number fails the declared carrier's format (`UploadFact.valid`
is False; a SELF_PICKUP upload carries no number and is never invalid) -> WARNING at the upload's
time, brought about by the upload itself (deadline = upload + `invalid_waybill_rectify_hours`).
Deadline: no valid upload strictly before it -> VIOLATION (occurred_at = the deadline).
Rectification: the first later upload of a valid number (a format-valid number, or SELF_PICKUP)
strictly before the deadline -> RESOLVED at that upload's time. A later upload that is invalid
again does not rectify: it starts its own occurrence, and both wait for a valid number.
Applies to every order, express or self-pickup. One occurrence per invalid upload (key: its
event_id), so a second invalid number is a second warning.
State: none of its own; it reads the order's facts and uploads (processors.order owns and
deletes them) and the emitted stages.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from processors.carriers import CARRIER_PATTERNS
from processors.facts import Segment, upload_evidence
from processors.lifecycle import Occurrence, RuleResult, collect, local_time
from schemas.state import OrderState, UploadFact

if TYPE_CHECKING:
    from processors.order import Context  # a type only: processors.order imports every rule

RULE = "WAYBILL_INVALID"



def what_was_uploaded(upload: UploadFact) -> str:
    """An upload in a merchant's words: 运单号 X, or 自提 for a SELF_PICKUP upload."""
    return "自提" if upload.carrier == "SELF_PICKUP" else f"运单号{upload.waybill_no}"


def upload_fix_occurrence(rule: str, order_id: str, upload: UploadFact, fix: UploadFact | None,
                          deadline: datetime, evidence: dict[str, Any], *, warning: str, violation: str,
                          fixed: str, name: str) -> Occurrence:
    """An upload that is wrong as uploaded (rules 2 and 3): WARNING at the upload, RESOLVED by the
    fixing upload before `deadline`, else VIOLATION. `warning`/`violation` follow the number
    and may use {by} (the deadline, local time)."""
    evidence["replacement"] = upload_evidence(fix) if fix is not None else None
    number, by = upload.waybill_no, local_time(deadline)
    prefix = f"订单{order_id}于{local_time(upload.uploaded_at)}上传的{upload.carrier}运单号{number}"
    resolved = (f"订单{order_id}已于{local_time(fix.uploaded_at)}{fixed}{what_was_uploaded(fix)}，"
                f"运单号{number}的{name}预警解除。") if fix else ""
    return Occurrence(
        rule, upload.event_id, warn_at=upload.uploaded_at, deadline=deadline,
        rectified_at=fix.uploaded_at if fix else None, warning_on_event=True, waybill_no=number,
        outcome_keys=("replacement",),
        evidence=evidence, messages={"WARNING": prefix + warning.format(by=by), "RESOLVED": resolved,
                                     "VIOLATION": prefix + violation.format(by=by)})


def evaluate(order: OrderState, now: datetime | None, ctx: Context, segments: Sequence[Segment]) -> RuleResult:
    """WAYBILL_INVALID stages that have happened by `now`, and when to look again."""
    facts = order.facts
    if facts is None:
        return RuleResult()
    platform = ctx.rules.platform(facts.platform)
    rectify = timedelta(hours=platform.invalid_waybill_rectify_hours)
    occurrences = []
    for span in segments:
        upload = span.upload
        if upload.valid:
            continue
        deadline = upload.uploaded_at + rectify
        # "Next" in the segments' order: the order in which uploads replace each other.
        fix = next((s.upload for s in segments[span.index + 1:] if s.upload.valid), None)
        evidence: dict[str, Any] = {
            "upload": upload_evidence(upload),
            "expected_format": CARRIER_PATTERNS[upload.carrier].pattern,
            "rectify_hours": platform.invalid_waybill_rectify_hours,
            "deadline": deadline,
        }
        occurrences.append(upload_fix_occurrence(
            RULE, order.order_id, upload, fix, deadline, evidence,
            warning="不符合该快递公司的单号格式，请在{by}前上传正确的运单号，否则将判定为单号异常。",
            violation="格式有误，截至{by}仍未更正为有效单号，已构成单号异常。",
            fixed="更正为", name="单号异常"))
    return collect(order.order_id, occurrences, now, order.emitted)
