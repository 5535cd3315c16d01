"""`shipguard simulate`: write a realistic event stream (EVENTS.jsonl) and its answer key (LABELS.json)."""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from schemas.types import parse_time
from simulator import output
from simulator.check import Engine, run_check
from simulator.generator import (
    DEFAULT_CANCEL_SHARE,
    DEFAULT_FAULT_SHARE,
    DEFAULT_START,
    VARIANTS,
    Simulation,
    SimulationConfig,
    SimulationError,
    generate,
    spread_faults,
)
from simulator.labels import RULES, STAGES

DESCRIPTION = """\
Write a deterministic, realistic stream of shipguard input events and the labels that say what
the contract requires on violation-warnings for every order, on cancellation-outcomes for every
request and on shop-alerts for every shop.

Shops on douyin, taobao and tiktok take payments with an evening peak; merchants upload waybills
(SF, ZTO, YTO, ... numbers in each carrier's real format), couriers pick parcels up and scan them
through real sorting centres to buyers all over China, remote provinces included. A share of the
orders gets exactly one injected fault, spread over the contract's ten rules; another share gets
cancellation requests. Every clean order keeps hours away from every threshold, so it must
trigger nothing.

EVENTS.jsonl: one message a line, {"at", "topic", "key", "value"}, sorted by event time, ending
with a clock tick 31 days after the last event: replay it with the worker in event clock mode.
LABELS.json: {"seed", "generator", "orders": {ORDER_ID: {"shop_id", "platform", "faults",
"variant", "expected": [{"rule", "stage", "occurred_at"}], "cancellations": [{"event_id",
"reason", "variant", "expected_decision", "expected_code"}]}}, "counts": {RULE: {STAGE: n}},
"injected": {RULE: n}, "shop_alerts": [{"shop_id", "metric", "stage", "window_end"}] in time order,
"shop_alerts_unlabelled": [{"shop_id", "metric", "since", "reason"}] (where the contract leaves
a shop's alerts open: none of that shop and metric are labelled from `since` on)}; times in UTC.
"""

EXAMPLES = """\
examples:
  shipguard simulate --orders 10000 --days 7 --seed 42 --out events.jsonl --labels labels.json
  shipguard simulate --orders 500 --days 3 --seed 1 --out e.jsonl --labels l.json --fault-share 0.3
  shipguard simulate --orders 2000 --days 7 --seed 7 --out e.jsonl --labels l.json \\
      --faults SHIP_OVERDUE=0.05,NO_PICKUP=0.02 --shops 20 --start 2026-06-18T00:00:00+08:00

rules for --faults: """ + ", ".join(RULES)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is less than 1")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number such as 0.1") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not a share between 0 and 1")
    return value


def _time(text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_faults(text: str) -> dict[str, float]:
    """`SHIP_OVERDUE=0.05,NO_PICKUP=0.02` -> {rule: share of orders}."""
    faults: dict[str, float] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        rule, sep, share = item.partition("=")
        rule = rule.strip().upper()
        if not sep:
            raise argparse.ArgumentTypeError(f"{item!r}: expected RULE=SHARE, e.g. NO_PICKUP=0.02")
        if rule not in RULES:
            raise argparse.ArgumentTypeError(f"{rule!r} is not a rule; rules: {', '.join(RULES)}")
        faults[rule] = _share(share.strip())
    if sum(faults.values()) > 1.0:
        raise argparse.ArgumentTypeError("the shares add up to more than 1")
    return faults


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of `shipguard simulate` on `parser`."""
    parser.description = DESCRIPTION
    parser.epilog = EXAMPLES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--orders", type=_positive_int, required=True, metavar="N",
                        help="how many orders to pay, e.g. --orders 10000")
    parser.add_argument("--days", type=_positive_int, required=True, metavar="D",
                        help="over how many days payments spread from --start, e.g. --days 7 "
                             "(parcels keep moving for days after)")
    parser.add_argument("--seed", type=int, required=True, metavar="S",
                        help="random seed: the same arguments give byte-identical files, e.g. --seed 42")
    parser.add_argument("--out", type=Path, required=True, metavar="EVENTS.jsonl",
                        help="where to write the events, e.g. --out events.jsonl")
    parser.add_argument("--labels", type=Path, required=True, metavar="LABELS.json",
                        help="where to write the labels, e.g. --labels labels.json")
    parser.add_argument("--start", type=_time, default=DEFAULT_START, metavar="TIME",
                        help="first possible payment, ISO-8601 with a UTC offset; events are written in "
                             "that offset, e.g. --start 2026-03-02T00:00:00+08:00 (the default)")
    faults = parser.add_mutually_exclusive_group()
    faults.add_argument("--fault-share", type=_share, default=None, metavar="F",
                        help=f"share of orders that get one injected fault, spread equally over the ten "
                             f"rules, e.g. --fault-share 0.1 (default {DEFAULT_FAULT_SHARE})")
    faults.add_argument("--faults", type=parse_faults, default=None, metavar="RULE=SHARE,...",
                        help="share of orders per rule instead, other rules none, e.g. "
                             "--faults SHIP_OVERDUE=0.05,NO_PICKUP=0.02")
    parser.add_argument("--shops", type=_positive_int, default=12, metavar="K",
                        help="how many shops (the first three are douyin, taobao, tiktok, the rest drawn), "
                             "e.g. --shops 12 (the default)")
    parser.add_argument("--cancel-share", type=_share, default=DEFAULT_CANCEL_SHARE, metavar="F",
                        help="share of orders, all without a fault, that get cancellation requests (all four "
                             f"reasons, approved and rejected), e.g. --cancel-share {DEFAULT_CANCEL_SHARE} "
                             "(the default)")
    parser.add_argument("--problem-shop-share", type=_share, default=0.0, metavar="F",
                        help="make two shops cross the shop-alert thresholds: in the first half of the run, this "
                             "share of the second-largest shop's orders is never dispatched or dispatched late "
                             "(SHIP_OVERDUE), and of the third-largest shop's orders cancelled as out of stock, "
                             "e.g. --problem-shop-share 0.08 (default 0: no problem shops)")
    parser.add_argument("--check", action="store_true",
                        help="then replay the stream through the worker's logic in process and print precision "
                             "and recall per rule and stage against the labels (exit 1 on any difference), "
                             "e.g. --orders 10000 --days 7 --seed 1 --check")
    parser.add_argument("--duplicate-share", type=_share, default=0.0, metavar="F",
                        help="share of messages delivered twice (same event_id, as at-least-once delivery "
                             "does); labels do not change, e.g. --duplicate-share 0.01 (default 0)")


def config_from(args: argparse.Namespace) -> SimulationConfig:
    """The simulation that parsed arguments ask for."""
    faults = args.faults if args.faults is not None else spread_faults(
        DEFAULT_FAULT_SHARE if args.fault_share is None else args.fault_share)
    return SimulationConfig(orders=args.orders, days=args.days, seed=args.seed, start=args.start,
                            shops=args.shops, faults=faults, cancel_share=args.cancel_share,
                            duplicate_share=args.duplicate_share,
                            problem_shop_share=getattr(args, "problem_shop_share", 0.0))


def _write(path: Path, data: bytes) -> None:
    """Write a file whole or not at all: a reader never sees half of it."""
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def summary(sim: Simulation) -> list[str]:
    """The lines printed at the end of a run, before the files written."""
    cfg = sim.config
    platforms = Counter(s.platform for s in sim.shops)
    topics = Counter({"order-paid": len(sim.orders),
                      "waybill-uploaded": sum(len(o.uploads) for o in sim.orders),
                      "tracking-scans": sum(len(b) for b in sim.world.scans.values()),
                      "cancellation-requests": sum(len(o.cancellations) for o in sim.orders)})
    faulty = [o for o in sim.orders if o.fault]
    stages = Counter(s.stage for v in sim.verdicts.values() for s in v.stages)
    decisions = Counter(d.decision for v in sim.verdicts.values() for d in v.decisions)
    lines = [
        f"simulated {cfg.orders} orders paid over {cfg.days} days from {cfg.start.isoformat()}, seed {cfg.seed}, "
        f"{len(sim.shops)} shops ({', '.join(f'{n} {p}' for p, n in sorted(platforms.items()))})",
        f"events: {sum(topics.values())} messages ({', '.join(f'{t} {n}' for t, n in topics.items())}) "
        f"and 1 closing clock tick",
        f"faults injected into {len(faulty)} orders:",
    ]
    for rule in RULES:
        mine = [o for o in faulty if o.fault == rule]
        if mine:
            variants = Counter(o.variant for o in mine)
            lines.append(f"  {rule:<22} {len(mine):>6}  ("
                         + ", ".join(f"{v} {variants[v]}" for v in VARIANTS[rule] if variants[v]) + ")")
    lines.append(f"expected on violation-warnings: {sum(stages.values())} stages ("
                 + ", ".join(f"{s} {stages[s]}" for s in STAGES) + ")")
    cancelled = sum(1 for o in sim.orders if o.cancellations)
    lines.append(f"cancellation requests: {topics['cancellation-requests']} on {cancelled} orders "
                 f"(APPROVED {decisions['APPROVED']}, REJECTED {decisions['REJECTED']})")
    alerts, unlabelled = output.shop_alerts(sim)
    by_metric = Counter((a["metric"], a["stage"]) for a in alerts)
    lines.append(f"expected on shop-alerts: {len(alerts)} ("
                 + ", ".join(f"{m} {s} {n}" for (m, s), n in sorted(by_metric.items())) + ")"
                 + (f", {len(unlabelled)} shop metrics left open from some instant on" if unlabelled else ""))
    return lines


def run(args: argparse.Namespace, new_engine: Callable[[], Engine] | None = None) -> int:
    """Generate, write both files, print a summary; 0 on success, 2 when the request cannot be met.

    With --check, then replay the stream through a fresh engine from `new_engine` (the worker's
    logic in process, which `shipguard simulate` passes) and compare with the labels.
    """
    check = getattr(args, "check", False)
    if check and new_engine is None:
        print("shipguard simulate: error: --check replays the stream through the worker's logic, which the "
              "simulator alone does not have: run `shipguard simulate ... --check`", file=sys.stderr)
        return 2
    began = time.perf_counter()
    was_enabled = gc.isenabled()
    gc.disable()    # a batch of long-lived objects without cycles: the collector would only rescan them
    try:
        sim = generate(config_from(args))
        events, labels = output.render_events(sim), output.render_labels(sim)
    except SimulationError as exc:
        print(f"shipguard simulate: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if was_enabled:
            gc.enable()
    try:
        _write(args.out, events)
        _write(args.labels, labels)
    except OSError as exc:
        print(f"shipguard simulate: error: cannot write the output files: {exc}", file=sys.stderr)
        return 1
    for line in summary(sim):
        print(line)
    print(f"wrote {args.out} ({_size(len(events))}) and {args.labels} ({_size(len(labels))}) "
          f"in {time.perf_counter() - began:.1f} s")
    if check and new_engine is not None:
        return run_check(args.out, args.labels, new_engine)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m simulator`: the same options as `shipguard simulate` (--check only works there)."""
    parser = argparse.ArgumentParser(prog="python -m simulator")
    add_arguments(parser)
    return run(parser.parse_args(argv))
