"""Deployed as it will run: the broker and two workers on addresses of their own, one worker's
network cut during a replay (not a SIGSTOP: the process runs on, unable to reach anyone).

Each worker lives in a network namespace joined to this one by a veth pair (tests/integration/
netns.py). Its /health and /metrics are read from another address, as a probe or Prometheus
would. Mid-replay one worker's link is taken down: the other must take over its partitions
after the session timeout, and every output appear exactly once. Then the link comes back and
the cut worker rejoins; what it may still write then is what only transactions can stop
(docs/delivery.md, "A worker cut off").
"""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest

from streams import topics as T
from streams.cli.replay import replay
from streams.cli.supervise import WorkerProcess, consumed_topics, group_lag, read_topic, wait_idle_or_stalled
from streams.inprocess.engine import InProcessEngine
from streams.kafka import admin
from streams.kafka.embedded import EmbeddedBroker, free_port
from streams.rules_file import load_rules
from tests.integration.netns import BROKER, Network
from tests.integration.simulated import simulated_stream
from tests.integration.test_crash_safety import OUTPUT_TOPICS

pytestmark = [pytest.mark.integration, pytest.mark.alone]
APP_ID = "shipguard-netcut"
WHY_NOT = Network.unavailable()


def canonical(records: list[dict]) -> Counter:
    return Counter(orjson.dumps(r, option=orjson.OPT_SORT_KEYS).decode() for r in records)


def fetch(address: str, port: int, path: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://{address}:{port}{path}", timeout=5) as answer:
        return answer.status, answer.read().decode()


def assigned(worker: WorkerProcess) -> int:
    counts = re.findall(r"worker ready: .*? assigned=(\d+)", worker.log_text())
    return int(counts[-1]) if counts else 0


@pytest.mark.skipif(WHY_NOT is not None, reason=f"network namespaces: {WHY_NOT}")
def test_a_worker_cut_off_the_network_mid_replay_is_replaced_and_every_output_appears_once(tmp_path):
    events, _ = simulated_stream(tmp_path, "--orders", "600", "--days", "5", "--seed", "17")
    reference = InProcessEngine(load_rules())
    asyncio.run(reference.run_file(events))
    want = {topic: canonical(reference.output(topic)) for topic in OUTPUT_TOPICS}
    assert sum(want[T.VIOLATION_WARNINGS].values()) > 50

    port = free_port()
    with Network(("a", "b")) as net, EmbeddedBroker(host=BROKER) as broker:
        bootstrap = [broker.bootstrap]
        admin.ensure_topics(bootstrap, T.all_topics(APP_ID), 8)
        workers = {name: WorkerProcess(broker.url, tmp_path / f"{name}.log", app_id=APP_ID, web_port=port,
                                       data_dir=tmp_path / name, wrapper=net.wrapper(name),
                                       extra_env={"SHIPGUARD_WEB_HOST": "0.0.0.0"})
                   for name in ("a", "b")}
        try:
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(WorkerProcess.start, workers.values()))
            deadline = time.monotonic() + 60
            while not all(assigned(w) for w in workers.values()) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert all(assigned(w) for w in workers.values()), "the two workers did not share the partitions"
            for name in workers:  # read from this namespace's address, not the worker's own
                status, body = fetch(net.address(name), port, "/health")
                assert status == 200 and '"ok"' in body, body
                status, body = fetch(net.address(name), port, "/metrics")
                assert status == 200 and "shipguard_ready 1" in body
            total = replay(events, bootstrap, 8, progress=False).total
            time.sleep(1.0)
            lag = group_lag(bootstrap, APP_ID, consumed_topics(APP_ID))
            net.cut("a")
            assert 0 < lag < total + 10_000, f"cut at lag {lag}: not mid-stream"
            with pytest.raises(OSError):
                fetch(net.address("a"), port, "/health")  # really cut off
            assert workers["a"].process is not None and workers["a"].process.poll() is None, "a runs on, cut off"
            idle = wait_idle_or_stalled(bootstrap, APP_ID, timeout=150, stall=45)
            took_over = re.findall(r"resumed after a rebalance: partitions=\"\[([0-9, ]+)\]\"", workers["b"].log_text())
            got = {topic: canonical(read_topic(bootstrap, topic)) for topic in OUTPUT_TOPICS}

            net.restore("a")  # the link comes back
            # A worker cut off longer than its requests' timeout (40 s) ends itself (exit 70, so
            # that a restart reads its input again); its orchestrator restarts it, as here.
            # One cut off for less rejoins the group by itself.
            exited = workers["a"].process.poll() if workers["a"].process is not None else None
            if exited is not None:
                workers["a"].start()
            deadline = time.monotonic() + 90
            rejoined = False
            while time.monotonic() < deadline and not rejoined:
                time.sleep(1.0)
                rejoined = len(re.findall(r"worker ready:", workers["a"].log_text())) >= (1 if exited else 2)
            wait_idle_or_stalled(bootstrap, APP_ID, timeout=90, stall=45)
            after = {topic: canonical(read_topic(bootstrap, topic)) for topic in OUTPUT_TOPICS}
        finally:
            for worker in workers.values():
                worker.stop()

    assert idle, "the surviving worker did not finish the input"
    assert took_over and took_over[-1].count(",") == 7, f"b did not take all 8 partitions: {took_over}"
    twice = {topic: [r for r, n in got[topic].items() if n > 1][:3] for topic in OUTPUT_TOPICS
             if any(n > 1 for n in got[topic].values())}
    assert not twice, f"emitted more than once while a was cut off: {twice}"
    assert got == want, {topic: (sum(got[topic].values()), sum(want[topic].values())) for topic in OUTPUT_TOPICS}
    assert exited in (None, 70), f"the cut worker ended with {exited}"
    assert rejoined, "the cut worker did not rejoin once its link was back"
    assert all(set(after[topic]) == set(want[topic]) for topic in OUTPUT_TOPICS), "outputs after the rejoin"
    extra = {topic: sum(after[topic].values()) - sum(want[topic].values()) for topic in OUTPUT_TOPICS}
    print(f"cut worker {'restarted after exit 70' if exited else 'rejoined by itself'}; records written again "
          f"(what transactions would fence): {extra}")
