"""Two workers share 8 partitions; one is SIGKILLed mid-stream and the other takes over its
partitions, their state and their outboxes: the outputs are exactly those of one uninterrupted run.

Faust showed lost and replayed events in rebalances on the embedded broker (BROKER.md), so
every output record is counted by identity and compared whole with the in-process reference.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter

import pytest

from streams import topics as T
from streams.cli.replay import replay
from streams.cli.supervise import WorkerProcess, consumed_topics, group_lag, lagging, read_topic, wait_idle_or_stalled
from streams.inprocess.engine import InProcessEngine
from streams.kafka import admin
from streams.kafka.embedded import free_port
from streams.rules_file import load_rules
from tests.integration.brokers import QUICK_FAILOVER, both_brokers, new_broker
from tests.integration.simulated import simulated_stream
from tests.integration.test_crash_safety import OUTPUT_TOPICS, repeated

pytestmark = [pytest.mark.integration, pytest.mark.alone]
APP_ID = "shipguard-failover"


def canonical(records: list[dict]) -> list[str]:
    import orjson

    return sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS).decode() for r in records)


@both_brokers
@pytest.mark.parametrize("store", ["memory"])
def test_the_surviving_worker_takes_over_a_killed_workers_partitions_and_the_outputs_are_exactly_one_runs(
        tmp_path, store, kind):
    events, labels = simulated_stream(tmp_path, "--orders", "800", "--days", "5", "--seed", "11",
                                      "--duplicate-share", "0.01")
    reference = InProcessEngine(load_rules())
    asyncio.run(reference.run_file(events))

    with new_broker(kind) as broker:
        bootstrap = [broker.bootstrap]
        admin.ensure_topics(bootstrap, T.all_topics(APP_ID), 8)
        env = {"SHIPGUARD_STORE": store, **QUICK_FAILOVER}
        log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
        a = WorkerProcess(broker.url, log_a, app_id=APP_ID, web_port=free_port(), data_dir=tmp_path / "a",
                          extra_env=env).start()
        b = WorkerProcess(broker.url, log_b, app_id=APP_ID, web_port=free_port(), data_dir=tmp_path / "b",
                          extra_env=env)
        try:
            b.start()
            deadline = time.monotonic() + 60  # both hold partitions before the stream starts
            while not (_assigned(a) and _assigned(b)) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert _assigned(a) and _assigned(b), "the two workers did not share the partitions"
            total = replay(events, bootstrap, 8, progress=False).total
            time.sleep(1.5)
            lag = group_lag(bootstrap, APP_ID, consumed_topics(APP_ID))
            a.kill()
            assert 0 < lag < total + 10_000, f"killed at lag {lag}: not mid-stream"
            idle = wait_idle_or_stalled(bootstrap, APP_ID, timeout=90, stall=30)
            behind = {} if idle else (lagging(bootstrap, APP_ID, consumed_topics(APP_ID))
                                      or {"output topics": "still growing"})
            took_over = re.findall(r"resumed after a rebalance: partitions=\"\[([\d, ]*)\]", b.log_text())
            assert took_over and len(took_over[-1].split(",")) == 8, \
                f"the survivor did not take all 8 partitions: {took_over}"
            got = {topic: read_topic(bootstrap, topic) for topic in OUTPUT_TOPICS}
        finally:
            a.kill()
            b.stop()
    assert not behind, f"the survivor stopped committing before the end of its input: (committed, end) {behind}"
    twice = {topic: pairs for topic, pairs in repeated(got).items() if pairs}
    differ = {topic: (len(got[topic]), len(reference.output(topic)), _kinds(got[topic], reference.output(topic)),
                      _kinds(reference.output(topic), got[topic]))
              for topic in OUTPUT_TOPICS if canonical(got[topic]) != canonical(reference.output(topic))}
    assert not twice, f"emitted more than once: {twice}"
    assert not differ, f"(records, uninterrupted run's, only here, only there) {differ}"
    assert len(reference.output(T.VIOLATION_WARNINGS)) > 100


def _kinds(records: list[dict], other: list[dict]) -> dict[str, int]:
    """How many of `records` are not in `other`, by rule (or metric, or decision) and stage."""
    rest = set(canonical(other))
    missing = [r for r, text in zip(records, map(canonical_one, records), strict=True) if text not in rest]
    return dict(Counter(f"{r.get('rule') or r.get('metric') or r.get('decision')} {r.get('stage', '')}".strip()
                        for r in missing))


def canonical_one(record: dict) -> str:
    return canonical([record])[0]


def _assigned(worker: WorkerProcess) -> bool:
    """The worker's latest readiness line names at least one assigned partition."""
    counts = re.findall(r"worker ready: .*? assigned=(\d+)", worker.log_text())
    return bool(counts) and int(counts[-1]) > 0
