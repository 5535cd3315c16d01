"""A worker SIGKILLed again and again mid-stream still emits every output exactly once.

The stream is simulated (every rule, cancellations, shop alerts, 1% duplicates) and published
up front: 2,000 orders (about 20,000 records) in `make test`, the issue's 100,000 records with
SHIPGUARD_CRASH_ORDERS=11000 (the bench's stream). A worker is started and killed at random moments
(seeded, printed), two while it starts or recovers, three while it processes, each restarted at
once (sharing the group with the dead member until its session expires), then a last worker
finishes the stream. Every output record is counted by its identity, and the
outputs are compared with the simulator's labels, which an uninterrupted run matches exactly
(`make bench` checks that on the same stream).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter

import pytest

from schemas.outputs import identity
from simulator.check import compare
from streams import topics as T
from streams.cli.replay import replay
from streams.cli.supervise import (
    WorkerFailed,
    WorkerProcess,
    consumed_topics,
    group_lag,
    lagging,
    read_topic,
    wait_idle_or_stalled,
)
from streams.kafka import admin
from streams.kafka.embedded import free_port
from tests.integration.brokers import QUICK_FAILOVER, both_brokers, new_broker
from tests.integration.simulated import simulated_stream

pytestmark = [pytest.mark.integration, pytest.mark.alone]
APP_ID = "shipguard-crash"
OUTPUT_TOPICS = (T.VIOLATION_WARNINGS, T.CANCELLATION_OUTCOMES, T.SHOP_ALERTS)


def bench_stream(tmp_path, orders: int):
    """The bench's stream (seed 1, 7 days, 1% duplicates) of `orders` orders, and its labels."""
    import json

    events, labels = simulated_stream(tmp_path, "--orders", str(orders), "--days", "7", "--seed", "1",
                                      "--duplicate-share", "0.01")
    return events, json.loads(labels.read_text(encoding="utf-8"))


def read_outputs(bootstrap: list[str]) -> dict[str, list[dict]]:
    return {topic: read_topic(bootstrap, topic) for topic in OUTPUT_TOPICS}


def repeated(outputs: dict[str, list[dict]]) -> dict[str, list[tuple[str, int]]]:
    """Per output topic, each identity that appears more than once, with its count."""
    counts = {topic: Counter(identity(topic, value) for value in values) for topic, values in outputs.items()}
    return {topic: [(key, n) for key, n in count.items() if n > 1] for topic, count in counts.items()}


def assert_exactly_the_labels(outputs: dict[str, list[dict]], labels: dict, behind: dict | None = None,
                              orders: int = 2000) -> None:
    """Nothing twice, the worker got to the end of its input, and nothing missing or extra."""
    twice = repeated(outputs)
    assert not any(twice.values()), f"emitted more than once: { {t: v[:5] for t, v in twice.items() if v} }"
    assert not behind, f"the worker stopped committing before the end of its input: (committed, end) {behind}"
    report = compare(labels, outputs[T.VIOLATION_WARNINGS], outputs[T.CANCELLATION_OUTCOMES], outputs[T.SHOP_ALERTS])
    # the stream really gives warnings to check: about 0.15-0.2 stages per order (300 for 2,000)
    assert sum(report.expected.values()) > 0.12 * orders and report.outcomes_expected > 15
    assert report.perfect, (f"missing {report.missing[:5]} extra {report.extra[:5]} outcomes missing "
                            f"{report.outcomes_missing[:5]} extra {report.outcomes_extra[:5]} alerts missing "
                            f"{report.alerts_missing[:5]} extra {report.alerts_extra[:5]}")


@both_brokers
def test_a_worker_killed_five_times_mid_stream_emits_every_output_exactly_once(tmp_path, kind):
    # 2,000 orders on the embedded broker; fewer on Apache Kafka, whose run also waits out a 10 s
    # session timeout after each kill (make test's 15 minutes)
    orders = int(os.environ.get("SHIPGUARD_CRASH_ORDERS", "2000" if kind == "tansu" else "1200"))
    events, labels = bench_stream(tmp_path, orders=orders)
    seed = int(os.environ.get("SHIPGUARD_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"crash test seed {seed} (SHIPGUARD_CRASH_SEED={seed} repeats these kill times)")
    with new_broker(kind) as broker:
        bootstrap = [broker.bootstrap]
        admin.ensure_topics(bootstrap, T.all_topics(APP_ID), 8)
        published = replay(events, bootstrap, 8, progress=False)
        assert published.total > 9 * orders
        log = tmp_path / "worker.log"
        topics = consumed_topics(APP_ID)
        # two kills while the worker starts or recovers, three while it processes
        kills = [("starting", rng.uniform(1.0, 6.0)) for _ in range(2)] + \
                [("processing", rng.uniform(0.5, 4.0)) for _ in range(3)]
        rng.shuffle(kills)
        lags = []
        for n, (when, delay) in enumerate(kills):
            worker = WorkerProcess(broker.url, log, app_id=APP_ID, web_port=free_port(), data_dir=tmp_path / f"d{n}",
                                   extra_env=QUICK_FAILOVER)
            if when == "starting":
                timer = threading.Timer(delay, worker.kill)
                timer.start()
                try:
                    worker.start()
                    timer.join()
                except WorkerFailed:
                    pass  # killed before it was ready: as intended
                timer.cancel()
            else:
                worker.start()
                time.sleep(delay)
            worker.kill()
            lags.append((when, round(delay, 1), group_lag(bootstrap, APP_ID, topics)))
        print("kills (when, seconds, records not yet committed):", lags)
        assert lags[-1][2] > 0 or any(lag < published.total for _, _, lag in lags), "the kills came after the end"
        with WorkerProcess(broker.url, log, app_id=APP_ID, web_port=free_port(), data_dir=tmp_path / "last",
                           extra_env=QUICK_FAILOVER) as last:
            idle = wait_idle_or_stalled(bootstrap, APP_ID, timeout=60 + published.total / 500, stall=30)
            behind = {} if idle else lagging(bootstrap, APP_ID, topics) or {"output topics": "still growing"}
            outputs = read_outputs(bootstrap)
            # it repaired what the killed ones left: from the outboxes, or (with transactions) by fencing
            assert "outboxes checked" in last.log_text() or "transactional producers started" in last.log_text()
        text = log.read_text(encoding="utf-8", errors="replace")
        print(f"the consumer skipped records: {text.count('offset gap ')} holes and "
              f"{text.count('partition stalled ')} silent tails read back by the workers")
    assert_exactly_the_labels(outputs, labels, behind, orders)
