"""Whoever publishes, and however they partition, a group of workers gives one reading's outputs.

Before the worker forwarded misplaced records, 16 of 27 scenarios published by confluent-kafka
(CRC32 of the key) to two workers gave wrong outputs with nothing in the logs: a record was judged
by the worker that owned the partition it was published to, not its key's. Here a simulated
shop stream and the merged contract examples are published by confluent-kafka (librdkafka, a
client we did not write) with its default partitioner, with a random partition per record, and
with murmur2, to two or three workers; the outputs, read back with a confluent-kafka consumer,
must equal whole those of the same stream read one record at a time in process.
"""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import orjson
import pytest

from streams import topics as T
from streams.cli.replay import Message, parse_line
from streams.cli.supervise import WorkerProcess, wait_idle_or_stalled
from streams.inprocess.engine import InProcessEngine
from streams.kafka import admin
from streams.kafka.embedded import EmbeddedBroker, free_port
from streams.rules_file import load_rules
from tests.integration import confluent
from tests.integration.brokers import new_broker
from tests.integration.simulated import simulated_stream
from tests.publishers import example_lines

pytestmark = pytest.mark.integration
APP_ID = "shipguard-partitioners"
OUTPUT_TOPICS = (T.VIOLATION_WARNINGS, T.CANCELLATION_OUTCOMES, T.SHOP_ALERTS, T.DEAD_LETTERS)
PARTITIONS = 8


def canonical(records: list[dict]) -> list[str]:
    return sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS).decode() for r in records)


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> list[Message]:
    """A simulated shop's events and the contract examples, merged in time order, the latest tick last."""
    events, _ = simulated_stream(tmp_path_factory.mktemp("stream"), "--orders", "400", "--days", "4", "--seed",
                                 "23", "--cancel-share", "0.1")
    items = [orjson.loads(line) for line in events.read_text(encoding="utf-8").splitlines() if line.strip()]
    items += [orjson.loads(line) for line in example_lines()]
    ticks = sorted((i for i in items if i["topic"] == T.CLOCK_TICKS), key=lambda i: datetime.fromisoformat(i["at"]))
    merged = sorted((i for i in items if i["topic"] != T.CLOCK_TICKS), key=lambda i: datetime.fromisoformat(i["at"]))
    lines = [orjson.dumps(i).decode() for i in merged + ticks[-1:]]
    return [m for number, line in enumerate(lines, start=1) for m in parse_line(number, line, PARTITIONS)]


@pytest.fixture(scope="module")
def reference(stream) -> dict[str, list[str]]:
    engine = InProcessEngine(load_rules(), partitions=PARTITIONS)
    asyncio.run(engine.publish_messages(stream))
    got = {topic: canonical(engine.output(topic)) for topic in OUTPUT_TOPICS}
    assert len(got[T.VIOLATION_WARNINGS]) > 50 and got[T.CANCELLATION_OUTCOMES], "the stream emits enough"
    return got


def forwarded(port: int) -> int:
    """shipguard_forwarded_total{reason="partition"} summed, from a worker's /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(int(float(v)) for v in re.findall(r'^shipguard_forwarded_total\{[^}]*reason="partition"[^}]*\} (\S+)',
                                                   text, re.M))


def assigned(worker: WorkerProcess) -> int:
    counts = re.findall(r"worker ready: .*? assigned=(\d+)", worker.log_text())
    return int(counts[-1]) if counts else 0


@pytest.mark.parametrize(("publisher", "workers", "kind"), [
    ("confluent-default", 2, "tansu"), ("murmur2", 2, "tansu"), ("random", 3, "tansu"),
    ("confluent-default", 2, "kafka"), ("random", 3, "kafka")])
def test_outputs_are_one_readings_whichever_partitioner_published_them(tmp_path, stream, reference, publisher,
                                                                       workers, kind):
    placement = "random" if publisher == "random" else "default"
    config = {"partitioner": "murmur2_random"} if publisher == "murmur2" else {}
    with new_broker(kind) as broker:
        admin.ensure_topics([broker.bootstrap], T.all_topics(APP_ID), PARTITIONS)
        group = [WorkerProcess(broker.url, tmp_path / f"w{i}.log", app_id=APP_ID, web_port=free_port(),
                               data_dir=tmp_path / f"w{i}") for i in range(workers)]
        try:
            with ThreadPoolExecutor(len(group)) as pool:  # together: one rebalance, not one per worker
                list(pool.map(WorkerProcess.start, group))
            deadline = time.monotonic() + 60  # every worker holds partitions before the stream starts
            while not all(assigned(w) for w in group) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert all(assigned(w) for w in group), "the workers did not share the partitions"
            assert confluent.publish(broker.bootstrap, stream, placement=placement, **config) == len(stream)
            assert wait_idle_or_stalled([broker.bootstrap], APP_ID, timeout=150, stall=40), "the group stalled"
            moved = [forwarded(int(w.env["SHIPGUARD_WEB_PORT"])) for w in group]
            alive = [w.process is not None and w.process.poll() is None for w in group]
            got = {topic: canonical(confluent.read_all(broker.bootstrap, topic)) for topic in OUTPUT_TOPICS}
        finally:
            for worker in group:
                worker.stop()
    assert all(alive), "every worker lived"
    if publisher == "murmur2":
        assert sum(moved) == 0, "murmur2 puts every keyed record in its key's partition"
    else:
        assert all(n > 0 for n in moved), f"each worker forwarded misplaced records: {moved}"
    differ = {topic: (len(got[topic]), len(reference[topic]), only(got[topic], reference[topic]),
                      only(reference[topic], got[topic]))
              for topic in OUTPUT_TOPICS if got[topic] != reference[topic]}
    assert not differ, f"(records here, in the one-at-a-time reading, only here, only there) {differ}"


def only(records: list[str], other: list[str]) -> dict[str, int]:
    """How many of `records` (canonical JSON) are not in `other`, by rule (or metric, or decision) and stage."""
    rest = Counter(other)
    out: Counter = Counter()
    for text in records:
        if rest[text] > 0:
            rest[text] -= 1
            continue
        r = orjson.loads(text)
        kind = r.get("rule") or r.get("metric") or r.get("decision")
        out[f"{kind} {r.get('stage', '')} {r.get('order_id', '')}"] += 1
    return dict(out.most_common(8))


def test_a_worker_refuses_to_start_when_one_of_its_topics_has_another_partition_count(tmp_path):
    with EmbeddedBroker() as broker:
        admin.ensure_topics([broker.bootstrap], [T.TRACKING_SCANS], 3)
        admin.ensure_topics([broker.bootstrap], [T.SHOP_ALERTS], 12)
        assert admin.partition_counts([broker.bootstrap], [T.TRACKING_SCANS, T.SHOP_ALERTS]) == {
            T.TRACKING_SCANS: 3, T.SHOP_ALERTS: 12}
        worker = WorkerProcess(broker.url, tmp_path / "w.log", app_id=APP_ID, web_port=free_port(),
                               partitions=PARTITIONS)
        with pytest.raises(Exception, match="exited with 2"):
            worker.start(timeout=60)
    text = worker.log_text()
    refusal = text.split("refusing to start: ")[1].split(". Records")[0]
    assert refusal == ("topic 'shop-alerts' has 12 partitions, SHIPGUARD_PARTITIONS is 8; "
                       "topic 'tracking-scans' has 3 partitions, SHIPGUARD_PARTITIONS is 8"), text[-2000:]
