"""No record stops the worker, on a real broker, and none stops its restart (issue 15, point 4).

Each record that once took the worker down (some on every restart) is published by confluent-kafka
beside good ones: compressed batches of every codec, times outside what state can hold, a bad
value under a megabyte key, ids at their 128-character limit, an order whose deadlines fall in
2100, order-paid under a null, wrong or non-UTF-8 key, an over-long buyer remark. The worker must
live, send each bad record to dead-letters once, apply each good one, never put a recipient in
clear on its own feeds, and be ready again after a restart on what it wrote (RocksDB store).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from schemas import codec
from streams import topics as T
from streams.cli.replay import Message, parse_line
from streams.cli.supervise import WorkerProcess, wait_idle_or_stalled
from streams.kafka import admin
from streams.kafka.embedded import EmbeddedBroker, free_port
from tests.factories import PAID, hours, order_paid
from tests.hostile import HOSTILE, LATEST, LONG_CANCEL_EVENT, LONG_ORDER, LONG_OVERDUE, line, long_id_lines, value_of
from tests.integration import confluent

pytestmark = pytest.mark.integration
APP_ID = "shipguard-hostile"
PARTITIONS = 8
MEGABYTE_KEY = b"k" * 1_100_000
MISPLACED = {"K-NULL": None, "K-WRONG": b"not-the-order", "K-BYTES": b"\xff\xfe\x00"}
REMARK = "R" * 2_500


def messages(lines: list[str]) -> list[Message]:
    return [m for number, text in enumerate(lines, start=1) for m in parse_line(number, text, PARTITIONS)]


def get(port: int, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_every_hostile_record_is_refused_or_applied_and_the_worker_lives_and_restarts(tmp_path):
    late = {**value_of(order_paid("LATE1")), "paid_at": LATEST}
    remark = {**value_of(order_paid("REMARK1")), "buyer_remark": REMARK}
    hostile = [line(topic, value, key) for topic, key, value, _ in HOSTILE]
    good = long_id_lines() + [line("order-paid", remark, "REMARK1")]
    with EmbeddedBroker() as broker:
        admin.ensure_topics([broker.bootstrap], T.all_topics(APP_ID), PARTITIONS)
        port = free_port()
        worker = WorkerProcess(broker.url, tmp_path / "worker.log", app_id=APP_ID, web_port=port,
                               partitions=PARTITIONS, data_dir=tmp_path / "data",
                               extra_env={"SHIPGUARD_STORE": "rocksdb"})
        with worker:
            for codec_name in ("snappy", "lz4", "zstd"):  # one good order in a batch of each codec
                order_id = f"Z-{codec_name}"
                assert confluent.publish(broker.bootstrap, messages([line("order-paid", value_of(order_paid(
                    order_id, at=PAID + hours(1))), order_id)]), **{"compression.type": codec_name}) == 1
            assert confluent.publish(broker.bootstrap, messages(hostile + good)) == len(messages(hostile + good))
            for order_id, key in MISPLACED.items():
                assert confluent.publish(broker.bootstrap, [Message(T.ORDER_PAID, key, codec.dumps(
                    order_paid(order_id)))]) == 1
            assert confluent.publish(broker.bootstrap, [Message(T.TRACKING_SCANS, MEGABYTE_KEY, b"{not json")],
                                     **{"message.max.bytes": 2_000_000}) == 1
            assert wait_idle_or_stalled([broker.bootstrap], APP_ID, timeout=120, stall=40), "the worker stalled"
            assert worker.process is not None and worker.process.poll() is None, "the worker lived"
            letters = confluent.read_all(broker.bootstrap, T.DEAD_LETTERS)
            warnings = confluent.read_all(broker.bootstrap, T.VIOLATION_WARNINGS)
            outcomes = confluent.read_all(broker.bootstrap, T.CANCELLATION_OUTCOMES)
            feeds = [value for feed in T.internal_topics(APP_ID) for _, value in confluent.read_raw(broker.bootstrap,
                                                                                                   feed)]
        with worker:  # again, on the RocksDB store and changelogs it wrote
            health = get(port, "/health")
            orders = {order_id: get(port, f"/order/{order_id}")[0]
                      for order_id in (LONG_ORDER, "REMARK1", *MISPLACED, "Z-snappy", "Z-lz4", "Z-zstd")}
            # last, since its time moves stream time to the end of 2099 (every other order expires):
            # an order whose deadlines and retention fall in 2100
            assert confluent.publish(broker.bootstrap, messages([line("order-paid", late, "LATE1")])) == 1
            assert wait_idle_or_stalled([broker.bootstrap], APP_ID, timeout=60, stall=30), "the worker stalled"
        with worker:
            late_health, late_order = get(port, "/health"), get(port, "/order/LATE1")

    # every bad record once on dead-letters, with the field it names; the megabyte key cut to fit
    expected = sorted([topic for topic, _, _, _ in HOSTILE if topic != T.CLOCK_TICKS] + [T.CLOCK_TICKS] * PARTITIONS
                      + [T.TRACKING_SCANS])
    assert sorted(letter["source_topic"] for letter in letters) == expected
    for topic, _, _, field in HOSTILE:
        assert any(letter["error"].startswith(f"{field}: time out of range") for letter in letters
                   if letter["source_topic"] == topic), topic
    assert any("(key: the first 1024 of 1100000 bytes)" in letter["error"] for letter in letters)
    # the good ones were applied: ids at their limit decided and counted, the long remark kept its order
    assert [o["request_event_id"] for o in outcomes] == [LONG_CANCEL_EVENT]
    assert {w["stage"] for w in warnings if w["order_id"] == LONG_OVERDUE} == {"WARNING", "VIOLATION"}
    assert health[0] == 200, health
    assert orders == dict.fromkeys(orders, 200), orders
    assert late_health[0] == 200 and late_order[0] == 200, (late_health, late_order)
    assert late_order[1]["state"]["facts"]["ship_by"].startswith("2100-"), late_order
    # no recipient in clear on the worker's own feeds (order-paid under a wrong key crossed them)
    recipient = value_of(order_paid("x"))["recipient"]
    assert feeds and not [v for v in feeds for clear in (recipient["name"], recipient["phone"], recipient["address"])
                          if clear.encode() in v]
    assert sum(b'"kind":"paid"' in v for v in feeds) >= len(MISPLACED)
