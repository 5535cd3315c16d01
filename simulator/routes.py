"""Parcel journeys: the scans a parcel collects from pickup to the buyer's door, and when.

A journey is first planned as legs (status, city, wait since the previous scan) and then
scheduled from the pickup time. Scheduling keeps a normal parcel well inside the contract's
thresholds: every wait stays `SAFETY` below the stall threshold of the previous scan's status
(remote destinations may wait longer), and the whole journey fits a budget (by default six days
minus `SAFETY`), shrinking trunk transports when it would not. Fault scenarios mark the legs they
stretch as `fixed`, which scheduling leaves alone.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from simulator import geo
from simulator.carriers import CARRIER_NAMES
from simulator.geo import City
from simulator.labels import Thresholds
from simulator.model import HOUR, MINUTE, Scan

SAFETY = 12 * HOUR
_FERRIES = {("湛江市", "海口市")}


@dataclass(slots=True)
class Leg:
    """One scan of a planned journey: what happens where, and how long after the previous scan."""

    wait: int
    status: str
    city: City
    text: str
    fixed: bool = False     # set by a fault scenario: scheduling keeps this wait as it is
    trunk: bool = False     # a transport between cities: the wait scheduling may shrink
    at_door: bool = False   # happens at the buyer's door: only in the daytime


def _hours(rng: random.Random, low: float, high: float) -> int:
    return int(rng.uniform(low, high) * HOUR)


def _travel(rng: random.Random, a: City, b: City) -> int:
    """Hours on the road between two sorting centres, slower to and within remote provinces."""
    slowest = max((a.province.remoteness, b.province.remoteness), key=(geo.NORMAL, geo.REMOTE, geo.VERY_REMOTE).index)
    factor = {geo.NORMAL: 1.0, geo.REMOTE: 1.25, geo.VERY_REMOTE: 1.5}[slowest]
    hours = (2.0 + geo.distance_km(a, b) / 70.0 * factor) * rng.lognormvariate(0.0, 0.15)
    if (a.name, b.name) in _FERRIES:
        hours += 5.0
    return int(hours * HOUR)


def _name(rng: random.Random, city: City) -> str:
    """How a carrier's system writes a city: mostly `杭州市`, sometimes `杭州`."""
    return city.short if rng.random() < 0.2 else city.name


def plan(rng: random.Random, carrier: str, origin: City, destination: City, *,
         incidents: bool = True, exception: bool = False) -> list[Leg]:
    """The legs of a parcel from `origin` to a door in `destination`.

    With `incidents`, a few parcels get a 疑难 (EXCEPTION) scan or a failed delivery on the way, as
    real ones do; `exception` forces the EXCEPTION scan.
    """
    brand = CARRIER_NAMES.get(carrier, "快递")
    stops = geo.route(origin, destination)
    first = stops[0] if stops else destination
    legs = [
        Leg(0, "PICKED_UP", origin, f"【{origin.name}】{brand}快递员已揽收"),
        Leg(_hours(rng, 1, 6), "IN_TRANSIT", origin, f"快件已从【{origin.name}】发出，下一站【{first.name}】"),
    ]
    previous = origin
    for i, stop in enumerate(stops):
        last = i == len(stops) - 1
        place = "营业部" if last else "转运中心"
        legs.append(Leg(_travel(rng, previous, stop), "IN_TRANSIT", stop, f"快件已到达【{stop.name}{place}】",
                        trunk=True))
        if not last:
            legs.append(Leg(_hours(rng, 1, 5), "IN_TRANSIT", stop,
                            f"快件已从【{stop.name}转运中心】发出，下一站【{stops[i + 1].name}】"))
        previous = stop
    if not stops:
        legs.append(Leg(_hours(rng, 2, 8), "IN_TRANSIT", destination, f"快件已到达【{destination.name}营业部】"))
    if exception or (incidents and rng.random() < 0.02):
        legs.append(Leg(_hours(rng, 1, 4), "EXCEPTION", destination, "疑难件：收件地址不详，正在联系收件人"))
        legs.append(Leg(_hours(rng, 3, 20), "IN_TRANSIT", destination, "问题已处理，快件继续派送"))
    legs.append(Leg(_hours(rng, 0.5, 3), "OUT_FOR_DELIVERY", destination,
                    f"【{destination.name}】快递员正在为您派件", at_door=True))
    if incidents and rng.random() < 0.04:
        legs.append(Leg(_hours(rng, 1, 6), "FAILED_ATTEMPT", destination, "派送不成功：收件人电话无人接听，将再次派送"))
        legs.append(Leg(_hours(rng, 14, 22), "OUT_FOR_DELIVERY", destination,
                        f"【{destination.name}】快递员正在为您派件", at_door=True))
    signed = "快件已签收，签收人：本人" if rng.random() < 0.6 else "快件已由驿站代收，请及时取件"
    legs.append(Leg(_hours(rng, 0.5, 6), "DELIVERED", destination, signed))
    return legs


def _cap(th: Thresholds, status: str, destination: str) -> int:
    """The longest wait after a scan of `status` that stays SAFETY inside its stall threshold."""
    rest = th.stall(status, destination)
    return rest - SAFETY if rest is not None else 10 ** 9


def schedule(rng: random.Random, legs: list[Leg], start: int, *, th: Thresholds, destination: str,
             utc_offset: int, budget: int | None = None) -> list[int]:
    """When each leg's scan happens, the first at `start`; see the module docstring."""
    budget = th.not_delivered - SAFETY if budget is None else budget
    day_start = [_hours(rng, 8, 9.5) for _ in legs]     # drawn once: the schedule is redone when shrinking
    scale = 1.0
    times: list[int] = []
    for _ in range(5):
        times = [start]
        for i in range(1, len(legs)):
            leg, previous = legs[i], legs[i - 1]
            wait = leg.wait
            if not leg.fixed:
                if leg.trunk:
                    wait = int(wait * scale)
                wait = max(10 * MINUTE, min(wait, _cap(th, previous.status, destination)))
            t = times[-1] + wait
            if leg.at_door and not leg.fixed:
                t = _daytime(t, utc_offset, day_start[i], latest=times[-1] + _cap(th, previous.status, destination))
            times.append(t)
        total = times[-1] - start
        if total <= budget:
            break
        trunk = sum(leg.wait for leg in legs if leg.trunk and not leg.fixed)
        if trunk == 0:
            break
        scale *= max(0.2, 1.0 - (total - budget) / (trunk * scale) - 0.02)
    return times


def _daytime(t: int, utc_offset: int, morning: int, latest: int) -> int:
    """Move a door-step scan that falls at night to the next morning, unless that waits too long."""
    local = (t + utc_offset) % 86400
    if 8 * HOUR <= local < 20 * HOUR:
        return t
    moved = t - local + morning + (86400 if local >= 20 * HOUR else 0)
    return moved if moved <= latest else t


def scans(rng: random.Random, legs: list[Leg], times: list[int], carrier: str, number: str) -> list[Scan]:
    """The scans of one journey, as the carrier publishes them."""
    out = []
    for k, (leg, t) in enumerate(zip(legs, times, strict=True)):
        province = leg.city.province.name if rng.random() < 0.4 else None
        out.append(Scan(f"ts-{number}-{k + 1}", t, carrier, number, leg.status, _name(rng, leg.city),
                        province, leg.text))
    return out
