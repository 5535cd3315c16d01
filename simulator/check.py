"""`shipguard simulate --check`: the worker's logic against the simulator's labels, per rule and stage.

The simulated stream is replayed through the worker's own Shell and processors in process (an
`Engine` that the caller passes: `shipguard simulate` passes `streams.inprocess.engine`'s, the
contract's one-record-at-a-time reading; the simulator does not import the worker); every emitted
(order, rule, stage, occurred_at) is compared with the labels, which the simulator computed from
its own, independent reading of the contract. Precision = matched / emitted, recall = matched /
expected, per rule and stage; cancellation outcomes are compared as (order, decision, code), shop
alerts as (shop, metric, stage, window_end) (none of a shop and metric from the instant the labels
leave it open, `shop_alerts_unlabelled`).

`compare` is the comparison alone, for outputs read from anywhere: `bench` applies it to the
records a worker wrote to the Kafka topics.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from schemas.types import format_time, parse_time

RULE_ORDER = ("SHIP_OVERDUE", "WAYBILL_INVALID", "WAYBILL_REUSED", "NO_PICKUP", "STALLED_AFTER_PICKUP",
              "TRACKING_STALLED", "ADDRESS_MISMATCH", "PICKUP_BEFORE_PAYMENT", "NOT_DELIVERED",
              "EXPRESS_STOP_REMARK")
STAGES = ("WARNING", "VIOLATION", "RESOLVED")


class Engine(Protocol):
    """The worker's logic in process, as the check uses it (`streams.inprocess.engine.InProcessEngine`)."""

    @property
    def log(self) -> Mapping[str, Mapping[int, Sized]]:
        """Every record published, per topic and partition."""
        ...

    async def run_file(self, path: Path) -> None:
        """Publish the lines of a JSONL event file in order, each read at once."""
        ...

    def output(self, topic: str) -> list[dict]:
        """The decoded values written to an output topic, in order."""
        ...


@dataclass
class CheckReport:
    """Per (rule, stage): expected, emitted, matched; plus the differences for debugging."""

    expected: Counter = field(default_factory=Counter)
    emitted: Counter = field(default_factory=Counter)
    matched: Counter = field(default_factory=Counter)
    missing: list[tuple] = field(default_factory=list)
    extra: list[tuple] = field(default_factory=list)
    outcomes_expected: int = 0
    outcomes_matched: int = 0
    outcomes_emitted: int = 0
    alerts_expected: int = 0
    alerts_emitted: int = 0
    alerts_matched: int = 0
    outcomes_missing: list[tuple] = field(default_factory=list)
    outcomes_extra: list[tuple] = field(default_factory=list)
    alerts_missing: list[tuple] = field(default_factory=list)
    alerts_extra: list[tuple] = field(default_factory=list)
    events: int = 0
    seconds: float = 0.0

    @property
    def perfect(self) -> bool:
        return not self.missing and not self.extra and self.outcomes_matched == self.outcomes_expected \
            == self.outcomes_emitted and not self.alerts_missing and not self.alerts_extra

    def table(self) -> str:
        """The precision/recall table (markdown)."""
        rows = ["| rule | stage | expected | emitted | precision | recall |", "|---|---|---:|---:|---:|---:|"]
        keys = sorted(set(self.expected) | set(self.emitted),
                      key=lambda k: (RULE_ORDER.index(k[0]) if k[0] in RULE_ORDER else 99, STAGES.index(k[1])))
        for key in keys:
            exp, emi, hit = self.expected[key], self.emitted[key], self.matched[key]
            precision = f"{100 * hit / emi:.1f}%" if emi else "-"
            recall = f"{100 * hit / exp:.1f}%" if exp else "-"
            rows.append(f"| {key[0]} | {key[1]} | {exp} | {emi} | {precision} | {recall} |")
        if self.outcomes_expected or self.outcomes_emitted:
            rows.append(f"| cancellation outcomes | | {self.outcomes_expected} | {self.outcomes_emitted} | "
                        f"{_pct(self.outcomes_matched, self.outcomes_emitted)} | "
                        f"{_pct(self.outcomes_matched, self.outcomes_expected)} |")
        rows.append(f"| shop alerts | | {self.alerts_expected} | {self.alerts_emitted} | "
                    f"{_pct(self.alerts_matched, self.alerts_emitted)} | "
                    f"{_pct(self.alerts_matched, self.alerts_expected)} |")
        return "\n".join(rows)


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _utc(text: str) -> str:
    """An instant written the contract's way (UTC, Z), whatever offset it came with: compare instants."""
    return format_time(parse_time(text))


def _alerts(labels: dict[str, Any], emitted: list[dict]) -> tuple[Counter, Counter]:
    """(wanted, got) shop alerts as (shop, metric, stage, window_end), without what the labels leave open."""
    open_from = {(u["shop_id"], u["metric"]): parse_time(u["since"])
                 for u in labels.get("shop_alerts_unlabelled", [])}

    def labelled(key: tuple) -> bool:
        since = open_from.get(key[:2])
        return since is None or parse_time(key[3]) < since

    wanted = Counter(key for key in ((a["shop_id"], a["metric"], a["stage"], _utc(a["window_end"]))
                                     for a in labels.get("shop_alerts", [])) if labelled(key))
    got = Counter(key for key in ((a["shop_id"], a["metric"], a["stage"], _utc(a["window_end"]))
                                  for a in emitted) if labelled(key))
    return wanted, got


def compare(labels: dict[str, Any], warnings: Iterable[dict], outcomes: Iterable[dict],
            alerts: Iterable[dict]) -> CheckReport:
    """Compare emitted outputs, wherever they were read from, with `labels`.

    `warnings`, `outcomes` and `alerts` are the decoded records of violation-warnings,
    cancellation-outcomes and shop-alerts (from the in-process engine, or read back from Kafka
    topics by `bench`). Warnings count as (order_id, rule, stage, occurred_at), outcomes as
    (order_id, decision, code), alerts as `_alerts` says; duplicates count as extras.
    """
    report = CheckReport()
    want = Counter((order_id, item["rule"], item["stage"], item["occurred_at"])
                   for order_id, order in labels["orders"].items() for item in order["expected"])
    got = Counter((w["order_id"], w["rule"], w["stage"], w["occurred_at"]) for w in warnings)
    for key, n in want.items():
        report.expected[key[1:3]] += n
    for key, n in got.items():
        report.emitted[key[1:3]] += n
    for key, n in (want & got).items():
        report.matched[key[1:3]] += n
    report.missing = sorted((want - got).elements())
    report.extra = sorted((got - want).elements())
    wanted_outcomes = Counter((order_id, c["expected_decision"], c["expected_code"])
                              for order_id, order in labels["orders"].items() for c in order.get("cancellations", []))
    got_outcomes = Counter((o["order_id"], o["decision"], o["code"]) for o in outcomes)
    report.outcomes_expected = sum(wanted_outcomes.values())
    report.outcomes_emitted = sum(got_outcomes.values())
    report.outcomes_matched = sum((wanted_outcomes & got_outcomes).values())
    report.outcomes_missing = sorted((wanted_outcomes - got_outcomes).elements())
    report.outcomes_extra = sorted((got_outcomes - wanted_outcomes).elements())
    wanted_alerts, got_alerts = _alerts(labels, list(alerts))
    report.alerts_expected = sum(wanted_alerts.values())
    report.alerts_emitted = sum(got_alerts.values())
    report.alerts_matched = sum((wanted_alerts & got_alerts).values())
    report.alerts_missing = sorted((wanted_alerts - got_alerts).elements())
    report.alerts_extra = sorted((got_alerts - wanted_alerts).elements())
    return report


def check(events: Path, labels: dict[str, Any], new_engine: Callable[[], Engine]) -> CheckReport:
    """Replay `events` through a fresh engine from `new_engine` and compare with `labels`."""
    engine = new_engine()
    began = time.perf_counter()
    asyncio.run(engine.run_file(events))
    seconds = time.perf_counter() - began
    report = compare(labels, engine.output("violation-warnings"), engine.output("cancellation-outcomes"),
                     engine.output("shop-alerts"))
    report.seconds = seconds
    report.events = sum(len(p) for topic in engine.log.values() for p in topic.values())
    return report


def differences(report: CheckReport, limit: int = 10) -> list[str]:
    """Human-readable lines for what differs (at most `limit` per kind), empty when nothing does."""
    lines = []
    for label, items in (("missing", report.missing), ("extra", report.extra),
                         ("missing outcome", report.outcomes_missing), ("extra outcome", report.outcomes_extra),
                         ("missing shop alert", report.alerts_missing), ("extra shop alert", report.alerts_extra)):
        for item in items[:limit]:
            lines.append(f"  {label}: {item}")
        if len(items) > limit:
            lines.append(f"  ... {len(items) - limit} more {label}")
    return lines


def run_check(events: Path, labels_path: Path, new_engine: Callable[[], Engine]) -> int:
    """Replay through a fresh engine from `new_engine` and print the table; 0 when every label
    matches and nothing else was emitted, else 1."""
    labels = json.loads(labels_path.read_text(encoding="utf-8"))
    report = check(events, labels, new_engine)
    print(f"\ncheck: replayed through the worker's logic in process in {report.seconds:.1f} s")
    print(report.table())
    for item in labels.get("shop_alerts_unlabelled", []):
        print(f"  shop alerts of {item['shop_id']} {item['metric']} not compared from {item['since']}: "
              f"{item['reason']}")
    for line in differences(report):
        print(line)
    print("check: every expected stage emitted and nothing else" if report.perfect
          else "check: differences found (see above)")
    return 0 if report.perfect else 1
