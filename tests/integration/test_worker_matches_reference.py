"""On a real broker the worker gives exactly the outputs of reading the stream one record at a time.

The contract's event-mode guarantee: outputs equal those of reading the events one at a time
in publish order, whatever the partitions and fetch order. The in-process engine is that
reading (same Shell, same processors, each record delivered as it is published); the real
worker must match it on a simulated shop stream. This is what caught stream time jumping past
unread records when a consumer's cached high-water mark was stale.
"""

import argparse
import asyncio
import subprocess
import sys

import orjson
import pytest

from simulator.cli import add_arguments
from simulator.cli import run as simulate
from streams.cli.supervise import WorkerProcess, read_topic, wait_idle
from streams.inprocess.engine import InProcessEngine
from streams.kafka.embedded import EmbeddedBroker, free_port
from streams.rules_file import load_rules

pytestmark = pytest.mark.integration
APP_ID = "shipguard-ref"
IMPLEMENTED = {"SHIP_OVERDUE", "WAYBILL_INVALID", "WAYBILL_REUSED", "NO_PICKUP", "STALLED_AFTER_PICKUP",
               "TRACKING_STALLED", "ADDRESS_MISMATCH", "PICKUP_BEFORE_PAYMENT", "NOT_DELIVERED",
               "EXPRESS_STOP_REMARK"}


def canonical(record):
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode()


def outputs(read):
    """Whole records of warnings, cancellation outcomes and shop alerts (evidence, messages and
    all), each as canonical JSON, sorted, from a topic reader."""
    return {name: sorted(canonical(r) for r in read(topic))
            for name, topic in (("warnings", "violation-warnings"), ("outcomes", "cancellation-outcomes"),
                                ("alerts", "shop-alerts"))}


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ref")
    events, labels = tmp / "events.jsonl", tmp / "labels.json"
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert simulate(parser.parse_args(["--orders", "400", "--days", "5", "--seed", "11", "--cancel-share", "0.1",
                                       "--out", str(events), "--labels", str(labels)])) == 0
    return events, labels


@pytest.fixture(scope="module")
def reference(stream):
    engine = InProcessEngine(load_rules())
    asyncio.run(engine.run_file(stream[0]))
    return outputs(engine.output)


@pytest.fixture(scope="module")
def on_kafka(stream, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ref-run")
    with EmbeddedBroker() as broker:
        with WorkerProcess(broker.url, tmp / "worker.log", app_id=APP_ID, web_port=free_port()) as worker:
            done = subprocess.run([sys.executable, "-m", "streams.cli", "replay", str(stream[0]), "--quiet"],
                                  env=worker.env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            wait_idle([broker.bootstrap], APP_ID, timeout=120)
            return outputs(lambda topic: read_topic([broker.bootstrap], topic))


def test_the_worker_on_a_real_broker_gives_exactly_the_one_at_a_time_reading(on_kafka, reference):
    assert reference["warnings"] and reference["outcomes"], "the stream must produce outputs to compare"
    assert on_kafka == reference


def test_the_reading_matches_the_simulators_independent_labels_for_the_implemented_rules(reference, stream):
    import json

    labels = json.loads(stream[1].read_text(encoding="utf-8"))
    want = sorted((order_id, item["rule"], item["stage"], item["occurred_at"])
                  for order_id, order in labels["orders"].items() for item in order["expected"]
                  if item["rule"] in IMPLEMENTED)
    got = sorted((w["order_id"], w["rule"], w["stage"], w["occurred_at"])
                 for w in map(orjson.loads, reference["warnings"]))
    assert want and {rule for _, rule, _, _ in want} == IMPLEMENTED, "the labels expect every rule"
    assert got == want
