"""The waybill side: one state per normalised waybill number, fed by scans and order registrations.

Carriers know waybills, not orders, so scans are keyed by number. This side keeps every scan of
a number and the orders that uploaded it, and sends each order the scans that apply to it:
on registration the history (every scan from 30 days before the upload on, whenever it
arrived; a scan that came before its upload waits here), afterwards each new scan as it comes.
A number that serves several orders (合并发货) sends its scans to each of them.

State lifetime: `scan_retention_days` (30) after the number's last activity (its latest scan or
upload, in event time); then `on_time` deletes it, whatever happened to the orders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from processors.config import RulesConfig
from schemas.events import ParcelScanned
from schemas.internal import RegisterUpload, ScansForOrder
from schemas.state import OtherUpload, Registration, ScanFact, WaybillState


@dataclass
class WaybillStep:
    """The result of one waybill-side step: new state (None = delete), outputs, next wake-up."""

    state: WaybillState | None
    outputs: list[ScansForOrder] = field(default_factory=list)
    next_deadline: datetime | None = None


def scan_fact(scan: ParcelScanned) -> ScanFact:
    """The part of a scan that state keeps."""
    return ScanFact(event_id=scan.event_id, waybill_no=scan.waybill_no, carrier=scan.carrier,
                    status=scan.status, scan_at=scan.scan_at, city=scan.city, province=scan.province)


def _applies(scan: ScanFact, registration: Registration, rules: RulesConfig) -> bool:
    """A scan applies to an order that uploaded the number unless it is older than the window."""
    return scan.scan_at >= registration.uploaded_at - rules.scan_retention


def _other(reg: Registration, of: Registration, number: str) -> OtherUpload:
    return OtherUpload(order_id=reg.order_id, upload_event_id=reg.upload_event_id, carrier=reg.carrier,
                       uploaded_at=reg.uploaded_at, same_recipient=reg.recipient_hash == of.recipient_hash,
                       waybill_no=number)


def _join_reply(state: WaybillState, registration: Registration,
                rules: RulesConfig) -> ScansForOrder:
    """The answer to a registration: the number's applicable history and its other orders."""
    others = tuple(_other(o, registration, state.waybill_no) for o in state.orders
                   if o.order_id != registration.order_id)
    history = tuple(s for s in state.scans if _applies(s, registration, rules))
    return ScansForOrder(order_id=registration.order_id, waybill_no=state.waybill_no,
                         join_for=registration.upload_event_id, scans=history, others=others)


def _finish(state: WaybillState, outputs: list[ScansForOrder], rules: RulesConfig) -> WaybillStep:
    return WaybillStep(state, outputs, state.expires_at(rules.scan_retention))


def _touch(state: WaybillState, when: datetime) -> WaybillState:
    if state.last_activity is None or when > state.last_activity:
        return state.model_copy(update={"last_activity": when})
    return state


def apply_scan(state: WaybillState | None, scan: ParcelScanned, rules: RulesConfig) -> WaybillStep:
    """Keep a scan and send it to every order that uploaded the number; duplicates do nothing."""
    state = state or WaybillState(waybill_no=scan.waybill_no)
    if any(s.event_id == scan.event_id for s in state.scans):
        return WaybillStep(state, [], state.expires_at(rules.scan_retention))
    fact = scan_fact(scan)
    state = _touch(state.model_copy(update={"scans": state.scans + (fact,)}), fact.scan_at)
    outputs, sent = [], set()
    for registration in state.orders:
        if registration.order_id not in sent and _applies(fact, registration, rules):
            sent.add(registration.order_id)
            outputs.append(ScansForOrder(order_id=registration.order_id, waybill_no=state.waybill_no,
                                         scans=(fact,)))
    return _finish(state, outputs, rules)


def apply_registration(state: WaybillState | None, reg: RegisterUpload,
                       rules: RulesConfig) -> WaybillStep:
    """Register an order's upload and answer with the number's history and its other orders."""
    state = state or WaybillState(waybill_no=reg.waybill_no)
    # the internal feed carries the carrier as a plain string (the order side took it from a validated
    # upload); pydantic checks it against the Carrier Literal here
    registration = Registration(order_id=reg.order_id, upload_event_id=reg.upload_event_id,
                                carrier=reg.carrier, uploaded_at=reg.uploaded_at,  # type: ignore[arg-type]
                                recipient_hash=reg.recipient_hash)
    if any(r.upload_event_id == reg.upload_event_id and r.order_id == reg.order_id for r in state.orders):
        # a repeated registration (e.g. after a restart) gets the same answer again
        return _finish(state, [_join_reply(state, registration, rules)], rules)
    others = [r for r in state.orders if r.order_id != reg.order_id]
    state = _touch(state.model_copy(update={"orders": state.orders + (registration,)}), reg.uploaded_at)
    outputs = [_join_reply(state, registration, rules)]
    told = set()
    for other in others:  # the orders already here learn of the newcomer (for the reuse rule)
        if other.order_id not in told:
            told.add(other.order_id)
            outputs.append(ScansForOrder(order_id=other.order_id, waybill_no=state.waybill_no,
                                         others=(_other(registration, other, state.waybill_no),)))
    return _finish(state, outputs, rules)


def on_time(state: WaybillState, now: datetime, rules: RulesConfig) -> WaybillStep:
    """Delete the number's state once its retention has passed; otherwise wake at expiry."""
    expiry = state.expires_at(rules.scan_retention)
    if expiry is not None and now >= expiry:
        return WaybillStep(None, [], None)
    return WaybillStep(state, [], expiry)
