"""Hostile input: every malformed, oversized or out-of-range record ends on dead-letters with a
reason, and the good events around it give exactly the outputs they give alone."""

import asyncio

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import codec
from streams.cli.replay import parse_line
from streams.inprocess.engine import InProcessEngine
from streams.rules_file import load_rules
from streams.worker.decode import DEAD_LETTER_KEY_BYTES, DEAD_LETTER_RAW_BYTES, MAX_MESSAGE_BYTES
from tests.factories import PAID, cancellation, order_paid, scan, upload
from tests.streams.conftest import EXAMPLES

GOOD = [line for name in ("ex02-ship-overdue", "ex04-invalid-waybill-replaced", "ex05-cancellations")
        for line in (EXAMPLES / f"{name}.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
TEMPLATES = {"order-paid": order_paid("H1"), "waybill-uploaded": upload("H1", at=PAID),
             "tracking-scans": scan(at=PAID), "cancellation-requests": cancellation("H1", at=PAID)}


def _replace(data, path, value):
    data = orjson.loads(orjson.dumps(data))
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return orjson.dumps(data)


def _time_field(topic):
    return {"order-paid": "paid_at", "waybill-uploaded": "uploaded_at", "tracking-scans": "scan_at",
            "cancellation-requests": "requested_at"}[topic]


@st.composite
def hostile(draw):
    """(topic, value) of one record no reading of the contract accepts."""
    topic = draw(st.sampled_from(sorted(TEMPLATES)))
    good = orjson.loads(codec.dumps(TEMPLATES[topic]))
    kind = draw(st.sampled_from(["utf8", "nesting", "huge", "type", "year", "megabyte", "nan", "negative",
                                 "not_an_object", "missing", "bytes"]))
    if kind == "utf8":
        raw = orjson.dumps(good)
        at = draw(st.integers(0, len(raw) - 1))
        return topic, raw[:at] + b"\xff\xfe" + raw[at:]
    if kind == "nesting":
        depth = draw(st.integers(600, 5000))
        return topic, _replace(good, ["event_id"], None)[:-1] + b',"x":' + b"[" * depth + b"]" * depth + b"}"
    if kind == "huge":
        return topic, _replace(good, ["event_id"], "e" * draw(st.integers(129, 200_000)))
    if kind == "type":
        field = draw(st.sampled_from(sorted(good)))
        return topic, _replace(good, [field], draw(st.sampled_from([12345, 1.5, [], {}])))
    if kind == "year":
        year = draw(st.sampled_from(["1900", "1999", "2101", "2999"]))
        return topic, _replace(good, [_time_field(topic)], f"{year}-03-01T10:00:00+08:00")
    if kind == "megabyte":
        return topic, _replace(good, ["event_id"], "m" * draw(st.integers(MAX_MESSAGE_BYTES, 1_100_000)))
    if kind == "nan":
        return topic, orjson.dumps(good)[:-1] + b',"amount":NaN}'
    if kind == "negative":
        return "order-paid", _replace(orjson.loads(codec.dumps(TEMPLATES["order-paid"])), ["amount"], "-1.00")
    if kind == "not_an_object":
        return topic, draw(st.sampled_from([b"[]", b"null", b'"order"', b"42", b""]))
    if kind == "missing":
        fields = type(TEMPLATES[topic]).model_fields
        field = draw(st.sampled_from(sorted(f for f in good if fields[f].is_required())))
        return topic, orjson.dumps({k: v for k, v in good.items() if k != field})
    return topic, draw(st.binary(min_size=1, max_size=300).filter(lambda b: not b.strip().startswith(b"{")))


def run(records):
    engine = InProcessEngine(load_rules())

    async def go():
        for record in records:
            if isinstance(record, tuple):
                await engine.publish(record[0], b"H1", record[1])
            else:
                await engine.publish_messages(record)
    asyncio.run(go())
    return engine


GOOD_MESSAGES = [parse_line(n, line, 8) for n, line in enumerate(GOOD, 1)]
ALONE = run(GOOD_MESSAGES)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(bad=st.lists(st.tuples(st.integers(0, len(GOOD)), hostile()), min_size=1, max_size=6))
def test_hostile_records_end_on_dead_letters_and_the_good_events_give_the_same_outputs(bad):
    records = list(GOOD_MESSAGES)
    for at, record in sorted(bad, key=lambda b: -b[0]):
        records.insert(at, record)
    engine = run(records)
    letters = engine.output("dead-letters")
    assert len(letters) == len(bad)
    assert all(letter["error"] for letter in letters)
    assert all(len(letter["raw"]) <= DEAD_LETTER_RAW_BYTES * 4 // 3 + 4 for letter in letters)
    assert ALONE.output("violation-warnings") and ALONE.output("cancellation-outcomes"), "the good events give outputs"
    for topic in ("violation-warnings", "cancellation-outcomes", "shop-alerts"):
        assert engine.output(topic) == ALONE.output(topic)


def test_a_record_over_the_maximum_size_is_refused_unread_and_its_dead_letter_stays_small():
    big = _replace(orjson.loads(codec.dumps(TEMPLATES["order-paid"])), ["buyer_remark"], "x" * 1_000_000)
    engine = run([("order-paid", big)])
    (letter,) = engine.output("dead-letters")
    assert "more than the maximum" in letter["error"] and "SHIPGUARD_MAX_MESSAGE_BYTES" in letter["error"]
    assert len(letter["raw"]) == DEAD_LETTER_RAW_BYTES and engine.orders == {}


def test_a_bad_record_under_a_megabyte_key_gets_a_dead_letter_with_the_key_cut_to_fit():
    engine = InProcessEngine(load_rules())
    key = b"k" * 1_100_000
    asyncio.run(engine.publish("order-paid", key, b'{"order_id": "unfinished'))
    (record,) = [r for p in engine.log["dead-letters"].values() for r in p]
    letter = codec.loads(record.value)
    assert record.key is not None and len(record.key) == DEAD_LETTER_KEY_BYTES and key.startswith(record.key)
    assert f"(key: the first {DEAD_LETTER_KEY_BYTES} of 1100000 bytes)" in letter["error"]


def test_a_reason_longer_than_a_dead_letter_holds_is_cut_and_the_letter_is_still_sent():
    from streams.worker.records import Record

    engine = InProcessEngine(load_rules())
    record = Record("order-paid", 0, 7, b"H1", b"{}")
    letter = codec.loads(engine.shell.runner.decoder.dead_letter(record, "why " * 1000).value)
    assert len(letter["error"]) <= 2000 and letter["error"].endswith("(4000 characters)")
