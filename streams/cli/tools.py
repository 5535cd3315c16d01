"""Everyday commands: `shipguard tail`, `shipguard order`, `shipguard publish`.

Each command is a thin shell around pure functions (describe and filter a record, render an
order's view, plan a publish), so the unit tests run them without Kafka or a worker: the Kafka
client and the HTTP call are made in one place each and can be passed in.

`tail` and `publish` use kafka-python (the CLI is synchronous); the broker comes from `--broker`
or SHIPGUARD_BROKER. Neither prints a recipient's clear name, phone or address: `tail` masks
`order-paid` recipients as the worker does (the topic itself carries them in clear).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import textwrap
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, TextIO

import orjson

from schemas import codec
from schemas.types import format_time, parse_time
from streams import topics as T

# The contract's key of each input topic (clock ticks have none: one goes to every partition).
KEY_FIELDS: dict[str, Optional[str]] = {
    T.ORDER_PAID: "order_id",
    T.WAYBILL_UPLOADED: "order_id",
    T.CANCELLATION_REQUESTS: "order_id",
    T.TRACKING_SCANS: "waybill_no",
    T.CLOCK_TICKS: None,
}
MAX_BAD_SHOWN = 50
DASH = "-"


def _parser(sub: Any, name: str, help: str, description: str, epilog: str) -> argparse.ArgumentParser:
    """A subcommand whose --help shows its examples as written (the description wrapped here)."""
    return sub.add_parser(name, help=help, description=textwrap.fill(description, 88), epilog=epilog,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def add_tool_parsers(sub: Any) -> None:
    """Add the `tail`, `order` and `publish` subcommands to the `shipguard` parser."""
    p = _parser(
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

    p = _parser(
        sub, "order", help="show one order's state and timeline from a running worker",
        description="Ask a worker's web view (/order/ORDER_ID) for the order's stored state and print its "
                    "status, next deadline and timeline. Only the worker that holds the order's partition "
                    "knows it; the answer says which partition that is.",
        epilog="examples:\n"
               "  shipguard order 570001\n"
               "  shipguard order 570001 --url http://10.0.0.7:6066 --json\n")
    p.add_argument("order_id", metavar="ORDER_ID")
    p.add_argument("--url", help="the worker's web address (default http://127.0.0.1:SHIPGUARD_WEB_PORT, "
                                 "port 6066)")
    p.add_argument("--json", action="store_true", help="print the worker's JSON answer as it is")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the worker (default 5)")
    p.set_defaults(func=cmd_order)

    p = _parser(
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


# ---- Kafka clients (the only place the tools open one) -------------------------------------
BROKER_WAIT_SECONDS = 10.0


def client_settings(broker: Optional[str]) -> tuple[list[str], dict[str, Any]]:
    """(bootstrap servers, TLS/SASL keywords) of a broker that answers; ConfigError if the settings
    are malformed, BrokerUnreachable (saying where) if no broker answers within 10 s."""
    from streams.kafka.admin import wait_for_broker
    from streams.config import load_settings
    from streams.kafka.security import kafka_python_kwargs

    settings = load_settings(broker=broker)
    security = kafka_python_kwargs(settings)
    # a TCP probe first: a kafka-python client on a dead address retries for 30 s, logging each try
    wait_for_broker(settings.bootstrap_servers, timeout=BROKER_WAIT_SECONDS, security=security)
    return settings.bootstrap_servers, security


def make_producer(broker: Optional[str]) -> Any:
    """A kafka-python producer that keeps file order (one request in flight)."""
    from kafka import KafkaProducer

    bootstrap, security = client_settings(broker)
    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                         max_in_flight_requests_per_connection=1, enable_idempotence=False,
                         client_id="shipguard-publish", **security)


def make_consumer(broker: Optional[str]) -> Any:
    """A kafka-python consumer outside any group (it commits nothing)."""
    from kafka import KafkaConsumer

    bootstrap, security = client_settings(broker)
    return KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                         allow_auto_create_topics=False, client_id="shipguard-tail", **security)


def _connect(command: str, make: Callable[[Optional[str]], Any], broker: Optional[str],
             err: TextIO) -> tuple[Any, int]:
    """(client, 0), or (None, exit code) with the reason printed: 2 for settings, 1 for the broker."""
    from streams.config import ConfigError

    try:
        return make(broker), 0
    except ConfigError as exc:
        print(f"shipguard {command}: {exc}", file=err)
        return None, 2
    except Exception as exc:  # noqa: BLE001 - BrokerUnreachable, kafka's errors: say where, not a traceback
        print(f"shipguard {command}: {exc}", file=err)
        return None, 1


# ---- tail --------------------------------------------------------------------------------
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


def describe(topic: str, key: Optional[bytes], raw: Optional[bytes]) -> tuple[Line, Any]:
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


def _short(raw: Optional[bytes], limit: int = 120) -> str:
    text = (raw or b"").decode("utf-8", "replace").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Filters:
    """What `tail` keeps: every given field must match."""

    shop: Optional[str] = None
    order: Optional[str] = None
    rule: Optional[str] = None

    def keep(self, line: Line) -> bool:
        return ((self.shop is None or line.shop == self.shop)
                and (self.order is None or line.order == self.order)
                and (self.rule is None or line.rule == self.rule))


@dataclass
class TailCount:
    read: int = 0
    shown: int = 0


def show_records(topic: str, records: Iterable[Any], filters: Filters, as_json: bool, out: TextIO,
                 count: TailCount, limit: Optional[int] = None) -> TailCount:
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


def cmd_tail(args: argparse.Namespace, consumer: Any = None, out: Optional[TextIO] = None) -> int:
    """`shipguard tail`: returns an exit code."""
    out = out or sys.stdout
    count = TailCount()
    filters = Filters(shop=args.shop, order=args.order, rule=args.rule)
    if consumer is None:
        consumer, code = _connect("tail", make_consumer, args.broker, sys.stderr)
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


# ---- order -------------------------------------------------------------------------------
class WorkerUnreachable(ConnectionError):
    """No worker answered at the web URL."""


def fetch_order(url: str, order_id: str, timeout: float = 5.0) -> tuple[int, dict]:
    """(HTTP status, JSON body) of GET {url}/order/{order_id}."""
    target = f"{url.rstrip('/')}/order/{urllib.parse.quote(order_id, safe='')}"
    try:
        with urllib.request.urlopen(target, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body)
        except ValueError:
            return exc.code, {"error": body.decode("utf-8", "replace")[:200] or exc.reason}
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise WorkerUnreachable(f"no worker answered at {url}: {reason}") from None


def format_order(view: dict) -> str:
    """A readable page of one order from the worker's /order answer."""
    state = view.get("state") or {}
    facts = state.get("facts") or {}
    rows = [f"order {view.get('order_id')}  ({view.get('status')}; partition {view.get('partition')} "
            f"of {view.get('partitions')})"]
    if facts:
        rows.append(f"  shop      {facts.get('shop_id')} on {facts.get('platform')}, "
                    f"{facts.get('delivery_mode')}{', presale' if facts.get('presale') else ''}")
        rows.append(f"  paid      {facts.get('paid_at')}  {facts.get('amount')} {facts.get('currency')}")
        rows.append(f"  ship by   {facts.get('ship_by')}")
        rows.append(f"  recipient {facts.get('masked_name')} {facts.get('masked_phone')}, "
                    f"{facts.get('province')} {facts.get('city')}")
    elif view.get("status") == "closed":
        rows.append(f"  closed    every rule on it has settled, so its history was dropped; a marker stays "
                    f"until {view.get('wake_at') or '-'} (retention) so that late or repeated events change nothing")
    else:
        rows.append("  (no order-paid read yet: only later events of this order are known)")
    uploads = state.get("uploads") or []
    if uploads:
        current = max(uploads, key=lambda u: u.get("uploaded_at") or "")
        rows.append(f"  waybill   {current.get('carrier')} {current.get('waybill_no') or '-'}"
                    f"{'' if current.get('valid', True) else ' (invalid format)'}")
    if state.get("cancelled_at"):
        rows.append(f"  cancelled {state['cancelled_at']}")
    if view.get("status") != "closed":
        rows.append(f"  next wake {view.get('wake_at') or '-'}")
    open_rules = _open_warnings(state.get("emitted") or [])
    if open_rules:
        rows.append(f"  open      {', '.join(open_rules)}")
    rows.append("timeline")
    timeline = view.get("timeline") or []
    width = max((len(e.get("event", "")) for e in timeline), default=0)
    for entry in timeline:
        rows.append(f"  {entry.get('at')}  {entry.get('event', ''):<{width}}  {entry.get('detail', '')}".rstrip())
    if not timeline:
        rows.append("  (nothing yet)")
    return "\n".join(rows)


def _open_warnings(emitted: list[dict]) -> list[str]:
    """Rules whose latest stage is a WARNING (neither VIOLATION nor RESOLVED yet)."""
    last: dict[str, dict] = {}
    for item in sorted(emitted, key=lambda e: e.get("occurred_at") or ""):
        last[item.get("warning_id", "")] = item
    return sorted(f"{e.get('rule')} (since {e.get('occurred_at')})" for e in last.values() if e.get("stage") == "WARNING")


def cmd_order(args: argparse.Namespace, fetch: Callable[..., tuple[int, dict]] = fetch_order,
              out: Optional[TextIO] = None) -> int:
    """`shipguard order`: returns an exit code."""
    out = out or sys.stdout
    url = args.url
    if not url:
        from streams.config import ConfigError, load_settings

        try:
            url = f"http://127.0.0.1:{load_settings().web_port}"
        except ConfigError as exc:
            print(f"shipguard order: {exc}", file=sys.stderr)
            return 2
    try:
        status, body = fetch(url, args.order_id, timeout=args.timeout)
    except WorkerUnreachable as exc:
        print(f"shipguard order: {exc}. Is `shipguard worker` running, and is its web port "
              f"SHIPGUARD_WEB_PORT (default 6066)? Give another with --url.", file=sys.stderr)
        return 1
    if status == 200:
        print(json.dumps(body, ensure_ascii=False, indent=2) if args.json else format_order(body), file=out)
        return 0
    if status == 503:
        print(f"shipguard order: the worker at {url} is still recovering its tables; try again in a few seconds",
              file=sys.stderr)
        return 1
    if status == 404 and "order_id" in body:
        print(f"shipguard order: {body.get('error')}", file=sys.stderr)
        return 1
    print(f"shipguard order: the worker at {url} answered {status}: {body.get('error') or body} "
          f"(is this a shipguard worker?)", file=sys.stderr)
    return 1


# ---- publish -----------------------------------------------------------------------------
@dataclass
class Outbound:
    """One record to send (partition None: Kafka's key partitioner decides)."""

    line: int
    key: Optional[bytes]
    value: bytes
    partition: Optional[int] = None


@dataclass
class PublishPlan:
    """A file checked against a topic: what to send, and every bad line with its reason."""

    topic: str
    good: list[Outbound] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)
    lines: int = 0  # non-blank lines read


def _key(topic: str, value: dict, model: Any, key_field: Optional[str]) -> Optional[str]:
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


def plan_publish(topic: str, lines: Iterable[bytes], key_field: Optional[str] = None) -> PublishPlan:
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


def send_plan(plan: PublishPlan, producer: Any, partitions: Optional[int] = None) -> tuple[int, list[str]]:
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


def cmd_publish(args: argparse.Namespace, producer: Any = None, out: Optional[TextIO] = None,
                err: Optional[TextIO] = None) -> int:
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
        producer, code = _connect("publish", make_producer, args.broker, err)
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
