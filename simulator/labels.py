"""The labeller: a plain reading of the contract's rules over the whole history of one order.

It answers two questions for every order of a simulated stream: which (rule, stage, occurred_at)
the contract requires on `violation-warnings`, and how the cancellation review must decide each
request. It is a test oracle, written apart from `processors/` on purpose so that the two can
check each other; it reads every event at once instead of streaming, which keeps it short.

Where the contract leaves a reading open (see `Ambiguous`), or where a deciding event lies
closer than `MIN_MARGIN` to the threshold it is compared with, the labeller says so instead of
guessing; the generator redraws such orders, so that every label it writes is unambiguous.
Thresholds are the contract's defaults (`Thresholds`); labels hold for a worker run with them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, get_args

from schemas.events import INPUT_MODELS, CancellationRequested, OrderPaid, ParcelScanned, WaybillUploaded
from schemas.outputs import Rule
from schemas.types import format_time
from simulator.carriers import SELF_PICKUP, is_valid_waybill
from simulator.geo import REMOTE, VERY_REMOTE, normalise_city, remoteness
from simulator.model import DAY, HOUR, Cancellation, Order, Recipient, Scan, Upload

RULES: tuple[str, ...] = get_args(Rule)
STAGES = ("WARNING", "VIOLATION", "RESOLVED")
MIN_MARGIN = HOUR
_NEVER = 2 ** 62

STOP_PHRASES = ("快递停发", "不要发快递", "自提", "到店自取", "自己来拿", "已约快递")
_STALL_STATUSES = ("PICKED_UP", "IN_TRANSIT", "FAILED_ATTEMPT", "EXCEPTION", "OUT_FOR_DELIVERY")
_LOGISTICS_EVIDENCE = ("EXCEPTION", "FAILED_ATTEMPT", "RETURNED")
_LOGISTICS_RULES = ("NO_PICKUP", "STALLED_AFTER_PICKUP", "TRACKING_STALLED", "NOT_DELIVERED")
_MERCHANT_FAULT_REASONS = ("OUT_OF_STOCK", "QUALITY_ISSUE", "OTHER")


class Ambiguous(ValueError):
    """The contract does not fix the outcome for this order, or an event sits too near a threshold."""


@dataclass(frozen=True)
class Thresholds:
    """The contract's default thresholds, in seconds."""

    ship_window: int = 48 * HOUR
    ship_warning_lead: int = 6 * HOUR
    rectify_window: int = 24 * HOUR          # rules 2 and 3: upload + 24 h
    no_pickup: int = 24 * HOUR
    stalled_after_pickup: int = 24 * HOUR
    stalled_in_transit: int = 48 * HOUR
    stalled_remote: int = 72 * HOUR
    stalled_very_remote: int = 120 * HOUR
    stalled_out_for_delivery: int = 24 * HOUR
    warning_to_violation: int = 24 * HOUR    # "+ 24h" of rules 4, 5, 6
    not_delivered: int = 6 * DAY
    not_delivered_to_violation: int = 4 * DAY
    reuse_window: int = 30 * DAY
    scan_window: int = 30 * DAY
    detail_min_chars: int = 4

    def stall(self, status: str, destination: str) -> int | None:
        """How long a parcel may rest after a scan of `status` before it counts as stalled."""
        if status == "PICKED_UP":
            return self.stalled_after_pickup
        if status == "OUT_FOR_DELIVERY":
            return self.stalled_out_for_delivery
        if status in ("IN_TRANSIT", "FAILED_ATTEMPT", "EXCEPTION"):
            if destination == VERY_REMOTE:
                return self.stalled_very_remote
            if destination == REMOTE:
                return self.stalled_remote
            return self.stalled_in_transit
        return None


DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage the contract requires on `violation-warnings`; `occurrence` groups one warning_id."""

    rule: str
    stage: str
    at: int
    occurrence: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Decision:
    """How the cancellation review must decide one request."""

    event_id: str
    reason: str
    decision: str
    code: str


@dataclass(slots=True)
class Verdict:
    """Everything the contract requires for one order, and how close its closest call was."""

    stages: list[Stage]
    decisions: list[Decision]
    margin: int | None   # seconds between a deciding event and its threshold; None: no such call


class World:
    """Every order and every scan of a stream, indexed the way the rules look them up."""

    def __init__(self) -> None:
        self.orders: list[Order] = []
        self.scans: dict[str, list[Scan]] = {}
        self.uploads: dict[tuple[str, str], list[tuple[int, int, tuple[str, ...]]]] = {}

    def add_order(self, order: Order) -> None:
        """Index an order and its uploads (for the reuse check)."""
        self.orders.append(order)
        for upload in order.uploads:
            if upload.number:
                self.uploads.setdefault((upload.carrier, upload.number), []).append(
                    (upload.t, order.index, order.recipient.identity))

    def remove_order(self, order: Order) -> None:
        """Forget an order again (the generator drops a draw it rejected)."""
        if self.orders and self.orders[-1] is order:
            self.orders.pop()
        else:
            self.orders = [o for o in self.orders if o is not order]
        for upload in order.uploads:
            if upload.number:
                key = (upload.carrier, upload.number)
                self.uploads[key] = [u for u in self.uploads[key] if u[1] != order.index]
                if not self.uploads[key]:
                    del self.uploads[key]

    def add_scans(self, scans: Iterable[Scan]) -> None:
        """Index scans by waybill number, each number's scans in event-time order."""
        touched = []
        for scan in scans:
            bucket = self.scans.setdefault(scan.number, [])
            if not bucket or bucket[-1].t > scan.t:
                touched.append(bucket)
            bucket.append(scan)
        for bucket in touched:
            bucket.sort(key=lambda s: s.t)


class _Margin:
    """The smallest distance seen between a deciding event and the threshold it decided against."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: int | None = None

    def near(self, when: int, threshold: int) -> None:
        if when >= _NEVER or threshold >= _NEVER:
            return
        gap = abs(when - threshold)
        if self.value is None or gap < self.value:
            self.value = gap


@dataclass(slots=True)
class _Run:
    """The state of one evaluation."""

    order: Order
    world: World
    th: Thresholds
    stages: list[Stage] = field(default_factory=list)
    margin: _Margin = field(default_factory=_Margin)

    def add(self, rule: str, stage: str, at: int, occurrence: tuple[Any, ...]) -> None:
        self.stages.append(Stage(rule, stage, at, occurrence))

    def deadline_rule(self, rule: str, occurrence: tuple[Any, ...], warn_at: int, deadline: int,
                      rectified_at: int | None, active_until: int = _NEVER) -> None:
        """WARNING, then RESOLVED by a rectifying event strictly before the deadline, else VIOLATION."""
        self.add(rule, "WARNING", warn_at, occurrence)
        if rectified_at is not None:
            self.margin.near(rectified_at, deadline)
        self.margin.near(active_until, deadline)
        if rectified_at is not None and rectified_at < deadline:
            self.add(rule, "RESOLVED", rectified_at, occurrence)
        elif deadline < active_until:
            self.add(rule, "VIOLATION", deadline, occurrence)
        else:
            raise Ambiguous(f"{rule}: the number was replaced while its warning was open")


def _segments(order: Order) -> list[tuple[Upload, int, int]]:
    """Each upload with the span in which its number is the order's current one."""
    uploads = sorted(order.uploads, key=lambda u: u.t)
    return [(u, u.t, uploads[i + 1].t if i + 1 < len(uploads) else _NEVER) for i, u in enumerate(uploads)]


def _scans_for(run: _Run, number: str | None, start: int, end: int) -> list[Scan]:
    """The scans of `number` that apply to the order while the number is its current one."""
    if not number:
        return []
    return [s for s in run.world.scans.get(number, ()) if start - run.th.scan_window <= s.t < end]


def _is_courier_upload(upload: Upload) -> bool:
    return upload.carrier != SELF_PICKUP and is_valid_waybill(upload.carrier, upload.waybill_no)


def _ship_overdue(run: _Run, segments: list[tuple[Upload, int, int]]) -> None:
    order, th = run.order, run.th
    ship_by = order.ship_by if order.ship_by is not None else order.paid_at + th.ship_window
    warn_at = ship_by - th.ship_warning_lead
    run.margin.near(warn_at, order.paid_at)
    if warn_at <= order.paid_at:
        raise Ambiguous("SHIP_OVERDUE: paid after its own warning time")
    dispatches = []
    for upload, start, end in segments:
        if upload.carrier == SELF_PICKUP:
            dispatches.append(start)
        elif order.platform == "tiktok":
            scans = _scans_for(run, upload.number, start, end)
            if scans:
                dispatches.append(max(scans[0].t, start))   # a scan joined by its upload counts then
        elif is_valid_waybill(upload.carrier, upload.waybill_no):
            dispatches.append(start)
    dispatched = min(dispatches, default=None)
    if dispatched is not None:
        run.margin.near(dispatched, warn_at)
        if dispatched < warn_at:
            return
    run.deadline_rule("SHIP_OVERDUE", ("SHIP_OVERDUE",), warn_at, ship_by, dispatched)


def _waybill_invalid(run: _Run, segments: list[tuple[Upload, int, int]]) -> None:
    for i, (upload, start, _end) in enumerate(segments):
        if upload.carrier == SELF_PICKUP or is_valid_waybill(upload.carrier, upload.waybill_no):
            continue
        deadline = start + run.th.rectify_window
        replaced_at = None
        if i + 1 < len(segments):
            replacement, replaced_at, _ = segments[i + 1]
            if replaced_at < deadline and not _is_courier_upload(replacement):
                raise Ambiguous("WAYBILL_INVALID: replaced by another number that is not a valid one")
        run.deadline_rule("WAYBILL_INVALID", ("WAYBILL_INVALID", i), start, deadline, replaced_at)


def _waybill_reused(run: _Run, i: int, upload: Upload, start: int,
                    segments: list[tuple[Upload, int, int]]) -> None:
    order, th = run.order, run.th
    flagged = False
    for t, other, identity in run.world.uploads.get((upload.carrier, upload.number or ""), ()):
        if other == order.index or identity == order.recipient.identity:
            continue
        run.margin.near(t, start)
        if t < start and start - t <= th.reuse_window:
            flagged = True
    if not flagged:
        return
    deadline = start + th.rectify_window
    replaced_at = None
    if i + 1 < len(segments):
        replacement, replaced_at, _ = segments[i + 1]
        if replacement.number == upload.number:
            raise Ambiguous("WAYBILL_REUSED: the same number uploaded again")
    run.deadline_rule("WAYBILL_REUSED", ("WAYBILL_REUSED", i), start, deadline, replaced_at)


def _no_pickup(run: _Run, i: int, start: int, end: int, scans: list[Scan]) -> None:
    warn_at = start + run.th.no_pickup
    first = scans[0] if scans else None
    if first is not None:
        run.margin.near(first.t, warn_at)
        if first.t < warn_at:
            return
    run.margin.near(end, warn_at)
    if warn_at >= end:
        return
    run.deadline_rule("NO_PICKUP", ("NO_PICKUP", i), warn_at, warn_at + run.th.warning_to_violation,
                      first.t if first is not None else None, end)


def _stalls(run: _Run, i: int, start: int, end: int, scans: list[Scan]) -> None:
    destination = remoteness(run.order.recipient.province)
    for k, scan in enumerate(scans):
        rest = run.th.stall(scan.status, destination)
        if rest is None:
            continue
        following = scans[k + 1] if k + 1 < len(scans) else None
        warn_at = scan.t + rest
        if following is not None:
            run.margin.near(following.t, warn_at)
            if following.t < warn_at:
                continue
        run.margin.near(end, warn_at)
        if warn_at >= end:
            continue
        run.margin.near(warn_at, start)
        if warn_at <= start:
            raise Ambiguous("stall: the parcel had stalled before the order uploaded its number")
        rule = "STALLED_AFTER_PICKUP" if scan.status == "PICKED_UP" else "TRACKING_STALLED"
        run.deadline_rule(rule, (rule, i, k), warn_at, warn_at + run.th.warning_to_violation,
                          following.t if following is not None else None, end)


def _address_mismatch(run: _Run, i: int, start: int, scans: list[Scan]) -> None:
    at_door = [s for s in scans if s.status in ("OUT_FOR_DELIVERY", "DELIVERED")]
    if not at_door:
        return
    home = normalise_city(run.order.recipient.city)
    wrong = [s for s in at_door if normalise_city(s.city) != home]
    if not wrong:
        return
    if wrong[0] is not at_door[0]:
        raise Ambiguous("ADDRESS_MISMATCH: a wrong city only after a delivery scan in the right one")
    run.add("ADDRESS_MISMATCH", "VIOLATION", max(wrong[0].t, start), ("ADDRESS_MISMATCH", i))


def _pickup_before_payment(run: _Run, i: int, start: int, scans: list[Scan]) -> None:
    if not scans:
        return
    paid_at = run.order.paid_at
    run.margin.near(scans[0].t, paid_at)
    if scans[0].t < paid_at:
        run.add("PICKUP_BEFORE_PAYMENT", "VIOLATION", max(scans[0].t, start, paid_at),
                ("PICKUP_BEFORE_PAYMENT", i))


def _not_delivered(run: _Run, i: int, start: int, end: int, scans: list[Scan]) -> tuple[int, int | None] | None:
    if not scans:
        return None
    warn_at = scans[0].t + run.th.not_delivered
    delivered = next((s.t for s in scans if s.status == "DELIVERED"), None)
    if delivered is not None:
        run.margin.near(delivered, warn_at)
        if delivered < warn_at:
            return scans[0].t, delivered
    run.margin.near(end, warn_at)
    if warn_at >= end:
        return scans[0].t, delivered
    run.margin.near(warn_at, start)
    if warn_at <= start:
        raise Ambiguous("NOT_DELIVERED: already overdue when the order uploaded the number")
    run.deadline_rule("NOT_DELIVERED", ("NOT_DELIVERED", i), warn_at,
                      warn_at + run.th.not_delivered_to_violation, delivered, end)
    return scans[0].t, delivered


def _stop_remark(run: _Run) -> None:
    order = run.order
    if not order.remark or not any(p in order.remark for p in STOP_PHRASES):
        return
    occurrence = ("EXPRESS_STOP_REMARK",)
    run.add("EXPRESS_STOP_REMARK", "WARNING", order.paid_at, occurrence)
    if order.uploads:
        first = min(u.t for u in order.uploads)
        run.add("EXPRESS_STOP_REMARK", "RESOLVED", first, occurrence)


def _review(run: _Run, segments: list[tuple[Upload, int, int]]) -> tuple[list[Decision], int | None]:
    """The contract's cancellation review, first match decides; returns the decisions and when approved."""
    order, th = run.order, run.th
    known = [(max(s.t, start), s.status) for upload, start, end in segments
             for s in _scans_for(run, upload.number, start, end)]
    moments = [order.paid_at] + [u.t for u in order.uploads] + [t for t, _ in known] + [s.at for s in run.stages]
    decisions, cancelled_at = [], None
    for request in sorted(order.cancellations, key=lambda c: c.t):
        if request.t <= order.paid_at:
            raise Ambiguous("cancellation: requested before the order was paid")
        for moment in moments:
            run.margin.near(request.t, moment)
        before = [status for t, status in known if t < request.t]
        if cancelled_at is not None:
            code = "ALREADY_CANCELLED"
        elif "DELIVERED" in before:
            code = "ALREADY_DELIVERED"
        elif request.reason == "OTHER" and sum(not ch.isspace() for ch in request.detail) < th.detail_min_chars:
            code = "DETAIL_REQUIRED"
        elif request.reason == "LOGISTICS_EXCEPTION" and not any(s in _LOGISTICS_EVIDENCE for s in before) \
                and not any(s.rule in _LOGISTICS_RULES and s.stage == "WARNING" and s.at < request.t
                            for s in run.stages):
            code = "NO_LOGISTICS_EVIDENCE"
        elif request.reason in ("OUT_OF_STOCK", "QUALITY_ISSUE") and before:
            code = "IN_TRANSIT"
        else:
            code = "APPROVED"
            cancelled_at = request.t
        decisions.append(Decision(request.event_id, request.reason,
                                  "APPROVED" if code == "APPROVED" else "REJECTED", code))
    return decisions, cancelled_at


def _cut_at_cancellation(stages: list[Stage], cancelled_at: int) -> list[Stage]:
    """No new warnings after an approved cancellation; open ones end RESOLVED (ORDER_CANCELLED)."""
    kept: list[Stage] = []
    last: dict[tuple[Any, ...], Stage] = {}
    for stage in stages:
        if stage.at < cancelled_at:
            kept.append(stage)
            last[stage.occurrence] = stage
    for occurrence, stage in last.items():
        if stage.stage == "WARNING":
            kept.append(Stage(stage.rule, "RESOLVED", cancelled_at, occurrence))
    return kept


def _stage_order(stage: Stage) -> tuple[int, int, int]:
    return stage.at, RULES.index(stage.rule), STAGES.index(stage.stage)


def evaluate(order: Order, world: World, th: Thresholds = DEFAULT_THRESHOLDS) -> Verdict:
    """What the contract requires on the output topics for `order`; raises Ambiguous where it is open."""
    run = _Run(order, world, th)
    segments = _segments(order)
    _ship_overdue(run, segments)
    _waybill_invalid(run, segments)
    scanned_numbers = []
    if order.delivery_mode == "express":
        for i, (upload, start, end) in enumerate(segments):
            if not _is_courier_upload(upload):
                continue
            _waybill_reused(run, i, upload, start, segments)
            scans = _scans_for(run, upload.number, start, end)
            _no_pickup(run, i, start, end, scans)
            _stalls(run, i, start, end, scans)
            _address_mismatch(run, i, start, scans)
            _pickup_before_payment(run, i, start, scans)
            span = _not_delivered(run, i, start, end, scans)
            if span is not None:
                scanned_numbers.append(span)
    if len(scanned_numbers) > 1:
        # Rule 9 counts "6 days after the first scan": of the number or of the order? Equal here.
        overall = min(first for first, _ in scanned_numbers) + th.not_delivered
        delivered = scanned_numbers[-1][1]
        if delivered is None or delivered >= overall:
            raise Ambiguous("NOT_DELIVERED: several numbers with scans and a late delivery")
        run.margin.near(delivered, overall)
    _stop_remark(run)
    decisions, cancelled_at = _review(run, segments)
    stages = run.stages if cancelled_at is None else _cut_at_cancellation(run.stages, cancelled_at)
    stages.sort(key=_stage_order)
    return Verdict(stages, decisions, run.margin.value)


def _seconds(value: datetime) -> int:
    return int(value.timestamp())


def world_from_messages(messages: Iterable[dict[str, Any]]) -> World:
    """Read a stream of `{"topic", "value"}` messages (e.g. a scenario file) into a World."""
    world = World()
    orders: dict[str, Order] = {}
    uploads: dict[str, list[Upload]] = {}
    requests: dict[str, list[Cancellation]] = {}
    scans: list[Scan] = []
    seen: set[str] = set()
    for message in messages:
        topic = message.get("topic")
        if topic not in INPUT_MODELS or "value" not in message:
            continue
        event = INPUT_MODELS[topic].model_validate(message["value"])
        event_id = getattr(event, "event_id", None)
        if event_id is not None:
            if event_id in seen:        # the same event delivered twice has no second effect
                continue
            seen.add(event_id)
        if isinstance(event, OrderPaid) and event.order_id not in orders:
            r = event.recipient
            orders[event.order_id] = Order(
                index=len(orders), order_id=event.order_id, shop_id=event.shop_id, platform=event.platform,
                paid_at=_seconds(event.paid_at), amount=str(event.amount), currency=event.currency,
                recipient=Recipient(r.name, r.phone, r.province, r.city, r.district, r.address),
                ship_by=_seconds(event.ship_by) if event.ship_by else None, presale=event.presale,
                delivery_mode=event.delivery_mode, remark=event.buyer_remark, event_id=event.event_id)
        elif isinstance(event, WaybillUploaded):
            uploads.setdefault(event.order_id, []).append(
                Upload(event.event_id, _seconds(event.uploaded_at), event.carrier, event.waybill_no))
        elif isinstance(event, ParcelScanned):
            scans.append(Scan(event.event_id, _seconds(event.scan_at), event.carrier, event.waybill_no,
                              event.status, event.city, event.province, event.description))
        elif isinstance(event, CancellationRequested):
            requests.setdefault(event.order_id, []).append(
                Cancellation(event.event_id, _seconds(event.requested_at), event.reason, event.detail))
    for order_id, order in orders.items():
        order.uploads = uploads.get(order_id, [])
        order.cancellations = requests.get(order_id, [])
        world.add_order(order)
    world.add_scans(scans)
    return world


def utc(t: int) -> str:
    """An instant as the contract's outputs write it: UTC with a trailing Z."""
    return format_time(datetime.fromtimestamp(t, UTC))
