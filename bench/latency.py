"""Latency of a wall-clock worker: publish -> output for immediate stages, and deadline lateness.

`measure(broker, workdir, rate, seconds)` starts a shipguard worker in WALL clock mode on a
started `streams.kafka.embedded.EmbeddedBroker`, publishes a steady, realistic mix of events at `rate`
events/s for `seconds` (event times = now, UTC) from this process, reads `violation-warnings`,
`cancellation-outcomes` and `dead-letters` from their ends in this process, and matches every
output to the event that caused it by (order_id, rule, stage):

* immediate stages (decided when the event is read): WAYBILL_INVALID WARNING / RESOLVED,
  EXPRESS_STOP_REMARK WARNING / RESOLVED, WAYBILL_REUSED WARNING (one round trip through the
  waybill side). latency = receipt (monotonic) - publish (monotonic, just before `send`).
* rules 7 and 8 and cancellation outcomes, reported in their own rows: in wall mode they may be
  decided one allowed lateness (10 min) after their event, i.e. not within the run.
* deadlines: SHIP_OVERDUE and NO_PICKUP WARNINGs whose timer T falls in the run; a timer fires
  once wall time - lateness >= T, so lateness = receipt (wall) - (occurred_at + allowed lateness).

Before the worker starts, its fresh consumer group is committed at the real end of every input
topic that already exists, so records left by earlier benchmarks on a shared broker are not
replayed ahead of the load (a fresh group starts from the earliest offsets).

Standalone: `python -m bench.latency --rate 1000 --seconds 30` (starts its own broker).
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import itertools
import json
import math
import os
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from schemas import codec
from schemas.events import INPUT_MODELS
from streams import topics as T

TARGET_P99_MS = 50.0
TARGET_RATE = 1000.0
TARGET_DEADLINE_P99_S = 1.0

STEP_GAP = 0.3        # seconds between the events of one order (paid -> upload -> scans)
REUSE_GAP = 1.0       # before the second order's upload of a reused number: the first is registered
WARMUP_S = 2.0        # triggers published in the first seconds are not in the latency rows
GRACE_S = 10.0        # wait after the load for outputs still on their way
CONSUMER_FETCH_WAIT_MS = 5  # the embedded broker holds a fetch for its max wait even when data arrives

IMMEDIATE = ("WAYBILL_INVALID/WARNING", "WAYBILL_INVALID/RESOLVED", "EXPRESS_STOP_REMARK/WARNING",
             "EXPRESS_STOP_REMARK/RESOLVED", "WAYBILL_REUSED/WARNING")
DEFERRED = ("ADDRESS_MISMATCH/VIOLATION", "PICKUP_BEFORE_PAYMENT/VIOLATION", "CANCELLATION/OUTCOME")
DEADLINE = ("SHIP_OVERDUE/WARNING", "NO_PICKUP/WARNING")

CITIES = (("浙江省", "杭州市"), ("广东省", "深圳市"), ("上海市", "上海市"), ("北京市", "北京市"),
          ("四川省", "成都市"), ("湖北省", "武汉市"), ("江苏省", "南京市"), ("福建省", "厦门市"))
NAMES = ("张三", "李四", "王五", "赵六", "陈七", "刘八", "周九", "吴十")
PLATFORMS = ("douyin", "douyin", "taobao", "tiktok")
STOP_REMARKS = ("不要发快递，我自己来拿", "快递停发了，到店自取", "不要发快递")


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds")


def _pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1) of unsorted values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _summary(values: list[float], scale: float, unit: str) -> dict[str, Any]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v * scale, 2)
    return {"count": len(values), f"p50_{unit}": r(_pct(values, 0.50)), f"p99_{unit}": r(_pct(values, 0.99)),
            f"max_{unit}": r(max(values) if values else None)}


# ---- the event mix ------------------------------------------------------------------------------

@dataclass
class Expect:
    """An output the worker should emit because of one published event."""

    kind: str                 # "RULE/STAGE" (or CANCELLATION/OUTCOME)
    key: tuple[str, str, str]  # (order_id, rule, stage) as matched on the output
    publish_mono: float = 0.0
    publish_wall: float = 0.0
    due_wall: float | None = None  # deadlines: occurred_at + lateness (epoch seconds)
    received_mono: float | None = None
    received_wall: float | None = None
    detail: str | None = None      # e.g. the cancellation's decision code


@dataclass(order=True)
class Step:
    """One event of a scenario, published at `due` (monotonic) or at the next free slot after."""

    due: float
    seq: int
    topic: str = field(compare=False)
    key: str = field(compare=False)
    build: Callable[[datetime], dict] = field(compare=False)
    expects: tuple[Expect, ...] = field(compare=False, default=())


class Mix:
    """Scenarios of orders as events; numbers and ids carry a run token so runs never collide."""

    WEIGHTS = (("clean", 0.70), ("invalid", 0.06), ("remark", 0.06), ("reused", 0.04),
               ("address", 0.05), ("pickup_before_payment", 0.05), ("cancel", 0.04))

    def __init__(self, token: str, seed: int = 7) -> None:
        self.token = token
        self.rng = random.Random(seed)
        self.digits = f"{random.Random(token).randrange(10_000):04d}"  # in every waybill number
        self.orders = itertools.count(1)
        self.numbers = itertools.count(1)
        self.seq = itertools.count()
        self.names, self.weights = zip(*self.WEIGHTS, strict=True)
        self.started: Counter[str] = Counter()

    # ids and numbers
    def order_id(self) -> str:
        return f"L{self.token}-{next(self.orders)}"

    def shop_id(self) -> str:
        return f"shop-{self.token}-{self.rng.randrange(20)}"

    def valid_number(self) -> tuple[str, str]:
        n = next(self.numbers)
        carrier = self.rng.choice(("SF", "ZTO", "YTO", "JT"))
        number = {"SF": f"SF1{self.digits}{n:08d}", "ZTO": f"73{self.digits}{n:08d}",
                  "YTO": f"YT{self.digits}{n:09d}", "JT": f"JT{self.digits}{n:08d}"}[carrier]
        return carrier, number

    def invalid_number(self) -> tuple[str, str]:
        return "SF", f"SF{self.digits}{next(self.numbers):05d}"  # SF + 9 digits: fails SF[0-9A-Z]\d{12}

    def recipient(self, city: tuple[str, str] | None = None) -> dict:
        province, name_city = city or self.rng.choice(CITIES)
        return {"name": self.rng.choice(NAMES), "phone": f"13{self.rng.randrange(10**9):09d}",
                "province": province, "city": name_city, "district": None,
                "address": f"测试路 {self.rng.randrange(1, 999)} 号 {self.rng.randrange(1, 30)} 栋"}

    # event builders: each takes the publish instant (UTC) and returns the JSON value
    def paid(self, order_id: str, shop: str, recipient: dict, *, remark: str | None = None,
             paid_shift: timedelta = timedelta(0), ship_by: Callable[[datetime], datetime] | None = None,
             platform: str | None = None) -> Callable[[datetime], dict]:
        platform = platform or self.rng.choice(PLATFORMS)

        def build(now: datetime) -> dict:
            value = {"event_id": f"{order_id}-paid", "order_id": order_id, "shop_id": shop, "platform": platform,
                     "paid_at": _iso(now + paid_shift), "amount": f"{self.rng.randrange(9, 500)}.00",
                     "currency": "CNY", "recipient": recipient}
            if remark:
                value["buyer_remark"] = remark
            if ship_by is not None:
                value["ship_by"] = _iso(ship_by(now))
            return value
        return build

    @staticmethod
    def upload(order_id: str, shop: str, carrier: str, number: str, k: int,
               at: Callable[[datetime], datetime] | None = None) -> Callable[[datetime], dict]:
        def build(now: datetime) -> dict:
            return {"event_id": f"{order_id}-up{k}", "order_id": order_id, "shop_id": shop, "carrier": carrier,
                    "waybill_no": number, "uploaded_at": _iso(at(now) if at else now)}
        return build

    @staticmethod
    def scan(carrier: str, number: str, k: int, status: str, city: tuple[str, str],
             shift: timedelta = timedelta(0)) -> Callable[[datetime], dict]:
        def build(now: datetime) -> dict:
            return {"event_id": f"{number}-s{k}", "carrier": carrier, "waybill_no": number,
                    "scan_at": _iso(now + shift), "status": status, "city": city[1], "province": city[0]}
        return build

    @staticmethod
    def cancel(order_id: str, shop: str) -> Callable[[datetime], dict]:
        def build(now: datetime) -> dict:
            return {"event_id": f"{order_id}-cancel", "order_id": order_id, "shop_id": shop,
                    "reason": "OUT_OF_STOCK", "detail": "库存不足", "requested_at": _iso(now)}
        return build

    def _steps(self, start: float, items: list[tuple[float, str, str, Callable, tuple[Expect, ...]]]) -> list[Step]:
        return [Step(start + offset, next(self.seq), topic, key, build, expects)
                for offset, topic, key, build, expects in items]

    def scenario(self, start: float) -> list[Step]:
        """A new order scenario (steps at start + offsets), picked by the mix's weights."""
        name = self.rng.choices(self.names, self.weights)[0]
        self.started[name] += 1
        return getattr(self, f"_{name}")(start)

    def _express(self, order_id: str, shop: str, city: tuple[str, str], remark: str | None = None):
        recipient = self.recipient(city)
        return self.paid(order_id, shop, recipient, remark=remark)

    def _shipped(self, start: float, second_status: str, elsewhere: bool, expect: tuple = ()) -> list[Step]:
        """Paid, uploaded, picked up in the recipient's city, then one more scan (in another
        city if `elsewhere`), which carries `expect`."""
        oid, shop = self.order_id(), self.shop_id()
        city, other = self.rng.sample(CITIES, 2)
        carrier, number = self.valid_number()
        g = STEP_GAP
        return self._steps(start, [
            (0, T.ORDER_PAID, oid, self._express(oid, shop, city), ()),
            (g, T.WAYBILL_UPLOADED, oid, self.upload(oid, shop, carrier, number, 1), ()),
            (2 * g, T.TRACKING_SCANS, number, self.scan(carrier, number, 1, "PICKED_UP", city), ()),
            (3 * g, T.TRACKING_SCANS, number,
             self.scan(carrier, number, 2, second_status, other if elsewhere else city),
             tuple(Expect(kind, (oid, *key)) for kind, key in expect))])

    def _clean(self, start: float) -> list[Step]:
        return self._shipped(start, "IN_TRANSIT", elsewhere=False)

    def _invalid(self, start: float) -> list[Step]:
        oid, shop, city = self.order_id(), self.shop_id(), self.rng.choice(CITIES)
        bad_carrier, bad = self.invalid_number()
        items = [(0, T.ORDER_PAID, oid, self._express(oid, shop, city), ()),
                 (STEP_GAP, T.WAYBILL_UPLOADED, oid, self.upload(oid, shop, bad_carrier, bad, 1),
                  (Expect("WAYBILL_INVALID/WARNING", (oid, "WAYBILL_INVALID", "WARNING")),))]
        if self.rng.random() < 0.5:  # half are corrected a little later
            carrier, number = self.valid_number()
            items.append((2 * STEP_GAP, T.WAYBILL_UPLOADED, oid, self.upload(oid, shop, carrier, number, 2),
                          (Expect("WAYBILL_INVALID/RESOLVED", (oid, "WAYBILL_INVALID", "RESOLVED")),)))
        return self._steps(start, items)

    def _remark(self, start: float) -> list[Step]:
        oid, shop, city = self.order_id(), self.shop_id(), self.rng.choice(CITIES)
        carrier, number = self.valid_number()
        return self._steps(start, [
            (0, T.ORDER_PAID, oid, self._express(oid, shop, city, remark=self.rng.choice(STOP_REMARKS)),
             (Expect("EXPRESS_STOP_REMARK/WARNING", (oid, "EXPRESS_STOP_REMARK", "WARNING")),)),
            (STEP_GAP, T.WAYBILL_UPLOADED, oid, self.upload(oid, shop, carrier, number, 1),
             (Expect("EXPRESS_STOP_REMARK/RESOLVED", (oid, "EXPRESS_STOP_REMARK", "RESOLVED")),))])

    def _reused(self, start: float) -> list[Step]:
        first, second, shop = self.order_id(), self.order_id(), self.shop_id()
        city_a, city_b = self.rng.sample(CITIES, 2)
        carrier, number = self.valid_number()
        g = STEP_GAP
        return self._steps(start, [
            (0, T.ORDER_PAID, first, self._express(first, shop, city_a), ()),
            (g / 2, T.ORDER_PAID, second, self._express(second, shop, city_b), ()),
            (g, T.WAYBILL_UPLOADED, first, self.upload(first, shop, carrier, number, 1), ()),
            (g + REUSE_GAP, T.WAYBILL_UPLOADED, second, self.upload(second, shop, carrier, number, 1),
             (Expect("WAYBILL_REUSED/WARNING", (second, "WAYBILL_REUSED", "WARNING")),))])

    def _address(self, start: float) -> list[Step]:
        return self._shipped(start, "OUT_FOR_DELIVERY", elsewhere=True,
                             expect=(("ADDRESS_MISMATCH/VIOLATION", ("ADDRESS_MISMATCH", "VIOLATION")),))

    def _pickup_before_payment(self, start: float) -> list[Step]:
        oid, shop, city = self.order_id(), self.shop_id(), self.rng.choice(CITIES)
        carrier, number = self.valid_number()
        g = STEP_GAP
        # the scan is read last but says it happened 30 min before payment (paid ~2g before it)
        return self._steps(start, [
            (0, T.ORDER_PAID, oid, self._express(oid, shop, city), ()),
            (g, T.WAYBILL_UPLOADED, oid, self.upload(oid, shop, carrier, number, 1), ()),
            (2 * g, T.TRACKING_SCANS, number,
             self.scan(carrier, number, 1, "PICKED_UP", city, shift=-timedelta(minutes=30)),
             (Expect("PICKUP_BEFORE_PAYMENT/VIOLATION", (oid, "PICKUP_BEFORE_PAYMENT", "VIOLATION")),))])

    def _cancel(self, start: float) -> list[Step]:
        oid, shop, city = self.order_id(), self.shop_id(), self.rng.choice(CITIES)
        return self._steps(start, [
            (0, T.ORDER_PAID, oid, self._express(oid, shop, city), ()),
            (STEP_GAP, T.CANCELLATION_REQUESTS, oid, self.cancel(oid, shop),
             (Expect("CANCELLATION/OUTCOME", (oid, "CANCELLATION", "OUTCOME")),))])

    # deadline orders: their timer T falls at load start + d, so they fire in the run
    def ship_overdue(self, start: float, d: float, lateness: timedelta, lead: timedelta) -> list[Step]:
        """ship_by = now + lead - lateness + d: the WARNING at ship_by - lead fires at now + d."""
        oid, shop, city = self.order_id(), self.shop_id(), self.rng.choice(CITIES)
        def ship_by(now: datetime) -> datetime:
            return now + lead - lateness + timedelta(seconds=d)

        return self._steps(start, [
            (0, T.ORDER_PAID, oid, self.paid(oid, shop, self.recipient(city), ship_by=ship_by, platform="douyin"),
             (Expect("SHIP_OVERDUE/WARNING", (oid, "SHIP_OVERDUE", "WARNING")),))])

    def no_pickup(self, start: float, d: float, lateness: timedelta, pickup: timedelta) -> list[Step]:
        """An upload made pickup - lateness + d ago (paid an hour before it), never scanned."""
        oid, shop, city = self.order_id(), self.shop_id(), self.rng.choice(CITIES)
        carrier, number = self.valid_number()
        def uploaded(now: datetime) -> datetime:
            return now - pickup - lateness + timedelta(seconds=d)

        return self._steps(start, [
            (0, T.ORDER_PAID, oid, self.paid(oid, shop, self.recipient(city), platform="douyin",
                                               paid_shift=-(pickup + lateness + timedelta(hours=1))), ()),
            (STEP_GAP, T.WAYBILL_UPLOADED, oid,
             self.upload(oid, shop, carrier, number, 1, at=lambda now: uploaded(now - timedelta(seconds=STEP_GAP))),
             (Expect("NO_PICKUP/WARNING", (oid, "NO_PICKUP", "WARNING")),))])


def self_check(mix: Mix) -> None:
    """Every scenario's events validate against the input models (a typo would only dead-letter)."""
    now = datetime.now(UTC)
    probe = Mix(mix.token + "x", seed=1)
    steps = [s for name in probe.names for s in getattr(probe, f"_{name}")(0.0)]
    steps += probe.ship_overdue(0.0, 5, timedelta(minutes=10), timedelta(hours=6))
    steps += probe.no_pickup(0.0, 5, timedelta(minutes=10), timedelta(hours=24))
    for step in steps:
        INPUT_MODELS[step.topic].model_validate(step.build(now))


# ---- the run --------------------------------------------------------------------------------------

class Run:
    """Publisher and output reader of one measurement, in one event loop."""

    def __init__(self, bootstrap: str, rate: float, seconds: float, lateness: timedelta, lead: timedelta,
                 pickup: timedelta, token: str, deadline_orders: int, warmup: float, grace: float) -> None:
        self.bootstrap, self.rate, self.seconds = bootstrap, rate, seconds
        self.lateness, self.lead, self.pickup = lateness, lead, pickup
        self.mix = Mix(token)
        self.prefix = f"L{token}-"
        self.deadline_orders, self.warmup, self.grace = deadline_orders, warmup, grace
        self.expected: dict[tuple[str, str, str], Expect] = {}
        self.unexpected: Counter[str] = Counter()
        self.duplicates: Counter[str] = Counter()
        self.dead_letters = 0
        self.published = 0
        self.by_topic: Counter[str] = Counter()
        self.publish_errors = 0
        self.first_publish = self.last_publish = 0.0
        self.load_start = 0.0
        self.last_deferred_receipt = 0.0
        self.max_behind = 0.0

    async def run(self, on_load_start: Callable[[], None], on_load_end: Callable[[], None]) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

        from streams.kafka import admin

        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=1, acks="all",
                                    enable_idempotence=False, client_id="latency-load")
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=f"latency-probe-{self.mix.token}",
                                    enable_auto_commit=False, fetch_max_wait_ms=CONSUMER_FETCH_WAIT_MS,
                                    client_id="latency-reader")
        await producer.start()
        await consumer.start()
        try:
            tps = []
            for topic in (T.VIOLATION_WARNINGS, T.CANCELLATION_OUTCOMES, T.DEAD_LETTERS):
                ends = await asyncio.to_thread(admin.end_offsets, self.bootstrap, topic)
                tps += [(TopicPartition(topic, p), end) for p, end in ends.items()]
            consumer.assign([tp for tp, _ in tps])
            for tp, end in tps:  # the real ends: the embedded broker's ListOffsets answers too low
                consumer.seek(tp, end)
            stop = asyncio.Event()
            reader = asyncio.create_task(self._read(consumer, stop))
            try:
                on_load_start()
                await self._publish(producer)
                on_load_end()
                await producer.flush()
                await self._wait_for_outputs()
            finally:
                stop.set()
                await reader
        finally:
            await producer.stop()
            await consumer.stop()

    async def _publish(self, producer: Any) -> None:
        heap: list[Step] = []
        start = time.monotonic()
        self.load_start = start
        # deadline orders first, spread over the first second, timers at start + d, d in [2, seconds - 5]
        low, high = 2.0, max(2.0, self.seconds - 5.0)
        n = self.deadline_orders
        for i in range(n):
            d = low + (high - low) * (i + 0.5) / n
            at = start + i / max(n, 1)
            for step in self.mix.ship_overdue(at, d, self.lateness, self.lead) if i % 2 == 0 else \
                    self.mix.no_pickup(at, d, self.lateness, self.pickup):
                heapq.heappush(heap, step)
        sent = 0
        futures: list[asyncio.Future] = []
        while True:
            now = time.monotonic()
            elapsed = now - start
            if elapsed >= self.seconds:
                break
            due = min(int(elapsed * self.rate) + 1, int(self.seconds * self.rate))
            burst = 0
            while sent < due and burst < 64:
                now = time.monotonic()
                if heap and heap[0].due <= now:
                    step = heapq.heappop(heap)
                else:
                    steps = self.mix.scenario(now)
                    step = steps[0]
                    for later in steps[1:]:
                        heapq.heappush(heap, later)
                futures.append(await self._send(producer, step))
                sent += 1
                burst += 1
            self.max_behind = max(self.max_behind, (due - sent) / self.rate)
            next_slot = start + sent / self.rate
            await asyncio.sleep(max(0.0, next_slot - time.monotonic()))
        self.published = sent
        results = await asyncio.gather(*futures, return_exceptions=True)
        self.publish_errors = sum(isinstance(r, BaseException) for r in results)

    async def _send(self, producer: Any, step: Step) -> asyncio.Future:
        wall_now = datetime.now(UTC)
        value = orjson.dumps(step.build(wall_now))
        mono, wall = time.monotonic(), time.time()
        future = await producer.send(step.topic, value, key=step.key.encode("utf-8"))
        if not self.first_publish:
            self.first_publish = mono
        self.last_publish = mono
        self.by_topic[step.topic] += 1
        for expect in step.expects:
            expect.publish_mono, expect.publish_wall = mono, wall
            self.expected[expect.key] = expect
        return future

    async def _read(self, consumer: Any, stop: asyncio.Event) -> None:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=50)
            mono, wall = time.monotonic(), time.time()
            for records in batch.values():
                for record in records:
                    self._receive(record.topic, record.key, record.value, mono, wall)

    def _receive(self, topic: str, key: bytes | None, value: bytes, mono: float, wall: float) -> None:
        if topic == T.DEAD_LETTERS:
            self.dead_letters += 1
            return
        data = codec.loads(value)
        order_id = data.get("order_id", "")
        if not order_id.startswith(self.prefix):
            return
        if topic == T.CANCELLATION_OUTCOMES:
            match, name = (order_id, "CANCELLATION", "OUTCOME"), f"CANCELLATION/{data.get('code')}"
        else:
            match, name = (order_id, data["rule"], data["stage"]), f"{data['rule']}/{data['stage']}"
        expect = self.expected.get(match)
        if expect is None:
            self.unexpected[name] += 1
            return
        if expect.received_mono is not None:
            self.duplicates[name] += 1
            return
        expect.received_mono, expect.received_wall = mono, wall
        if topic == T.CANCELLATION_OUTCOMES:
            expect.detail = data.get("code")
        elif expect.kind in DEADLINE:
            occurred = datetime.fromisoformat(data["occurred_at"].replace("Z", "+00:00"))
            expect.due_wall = (occurred + self.lateness).timestamp()
        if expect.kind in DEFERRED:
            self.last_deferred_receipt = mono

    async def _wait_for_outputs(self) -> None:
        """Until every immediate and deadline output is in (and deferred ones went quiet), or grace."""
        end = time.monotonic() + self.grace
        while time.monotonic() < end:
            pending = [e for e in self.expected.values() if e.kind not in DEFERRED and e.received_mono is None]
            quiet = time.monotonic() - max(self.last_deferred_receipt, self.last_publish) > 2.0
            if not pending and quiet:
                return
            await asyncio.sleep(0.1)

    # ---- results
    def report(self) -> dict[str, Any]:
        warm_until = self.load_start + self.warmup
        rows: dict[str, dict[str, Any]] = {}
        overall: list[float] = []
        excluded = 0
        for kind in IMMEDIATE:
            items = [e for e in self.expected.values() if e.kind == kind]
            measured = [e for e in items if e.publish_mono >= warm_until]
            excluded += len(items) - len(measured)
            lat = [e.received_mono - e.publish_mono for e in measured if e.received_mono is not None]
            overall += lat
            rows[kind] = {**_summary(lat, 1000.0, "ms"), "expected": len(measured),
                          "missing": sum(e.received_mono is None for e in measured)}
        windows: list[dict[str, Any]] = []
        measured_all = [e for e in self.expected.values() if e.kind in IMMEDIATE]
        step = 5.0
        for i in range(int(math.ceil(self.seconds / step))):
            lo, hi = self.load_start + i * step, self.load_start + (i + 1) * step
            part = [e for e in measured_all if lo <= e.publish_mono < hi]
            lat = [e.received_mono - e.publish_mono for e in part if e.received_mono is not None]
            windows.append({"published_from_s": i * step, **_summary(lat, 1000.0, "ms"),
                            "missing": sum(e.received_mono is None for e in part)})
        immediate = {"overall": {**_summary(overall, 1000.0, "ms"),
                                 "expected": sum(r["expected"] for r in rows.values()),
                                 "missing": sum(r["missing"] for r in rows.values())},
                     "by_kind": rows, "warmup_excluded": excluded, "warmup_s": self.warmup,
                     "by_publish_window": windows}
        deferred: dict[str, dict[str, Any]] = {}
        for kind in DEFERRED:
            items = [e for e in self.expected.values() if e.kind == kind]
            lat = [e.received_mono - e.publish_mono for e in items if e.received_mono is not None]
            row = {**_summary(lat, 1000.0, "ms"), "expected": len(items),
                   "missing": sum(e.received_mono is None for e in items)}
            if kind == "CANCELLATION/OUTCOME":
                row["codes"] = dict(Counter(e.detail for e in items if e.detail))
            if items and not lat:
                row["note"] = "not emitted within the run"
            deferred[kind] = row
        late_rows: dict[str, dict[str, Any]] = {}
        late_all: list[float] = []
        for kind in DEADLINE:
            items = [e for e in self.expected.values() if e.kind == kind]
            late = [e.received_wall - e.due_wall for e in items if e.received_wall is not None and e.due_wall]
            late_all += late
            late_rows[kind] = {**_summary(late, 1.0, "s"), "expected": len(items),
                               "missing": sum(e.received_mono is None for e in items),
                               "min_s": round(min(late), 3) if late else None}
        deadlines = {"overall": {**_summary(late_all, 1.0, "s"),
                                 "expected": sum(r["expected"] for r in late_rows.values()),
                                 "missing": sum(r["missing"] for r in late_rows.values())},
                     "by_kind": late_rows, "allowed_lateness_s": self.lateness.total_seconds(),
                     "measure": "receipt wall time - (occurred_at + allowed lateness)"}
        span = self.seconds
        return {"published": self.published, "publish_errors": self.publish_errors,
                "achieved_rate": round(self.published / span, 1) if span else None,
                "publish_span_s": round(self.last_publish - self.first_publish, 3),
                "max_behind_schedule_s": round(self.max_behind, 4),
                "events_by_topic": dict(self.by_topic), "scenarios": dict(self.mix.started),
                "immediate": immediate, "deferred_in_wall_mode": deferred, "deadlines": deadlines,
                "unexpected_outputs": dict(self.unexpected), "duplicate_outputs": dict(self.duplicates),
                "dead_letters": self.dead_letters}


async def _transport_floor(bootstrap: str, fetch_wait_ms: int, count: int = 150, spacing: float = 0.01,
                           partitions: int = 8) -> dict[str, Any]:
    """One hop producer -> broker -> consumer on a scratch topic, at `count` records `spacing` apart."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    from streams.kafka import admin

    topic = f"latency-floor-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(admin.ensure_topics, [bootstrap], [topic], partitions)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1, acks="all", enable_idempotence=False)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=fetch_wait_ms)
    await producer.start()
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        sent: dict[int, float] = {}
        lat: list[float] = []

        async def read() -> None:
            while len(lat) < count:
                batch = await consumer.getmany(timeout_ms=100)
                now = time.monotonic()
                lat.extend(now - sent[int(r.value)] for records in batch.values() for r in records)

        reader = asyncio.create_task(read())
        for i in range(count):
            sent[i] = time.monotonic()
            await producer.send(topic, str(i).encode(), key=str(i).encode())
            await asyncio.sleep(spacing)
        await asyncio.wait_for(reader, 10 + fetch_wait_ms / 1000 * 2)
        return {"fetch_max_wait_ms": fetch_wait_ms, "records_per_s": round(1 / spacing), **_summary(lat, 1000.0, "ms")}
    finally:
        await producer.stop()
        await consumer.stop()
        await asyncio.to_thread(_delete_topic, bootstrap, topic)


def _delete_topic(bootstrap: str, topic: str) -> None:
    from kafka import KafkaAdminClient
    try:
        client = KafkaAdminClient(bootstrap_servers=[bootstrap], client_id="latency-cleanup")
        try:
            client.delete_topics([topic])
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - a scratch topic left behind is harmless
        pass


def _skip_backlog(bootstrap: str, group: str) -> int:
    """Commit `group` at the real end of every existing input topic; returns the records skipped."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    from streams.kafka import admin

    offsets = {}
    for topic in T.INPUT_TOPICS:
        try:
            ends = admin.end_offsets(bootstrap, topic)
        except ValueError:  # the topic does not exist yet: nothing to skip
            continue
        offsets.update({TopicPartition(topic, p): end for p, end in ends.items() if end > 0})
    if not offsets:
        return 0
    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], group_id=group, enable_auto_commit=False,
                             client_id="latency-skip-backlog")
    try:
        consumer.commit({tp: OffsetAndMetadata(end, "", -1) for tp, end in offsets.items()})
    finally:
        consumer.close()
    return sum(offsets.values())


class _Machine:
    """System-wide CPU use during the load (the machine may be shared with other work)."""

    def __init__(self) -> None:
        self.t0: Any = None
        self.t1: Any = None
        self.load: list[float] = []

    def start(self) -> None:
        import psutil
        self.t0, self.load = psutil.cpu_times(), [os.getloadavg()[0]]

    def stop(self) -> None:
        import psutil
        self.t1 = psutil.cpu_times()
        self.load.append(os.getloadavg()[0])

    def report(self) -> dict[str, Any] | None:
        if self.t0 is None or self.t1 is None:
            return None
        total = sum(self.t1) - sum(self.t0)
        idle = (self.t1.idle + getattr(self.t1, "iowait", 0)) - (self.t0.idle + getattr(self.t0, "iowait", 0))
        cores = os.cpu_count() or 1
        return {"cores": cores,
                "busy_percent_of_one_core": round(100 * cores * (1 - idle / total), 1) if total else None,
                "loadavg_1m_start_end": [round(x, 2) for x in self.load]}


class _Cpu:
    """CPU seconds of a process and its children between start() and stop()."""

    def __init__(self, pid: int | None, children: bool = True) -> None:
        import psutil
        self.proc = psutil.Process(pid) if pid else None
        self.children = children  # not for this process: the broker and the worker may be its children
        self.begin = self.end = 0.0
        self.t0 = self.t1 = 0.0

    def _total(self) -> float:
        import psutil
        if self.proc is None:
            return 0.0
        try:
            procs = [self.proc] + (self.proc.children(recursive=True) if self.children else [])
            return sum(p.cpu_times().user + p.cpu_times().system for p in procs)
        except psutil.Error:
            return 0.0

    def start(self) -> None:
        self.begin, self.t0 = self._total(), time.monotonic()

    def stop(self) -> None:
        self.end, self.t1 = self._total(), time.monotonic()

    def report(self) -> dict[str, float] | None:
        if self.proc is None or self.t1 <= self.t0:
            return None
        used = self.end - self.begin
        return {"cpu_s": round(used, 2), "percent_of_one_core": round(100 * used / (self.t1 - self.t0), 1)}


def measure(broker: Any, workdir: Path, rate: float, seconds: float = 30.0, *,
            deadline_orders: int = 40, warmup: float = WARMUP_S, grace: float = GRACE_S,
            transport_floor: bool = True) -> dict[str, Any]:
    """Start a wall-clock worker on `broker`, run the load, return the latency numbers (JSON-ready)."""
    from streams.cli.supervise import WorkerProcess
    from streams.kafka.embedded import free_port
    from streams.rules_file import load_rules

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    rules_path = os.environ.get("SHIPGUARD_RULES")  # the worker inherits it
    rules = load_rules(Path(rules_path) if rules_path else None)
    default = rules.platform("douyin")
    lateness = rules.allowed_lateness
    lead = default.ship_warning_lead
    pickup = timedelta(hours=default.pickup_hours)
    token = uuid.uuid4().hex[:6]
    app_id = f"shipguard-latency-{token}"
    run = Run(broker.bootstrap, rate, seconds, lateness, lead, pickup, token, deadline_orders, warmup, grace)
    self_check(run.mix)

    floor = {}
    if transport_floor:
        floor = {"consumer_fetch_wait": asyncio.run(_transport_floor(broker.bootstrap, CONSUMER_FETCH_WAIT_MS)),
                 "faust_fetch_wait": asyncio.run(_transport_floor(broker.bootstrap, 1500, count=40, spacing=0.05))}
    skipped = _skip_backlog(broker.bootstrap, app_id)
    worker = WorkerProcess(broker.url, workdir / "latency-worker.log", clock="wall", app_id=app_id,
                           web_port=free_port(), data_dir=workdir / f"{app_id}-data")
    worker_cpu = loadgen_cpu = broker_cpu = None
    machine = _Machine()
    try:
        worker.start()
        worker_cpu, loadgen_cpu = _Cpu(worker.process.pid), _Cpu(os.getpid(), children=False)
        broker_cpu = _Cpu(getattr(broker, "pid", None), children=False)
        cpus = (worker_cpu, loadgen_cpu, broker_cpu, machine)
        asyncio.run(run.run(lambda: [c.start() for c in cpus], lambda: [c.stop() for c in cpus]))
        if worker.process.poll() is not None:
            raise RuntimeError(f"the worker exited with {worker.process.returncode} during the run")
        result = run.report()
    except Exception as exc:
        raise RuntimeError(f"latency benchmark failed: {exc!r}\nworker log tail ({worker.log_path}):\n"
                           f"{worker.log_tail(40)}") from exc
    finally:
        worker.stop()

    imm, dl = result["immediate"]["overall"], result["deadlines"]["overall"]
    rate_ok = result["achieved_rate"] is not None and result["achieved_rate"] >= 0.99 * TARGET_RATE
    imm_ok = (imm["p99_ms"] is not None and imm["p99_ms"] <= TARGET_P99_MS and imm["missing"] == 0)
    dl_ok = dl["p99_s"] is not None and dl["p99_s"] <= TARGET_DEADLINE_P99_S and dl["missing"] == 0
    return {
        "bench": "latency", "clock": "wall", "rate": rate, "seconds": seconds, "app_id": app_id,
        "worker_ready_after_s": round(worker.ready_after or 0.0, 2), "backlog_skipped": skipped,
        "worker_log": str(worker.log_path), **result,
        "cpu": {"worker": worker_cpu.report() if worker_cpu else None,
                "load_generator_and_reader": loadgen_cpu.report() if loadgen_cpu else None,
                "broker": broker_cpu.report() if broker_cpu else None,
                "machine": machine.report()},
        "transport_floor": floor,
        "targets": {
            "immediate_p99_le_50ms_at_1000_per_s": {
                "p99_ms": imm["p99_ms"], "achieved_rate": result["achieved_rate"], "missing": imm["missing"],
                "rate_ok": rate_ok, "latency_ok": imm_ok, "pass": bool(rate_ok and imm_ok)},
            "deadline_p99_le_1s": {"p99_s": dl["p99_s"], "missing": dl["missing"], "pass": bool(dl_ok)},
        },
    }


def summary(result: dict[str, Any]) -> str:
    """A few lines for a terminal."""
    lines = [f"latency bench (wall clock): target {result['rate']:g} ev/s for {result['seconds']:g} s, "
             f"published {result['published']} ({result['achieved_rate']} ev/s, errors {result['publish_errors']})"]
    imm = result["immediate"]
    lines.append(f"immediate stages (after {imm['warmup_s']:g} s warm-up):")
    for kind, row in [("overall", imm["overall"])] + list(imm["by_kind"].items()):
        lines.append(f"  {kind:32} n={row['count']:5} p50={row['p50_ms']} ms p99={row['p99_ms']} ms "
                     f"max={row['max_ms']} ms missing={row['missing']}")
    lines.append("decided after the lateness in wall mode? (rules 7, 8, cancellation):")
    for kind, row in result["deferred_in_wall_mode"].items():
        timing = f" p50={row['p50_ms']} ms p99={row['p99_ms']} ms" if row["count"] else ""
        lines.append(f"  {kind:32} expected={row['expected']} received={row['count']}{timing} "
                     f"{row.get('note', '')} {row.get('codes') or ''}".rstrip())
    dl = result["deadlines"]
    lines.append("wall-mode deadlines, late = receipt - (occurred_at + allowed lateness):")
    for kind, row in [("deadlines overall", dl["overall"])] + list(dl["by_kind"].items()):
        lines.append(f"  {kind:32} n={row['count']:5} late p50={row['p50_s']} s p99={row['p99_s']} s "
                     f"max={row['max_s']} s missing={row['missing']}")
    windows = " ".join(f"{w['published_from_s']:g}s:{w['p50_ms']}/{w['p99_ms']}" for w in imm["by_publish_window"])
    lines.append(f"  p50/p99 ms by publish window: {windows}")
    cpu = result["cpu"]
    lines.append("cpu (% of one core during the load): " + ", ".join(
        f"{name}={v['percent_of_one_core']}" for name, v in cpu.items() if v and name != "machine"))
    if cpu.get("machine"):
        m = cpu["machine"]
        lines.append(f"machine: {m['cores']} cores, busy {m['busy_percent_of_one_core']}% of one core in all, "
                     f"load average {m['loadavg_1m_start_end']} (other work on the machine counts too)")
    floor = result.get("transport_floor") or {}
    for name, row in floor.items():
        lines.append(f"transport floor, one hop ({name}, fetch_max_wait {row['fetch_max_wait_ms']} ms, "
                     f"{row['records_per_s']} rec/s): p50={row['p50_ms']} ms p99={row['p99_ms']} ms")
    if result["unexpected_outputs"] or result["duplicate_outputs"] or result["dead_letters"]:
        lines.append(f"unexpected={result['unexpected_outputs']} duplicates={result['duplicate_outputs']} "
                     f"dead_letters={result['dead_letters']}")
    for name, target in result["targets"].items():
        lines.append(f"target {name}: {'PASS' if target['pass'] else 'FAIL'} "
                     f"({', '.join(f'{k}={v}' for k, v in target.items() if k != 'pass')})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second (default 1000)")
    parser.add_argument("--seconds", type=float, default=30.0, help="duration of the load (default 30)")
    parser.add_argument("--deadline-orders", type=int, default=40, help="orders whose timers fire in the run")
    parser.add_argument("--workdir", type=Path, default=None, help="worker log and data (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="also write the full result here")
    args = parser.parse_args(argv)

    from streams.kafka.embedded import EmbeddedBroker

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="shipguard-latency-"))
    with EmbeddedBroker() as broker:
        result = measure(broker, workdir, args.rate, args.seconds, deadline_orders=args.deadline_orders)
    print(summary(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
        print(f"full result: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
