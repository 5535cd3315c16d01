"""The worker's web views and the everyday commands against a real broker and worker process.

One worker serves the module: /health is polled while it starts (503 while it recovers, then
200), the contract examples are replayed, /metrics is read before and after, `shipguard order`
asks for orders, and `shipguard publish` sends a file that then shows up in the worker.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest

from streams.cli.supervise import WorkerProcess, wait_idle
from streams.kafka.embedded import EmbeddedBroker, free_port
from tests.factories import order_paid
from tests.unit.test_metrics import parse, values

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"
APP_ID = "shipguard-web"


def get(url: str) -> tuple[int, str, str]:
    """(status, content type, body) of a GET; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode("utf-8")
    except (urllib.error.URLError, OSError):
        return 0, "", ""


class HealthPoller(threading.Thread):
    """Asks /health every 50 ms and keeps each answer that differs from the one before."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.seen, self.stopping = url, [], threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            status, _, body = get(self.url)
            if status and (not self.seen or self.seen[-1][0] != status):
                self.seen.append((status, json.loads(body)))
            time.sleep(0.05)


def examples_stream(path: Path) -> None:
    """All contract examples as one replay file by event time, without their closing ticks: stream
    time stops at the last event (2026-03-04), so the orders are still open, with their history."""
    lines = [json.loads(line) for name in sorted(EXAMPLES.glob("*.jsonl"))
             for line in name.read_text(encoding="utf-8").splitlines() if line]
    events = sorted((item for item in lines if item["topic"] != "clock-ticks"),
                    key=lambda item: datetime.fromisoformat(item["at"]))
    path.write_text("\n".join(json.dumps(item, ensure_ascii=False) for item in events) + "\n", encoding="utf-8")


def metrics(base: str) -> dict:
    status, content_type, body = get(f"{base}/metrics")
    assert status == 200 and content_type.startswith("text/plain") and "version=0.0.4" in content_type
    return parse(body)


def cli(env: dict, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120, input=stdin)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Broker and worker; /health watched from before the worker's start until it is ready."""
    tmp = tmp_path_factory.mktemp("web")
    with EmbeddedBroker() as broker:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        worker = WorkerProcess(broker.url, tmp / "worker.log", app_id=APP_ID, web_port=port)
        poller = HealthPoller(f"{base}/health")
        poller.start()
        try:
            with worker:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and (not poller.seen or poller.seen[-1][0] != 200):
                    time.sleep(0.1)
                poller.stopping.set()
                yield {"base": base, "broker": broker, "worker": worker, "health": list(poller.seen),
                       "env": {**worker.env}, "tmp": tmp}
        finally:
            poller.stopping.set()


@pytest.fixture(scope="module")
def replayed(run):
    """The examples replayed and processed, with /metrics read before and after."""
    before = metrics(run["base"])
    stream = run["tmp"] / "examples.jsonl"
    examples_stream(stream)
    replay = cli(run["env"], "replay", str(stream), "--quiet")
    assert replay.returncode == 0, replay.stderr
    wait_idle([run["broker"].bootstrap], APP_ID, timeout=90)
    return {"before": before, "after": metrics(run["base"]), "lines": stream.read_text().splitlines()}


def test_health_answers_503_recovering_while_the_worker_starts_then_200_ok(run):
    statuses = [status for status, _ in run["health"]]
    assert statuses[0] == 503 and run["health"][0][1] == {"status": "recovering"}, run["health"]
    assert statuses[-1] == 200 and run["health"][-1][1]["status"] == "ok"
    assert statuses.index(200) > statuses.index(503)
    status, content_type, body = get(f"{run['base']}/health")
    assert status == 200 and content_type.startswith("application/json")
    assert json.loads(body)["assigned_partitions"] == 8


def test_metrics_counters_move_after_a_replay(replayed):
    before, after = replayed["before"], replayed["after"]
    paid = sum(1 for line in replayed["lines"] if json.loads(line)["topic"] == "order-paid")

    def consumed(families, topic):
        return sum(values(families["shipguard_events_consumed_total"], topic=topic))

    assert consumed(after, "order-paid") - consumed(before, "order-paid") == paid
    assert values(after["shipguard_outputs_total"], topic="violation-warnings", rule="SHIP_OVERDUE",
                  stage="VIOLATION") == [1]
    assert sum(values(after["shipguard_outputs_total"], topic="cancellation-outcomes")) == 2
    assert values(after["shipguard_open_orders"])[0] >= 7
    assert values(after["shipguard_ready"]) == [1]
    assert sum(values(after["shipguard_consumer_lag"])) == 0
    assert {s[1]["topic"] for s in after["shipguard_consumer_lag"]["samples"]} >= {"order-paid", "tracking-scans"}


def test_shipguard_order_prints_an_orders_state_and_timeline(run, replayed):
    result = cli(run["env"], "order", "EX03", "--url", run["base"])
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("order EX03  (open; partition ")
    assert "recipient 张* 138****5678" in text and "张三" not in text and "13812345678" not in text
    timeline = text.split("timeline\n", 1)[1]
    assert timeline.index(" PAID ") < timeline.index(" WARNING ") < timeline.index(" UPLOAD ") < \
        timeline.index(" SCAN ")
    assert "SHIP_OVERDUE" in timeline and " RESOLVED " in timeline


def test_shipguard_order_of_a_closed_order_says_its_history_was_dropped(run, replayed):
    result = cli(run["env"], "order", "EX04", "--url", run["base"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("order EX04  (closed; partition ") and "history was dropped" in result.stdout


def test_shipguard_order_of_an_unknown_order_names_its_partition(run, replayed):
    result = cli(run["env"], "order", "NO-SUCH-ORDER", "--url", run["base"])
    assert result.returncode == 1
    assert "NO-SUCH-ORDER" in result.stderr and "partition" in result.stderr


def test_shipguard_order_without_a_worker_says_so(run):
    result = cli(run["env"], "order", "EX04", "--url", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1 and "no worker answered" in result.stderr


def test_shipguard_publish_sends_nothing_when_a_line_is_bad_and_the_good_lines_with_skip_bad(run, replayed):
    good = order_paid("WEB1").model_dump_json()
    path = run["tmp"] / "orders.jsonl"
    path.write_text(good + "\n" + '{"order_id": "WEB2"}\n', encoding="utf-8")
    refused = cli(run["env"], "publish", "order-paid", str(path))
    assert refused.returncode == 1
    assert f"{path}:2: " in refused.stderr and "event_id" in refused.stderr and "nothing sent" in refused.stderr
    wait_idle([run["broker"].bootstrap], APP_ID, timeout=60)
    unknown = cli(run["env"], "order", "WEB1", "--url", run["base"])
    assert unknown.returncode == 1 and "WEB1" in unknown.stderr and "partition" in unknown.stderr, "nothing was sent"

    sent = cli(run["env"], "publish", "order-paid", str(path), "--skip-bad")
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.strip() == "published 1 records to order-paid from 1 lines, 1 bad lines skipped"
    wait_idle([run["broker"].bootstrap], APP_ID, timeout=60)
    shown = cli(run["env"], "order", "WEB1", "--url", run["base"])
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("order WEB1  (open") and " PAID " in shown.stdout
