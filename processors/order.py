"""The order side: one state machine per order_id, fed by order, upload, cancellation and scan events.

`apply(state, event, now, ctx)` and `on_time(state, now, ctx)` return a `Step`: the new state
(None deletes the key), the outputs (warnings for `violation-warnings`, registrations for the
waybill side) and the next instant at which `on_time` must run. `now` is the timer horizon:
stream time minus the allowed lateness (None before any time is known). Timed stages happen
only once `now` has reached them; stages brought about by an event happen when it is read.

State lifetime: as soon as no rule can fire any more (delivered, every occurrence over, no
timer pending) the order is *closed*: its facts, scans and history are dropped and only a small
marker is kept, so that a late or repeated event cannot start the order again. Every order (and
marker) is deleted `order_retention_days` (30) after its last activity, in the same step as, and
after, every timer due by then (stages, and a request waiting for its unknown order), however far
stream time jumped: every timer lies within the retention of the activity that set it. While the
scan history of an upload is on its way from the waybill side (`joins_pending`), no timed stage
fires, so a scan that is already known to the waybill side can never be missed by a deadline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from processors import (
    address_mismatch,
    cancellation,
    express_stop_remark,
    no_pickup,
    not_delivered,
    pickup_before_payment,
    ship_overdue,
    stalls,
    waybill_invalid,
    waybill_reused,
)
from processors.carriers import is_valid_waybill
from processors.config import RulesConfig
from processors.facts import Segment, order_segments
from processors.geo import normalise_city, normalise_province
from processors.lifecycle import SEVERITY, RuleResult, StageOut, earliest, new_stages, to_wire
from processors.pii import mask_name, mask_phone, recipient_hash
from processors.remarks import asks_no_courier
from schemas.events import CancellationRequested, OrderPaid, WaybillUploaded
from schemas.internal import PaidOrder, RegisterUpload, ScansForOrder
from schemas.outputs import CancellationOutcome, Refund, ViolationWarning
from schemas.shop import ShopFact
from schemas.state import Emitted, OrderFacts, OrderState, PendingRequest, UploadFact

OrderEvent = OrderPaid | PaidOrder | WaybillUploaded | CancellationRequested | ScansForOrder
Output = ViolationWarning | RegisterUpload | CancellationOutcome | ShopFact
Rule = Callable[[OrderState, datetime | None, "Context", Sequence[Segment]], RuleResult]

# Every rule of the order side, in the order their stages are listed when they tie.
RULES: tuple[Rule, ...] = (
    ship_overdue.evaluate,           # 1
    waybill_invalid.evaluate,        # 2
    waybill_reused.evaluate,         # 3
    no_pickup.evaluate,              # 4
    stalls.evaluate,                 # 5 and 6
    address_mismatch.evaluate,       # 7
    pickup_before_payment.evaluate,  # 8
    not_delivered.evaluate,          # 9
    express_stop_remark.evaluate,    # 10
)


@dataclass(frozen=True)
class Context:
    """What the processors need besides state, event and time: thresholds, the PII salt, the clock mode."""

    rules: RulesConfig
    salt: str
    # Set by the worker from its clock, not from the rules file: in wall mode rules 7 and 8 and the
    # cancellation review decide when their event is read (the contract's "immediate"); in event
    # mode they wait until stream time minus the lateness has passed the event, so that the
    # outputs do not depend on the order in which partitions are fetched.
    decide_on_read: bool = False


@dataclass
class Step:
    """The result of one step: new state (None = delete), outputs, next wake-up."""

    state: OrderState | None
    outputs: list[Output] = field(default_factory=list)
    next_deadline: datetime | None = None


def event_id(event: OrderEvent) -> str | None:
    """The dedup id of an event (scan batches are deduplicated per scan instead)."""
    return None if isinstance(event, ScansForOrder) else event.event_id


def event_time(event: OrderEvent) -> datetime | None:
    """The event time an order-side event carries (None for scan batches: each scan has its own)."""
    if isinstance(event, OrderPaid):
        return event.paid_at
    if isinstance(event, PaidOrder):
        return event.facts.paid_at
    if isinstance(event, WaybillUploaded):
        return event.uploaded_at
    if isinstance(event, CancellationRequested):
        return event.requested_at
    return None


def _facts(event: OrderPaid, ctx: Context) -> OrderFacts:
    platform = ctx.rules.platform(event.platform)
    r = event.recipient
    return OrderFacts(
        shop_id=event.shop_id, platform=event.platform, paid_at=event.paid_at,
        ship_by=event.ship_by or event.paid_at + platform.ship_window,
        amount=event.amount, currency=event.currency, delivery_mode=event.delivery_mode,
        presale=event.presale, stop_remark=asks_no_courier(event.buyer_remark),
        recipient_hash=recipient_hash(ctx.salt, r.name, r.phone, r.address),
        province=normalise_province(r.province), city=normalise_city(r.city),
        masked_name=mask_name(r.name), masked_phone=mask_phone(r.phone))


def paid_order(event: OrderPaid, ctx: Context) -> PaidOrder:
    """`event` as it may travel to another partition: the recipient reduced, never in clear."""
    return PaidOrder(event_id=event.event_id, order_id=event.order_id, facts=_facts(event, ctx))


def _registrations(state: OrderState) -> tuple[OrderState, list[Output]]:
    """Register every not yet registered numbered upload with the waybill side (needs the recipient)."""
    if state.facts is None:
        return state, []
    outputs: list[Output] = []
    forwarded, pending = list(state.forwarded), list(state.joins_pending)
    for upload in state.uploads:
        if upload.waybill_no and upload.event_id not in forwarded:
            outputs.append(RegisterUpload(
                order_id=state.order_id, upload_event_id=upload.event_id, carrier=upload.carrier,
                waybill_no=upload.waybill_no, uploaded_at=upload.uploaded_at,
                recipient_hash=state.facts.recipient_hash))
            forwarded.append(upload.event_id)
            pending.append(upload.event_id)
    if not outputs:
        return state, []
    return state.model_copy(update={"forwarded": tuple(forwarded),
                                    "joins_pending": tuple(pending)}), outputs


def _record(state: OrderState, event: OrderEvent, ctx: Context) -> OrderState:
    """Fold one event into the order's facts (idempotent per event_id / scan event_id)."""
    if isinstance(event, OrderPaid):
        return state.model_copy(update={"facts": state.facts or _facts(event, ctx)})
    if isinstance(event, PaidOrder):
        return state.model_copy(update={"facts": state.facts or event.facts})
    if isinstance(event, WaybillUploaded):
        upload = UploadFact(event_id=event.event_id, carrier=event.carrier, waybill_no=event.waybill_no,
                            uploaded_at=event.uploaded_at,
                            valid=is_valid_waybill(event.carrier, event.waybill_no))
        return state.model_copy(update={"uploads": state.uploads + (upload,)})
    if isinstance(event, ScansForOrder):
        known = {s.event_id for s in state.scans}
        fresh = tuple(s for s in event.scans if s.event_id not in known)
        others = {(o.order_id, o.upload_event_id) for o in state.others}
        update: dict[str, Any] = {
            "scans": state.scans + fresh,
            "others": state.others + tuple(o for o in event.others
                                           if (o.order_id, o.upload_event_id) not in others)}
        if event.join_for is not None:
            update["joins_pending"] = tuple(p for p in state.joins_pending if p != event.join_for)
        return state.model_copy(update=update)
    if isinstance(event, CancellationRequested):
        request = PendingRequest(event_id=event.event_id, shop_id=event.shop_id, reason=event.reason,
                                 detail=event.detail, requested_at=event.requested_at)
        return state.model_copy(update={"requests": state.requests + (request,)})
    return state


def _latest(*times: datetime | None) -> datetime | None:
    present = [t for t in times if t is not None]
    return max(present) if present else None


def _evaluate(state: OrderState, now: datetime | None, ctx: Context) -> Step:
    """Run every rule and the cancellation review, emit what is new, compute the next wake-up."""
    horizon = None if state.joins_pending else now
    # every rule, the review and the closing check read the same uploads and scans: split them once
    segments = order_segments(state, ctx.rules)
    stages: list[StageOut] = []
    wake: datetime | None = None
    if state.cancelled_at is None:
        for rule in RULES:
            result = rule(state, horizon, ctx, segments)
            stages.extend(result.stages)
            wake = earliest(wake, result.next_at)
    fresh = new_stages(stages, state.emitted)
    state, outcomes, review_wake = _judge(state, segments, fresh, horizon, ctx)
    if state.cancelled_at is not None:
        wake = None  # no new warnings follow a cancelled order
        fresh = [s for s in fresh if s.occurred_at < state.cancelled_at]
        fresh += _cancelled_resolutions(state, fresh)
    wake = earliest(wake, review_wake)
    warnings: list[ViolationWarning] = []
    if fresh and state.facts is not None:
        warnings = [_warning(state, stage) for stage in fresh]
        state = state.model_copy(update={"emitted": state.emitted + tuple(_emitted(s) for s in fresh)})
    # stages before the decision, the decision, then what the cancellation resolved
    by_cancel = [w for w in warnings if w.evidence.get("resolution") == "ORDER_CANCELLED"]
    outputs: list[Output] = [*(w for w in warnings if w not in by_cancel), *outcomes, *by_cancel]
    outputs += [ShopFact(kind="SHIP_OVERDUE_VIOLATION", fact_id=f"overdue:{w.warning_id}", shop_id=w.shop_id,
                         platform=w.platform, order_id=w.order_id, at=w.occurred_at)
                for w in warnings if w.rule == "SHIP_OVERDUE" and w.stage == "VIOLATION"]
    facts, cancelled_at = state.facts, state.cancelled_at
    if facts is not None and cancelled_at is not None:  # only an approval is a merchant-fault cancellation
        outputs += [ShopFact(kind="MERCHANT_FAULT_CANCEL", fact_id=f"cancel:{o.request_event_id}", shop_id=o.shop_id,
                             platform=facts.platform, order_id=o.order_id, at=cancelled_at)
                    for o in outcomes if isinstance(o, CancellationOutcome) and o.merchant_fault]
    expiry = state.last_activity + ctx.rules.order_retention if state.last_activity else None
    if wake is None and _settled(state, segments):
        # close only once every event within the lateness of the last one has been read
        if now is not None and state.last_activity is not None and now >= state.last_activity:
            state = OrderState(order_id=state.order_id, partition=state.partition, closed=True,
                               last_activity=state.last_activity, seen=state.seen)
        else:
            wake = state.last_activity
    return Step(state, outputs, earliest(wake, expiry))


def _emitted(stage: StageOut) -> Emitted:
    # StageOut holds rule and stage as plain strings; pydantic checks them against the Literals here
    return Emitted(warning_id=stage.warning_id, rule=stage.rule, stage=stage.stage,  # type: ignore[arg-type]
                   occurred_at=stage.occurred_at, waybill_no=stage.waybill_no)


def _judge(state: OrderState, segments: Sequence[Segment], fresh: list[StageOut], horizon: datetime | None,
           ctx: Context) -> tuple[OrderState, list[Output], datetime | None]:
    """Decide the requests that are due: at requested_at, or +lateness when the order is unknown."""
    if not state.requests:
        return state, [], None
    lateness = ctx.rules.allowed_lateness
    outcomes: list[Output] = []
    pending: list[PendingRequest] = []
    wake: datetime | None = None
    for request in sorted(state.requests, key=lambda r: (r.requested_at, r.event_id)):
        due = request.requested_at + lateness if request.waiting else request.requested_at
        on_read = ctx.decide_on_read and not request.waiting
        if not on_read and (horizon is None or horizon < due):
            pending.append(request)
            wake = earliest(wake, due)
            continue
        if state.facts is None and not state.closed and not request.waiting:  # unknown: wait for its order-paid
            request, due = request.model_copy(update={"waiting": True}), request.requested_at + lateness
            # that wait is a timer like any other: when the horizon has already passed it (stream
            # time jumped), it fires in this pass, before retention can delete the order under it
            if horizon is None or horizon < due:
                pending.append(request)
                wake = earliest(wake, due)
                continue
        known = [(seg.joined(scan.scan_at), scan) for seg in segments for scan in seg.scans]
        verdict = cancellation.review(
            state.facts, reason=request.reason, detail=request.detail, requested_at=request.requested_at,
            cancelled=state.cancelled_at is not None, delivered_and_closed=state.closed, scans=known,
            emitted=list(state.emitted) + [_emitted(s) for s in fresh])
        outcomes.append(_outcome(state, segments, request, verdict, decided_at=due))
        if verdict.approved:
            state = state.model_copy(update={"cancelled_at": request.requested_at})
    return state.model_copy(update={"requests": tuple(pending)}), outcomes, wake


def _order_status(state: OrderState, segments: Sequence[Segment], at: datetime) -> str:
    """The order's status as the events before `at` make it (what the worker read later does not
    count, so the answer does not depend on how far it had read)."""
    if state.closed:
        return "DELIVERED"
    if state.facts is None:
        return "UNKNOWN"
    if state.cancelled_at is not None:
        return "CANCELLED"
    current = [seg for seg in segments if seg.start < at]
    if current and any(s.status == "DELIVERED" and current[-1].joined(s.scan_at) < at for s in current[-1].scans):
        return "DELIVERED"
    return "SHIPPED" if any(u.uploaded_at < at for u in state.uploads) else "PAID"


def _outcome(state: OrderState, segments: Sequence[Segment], request: PendingRequest, verdict: cancellation.Verdict,
             decided_at: datetime) -> CancellationOutcome:
    refund = Refund(amount=verdict.refund[0], currency=verdict.refund[1]) if verdict.refund else None
    status = "CANCELLED" if verdict.approved else _order_status(state, segments, request.requested_at)
    # the pending request and the verdict hold reason and code as plain strings (the request's reason was
    # validated on the way in, the codes are cancellation.review's); pydantic checks both against the Literals
    return CancellationOutcome(
        request_event_id=request.event_id, order_id=state.order_id, shop_id=request.shop_id,
        decision="APPROVED" if verdict.approved else "REJECTED", reason=request.reason,  # type: ignore[arg-type]
        code=verdict.code, explanation=verdict.explanation, refund=refund,  # type: ignore[arg-type]
        order_status=status, merchant_fault=verdict.merchant_fault, decided_at=decided_at)


def _cancelled_resolutions(state: OrderState, kept: list[StageOut]) -> list[StageOut]:
    """Open WARNINGs of a cancelled order end RESOLVED at requested_at (ORDER_CANCELLED)."""
    assert state.cancelled_at is not None
    records = list(state.emitted) + [_emitted(s) for s in kept]
    over = {r.warning_id for r in records if r.stage != "WARNING"}
    return [StageOut(r.warning_id, r.rule, "RESOLVED", state.cancelled_at,
                     message=f"订单{state.order_id}已取消，{r.rule}预警随之解除。",
                     evidence={"resolution": "ORDER_CANCELLED", "cancelled_at": state.cancelled_at},
                     waybill_no=r.waybill_no)
            for r in records if r.stage == "WARNING" and r.warning_id not in over]


def _settled(state: OrderState, segments: Sequence[Segment]) -> bool:
    """Delivered on its current number, nothing open, no history on its way: no rule can fire."""
    if state.facts is None or state.joins_pending or state.closed:
        return False
    if not segments or not any(s.status == "DELIVERED" for s in segments[-1].scans):
        return False
    over = {e.warning_id for e in state.emitted if e.stage != "WARNING"}
    return all(e.warning_id in over for e in state.emitted if e.stage == "WARNING")


def _warning(state: OrderState, stage: StageOut) -> ViolationWarning:
    facts = state.facts
    assert facts is not None
    evidence = to_wire(stage.evidence)
    evidence.setdefault("recipient", {"name": facts.masked_name, "phone": facts.masked_phone,
                                      "province": facts.province, "city": facts.city})
    # StageOut holds rule and stage, SEVERITY the severity as plain strings; pydantic checks them here
    return ViolationWarning(
        warning_id=stage.warning_id, order_id=state.order_id, shop_id=facts.shop_id,
        platform=facts.platform, rule=stage.rule, stage=stage.stage,  # type: ignore[arg-type]
        severity=SEVERITY[stage.stage], occurred_at=stage.occurred_at,  # type: ignore[arg-type]
        deadline=stage.deadline if stage.stage == "WARNING" else None,
        waybill_no=stage.waybill_no, evidence=evidence, message=stage.message)


def apply(state: OrderState | None, order_id: str, event: OrderEvent,
          now: datetime | None, ctx: Context) -> Step:
    """Apply one order-side event; a duplicate event_id changes nothing and emits nothing."""
    state = state or OrderState(order_id=order_id)
    if state.closed and not isinstance(event, CancellationRequested):
        # a late or repeated event of a finished order changes nothing; a request is still answered
        return Step(state, [], next_deadline(state, ctx))
    eid = event_id(event)
    if eid is not None:
        if eid in state.seen:  # no second effect; the order's timers stay as they were
            return Step(state, [], next_deadline(state, ctx))
        state = state.model_copy(update={"seen": state.seen + (eid,)})
    first_paid = isinstance(event, OrderPaid | PaidOrder) and state.facts is None
    state = _record(state, event, ctx)
    times = [event_time(event)] + [s.scan_at for s in getattr(event, "scans", ())]
    state = state.model_copy(update={"last_activity": _latest(state.last_activity, *times)})
    state, registrations = _registrations(state)
    step = _evaluate(state, now, ctx)
    step.outputs = registrations + step.outputs
    if first_paid and state.facts is not None:
        facts = state.facts
        step.outputs.append(ShopFact(kind="ORDER_PAID", fact_id=f"paid:{order_id}", shop_id=facts.shop_id,
                                     platform=facts.platform, order_id=order_id, at=facts.paid_at,
                                     ship_by=facts.ship_by))
    return step


def on_time(state: OrderState, now: datetime, ctx: Context) -> Step:
    """Stream time moved: fire every timer due by `now`; once retention has passed, delete the order after it."""
    step = _evaluate(state, now, ctx)
    expired = state.last_activity is not None and now >= state.last_activity + ctx.rules.order_retention
    if expired and not state.joins_pending:  # a history on its way may still bring stages
        return Step(None, step.outputs, None)
    return step


def next_deadline(state: OrderState, ctx: Context) -> datetime | None:
    """When `on_time` must next run for a stored order (used to rebuild timers after recovery)."""
    return _evaluate(state, None, ctx).next_deadline
