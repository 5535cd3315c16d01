"""State never leaks: finished orders are closed at once and everything is gone after retention."""

import argparse
import asyncio
from datetime import datetime, timedelta

import pytest

from schemas import codec
from simulator.cli import add_arguments, config_from
from simulator.generator import generate
from simulator.output import render_events
from streams.cli.replay import parse_line
from streams.inprocess.engine import InProcessEngine
from streams.rules_file import load_rules
from tests.factories import cancellation
from tests.streams.conftest import EXAMPLES


async def tick(engine, at):
    for p in range(engine.partitions):
        await engine.publish("clock-ticks", None, codec.dumps({"at": at.isoformat()}), p)


def simulated(orders, days, seed, **extra):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    argv = ["--orders", str(orders), "--days", str(days), "--seed", str(seed), "--out", "x", "--labels", "y"]
    for key, value in extra.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    text = render_events(generate(config_from(parser.parse_args(argv))))
    return [line for line in text.decode().splitlines() if line.strip()]


def test_a_delivered_order_with_nothing_open_keeps_only_a_closed_marker():
    engine = InProcessEngine(load_rules())
    asyncio.run(engine.run_file(EXAMPLES / "ex01-happy-path.jsonl"))
    marker = engine.orders["EX01"]
    assert marker.closed and marker.facts is None and marker.scans == () and marker.uploads == ()


def test_a_repeated_event_after_closing_changes_nothing_and_emits_nothing():
    engine = InProcessEngine(load_rules())
    asyncio.run(engine.run_file(EXAMPLES / "ex01-happy-path.jsonl"))
    closed = engine.orders["EX01"]
    first_line = (EXAMPLES / "ex01-happy-path.jsonl").read_text().splitlines()[0]
    asyncio.run(engine.publish_messages(parse_line(1, first_line, engine.partitions)))
    asyncio.run(tick(engine, datetime.fromisoformat("2026-03-23T10:00:00+08:00")))
    [(partition, records)] = [(p, records) for p, records in engine.log["order-paid"].items() if records]
    assert len(records) == 2 and engine.shell.committable(("order-paid", partition)) == 2, "the repeat was read"
    assert engine.output("dead-letters") == []
    assert engine.output("violation-warnings") == [] and closed.closed and engine.orders["EX01"] == closed


def test_completed_orders_leave_both_tables_empty_after_retention():
    engine = InProcessEngine(load_rules())
    lines = simulated(150, 3, 4, fault_share=0.5)
    end = datetime.fromisoformat(codec.loads(lines[-1])["at"])

    async def go():
        for number, text in enumerate(lines, start=1):
            await engine.publish_messages(parse_line(number, text, engine.partitions))
            for table, held in (("orders", engine.orders), ("waybills", engine.waybills), ("shops", engine.shops)):
                most[table] = max(most[table], len(held))
        await tick(engine, end + timedelta(days=31))
    most = dict.fromkeys(("orders", "waybills", "shops"), 0)
    asyncio.run(go())
    assert all(most.values()) and engine.output("violation-warnings"), f"the stream held state to remove: {most}"
    assert engine.orders == {} and engine.waybills == {} and engine.shops == {}
    assert all(side.deadlines.due_at == {} for side in engine.shell.sides.values())
    assert engine.shell.pending_deadlines() == 0


def test_state_stays_flat_over_a_long_stream():
    """60 days of orders: the tables hold about a month of orders, not the whole stream."""
    engine = InProcessEngine(load_rules())
    lines = simulated(3000, 60, 9, fault_share=0.1, cancel_share=0)
    sizes = {}

    async def go():
        for number, text in enumerate(lines, start=1):
            await engine.publish_messages(parse_line(number, text, engine.partitions))
            if number % 2000 == 0:
                sizes[number] = len(engine.orders) + len(engine.waybills)
    asyncio.run(go())
    marks = sorted(sizes)
    middle = [sizes[n] for n in marks[len(marks) // 2: -1]]
    assert max(middle) < 1.35 * min(middle), f"state grows with the stream: {middle}"
    open_orders = sum(1 for s in engine.orders.values() if not s.closed)
    assert open_orders < 0.3 * 3000


@pytest.mark.parametrize("jump", [timedelta(days=31), timedelta(days=90)], ids=["31 days", "90 days"])
def test_a_request_for_an_order_that_never_arrives_gets_one_order_unknown_outcome_when_time_jumps_past_retention(
        jump):
    engine = InProcessEngine(load_rules())
    requested_at = datetime.fromisoformat("2026-03-02T10:00:00+08:00")

    async def go():
        request = cancellation("GHOST", at=requested_at)
        await engine.publish("cancellation-requests", b"GHOST", codec.dumps(request))
        await tick(engine, requested_at + jump)
    asyncio.run(go())
    assert [(o["order_id"], o["decision"], o["code"]) for o in engine.output("cancellation-outcomes")] == [
        ("GHOST", "REJECTED", "ORDER_UNKNOWN")]
    assert engine.orders == {} and engine.waybills == {} and engine.shops == {}
    assert engine.shell.pending_deadlines() == 0
