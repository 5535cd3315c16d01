"""The three sides of the worker, each a description over one step contract, and one batch loop.

A side reads its topics (`streams.topics.side_topics`), keeps one keyed store and applies a pure
step of `processors` to each event: (state, key, event, now) -> Step(state, outputs,
next_deadline), with state None deleting the key. Its timers call (state, now) -> Step the same
way. The order side joins orders with their uploads, scans and cancellations; the waybill side
keeps each number's scans and registrations and forwards them to orders; the shop side counts
each shop's facts and alerts on its rates.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from processors import order as order_rules
from processors import shop_alerts as shop_rules
from processors import waybill as waybill_rules
from schemas.events import ClockTick, OrderPaid, ParcelScanned
from schemas.internal import ORDER_FEED_KINDS, SHOP_FEED_KINDS, WAYBILL_FEED_KINDS, Rekeyed
from streams import topics as T
from streams.worker.clock import StreamTime
from streams.worker.deadlines import Deadlines
from streams.worker.decode import Decoder
from streams.worker.metrics import Metrics
from streams.worker.records import Outgoing, Record
from streams.worker.routing import Router
from streams.worker.stores import StateStore, Stores

log = logging.getLogger("shipguard")


class Step(Protocol):
    """What every step of `processors` returns (order, waybill and shop steps alike): the key's new
    state (None deletes it), its outputs, its next wake-up."""

    @property
    def state(self) -> Any: ...

    @property
    def outputs(self) -> Sequence[Any]: ...

    @property
    def next_deadline(self) -> datetime | None: ...


@dataclass
class Side:
    """One side, described: what it reads and stores, and its pure steps."""

    name: str
    feed: str  # its own internal feed (records of its inputs under the wrong key come back on it)
    kinds: Mapping[str, Any]  # the internal message kinds on its feed (pydantic models)
    store: StateStore
    key: Callable[[Any], str | None]  # None: a message that only moves time (a clock tick)
    event_time: Callable[[Any], datetime | None]  # of an input event
    now: Callable[[], datetime | None]  # the time its events are applied at (as of the last tick)
    step: Callable[[Any, str, Any, datetime | None], Step]
    on_time: Callable[[Any, datetime], Step]
    wake_at: Callable[[Any], datetime | None]  # a stored state's next wake-up (rebuilding timers)
    duplicate: Callable[[Any, Any], bool] = lambda state, message: False  # an event it had seen (counted)
    # what an input read in another partition than its key's travels as on `feed` (never PII in clear)
    forward: Callable[[str, Any], Any] = lambda topic, message: _rekeyed(topic, message)
    keeps_wake: bool = False  # the state stores its own next wake-up (orders)
    measured: bool = True  # batches observed in the latency histogram
    deadlines: Deadlines = field(default_factory=Deadlines)


def _rekeyed(topic: str, message: Any) -> Rekeyed:
    return Rekeyed(topic=topic, value=message.model_dump(mode="json"))


def _order_time(message: Any) -> datetime | None:
    return message.at if isinstance(message, ClockTick) else order_rules.event_time(message)


def _order_duplicate(state: Any, message: Any) -> bool:
    return state is not None and order_rules.event_id(message) in state.seen


def build_sides(ctx: order_rules.Context, stores: Stores, time: StreamTime, app_id: str) -> dict[str, Side]:
    """The order, waybill and shop sides over the processors, with `ctx`'s rules."""
    waybill_feed, order_feed, shop_feed = T.internal_topics(app_id)
    rules = ctx.rules

    def waybill_step(state: Any, key: str, message: Any, now: datetime | None) -> Step:
        if isinstance(message, ParcelScanned):
            return waybill_rules.apply_scan(state, message, rules)
        return waybill_rules.apply_registration(state, message, rules)

    def shop_step(state: Any, key: str, fact: Any, now: datetime | None) -> Step:
        time.fact_arrived()
        return shop_rules.apply(state, fact, now, rules)

    def order_forward(topic: str, message: Any) -> Any:
        return order_rules.paid_order(message, ctx) if isinstance(message, OrderPaid) else _rekeyed(topic, message)

    def order_wake(state: Any) -> datetime | None:
        return state.wake_at if state.wake_at is not None else order_rules.next_deadline(state, ctx)

    return {
        T.ORDER_SIDE: Side(
            T.ORDER_SIDE, order_feed, ORDER_FEED_KINDS, stores.orders,
            key=lambda m: None if isinstance(m, ClockTick) else m.order_id, event_time=_order_time,
            now=time.current_horizon,
            step=lambda state, key, m, now: order_rules.apply(state, key, m, now, ctx),
            on_time=lambda state, now: order_rules.on_time(state, now, ctx),
            wake_at=order_wake, duplicate=_order_duplicate, forward=order_forward, keeps_wake=True),
        T.WAYBILL_SIDE: Side(
            T.WAYBILL_SIDE, waybill_feed, WAYBILL_FEED_KINDS, stores.waybills,
            key=lambda m: m.waybill_no, event_time=lambda m: m.scan_at, now=lambda: None, step=waybill_step,
            on_time=lambda state, now: waybill_rules.on_time(state, now, rules),
            wake_at=lambda state: state.expires_at(rules.scan_retention)),
        T.SHOP_SIDE: Side(
            T.SHOP_SIDE, shop_feed, SHOP_FEED_KINDS, stores.shops,
            key=lambda fact: fact.shop_id, event_time=lambda fact: None, now=time.shop_now, step=shop_step,
            on_time=lambda state, now: shop_rules.on_time(state, now, rules),
            wake_at=lambda state: shop_rules.next_deadline(state, rules), measured=False),
    }


class SideRunner:
    """The one batch loop and the one timer loop, for any side."""

    def __init__(self, decoder: Decoder, time: StreamTime, router: Router, metrics: Metrics,
                 owned: Callable[[], set[int]]) -> None:
        self.decoder, self.time, self.router, self.metrics, self.owned = decoder, time, router, metrics, owned
        self.external = set(T.INPUT_TOPICS)
        self.partitions = time.partitions

    def misplaced(self, record: Record, key: str) -> str | None:
        """Why an input record is not where its key's state lives (None: it is): read under another
        key, or published to another partition than the key's (a publisher's own partitioner:
        librdkafka's CRC32, sarama's FNV-1a, an explicit partition)."""
        encoded = key.encode("utf-8")
        if record.key != encoded:
            return "key"
        if record.partition != T.partition_for(encoded, self.partitions):
            return "partition"
        return None

    def apply(self, side: Side, records: list[Record]) -> list[Outgoing]:
        """Apply a batch on `side`: each dirty key stored once; the messages to send."""
        out: list[Outgoing] = []
        dirty: dict[str, Any] = {}
        dirty_partition: dict[str, int] = {}
        now = side.now()
        for record in records:
            message = self.decoder.decode(record, side.feed, side.kinds, out)
            if message is None:
                if out and out[-1].topic == T.DEAD_LETTERS and out[-1].cause is None:
                    out[-1].cause = (side.name, record.partition)  # with transactions: the partition read
                continue
            key = side.key(message)
            if record.topic in self.external:
                self.time.observe(record, side.event_time(message))
                if key is None:
                    continue
                reason = self.misplaced(record, key)
                if reason is not None:  # once, through the side's feed, to the key's partition
                    self.metrics.forwarded[(record.topic, reason)] += 1
                    forwarded = self.router.forward(side.feed, key, side.forward(record.topic, message))
                    forwarded.cause = (side.name, record.partition)  # with transactions: the partition read
                    out.append(forwarded)
                    continue
            assert key is not None  # only clock ticks have none, and they are inputs
            state = dirty.get(key) or side.store.get(key, record.partition)
            step = side.step(state, key, message, now)
            if step.state is state and not step.outputs:
                self.metrics.duplicates += int(side.duplicate(state, message))
            if step.outputs and log.isEnabledFor(logging.DEBUG):
                log.debug("event side=%s key=%s topic=%s now=%s outputs=%d", side.name, key, record.topic, now,
                          len(step.outputs))
            dirty[key] = step.state
            dirty_partition[key] = record.partition
            side.deadlines.set(key, step.next_deadline)
            out.extend(self.router.route(key, step.outputs, record.partition, side.name))
        for key, state in dirty.items():
            self.put(side, key, state, dirty_partition[key])
        return out

    def fire(self, side: Side, now: datetime | None) -> list[Outgoing]:
        """Run the timers of `side` due by `now` for keys of served partitions; their messages."""
        if now is None:
            return []
        fired = []
        owned = self.owned()
        for key in side.deadlines.pop_due(now):
            state = side.store.get(key)
            if state is None or state.partition not in owned:  # another worker's (a standby copy)
                continue
            step = side.on_time(state, now)
            side.deadlines.set(key, step.next_deadline)  # before the put: an order stores its wake_at
            self.put(side, key, step.state, state.partition)
            fired.append((key, step, state.partition))
        return [o for key, step, partition in fired for o in self.router.route(key, step.outputs, partition, side.name)]

    @staticmethod
    def put(side: Side, key: str, state: Any, partition: int) -> None:
        """Store a key's new state, with its wake-up if the side keeps one."""
        if side.keeps_wake and state is not None:
            wake = side.deadlines.due_at.get(key)
            if state.wake_at != wake:
                state = state.model_copy(update={"wake_at": wake})
        Stores.put(side.store, key, state, partition)

    def rebuild(self, side: Side) -> None:
        """Schedule every stored key of a served partition again (the heap is not stored)."""
        owned = self.owned()
        side.deadlines = Deadlines()
        for key, state in side.store.items():
            if state.partition in owned:
                side.deadlines.set(key, side.wake_at(state))
