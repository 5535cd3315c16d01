"""`shipguard publish`, `tail` and `order` without Kafka or a worker: their pure parts, and the
commands with a fake producer, consumer or HTTP answer."""

from __future__ import annotations

import argparse
import io
import logging
import sys
from collections import namedtuple
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from schemas import codec
from schemas.state import Emitted, OrderFacts, OrderState, OtherUpload, ScanFact, UploadFact
from streams.cli import clients, order, publish, tail
from streams.cli.order import format_order
from streams.cli.publish import plan_publish
from streams.cli.replay import parse_line
from streams.cli.tail import Filters, TailCount, describe, show_records
from streams.runtime.web import not_held, order_view
from tests.factories import PAID, cancellation, order_paid, scan, upload

UTC = UTC
Rec = namedtuple("Rec", "key value partition offset")


def line_of(model) -> bytes:
    return codec.dumps(model)


# ---- publish -----------------------------------------------------------------------------
class FakeFuture:
    def __init__(self, error=None):
        self.error = error

    def get(self, timeout=None):
        if self.error:
            raise self.error
        return None


class FakeProducer:
    def __init__(self, partitions=4, fail_on=None):
        self.sent, self.flushed, self.closed = [], False, False
        self.partitions, self.fail_on = partitions, fail_on

    def send(self, topic, key=None, value=None, partition=None):
        self.sent.append((topic, key, value, partition))
        return FakeFuture(RuntimeError("broker said no") if self.fail_on == len(self.sent) else None)

    def partitions_for(self, topic):
        return set(range(self.partitions))

    def flush(self):
        self.flushed = True

    def close(self):
        self.closed = True


def publish_args(topic, path, **extra):
    return argparse.Namespace(topic=topic, file=str(path), skip_bad=False, key_field=None, broker=None, **extra)


def write_lines(tmp_path, *lines) -> object:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_publish_reports_each_bad_line_with_its_number_and_reason_and_sends_nothing(tmp_path):
    good = line_of(order_paid("O1"))
    no_tz = orjson.dumps({**orjson.loads(line_of(order_paid("O2"))), "paid_at": "2026-03-02T10:00:00"})
    path = write_lines(tmp_path, good, b"", b"{not json", no_tz, line_of(order_paid("O3")))
    producer, err, out = FakeProducer(), io.StringIO(), io.StringIO()
    code = publish.cmd_publish(publish_args("order-paid", path), producer=producer, out=out, err=err)
    assert code == 1
    assert producer.sent == [] and not producer.flushed
    report = err.getvalue().splitlines()
    assert report[0].startswith(f"{path}:3: not JSON")
    assert report[1].startswith(f"{path}:4: paid_at:") and "UTC offset" in report[1]
    assert "nothing sent: 2 of 4 lines are bad for order-paid" in report[2] and "--skip-bad" in report[2]
    assert out.getvalue() == ""


def test_publish_with_skip_bad_sends_the_good_lines_in_file_order_keyed_by_order_id(tmp_path):
    path = write_lines(tmp_path, line_of(order_paid("O1")), b"[]", line_of(order_paid("O2")))
    producer, out, err = FakeProducer(), io.StringIO(), io.StringIO()
    args = publish_args("order-paid", path)
    args.skip_bad = True
    assert publish.cmd_publish(args, producer=producer, out=out, err=err) == 0
    assert [(t, k, p) for t, k, _, p in producer.sent] == [("order-paid", b"O1", None), ("order-paid", b"O2", None)]
    assert orjson.loads(producer.sent[0][2])["order_id"] == "O1" and producer.flushed
    assert f"{path}:2: (value): expected a JSON object, got list" in err.getvalue()
    assert out.getvalue().strip() == "published 2 records to order-paid from 2 lines, 1 bad lines skipped"


def test_a_scan_is_keyed_by_its_normalised_waybill_number():
    raw = orjson.dumps({**orjson.loads(line_of(scan("SF1400000000001", at=PAID))), "waybill_no": "sf 1400 0000 00001"})
    plan = plan_publish("tracking-scans", [raw])
    assert plan.bad == [] and plan.good[0].key == b"SF1400000000001"


def test_key_field_picks_another_field_and_a_record_without_it_is_bad():
    plan = plan_publish("waybill-uploaded", [line_of(upload("O1", at=PAID))], key_field="shop_id")
    assert plan.good[0].key == b"shopA"
    plan = plan_publish("waybill-uploaded", [line_of(upload("O1", at=PAID))], key_field="nope")
    assert plan.good == [] and plan.bad == [(1, "nope: missing, empty or not a string: it is the record's key")]


def test_unknown_fields_are_kept_and_the_value_is_sent_as_compact_json():
    value = {**orjson.loads(line_of(cancellation("O1", at=PAID))), "extra": {"a": 1}}
    plan = plan_publish("cancellation-requests", [orjson.dumps(value, option=orjson.OPT_INDENT_2).replace(b"\n", b"")])
    assert orjson.loads(plan.good[0].value) == value and b" " not in plan.good[0].value.replace(b"OUT_OF_STOCK", b"")


def test_a_clock_tick_goes_to_every_partition_without_a_key(tmp_path):
    path = write_lines(tmp_path, b'{"at": "2026-03-05T00:00:00+08:00"}')
    producer = FakeProducer(partitions=3)
    assert publish.cmd_publish(publish_args("clock-ticks", path), producer=producer, out=io.StringIO(),
                               err=io.StringIO()) == 0
    assert [(k, p) for _, k, _, p in producer.sent] == [(None, 0), (None, 1), (None, 2)]


def test_clock_ticks_refuse_a_key_field(tmp_path):
    path = write_lines(tmp_path, b'{"at": "2026-03-05T00:00:00+08:00"}')
    args = publish_args("clock-ticks", path)
    args.key_field = "at"
    err = io.StringIO()
    assert publish.cmd_publish(args, producer=FakeProducer(), out=io.StringIO(), err=err) == 2
    assert "clock ticks have no key" in err.getvalue()


def test_a_replay_line_given_to_publish_is_bad_with_a_hint():
    raw = orjson.dumps({"topic": "order-paid", "key": "O1", "value": orjson.loads(line_of(order_paid("O1")))})
    plan = plan_publish("order-paid", [raw])
    assert "use `shipguard replay`" in plan.bad[0][1]


def test_a_send_that_fails_is_reported_with_its_line_and_the_exit_code_says_so(tmp_path):
    path = write_lines(tmp_path, line_of(order_paid("O1")), line_of(order_paid("O2")))
    producer, out, err = FakeProducer(fail_on=2), io.StringIO(), io.StringIO()
    assert publish.cmd_publish(publish_args("order-paid", path), producer=producer, out=out, err=err) == 1
    assert "line 2: not sent: broker said no" in err.getvalue()
    assert "published 1 records to order-paid from 2 lines, 1 failed" in out.getvalue()


def test_a_missing_file_is_a_usage_error(tmp_path):
    err = io.StringIO()
    assert publish.cmd_publish(publish_args("order-paid", tmp_path / "nope.jsonl"), producer=FakeProducer(),
                               out=io.StringIO(), err=err) == 2
    assert "cannot read" in err.getvalue()


def test_publish_only_accepts_input_topics_on_the_command_line():
    from streams.cli.main import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["publish", "violation-warnings", "x.jsonl"])


# ---- tail --------------------------------------------------------------------------------
WARNING = {"warning_id": "w1", "order_id": "O1", "shop_id": "shopA", "platform": "douyin", "rule": "SHIP_OVERDUE",
           "stage": "WARNING", "severity": "medium", "occurred_at": "2026-03-03T20:00:00Z",
           "deadline": "2026-03-04T02:00:00Z", "evidence": {}, "message": "订单即将发货超时"}


def test_a_warning_is_one_line_with_time_stage_rule_order_shop_and_message():
    line, value = describe("violation-warnings", b"O1", orjson.dumps(WARNING))
    assert (line.at, line.stage, line.rule, line.order, line.shop) == (
        "2026-03-03T20:00:00Z", "WARNING", "SHIP_OVERDUE", "O1", "shopA")
    assert line.message == "订单即将发货超时 (deadline 2026-03-04T02:00:00Z)"
    assert "\n" not in str(line) and str(line).startswith("2026-03-03T20:00:00Z WARNING")
    assert value == WARNING


def test_input_times_are_shown_in_utc():
    line, _ = describe("waybill-uploaded", b"O1", line_of(upload("O1", at=PAID)))
    assert line.at == "2026-03-02T02:00:00Z" and line.stage == "UPLOAD" and line.message == "SF SF1400000000001"


def test_an_order_paid_recipient_is_masked_in_the_line_and_the_json():
    raw = line_of(order_paid("O1"))
    line, value = describe("order-paid", b"O1", raw)
    text = str(line) + orjson.dumps(value).decode()
    assert "张三" not in text and "13812345678" not in text and "文三路" not in text
    assert value["recipient"] == {"province": "浙江省", "city": "杭州市", "district": "西湖区", "name": "张*",
                                  "phone": "138****5678", "address": "***"}
    assert "浙江省 杭州市" in line.message


def test_a_record_that_is_not_json_still_gets_a_line():
    line, value = describe("order-paid", b"K", b"\xff{nope")
    assert (line.stage, line.order, value) == ("NOT_JSON", "K", None)


def test_outcomes_alerts_and_dead_letters_show_their_own_fields():
    outcome = {"request_event_id": "r1", "order_id": "O1", "shop_id": "shopA", "decision": "APPROVED",
               "reason": "OUT_OF_STOCK", "code": "APPROVED", "explanation": "同意取消", "order_status": "CANCELLED",
               "refund": {"amount": "129.00", "currency": "CNY"}, "merchant_fault": True,
               "decided_at": "2026-03-03T00:00:00Z"}
    line, _ = describe("cancellation-outcomes", b"O1", orjson.dumps(outcome))
    assert (line.stage, line.rule, line.message) == ("APPROVED", "APPROVED", "同意取消 (refund 129.00 CNY)")
    alert = {"alert_id": "a1", "shop_id": "shopA", "platform": "douyin", "metric": "LATE_DISPATCH_RATE",
             "stage": "WARNING", "value": "0.05", "threshold": "0.04", "orders_in_window": 40,
             "window_start": "2026-03-01T00:00:00Z", "window_end": "2026-03-08T00:00:00Z"}
    line, _ = describe("shop-alerts", b"shopA", orjson.dumps(alert))
    assert (line.at, line.rule, line.shop) == ("2026-03-08T00:00:00Z", "LATE_DISPATCH_RATE", "shopA")
    letter = {"source_topic": "order-paid", "partition": 2, "offset": 7, "error": "not JSON: x",
              "received_at": "2026-03-03T00:00:00Z", "raw": "{"}
    line, _ = describe("dead-letters", b"BAD1", orjson.dumps(letter))
    assert (line.stage, line.rule, line.order, line.message) == (
        "DEAD_LETTER", "order-paid", "BAD1", "order-paid[2]@7: not JSON: x")


def records(*values):
    return [Rec(v.get("order_id", "").encode(), orjson.dumps(v), 0, i) for i, v in enumerate(values)]


def test_tail_filters_combine_on_shop_order_and_rule():
    values = [WARNING, {**WARNING, "order_id": "O2"}, {**WARNING, "shop_id": "shopB"},
              {**WARNING, "rule": "NO_PICKUP"}]
    out = io.StringIO()
    count = show_records("violation-warnings", records(*values), Filters(shop="shopA", rule="SHIP_OVERDUE"),
                         False, out, TailCount())
    lines = out.getvalue().splitlines()
    assert (count.read, count.shown) == (4, 2)
    assert lines[0] == tail.HEADER and [row.split()[3] for row in lines[1:]] == ["O1", "O2"]
    out = io.StringIO()
    count = show_records("violation-warnings", records(*values), Filters(order="O2"), False, out, TailCount())
    assert count.shown == 1 and "O2" in out.getvalue().splitlines()[1]


def test_tail_json_prints_replayable_lines_and_stops_at_the_limit():
    out = io.StringIO()
    count = show_records("violation-warnings", records(WARNING, WARNING, WARNING), Filters(), True, out,
                         TailCount(), limit=2)
    lines = out.getvalue().splitlines()
    assert count.shown == 2 and len(lines) == 2
    item = orjson.loads(lines[0])
    assert item["value"] == WARNING and (item["partition"], item["offset"], item["key"]) == (0, 0, "O1")
    [message] = parse_line(1, lines[0], 8)
    assert message.topic == "violation-warnings" and message.key == b"O1"


class FakeConsumer:
    """Answers one poll with `batches`, then raises KeyboardInterrupt like Ctrl-C."""

    def __init__(self, topic, batches):
        self.topic, self.batches, self.closed = topic, list(batches), False
        self.assigned, self.seeked = None, None

    def topics(self):
        return {self.topic, "__consumer_offsets"}

    def partitions_for_topic(self, topic):
        return {0, 1}

    def assign(self, partitions):
        self.assigned = partitions

    def seek_to_end(self, *partitions):
        self.seeked = "end"

    def seek_to_beginning(self, *partitions):
        self.seeked = "beginning"

    def poll(self, timeout_ms=0):
        if not self.batches:
            raise KeyboardInterrupt
        return {"tp": self.batches.pop(0)}

    def close(self):
        self.closed = True


def tail_args(topic, **extra):
    base = dict(topic=topic, shop=None, order=None, rule=None, from_beginning=False, json=False, limit=None,
                broker=None)
    base.update(extra)
    return argparse.Namespace(**base)


def test_ctrl_c_ends_tail_cleanly_with_a_count(capsys):
    consumer = FakeConsumer("violation-warnings", [records(WARNING, {**WARNING, "shop_id": "shopB"})])
    out = io.StringIO()
    code = tail.cmd_tail(tail_args("violation-warnings", shop="shopB", from_beginning=True), consumer=consumer,
                          out=out)
    assert code == 0 and consumer.closed and consumer.seeked == "beginning" and len(consumer.assigned) == 2
    assert len(out.getvalue().splitlines()) == 2
    assert "1 records shown of 2 read from violation-warnings" in capsys.readouterr().err


def test_tail_of_an_unknown_topic_says_which_topics_exist(capsys):
    consumer = FakeConsumer("violation-warnings", [])
    assert tail.cmd_tail(tail_args("violation-warning"), consumer=consumer, out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert "no topic 'violation-warning'" in err and "violation-warnings" in err and "__consumer" not in err
    assert consumer.closed


# ---- order -------------------------------------------------------------------------------
T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def stored_order() -> OrderState:
    h = timedelta(hours=1)
    facts = OrderFacts(shop_id="shopA", platform="douyin", paid_at=T0, ship_by=T0 + 48 * h, amount="129.00",
                       currency="CNY", delivery_mode="express", presale=False, stop_remark=False,
                       recipient_hash="abcdef0123456789", province="浙江", city="杭州", masked_name="张*",
                       masked_phone="138****5678")
    return OrderState(
        order_id="O1", partition=3, facts=facts, seen=("e1",),
        uploads=(UploadFact(event_id="u2", carrier="SF", waybill_no="SF1400000000004", uploaded_at=T0 + 5 * h,
                            valid=True),
                 UploadFact(event_id="u1", carrier="SF", waybill_no="SF12345", uploaded_at=T0 + 2 * h, valid=False)),
        scans=(ScanFact(event_id="s1", waybill_no="SF1400000000004", carrier="SF", status="PICKED_UP",
                        scan_at=T0 + 6 * h, city="杭州"),),
        others=(OtherUpload(order_id="O9", upload_event_id="u9", carrier="SF", uploaded_at=T0 + 7 * h,
                            same_recipient=True, waybill_no="SF1400000000004"),),
        emitted=(Emitted(warning_id="w1", rule="WAYBILL_INVALID", stage="RESOLVED", occurred_at=T0 + 5 * h),
                 Emitted(warning_id="w1", rule="WAYBILL_INVALID", stage="WARNING", occurred_at=T0 + 2 * h),
                 Emitted(warning_id="w2", rule="NO_PICKUP", stage="WARNING", occurred_at=T0 + 5 * h)),
        wake_at=T0 + 29 * h)


def test_the_order_view_has_a_timeline_sorted_by_time_and_no_recipient_hash():
    view = order_view(stored_order(), 3, 8)
    assert view["status"] == "open" and view["wake_at"] == "2026-03-03T07:00:00Z"
    assert "recipient_hash" not in view["state"]["facts"] and "abcdef" not in orjson.dumps(view).decode()
    assert [(e["at"][11:16], e["event"]) for e in view["timeline"]] == [
        ("02:00", "PAID"), ("04:00", "UPLOAD"), ("04:00", "WARNING"), ("07:00", "UPLOAD"), ("07:00", "RESOLVED"),
        ("07:00", "WARNING"), ("08:00", "SCAN"), ("09:00", "OTHER_ORDER_UPLOAD")]
    assert "fails the carrier's number format" in view["timeline"][1]["detail"]
    assert view["timeline"][6]["detail"] == "PICKED_UP 杭州 (SF SF1400000000004)"


def test_a_cancelled_order_says_so():
    state = stored_order().model_copy(update={"cancelled_at": T0 + 8 * timedelta(hours=1)})
    view = order_view(state, 3, 8)
    assert view["status"] == "cancelled" and view["timeline"][-1]["event"] == "CANCELLED"


def test_the_order_page_shows_status_recipient_masks_waybill_open_warnings_and_timeline():
    text = format_order(orjson.loads(orjson.dumps(order_view(stored_order(), 3, 8))))
    assert text.splitlines()[0] == "order O1  (open; partition 3 of 8)"
    assert "recipient 张* 138****5678, 浙江 杭州" in text
    assert "waybill   SF SF1400000000004" in text and "(invalid format)" not in text.split("timeline")[0]
    assert "open      NO_PICKUP (since 2026-03-02T07:00:00Z)" in text
    assert "WAYBILL_INVALID" not in text.split("timeline")[0]  # resolved: not open
    assert "next wake 2026-03-03T07:00:00Z" in text
    timeline = text.split("timeline\n", 1)[1].splitlines()
    assert len(timeline) == 8 and timeline[0].startswith("  2026-03-02T02:00:00Z  PAID ")


def test_the_partition_named_for_an_order_is_kafkas_default_partitioner_of_the_key():
    from aiokafka.partitioner import DefaultPartitioner

    from streams.inprocess.engine import partition_for

    for key in ("O1", "570001", "订单-42", "x" * 37):
        assert partition_for(key.encode(), 8) == DefaultPartitioner()(key.encode(), list(range(8)), [])


def test_not_held_says_which_partition_and_whether_this_worker_holds_it():
    other = not_held("O1", 5, 8, [0, 1, 2, 3])
    assert "would be in partition 5 of 8 (Kafka's default partitioner of its key)" in other["error"]
    assert "which this worker does not hold (it holds 0-3)" in other["error"]
    mine = not_held("O1", 2, 8, [0, 1, 2, 3])
    assert "holds its partition 2" in mine["error"] and mine["partition"] == 2


def order_args(**extra):
    base = dict(order_id="O1", url="http://127.0.0.1:1", json=False, timeout=1.0)
    base.update(extra)
    return argparse.Namespace(**base)


def test_order_prints_the_page_or_the_raw_json():
    view = orjson.loads(orjson.dumps(order_view(stored_order(), 3, 8)))
    out = io.StringIO()
    assert order.cmd_order(order_args(), fetch=lambda url, oid, timeout: (200, view), out=out) == 0
    assert out.getvalue().startswith("order O1  (open")
    out = io.StringIO()
    assert order.cmd_order(order_args(json=True), fetch=lambda url, oid, timeout: (200, view), out=out) == 0
    assert orjson.loads(out.getvalue()) == view


def test_order_explains_an_unreachable_worker_an_unknown_order_and_a_recovering_worker(capsys):
    def unreachable(url, oid, timeout):
        raise order.WorkerUnreachable(f"no worker answered at {url}: connection refused")

    assert order.cmd_order(order_args(), fetch=unreachable) == 1
    assert "no worker answered at http://127.0.0.1:1" in capsys.readouterr().err
    body = not_held("O1", 5, 8, [0])
    assert order.cmd_order(order_args(), fetch=lambda url, oid, timeout: (404, body)) == 1
    assert "would be in partition 5 of 8" in capsys.readouterr().err
    assert order.cmd_order(order_args(), fetch=lambda url, oid, timeout: (503, {"status": "recovering"})) == 1
    assert "still recovering" in capsys.readouterr().err


def test_fetch_order_against_a_closed_port_raises_worker_unreachable():
    from streams.kafka.embedded import free_port

    with pytest.raises(order.WorkerUnreachable):
        order.fetch_order(f"http://127.0.0.1:{free_port()}", "O1", timeout=2)


def test_a_closed_order_says_its_history_was_dropped_and_until_when_its_marker_stays():
    state = OrderState(order_id="O1", partition=3, closed=True, last_activity=T0, seen=("e1",),
                       wake_at=T0 + timedelta(days=30))
    view = order_view(state, 3, 8)
    assert view["status"] == "closed" and [e["event"] for e in view["timeline"]] == ["CLOSED"]
    text = format_order(orjson.loads(orjson.dumps(view)))
    assert text.splitlines()[0] == "order O1  (closed; partition 3 of 8)"
    assert "history was dropped; a marker stays until 2026-04-01T02:00:00Z" in text
    assert "no order-paid read yet" not in text and "next wake" not in text


def test_malformed_security_settings_are_a_usage_error_before_any_connection(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SHIPGUARD_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("SHIPGUARD_SSL_CAFILE", str(tmp_path / "missing-ca.pem"))
    path = write_lines(tmp_path, line_of(order_paid("O1")))
    assert publish.cmd_publish(publish_args("order-paid", path), out=io.StringIO(), err=io.StringIO()) == 2
    assert tail.cmd_tail(tail_args("violation-warnings")) == 2
    assert "SHIPGUARD_SSL_CAFILE" in capsys.readouterr().err


def test_a_broker_that_does_not_answer_is_reported_with_its_address(tmp_path, monkeypatch):
    from streams.kafka.embedded import free_port

    port = free_port()
    monkeypatch.setattr(clients, "BROKER_WAIT_SECONDS", 0.3)
    path = write_lines(tmp_path, line_of(order_paid("O1")))
    args = publish_args("order-paid", path)
    args.broker = f"kafka://127.0.0.1:{port}"
    err = io.StringIO()
    assert publish.cmd_publish(args, out=io.StringIO(), err=err) == 1
    assert f"no Kafka broker answered at 127.0.0.1:{port}" in err.getvalue()


# ---- log lines (streams.runtime.runner) ----------------------------------------------------------
def log_line(message, *args, exc_info=None, name="shipguard", level=logging.INFO):
    from streams.runtime.runner import KeyValueFormatter

    record = logging.LogRecord(name, level, __file__, 1, message, args, exc_info)
    record.created, record.msecs = 1772416800.25, 250.0  # 2026-03-02T02:00:00.250Z
    return KeyValueFormatter().format(record)


def test_a_log_line_is_ts_level_logger_then_the_messages_own_pairs():
    line = log_line("warning order=%s rule=%s stage=%s", "EX02", "SHIP_OVERDUE", "VIOLATION")
    assert line == ("ts=2026-03-02T02:00:00.250Z level=info logger=shipguard "
                    "warning order=EX02 rule=SHIP_OVERDUE stage=VIOLATION")


def test_a_value_with_spaces_quotes_or_newlines_stays_one_quoted_value_on_one_line():
    line = log_line("dead letter topic=%s partition=%d error=%s", "order-paid", 3, 'not JSON: "x"\nat 1')
    assert line.endswith('dead letter topic=order-paid partition=3 error="not JSON: \\"x\\"\\nat 1"')
    assert "\n" not in line


def test_a_message_without_pairs_and_an_exception_become_msg_and_exc_values():
    try:
        raise ValueError("boom")
    except ValueError:
        line = log_line("worker step failed: %s", "exiting", exc_info=sys.exc_info(), level=logging.CRITICAL)
    assert ' level=critical logger=shipguard msg="worker step failed: exiting" exc="Traceback' in line
    assert "ValueError: boom" in line and "\n" not in line


def test_arguments_not_after_an_equals_sign_and_percent_signs_are_left_alone():
    assert log_line("Timer %r woke up %d%% late", "clock", 5, name="faust.timer").endswith(
        "logger=faust.timer msg=\"Timer 'clock' woke up 5% late\"")


def test_a_repr_after_an_equals_sign_is_quoted_too():
    line = log_line("delivery repair failed attempt=%d error=%r", 2, RuntimeError("broker went away"))
    assert line.endswith("delivery repair failed attempt=2 error=\"RuntimeError('broker went away')\"")


def test_a_dead_letter_of_order_paid_shows_its_original_with_the_recipient_masked():
    original = line_of(order_paid("O1")).replace(b'"shop_id":"shopA",', b"")
    letter = {"source_topic": "order-paid", "partition": 0, "offset": 1, "error": "shop_id: Field required",
              "received_at": "2026-03-03T00:00:00Z", "raw": original.decode("utf-8"), "raw_encoding": "utf-8"}
    out = io.StringIO()
    show_records("dead-letters", [Rec(b"O1", orjson.dumps(letter), 0, 0)], Filters(), True, out, TailCount())
    text = out.getvalue()
    assert "张三" not in text and "13812345678" not in text and "文三路" not in text
    shown = orjson.loads(orjson.loads(text)["value"]["raw"])
    assert shown["recipient"]["name"] == "张*" and shown["order_id"] == "O1"


def test_order_paid_bytes_that_are_not_json_are_hidden_from_tail():
    raw = '{"order_id": "O1", "recipient": {"name": "张三", "phone": "13812345678"'.encode()
    out = io.StringIO()
    show_records("order-paid", [Rec(b"O1", raw, 0, 0)], Filters(), True, out, TailCount())
    assert "张三" not in out.getvalue() and "bytes hidden" in orjson.loads(out.getvalue())["raw"]
    letter = {"source_topic": "order-paid", "partition": 0, "offset": 1, "error": "not JSON",
              "received_at": "2026-03-03T00:00:00Z", "raw": raw.decode("utf-8")}
    _, value = describe("dead-letters", b"O1", orjson.dumps(letter))
    assert "bytes hidden" in value["raw"] and "张三" not in orjson.dumps(value).decode()
    _, value = describe("order-paid", b"O1", orjson.dumps({"order_id": "O1", "recipient": "张三 13812345678"}))
    assert value["recipient"] == "***"
