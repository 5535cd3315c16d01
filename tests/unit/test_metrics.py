"""/metrics speaks Prometheus' text format: parsed back here with a small parser of its own."""

from __future__ import annotations

import math
import re
from collections import Counter
from types import SimpleNamespace

import pytest

from streams.runtime.web import take_snapshot
from streams.worker.metrics import Family, Histogram, Metrics, Snapshot, consumer_lag, exposition, render, sample

SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$')
LABEL = re.compile(r'(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<value>(?:[^"\\]|\\.)*)"(?:,|$)')


def unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "\\": "\\", '"': '"'}[m.group(1)], text)


def parse(text: str) -> dict[str, dict]:
    """family name -> {help, type, samples: [(sample name, labels, value)]}; asserts the layout."""
    assert text.endswith("\n")
    families: dict[str, dict] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, help_text = line[len("# HELP "):].split(" ", 1)
            assert name not in families, f"{name} described twice"
            current = families[name] = {"help": unescape(help_text), "type": None, "samples": []}
        elif line.startswith("# TYPE "):
            name, kind = line[len("# TYPE "):].split(" ")
            assert current is families[name] and current["type"] is None and not current["samples"]
            current["type"] = kind
        else:
            match = SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            labels_text = match.group("labels") or ""
            labels = {m.group("name"): unescape(m.group("value")) for m in LABEL.finditer(labels_text)}
            assert ",".join(f'{k}="{v}"' for k, v in ((m.group("name"), m.group("value"))
                                                     for m in LABEL.finditer(labels_text))) == labels_text
            name = match.group("name")
            suffixes = ("_bucket", "_sum", "_count") if current["type"] == "histogram" else ("",)
            family = next(n for n in families if any(name == n + s for s in suffixes))
            assert families[family] is current, f"{name} is outside its family's block"
            current["samples"].append((name, labels, float(match.group("value"))))
    return families


def values(family: dict, **labels: str) -> list[float]:
    return [v for _, got, v in family["samples"] if all(got.get(k) == w for k, w in labels.items())]


def full_snapshot(**overrides) -> Snapshot:
    latency = Histogram(buckets=(0.01, 0.1, 1.0))
    for seconds in (0.004, 0.01, 0.05, 0.5, 3.0):
        latency.observe(seconds)
    data = dict(consumed={"order-paid": 7, "tracking-scans": 12},
                outputs={("SHIP_OVERDUE", "WARNING"): 2, ("SHIP_OVERDUE", "VIOLATION"): 1,
                         ("CANCELLATION", "APPROVED"): 3, ("LATE_DISPATCH_RATE", "WARNING"): 1},
                dead_letters=4, late_events=5, duplicates=6, refetched=11, deferred=13, latency=latency,
                forwarded={("order-paid", "partition"): 14, ("tracking-scans", "key"): 2},
                open_orders=10, open_waybills=9,
                pending_deadlines=8, lag={"order-paid": 3, "tracking-scans": 0}, ready=True)
    data.update(overrides)
    return Snapshot(**data)


def test_every_family_has_help_and_type_before_its_samples_and_the_text_parses_back():
    families = parse(render(full_snapshot()))
    assert all(f["type"] in ("counter", "gauge", "histogram") and f["help"] for f in families.values())
    assert {n for n, f in families.items() if f["type"] == "counter"} == {
        "shipguard_events_consumed_total", "shipguard_outputs_total", "shipguard_dead_letters_total",
        "shipguard_late_events_total", "shipguard_duplicates_total",
        "shipguard_offset_gaps_total", "shipguard_replayed_total", "shipguard_records_refetched_total",
        "shipguard_records_deferred_total", "shipguard_forwarded_total"}
    assert values(families["shipguard_events_consumed_total"], topic="order-paid") == [7]
    assert values(families["shipguard_forwarded_total"], topic="order-paid", reason="partition") == [14]
    assert values(families["shipguard_forwarded_total"], topic="tracking-scans", reason="key") == [2]
    assert values(families["shipguard_events_consumed_total"], topic="tracking-scans") == [12]
    assert values(families["shipguard_dead_letters_total"]) == [4]
    assert values(families["shipguard_late_events_total"]) == [5]
    assert values(families["shipguard_duplicates_total"]) == [6]
    assert values(families["shipguard_records_refetched_total"]) == [11]
    assert values(families["shipguard_records_deferred_total"]) == [13]
    assert values(families["shipguard_open_orders"]) == [10]
    assert values(families["shipguard_open_waybills"]) == [9]
    assert values(families["shipguard_pending_deadlines"]) == [8]
    assert values(families["shipguard_consumer_lag"], topic="order-paid") == [3]
    assert values(families["shipguard_ready"]) == [1]


def test_outputs_are_counted_per_output_topic_rule_and_stage():
    outputs = parse(render(full_snapshot()))["shipguard_outputs_total"]
    got = {(s[1]["topic"], s[1]["rule"], s[1]["stage"]): s[2] for s in outputs["samples"]}
    assert got == {("violation-warnings", "SHIP_OVERDUE", "WARNING"): 2,
                   ("violation-warnings", "SHIP_OVERDUE", "VIOLATION"): 1,
                   ("cancellation-outcomes", "CANCELLATION", "APPROVED"): 3,
                   ("shop-alerts", "LATE_DISPATCH_RATE", "WARNING"): 1}


def test_histogram_buckets_are_cumulative_and_end_with_inf_equal_to_the_count():
    latency = parse(render(full_snapshot()))["shipguard_processing_latency_seconds"]
    assert latency["type"] == "histogram"
    buckets = [(s[1]["le"], s[2]) for s in latency["samples"] if s[0].endswith("_bucket")]
    # le is inclusive: 0.01 falls in the 0.01 bucket
    assert buckets == [("0.01", 2), ("0.1", 3), ("1.0", 4), ("+Inf", 5)]
    assert values(latency)[-1] == 5  # _count is last
    [total] = [s[2] for s in latency["samples"] if s[0].endswith("_sum")]
    assert total == pytest.approx(0.004 + 0.01 + 0.05 + 0.5 + 3.0)
    counts = [count for _, count in buckets]
    assert counts == sorted(counts)


def test_an_empty_histogram_still_has_every_bucket_at_zero():
    families = parse(render(full_snapshot(latency=Histogram(buckets=(0.5, 1)))))
    samples = families["shipguard_processing_latency_seconds"]["samples"]
    assert [(s[0], s[1].get("le"), s[2]) for s in samples] == [
        ("shipguard_processing_latency_seconds_bucket", "0.5", 0),
        ("shipguard_processing_latency_seconds_bucket", "1.0", 0),
        ("shipguard_processing_latency_seconds_bucket", "+Inf", 0),
        ("shipguard_processing_latency_seconds_sum", None, 0),
        ("shipguard_processing_latency_seconds_count", None, 0)]


def test_without_a_latency_histogram_the_family_is_left_out():
    assert "shipguard_processing_latency_seconds" not in parse(render(full_snapshot(latency=None)))


def test_label_values_escape_backslash_quote_and_newline_and_parse_back_to_the_original():
    hostile = 'a\\b "quoted"\nnext line, and {braces}=x'
    text = render(full_snapshot(consumed={hostile: 1}))
    assert '\\\\b \\"quoted\\"\\nnext' in text
    assert "\n" not in text.split("shipguard_events_consumed_total{", 1)[1].split("}", 1)[0]
    consumed = parse(text)["shipguard_events_consumed_total"]
    assert [(s[1]["topic"], s[2]) for s in consumed["samples"]] == [(hostile, 1)]


def test_help_text_escapes_backslash_and_newline():
    text = exposition([Family("x_total", "counter", "one\\two\nthree", (sample(1),))])
    assert text.splitlines()[0] == "# HELP x_total one\\\\two\\nthree"
    assert parse(text)["x_total"]["help"] == "one\\two\nthree"


def test_bad_metric_and_label_names_and_counters_without_total_are_refused():
    with pytest.raises(ValueError):
        Family("bad-name", "gauge", "h")
    with pytest.raises(ValueError):
        Family("requests", "counter", "h")
    with pytest.raises(ValueError):
        Family("x", "gauge", "h", (sample(1, **{"le": "1"}),))
    with pytest.raises(ValueError):
        Family("x", "summary", "h")


def test_histogram_bounds_must_increase_and_a_given_inf_is_not_doubled():
    with pytest.raises(ValueError):
        Histogram(buckets=(1.0, 0.5))
    with pytest.raises(ValueError):
        Histogram(buckets=(1.0, 1.0))
    with pytest.raises(ValueError):
        Histogram(buckets=(math.inf,))
    histogram = Histogram(buckets=(1, math.inf))
    histogram.observe(7)
    assert histogram.cumulative() == [(1.0, 0), (math.inf, 1)]


def test_a_histogram_copy_does_not_move_with_the_original():
    original = Histogram(buckets=(1.0,))
    copy = original.copy()
    original.observe(0.5)
    assert copy.count == 0 and copy.cumulative() == [(1.0, 0), (math.inf, 0)]


def test_special_float_values_use_prometheus_spelling():
    text = exposition([Family("g", "gauge", "h", (sample(math.nan, k="a"), sample(math.inf, k="b"),
                                                   sample(-math.inf, k="c"), sample(0.25, k="d")))])
    assert text.splitlines()[2:] == ['g{k="a"} NaN', 'g{k="b"} +Inf', 'g{k="c"} -Inf', 'g{k="d"} 0.25']


def test_lag_is_end_minus_next_offset_summed_over_assigned_input_partitions():
    assigned = [("order-paid", 0), ("order-paid", 1), ("tracking-scans", 0), ("shipguard-order-feed", 0)]
    ends = {("order-paid", 0): 100, ("order-paid", 1): 50, ("tracking-scans", 0): 10,
            ("shipguard-order-feed", 0): 999, ("order-paid", 7): 1000}
    processed = {("order-paid", 0): 89, ("tracking-scans", 0): 9}
    committed = {("order-paid", 1): 20}
    lag = consumer_lag(assigned, ends, processed, lambda tp: committed.get(tp, 0),
                       ("order-paid", "tracking-scans", "waybill-uploaded"))
    # p0: 100 - 89 - 1 = 10; p1: nothing processed yet, from its committed offset 20: 30
    assert lag == {"order-paid": 40, "tracking-scans": 0}


def test_lag_lists_a_topic_with_an_unknown_end_as_zero_and_is_never_negative():
    lag = consumer_lag([("order-paid", 0), ("clock-ticks", 0)], {("clock-ticks", 0): 3},
                       {("clock-ticks", 0): 9}, lambda tp: 0, ("order-paid", "clock-ticks"))
    assert lag == {"order-paid": 0, "clock-ticks": 0}


def fake_shell(clock_mode: str, ends: dict) -> SimpleNamespace:
    metrics = Metrics(consumed=Counter({"order-paid": 3}), outputs=Counter({("NO_PICKUP", "WARNING"): 1}),
                      dead_letters=1, duplicates=2, latency=Histogram(buckets=(1.0,)))
    return SimpleNamespace(
        metrics=metrics, clock_mode=clock_mode, partitions=8,
        time=SimpleNamespace(ends=ends, processed={("order-paid", 0): 4}, external={"order-paid"}),
        broker=SimpleNamespace(assigned=lambda: [("order-paid", 0), ("shipguard-order-feed", 0)]),
        reading=SimpleNamespace(first_offset=lambda tp: 0),
        stores=SimpleNamespace(orders={"A": 1, "B": 2}, waybills={"W": 1}),
        pending_deadlines=lambda: 3)


def test_the_snapshot_takes_lag_from_the_shells_end_offsets_in_event_mode():
    snapshot = take_snapshot(fake_shell("event", {("order-paid", 0): 10}), True, lambda tp: 1_000)
    assert snapshot.lag == {"order-paid": 5}
    assert (snapshot.open_orders, snapshot.open_waybills, snapshot.pending_deadlines) == (2, 1, 3)
    assert snapshot.consumed == {"order-paid": 3} and snapshot.duplicates == 2 and snapshot.ready


def test_the_snapshot_takes_lag_from_the_consumers_high_water_marks_in_wall_mode():
    asked = []

    def highwater(tp):
        asked.append(tp)
        return 7

    snapshot = take_snapshot(fake_shell("wall", {}), False, highwater)
    assert snapshot.lag == {"order-paid": 2} and asked == [("order-paid", 0)]
    assert not snapshot.ready


def test_the_snapshots_histogram_is_a_copy():
    shell = fake_shell("wall", {})
    snapshot = take_snapshot(shell, True, lambda tp: None)
    shell.metrics.latency.observe(0.5)
    assert snapshot.latency.count == 0 and snapshot.lag == {"order-paid": 0}


def test_a_rocksdb_store_is_counted_by_its_estimate_without_reading_every_key():
    from streams.kafka.overrides import RocksDBTableData
    from streams.runtime.web import state_count
    from streams.worker.stores import StateStore

    class Db:
        def __init__(self, n):
            self.n = n

        def property_int_value(self, name):
            assert name == "rocksdb.estimate-num-keys"
            return self.n

    class Raw:
        def _dbs_for_actives(self):
            return iter([Db(3), Db(4)])

        def _size(self):
            raise AssertionError("len() of a RocksDB store reads every key")

    store = StateStore(RocksDBTableData(Raw(), str.encode, bytes, bytes.decode, bytes), None)
    assert state_count(store) == 7
    assert state_count(StateStore({"a": 1, "b": 2}, None)) == 2
