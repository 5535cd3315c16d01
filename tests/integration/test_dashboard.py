"""`shipguard dashboard` as a real process against a real embedded broker.

Output records are published directly (the worker is not needed to test the dashboard's
reading, auth and streaming; the browser test runs a real worker and replay). One broker and
one dashboard serve the module; each test publishes its own orders.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from streams.cli.supervise import read_topic, stop_group
from streams.kafka import admin
from streams.kafka.embedded import EmbeddedBroker, free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TOKEN = "it-s3cret-token"
TOPICS = ("violation-warnings", "cancellation-outcomes", "shop-alerts")


class DashboardProcess:
    """A `shipguard dashboard` subprocess on a free port, with its own log file."""

    def __init__(self, broker_url: str, log_path: Path, *, token: str | None = None, hours: float = 24,
                 clock: str = "event", app_id: str = "shipguard-it") -> None:
        self.port = free_port()
        self.token = token
        self.log_path = log_path
        self.command = [sys.executable, "-m", "streams.cli", "dashboard", "--port", str(self.port),
                        "--hours", str(hours)]
        self.env = {**os.environ, "SHIPGUARD_BROKER": broker_url, "SHIPGUARD_CLOCK": clock,
                    "SHIPGUARD_APP_ID": app_id, "PYTHONUNBUFFERED": "1",
                    "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
        if token:
            self.env["SHIPGUARD_DASHBOARD_TOKEN"] = token  # not on the command line: `ps` shows that
        self.process: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> DashboardProcess:
        """Spawn it and wait until /healthz says its reader is live (caught up with the topics)."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dashboard exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                if get_json(self.base + "/healthz")["reader"] == "live":
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"dashboard not live after {timeout:.0f}s:\n{self.log_text()}")

    def state(self) -> dict[str, Any]:
        return get_json(self.base + "/api/state", self.token)

    def wait_state(self, condition, timeout: float = 15.0) -> dict[str, Any]:
        """Poll /api/state until `condition(state)` holds; the last state in the failure message."""
        deadline = time.monotonic() + timeout
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            state = self.state()
            if condition(state):
                return state
            time.sleep(0.1)
        raise AssertionError(f"state never matched; last totals {state.get('totals')}, records {state.get('records')}")

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM the process group, SIGKILL after `grace`; returns the exit code."""
        return stop_group(self.process, grace)

    def __enter__(self) -> DashboardProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def request(url: str, token: str | None = None, header: bool = True) -> tuple[int, dict[str, str], bytes]:
    """GET `url` (token as Bearer header, or as ?token= when header is False): status, headers, body."""
    if token and not header:
        url += ("&" if "?" in url else "?") + "token=" + token
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token and header else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def get_json(url: str, token: str | None = None) -> dict[str, Any]:
    status, _, body = request(url, token)
    if status != 200:
        raise ValueError(f"{url}: HTTP {status}")
    return json.loads(body)


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def warning(order: str, stage: str, at: datetime, *, rule: str = "SHIP_OVERDUE", shop: str = "shopD",
            deadline: datetime | None = None) -> dict[str, Any]:
    return {"warning_id": f"W-{order}-{rule}", "order_id": order, "shop_id": shop, "platform": "douyin",
            "rule": rule, "stage": stage, "severity": "medium", "occurred_at": iso(at),
            "deadline": iso(deadline) if deadline else None, "waybill_no": None,
            "evidence": {"ship_by": iso(at)}, "message": f"订单{order}须尽快发货。"}


def outcome(order: str, code: str, decision: str, at: datetime) -> dict[str, Any]:
    return {"request_event_id": f"R-{order}", "order_id": order, "shop_id": "shopD", "decision": decision,
            "reason": "OUT_OF_STOCK", "code": code, "explanation": "说明", "refund": None,
            "order_status": "PAID", "merchant_fault": False, "decided_at": iso(at)}


def publish(bootstrap: str, records: list[tuple[str, str, dict[str, Any]]], age: timedelta = timedelta(0)) -> None:
    """Send (topic, key, value) records with a timestamp `age` ago and wait for every ack."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=[bootstrap])
    try:
        stamp = int((time.time() - age.total_seconds()) * 1000)
        for topic, key, value in records:
            producer.send(topic, key=key.encode(), value=json.dumps(value, ensure_ascii=False).encode(),
                          timestamp_ms=stamp)
        producer.flush(timeout=10)
    finally:
        producer.close()


EVENT_TIME = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Iterator[dict[str, Any]]:
    """A broker holding a record older than the window and three recent ones, then a dashboard."""
    tmp = tmp_path_factory.mktemp("dashboard")
    with EmbeddedBroker() as broker:
        admin.ensure_topics(broker.bootstrap, TOPICS, 4)
        publish(broker.bootstrap, [("violation-warnings", "OLD1", warning("OLD1", "WARNING", EVENT_TIME,
                                                                        deadline=EVENT_TIME + timedelta(hours=6)))],
                age=timedelta(hours=30))
        publish(broker.bootstrap, [
            ("violation-warnings", "D1",
             warning("D1", "WARNING", EVENT_TIME, deadline=EVENT_TIME + timedelta(hours=6))),
            ("violation-warnings", "D2",
             warning("D2", "WARNING", EVENT_TIME, deadline=EVENT_TIME + timedelta(hours=2))),
            ("cancellation-outcomes", "D3", outcome("D3", "IN_TRANSIT", "REJECTED", EVENT_TIME)),
        ])
        with DashboardProcess(broker.url, tmp / "dashboard.log", token=TOKEN, hours=24) as dashboard:
            yield {"broker": broker, "dashboard": dashboard}


def test_the_page_and_the_data_need_the_token_and_take_it_as_a_bearer_header_or_a_query_parameter(setup):
    base = setup["dashboard"].base
    for path in ("/", "/api/state", "/events"):
        status, headers, _ = request(base + path)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer"), path
        assert request(base + path, "wrong-token")[0] == 401, path
    status, _, body = request(base + "/", TOKEN)
    assert status == 200 and b"shipguard" in body and b"static/app.js" in body
    assert request(base + "/api/state", TOKEN, header=False)[0] == 200


def test_static_assets_and_the_health_check_carry_no_data_and_need_no_token(setup):
    base = setup["dashboard"].base
    for name in ("app.js", "style.css", "index.html"):
        status, _, body = request(f"{base}/static/{name}")
        assert status == 200 and body, name
    assert get_json(base + "/healthz")["status"] == "ok"


def test_it_reads_the_records_of_the_last_hours_and_skips_older_ones(setup):
    on_topic = {r["order_id"] for r in read_topic([setup["broker"].bootstrap], "violation-warnings")}
    assert {"OLD1", "D1", "D2"} <= on_topic, "the old record is on the topic, for the dashboard to skip"
    state = setup["dashboard"].state()
    orders = {row["order_id"] for row in state["open_warnings"]}
    assert "OLD1" not in orders and {"D1", "D2"} <= orders
    assert [row["order_id"] for row in state["open_warnings"]][:2] == ["D2", "D1"], "soonest deadline first"
    in_transit = next(row for row in state["outcomes"] if row["code"] == "IN_TRANSIT")
    assert in_transit["REJECTED"] == 1


def test_events_streams_the_state_first_then_each_new_record_as_it_is_published(setup):
    dashboard, broker = setup["dashboard"], setup["broker"]
    connection = http.client.HTTPConnection("127.0.0.1", dashboard.port, timeout=15)
    try:
        connection.request("GET", "/events", headers={"Authorization": f"Bearer {TOKEN}"})
        response = connection.getresponse()
        assert response.status == 200 and response.getheader("Content-Type").startswith("text/event-stream")
        first = next_event(response)
        assert first[0] == "state" and first[1]["records"] >= 3 and "feed" in first[1]
        publish(broker.bootstrap, [
            ("violation-warnings", "D4", warning("D4", "VIOLATION", EVENT_TIME + timedelta(hours=2))),
            ("violation-warnings", "D2", warning("D2", "VIOLATION", EVENT_TIME + timedelta(hours=2))),
        ])
        seen: set[str] = set()
        deadline = time.monotonic() + 15
        while not {"D4", "D2"} <= seen and time.monotonic() < deadline:
            name, data = next_event(response)
            if name == "feed":
                seen |= {item["order_id"] for item in data}
        assert {"D4", "D2"} <= seen
    finally:
        connection.close()
    state = dashboard.wait_state(lambda s: s["totals"]["violations"] >= 2)
    assert "D2" not in {row["order_id"] for row in state["open_warnings"]}, "a VIOLATION closes its WARNING"


def test_a_record_that_is_not_valid_json_is_counted_and_the_dashboard_goes_on(setup):
    dashboard, broker = setup["dashboard"], setup["broker"]
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=[broker.bootstrap])
    producer.send("shop-alerts", key=b"shopD", value=b"{not json")
    producer.flush(timeout=10)
    producer.close()
    publish(broker.bootstrap, [("cancellation-outcomes", "D5", outcome("D5", "APPROVED", "APPROVED", EVENT_TIME))])
    state = dashboard.wait_state(lambda s: s["totals"]["approved"] >= 1 and s["dropped"].get("bad_records"))
    assert state["dropped"]["bad_records"] == 1
    assert "dashboard bad record topic=shop-alerts" in dashboard.log_text()


def test_it_logs_key_value_lines_without_the_token_and_stops_cleanly_on_sigterm(tmp_path, setup):
    broker = setup["broker"]
    second = DashboardProcess(broker.url, tmp_path / "second.log", token=TOKEN).start()
    assert request(second.base + "/", TOKEN)[0] == 200
    assert second.stop() == 0
    log = second.log_text()
    assert "dashboard listening url=http://127.0.0.1:" in log and "auth=token" in log
    assert "dashboard caught up records=" in log and "dashboard stopped records=" in log
    assert TOKEN not in log and "Traceback" not in log


def next_event(response: http.client.HTTPResponse) -> tuple[str, Any]:
    """The next server-sent event as (name, decoded data)."""
    name, data = "message", []
    while True:
        line = response.readline().decode("utf-8")
        if not line:
            raise EOFError("the event stream ended")
        line = line.rstrip("\n")
        if not line:
            if data:
                return name, json.loads("\n".join(data))
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
