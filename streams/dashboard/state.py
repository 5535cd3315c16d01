"""What the dashboard shows: `DashboardState` folds the output topics into running aggregates.

`apply(topic, record, now)` folds one output record into running aggregates, `snapshot(now)`
is the JSON the page draws. No Kafka, no asyncio, no wall clock of its own: unit tests drive it
with named instants.

Memory is bounded whatever the traffic (see `Limits`): the feed keeps its last items; counts
are per time slot over the last `--hours` of record time, and a slot's counts go when it leaves
the window; an open warning lives until its VIOLATION or RESOLVED arrives, the oldest open one
is evicted (and counted) beyond the cap; a shop lives until it is the least recently active one
beyond the cap; the chart keeps the latest 7 days of event time by the hour; duplicates are
recognised by a bounded set of the latest identities.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

from schemas.outputs import CancellationOutcome, DecisionCode, Rule, ShopAlert, ShopMetric, Stage, ViolationWarning
from schemas.types import format_time
from streams.dashboard.window_counts import WindowCounts

TOPICS = ("violation-warnings", "cancellation-outcomes", "shop-alerts")
DEFAULT_HOURS = 24.0

RULES: tuple[str, ...] = get_args(Rule)
STAGES: tuple[str, ...] = get_args(Stage)
CODES: tuple[str, ...] = get_args(DecisionCode)
METRICS: tuple[str, ...] = get_args(ShopMetric)
RULE_NAMES = {
    "SHIP_OVERDUE": "发货超时", "WAYBILL_INVALID": "单号异常", "WAYBILL_REUSED": "单号重复",
    "NO_PICKUP": "揽收超时", "STALLED_AFTER_PICKUP": "揽收后无更新", "TRACKING_STALLED": "轨迹长时间未更新",
    "ADDRESS_MISMATCH": "轨迹与收货地址不一致", "PICKUP_BEFORE_PAYMENT": "揽收早于支付",
    "NOT_DELIVERED": "超时未签收", "EXPRESS_STOP_REMARK": "备注快递停发",
}
CODE_NAMES = {
    "APPROVED": "同意取消", "ORDER_UNKNOWN": "订单不存在", "ALREADY_CANCELLED": "订单已取消",
    "ALREADY_DELIVERED": "已签收", "DETAIL_REQUIRED": "需填写原因说明",
    "NO_LOGISTICS_EVIDENCE": "无物流异常证据", "IN_TRANSIT": "包裹已揽收",
}
METRIC_NAMES = {"SELLER_FAULT_CANCEL_RATE": "商家责任取消率", "LATE_DISPATCH_RATE": "延迟发货率"}

OutputRecord = ViolationWarning | CancellationOutcome | ShopAlert


@dataclass(frozen=True)
class Limits:
    """Caps that bound the dashboard's memory, whatever the traffic."""

    feed: int = 200              # latest records shown in the live feed
    open_warnings: int = 20_000  # open WARNINGs kept; the oldest is evicted beyond it
    shops: int = 5_000           # shops kept; the least recently active is evicted beyond it
    seen: int = 100_000          # latest record identities kept to drop duplicates
    chart_hours: int = 168       # hourly chart buckets: the latest 7 days of event time
    slots: int = 24              # the count window is cut into this many slots
    top: int = 50                # rows of the open-warning and shop tables


@dataclass(slots=True)
class OpenWarning:
    """A WARNING with no VIOLATION or RESOLVED read yet."""

    warning_id: str
    order_id: str
    shop_id: str
    rule: str
    severity: str
    occurred_at: datetime
    deadline: datetime
    waybill_no: str | None
    message: str


@dataclass(slots=True)
class Shop:
    """What the dashboard knows of a shop beyond counts: its platform and its open rate alerts."""

    platform: str | None = None
    alerts: dict[str, ShopAlert] = field(default_factory=dict)  # metric -> the open WARNING


def _identity(record: OutputRecord) -> str:
    """What appears once on its topic by the contract; a second sight is a duplicate. (The late-
    record checks below look these keys up, so they are built here, not by `schemas.outputs`.)"""
    if isinstance(record, ViolationWarning):
        return f"w|{record.warning_id}|{record.stage}"
    if isinstance(record, CancellationOutcome):
        return f"c|{record.request_event_id}"
    return f"a|{record.alert_id}|{record.stage}"


class DashboardState:
    """Running aggregates of the output topics; pure: time always comes in as a parameter.

    `now` in `apply` is the record's own time (its Kafka timestamp): the count window slides on
    it. `snapshot(now)` takes the wall clock; with clock="event" a warning's time left is counted
    from stream time instead, the latest event time the outputs carry (for replays).
    """

    def __init__(self, window: timedelta = timedelta(hours=DEFAULT_HOURS), limits: Limits = Limits(),
                 clock: str = "wall") -> None:
        self.window = window
        self.limits = limits
        self.clock = clock
        self.counts = WindowCounts(window, limits.slots)            # ("rule"|"code"|"metric", name, stage)
        self.shop_violations = WindowCounts(window, limits.slots)   # shop_id
        self.feed: deque[dict[str, Any]] = deque(maxlen=limits.feed)
        self.open: OrderedDict[str, OpenWarning] = OrderedDict()  # warning_id, oldest first
        self.shops: OrderedDict[str, Shop] = OrderedDict()         # least recently active first
        self.chart: dict[int, list[int]] = {}                      # hour -> counts per stage
        self._chart_newest: int | None = None
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.stream_time: datetime | None = None
        self.records = 0
        self.version = 0  # bumped on every change: the server re-sends the state when it moved
        self.dropped: Counter = Counter()

    # -- folding records in ----------------------------------------------------------------

    def apply(self, topic: str, record: OutputRecord, now: datetime) -> dict[str, Any] | None:
        """Fold one output record in; returns its feed item, or None for a duplicate."""
        if topic not in TOPICS:
            raise ValueError(f"not a dashboard topic: {topic}")
        key = _identity(record)
        if key in self._seen:
            self._seen.move_to_end(key)
            self.dropped["duplicates"] += 1
            return None
        self._seen[key] = None
        if len(self._seen) > self.limits.seen:
            self._seen.popitem(last=False)
        self.records += 1
        self.version += 1
        if isinstance(record, ViolationWarning):
            item = self._warning(record, now)
        elif isinstance(record, CancellationOutcome):
            item = self._outcome(record, now)
        else:
            item = self._shop_alert(record, now)
        item["seq"] = self.records
        self.feed.append(item)
        return item

    def _warning(self, w: ViolationWarning, now: datetime) -> dict[str, Any]:
        self._advance(w.occurred_at)
        self._count(("rule", w.rule, w.stage), now)
        self._chart_add(w.occurred_at, w.stage)
        self._touch(w.shop_id, w.platform)
        if w.stage == "WARNING":
            closed = any(f"w|{w.warning_id}|{stage}" in self._seen for stage in ("VIOLATION", "RESOLVED"))
            if closed:  # its end was read first: out of order, nothing left open
                self.dropped["late_warnings"] += 1
            elif w.deadline is not None:
                self.open[w.warning_id] = OpenWarning(
                    w.warning_id, w.order_id, w.shop_id, w.rule, w.severity, w.occurred_at, w.deadline,
                    w.waybill_no, w.message)
                if len(self.open) > self.limits.open_warnings:
                    self.open.popitem(last=False)
                    self.dropped["open_warnings_evicted"] += 1
        else:
            self.open.pop(w.warning_id, None)
            if w.stage == "VIOLATION":
                self.shop_violations.add(w.shop_id, now)
        return {"kind": "warning", "at": format_time(w.occurred_at), "shop_id": w.shop_id,
                "order_id": w.order_id, "label": w.rule, "label_zh": RULE_NAMES.get(w.rule, w.rule),
                "stage": w.stage, "severity": w.severity, "text": w.message,
                "deadline": format_time(w.deadline) if w.deadline else None}

    def _outcome(self, o: CancellationOutcome, now: datetime) -> dict[str, Any]:
        self._advance(o.decided_at)
        self._count(("code", o.code, o.decision), now)
        if o.merchant_fault:
            self._count(("fault", "", ""), now)
        self._touch(o.shop_id, None)
        refund = f"{o.refund.amount} {o.refund.currency}" if o.refund else None
        return {"kind": "outcome", "at": format_time(o.decided_at), "shop_id": o.shop_id,
                "order_id": o.order_id, "label": o.code, "label_zh": CODE_NAMES.get(o.code, o.code),
                "stage": o.decision, "severity": "high" if o.merchant_fault else "low",
                "text": o.explanation, "refund": refund}

    def _shop_alert(self, a: ShopAlert, now: datetime) -> dict[str, Any]:
        self._advance(a.window_end)
        self._count(("metric", a.metric, a.stage), now)
        shop = self._touch(a.shop_id, a.platform)
        if a.stage == "WARNING":
            if f"a|{a.alert_id}|RESOLVED" in self._seen:
                self.dropped["late_alerts"] += 1
            else:
                shop.alerts[a.metric] = a
        else:
            shop.alerts.pop(a.metric, None)
        name = METRIC_NAMES.get(a.metric, a.metric)
        relation = ">" if a.stage == "WARNING" else "≤"
        text = (f"{name} {_percent(a.value)} {relation} 阈值 {_percent(a.threshold)}"
                f"（近 7 天 {a.orders_in_window} 单）")
        return {"kind": "shop-alert", "at": format_time(a.window_end), "shop_id": a.shop_id,
                "order_id": None, "label": a.metric, "label_zh": name, "stage": a.stage,
                "severity": "high" if a.stage == "WARNING" else "low", "text": text}

    def _count(self, key: tuple[str, str, str], now: datetime) -> None:
        if not self.counts.add(key, now):
            self.dropped["older_than_window"] += 1

    def _advance(self, event_time: datetime) -> None:
        if self.stream_time is None or event_time > self.stream_time:
            self.stream_time = event_time

    def _touch(self, shop_id: str, platform: str | None) -> Shop:
        shop = self.shops.get(shop_id)
        if shop is None:
            shop = self.shops[shop_id] = Shop()
            if len(self.shops) > self.limits.shops:
                evicted, _ = self.shops.popitem(last=False)
                self.shop_violations.forget(evicted)
                self.dropped["shops_evicted"] += 1
        else:
            self.shops.move_to_end(shop_id)
        if platform:
            shop.platform = platform
        return shop

    def _chart_add(self, at: datetime, stage: str) -> None:
        hour = math.floor(at.timestamp() / 3600)
        span = self.limits.chart_hours
        if self._chart_newest is None or hour > self._chart_newest:
            self._chart_newest = hour
            for old in [h for h in self.chart if h <= hour - span]:
                del self.chart[old]
        elif hour <= self._chart_newest - span:
            self.dropped["chart_too_old"] += 1
            return
        self.chart.setdefault(hour, [0] * len(STAGES))[STAGES.index(stage)] += 1

    # -- reading it out --------------------------------------------------------------------

    def expire(self, now: datetime) -> None:
        """Let the counts slide to the window ending at `now` (wall clock)."""
        self.counts.expire(now)
        self.shop_violations.expire(now)

    def clock_now(self, now: datetime) -> datetime:
        """The instant time left is counted from: the wall clock, or stream time in event mode."""
        if self.clock == "event" and self.stream_time is not None:
            return self.stream_time
        return now

    def snapshot(self, now: datetime, feed: bool = True) -> dict[str, Any]:
        """Everything the page shows, as JSON-ready data; `now` is the wall clock."""
        self.expire(now)
        current = self.clock_now(now)
        total = self.counts.total
        by_stage = {stage: sum(total[("rule", rule, stage)] for rule in RULES) for stage in STAGES}
        decisions = {d: sum(total[("code", code, d)] for code in CODES) for d in ("APPROVED", "REJECTED")}
        open_alerts = sum(len(shop.alerts) for shop in self.shops.values())
        data: dict[str, Any] = {
            "now": format_time(now),
            "clock": self.clock,
            "clock_now": format_time(current),
            "window_hours": self.window.total_seconds() / 3600,
            "since": format_time(now - self.window),
            "records": self.records,
            "version": self.version,
            "totals": {
                "warnings": by_stage["WARNING"], "violations": by_stage["VIOLATION"],
                "resolved": by_stage["RESOLVED"], "open_warnings": len(self.open),
                "open_shop_alerts": open_alerts, "approved": decisions["APPROVED"],
                "rejected": decisions["REJECTED"], "merchant_fault": total[("fault", "", "")],
            },
            "rules": [{"rule": rule, "name": RULE_NAMES.get(rule, rule),
                       **{stage: total[("rule", rule, stage)] for stage in STAGES}} for rule in RULES],
            "outcomes": [{"code": code, "name": CODE_NAMES.get(code, code),
                          **{d: total[("code", code, d)] for d in ("APPROVED", "REJECTED")}} for code in CODES],
            "shop_alert_counts": [{"metric": m, "name": METRIC_NAMES.get(m, m),
                                   **{s: total[("metric", m, s)] for s in ("WARNING", "RESOLVED")}}
                                  for m in METRICS],
            "open_warnings": self._open_rows(current),
            "shops": self._shop_rows(),
            "chart": self._chart_series(),
            "limits": {"feed": self.limits.feed, "open_warnings": self.limits.open_warnings,
                       "shops": self.limits.shops, "chart_hours": self.limits.chart_hours},
            "dropped": dict(self.dropped),
        }
        if feed:
            data["feed"] = list(reversed(self.feed))  # newest first
        return data

    def _open_rows(self, current: datetime) -> list[dict[str, Any]]:
        """Open warnings, soonest deadline first: the ones about to become violations on top."""
        soonest = heapq.nsmallest(self.limits.top, self.open.values(), key=lambda w: (w.deadline, w.warning_id))
        return [{"warning_id": w.warning_id, "order_id": w.order_id, "shop_id": w.shop_id, "rule": w.rule,
                 "name": RULE_NAMES.get(w.rule, w.rule), "severity": w.severity,
                 "occurred_at": format_time(w.occurred_at), "deadline": format_time(w.deadline),
                 "seconds_left": round((w.deadline - current).total_seconds()), "waybill_no": w.waybill_no,
                 "message": w.message} for w in soonest]

    def _shop_rows(self) -> list[dict[str, Any]]:
        """Shops at risk: most open rate alerts, then most violations in the window, then most
        open warnings."""
        open_by_shop = Counter(w.shop_id for w in self.open.values())
        violations = self.shop_violations.total
        candidates = set(open_by_shop) | {s for s, n in violations.items() if n > 0}
        candidates |= {s for s, shop in self.shops.items() if shop.alerts}

        def alerts_of(shop_id: str) -> dict[str, ShopAlert]:
            shop = self.shops.get(shop_id)
            return shop.alerts if shop is not None else {}

        def rank(shop_id: str) -> tuple[int, int, int, str]:
            return (-len(alerts_of(shop_id)), -violations[shop_id], -open_by_shop[shop_id], shop_id)

        rows = []
        for shop_id in heapq.nsmallest(self.limits.top, candidates, key=rank):
            shop = self.shops.get(shop_id)
            alerts = alerts_of(shop_id)
            risk = "high" if alerts else "medium" if violations[shop_id] else "low"
            rows.append({"shop_id": shop_id, "platform": shop.platform if shop else None, "risk": risk,
                         "alerts": [{"metric": a.metric, "name": METRIC_NAMES.get(a.metric, a.metric),
                                     "value": str(a.value), "threshold": str(a.threshold),
                                     "orders_in_window": a.orders_in_window} for a in alerts.values()],
                         "violations": violations[shop_id], "open_warnings": open_by_shop[shop_id]})
        return rows

    def _chart_series(self) -> dict[str, Any]:
        """Stages per hour of event time, from the first kept hour to the newest, gaps as zeros."""
        if not self.chart or self._chart_newest is None:
            return {"bucket_seconds": 3600, "start": None, "series": {stage: [] for stage in STAGES}}
        first = min(self.chart)
        hours = range(first, self._chart_newest + 1)
        empty = [0] * len(STAGES)
        return {"bucket_seconds": 3600,
                "start": format_time(datetime.fromtimestamp(first * 3600, UTC)),
                "series": {stage: [self.chart.get(h, empty)[i] for h in hours] for i, stage in enumerate(STAGES)}}


def _percent(value: Any) -> str:
    text = f"{float(value) * 100:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"
