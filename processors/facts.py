"""Views over an order's state that several rules share: segments, courier uploads, joined times.

A *segment* is one upload with the span in which its number is the order's current one: from
its upload until the next upload (改单号 replaces it; rules of the old number stop there). The
scans that apply to a segment are those of its number with event time from `scan_retention`
before the upload up to the segment's end; a scan that came before the upload counts from the
upload on (`joined`): for a scan joined by a later upload, the upload is the latest proving event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from processors.config import RulesConfig
from schemas.state import OrderState, ScanFact, UploadFact


@dataclass(frozen=True)
class Segment:
    """One upload and the span [start, end) in which its number is current (end None: still is)."""

    index: int
    upload: UploadFact
    start: datetime
    end: datetime | None
    scans: tuple[ScanFact, ...]

    @property
    def number(self) -> str | None:
        return self.upload.waybill_no

    def joined(self, at: datetime) -> datetime:
        """When an event of this number becomes known to the order: not before the upload."""
        return max(at, self.start)

    def before_end(self, at: datetime) -> bool:
        """True while `at` is inside the segment (the number is still the current one)."""
        return self.end is None or at < self.end


def is_courier(upload: UploadFact) -> bool:
    """A real carrier number in its carrier's format (not SELF_PICKUP, not invalid)."""
    return upload.carrier != "SELF_PICKUP" and upload.valid


def is_express(order: OrderState) -> bool:
    """Rules 3-9 apply only to express orders (not self_pickup delivery)."""
    return order.facts is not None and order.facts.delivery_mode == "express"


def order_segments(order: OrderState, rules: RulesConfig) -> list[Segment]:
    """The order's uploads in event-time order, each with its span and the scans that apply.

    `processors.order` computes them once per evaluation and hands them to every rule.
    """
    uploads = sorted(order.uploads, key=lambda u: (u.uploaded_at, u.event_id))
    result = []
    for index, upload in enumerate(uploads):
        end = uploads[index + 1].uploaded_at if index + 1 < len(uploads) else None
        since = upload.uploaded_at - rules.scan_retention
        scans = tuple(sorted(
            (s for s in order.scans if s.waybill_no == upload.waybill_no and since <= s.scan_at
             and (end is None or s.scan_at < end)),
            key=lambda s: (s.scan_at, s.event_id)))
        result.append(Segment(index, upload, upload.uploaded_at, end, scans))
    return result


def courier_segments(order: OrderState, segments: Sequence[Segment]) -> list[Segment]:
    """The order's segments whose upload is a real, format-valid carrier number (none unless express)."""
    if not is_express(order):
        return []
    return [s for s in segments if is_courier(s.upload)]


def upload_evidence(upload: UploadFact) -> dict[str, Any]:
    """An upload as evidence: which event, which carrier and number, when."""
    return {"upload_event_id": upload.event_id, "carrier": upload.carrier,
            "waybill_no": upload.waybill_no, "uploaded_at": upload.uploaded_at}


def scan_evidence(scan: ScanFact | None) -> dict[str, Any] | None:
    """A scan as evidence (None stays None): which event, when, what status, where."""
    if scan is None:
        return None
    return {"scan_event_id": scan.event_id, "scan_at": scan.scan_at, "status": scan.status, "city": scan.city}


def threshold_text(value: float) -> str:
    """A threshold as a merchant reads it: 24, not 24.0."""
    return f"{value:g}"
