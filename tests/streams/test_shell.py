"""The worker's shell on an in-process log: routing, joins, dead letters, dedup, time, changelogs."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from schemas import codec
from streams.inprocess.engine import InProcessEngine, partition_for
from streams.rules_file import load_rules
from tests.factories import PAID, SHIP_BY, WARN_AT, hours, order_paid, scan, upload
from tests.streams.conftest import EXAMPLES, expected


def run(engine, coro):
    asyncio.run(coro)
    return engine


async def publish(engine, topic, key, model):
    await engine.publish(topic, None if key is None else key.encode(), codec.dumps(model))


async def tick(engine, at):
    for p in range(engine.partitions):
        await engine.publish("clock-ticks", None, codec.dumps({"at": at.isoformat()}), p)


def warnings(engine):
    return [(w["order_id"], w["rule"], w["stage"], w["occurred_at"]) for w in engine.output("violation-warnings")]


@pytest.mark.parametrize("name", sorted(p.name.removesuffix(".jsonl") for p in EXAMPLES.glob("*.jsonl")))
def test_each_contract_example_gives_exactly_the_expected_outputs(name):
    engine = InProcessEngine(load_rules())
    asyncio.run(engine.run_file(EXAMPLES / f"{name}.jsonl"))
    want = expected(name)
    lines = [codec.loads(line) for line in (EXAMPLES / f"{name}.jsonl").read_text().splitlines() if line]
    orders = {item["value"]["order_id"] for item in lines if "order_id" in item["value"]}
    assert orders and orders <= engine.orders.keys(), "every order of the example was applied"
    assert sorted(warnings(engine)) == sorted(
        (w["order_id"], w["rule"], w["stage"], w["occurred_at"]) for w in want["violation-warnings"])
    assert len(engine.output("dead-letters")) == want["dead-letters"]
    assert sorted((o["order_id"], o["decision"], o["code"]) for o in engine.output("cancellation-outcomes")) == sorted(
        (o["order_id"], o["decision"], o["code"]) for o in want["cancellation-outcomes"])
    assert engine.output("shop-alerts") == want["shop-alerts"]


def test_the_examples_merged_into_one_stream_give_the_same_warnings_as_one_by_one():
    names = ["ex01-happy-path", "ex02-ship-overdue", "ex03-ship-warning-resolved"]
    lines = []
    for name in names:
        lines += [codec.loads(line) for line in (EXAMPLES / f"{name}.jsonl").read_text().splitlines() if line]
    lines.sort(key=lambda item: datetime.fromisoformat(item["at"]))
    engine = InProcessEngine(load_rules())

    async def go():
        for item in lines:
            if item["topic"] == "clock-ticks":
                await tick(engine, datetime.fromisoformat(item["value"]["at"]))
            else:
                await engine.publish(item["topic"], item["key"].encode(), codec.dumps(item["value"]))
    asyncio.run(go())
    want = sorted((w["order_id"], w["rule"], w["stage"], w["occurred_at"])
                  for n in names for w in expected(n)["violation-warnings"])
    assert want and sorted(warnings(engine)) == want


def test_bad_input_goes_to_dead_letters_with_the_reason_and_good_events_around_it_still_count(engine):
    async def go():
        await engine.publish("order-paid", b"X1", b"{not json")
        await engine.publish("order-paid", b"X2", codec.dumps({"event_id": "e", "order_id": "X2"}))
        await engine.publish("tracking-scans", b"SF1", b"\xff\xfe")
        await publish(engine, "order-paid", "O1", order_paid("O1"))
        await engine.publish("waybill-uploaded", b"O1", codec.dumps({
            "event_id": "u", "order_id": "O1", "shop_id": "s", "carrier": "DHL", "waybill_no": "1",
            "uploaded_at": PAID.isoformat()}))
        await tick(engine, SHIP_BY + hours(1))
    run(engine, go())
    letters = sorted(engine.output("dead-letters"), key=lambda d: (d["source_topic"], d["offset"]))
    assert [(d["source_topic"], d["raw_encoding"]) for d in letters] == [
        ("order-paid", "utf-8"), ("order-paid", "utf-8"), ("tracking-scans", "base64"), ("waybill-uploaded", "utf-8")]
    assert letters[0]["error"].startswith("not JSON") and letters[0]["raw"] == "{not json"
    assert "shop_id: Field required" in letters[1]["error"]
    assert "carrier: Input should be" in letters[3]["error"]
    assert [w[2] for w in warnings(engine)] == ["WARNING", "VIOLATION"]


def test_the_same_event_id_twice_has_no_second_effect(engine):
    up = upload("O1", at=WARN_AT + hours(1))

    async def go():
        for _ in range(2):
            await publish(engine, "order-paid", "O1", order_paid("O1"))
        await tick(engine, WARN_AT + hours(1))
        for _ in range(2):
            await publish(engine, "waybill-uploaded", "O1", up)
            await publish(engine, "tracking-scans", up.waybill_no, scan(at=WARN_AT + hours(2)))
        await tick(engine, SHIP_BY + hours(30))
    run(engine, go())
    assert [w[2] for w in warnings(engine) if w[1] == "SHIP_OVERDUE"] == ["WARNING", "RESOLVED"]
    assert len(engine.orders["O1"].uploads) == 1 and len(engine.orders["O1"].scans) == 1


def test_a_record_under_the_wrong_key_is_moved_to_its_orders_partition_and_applied_there(engine):
    async def go():
        await publish(engine, "order-paid", "not-the-order-id", order_paid("O7"))
        await tick(engine, SHIP_BY + hours(1))
    run(engine, go())
    assert engine.orders["O7"].partition == partition_for(b"O7", engine.partitions)
    assert [w[:3] for w in warnings(engine)] == [("O7", "SHIP_OVERDUE", "WARNING"), ("O7", "SHIP_OVERDUE", "VIOLATION")]


def test_a_scan_before_the_upload_waits_on_the_waybill_side_and_reaches_the_order_on_upload(engine):
    number = "SF1400000000009"

    async def go():
        await publish(engine, "tracking-scans", number, scan(number, at=PAID + hours(1)))
        await publish(engine, "order-paid", "O1", order_paid("O1", platform="tiktok"))
        await publish(engine, "waybill-uploaded", "O1", upload("O1", number, at=PAID + hours(2)))
    run(engine, go())
    assert [s.scan_at for s in engine.orders["O1"].scans] == [PAID + hours(1)]
    assert engine.orders["O1"].joins_pending == ()


def test_a_number_shared_by_two_orders_of_one_recipient_reaches_both(engine):
    number = "SF1400000000010"

    async def go():
        for order_id in ("A1", "A2"):
            await publish(engine, "order-paid", order_id, order_paid(order_id, platform="tiktok"))
            await publish(engine, "waybill-uploaded", order_id, upload(order_id, number, at=PAID + hours(1)))
        await publish(engine, "tracking-scans", number, scan(number, at=PAID + hours(3)))
    run(engine, go())
    assert len(engine.orders["A1"].scans) == len(engine.orders["A2"].scans) == 1
    assert {o.same_recipient for o in engine.orders["A1"].others} == {True}


def test_every_table_write_goes_to_the_changelog_partition_of_its_key(engine):
    asyncio.run(engine.run_file(EXAMPLES / "ex03-ship-warning-resolved.jsonl"))
    assert engine.changelog
    assert all(partition == partition_for(key.encode(), engine.partitions)
               for _, partition, key, _ in engine.changelog)


def test_in_wall_mode_deadlines_fire_from_the_wall_clock_with_no_new_input():
    now = {"t": PAID}
    engine = InProcessEngine(load_rules(), clock="wall", wall_now=lambda: now["t"])

    async def go():
        await publish(engine, "order-paid", "O1", order_paid("O1"))
        now["t"] = WARN_AT + timedelta(minutes=9)
        await engine.advance_wall()
        assert warnings(engine) == [], "the allowed lateness has not passed yet"
        now["t"] = WARN_AT + timedelta(minutes=10)
        await engine.advance_wall()
    run(engine, go())
    assert warnings(engine) == [("O1", "SHIP_OVERDUE", "WARNING", "2026-03-03T20:00:00Z")]


def test_warnings_carry_masked_pii_only(engine):
    asyncio.run(engine.run_file(EXAMPLES / "ex02-ship-overdue.jsonl"))
    text = b"".join(r.value for p in engine.log["violation-warnings"].values() for r in p).decode()
    text += "".join(codec.dumps(v).decode() for *_, v in engine.changelog if v is not None)
    assert "张三" not in text and "13812345678" not in text and "文三路" not in text
    assert "张*" in text and "138****5678" in text


def test_timers_fire_in_event_time_with_the_allowed_lateness():
    engine = InProcessEngine(load_rules())

    async def go():
        await publish(engine, "order-paid", "O1", order_paid("O1"))
        await tick(engine, WARN_AT + timedelta(minutes=9, seconds=59))
        assert warnings(engine) == []
        await tick(engine, WARN_AT + timedelta(minutes=10))
    run(engine, go())
    assert warnings(engine) == [("O1", "SHIP_OVERDUE", "WARNING", "2026-03-03T20:00:00Z")]
    assert datetime.fromisoformat(engine.output("violation-warnings")[0]["deadline"]) == SHIP_BY.astimezone(UTC)


def test_an_event_later_than_the_lateness_is_applied_and_counted_but_cannot_undo_an_emitted_stage(engine):
    up = upload("O1", at=WARN_AT - hours(1))  # would have prevented the WARNING had it come in time

    async def go():
        await publish(engine, "order-paid", "O1", order_paid("O1"))
        await tick(engine, WARN_AT + hours(1))
        await publish(engine, "waybill-uploaded", "O1", up)
        await tick(engine, SHIP_BY + hours(1))
    run(engine, go())
    assert engine.shell.metrics.late_events == 1
    assert [w[2:] for w in warnings(engine) if w[1] == "SHIP_OVERDUE"] == [
        ("WARNING", "2026-03-03T20:00:00Z"), ("RESOLVED", "2026-03-03T20:00:00Z")]
    assert len(engine.orders["O1"].uploads) == 1 or engine.orders["O1"].closed


def test_an_event_within_the_lateness_is_not_counted_as_late(engine):
    async def go():
        await publish(engine, "order-paid", "O1", order_paid("O1"))
        await tick(engine, WARN_AT - hours(1))
        await publish(engine, "waybill-uploaded", "O1", upload("O1", at=WARN_AT - hours(1) - timedelta(minutes=9)))
    run(engine, go())
    assert engine.output("dead-letters") == [] and len(engine.orders["O1"].uploads) == 1, "the upload was applied"
    assert engine.shell.metrics.late_events == 0


def test_a_duplicate_event_keeps_the_orders_pending_timer(engine):
    async def go():
        await publish(engine, "order-paid", "O1", order_paid("O1"))
        await publish(engine, "order-paid", "O1", order_paid("O1"))  # the same event_id again
        await tick(engine, SHIP_BY + hours(1))
    run(engine, go())
    assert [w[2] for w in warnings(engine)] == ["WARNING", "VIOLATION"]
