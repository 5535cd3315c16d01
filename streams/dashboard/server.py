"""`shipguard dashboard`: a live web page over the output topics, for merchants' ops people.

Three layers, each usable without the next:

- `DashboardState`, the functional core: `apply(topic, record, now)` folds one output record
  into running aggregates, `snapshot(now)` is the JSON the page draws. No Kafka, no asyncio, no
  wall clock of its own: unit tests drive it with named instants.
- `OutputReader`: a plain aiokafka consumer (not Faust) that assigns itself every partition of
  `violation-warnings`, `cancellation-outcomes` and `shop-alerts`, starts at the first record of
  the last `--hours` (ListOffsets by timestamp) and skips any older record by its timestamp as
  well (the embedded broker answers that ListOffsets with offset 0). It never commits: a
  restarted dashboard reads the same hours again. No group membership either, so every replica
  sees every partition and there is no group join to wait for (partitions added to a topic
  later are read after a restart).
- the aiohttp server: `/` the page, `/static/*` its assets (package data, no CDN, no build
  step), `/events` server-sent events (`state` on connect and about once a second while things
  change, `feed` with the new records), `/api/state` the same snapshot as JSON, `/healthz`.
  With a token (`--token` or SHIPGUARD_DASHBOARD_TOKEN), `/`, `/events` and `/api/state` need
  `Authorization: Bearer TOKEN` or `?token=TOKEN` (compared in constant time); `/static/*` and
  `/healthz` carry no data and stay open.

Memory is bounded whatever the traffic (see `Limits`): the feed keeps its last items; counts
are per time slot over the last `--hours` of record time, and a slot's counts go when it leaves
the window; an open warning lives until its VIOLATION or RESOLVED arrives, the oldest open one
is evicted (and counted) beyond the cap; a shop lives until it is the least recently active one
beyond the cap; the chart keeps the latest 7 days of event time by the hour; duplicates are
recognised by a bounded set of the latest identities. Each browser gets a bounded queue and is
dropped when it falls behind.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import heapq
import hmac
import logging
import math
import os
import signal
import sys
import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Hashable, Mapping, Optional, Union, get_args

from schemas.outputs import (OUTPUT_MODELS, CancellationOutcome, DecisionCode, Rule, ShopAlert, ShopMetric,
                             Stage, ViolationWarning)
from schemas.types import format_time

if TYPE_CHECKING:  # the server's imports are paid only by `shipguard dashboard` itself
    from aiohttp import web

log = logging.getLogger("shipguard.dashboard")

TOPICS = ("violation-warnings", "cancellation-outcomes", "shop-alerts")
STATIC_DIR = Path(__file__).resolve().parent / "static"
DEFAULT_PORT = 8080
DEFAULT_HOURS = 24.0
#: Read by `dashboard_env`; to move into streams/config.py (ENV_VARS and Settings).
DASHBOARD_ENV_VARS = ("SHIPGUARD_DASHBOARD_TOKEN", "SHIPGUARD_DASHBOARD_PORT")

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

OutputRecord = Union[ViolationWarning, CancellationOutcome, ShopAlert]


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


class WindowCounts:
    """Counts per key over a sliding window of record time, kept in `slots` slots.

    A slot's counts leave the totals when the slot leaves the window, so at most slots + 1 slots
    exist; a record older than the window counts nowhere.
    """

    def __init__(self, window: timedelta, slots: int) -> None:
        self.width = window.total_seconds() / slots
        self.slots = slots
        self.total: Counter = Counter()
        self._slots: dict[int, Counter] = {}
        self._newest: Optional[int] = None

    def _slot(self, at: datetime) -> int:
        return math.floor(at.timestamp() / self.width)

    def add(self, key: Hashable, at: datetime) -> bool:
        """Count `key` at `at`; False when `at` is already out of the window."""
        slot = self._slot(at)
        if self._newest is None or slot > self._newest:
            self._newest = slot
            self._drop_before(slot - self.slots)
        elif slot < self._newest - self.slots:
            return False
        self._slots.setdefault(slot, Counter())[key] += 1
        self.total[key] += 1
        return True

    def expire(self, now: datetime) -> None:
        """Drop the slots that ended before `now` - window."""
        self._drop_before(self._slot(now) - self.slots)

    def forget(self, key: Hashable) -> None:
        """Remove every count of `key`."""
        for counts in self._slots.values():
            counts.pop(key, None)
        self.total.pop(key, None)

    def __len__(self) -> int:
        return len(self._slots)

    def _drop_before(self, oldest: int) -> None:
        for slot in [s for s in self._slots if s < oldest]:
            self.total.subtract(self._slots.pop(slot))
        for key in [k for k, n in self.total.items() if n <= 0]:
            del self.total[key]


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
    waybill_no: Optional[str]
    message: str


@dataclass(slots=True)
class Shop:
    """What the dashboard knows of a shop beyond counts: its platform and its open rate alerts."""

    platform: Optional[str] = None
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
        self._chart_newest: Optional[int] = None
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.stream_time: Optional[datetime] = None
        self.records = 0
        self.version = 0  # bumped on every change: the server re-sends the state when it moved
        self.dropped: Counter = Counter()

    # -- folding records in ----------------------------------------------------------------

    def apply(self, topic: str, record: OutputRecord, now: datetime) -> Optional[dict[str, Any]]:
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

    def _touch(self, shop_id: str, platform: Optional[str]) -> Shop:
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
                "start": format_time(datetime.fromtimestamp(first * 3600, timezone.utc)),
                "series": {stage: [self.chart.get(h, empty)[i] for h in hours] for i, stage in enumerate(STAGES)}}


def _percent(value: Any) -> str:
    text = f"{float(value) * 100:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


# -- decoding ----------------------------------------------------------------------------------

def decode_output(topic: str, raw: Optional[bytes]) -> OutputRecord:
    """Decode and validate one output record; raises codec.BadInput naming the defect."""
    from pydantic import ValidationError

    from schemas import codec

    if raw is None:
        raise codec.BadInput("(value): the record has no value")
    data = codec.loads(raw)
    if not isinstance(data, dict):
        raise codec.BadInput(f"(value): expected a JSON object, got {type(data).__name__}")
    try:
        return OUTPUT_MODELS[topic].model_validate(data)  # type: ignore[return-value]
    except ValidationError as exc:
        raise codec.BadInput(codec.describe(exc)) from None


# -- the Kafka reader --------------------------------------------------------------------------


class OutputReader:
    """Reads the output topics from `since` on into the state; hands each new feed item on."""

    def __init__(self, bootstrap: list[str], client_id: str, since: datetime, state: DashboardState,
                 on_item: Callable[[dict[str, Any]], None], client_kwargs: Optional[dict[str, Any]] = None) -> None:
        self.bootstrap = bootstrap
        self.client_kwargs = client_kwargs or {}  # TLS / SASL
        self.client_id = client_id
        self.since_ms = int(since.timestamp() * 1000)
        self.state = state
        self.on_item = on_item
        self.status = "connecting"  # -> catching up -> live
        self.partitions = 0
        self.started = time.monotonic()
        self.resume: dict[tuple[str, int], int] = {}  # next offset per partition: a reconnect goes on from there

    async def run(self, stop: asyncio.Event) -> None:
        """Read until `stop`; a lost broker is retried every few seconds, the state kept."""
        from aiokafka.errors import KafkaError

        while not stop.is_set():
            try:
                await self._read(stop)
            except (KafkaError, OSError, asyncio.TimeoutError) as exc:
                self.status = "connecting"
                log.warning("dashboard broker unavailable broker=%s error=%s retry_in_s=3",
                            ",".join(self.bootstrap), type(exc).__name__)
                await _wait(stop, 3.0)

    async def _read(self, stop: asyncio.Event) -> None:
        from aiokafka import AIOKafkaConsumer

        from streams.kafka.compat import raise_to_highwater

        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, client_id=self.client_id, group_id=None,
                                    enable_auto_commit=False, fetch_max_wait_ms=250, request_timeout_ms=15_000,
                                    **self.client_kwargs)
        try:
            await consumer.start()
            tps = await self._partitions(consumer, stop)
            if not tps:
                return
            consumer.assign(tps)
            await self._seek(consumer, tps)
            ends = await raise_to_highwater(consumer._client, await consumer.end_offsets(tps))
            pending = {tp: end for tp, end in ends.items() if end > 0}
            self.partitions = len(tps)
            self.status = "catching up" if pending else "live"
            log.info("dashboard reading topics=%s partitions=%d since=%s", ",".join(TOPICS), len(tps),
                     format_time(datetime.fromtimestamp(self.since_ms / 1000, timezone.utc)))
            if not pending:
                self._log_caught_up()
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=1000)
                for tp, records in batches.items():
                    for record in records:
                        self._take(tp.topic, record)
                if pending:
                    for tp in [tp for tp, end in pending.items() if await consumer.position(tp) >= end]:
                        del pending[tp]
                    if not pending:
                        self.status = "live"
                        self._log_caught_up()
        finally:
            await consumer.stop()

    async def _partitions(self, consumer: Any, stop: asyncio.Event) -> list[Any]:
        """Every partition of the three topics, once all three exist (asking never creates one)."""
        from aiokafka import TopicPartition

        waited = False
        while not stop.is_set():
            cluster = await consumer._client.fetch_all_metadata()
            found = {topic: cluster.partitions_for_topic(topic) for topic in TOPICS}
            missing = [topic for topic, parts in found.items() if not parts]
            if not missing:
                return [TopicPartition(topic, p) for topic in TOPICS for p in sorted(found[topic])]
            self.status = "waiting for topics"
            if not waited:
                log.warning("dashboard waiting for topics missing=%s", ",".join(missing))
                waited = True
            await _wait(stop, 2.0)
        return []

    async def _seek(self, consumer: Any, tps: list[Any]) -> None:
        """Where the last connection left off, else to the first record at or after `since` (where the
        broker cannot say, the beginning)."""
        for tp in tps:
            if (tp.topic, tp.partition) in self.resume:
                consumer.seek(tp, self.resume[(tp.topic, tp.partition)])
        tps = [tp for tp in tps if (tp.topic, tp.partition) not in self.resume]
        if not tps:
            return
        try:
            found = await consumer.offsets_for_times({tp: self.since_ms for tp in tps})
        except Exception as exc:  # an old broker without timestamp lookup: read all, skip by timestamp
            log.warning("dashboard offsets_for_times failed error=%s reading_from=beginning", type(exc).__name__)
            await consumer.seek_to_beginning(*tps)
            return
        for tp in tps:
            answer = found.get(tp)
            if answer is None:  # no record since then: only new ones
                await consumer.seek_to_end(tp)
            else:
                consumer.seek(tp, answer.offset)

    def _take(self, topic: str, record: Any) -> None:
        from schemas import codec

        self.resume[(topic, record.partition)] = record.offset + 1
        if record.timestamp is not None and 0 <= record.timestamp < self.since_ms:
            self.state.dropped["older_than_window"] += 1
            return
        try:
            value = decode_output(topic, record.value)
        except codec.BadInput as exc:
            self.state.dropped["bad_records"] += 1
            log.warning("dashboard bad record topic=%s partition=%d offset=%d error=%s",
                        topic, record.partition, record.offset, str(exc)[:200])
            return
        at = (datetime.fromtimestamp(record.timestamp / 1000, timezone.utc)
              if record.timestamp is not None and record.timestamp >= 0 else datetime.now(timezone.utc))
        item = self.state.apply(topic, value, at)
        if item is not None:
            self.on_item(item)

    def _log_caught_up(self) -> None:
        log.info("dashboard caught up records=%d seconds=%.1f dropped=%s", self.state.records,
                 time.monotonic() - self.started,
                 ",".join(f"{k}:{v}" for k, v in sorted(self.state.dropped.items())) or "none")


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass


# -- browsers on /events -----------------------------------------------------------------------


class Hub:
    """The browsers listening on /events: one bounded queue each; one that falls behind is dropped."""

    def __init__(self, max_clients: int = 100, queue_size: int = 64) -> None:
        self.max_clients = max_clients
        self.queue_size = queue_size
        self.clients: set[asyncio.Queue] = set()
        self.dropped_slow = 0

    def join(self) -> Optional[asyncio.Queue]:
        """A queue for a new browser, or None when there are too many."""
        if len(self.clients) >= self.max_clients:
            return None
        queue: asyncio.Queue = asyncio.Queue(self.queue_size)
        self.clients.add(queue)
        return queue

    def leave(self, queue: asyncio.Queue) -> None:
        self.clients.discard(queue)

    def send(self, message: Optional[bytes]) -> None:
        """Queue `message` for every browser (None ends their streams)."""
        for queue in list(self.clients):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:  # too slow: drop it, its EventSource reconnects and resyncs
                self.dropped_slow += 1
                self.clients.discard(queue)
                log.warning("dashboard dropped a slow client queued=%d dropped_total=%d", queue.qsize(),
                            self.dropped_slow)
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(None)


def sse(event: str, data: Any) -> bytes:
    """One server-sent event (orjson writes no newline, so one data line)."""
    from schemas import codec

    return b"event: " + event.encode() + b"\ndata: " + codec.dumps(data) + b"\n\n"


# -- the web server ----------------------------------------------------------------------------


@dataclass
class Dashboard:
    """The state, the reader and the browsers of one `shipguard dashboard` process."""

    state: DashboardState
    token: Optional[str] = None
    hub: Hub = field(default_factory=Hub)
    reader: Optional[OutputReader] = None
    pending: deque = field(default_factory=lambda: deque(maxlen=200))
    now: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))

    def on_item(self, item: dict[str, Any]) -> None:
        if self.hub.clients:
            self.pending.append(item)

    def snapshot(self, feed: bool = True) -> dict[str, Any]:
        data = self.state.snapshot(self.now(), feed=feed)
        data["status"] = self.reader.status if self.reader else "idle"
        return data

    def authorized(self, request: "web.Request") -> bool:
        """No token configured, or the request carries it (header or query), compared in constant time."""
        if not self.token:
            return True
        header = request.headers.get("Authorization", "")
        given = header[7:].strip() if header[:7].lower() == "bearer " else request.query.get("token", "")
        # Digests first: equal lengths, so the comparison's time tells nothing, not even the length.
        return hmac.compare_digest(hashlib.sha256(given.encode("utf-8")).digest(),
                                   hashlib.sha256(self.token.encode("utf-8")).digest())

    async def broadcast(self, stop: asyncio.Event, every: float = 0.5, refresh: float = 5.0) -> None:
        """Send new feed items every `every` s, and the state when it changed (at least every `refresh` s)."""
        sent_version, sent_at = -1, 0.0
        while not stop.is_set():
            await _wait(stop, every)
            if not self.hub.clients:
                self.pending.clear()
                continue
            if self.pending:
                items = list(self.pending)
                self.pending.clear()
                self.hub.send(sse("feed", items))
            clock = time.monotonic()
            if self.state.version != sent_version or clock - sent_at >= refresh:
                sent_version, sent_at = self.state.version, clock
                self.hub.send(sse("state", self.snapshot(feed=False)))
        self.hub.send(None)

    def app(self) -> "web.Application":
        """The aiohttp application: routes and the auth check."""
        from aiohttp import web

        @web.middleware
        async def auth(request: web.Request, handler: Callable) -> web.StreamResponse:
            resource = request.match_info.route.resource  # decided by what will answer, not by the path text
            if (resource is not None and resource.name in PUBLIC_RESOURCES) or self.authorized(request):
                return await handler(request)
            log.warning("dashboard unauthorized path=%s", request.path)
            return web.Response(status=401, text="401 Unauthorized: this dashboard needs its token, as "
                                "`Authorization: Bearer TOKEN` or `?token=TOKEN`.\n",
                                headers={"WWW-Authenticate": 'Bearer realm="shipguard dashboard"'})

        async def index(request: web.Request) -> web.StreamResponse:
            return web.FileResponse(STATIC_DIR / "index.html", headers=_NO_STORE)

        async def state(request: web.Request) -> web.Response:
            return web.json_response(self.snapshot(), dumps=_json_text, headers=_NO_STORE)

        async def healthz(request: web.Request) -> web.Response:
            status = self.reader.status if self.reader else "idle"
            return web.json_response({"status": "ok", "reader": status, "records": self.state.records})

        async def events(request: web.Request) -> web.StreamResponse:
            queue = self.hub.join()
            if queue is None:
                return web.Response(status=503, text="too many dashboard clients\n", headers={"Retry-After": "10"})
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                                   "X-Accel-Buffering": "no"})
            log.info("dashboard client connected clients=%d", len(self.hub.clients))
            try:
                await response.prepare(request)
                await response.write(b"retry: 3000\n\n" + sse("state", self.snapshot()))
                while True:
                    message = await queue.get()
                    if message is None:
                        break
                    await response.write(message)
            except ConnectionResetError:  # the browser went away
                pass
            finally:
                self.hub.leave(queue)
                log.info("dashboard client left clients=%d", len(self.hub.clients))
            return response

        app = web.Application(middlewares=[auth])
        app.router.add_get("/", index)
        app.router.add_get("/api/state", state)
        app.router.add_get("/events", events)
        app.router.add_get("/healthz", healthz, name="healthz")
        app.router.add_static("/static/", STATIC_DIR, show_index=False, name="static")
        return app


_NO_STORE = {"Cache-Control": "no-store"}
PUBLIC_RESOURCES = ("static", "healthz")  # no data: the page's code and a liveness answer


def _json_text(data: Any) -> str:
    from schemas import codec

    return codec.dumps(data).decode("utf-8")


async def serve(bootstrap: list[str], host: str, port: int, hours: float, token: Optional[str],
                clock: str, app_id: str, client_kwargs: Optional[dict[str, Any]] = None) -> int:
    """Run the reader and the web server until SIGINT or SIGTERM; returns an exit code."""
    from aiohttp import web

    window = timedelta(hours=hours)
    started = datetime.now(timezone.utc)
    dashboard = Dashboard(DashboardState(window, clock=clock), token=token)
    dashboard.reader = OutputReader(bootstrap, f"{app_id}-dashboard", started - window, dashboard.state,
                                    dashboard.on_item, client_kwargs)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(dashboard.app(), access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(f"shipguard dashboard: cannot listen on {host}:{port}: {exc.strerror or exc}. "
              f"Pick another port with --port.", file=sys.stderr)
        return 2
    bound = site._server.sockets[0].getsockname()[1] if site._server and site._server.sockets else port
    log.info("dashboard listening url=http://%s:%d/ auth=%s hours=%g clock=%s broker=%s", host, bound,
             "token" if token else "none", hours, clock, ",".join(bootstrap))
    if not token and host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("dashboard has no token and listens on %s: anyone who reaches the port sees it; "
                    "set SHIPGUARD_DASHBOARD_TOKEN", host)
    tasks = [asyncio.create_task(dashboard.reader.run(stop)), asyncio.create_task(dashboard.broadcast(stop))]
    try:
        await stop.wait()
    finally:
        stop.set()
        dashboard.hub.send(None)
        await asyncio.wait(tasks, timeout=5)
        for task in tasks:
            task.cancel()
        await runner.cleanup()
        log.info("dashboard stopped records=%d", dashboard.state.records)
    return 0


# -- command line ------------------------------------------------------------------------------


def dashboard_env(env: Optional[Mapping[str, str]] = None) -> tuple[Optional[str], int]:
    """(token, port) from SHIPGUARD_DASHBOARD_TOKEN and SHIPGUARD_DASHBOARD_PORT (default 8080)."""
    from streams.config import ConfigError

    env = os.environ if env is None else env
    token = (env.get("SHIPGUARD_DASHBOARD_TOKEN") or "").strip() or None
    raw = (env.get("SHIPGUARD_DASHBOARD_PORT") or "").strip()
    if not raw:
        return token, DEFAULT_PORT
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise ConfigError(f"SHIPGUARD_DASHBOARD_PORT={raw!r}: expected a port 1..65535")
    return token, int(raw)


def _hours(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of hours") from None
    if not 0 < value <= 24 * 30:
        raise argparse.ArgumentTypeError(f"{text}: expected more than 0 and at most 720 hours")
    return value


EPILOG = """examples:
  shipguard dashboard                                  # http://127.0.0.1:8080/, the last 24 hours
  shipguard dashboard --port 8081 --hours 100          # over 4 days: open NOT_DELIVERED warnings too
  SHIPGUARD_DASHBOARD_TOKEN=s3cret shipguard dashboard --host 0.0.0.0
                                                       # then open http://HOST:8080/?token=s3cret
  SHIPGUARD_CLOCK=event shipguard dashboard            # during a replay: time left by stream time

Counts cover the records of the last --hours (by record timestamp). An open warning is a
WARNING with no VIOLATION or RESOLVED yet; one whose WARNING is older than --hours is not
seen. Shops are ranked by open rate alerts, then violations in the window, then open warnings.
"""


def add_dashboard_parser(sub: Any) -> None:
    """Add `shipguard dashboard` to the CLI's subparsers."""
    p = sub.add_parser(
        "dashboard", help="live web dashboard: warnings, open deadlines, shops at risk, cancellations",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Serve a live web page over violation-warnings, cancellation-outcomes and shop-alerts: "
                    "a live feed, counts by rule and stage, open warnings by time left, shops ranked by "
                    "risk, cancellation outcomes by code and warnings per hour. It reads the topics "
                    "itself (plain Kafka consumer, no commits, nothing shared with the worker).")
    p.add_argument("--port", type=int, help="HTTP port (default SHIPGUARD_DASHBOARD_PORT or 8080; 0: any free port)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 in a container, with a token)")
    p.add_argument("--hours", type=_hours, default=DEFAULT_HOURS,
                   help="read and count the records of the last H hours (default 24)")
    p.add_argument("--token", help="require this token (default SHIPGUARD_DASHBOARD_TOKEN, better: a flag shows in `ps`; "
                        "none: no auth)")
    p.add_argument("--broker", help="bootstrap URL (default SHIPGUARD_BROKER)")
    p.add_argument("--clock", choices=("wall", "event"),
                   help="wall: time left by the wall clock; event: by the latest event time read "
                        "(replays). Default SHIPGUARD_CLOCK or wall")
    p.set_defaults(func=cmd_dashboard)


def cmd_dashboard(args: argparse.Namespace) -> int:
    """`shipguard dashboard`: returns an exit code (2 for a bad setting or a taken port)."""
    from streams.config import ConfigError, load_settings
    from streams.kafka.security import aiokafka_kwargs

    try:
        settings = load_settings(broker=args.broker, clock=args.clock)
        env_token, env_port = dashboard_env()
        client_kwargs = aiokafka_kwargs(settings)
    except ConfigError as exc:
        print(f"shipguard dashboard: {exc}", file=sys.stderr)
        return 2
    level = logging.WARNING if settings.log_level in ("warning", "warn") else getattr(
        logging, settings.log_level.upper(), logging.INFO)
    log.setLevel(level)
    port = env_port if args.port is None else args.port
    token = args.token or env_token
    return asyncio.run(serve(settings.bootstrap_servers, args.host, port, args.hours, token, settings.clock,
                             settings.app_id, client_kwargs))
