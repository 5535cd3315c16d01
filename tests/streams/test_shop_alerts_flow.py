"""Shop alerts through the worker's shell: facts from the order side, rates per shop, alerts out."""

import asyncio
from datetime import timedelta

from schemas import codec
from streams.inprocess.engine import InProcessEngine
from streams.rules_file import load_rules
from tests.factories import PAID, cancellation, hours, order_paid, upload


async def publish(engine, topic, key, model):
    await engine.publish(topic, key.encode(), codec.dumps(model))


async def tick(engine, at):
    for p in range(engine.partitions):
        await engine.publish("clock-ticks", None, codec.dumps({"at": at.isoformat()}), p)


def alerts(engine):
    return [(a["shop_id"], a["metric"], a["stage"]) for a in engine.output("shop-alerts")]


def test_one_approved_out_of_stock_cancellation_in_twenty_orders_warns_the_shop():
    engine = InProcessEngine(load_rules())

    async def go():
        for i in range(20):
            await publish(engine, "order-paid", f"S{i}", order_paid(f"S{i}", at=PAID + timedelta(minutes=i)))
            await publish(engine, "waybill-uploaded", f"S{i}",
                          upload(f"S{i}", f"SF14{i:011d}", at=PAID + hours(1) + timedelta(minutes=i)))
        await publish(engine, "cancellation-requests", "S0", cancellation("S0", at=PAID + hours(2)))
        await tick(engine, PAID + hours(3))
    asyncio.run(go())
    assert [o["code"] for o in engine.output("cancellation-outcomes")] == ["APPROVED"]
    (alert,) = engine.output("shop-alerts")
    assert (alert["shop_id"], alert["metric"], alert["stage"]) == ("shopA", "SELLER_FAULT_CANCEL_RATE", "WARNING")
    assert (alert["value"], alert["threshold"], alert["orders_in_window"]) == ("0.0500", "0.025", 20)
    assert alert["window_end"] == "2026-03-02T04:00:00Z"


def test_a_shop_with_two_of_twenty_five_orders_never_dispatched_gets_a_late_dispatch_warning():
    engine = InProcessEngine(load_rules())

    async def go():
        for i in range(25):
            await publish(engine, "order-paid", f"L{i}", order_paid(f"L{i}", at=PAID + timedelta(minutes=i)))
            if i >= 2:
                await publish(engine, "waybill-uploaded", f"L{i}",
                              upload(f"L{i}", f"SF15{i:011d}", at=PAID + hours(1) + timedelta(minutes=i)))
        await tick(engine, PAID + hours(60))
        # the shop's next order, on day 3: the 25 ship_bys of day 1 are now in its window
        await publish(engine, "order-paid", "L99", order_paid("L99", at=PAID + hours(72)))
        await tick(engine, PAID + hours(73))
    asyncio.run(go())
    late = [a for a in engine.output("shop-alerts") if a["metric"] == "LATE_DISPATCH_RATE"]
    assert [(a["shop_id"], a["stage"]) for a in late] == [("shopA", "WARNING")]
    assert (late[0]["value"], late[0]["threshold"], late[0]["orders_in_window"]) == ("0.0800", "0.04", 25)
    assert late[0]["window_end"] == "2026-03-05T02:00:00Z"


def test_fewer_than_twenty_orders_never_alert():
    engine = InProcessEngine(load_rules())

    async def go():
        for i in range(19):
            await publish(engine, "order-paid", f"F{i}", order_paid(f"F{i}", at=PAID + timedelta(minutes=i)))
        await tick(engine, PAID + hours(60))
    asyncio.run(go())
    late = [w for w in engine.output("violation-warnings") if (w["rule"], w["stage"]) == ("SHIP_OVERDUE", "VIOLATION")]
    assert len(late) == 19, "every order was applied and never dispatched: a late rate far above its threshold"
    assert alerts(engine) == []


def test_presale_orders_paid_long_before_their_ship_by_count_when_their_violations_arrive():
    """A violation fired by a jump of stream time is still evaluated at its own time (found by the labeller)."""
    engine = InProcessEngine(load_rules())

    async def go():
        for i in range(25):
            ship_by = PAID + timedelta(days=10, minutes=i)
            await publish(engine, "order-paid", f"P{i}", order_paid(f"P{i}", at=PAID + timedelta(minutes=i),
                                                                     presale=True, ship_by=ship_by.isoformat()))
        await tick(engine, PAID + timedelta(days=12))
    asyncio.run(go())
    late = [(a["metric"], a["stage"], a["window_end"]) for a in engine.output("shop-alerts")]
    assert late == [("LATE_DISPATCH_RATE", "WARNING", "2026-03-12T02:19:00Z")]
