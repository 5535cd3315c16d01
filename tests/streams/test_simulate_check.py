"""`shipguard simulate --check`: the worker's logic matches the simulator's independent labels."""

import subprocess
import sys

from simulator.check import check
from streams.inprocess.engine import InProcessEngine
from streams.rules_file import load_rules
from tests.streams.test_state_lifetime import simulated


def test_every_rule_and_every_cancellation_matches_the_labels_with_faults_cancellations_and_duplicates(tmp_path):
    events, labels = tmp_path / "events.jsonl", tmp_path / "labels.json"
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "simulate", "--orders", "800", "--days", "4", "--seed", "21",
         "--fault-share", "0.5", "--cancel-share", "0.1", "--duplicate-share", "0.05",
         "--out", str(events), "--labels", str(labels), "--check"],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "check: every expected stage emitted and nothing else" in done.stdout
    for rule in ("SHIP_OVERDUE", "WAYBILL_INVALID", "WAYBILL_REUSED", "NO_PICKUP", "STALLED_AFTER_PICKUP",
                 "TRACKING_STALLED", "ADDRESS_MISMATCH", "PICKUP_BEFORE_PAYMENT", "NOT_DELIVERED",
                 "EXPRESS_STOP_REMARK"):
        assert f"| {rule} |" in done.stdout, f"{rule} was not exercised"


def test_the_check_reports_a_difference_when_a_label_is_missing(tmp_path):
    import json

    events, labels = tmp_path / "events.jsonl", tmp_path / "labels.json"
    events.write_text("\n".join(simulated(60, 2, 5, fault_share=0.5, cancel_share=0)) + "\n", encoding="utf-8")
    subprocess.run([sys.executable, "-m", "streams.cli", "simulate", "--orders", "60", "--days", "2", "--seed", "5",
                    "--fault-share", "0.5", "--cancel-share", "0", "--out", str(events), "--labels", str(labels)],
                   check=True, capture_output=True)
    data = json.loads(labels.read_text(encoding="utf-8"))
    victim = next(order for order in data["orders"].values() if order["expected"])
    victim["expected"].pop()
    report = check(events, data, lambda: InProcessEngine(load_rules()))
    assert not report.perfect and len(report.extra) == 1
