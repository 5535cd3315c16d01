"""The shop-alert labeller: the contract's "Shop alerts" section, read on its own, per shop.

It answers one question for a simulated stream: which (shop, metric, stage, window_end) the
contract requires on `shop-alerts`. Like `simulator.labels` it is a test oracle written apart
from `processors/` (it neither reads nor imports the worker's shop code), so that the two check
each other; and like it, it reads the whole history at once instead of streaming.

The facts come from the order labeller's verdicts, not from the rules again: every order-paid
(its paid_at, and its ship_by: the explicit one or paid_at + the ship window), every approved
merchant-fault cancellation (OUT_OF_STOCK, QUALITY_ISSUE, OTHER; at its requested_at) and every
SHIP_OVERDUE VIOLATION (at its occurred_at, which is the ship_by).

The reading, per shop and metric:
- Evaluations happen at the event time t of each order-paid, approved merchant-fault cancellation
  and SHIP_OVERDUE VIOLATION of the shop, in event-time order; each evaluates both metrics; facts
  at the same instant are evaluated together, once. window_end = t.
- The window is (t - 7 days, t]: SELLER_FAULT_CANCEL_RATE = cancellations in it / orders paid in
  it (a cancelled order still counts as paid); LATE_DISPATCH_RATE = violations in it / orders whose
  ship_by is in it (every order: express, self-pickup, cancelled or not). Exact fractions.
- With fewer than 20 orders in the denominator the rate is not evaluated. Otherwise WARNING when
  it is strictly above its threshold and no WARNING of that metric is open; RESOLVED when it is at
  or below and one is open. Orders only ageing out of the window emit nothing.

Where the contract does not fix the alerts of a (shop, metric), the labeller says so instead of
guessing: `label_shops` labels its alerts only up to the first instant at which the readings below
part (`Unlabelled.since`), and `evaluate_metric(strict=True)` raises `Ambiguous`:
- Tie-breaking in stream time. The contract defines outputs as those of reading the events one
  at a time, and a SHIP_OVERDUE VIOLATION is a timer that fires only once stream time is the
  allowed lateness past it; so an order-paid or cancellation read within the lateness after a
  violation may be evaluated before the worker knows of it, and facts of one instant are read
  one after the other. Whether the worker defers evaluations for that is not written down; nor
  whether a timer that fires only with a jump of stream time (a clock tick days later) still
  finds the facts that "shop state is kept until stream time has passed t + 7 days plus the
  lateness" lets the worker drop by then. The labeller also computes what a worker that
  evaluates each fact as soon as it knows of it, over the state it may still hold, would emit
  (`_one_at_a_time`, both ways round for coinciding facts); where that differs, it abstains.
- A WARNING is open while the denominator drops below the minimum: the contract says neither
  that it stays open nor that it is RESOLVED.
"Every order counts" is read literally: an order cancelled before its ship_by still counts in
the LATE_DISPATCH_RATE denominator, as it counts as paid in the SELLER_FAULT_CANCEL_RATE one.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from simulator.labels import DEFAULT_THRESHOLDS, Ambiguous, Thresholds, Verdict, World, evaluate, utc
from simulator.model import DAY, MINUTE, Order

SELLER_FAULT_CANCEL_RATE = "SELLER_FAULT_CANCEL_RATE"
LATE_DISPATCH_RATE = "LATE_DISPATCH_RATE"
METRICS = (SELLER_FAULT_CANCEL_RATE, LATE_DISPATCH_RATE)
SHOP_STAGES = ("WARNING", "RESOLVED")
MERCHANT_FAULT_REASONS = ("OUT_OF_STOCK", "QUALITY_ISSUE", "OTHER")

_ABOVE, _AT_OR_BELOW, _TOO_FEW = "above", "at or below", "too few orders"
_OPEN_QUESTION = "?"


@dataclass(frozen=True)
class ShopThresholds:
    """The contract's defaults for shop alerts (seconds, exact fractions)."""

    window: int = 7 * DAY
    seller_fault_cancel_rate: Fraction = Fraction(25, 1000)
    late_dispatch_rate: Fraction = Fraction(4, 100)
    min_orders: int = 20
    lateness: int = 10 * MINUTE     # how late a worker may learn of a violation (the allowed lateness)

    def threshold(self, metric: str) -> Fraction:
        return self.seller_fault_cancel_rate if metric == SELLER_FAULT_CANCEL_RATE else self.late_dispatch_rate


DEFAULT_SHOP_THRESHOLDS = ShopThresholds()


@dataclass(frozen=True, slots=True)
class ShopAlert:
    """One alert the contract requires on `shop-alerts`; `at` is its window_end."""

    shop_id: str
    metric: str
    stage: str
    at: int


@dataclass(frozen=True, slots=True)
class Unlabelled:
    """From `since` on, the contract does not fix the alerts of this (shop, metric): none are labelled."""

    shop_id: str
    metric: str
    since: int
    reason: str


@dataclass(slots=True)
class ShopFacts:
    """The facts of one shop that its two rates count (seconds)."""

    shop_id: str
    orders: list[tuple[int, int]] = field(default_factory=list)   # (paid_at, ship_by) of every order
    cancelled: list[int] = field(default_factory=list)     # requested_at of approved merchant-fault requests
    late: list[int] = field(default_factory=list)          # occurred_at of every SHIP_OVERDUE VIOLATION

    def sort(self) -> None:
        for values in (self.orders, self.cancelled, self.late):
            values.sort()

    @property
    def paid(self) -> list[int]:
        return [paid for paid, _ in self.orders]            # sorted, as `orders` is

    @property
    def ship_by(self) -> list[int]:
        return sorted(ship_by for _, ship_by in self.orders)

    def triggers(self) -> list[int]:
        """The instants at which the shop's rates are evaluated, each once."""
        return sorted(set(self.paid) | set(self.cancelled) | set(self.late))

    def series(self, metric: str) -> tuple[list[int], list[int]]:
        """(numerator, denominator) facts of `metric`, each sorted."""
        if metric == SELLER_FAULT_CANCEL_RATE:
            return self.cancelled, self.paid
        return self.late, self.ship_by


@dataclass(slots=True)
class ShopLabels:
    """What the contract requires on `shop-alerts` for a stream, and which series it leaves open."""

    alerts: list[ShopAlert]
    unlabelled: list[Unlabelled]


def _count(values: list[int], after: int, until: int) -> int:
    """How many of the sorted `values` lie in (after, until]."""
    return bisect_right(values, until) - bisect_right(values, after)


def _decide(n: int, d: int, threshold: Fraction, min_orders: int) -> str:
    if d < min_orders:
        return _TOO_FEW
    return _ABOVE if Fraction(n, d) > threshold else _AT_OR_BELOW


def _emits(decision: str, is_open: bool) -> str | None:
    if decision == _ABOVE:
        return None if is_open else "WARNING"
    if decision == _AT_OR_BELOW:
        return "RESOLVED" if is_open else None
    return _OPEN_QUESTION if is_open else None     # too few orders while a WARNING is open


def _run_metric(shop_id: str, metric: str, triggers: list[int], num: list[int], den: list[int],
                th: ShopThresholds) -> tuple[list[ShopAlert], int | None]:
    """The alerts, read "too few orders" as "not evaluated"; and when that reading first mattered."""
    threshold = th.threshold(metric)
    alerts: list[ShopAlert] = []
    is_open = False
    open_question: int | None = None
    for t in triggers:
        decision = _decide(_count(num, t - th.window, t), _count(den, t - th.window, t), threshold, th.min_orders)
        emitted = _emits(decision, is_open)
        if emitted == _OPEN_QUESTION:
            if open_question is None:
                open_question = t
        elif emitted is not None:
            is_open = emitted == "WARNING"
            alerts.append(ShopAlert(shop_id, metric, emitted, t))
    return alerts, open_question


def evaluate_metric(shop_id: str, metric: str, triggers: list[int], num: list[int], den: list[int],
                    th: ShopThresholds = DEFAULT_SHOP_THRESHOLDS, *, strict: bool = True) -> list[ShopAlert]:
    """The alerts of one shop and metric, evaluated at each of `triggers` over sorted fact times.

    strict: raise Ambiguous when a WARNING is open while the window holds too few orders;
    otherwise read that as "not evaluated" (nothing emitted, the WARNING stays open).
    """
    alerts, open_question = _run_metric(shop_id, metric, triggers, num, den, th)
    if strict and open_question is not None:
        raise Ambiguous(f"{shop_id} {metric} at {utc(open_question)}: a WARNING is open and the window holds "
                        f"fewer than {th.min_orders} orders")
    return alerts


# the kinds of fact that trigger an evaluation, and two orders in which to read coinciding ones
_PAID, _CANCELLED, _LATE = 0, 1, 2
_READING_ORDERS = ((0, 1, 2), (2, 1, 0))


def _one_at_a_time(facts: ShopFacts, metric: str, th: ShopThresholds, rank: tuple[int, ...],
                   event_times: Sequence[int] | None = None) -> list[ShopAlert]:
    """The alerts of a worker that evaluates each fact as soon as it knows of it, over what it knows.

    It reads order-paid and cancellation facts at their own time and learns of a SHIP_OVERDUE
    VIOLATION only when its timer fires: at the first event of the stream (`event_times`, sorted;
    any topic, any shop, clock ticks too) at least `th.lateness` after it. Facts read at the same
    moment come in the order `rank` gives their kinds. Every evaluation keeps window_end = the
    fact's own time and counts facts in (window_end - 7 days, window_end], except those that the
    contract's "shop state is kept until stream time has passed t + 7 days plus the lateness" lets
    it have dropped already (a timer that only fires with a jump of stream time, e.g. a tick).
    """
    def fires(t: int) -> int:
        due = t + th.lateness
        if event_times:
            k = bisect_left(event_times, due)
            if k < len(event_times):
                return event_times[k]
        return due

    reads = [(paid, rank[_PAID], paid, _PAID, ship_by) for paid, ship_by in facts.orders]
    reads += [(t, rank[_CANCELLED], t, _CANCELLED, 0) for t in facts.cancelled]
    reads += [(fires(t), rank[_LATE], t, _LATE, 0) for t in facts.late]
    reads.sort()
    threshold = th.threshold(metric)
    cancel_rate = metric == SELLER_FAULT_CANCEL_RATE
    num: list[int] = []
    den: list[int] = []
    alerts: list[ShopAlert] = []
    is_open = False
    for read_at, _, t, kind, ship_by in reads:
        if kind == _PAID:
            insort(den, t if cancel_rate else ship_by)
        elif kind == (_CANCELLED if cancel_rate else _LATE):
            insort(num, t)
        after = max(t - th.window, read_at - th.window - th.lateness - 1)
        emitted = _emits(_decide(_count(num, after, t), _count(den, after, t), threshold, th.min_orders), is_open)
        if emitted in SHOP_STAGES:
            is_open = emitted == "WARNING"
            alerts.append(ShopAlert(facts.shop_id, metric, emitted, t))
    return alerts


def _diverge(a: list[ShopAlert], b: list[ShopAlert]) -> int | None:
    """The window_end of the first alert in which two series differ, or None when they agree."""
    for x, y in zip(a, b, strict=False):  # the common part; where one series goes on is below
        if x != y:
            return min(x.at, y.at)
    if len(a) != len(b):
        return (a[len(b)] if len(a) > len(b) else b[len(a)]).at
    return None


def evaluate_shop(facts: ShopFacts, th: ShopThresholds = DEFAULT_SHOP_THRESHOLDS,
                  event_times: Sequence[int] | None = None) -> tuple[list[ShopAlert], list[Unlabelled]]:
    """Both metrics of one shop: the alerts up to where the contract stops fixing them, and where that is.

    event_times: every event time of the stream, sorted, to know when violations' timers fire
    (without it, exactly the lateness after them).
    """
    triggers = facts.triggers()
    alerts: list[ShopAlert] = []
    unlabelled: list[Unlabelled] = []
    for metric in METRICS:
        num, den = facts.series(metric)
        mine, open_question = _run_metric(facts.shop_id, metric, triggers, num, den, th)
        doubts: list[tuple[int, str]] = []
        if open_question is not None:
            doubts.append((open_question, f"a WARNING is open and the window holds fewer than {th.min_orders} "
                                          "orders: neither RESOLVED nor staying open is written down"))
        for rank in _READING_ORDERS:
            since = _diverge(mine, _one_at_a_time(facts, metric, th, rank, event_times))
            if since is not None:
                doubts.append((since, "a worker reading one fact at a time, that learns of a violation only "
                                      f"when its timer fires ({th.lateness // MINUTE} minutes late or more) "
                                      "and may have dropped state by then, would emit otherwise"))
        if doubts:
            since, reason = min(doubts)
            unlabelled.append(Unlabelled(facts.shop_id, metric, since, reason))
            mine = [alert for alert in mine if alert.at < since]
        alerts += mine
    return alerts, unlabelled


def shop_facts(orders: Iterable[Order], verdicts: Mapping[int, Verdict],
               th: Thresholds = DEFAULT_THRESHOLDS) -> dict[str, ShopFacts]:
    """Every shop's facts, from the orders and the order labeller's verdicts (keyed by order index)."""
    shops: dict[str, ShopFacts] = {}
    for order in orders:
        facts = shops.get(order.shop_id)
        if facts is None:
            facts = shops[order.shop_id] = ShopFacts(order.shop_id)
        verdict = verdicts[order.index]
        ship_by = order.ship_by if order.ship_by is not None else order.paid_at + th.ship_window
        facts.orders.append((order.paid_at, ship_by))
        facts.late += [s.at for s in verdict.stages if s.rule == "SHIP_OVERDUE" and s.stage == "VIOLATION"]
        requested = {request.event_id: request.t for request in order.cancellations}
        for decision in verdict.decisions:
            if decision.decision != "APPROVED":
                continue
            if decision.reason in MERCHANT_FAULT_REASONS:
                facts.cancelled.append(requested[decision.event_id])
    for facts in shops.values():
        facts.sort()
    return shops


def _alert_order(alert: ShopAlert) -> tuple[int, str, int, int]:
    return alert.at, alert.shop_id, METRICS.index(alert.metric), SHOP_STAGES.index(alert.stage)


def stream_times(orders: Iterable[Order], world: World, ticks: Iterable[int] = ()) -> list[int]:
    """Every event time of a stream, sorted: payments, uploads, cancellation requests, scans and ticks."""
    times = [t for bucket in world.scans.values() for t in (s.t for s in bucket)] + list(ticks)
    for order in orders:
        times.append(order.paid_at)
        times += [u.t for u in order.uploads] + [c.t for c in order.cancellations]
    return sorted(times)


def label_shops(orders: Iterable[Order], verdicts: Mapping[int, Verdict], th: Thresholds = DEFAULT_THRESHOLDS,
                shop_th: ShopThresholds = DEFAULT_SHOP_THRESHOLDS, world: World | None = None,
                ticks: Iterable[int] = ()) -> ShopLabels:
    """What the contract requires on `shop-alerts` for these orders, in time order.

    world and ticks: the stream's scans and clock ticks too, so that the labeller knows when each
    violation's timer fires (without a world: exactly the lateness after it).
    """
    orders = list(orders)
    event_times = stream_times(orders, world, ticks) if world is not None else None
    alerts: list[ShopAlert] = []
    unlabelled: list[Unlabelled] = []
    for _, facts in sorted(shop_facts(orders, verdicts, th).items()):
        mine, left_open = evaluate_shop(facts, shop_th, event_times)
        alerts += mine
        unlabelled += left_open
    alerts.sort(key=_alert_order)
    return ShopLabels(alerts, unlabelled)


def label_world(world: World, th: Thresholds = DEFAULT_THRESHOLDS,
                shop_th: ShopThresholds = DEFAULT_SHOP_THRESHOLDS, ticks: Iterable[int] = ()) -> ShopLabels:
    """The same from a World, e.g. one read back from an events file (`world_from_messages`, which
    keeps no clock ticks: pass their times as `ticks`)."""
    verdicts = {order.index: evaluate(order, world, th) for order in world.orders}
    return label_shops(world.orders, verdicts, th, shop_th, world, ticks)


def as_json(labels: ShopLabels) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(shop_alerts, shop_alerts_unlabelled) as the labels file writes them."""
    return ([{"shop_id": a.shop_id, "metric": a.metric, "stage": a.stage, "window_end": utc(a.at)}
             for a in labels.alerts],
            [{"shop_id": u.shop_id, "metric": u.metric, "since": utc(u.since), "reason": u.reason}
             for u in labels.unlabelled])
