"""A simulation on the wire: the EVENTS.jsonl replay file and the LABELS.json answer key.

EVENTS.jsonl has one message a line, `{"at", "topic", "key", "value"}` as in the contract's
example scenarios, sorted by `at`, which is each event's own time (so the file is a valid
event-mode replay), and ends with one `clock-ticks` line 31 days after the last event, far past
every deadline. All JSON goes through the project's one codec (`schemas.codec.dumps`).
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

from schemas.codec import dumps
from simulator.generator import Simulation
from simulator.labels import RULES, STAGES, utc
from simulator.model import Order, Scan
from simulator.shop_labels import as_json, label_shops


class _Clock:
    """Formats instants in the simulation's local offset, e.g. 2026-03-02T10:00:00+08:00.

    Formatting by hand with a per-day cache is several times faster than datetime.isoformat,
    which matters at a hundred thousand lines.
    """

    def __init__(self, utc_offset: int) -> None:
        self.offset = utc_offset
        self.tz = timezone(timedelta(seconds=utc_offset))
        self.suffix = datetime(2026, 1, 1, tzinfo=self.tz).isoformat()[19:]
        self.days: dict[int, str] = {}

    def __call__(self, t: int) -> str:
        day, second = divmod(t + self.offset, 86400)
        date = self.days.get(day)
        if date is None:
            date = self.days[day] = datetime.fromtimestamp(t, self.tz).strftime("%Y-%m-%d")
        hour, rest = divmod(second, 3600)
        return f"{date}T{hour:02d}:{rest // 60:02d}:{rest % 60:02d}{self.suffix}"


def _order_paid(order: Order, at: _Clock) -> dict[str, Any]:
    r = order.recipient
    recipient = {"name": r.name, "phone": r.phone, "province": r.province, "city": r.city}
    if r.district:
        recipient["district"] = r.district
    recipient["address"] = r.address
    value: dict[str, Any] = {
        "event_id": order.event_id, "order_id": order.order_id, "shop_id": order.shop_id,
        "platform": order.platform, "paid_at": at(order.paid_at), "amount": order.amount,
        "currency": order.currency,
    }
    if order.ship_by is not None:
        value["ship_by"] = at(order.ship_by)
    value["presale"] = order.presale
    value["delivery_mode"] = order.delivery_mode
    if order.remark:
        value["buyer_remark"] = order.remark
    value["recipient"] = recipient
    return value


def _scan(scan: Scan, at: _Clock) -> dict[str, Any]:
    value: dict[str, Any] = {"event_id": scan.event_id, "carrier": scan.carrier, "waybill_no": scan.number,
                             "scan_at": at(scan.t), "status": scan.status, "city": scan.city}
    if scan.province:
        value["province"] = scan.province
    if scan.description:
        value["description"] = scan.description
    return value


def render_events(sim: Simulation) -> bytes:
    """The EVENTS.jsonl file: every message in publish order, the closing clock tick last."""
    at = _Clock(sim.utc_offset)
    lines: list[tuple[int, float, bytes]] = []

    def add(t: int, topic: str, key: str, value: dict[str, Any]) -> None:
        lines.append((t, len(lines), dumps({"at": at(t), "topic": topic, "key": key, "value": value})))

    for order in sim.orders:
        add(order.paid_at, "order-paid", order.order_id, _order_paid(order, at))
        for upload in order.uploads:
            value = {"event_id": upload.event_id, "order_id": order.order_id, "shop_id": order.shop_id,
                     "carrier": upload.carrier}
            if upload.waybill_no is not None:
                value["waybill_no"] = upload.waybill_no
            value["uploaded_at"] = at(upload.t)
            add(upload.t, "waybill-uploaded", order.order_id, value)
        for request in order.cancellations:
            add(request.t, "cancellation-requests", order.order_id, {
                "event_id": request.event_id, "order_id": order.order_id, "shop_id": order.shop_id,
                "reason": request.reason, "detail": request.detail, "requested_at": at(request.t)})
    for bucket in sim.world.scans.values():
        for scan in bucket:
            add(scan.t, "tracking-scans", scan.number, _scan(scan, at))
    share = sim.config.duplicate_share
    if share > 0:
        # at-least-once delivery: a few messages arrive twice, right after the original
        rng = random.Random(f"duplicates-{sim.config.seed}")
        lines += [(t, seq + 0.5, line) for t, seq, line in lines if rng.random() < share]
    lines.sort(key=lambda m: (m[0], m[1]))
    tick = at(sim.final_tick)
    body = b"\n".join(line for _, _, line in lines)
    return body + b"\n" + dumps({"at": tick, "topic": "clock-ticks", "value": {"at": tick}}) + b"\n"


def order_labels(sim: Simulation, order: Order) -> dict[str, Any]:
    """What the labels file says about one order."""
    verdict = sim.verdicts[order.index]
    return {
        "shop_id": order.shop_id,
        "platform": order.platform,
        "faults": [order.fault] if order.fault else [],
        "variant": order.variant,
        "expected": [{"rule": s.rule, "stage": s.stage, "occurred_at": utc(s.at)} for s in verdict.stages],
        "cancellations": [{"event_id": d.event_id, "reason": d.reason, "variant": order.cancel_variant,
                           "expected_decision": d.decision, "expected_code": d.code} for d in verdict.decisions],
    }


def counts(sim: Simulation) -> dict[str, dict[str, int]]:
    """How many of each (rule, stage) the whole stream requires on `violation-warnings`."""
    seen = Counter((s.rule, s.stage) for v in sim.verdicts.values() for s in v.stages)
    return {rule: {stage: seen[rule, stage] for stage in STAGES if seen[rule, stage]}
            for rule in RULES if any(seen[rule, stage] for stage in STAGES)}


def injected(sim: Simulation) -> dict[str, int]:
    """How many orders got each rule's fault."""
    seen = Counter(o.fault for o in sim.orders if o.fault)
    return {rule: seen[rule] for rule in RULES}


def generator_params(sim: Simulation) -> dict[str, Any]:
    """The arguments that reproduce the simulation."""
    cfg = sim.config
    return {"orders": cfg.orders, "days": cfg.days, "start": cfg.start.isoformat(), "shops": cfg.shops,
            "faults": {rule: share for rule, share in cfg.faults.items() if share},
            "cancel_share": cfg.cancel_share, "duplicate_share": cfg.duplicate_share,
            **({"problem_shop_share": cfg.problem_shop_share} if cfg.problem_shop_share else {}),
            "final_tick": utc(sim.final_tick)}


def shop_alerts(sim: Simulation) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """What the stream requires on `shop-alerts`, in time order, and the (shop, metric) left open from when."""
    return as_json(label_shops(sim.orders, sim.verdicts, sim.config.thresholds, world=sim.world,
                               ticks=[sim.final_tick]))


def labels(sim: Simulation) -> dict[str, Any]:
    """The LABELS.json content as plain data."""
    alerts, unlabelled = shop_alerts(sim)
    return {"seed": sim.config.seed, "generator": generator_params(sim),
            "orders": {o.order_id: order_labels(sim, o) for o in sim.orders},
            "counts": counts(sim), "injected": injected(sim),
            "shop_alerts": alerts, "shop_alerts_unlabelled": unlabelled}


def render_labels(sim: Simulation) -> bytes:
    """The LABELS.json file: one order, one shop alert a line, so that it diffs and greps well."""
    orders = b",\n".join(dumps(o.order_id) + b":" + dumps(order_labels(sim, o)) for o in sim.orders)
    alerts, unlabelled = shop_alerts(sim)

    def listed(items: list[dict[str, str]]) -> bytes:
        return b"[\n" + b",\n".join(dumps(item) for item in items) + b"\n]" if items else b"[]"

    return (b'{"seed":' + dumps(sim.config.seed) + b',\n"generator":' + dumps(generator_params(sim))
            + b',\n"orders":{\n' + orders + b'\n},\n"counts":' + dumps(counts(sim))
            + b',\n"injected":' + dumps(injected(sim))
            + b',\n"shop_alerts":' + listed(alerts) + b',\n"shop_alerts_unlabelled":' + listed(unlabelled)
            + b"}\n")
