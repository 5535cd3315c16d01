"""A real broker (the embedded one and Apache Kafka) and a real worker process: the contract examples end to end.

The six examples are merged into one stream ordered by `at` (they share a start time and use
their own orders, shops and numbers), with one bad record and one duplicate added, replayed with
`shipguard replay`, and the output topics read back once the worker has committed everything.
"""

import json
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest

from streams import topics as T
from streams.cli.supervise import WorkerProcess, read_topic, wait_idle
from streams.kafka import admin
from streams.kafka.embedded import free_port
from tests.integration.brokers import KINDS, new_broker

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"
NAMES = sorted(p.name.removesuffix(".jsonl") for p in EXAMPLES.glob("*.jsonl"))
APP_ID = "shipguard-it"

pytestmark = pytest.mark.integration


def merged_stream(path: Path) -> int:
    """Write all examples as one stream by `at`, plus a bad record and a duplicate; returns dead letters."""
    lines = []
    for name in NAMES:
        lines += [json.loads(line) for line in (EXAMPLES / f"{name}.jsonl").read_text().splitlines() if line]
    ticks = [item for item in lines if item["topic"] == "clock-ticks"]
    events = sorted((item for item in lines if item["topic"] != "clock-ticks"),
                    key=lambda item: datetime.fromisoformat(item["at"]))
    bad = {"at": events[0]["at"], "topic": "order-paid", "key": "BAD1", "raw": "{\"order_id\": \"BAD1\""}
    duplicate = dict(events[1])
    stream = events[:1] + [bad] + events[1:2] + [duplicate] + events[2:] + ticks[-1:]
    path.write_text("\n".join(json.dumps(item, ensure_ascii=False) for item in stream) + "\n", encoding="utf-8")
    return 1


@pytest.fixture(scope="module", params=KINDS)
def run(request, tmp_path_factory):
    """Broker, worker, replay; yields the outputs and what the run measured."""
    tmp = tmp_path_factory.mktemp(f"e2e-{request.param}")
    with new_broker(request.param) as broker:
        web_port = free_port()
        worker = WorkerProcess(broker.url, tmp / "worker.log", app_id=APP_ID, web_port=web_port)
        with worker:
            stream = tmp / "examples.jsonl"
            dead = merged_stream(stream)
            replay = subprocess.run(
                [sys.executable, "-m", "streams.cli", "replay", str(stream), "--quiet"],
                env={**worker.env}, capture_output=True, text=True, timeout=60)
            assert replay.returncode == 0, replay.stderr
            bootstrap = [broker.bootstrap]
            wait_idle(bootstrap, APP_ID, timeout=90)
            changelogs = admin.topic_configs(bootstrap, T.changelog_topics(APP_ID))
            held = {order: status_of(f"http://127.0.0.1:{web_port}/order/{order}")
                    for name in NAMES for order in orders_of(name)}
            yield {
                "held": held,
                "warnings": read_topic(bootstrap, "violation-warnings"),
                "outcomes": read_topic(bootstrap, "cancellation-outcomes"),
                "dead_letters": read_topic(bootstrap, "dead-letters"),
                "expected_dead": dead,
                "replay_stdout": replay.stdout,
                "worker": worker,
                "kind": request.param,
                "changelogs": changelogs,
            }


def status_of(url):
    """The HTTP status of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def expected(name):
    return json.loads((EXAMPLES / f"{name}.expected.json").read_text(encoding="utf-8"))


def orders_of(name):
    return {json.loads(line)["value"].get("order_id") for line in (EXAMPLES / f"{name}.jsonl").read_text().splitlines()
            if line and "order_id" in json.loads(line).get("value", {})}


@pytest.mark.parametrize("name", NAMES)
def test_each_example_gives_exactly_its_expected_outputs_on_a_real_broker(run, name):
    mine = orders_of(name)
    # the example was read and applied (its expected outputs may be none at all)
    assert mine and {run["held"][order] for order in mine} == {200}, f"the worker holds {name}'s orders: {run['held']}"
    assert not [d for d in run["dead_letters"] if name in d["raw"]], "none of the example's records was dead-lettered"
    got = sorted((w["order_id"], w["rule"], w["stage"], w["occurred_at"])
                 for w in run["warnings"] if w["order_id"] in mine)
    want = sorted((w["order_id"], w["rule"], w["stage"], w["occurred_at"])
                  for w in expected(name)["violation-warnings"])
    assert got == want
    outcomes = sorted((o["order_id"], o["decision"], o["code"]) for o in run["outcomes"] if o["order_id"] in mine)
    assert outcomes == sorted((o["order_id"], o["decision"], o["code"])
                              for o in expected(name)["cancellation-outcomes"])


def test_no_warning_stage_appears_twice(run):
    keys = [(w["warning_id"], w["stage"]) for w in run["warnings"]]
    assert keys and len(keys) == len(set(keys))


def test_a_warning_keeps_one_id_through_its_stages_and_carries_the_contract_fields(run):
    ex03 = [w for w in run["warnings"] if w["order_id"] == "EX03"]
    assert len({w["warning_id"] for w in ex03}) == 1
    warning = next(w for w in ex03 if w["stage"] == "WARNING")
    assert warning["deadline"] == "2026-03-04T02:00:00Z" and warning["shop_id"] == "shopC"
    assert warning["platform"] == "douyin" and warning["severity"] == "medium"
    assert "发货" in warning["message"] and warning["evidence"]["ship_by"] == "2026-03-04T02:00:00Z"


def test_bad_input_lands_on_dead_letters_with_its_reason_and_the_worker_goes_on(run):
    letters = run["dead_letters"]
    assert len(letters) == run["expected_dead"]
    assert letters[0]["source_topic"] == "order-paid" and letters[0]["error"].startswith("not JSON")
    assert letters[0]["raw"] == "{\"order_id\": \"BAD1\""
    assert run["worker"].process.poll() is None, "the worker is still running"


def test_the_replay_reports_what_it_sent(run):
    assert run["replay_stdout"].startswith("sent ") and "order-paid=" in run["replay_stdout"]


def test_the_worker_logs_each_warning_as_one_key_value_line_without_pii(run):
    log = run["worker"].log_text()
    assert "warning order=EX02 rule=SHIP_OVERDUE stage=VIOLATION occurred_at=2026-03-04T02:00:00Z" in log
    assert "张三" not in log and "13812345678" not in log


def test_the_embedded_broker_fixes_are_applied_on_the_embedded_broker_and_none_on_apache_kafka(run):
    log = run["worker"].log_text()
    if run["kind"] == "kafka":
        assert "embedded=False" in log and "broker compat fixes: none" in log
        assert "fetch wait" not in log and "waits at most" not in log
    else:
        assert "embedded=True" in log and "broker compat fixes: end offsets raised" in log


def test_the_changelog_topics_are_compacted_on_apache_kafka(run):
    if run["kind"] != "kafka":
        pytest.skip("the embedded broker neither reports topic configs nor compacts")
    assert set(run["changelogs"]) == set(T.changelog_topics(APP_ID))
    assert {name: config.get("cleanup.policy") for name, config in run["changelogs"].items()} == {
        name: "compact" for name in T.changelog_topics(APP_ID)}
