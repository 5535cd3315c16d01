"""Shop alerts: a shop's seller-fault cancel rate and late-dispatch rate over a trailing window.

`apply(state, fact, now, rules)` and `on_time(state, now, rules)` return a `ShopStep`: the new
state (None deletes the key), the `ShopAlert`s and the next instant at which `on_time` must run.
As on the order side, `now` is the timer horizon: stream time minus the allowed lateness (None
before any time is known); every instant below is compared with it.

Rates, for one shop at an instant t, over the window (t - window, t] (default 7 days, per platform):
SELLER_FAULT_CANCEL_RATE = merchant-fault cancellations / orders paid; LATE_DISPATCH_RATE =
SHIP_OVERDUE violations / orders whose ship_by fell in the window. A rate exists only with at
least `shop_min_orders` (20) in its denominator (`orders_in_window`), and is a Fraction: no float
ever decides. A cancelled order still counts as paid (its ORDER_PAID is never taken back).

When: both rates are evaluated at every evaluation point t, the `at` of each ORDER_PAID,
MERCHANT_FAULT_CANCEL and SHIP_OVERDUE_VIOLATION fact, like a timer at t: once the horizon has
reached t, in event-time order. So every fact within the lateness of t is known at t, and the
alerts do not depend on the order in which the facts arrive: facts of one shop come from many
order-side partitions, and a violation at ship_by only comes out once the order side's horizon
has passed ship_by. WARNING when a rate is strictly above its threshold and no WARNING of the
metric is open; RESOLVED (same alert_id) when it is at or below it while one is open. Nothing else
emits: orders only ageing out of the window, and instants that are not evaluation points, do not.

Facts later than the lateness (t at or before the horizon already passed) are counted and
evaluated at their own t, at once, over the facts known then, but only if no data of their window
has been deleted, and they may move a metric's stage only if t is later than that metric's last
alert: a stage is never undone and never predates the one it follows. A fact whose instant is
already past retention is dropped (it could only count in windows that are incomplete anyway).

alert_id: a hash of shop_id, metric and the WARNING's instant in UTC; the RESOLVED repeats it.
value: the rate with 4 decimals, rounded away from the threshold (WARNING up, RESOLVED down), so
it always reads on the side of the threshold that the exact rate is on (1/24 -> "0.0417"; 13/519,
just above 2.5 %, -> "0.0251", never "0.0250"). threshold: the configured decimal, e.g. "0.025".

State lifetime: a counted fact is deleted once the horizon has reached its instant + window
(stream time has passed it + window + lateness): no evaluation point whose window holds it can be
evaluated on time any more. The shop's state is deleted (None) when nothing counted is left; an
open WARNING is then forgotten without a RESOLVED (ageing out emits nothing). Per-instant entries,
not day buckets: (t - 7 days, t] is not day-aligned, so an exact count at any t needs the exact
instant of every fact within the last window + lateness, and nothing older is ever needed; day
buckets would be a second copy of the same counts. Size per shop: one entry per order paid in the
last window + lateness, one per order whose ship_by is within that span or still ahead (48 h of
orders; presale orders until their ship_by), one per cancellation and violation in that span.
"""

from __future__ import annotations

import hashlib
import math
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Literal

from processors.config import PlatformRules, RulesConfig
from schemas.outputs import ShopAlert, ShopMetric
from schemas.shop import Counted, LastAlert, ShopFact, ShopState
from schemas.types import format_time

METRICS: tuple[ShopMetric, ...] = ("SELLER_FAULT_CANCEL_RATE", "LATE_DISPATCH_RATE")
_FOUR_PLACES = Decimal("0.0001")


@dataclass
class ShopStep:
    """The result of one step: new state (None = delete), its alerts, next wake-up."""

    state: ShopState | None
    outputs: list[ShopAlert] = field(default_factory=list)
    next_deadline: datetime | None = None


def alert_id(shop_id: str, metric: str, started_at: datetime) -> str:
    """Stable id of one occurrence of a shop alert: the same across restarts and replays."""
    key = f"{shop_id}\x1f{metric}\x1f{format_time(started_at)}"
    return "A" + hashlib.blake2b(key.encode("utf-8"), digest_size=10).hexdigest()


def rate_value(rate: Fraction, stage: str) -> Decimal:
    """The rate with 4 decimals, rounded away from the threshold: up for a WARNING, down else."""
    scaled = rate * 10_000
    units = math.ceil(scaled) if stage == "WARNING" else math.floor(scaled)
    return (Decimal(units) / 10_000).quantize(_FOUR_PLACES)


def _count(entries: tuple[Counted, ...], start: datetime, end: datetime) -> int:
    """How many entries fall in (start, end]."""
    return bisect_right(entries, end, key=_at) - bisect_right(entries, start, key=_at)


def _at(entry: Counted) -> datetime:
    return entry.at


def _rate(state: ShopState, metric: str, t: datetime, p: PlatformRules) -> tuple[int, int]:
    """(numerator, denominator) of `metric` over (t - window, t]."""
    start = t - p.shop_window
    if metric == "SELLER_FAULT_CANCEL_RATE":
        return _count(state.cancelled, start, t), _count(state.paid, start, t)
    return _count(state.overdue, start, t), _count(state.due, start, t)


def _threshold(metric: str, p: PlatformRules) -> Decimal:
    if metric == "SELLER_FAULT_CANCEL_RATE":
        return p.seller_fault_cancel_rate_threshold
    return p.late_dispatch_rate_threshold


def _evaluate(state: ShopState, t: datetime, rules: RulesConfig) -> tuple[ShopState, list[ShopAlert]]:
    """Both rates at t: WARNING on going above, RESOLVED on coming back, else nothing."""
    p = rules.platform(state.platform)
    alerts: list[ShopAlert] = []
    for metric in METRICS:
        numerator, orders = _rate(state, metric, t, p)
        if orders < p.shop_min_orders:
            continue
        last = state.last_alert(metric)
        if last is not None and t <= last.window_end:
            continue  # a late fact: the metric's stage already speaks for a later instant
        threshold = _threshold(metric, p)
        rate = Fraction(numerator, orders)
        open_warning = last is not None and last.stage == "WARNING"
        above = rate > Fraction(threshold)
        if above == open_warning:
            continue
        stage: Literal["WARNING", "RESOLVED"] = "WARNING" if above else "RESOLVED"
        if above:
            aid = alert_id(state.shop_id, metric, t)
        else:
            assert last is not None  # not above and it differs from open_warning: a WARNING is open
            aid = last.alert_id
        alerts.append(ShopAlert(
            alert_id=aid, shop_id=state.shop_id, platform=state.platform, metric=metric,
            stage=stage, value=rate_value(rate, stage), threshold=threshold,
            orders_in_window=orders, window_start=t - p.shop_window, window_end=t))
        kept = tuple(a for a in state.alerts if a.metric != metric)
        state = state.model_copy(update={"alerts": kept + (LastAlert(
            metric=metric, alert_id=aid, stage=stage, window_end=t),)})
    return state, alerts


def _points(state: ShopState, after: datetime | None, through: datetime) -> list[datetime]:
    """The distinct evaluation points in (after, through], earliest first."""
    points: set[datetime] = set()
    for entries in (state.paid, state.cancelled, state.overdue):  # each sorted by instant
        first = 0 if after is None else bisect_right(entries, after, key=_at)
        points.update(c.at for c in entries[first:bisect_right(entries, through, key=_at)])
    return sorted(points)


def _purge(state: ShopState, now: datetime, rules: RulesConfig) -> ShopState:
    """Delete what no on-time evaluation can count any more: instants at or before now - window."""
    cutoff = now - rules.platform(state.platform).shop_window
    update: dict[str, object] = {}
    for name in ("paid", "due", "cancelled", "overdue"):
        entries: tuple[Counted, ...] = getattr(state, name)
        old = bisect_right(entries, cutoff, key=_at)
        if old:
            update[name] = entries[old:]
    if not update:
        return state
    if state.purged_through is None or cutoff > state.purged_through:
        update["purged_through"] = cutoff
    return state.model_copy(update=update)


def _advance(state: ShopState, now: datetime | None, rules: RulesConfig) -> tuple[ShopState, list[ShopAlert]]:
    """The horizon moved to `now`: evaluate the points it reached, in order, then purge."""
    if now is None:
        return state, []
    alerts: list[ShopAlert] = []
    for t in _points(state, state.evaluated_through, now):
        state, out = _evaluate(state, t, rules)
        alerts.extend(out)
    if state.evaluated_through is None or now > state.evaluated_through:
        state = state.model_copy(update={"evaluated_through": now})
    return _purge(state, now, rules), alerts


_TUPLE_OF = {"ORDER_PAID": "paid", "MERCHANT_FAULT_CANCEL": "cancelled", "SHIP_OVERDUE_VIOLATION": "overdue"}


def _known(state: ShopState, fact: ShopFact) -> bool:
    """Whether the fact was counted: looked up at its instants (a repeat carries the same ones)."""
    places = [(getattr(state, _TUPLE_OF[fact.kind]), fact.at)]
    if fact.kind == "ORDER_PAID" and fact.ship_by is not None:
        places.append((state.due, fact.ship_by))
    for entries, at in places:
        i = bisect_left(entries, at, key=_at)
        while i < len(entries) and entries[i].at == at:
            if entries[i].fact_id == fact.fact_id:
                return True
            i += 1
    return False


def _with(entries: tuple[Counted, ...], entry: Counted) -> tuple[Counted, ...]:
    """`entries` plus `entry`, still sorted by instant (ties by fact_id)."""
    items = list(entries)
    insort(items, entry, key=lambda c: (c.at, c.fact_id))
    return tuple(items)


def _record(state: ShopState, fact: ShopFact) -> tuple[ShopState, bool]:
    """Count the fact in its tuples, except parts already past retention; True if `at` counted."""
    def live(at: datetime) -> bool:
        return state.purged_through is None or at > state.purged_through

    update: dict[str, tuple[Counted, ...]] = {}
    name = _TUPLE_OF[fact.kind]
    if live(fact.at):
        update[name] = _with(getattr(state, name), Counted(fact_id=fact.fact_id, at=fact.at))
    if fact.kind == "ORDER_PAID" and fact.ship_by is not None and live(fact.ship_by):
        update["due"] = _with(state.due, Counted(fact_id=fact.fact_id, at=fact.ship_by))
    return (state.model_copy(update=update) if update else state), name in update


def _step(state: ShopState, alerts: list[ShopAlert], rules: RulesConfig) -> ShopStep:
    if state.size == 0:
        return ShopStep(None, alerts, None)
    return ShopStep(state, alerts, next_deadline(state, rules))


def apply(state: ShopState | None, fact: ShopFact, now: datetime | None, rules: RulesConfig) -> ShopStep:
    """Count one fact of the shop; a repeated fact_id changes nothing and emits nothing."""
    if state is None:
        window = rules.platform(fact.platform).shop_window
        # a new key may follow a deleted one: anything up to now - window may have been purged
        state = ShopState(shop_id=fact.shop_id, platform=fact.platform, evaluated_through=now,
                          purged_through=now - window if now is not None else None)
    elif fact.shop_id != state.shop_id:
        raise ValueError(f"fact {fact.fact_id} of shop {fact.shop_id} applied to shop {state.shop_id}")
    state, alerts = _advance(state, now, rules)  # points the horizon reached before this fact
    if _known(state, fact):
        return _step(state, alerts, rules)
    state, counted = _record(state, fact)
    late = state.evaluated_through is not None and fact.at <= state.evaluated_through
    window = rules.platform(state.platform).shop_window
    complete = state.purged_through is None or fact.at - window >= state.purged_through
    if counted and late and complete:
        state, out = _evaluate(state, fact.at, rules)
        alerts.extend(out)
    return _step(state, alerts, rules)


def on_time(state: ShopState, now: datetime, rules: RulesConfig) -> ShopStep:
    """The horizon moved: evaluate the points it reached; delete what aged out (None: all did)."""
    state, alerts = _advance(state, now, rules)
    return _step(state, alerts, rules)


def next_deadline(state: ShopState, rules: RulesConfig) -> datetime | None:
    """When `on_time` must next run: the next evaluation point or the next deletion."""
    after = state.evaluated_through
    pending = [entries[bisect_right(entries, after, key=_at)].at if after is not None else entries[0].at
               for entries in (state.paid, state.cancelled, state.overdue)
               if entries and (after is None or entries[-1].at > after)]
    window = rules.platform(state.platform).shop_window
    expiry = [entries[0].at + window for entries in (state.paid, state.due, state.cancelled, state.overdue)
              if entries]
    candidates = pending + expiry
    return min(candidates) if candidates else None
