"""The event generator: shops, orders, waybills and parcel journeys, with injected faults and labels.

`generate(config)` builds a whole stream from one `random.Random(seed)`: the same config gives
the same stream, byte for byte once rendered (`simulator.output`). Most orders are clean: they
ship well before ship_by - 6 h, are picked up within hours, scanned often enough and delivered
in the buyer's city within six days of pickup. A configurable share gets exactly one injected
fault, in one of the variants of `VARIANTS`; another share gets cancellation requests
(`CANCEL_VARIANTS`, only on orders without a fault).

Every order is checked by the labeller (`simulator.labels.evaluate`) as soon as it is built: a
clean order must require nothing on `violation-warnings`, a faulty one exactly the stages of its
variant (plus the consequences the variant allows), every deciding event must be at least
`MIN_MARGIN` from its threshold, and cancellations must be decided as intended. An order that
fails is drawn again from the same random stream, which keeps the result deterministic.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from itertools import pairwise

from schemas.types import normalise_waybill
from simulator import buyers, geo, routes
from simulator.carriers import SELF_PICKUP, make_invalid_waybill, make_waybill, with_typing_noise
from simulator.geo import City
from simulator.labels import DEFAULT_THRESHOLDS, MIN_MARGIN, RULES, Ambiguous, Thresholds, Verdict, World, evaluate
from simulator.model import DAY, HOUR, MINUTE, Cancellation, Order, Scan, Upload

DEFAULT_START = datetime(2026, 3, 2, tzinfo=timezone(timedelta(hours=8)))
DEFAULT_FAULT_SHARE = 0.1
DEFAULT_CANCEL_SHARE = 0.02
MERGED_SHARE = 0.01         # orders shipped together with another order of the same buyer (合并发货)
EARLY_SCAN_SHARE = 0.1      # parcels scanned by the courier before the merchant uploads the number
REMARK_SHARE = 0.12
NOISY_NUMBER_SHARE = 0.03   # numbers typed in lower case or with spaces
SAFE = 6 * HOUR             # how far clean orders keep from a threshold, at least
MAX_ATTEMPTS = 40

W, V, R = "WARNING", "VIOLATION", "RESOLVED"

# rule -> variant -> (the stages of that rule it must cause, other rules it may cause as a consequence)
VARIANTS: dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "SHIP_OVERDUE": {
        "never_dispatched": ((W, V), ()),
        "late_dispatch": ((W, V), ()),
        "warned_then_dispatched": ((W, R), ()),
    },
    "WAYBILL_INVALID": {
        "replaced_in_time": ((W, R), ()),
        "replaced_late": ((W, V), ()),
        "never_replaced": ((W, V), ("SHIP_OVERDUE",)),       # an invalid number is no dispatch
    },
    "WAYBILL_REUSED": {
        "fresh_replaced": ((W, R), ()),
        "fresh_kept": ((W, V), ()),
        # a number delivered to someone else last week: scanned before payment, in another city
        "stale_kept": ((W, V), ("PICKUP_BEFORE_PAYMENT", "ADDRESS_MISMATCH")),
    },
    "NO_PICKUP": {
        "late_pickup": ((W, R), ()),
        "never_picked_up": ((W, V), ("SHIP_OVERDUE",)),      # tiktok dispatches at the first scan
    },
    "STALLED_AFTER_PICKUP": {
        "resumed_in_time": ((W, R), ()),
        "resumed_late": ((W, V), ()),
        "never_moved": ((W, V), ("NOT_DELIVERED",)),
    },
    "TRACKING_STALLED": {
        "transit_resumed": ((W, R), ()),
        "transit_resumed_late": ((W, V), ()),
        "remote_resumed": ((W, R), ()),
        "very_remote_resumed": ((W, R), ("NOT_DELIVERED",)),
        "out_for_delivery_stalled": ((W, R), ()),
    },
    "ADDRESS_MISMATCH": {
        "neighbour_city": ((V,), ()),
        "origin_city": ((V,), ()),
    },
    "PICKUP_BEFORE_PAYMENT": {
        "scanned_before_paid": ((V,), ()),
    },
    "NOT_DELIVERED": {
        "delivered_late": ((W, R), ()),
        "never_delivered": ((W, V), ()),
    },
    "EXPRESS_STOP_REMARK": {
        "self_pickup_upload": ((W, R), ()),
        "shipped_anyway": ((W, R), ()),
    },
}

# variant -> the codes the cancellation review must give its requests, in order
CANCEL_VARIANTS: dict[str, tuple[str, ...]] = {
    "out_of_stock_before_upload": ("APPROVED",),
    "out_of_stock_after_upload": ("APPROVED",),
    "out_of_stock_in_transit": ("IN_TRANSIT",),
    "quality_issue_in_transit": ("IN_TRANSIT",),
    "quality_issue_after_delivery": ("ALREADY_DELIVERED",),
    "logistics_without_evidence": ("NO_LOGISTICS_EVIDENCE",),
    "logistics_after_exception": ("APPROVED",),
    "other_without_detail": ("DETAIL_REQUIRED",),
    "other_with_detail": ("APPROVED",),
    "asked_twice": ("APPROVED", "ALREADY_CANCELLED"),
}

# what goes wrong in the problem shops (SimulationConfig.problem_shop_share): the late shop's orders get
# these SHIP_OVERDUE variants (each a VIOLATION), the out-of-stock shop's these approved cancellations
PROBLEM_SHOP_VARIANTS = {"late": ("never_dispatched", "late_dispatch"),
                         "out_of_stock": ("out_of_stock_before_upload", "out_of_stock_after_upload")}

# local hour -> relative share of payments: quiet at night, busiest during evening live streams
_HOURLY = (3, 1.5, 0.8, 0.5, 0.4, 0.5, 1, 2, 3, 4, 5, 5, 6, 5.5, 5, 5, 5, 5.5, 6, 7.5, 9, 10, 9, 6)
_HOURLY_CUM = tuple(sum(_HOURLY[: i + 1]) for i in range(24))
_CHEAP_CARRIERS = ("ZTO", "YTO", "STO", "YUNDA", "JT")
_ID_PREFIX = {"douyin": "DY", "taobao": "TB", "tiktok": "TT"}


class SimulationError(ValueError):
    """The requested simulation cannot be generated; the message says why."""


class _Redraw(Exception):
    """This draw of an order cannot work out; draw it again."""


def spread_faults(share: float) -> dict[str, float]:
    """An equal share of orders for each of the contract's rules, `share` in all."""
    return {rule: share / len(RULES) for rule in RULES}


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate; every field has the CLI's default."""

    orders: int = 1000
    days: int = 7
    seed: int = 1
    start: datetime = DEFAULT_START
    shops: int = 12
    faults: dict[str, float] = field(default_factory=lambda: spread_faults(DEFAULT_FAULT_SHARE))
    cancel_share: float = DEFAULT_CANCEL_SHARE
    duplicate_share: float = 0.0
    thresholds: Thresholds = DEFAULT_THRESHOLDS
    # two problem shops for `shop-alerts`: this share of the orders each takes in the first half of
    # the run (a bad spell) is paid but never dispatched in time in one, and cancelled as out of
    # stock in the other (see PROBLEM_SHOP_VARIANTS); 0 leaves every shop as it is
    problem_shop_share: float = 0.0


@dataclass(frozen=True)
class Shop:
    """A merchant: where it ships from, with which carriers, how fast, and what it promises."""

    shop_id: str
    platform: str
    origin: City
    carriers: tuple[str, ...]
    carrier_weights: tuple[float, ...]
    size: float
    upload_median_hours: float
    promise: int | None          # explicit ship_by = paid_at + promise, or None: the default window
    presale_share: float
    self_pickup_share: float


@dataclass
class Simulation:
    """A generated stream: shops, orders (in paid order) and scans, with the labeller's verdicts."""

    config: SimulationConfig
    shops: list[Shop]
    orders: list[Order]
    world: World
    verdicts: dict[int, Verdict]
    final_tick: int
    redraws: int
    utc_offset: int


@dataclass(slots=True)
class _Donor:
    """A clean, delivered parcel whose number a WAYBILL_REUSED order can copy."""

    order: Order
    carrier: str
    number: str
    uploaded_at: int
    first_scan: int
    delivered: int
    used: bool = False


def generate(config: SimulationConfig) -> Simulation:
    """Generate the stream that `config` describes."""
    return _Generator(config).run()


class _Generator:
    def __init__(self, config: SimulationConfig) -> None:
        self.cfg = config
        self.th = config.thresholds
        self.rng = random.Random(config.seed)
        # start is timezone-aware: the CLI refuses a time without an offset, as does every test's config
        self.offset = int(config.start.utcoffset().total_seconds())  # type: ignore[union-attr]
        self.start = int(config.start.timestamp())
        self.end = self.start + config.days * DAY
        self.world = World()
        self.numbers: set[str] = set()
        self.shop_of: dict[int, Shop] = {}
        self.home: dict[int, City] = {}
        self.verdicts: dict[int, Verdict] = {}
        self.donors: list[_Donor] = []
        self.redraws = 0

    # ---------------------------------------------------------------- the whole run
    def run(self) -> Simulation:
        cfg, rng = self.cfg, self.rng
        if cfg.orders < 1 or cfg.days < 1 or cfg.shops < 1:
            raise SimulationError("orders, days and shops must each be at least 1")
        shops = self._shops()
        orders = []
        for i in range(cfg.orders):
            shop = rng.choices(shops, weights=[s.size for s in shops])[0]
            # the buyer is drawn with the order's fault, below; nothing reads the recipient before that
            order = Order(index=i, order_id="", shop_id=shop.shop_id, platform=shop.platform,
                          paid_at=self._payment_time(), amount=self._amount(), recipient=None)  # type: ignore[arg-type]
            self.shop_of[i] = shop
            orders.append(order)
        pairs = self._assign_roles(orders)
        partners = {partner.index for _, partner in pairs}
        leads = dict((lead.index, partner) for lead, partner in pairs)
        for order in orders:
            if order.fault == "WAYBILL_REUSED" or order.index in partners:
                continue
            if order.index in leads:
                partner = leads[order.index]
                self._attempt([order, partner], partial(self._merged, order, partner))
            else:
                self._attempt([order], self._builder(order))
        for order in orders:
            if order.fault == "WAYBILL_REUSED":
                self._attempt([order], partial(self._reused, order))
        return self._finish(shops, orders)

    def _builder(self, order: Order) -> Callable[[], list[Scan]]:
        if order.cancel_variant:
            return lambda: self._cancelled(order)
        if order.fault:
            build = getattr(self, "_" + order.fault.lower())
            return lambda: build(order)
        return lambda: self._normal(order)

    def _assign_roles(self, orders: list[Order]) -> list[tuple[Order, Order]]:
        """Choose the faulty, the cancelled and the merged orders; returns the merged pairs."""
        n = len(orders)
        counts = {rule: round(share * n) for rule, share in self.cfg.faults.items()}
        n_cancel = round(self.cfg.cancel_share * n)
        if sum(counts.values()) + n_cancel > n:
            raise SimulationError(f"faults ({sum(counts.values())}) and cancellations ({n_cancel}) "
                                  f"need more orders than the {n} requested")
        pool = list(range(n))
        self.rng.shuffle(pool)
        position = 0
        for rule in RULES:
            variants = list(VARIANTS[rule])
            for k in range(counts.get(rule, 0)):
                order = orders[pool[position]]
                order.fault, order.variant = rule, variants[k % len(variants)]
                position += 1
        cancel_variants = list(CANCEL_VARIANTS)
        for k in range(n_cancel):
            orders[pool[position]].cancel_variant = cancel_variants[k % len(cancel_variants)]
            position += 1
        rest = pool[position:]
        if self.cfg.problem_shop_share:
            rest = self._problem_shops(orders, rest)
        n_pairs = min(int(n * MERGED_SHARE / 2), len(rest) // 2)
        return [(orders[rest[2 * k]], orders[rest[2 * k + 1]]) for k in range(n_pairs)]

    def _problem_shops(self, orders: list[Order], rest: list[int]) -> list[int]:
        """Give the problem shops their problem (see SimulationConfig); returns the orders left over."""
        shops = sorted({s.shop_id: s for s in self.shop_of.values()}.values(), key=lambda s: (-s.size, s.shop_id))
        late, out_of_stock = shops[min(1, len(shops) - 1)], shops[min(2, len(shops) - 1)]
        spell_end = self.start + (self.cfg.days + 1) // 2 * DAY
        share = self.cfg.problem_shop_share
        chosen: set[int] = set()
        for shop, problem in ((late, "late"), (out_of_stock, "out_of_stock")):
            mine = [i for i in rest if i not in chosen and self.shop_of[i] is shop and orders[i].paid_at < spell_end]
            variants = PROBLEM_SHOP_VARIANTS[problem]
            for k, i in enumerate(mine[: round(share * len(mine))]):
                if problem == "late":
                    orders[i].fault, orders[i].variant = "SHIP_OVERDUE", variants[k % len(variants)]
                else:
                    orders[i].cancel_variant = variants[k % len(variants)]
                chosen.add(i)
        return [i for i in rest if i not in chosen]

    def _attempt(self, unit: list[Order], build: Callable[[], list[Scan]]) -> None:
        """Build `unit` until the labeller finds it as intended and unambiguous."""
        for _ in range(MAX_ATTEMPTS):
            for order in unit:
                order.uploads, order.cancellations = [], []
                order.remark, order.ship_by, order.presale, order.delivery_mode = None, None, False, "express"
            try:
                scans = build()
            except _Redraw:
                self.redraws += 1
                continue
            created = list(dict.fromkeys(s.number for s in scans))
            if any(number in self.world.scans for number in created):
                raise AssertionError("a journey reused a number without meaning to")  # pragma: no cover
            self.world.add_scans(scans)
            for order in unit:
                self.world.add_order(order)
            try:
                verdicts = [evaluate(order, self.world, self.th) for order in unit]
                ok = all(self._as_intended(o, v) for o, v in zip(unit, verdicts, strict=True))
            except Ambiguous:
                ok = False
            if ok:
                for order, verdict in zip(unit, verdicts, strict=True):
                    self.verdicts[order.index] = verdict
                    self._maybe_donor(order)
                return
            for order in unit:
                self.world.remove_order(order)
            for number in created:
                del self.world.scans[number]
            self.redraws += 1
        what = unit[0].fault or unit[0].cancel_variant or "clean"
        raise SimulationError(f"could not generate order {unit[0].index} ({what} {unit[0].variant or ''}) "
                              f"in {MAX_ATTEMPTS} draws")

    def _as_intended(self, order: Order, verdict: Verdict) -> bool:
        if verdict.margin is not None and verdict.margin < MIN_MARGIN:
            return False
        if order.cancel_variant and tuple(d.code for d in verdict.decisions) != CANCEL_VARIANTS[order.cancel_variant]:
            return False
        got = [(s.rule, s.stage) for s in verdict.stages]
        if order.fault is None:
            return not got
        stages, extras = VARIANTS[order.fault][order.variant or ""]
        if tuple(stage for rule, stage in got if rule == order.fault) != stages:
            return False
        return all(rule == order.fault or rule in extras for rule, _ in got)

    def _finish(self, shops: list[Shop], orders: list[Order]) -> Simulation:
        """Give orders their ids in paid order, then label everything once more with all orders known."""
        ordered = sorted(orders, key=lambda o: (o.paid_at, o.index))
        for seq, order in enumerate(ordered):
            order.order_id = self._order_id(order, seq)
            order.event_id = f"op-{order.order_id}"
            for k, upload in enumerate(order.uploads):
                upload.event_id = f"wu-{order.order_id}-{k + 1}"
            for k, request in enumerate(order.cancellations):
                request.event_id = f"cr-{order.order_id}-{k + 1}"
        verdicts = {}
        for order in ordered:
            verdict = evaluate(order, self.world, self.th)
            before = self.verdicts[order.index]
            if verdict.stages != before.stages or [d.code for d in verdict.decisions] != \
                    [d.code for d in before.decisions]:
                raise AssertionError(f"labels of order {order.order_id} changed once all orders were known")
            verdicts[order.index] = verdict
        last = max([o.paid_at for o in orders] + [u.t for o in orders for u in o.uploads]
                   + [c.t for o in orders for c in o.cancellations]
                   + [s.t for bucket in self.world.scans.values() for s in bucket])
        return Simulation(self.cfg, shops, ordered, self.world, verdicts, last + 31 * DAY, self.redraws, self.offset)

    # ---------------------------------------------------------------- shops, payments, buyers
    def _shops(self) -> list[Shop]:
        rng = self.rng
        k = self.cfg.shops
        platforms = ["douyin", "taobao", "tiktok"][:k]
        platforms += rng.choices(("douyin", "taobao", "tiktok"), weights=(45, 40, 15), k=k - len(platforms))
        ranks = list(range(1, k + 1))
        rng.shuffle(ranks)
        shops, ids = [], []
        for i, (platform, rank) in enumerate(zip(platforms, ranks, strict=True)):
            shop_id = _ID_PREFIX[platform] + str(rng.randrange(10 ** 7, 10 ** 8))
            while shop_id in ids:
                shop_id = _ID_PREFIX[platform] + str(rng.randrange(10 ** 7, 10 ** 8))
            ids.append(shop_id)
            primary, secondary = rng.sample(_CHEAP_CARRIERS, 2)
            mix = {primary: 0.55, secondary: 0.25, "SF": 0.1, "EMS": 0.04, "JD": 0.03, "DEPPON": 0.02, "OTHER": 0.01}
            shops.append(Shop(
                shop_id=shop_id, platform=platform, origin=geo.city(rng.choice(geo.ORIGIN_CITIES)),
                carriers=tuple(mix), carrier_weights=tuple(mix.values()), size=1.0 / rank ** 0.8,
                upload_median_hours=rng.uniform(3, 12),
                promise=rng.choices((None, 24 * HOUR, 72 * HOUR), weights=(70, 20, 10))[0],
                # every third shop sells presale items, every fifth lets buyers collect in person
                presale_share=0.06 if platform != "tiktok" and i % 3 == 0 else 0.0,
                self_pickup_share=0.15 if i % 5 == 1 else 0.0,
            ))
        return shops

    def _payment_time(self) -> int:
        rng = self.rng
        day = rng.randrange(self.cfg.days)
        hour = rng.choices(range(24), cum_weights=_HOURLY_CUM)[0]
        local_midnight = self.start - (self.start + self.offset) % DAY
        t = local_midnight + day * DAY + hour * HOUR + rng.randrange(HOUR)
        if t < self.start or t >= self.end:      # a start that is not local midnight
            t = self.start + rng.randrange(self.end - self.start)
        return t

    def _amount(self) -> str:
        value = min(max(math.exp(self.rng.gauss(math.log(79.0), 0.8)), 3.0), 4999.0)
        return f"{int(value)}.{self.rng.choice((0, 0, 0, 90, 99, 80, 50)):02d}"

    def _buyer(self, order: Order, where: City | None = None, *, remoteness: str | None = None,
               remark: bool = True) -> None:
        """Give the order a recipient (in `where`, or drawn) and maybe a harmless remark."""
        city = where or buyers.pick_city(self.rng, remoteness=remoteness)
        order.recipient = buyers.recipient_in(self.rng, city)
        self.home[order.index] = city
        if remark and self.rng.random() < REMARK_SHARE:
            order.remark = buyers.harmless_remark(self.rng)

    # ---------------------------------------------------------------- times
    def _hours(self, low: float, high: float) -> int:
        return int(self.rng.uniform(low, high) * HOUR)

    def _ship_by(self, order: Order) -> int:
        return order.ship_by if order.ship_by is not None else order.paid_at + self.th.ship_window

    def _latest_dispatch(self, order: Order) -> int:
        """Clean orders dispatch (upload, or first scan on tiktok) SAFE before the SHIP_OVERDUE warning."""
        return self._ship_by(order) - self.th.ship_warning_lead - SAFE

    def _promise(self, order: Order, *, presale: bool = True) -> None:
        """The order's ship_by: a presale date, the shop's explicit promise, or none (the default window)."""
        shop = self.shop_of[order.index]
        if presale and shop.presale_share and self.rng.random() < shop.presale_share:
            midnight = order.paid_at - (order.paid_at + self.offset) % DAY
            order.presale, order.ship_by = True, midnight + self.rng.randint(5, 15) * DAY
        elif shop.promise:
            order.ship_by = order.paid_at + shop.promise

    def _local(self, t: int) -> int:
        return (t + self.offset) % DAY

    def _working_hours(self, t: int, latest: int, opens: int = 8, closes: int = 24) -> int:
        """Move `t` into opening hours (the next morning if need be), unless that is after `latest`."""
        local = self._local(t)
        if opens * HOUR <= local < closes * HOUR:
            return t
        moved = t - local + opens * HOUR + self._hours(0, 1.5) + (DAY if local >= closes * HOUR else 0)
        return moved if moved <= latest else t

    def _dispatch(self, order: Order) -> tuple[int, int]:
        """(upload, pickup) of an order shipped on time, with realistic delays."""
        rng, paid = self.rng, order.paid_at
        shop = self.shop_of[order.index]
        latest = self._latest_dispatch(order)
        pickup_delay = int(min(max(rng.lognormvariate(math.log(2.5), 0.6), 0.5), 10.0) * HOUR)
        if order.presale:
            upload = max(self._ship_by(order) - self._hours(24, 96), paid + HOUR)
        else:
            room = latest - paid - pickup_delay
            if room < HOUR:
                raise _Redraw()
            delay = rng.lognormvariate(math.log(shop.upload_median_hours), 0.8) * HOUR
            upload = paid + int(min(max(delay, 0.5 * HOUR), room))
            upload = self._working_hours(upload, latest - pickup_delay)
        pickup = self._working_hours(upload + pickup_delay, min(upload + 14 * HOUR, latest), 8, 21)
        return upload, pickup

    # ---------------------------------------------------------------- waybills and parcels
    def _carrier(self, order: Order) -> str:
        shop = self.shop_of[order.index]
        if geo.remoteness(order.recipient.province) == geo.VERY_REMOTE and self.rng.random() < 0.3:
            return "EMS"        # often the only carrier that goes there
        return self.rng.choices(shop.carriers, weights=shop.carrier_weights)[0]

    def _number(self, carrier: str) -> str:
        number = make_waybill(carrier, self.rng)
        while number in self.numbers:
            number = make_waybill(carrier, self.rng)
        self.numbers.add(number)
        return number

    def _invalid_number(self, carrier: str) -> str:
        number = make_invalid_waybill(carrier, self.rng)
        while normalise_waybill(number) in self.numbers:
            number = make_invalid_waybill(carrier, self.rng)
        self.numbers.add(normalise_waybill(number))
        return number

    def _upload(self, order: Order, carrier: str, number: str | None, t: int, *, noisy: bool = True) -> None:
        typed = number
        if number and noisy and self.rng.random() < NOISY_NUMBER_SHARE:
            typed = with_typing_noise(number, self.rng)
        order.uploads.append(Upload("", t, carrier, typed))

    def _plan(self, order: Order, carrier: str, destination: City | None = None,
              **options: bool) -> list[routes.Leg]:
        origin = self.shop_of[order.index].origin
        return routes.plan(self.rng, carrier, origin, destination or self.home[order.index], **options)

    def _journey(self, order: Order, carrier: str, number: str, pickup: int, legs: list[routes.Leg],
                 budget: int | None = None) -> list[Scan]:
        times = routes.schedule(self.rng, legs, pickup, th=self.th, utc_offset=self.offset, budget=budget,
                                destination=geo.remoteness(order.recipient.province))
        return routes.scans(self.rng, legs, times, carrier, number)

    def _ship(self, order: Order, upload: int, pickup: int, *, early_scan: bool = True,
              legs: Callable[[list[routes.Leg]], list[routes.Leg]] | None = None,
              destination: City | None = None, **options: bool) -> list[Scan]:
        """Upload a fresh number at `upload` and send the parcel from `pickup`."""
        carrier = self._carrier(order)
        number = self._number(carrier)
        if early_scan and self.rng.random() < EARLY_SCAN_SHARE and upload - order.paid_at >= 2 * HOUR:
            # the courier scans first and the merchant uploads afterwards, e.g. in a batch
            pickup, upload = upload - self._hours(0, 0.5), upload + self._hours(0.5, 3)
            pickup = max(pickup, order.paid_at + 90 * MINUTE)
        self._upload(order, carrier, number, upload)
        planned = self._plan(order, carrier, destination, **options)
        return self._journey(order, carrier, number, pickup, legs(planned) if legs else planned)

    # ---------------------------------------------------------------- clean orders
    def _normal(self, order: Order) -> list[Scan]:
        self._buyer(order)
        self._promise(order)
        shop = self.shop_of[order.index]
        if shop.self_pickup_share and self.rng.random() < shop.self_pickup_share:
            order.delivery_mode = "self_pickup"
            room = min(20 * HOUR, self._latest_dispatch(order) - order.paid_at)
            self._upload(order, SELF_PICKUP, None, order.paid_at + int(self.rng.uniform(0.5 * HOUR, room)))
            return []
        upload, pickup = self._dispatch(order)
        return self._ship(order, upload, pickup)

    def _merged(self, lead: Order, partner: Order) -> list[Scan]:
        """Two orders of one buyer in one shop, shipped in one parcel under one number (合并发货)."""
        self._buyer(lead)
        upload, pickup = self._dispatch(lead)
        scans = self._ship(lead, upload, pickup, early_scan=False)
        latest_paid = min(lead.paid_at + 90 * MINUTE, scans[0].t - 2 * HOUR)
        if latest_paid < lead.paid_at + 10 * MINUTE:
            raise _Redraw()
        partner.shop_id, partner.platform = lead.shop_id, lead.platform
        self.shop_of[partner.index] = self.shop_of[lead.index]
        partner.paid_at = self.rng.randint(lead.paid_at + 10 * MINUTE, latest_paid)
        partner.recipient = lead.recipient
        self.home[partner.index] = self.home[lead.index]
        first = lead.uploads[0]
        at = max(first.t, partner.paid_at + 30 * MINUTE) + self.rng.randint(MINUTE, 10 * MINUTE)
        self._upload(partner, first.carrier, first.number, at)
        return scans

    # ---------------------------------------------------------------- cancellations (clean orders only)
    def _between(self, times: list[int], after: int) -> int:
        """A moment at least an hour from every time in `times`, later than `after`."""
        gaps = [(a, b) for a, b in pairwise(times) if b - a >= 150 * MINUTE and a >= after]
        if not gaps:
            raise _Redraw()
        a, b = self.rng.choice(gaps)
        return self.rng.randint(a + HOUR, b - HOUR)

    def _cancelled(self, order: Order) -> list[Scan]:
        rng, variant = self.rng, order.cancel_variant
        self._buyer(order)
        self._promise(order, presale=False)

        def request(t: int, reason: str, detail: str) -> None:
            order.cancellations.append(Cancellation("", t, reason, detail))

        upload, pickup = self._dispatch(order)
        if variant in ("out_of_stock_before_upload", "other_with_detail", "asked_twice"):
            at = order.paid_at + self._hours(1, 8)
            if variant == "other_with_detail":
                request(at, "OTHER", rng.choice(("买家要求更换收货地址，需重新下单", "买家拍错规格，协商取消订单")))
            else:
                request(at, "OUT_OF_STOCK", rng.choice(("库存不足，无法发货", "该颜色已售罄", "")))
            if variant == "asked_twice":
                request(at + self._hours(1, 6), "OUT_OF_STOCK", "重复提交的取消申请")
            return []
        if variant == "out_of_stock_after_upload":
            carrier = self._carrier(order)
            self._upload(order, carrier, self._number(carrier), upload)
            request(upload + self._hours(1, 3), "OUT_OF_STOCK", "仓库实际无货，面单已作废")
            return []
        if variant == "logistics_after_exception":
            scans = self._ship(order, upload, pickup, early_scan=False, incidents=False, exception=True)
            k = next(i for i, s in enumerate(scans) if s.status == "EXCEPTION")
            at = self._between([s.t for s in scans[k:k + 2]], scans[k].t)
            request(at, "LOGISTICS_EXCEPTION", "快递显示疑难件，买家同意取消")
            returned = Scan(f"ts-{scans[0].number}-{k + 2}", at + self._hours(6, 20), scans[k].carrier,
                            scans[k].number, "RETURNED", scans[k].city, scans[k].province, "快件已按商家要求退回")
            return scans[: k + 1] + [returned]
        scans = self._ship(order, upload, pickup, early_scan=False, incidents=False)
        times = [order.uploads[0].t] + [s.t for s in scans]
        joined = max(order.uploads[0].t, scans[0].t)
        if variant == "out_of_stock_in_transit":
            request(self._between(times, joined), "OUT_OF_STOCK", "仓库发错货，申请取消")
        elif variant == "quality_issue_in_transit":
            request(self._between(times, joined), "QUALITY_ISSUE", "发货后发现批次质量问题")
        elif variant == "logistics_without_evidence":
            request(self._between(times, joined), "LOGISTICS_EXCEPTION", "物流太慢")
        elif variant == "other_without_detail":
            request(self._between([order.paid_at] + times, order.paid_at), "OTHER",
                    rng.choice(("", " ", "无", "不要了")))
        elif variant == "quality_issue_after_delivery":
            request(scans[-1].t + self._hours(2, 48), "QUALITY_ISSUE", "买家反馈商品破损")
        return scans

    # ---------------------------------------------------------------- faults, one builder per rule
    def _ship_overdue(self, order: Order) -> list[Scan]:
        self._buyer(order)
        self._promise(order)
        ship_by = self._ship_by(order)
        warn_at = ship_by - self.th.ship_warning_lead
        tiktok = order.platform == "tiktok"
        if order.variant == "never_dispatched":
            return []
        if order.variant == "late_dispatch":
            dispatched = ship_by + self._hours(2, 30)
        else:
            dispatched = warn_at + self._hours(1.5, 4.5)
        if tiktok:      # TikTok dispatches at the first scan: the merchant may upload earlier
            upload = dispatched - self._hours(1, 8)
            if upload <= order.paid_at + HOUR:
                raise _Redraw()
            return self._ship(order, upload, dispatched, early_scan=False)
        return self._ship(order, dispatched, dispatched + self._hours(0.5, 6), early_scan=False)

    def _waybill_invalid(self, order: Order) -> list[Scan]:
        self._buyer(order)
        carrier = self._carrier(order)
        first = order.paid_at + self._hours(0.5, 2 if order.variant == "replaced_late" else 10)
        self._upload(order, carrier, self._invalid_number(carrier), first, noisy=False)
        if order.variant == "never_replaced":
            return []
        fixed = first + (self._hours(26, 30) if order.variant == "replaced_late" else self._hours(1, 18))
        number = self._number(carrier)
        self._upload(order, carrier, number, fixed)
        legs = self._plan(order, carrier)
        return self._journey(order, carrier, number, fixed + self._hours(0.5, 3), legs)

    def _no_pickup(self, order: Order) -> list[Scan]:
        self._buyer(order)
        carrier = self._carrier(order)
        number = self._number(carrier)
        upload = order.paid_at + self._hours(0.5, 3)
        self._upload(order, carrier, number, upload)
        if order.variant == "never_picked_up":
            return []
        pickup = upload + self.th.no_pickup + self._hours(3, 9)
        return self._journey(order, carrier, number, pickup, self._plan(order, carrier))

    def _stalled_after_pickup(self, order: Order) -> list[Scan]:
        self._buyer(order, remoteness=geo.NORMAL)
        wait = {"resumed_in_time": self.th.stalled_after_pickup + self._hours(4, 18),
                "resumed_late": self.th.stalled_after_pickup + self.th.warning_to_violation + self._hours(4, 16),
                }.get(order.variant or "")

        def stretch(legs: list[routes.Leg]) -> list[routes.Leg]:
            if wait is None:
                return legs[:1]                         # never moves again
            legs[1].wait, legs[1].fixed = wait, True
            return legs

        upload, pickup = self._dispatch(order)
        return self._ship(order, upload, pickup, early_scan=False, incidents=False, legs=stretch)

    def _tracking_stalled(self, order: Order) -> list[Scan]:
        variant = order.variant
        where = {"remote_resumed": geo.REMOTE, "very_remote_resumed": geo.VERY_REMOTE}.get(variant or "", geo.NORMAL)
        self._buyer(order, remoteness=where)
        rest = self.th.stall("IN_TRANSIT", where) or 0
        if variant == "out_for_delivery_stalled":
            rest = self.th.stalled_out_for_delivery
        extra = self.th.warning_to_violation if variant == "transit_resumed_late" else 0
        wait = rest + extra + self._hours(4, 12 if variant == "very_remote_resumed" else 16)

        def stretch(legs: list[routes.Leg]) -> list[routes.Leg]:
            if variant == "out_for_delivery_stalled":
                k = max(i for i, leg in enumerate(legs) if leg.status == "OUT_FOR_DELIVERY")
            else:
                k = self.rng.choice([i for i in range(1, len(legs) - 1) if legs[i].status == "IN_TRANSIT"
                                     and legs[i + 1].status in ("IN_TRANSIT", "OUT_FOR_DELIVERY")])
            legs[k + 1].wait, legs[k + 1].fixed = wait, True
            return legs

        upload, pickup = self._dispatch(order)
        return self._ship(order, upload, pickup, early_scan=False, incidents=False, legs=stretch)

    def _address_mismatch(self, order: Order) -> list[Scan]:
        origin = self.shop_of[order.index].origin
        self._buyer(order)
        home = self.home[order.index]
        if order.variant == "origin_city":
            wrong = origin      # an empty parcel sent to a local address: the classic fake shipment
        else:
            neighbours = [c for c in home.province.cities if c is not home]
            wrong = self.rng.choice(neighbours or [c for p in geo.PROVINCES for c in p.cities if c is not home])
        if geo.normalise_city(wrong.name) == geo.normalise_city(home.name):
            raise _Redraw()
        upload, pickup = self._dispatch(order)
        return self._ship(order, upload, pickup, early_scan=False, incidents=False, destination=wrong)

    def _pickup_before_payment(self, order: Order) -> list[Scan]:
        self._buyer(order)
        pickup = order.paid_at - self._hours(1.5, 8)
        upload = order.paid_at + self._hours(0.5, 4)
        return self._ship(order, upload, pickup, early_scan=False)

    def _not_delivered(self, order: Order) -> list[Scan]:
        rng = self.rng
        self._buyer(order, remoteness=geo.NORMAL)
        upload, pickup = self._dispatch(order)
        carrier = self._carrier(order)
        number = self._number(carrier)
        self._upload(order, carrier, number, upload)
        legs = self._plan(order, carrier, incidents=False)
        legs = legs[: next(i for i, leg in enumerate(legs) if leg.status == "OUT_FOR_DELIVERY")]
        scans = self._journey(order, carrier, number, pickup, legs)
        first, t = scans[0].t, scans[-1].t
        home = self.home[order.index]
        city = home.short if rng.random() < 0.2 else home.name

        def scan(at: int, status: str, text: str) -> None:
            scans.append(Scan(f"ts-{number}-{len(scans) + 1}", at, carrier, number, status, city, None, text))

        late = order.variant == "delivered_late"
        until = first + self.th.not_delivered + self._hours(30, 60) - 30 * HOUR if late else \
            first + self.th.not_delivered + self.th.not_delivered_to_violation + self._hours(6, 24)
        while t < until:
            kind = rng.random()
            if kind < 0.55:
                t += self._hours(8, 20)
                scan(t, "OUT_FOR_DELIVERY", f"【{home.name}】快递员正在为您派件")
                t += self._hours(1, 6)
                scan(t, "FAILED_ATTEMPT", "派送不成功：收件人电话无人接听，将再次派送")
            elif kind < 0.8:
                t += self._hours(10, 30)
                scan(t, "IN_TRANSIT", f"快件滞留在【{home.name}营业部】，原因：收件人要求延期派送")
            else:
                t += self._hours(6, 24)
                scan(t, "EXCEPTION", "疑难件：收件人电话无法接通")
        if late:
            t += self._hours(8, 20)
            scan(t, "OUT_FOR_DELIVERY", f"【{home.name}】快递员正在为您派件")
            scan(t + self._hours(1, 5), "DELIVERED", "快件已签收，签收人：本人")
        else:
            scan(t + self._hours(4, 20), "RETURNED", "快件已退回，原因：多次派送失败")
        return scans

    def _express_stop_remark(self, order: Order) -> list[Scan]:
        self._buyer(order, remark=False)
        order.remark = buyers.stop_remark(self.rng)
        if order.variant == "self_pickup_upload":
            self._upload(order, SELF_PICKUP, None, order.paid_at + self._hours(0.5, 12))
            return []
        upload, pickup = self._dispatch(order)
        return self._ship(order, upload, pickup)

    def _maybe_donor(self, order: Order) -> None:
        """Remember a clean, delivered single-number parcel that a WAYBILL_REUSED order may copy."""
        if order.fault or order.cancel_variant or len(order.uploads) != 1 or order.delivery_mode != "express":
            return
        upload, number = order.uploads[0], order.uploads[0].number
        if number is None:  # a SELF_PICKUP upload: no number to copy
            return
        scans = self.world.scans.get(number, [])
        shared = len(self.world.uploads[(upload.carrier, number)]) > 1     # 合并发货
        if not scans or scans[-1].status != "DELIVERED" or shared:
            return
        self.donors.append(_Donor(order, upload.carrier, number, upload.t, scans[0].t, scans[-1].t))

    def _donor(self, fits: Callable[[_Donor], bool]) -> _Donor | None:
        """A random unused donor that `fits`, or None."""
        candidates = [d for d in self.donors if not d.used and fits(d)]
        return self.rng.choice(candidates) if candidates else None

    def _fresh_window(self, donor: _Donor) -> tuple[int, int]:
        """When a buyer may pay to get a copy of `donor`'s number: within the run, before its pickup."""
        return max(self.start, donor.first_scan - 20 * HOUR), min(donor.first_scan - 2 * HOUR, self.end - 1)

    def _reused(self, order: Order) -> list[Scan]:
        """Upload a number another buyer's parcel already carries (WAYBILL_REUSED)."""
        rng = self.rng

        def fresh(d: _Donor) -> bool:
            first, last = self._fresh_window(d)
            return last - first >= HOUR

        def stale(d: _Donor) -> bool:
            return d.delivered + DAY < self.end - HOUR

        donor = self._donor(stale if order.variant == "stale_kept" else fresh)
        if donor is None and order.variant == "stale_kept":
            order.variant = "fresh_kept"            # too few days for a number to go stale
            donor = self._donor(fresh)
        if donor is None:
            raise SimulationError("WAYBILL_REUSED needs clean delivered orders to copy numbers from: "
                                  "ask for more orders or days, or fewer faults")
        donor.used = True                           # each number is copied once
        kept_stale = order.variant == "stale_kept"
        shop = self.shop_of[donor.order.index]
        order.shop_id, order.platform = shop.shop_id, shop.platform
        self.shop_of[order.index] = shop
        donor_home = self.home[donor.order.index]
        if kept_stale:
            order.paid_at = rng.randint(donor.delivered + DAY, min(donor.delivered + 10 * DAY, self.end - HOUR))
            elsewhere = [c for p in geo.PROVINCES for c in p.cities if c is not donor_home]
            self._buyer(order, rng.choice(elsewhere))
            upload = order.paid_at + self._hours(0.5, 6)
            if upload - donor.first_scan > self.th.reuse_window - DAY:
                raise _Redraw()
        else:
            order.paid_at = rng.randint(*self._fresh_window(donor))
            self._buyer(order, donor_home)
            upload = max(donor.uploaded_at, order.paid_at) + self._hours(1, 8)
        self._upload(order, donor.carrier, donor.number, upload)
        if order.variant != "fresh_replaced":
            return []
        replaced = upload + self._hours(2, 20)
        number = self._number(donor.carrier)
        self._upload(order, donor.carrier, number, replaced)
        pickup = replaced + self._hours(0.5, 6)
        budget = donor.first_scan + self.th.not_delivered - routes.SAFETY - pickup
        legs = self._plan(order, donor.carrier, incidents=False)
        return self._journey(order, donor.carrier, number, pickup, legs, budget=budget)

    def _order_id(self, order: Order, seq: int) -> str:
        """Order numbers shaped like each platform's: all digits, unique by their sequence part."""
        rng = self.rng
        if order.platform == "douyin":
            day = datetime.fromtimestamp(order.paid_at + self.offset, UTC).strftime("%y%m%d")
            return f"69{day}{seq:07d}{rng.randrange(10 ** 4):04d}"
        if order.platform == "taobao":
            return f"2{seq:07d}{rng.randrange(10 ** 11):011d}"
        return f"57{seq:07d}{rng.randrange(10 ** 9):09d}"
