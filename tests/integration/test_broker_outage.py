"""A broker outage: every connection of the worker is reset for 30 s, and it comes back by itself.

Kafka clients go on to the address the broker advertises, so the broker advertises a proxy and
every client, the test's own included, goes through it. The outage resets every connection of
the worker (both sides, RST) and every new one it opens for 30 s. The publisher's connections
are spared: the broker stays up, so the second half of the stream is written while the worker is
cut off, as upstream platforms would go on publishing. The outage starts once the worker has
begun emitting outputs for the first half. Afterwards every record on the three output topics
is counted by its identity against the one-at-a-time reading, missing and doubled apart.

On the embedded broker the worker keeps its group membership through the outage (Tansu 0.6.0
does not evict a member whose heartbeats stop: measured with 30 s and 120 s outages against a
10 s session timeout; Kafka would evict it), so this exercises reconnection, the clients'
retries and the output path, not a rebalance. The same test runs on Apache Kafka (the proxy
stands before its client listener; the broker reaches itself directly).
"""

import asyncio
import re
import socket
import time
from collections import Counter

import pytest

from schemas.outputs import identity
from streams.cli.replay import replay
from streams.cli.supervise import WorkerProcess, read_topic, wait_idle
from streams.inprocess.engine import InProcessEngine
from streams.kafka.admin import end_offsets
from streams.kafka.embedded import EmbeddedBroker, free_port
from streams.rules_file import load_rules
from tests.integration.brokers import both_brokers, new_broker
from tests.integration.proxy import TcpProxy
from tests.integration.simulated import simulated_stream as simulated_stream_files

pytestmark = pytest.mark.integration
APP_ID = "shipguard-outage"
OUTAGE_S = 30.0
PUBLISHER = "shipguard-replay"  # the client id of streams.cli.replay's producer: the proxy spares it
# What the worker logs: aiokafka's errors when it loses the broker; nothing when it is back, but
# shipguard's line per output, and outputs of records published during the outage come after it.
LOST = re.compile(r"Unable connect to node|Marking the coordinator dead|Failed fetch messages")
OUTPUT_LOGGED = re.compile(r"\b(warning order=|cancellation order=|shop alert shop=)")
IDENTITY = {topic: (lambda r, topic=topic: identity(topic, r))
            for topic in ("violation-warnings", "cancellation-outcomes", "shop-alerts")}


def simulated_stream(tmp_path):
    """A shop stream and its two halves (the second ends with the closing tick)."""
    events, _ = simulated_stream_files(
        tmp_path, "--orders", "400", "--days", "5", "--seed", "11", "--cancel-share", "0.1"
    )
    lines = events.read_text(encoding="utf-8").splitlines(keepends=True)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text("".join(lines[: len(lines) // 2]), encoding="utf-8")
    second.write_text("".join(lines[len(lines) // 2:]), encoding="utf-8")
    return events, first, second


def count_by_identity(records_by_topic):
    """How many times each identity appears, per output topic."""
    return {topic: Counter(IDENTITY[topic](r) for r in records) for topic, records in records_by_topic.items()}


def differences(got, want):
    """Per topic: how many records were expected and found, how many missing, how many doubled."""
    report = {}
    for topic in IDENTITY:
        missing, doubled = want[topic] - got[topic], got[topic] - want[topic]
        report[topic] = {"expected": sum(want[topic].values()), "got": sum(got[topic].values()),
                         "missing": sum(missing.values()), "doubled": sum(doubled.values()),
                         "missing_examples": sorted(missing, key=str)[:5],
                         "doubled_examples": sorted(doubled, key=str)[:5]}
    return report


def outputs_on(bootstrap):
    """How many records the three output topics hold right now."""
    return sum(sum(end_offsets(bootstrap, topic).values()) for topic in IDENTITY)


def read_outputs(bootstrap):
    """Every record on the output topics, once two reads a second apart find as many."""
    got = None
    for _ in range(5):
        previous, got = got, {topic: read_topic(bootstrap, topic) for topic in IDENTITY}
        if previous is not None and all(len(previous[t]) == len(got[t]) for t in IDENTITY):
            break
        time.sleep(1.0)
    return got


def accepts_connections(port):
    """Whether anything listens on 127.0.0.1:`port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_a_broker_advertising_another_port_is_ready_before_anything_listens_there():
    from kafka import KafkaAdminClient

    port, advertised = free_port(), free_port()
    with EmbeddedBroker(port, advertised_port=advertised) as broker:
        # started and ready, although a client that followed the advertised address would find nothing there
        assert broker.running and not accepts_connections(advertised)
        client = KafkaAdminClient(bootstrap_servers=[f"127.0.0.1:{port}"], client_id="advertised-probe")
        try:
            assert [b.port for b in client._client.cluster.brokers()] == [advertised]
        finally:
            client.close()


@both_brokers
def test_a_worker_cut_off_from_the_broker_for_30_s_recovers_by_itself_and_loses_or_doubles_nothing(tmp_path, kind):
    events, first, second = simulated_stream(tmp_path)
    engine = InProcessEngine(load_rules())
    asyncio.run(engine.run_file(events))
    want = count_by_identity({topic: engine.output(topic) for topic in IDENTITY})
    assert all(want.values()), f"the stream must give every kind of output: {want}"

    port = free_port()
    with TcpProxy(port, spare={PUBLISHER}) as proxy, new_broker(kind, port, advertised_port=proxy.port):
        bootstrap = [proxy.bootstrap]  # wait_idle and read_topic too: clients follow the advertised proxy
        with WorkerProcess(proxy.url, tmp_path / "worker.log", app_id=APP_ID, web_port=free_port(),
                           data_dir=tmp_path / "data") as worker:
            replay(first, bootstrap, 8, progress=False)
            started = time.monotonic()
            while (emitted := outputs_on(bootstrap)) == 0 and time.monotonic() - started < 20:
                time.sleep(0.05)
            log_at_cut = len(worker.log_text())
            cut = time.monotonic()
            dropped = proxy.down()
            replay(second, bootstrap, 8, progress=False)
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - cut)))
            proxy.up()
            log_at_up = len(worker.log_text())
            summary = f"{emitted} outputs out at the cut, {proxy!r}"
            try:
                idle_after = wait_idle(bootstrap, APP_ID, timeout=90)
            except TimeoutError as exc:
                pytest.fail(f"the worker did not catch up after the outage ({exc}); {summary}; "
                            f"alive={worker.process.poll() is None}; its log ends with:\n{worker.log_tail(60)}")
            got = count_by_identity(read_outputs(bootstrap))
            alive = worker.process.poll() is None
            log = worker.log_text()

    summary += f", idle {idle_after:.1f} s after the outage"
    print(summary)
    during, after = log[log_at_cut:log_at_up], log[log_at_up:]
    assert 0 < emitted < sum(sum(c.values()) for c in want.values()), f"the worker must be busy at the cut: {summary}"
    assert dropped > 0 and proxy.refused > 0, f"the worker must lose its connections and try again: {summary}"
    assert alive, f"the worker must survive the outage; its log ends with:\n{log[-5000:]}"
    assert LOST.search(during), f"the worker must log that it lost the broker: {summary}"
    assert OUTPUT_LOGGED.search(after), f"the worker must emit again after the outage: {summary}"
    report = differences(got, want)
    assert all(r["missing"] == 0 and r["doubled"] == 0 for r in report.values()), f"{summary}\n{report}"
