"""`shipguard publish`: validate a JSONL file of input events and publish it to a topic.

A thin shell around pure functions (plan a publish: check every line, key it as the contract
says), so the unit tests run it without Kafka: the producer is made in `streams.cli.clients`
and can be passed in.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import orjson

from schemas import codec
from streams import topics as T
from streams.cli.clients import connect, make_producer
from streams.cli.subcommand import add_subcommand

# The contract's key of each input topic (clock ticks have none: one goes to every partition).
KEY_FIELDS: dict[str, str | None] = {
    T.ORDER_PAID: "order_id",
    T.WAYBILL_UPLOADED: "order_id",
    T.CANCELLATION_REQUESTS: "order_id",
    T.TRACKING_SCANS: "waybill_no",
    T.CLOCK_TICKS: None,
}
MAX_BAD_SHOWN = 50


def add_publish_parser(sub: Any) -> None:
    """Add the `publish` subcommand to the `shipguard` parser."""
    p = add_subcommand(
        sub, "publish", help="validate a JSONL file of input events and publish it to a topic",
        description="Read FILE (one JSON value per line, '-' for stdin), validate every line against TOPIC's "
                    "schema as the worker would, and list each bad line with its number and reason. If any "
                    "line is bad nothing is sent, unless --skip-bad. Records are keyed as the contract says "
                    "(order_id; waybill_no for tracking-scans; a clock tick goes to every partition) and sent "
                    "in file order.",
        epilog="examples:\n"
               "  shipguard publish order-paid orders.jsonl\n"
               "  shipguard publish tracking-scans scans.jsonl --skip-bad\n"
               "  cat ticks.jsonl | shipguard publish clock-ticks -\n")
    p.add_argument("topic", metavar="TOPIC", choices=tuple(KEY_FIELDS),
                   help=f"an input topic: {', '.join(KEY_FIELDS)}")
    p.add_argument("file", metavar="FILE", help="JSONL file, one record value per line ('-': stdin)")
    p.add_argument("--skip-bad", action="store_true", help="send the good lines even if some are bad")
    p.add_argument("--key-field", metavar="F", help="key each record by this field instead of the contract's key")
    p.add_argument("--broker", help="bootstrap URL (default SHIPGUARD_BROKER)")
    p.set_defaults(func=cmd_publish)


@dataclass
class Outbound:
    """One record to send (partition None: Kafka's key partitioner decides)."""

    line: int
    key: bytes | None
    value: bytes
    partition: int | None = None


@dataclass
class PublishPlan:
    """A file checked against a topic: what to send, and every bad line with its reason."""

    topic: str
    good: list[Outbound] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)
    lines: int = 0  # non-blank lines read


def _key(topic: str, value: dict, model: Any, key_field: str | None) -> str | None:
    name = key_field or KEY_FIELDS[topic]
    if name is None:
        return None
    # the model's value first: a waybill number normalised as the worker keys it
    found = getattr(model, name, None)
    if not isinstance(found, str):
        found = value.get(name)
    if isinstance(found, bool) or not isinstance(found, (str, int)) or found == "":
        raise codec.BadInput(f"{name}: missing, empty or not a string: it is the record's key")
    return str(found)


def plan_publish(topic: str, lines: Iterable[bytes], key_field: str | None = None) -> PublishPlan:
    """Check every line as the worker would decode it; blank lines are skipped."""
    plan = PublishPlan(topic)
    for number, raw in enumerate(lines, start=1):
        raw = raw.strip()
        if not raw:
            continue
        plan.lines += 1
        try:
            model = codec.decode_input(topic, raw)
            value = codec.loads(raw)
            key = _key(topic, value, model, key_field)
        except codec.BadInput as exc:
            plan.bad.append((number, _hint(raw, str(exc))))
            continue
        plan.good.append(Outbound(number, key.encode("utf-8") if key is not None else None, orjson.dumps(value)))
    return plan


def _hint(raw: bytes, reason: str) -> str:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return reason
    if isinstance(value, dict) and "topic" in value and ("value" in value or "raw" in value):
        return reason + " (this looks like a replay line {topic, key, value}: use `shipguard replay`)"
    return reason


def send_plan(plan: PublishPlan, producer: Any, partitions: int | None = None) -> tuple[int, list[str]]:
    """Send the plan's good records in order: (records sent, errors). A clock tick goes to every
    partition (`partitions` of them, asked of the broker when not given)."""
    if plan.topic == T.CLOCK_TICKS and partitions is None:
        partitions = len(producer.partitions_for(plan.topic) or ())
        if not partitions:
            return 0, [f"topic {plan.topic} has no partitions on the broker"]
    futures = []
    for item in plan.good:
        targets = range(partitions or 0) if plan.topic == T.CLOCK_TICKS else [item.partition]
        for partition in targets:
            futures.append((item.line, producer.send(plan.topic, key=item.key, value=item.value,
                                                     partition=partition)))
    producer.flush()
    errors = []
    for line, future in futures:
        try:
            future.get(timeout=30)
        except Exception as exc:  # noqa: BLE001 - report each failure with its line
            errors.append(f"line {line}: not sent: {exc}")
    return len(futures) - len(errors), errors


def _read_lines(file: str) -> list[bytes]:
    if file == "-":
        return sys.stdin.buffer.read().splitlines()
    return Path(file).read_bytes().splitlines()


def cmd_publish(args: argparse.Namespace, producer: Any = None, out: TextIO | None = None,
                err: TextIO | None = None) -> int:
    """`shipguard publish`: returns an exit code."""
    out, err = out or sys.stdout, err or sys.stderr
    if args.topic == T.CLOCK_TICKS and args.key_field:
        print("shipguard publish: clock ticks have no key (each goes to every partition); drop --key-field",
              file=err)
        return 2
    try:
        lines = _read_lines(args.file)
    except OSError as exc:
        print(f"shipguard publish: cannot read {args.file}: {exc.strerror or exc}", file=err)
        return 2
    plan = plan_publish(args.topic, lines, args.key_field)
    for number, reason in plan.bad[:MAX_BAD_SHOWN]:
        print(f"{args.file}:{number}: {reason}", file=err)
    if len(plan.bad) > MAX_BAD_SHOWN:
        print(f"... and {len(plan.bad) - MAX_BAD_SHOWN} more bad lines", file=err)
    if plan.bad and not args.skip_bad:
        print(f"shipguard publish: nothing sent: {len(plan.bad)} of {plan.lines} lines are bad for {args.topic} "
              f"(fix them, or send the {len(plan.good)} good ones with --skip-bad)", file=err)
        return 1
    if not plan.good:
        print(f"shipguard publish: nothing to send ({plan.lines} lines, {len(plan.bad)} bad)", file=err)
        return 1 if plan.bad else 0
    own = producer is None
    if producer is None:
        producer, code = connect("publish", make_producer, args.broker, err)
        if producer is None:
            return code
    try:
        sent, errors = send_plan(plan, producer)
    finally:
        if own:
            producer.close()
    for error in errors[:MAX_BAD_SHOWN]:
        print(error, file=err)
    skipped = f", {len(plan.bad)} bad lines skipped" if plan.bad else ""
    failed = f", {len(errors)} failed" if errors else ""
    print(f"published {sent} records to {args.topic} from {len(plan.good)} lines{skipped}{failed}", file=out)
    return 1 if errors else 0
