"""`shipguard tail`: follow a topic, one readable line per record.

A thin shell around pure functions (describe, redact and filter a record), so the unit tests run
it without Kafka: the consumer is made in `streams.cli.clients` and can be passed in. It never
prints a recipient's clear name, phone or address: `order-paid` recipients are masked as the
worker does (the topic itself carries them in clear).
"""

from __future__ import annotations

import argparse
import base64
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

import orjson

from schemas import codec
from schemas.types import format_time, parse_time
from streams import topics as T
from streams.cli.clients import connect, make_consumer
from streams.cli.subcommand import add_subcommand

DASH = "-"


def add_tail_parser(sub: Any) -> None:
    """Add the `tail` subcommand to the `shipguard` parser."""
    p = add_subcommand(
        sub, "tail", help="follow a topic, one readable line per record",
        description="Follow TOPIC from its end (or its beginning) and print one line per record: time (UTC), "
                    "stage, rule, order, shop and message. Filters combine. Ctrl-C stops and prints a count. "
                    "order-paid recipients are shown masked.",
        epilog="examples:\n"
               "  shipguard tail violation-warnings                       # new warnings as they are emitted\n"
               "  shipguard tail violation-warnings --from-beginning --shop shopA --rule SHIP_OVERDUE\n"
               "  shipguard tail dead-letters --from-beginning            # what was refused, and why\n"
               "  shipguard tail cancellation-outcomes --order 570001 --json | jq .value.code\n")
    p.add_argument("topic", metavar="TOPIC", help="any topic, e.g. violation-warnings, shop-alerts, dead-letters")
    p.add_argument("--shop", help="only records of this shop_id")
    p.add_argument("--order", help="only records of this order_id")
    p.add_argument("--rule", help="only this rule (or shop metric, or cancellation code)")
    p.add_argument("--from-beginning", action="store_true", help="start at the first record, not the end")
    p.add_argument("--json", action="store_true",
                   help="print {topic, partition, offset, key, value} per record (replayable) instead")
    p.add_argument("--limit", type=int, metavar="N", help="stop after N matching records")
    p.add_argument("--broker", help="bootstrap URL (default SHIPGUARD_BROKER)")
    p.set_defaults(func=cmd_tail)


@dataclass(frozen=True)
class Line:
    """One record as `tail` shows it."""

    at: str
    stage: str
    rule: str
    order: str
    shop: str
    message: str

    def __str__(self) -> str:
        return (f"{self.at:<20} {self.stage:<16} {self.rule:<24} {self.order:<14} {self.shop:<10} "
                f"{self.message}").rstrip()


HEADER = str(Line("time (UTC)", "stage", "rule", "order", "shop", "message"))


def _time(value: Any) -> str:
    try:
        return format_time(parse_time(value))
    except ValueError:
        return str(value) if value is not None else DASH


def _s(value: Any) -> str:
    return DASH if value is None or value == "" else str(value)


def redact(topic: str, value: Any) -> Any:
    """A record value fit to print: an order-paid recipient keeps region and masked forms only,
    and a dead letter of order-paid shows its original bytes the same way."""
    if not isinstance(value, dict):
        return value
    if topic == T.DEAD_LETTERS and value.get("source_topic") == T.ORDER_PAID and isinstance(value.get("raw"), str):
        raw = value["raw"]
        try:
            original = base64.b64decode(raw) if value.get("raw_encoding") == "base64" else raw.encode("utf-8")
        except ValueError:
            original = b""
        return {**value, "raw": printable_raw(T.ORDER_PAID, original), "raw_encoding": "utf-8"}
    if topic != T.ORDER_PAID or "recipient" not in value:
        return value
    recipient = value["recipient"]
    if not isinstance(recipient, dict):
        return {**value, "recipient": "***"}
    from processors.pii import mask_name, mask_phone

    shown = {k: recipient[k] for k in ("province", "city", "district") if k in recipient}
    shown["name"] = mask_name(str(recipient.get("name") or ""))
    shown["phone"] = mask_phone(str(recipient.get("phone") or ""))
    if "address" in recipient:
        shown["address"] = "***"
    return {**value, "recipient": shown}


def printable_raw(topic: str, raw: bytes) -> str:
    """The bytes of a record that is not a JSON object, as text fit to print: an order-paid one only
    when it parses (its recipient masked), since its text may hold a recipient in clear."""
    if topic != T.ORDER_PAID:
        return raw.decode("utf-8", "replace")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return (f"({len(raw)} bytes hidden: an order-paid record that is not JSON may hold a recipient's name, "
                f"phone or address)")
    return orjson.dumps(redact(T.ORDER_PAID, value)).decode("utf-8")


def describe(topic: str, key: bytes | None, raw: bytes | None) -> tuple[Line, Any]:
    """(the line to print, the decoded and redacted value or None) of one record of `topic`."""
    key_text = key.decode("utf-8", "replace") if key is not None else None
    try:
        value = codec.loads(raw) if raw is not None else None
    except codec.BadInput:
        size = len(raw) if raw is not None else 0
        return Line(DASH, "NOT_JSON", DASH, _s(key_text), DASH, f"{size} bytes that are not JSON"), None
    if not isinstance(value, dict):
        return Line(DASH, "NOT_OBJECT", DASH, _s(key_text), DASH, _short(raw)), value
    value = redact(topic, value)
    v = value.get
    if topic == T.VIOLATION_WARNINGS:
        message = _s(v("message"))
        if v("stage") == "WARNING" and v("deadline"):
            message += f" (deadline {_time(v('deadline'))})"
        line = Line(_time(v("occurred_at")), _s(v("stage")), _s(v("rule")), _s(v("order_id")), _s(v("shop_id")),
                    message)
    elif topic == T.CANCELLATION_OUTCOMES:
        refund = v("refund") or {}
        message = _s(v("explanation")) + (f" (refund {refund.get('amount')} {refund.get('currency')})"
                                          if refund else "")
        line = Line(_time(v("decided_at")), _s(v("decision")), _s(v("code")), _s(v("order_id")), _s(v("shop_id")),
                    message)
    elif topic == T.SHOP_ALERTS:
        line = Line(_time(v("window_end")), _s(v("stage")), _s(v("metric")), DASH, _s(v("shop_id")),
                    f"rate {v('value')} against threshold {v('threshold')} over {v('orders_in_window')} orders "
                    f"since {_time(v('window_start'))}")
    elif topic == T.DEAD_LETTERS:
        line = Line(_time(v("received_at")), "DEAD_LETTER", _s(v("source_topic")), _s(key_text), DASH,
                    f"{v('source_topic')}[{v('partition')}]@{v('offset')}: {v('error')}")
    elif topic == T.ORDER_PAID:
        recipient = v("recipient") if isinstance(v("recipient"), dict) else {}
        line = Line(_time(v("paid_at")), "PAID", DASH, _s(v("order_id")), _s(v("shop_id")),
                    f"{v('platform')} {v('amount')} {v('currency') or 'CNY'}, to {recipient.get('province')} "
                    f"{recipient.get('city')}" + (f", ship by {_time(v('ship_by'))}" if v("ship_by") else ""))
    elif topic == T.WAYBILL_UPLOADED:
        line = Line(_time(v("uploaded_at")), "UPLOAD", DASH, _s(v("order_id")), _s(v("shop_id")),
                    f"{v('carrier')} {_s(v('waybill_no'))}")
    elif topic == T.TRACKING_SCANS:
        line = Line(_time(v("scan_at")), _s(v("status")), DASH, DASH, DASH,
                    f"{v('carrier')} {v('waybill_no')} at {' '.join(_s(x) for x in (v('province'), v('city')) if x)}")
    elif topic == T.CANCELLATION_REQUESTS:
        line = Line(_time(v("requested_at")), "CANCEL_REQUEST", _s(v("reason")), _s(v("order_id")),
                    _s(v("shop_id")), _s(v("detail")))
    elif topic == T.CLOCK_TICKS:
        line = Line(_time(v("at")), "TICK", DASH, DASH, DASH, "")
    else:  # an internal feed or a foreign topic: what little we know
        line = Line(_time(v("at")) if "at" in value else DASH, _s(v("kind")), _s(v("rule")),
                    _s(v("order_id") or key_text), _s(v("shop_id")), _short(orjson.dumps(value)))
    return line, value


def _short(raw: bytes | None, limit: int = 120) -> str:
    text = (raw or b"").decode("utf-8", "replace").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Filters:
    """What `tail` keeps: every given field must match."""

    shop: str | None = None
    order: str | None = None
    rule: str | None = None

    def keep(self, line: Line) -> bool:
        """True when `line` matches every given field."""
        return ((self.shop is None or line.shop == self.shop)
                and (self.order is None or line.order == self.order)
                and (self.rule is None or line.rule == self.rule))


@dataclass
class TailCount:
    """Records `tail` read, and of those the ones it showed."""

    read: int = 0
    shown: int = 0


def show_records(topic: str, records: Iterable[Any], filters: Filters, as_json: bool, out: TextIO,
                 count: TailCount, limit: int | None = None) -> TailCount:
    """Print every record of `records` (kafka-python ConsumerRecords) that passes `filters`."""
    if not as_json and count.read == 0:
        print(HEADER, file=out, flush=True)
    for record in records:
        count.read += 1
        line, value = describe(topic, record.key, record.value)
        if not filters.keep(line):
            continue
        count.shown += 1
        if as_json:
            item: dict[str, Any] = {"topic": topic, "partition": record.partition, "offset": record.offset,
                                    "key": record.key.decode("utf-8", "replace") if record.key is not None else None}
            if value is None and record.value is not None:
                item["raw"] = printable_raw(topic, record.value)
            else:
                item["value"] = value
            out.write(orjson.dumps(item).decode("utf-8") + "\n")
            out.flush()
        else:
            print(line, file=out, flush=True)
        if limit is not None and count.shown >= limit:
            break
    return count


def follow(consumer: Any, topic: str, from_beginning: bool) -> Iterator[Any]:
    """Every record of every partition of `topic`, from its end or beginning, until interrupted."""
    from kafka import TopicPartition

    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    consumer.assign(partitions)
    if from_beginning:
        consumer.seek_to_beginning(*partitions)
    else:
        consumer.seek_to_end(*partitions)
    while True:
        for batch in consumer.poll(timeout_ms=500).values():
            yield from batch


def cmd_tail(args: argparse.Namespace, consumer: Any = None, out: TextIO | None = None) -> int:
    """`shipguard tail`: returns an exit code."""
    out = out or sys.stdout
    count = TailCount()
    filters = Filters(shop=args.shop, order=args.order, rule=args.rule)
    if consumer is None:
        consumer, code = connect("tail", make_consumer, args.broker, sys.stderr)
        if consumer is None:
            return code
    try:
        topics = consumer.topics()
        if args.topic not in topics:
            known = ", ".join(sorted(t for t in topics if not t.startswith("__")))
            print(f"shipguard tail: no topic {args.topic!r} on the broker (topics: {known or 'none'})",
                  file=sys.stderr)
            return 2
        show_records(args.topic, follow(consumer, args.topic, args.from_beginning), filters, args.json, out,
                     count, limit=args.limit)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    print(f"shipguard tail: {count.shown} records shown of {count.read} read from {args.topic}", file=sys.stderr)
    return 0
