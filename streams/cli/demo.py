"""`shipguard demo` (what `make run` does): a broker, a worker, a simulated shop-week, live warnings.

Starts the embedded broker on a free loopback port and one worker in event-clock mode,
simulates a week of orders with injected faults, replays it, prints every warning as it
arrives on `violation-warnings`, then a summary by rule and stage next to what the simulator
expected, and stops everything it started (also on Ctrl-C). Its broker is plaintext, so its
clients and its worker talk PLAINTEXT whatever SHIPGUARD_SECURITY_PROTOCOL the shell has.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from schemas import codec

BEIJING = timezone(timedelta(hours=8))
APP_ID = "shipguard-demo"
MAX_ROWS = 60


def _simulate(orders: int, days: int, seed: int, out: Path, labels: Path) -> dict:
    from simulator.cli import add_arguments, run

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--orders", str(orders), "--days", str(days), "--seed", str(seed),
                              "--out", str(out), "--labels", str(labels)])
    code = run(args)
    if code != 0:
        raise RuntimeError(f"simulate failed with exit code {code}")
    return json.loads(labels.read_text(encoding="utf-8"))


class Watcher(threading.Thread):
    """Reads violation-warnings from the beginning and prints a table row per warning."""

    def __init__(self, bootstrap: list[str]) -> None:
        super().__init__(daemon=True)
        self.bootstrap = bootstrap
        self.seen: list[dict] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        """Print a row per warning until `stopping` is set."""
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                 client_id="shipguard-demo-watch")
        partitions = [TopicPartition("violation-warnings", p)
                      for p in sorted(consumer.partitions_for_topic("violation-warnings") or [])]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        print(f"{'occurred (Beijing)':<17} {'order':<12} {'shop':<8} {'rule':<22} {'stage':<9} message")
        try:
            while not self.stopping.is_set():
                for records in consumer.poll(timeout_ms=200).values():
                    for record in records:
                        self.show(codec.loads(record.value))
        finally:
            consumer.close()

    def show(self, warning: dict) -> None:
        """Keep `warning` for the summary; print its row (the first MAX_ROWS only)."""
        self.seen.append(warning)
        if len(self.seen) > MAX_ROWS:
            if len(self.seen) == MAX_ROWS + 1:
                print("... more warnings arrive; the summary below counts them all")
            return
        when = datetime.fromisoformat(warning["occurred_at"]).astimezone(BEIJING).strftime("%m-%d %H:%M")
        print(f"{when:<17} {warning['order_id'][:12]:<12} {warning['shop_id'][:8]:<8} {warning['rule']:<22} "
              f"{warning['stage']:<9} {warning['message'][:48]}", flush=True)


def summary(seen: list[dict], labels: dict) -> str:
    """Emitted stages by rule next to what the simulator labelled."""
    got = Counter((w["rule"], w["stage"]) for w in seen)
    want: Counter = Counter()
    for order in labels.get("orders", {}).values():
        for item in order.get("expected", []):
            want[(item["rule"], item["stage"])] += 1
    rows = [f"{'rule':<22} {'stage':<9} {'emitted':>8} {'simulator expected':>19}"]
    for rule, stage in sorted(set(got) | set(want)):
        rows.append(f"{rule:<22} {stage:<9} {got[(rule, stage)]:>8} {want[(rule, stage)]:>19}")
    rows.append(f"{'total':<32} {sum(got.values()):>8} {sum(want.values()):>19}")
    return "\n".join(rows)


def start_dashboard(broker_url: str, port: int, log_path: Path, env: dict[str, str]) -> Any:
    """`shipguard dashboard` on 127.0.0.1:`port` (event clock), once it answers; None if it does not."""
    import subprocess
    import urllib.request

    log = open(log_path, "ab")
    process = subprocess.Popen([sys.executable, "-m", "streams.cli", "dashboard", "--port", str(port),
                                "--broker", broker_url, "--clock", "event"],
                               env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return process
        except OSError:
            time.sleep(0.2)
    print(f"      the dashboard did not start (log: {log_path}); going on without it", file=sys.stderr)
    process.kill()
    return None


def run_demo(orders: int = 300, days: int = 7, seed: int = 7, follow: bool = False) -> int:
    """Run the whole demo; returns an exit code."""
    from streams.cli.replay import replay
    from streams.cli.supervise import WorkerFailed, WorkerProcess, wait_idle
    from streams.config import load_settings
    from streams.kafka.compat import create_topics_up_front
    from streams.kafka.embedded import BrokerError, EmbeddedBroker, free_port
    from streams.kafka.security import PLAINTEXT_ENV

    work = Path(tempfile.mkdtemp(prefix="shipguard-demo-"))
    events, label_path = work / "events.jsonl", work / "labels.json"
    print(f"[1/5] simulating {orders} orders over {days} days (seed {seed}) -> {events}")
    labels = _simulate(orders, days, seed, events, label_path)
    try:
        broker = EmbeddedBroker().start()
    except BrokerError as exc:
        print(f"shipguard demo: {exc}", file=sys.stderr)
        return 2
    worker = None
    watcher = None
    dashboard = None
    try:
        print(f"[2/5] embedded broker on {broker.url}")
        settings = load_settings({**os.environ, **PLAINTEXT_ENV}, broker=broker.url, app_id=APP_ID)
        create_topics_up_front(settings)
        worker = WorkerProcess(broker.url, work / "worker.log", app_id=APP_ID, web_port=free_port(),
                               extra_env=PLAINTEXT_ENV)
        print("[3/5] starting a worker (event clock) ...", flush=True)
        worker.start(timeout=90)
        print(f"      worker ready in {worker.ready_after:.1f}s (log: {worker.log_path})")
        port = free_port()
        dashboard = start_dashboard(broker.url, port, work / "dashboard.log", PLAINTEXT_ENV)
        url = f"http://127.0.0.1:{port}/"
        if dashboard is not None:
            print(f"      dashboard: {url} (live while the replay runs)")
        watcher = Watcher([broker.bootstrap])
        watcher.start()
        print(f"[4/5] replaying {events.name}")
        report = replay(events, [broker.bootstrap], settings.partitions, progress=True)
        print(f"      {report.summary()}")
        idle = wait_idle([broker.bootstrap], APP_ID, timeout=300)
        total = report.total
        elapsed = report.seconds + idle
        print(f"      worker caught up {idle:.1f}s after the replay: {total / elapsed:,.0f} events/s end to end")
        time.sleep(1.0)
        watcher.stopping.set()
        watcher.join(timeout=5)
        print("\n[5/5] summary by rule and stage")
        print(summary(watcher.seen, labels))
        if dashboard is not None:
            print(f"\ndashboard: {url}")
        if follow:
            print(f"broker {broker.url}, the worker and the dashboard keep running; Ctrl-C to stop")
            while True:
                time.sleep(3600)
        return 0
    except WorkerFailed as exc:
        print(f"shipguard demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if watcher is not None:
            watcher.stopping.set()
        if dashboard is not None:
            dashboard.terminate()
            try:
                dashboard.wait(timeout=5)
            except Exception:
                dashboard.kill()
        if worker is not None:
            worker.stop()
        broker.stop()
        print("stopped the dashboard, the worker and the broker")
