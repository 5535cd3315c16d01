"""The worker's metrics in Prometheus' text exposition format (version 0.0.4), with no dependency.

`Histogram` is what the worker observes into (`shell.metrics.latency`); `Snapshot` is a plain
copy of every number `/metrics` serves, taken by `streams.runtime.web` from the shell and the consumer;
`render(snapshot)` turns it into the exposition text. Everything here is pure: no Faust, no
Kafka, no clock, so the format is unit-tested by parsing it back.

Format rules followed (https://prometheus.io/docs/instrumenting/exposition_formats/): one
`# HELP` and one `# TYPE` line per family before its samples; counters end in `_total`; label
values escape backslash, double quote and newline; HELP text escapes backslash and newline; a
histogram has cumulative `_bucket{le="..."}` samples ending with `le="+Inf"`, whose count
equals `_count`, plus `_sum`.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import get_args

from schemas.outputs import ShopMetric

# Seconds. From 5 ms (a batch on an idle worker) to 2 min (a worker far behind its input).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_KINDS = ("counter", "gauge", "histogram")

# output topic of an outputs-counter key whose first part is not a warning rule
_CANCELLATION = "CANCELLATION"
_SHOP_METRICS = frozenset(get_args(ShopMetric))


class Histogram:
    """Counts of observed values per bucket, plus their sum and count (Prometheus' histogram).

    `buckets` are the upper bounds (inclusive, `le`), strictly increasing and finite; the
    `+Inf` bucket is always added. `observe` is O(log buckets) and allocates nothing.
    """

    def __init__(self, buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        bounds = [float(b) for b in buckets if not math.isinf(float(b))]
        if not bounds:
            raise ValueError("a histogram needs at least one finite bucket bound")
        if any(math.isnan(b) for b in bounds) or any(a >= b for a, b in zip(bounds, bounds[1:], strict=False)):
            raise ValueError(f"bucket bounds must be strictly increasing numbers, got {list(buckets)}")
        self.bounds: tuple[float, ...] = tuple(bounds)
        self.counts = [0] * (len(bounds) + 1)  # per bucket, not cumulative; the last is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Record one observation (seconds, for a latency)."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= it) for every bucket, the last one (inf, count)."""
        out, running = [], 0
        for bound, n in zip(self.bounds + (math.inf,), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out

    def copy(self) -> Histogram:
        """An independent copy (a snapshot must not move while it is rendered)."""
        other = Histogram(self.bounds)
        other.counts, other.sum, other.count = list(self.counts), self.sum, self.count
        return other


@dataclass
class Metrics:
    """Counters a person asks about: what came in, what went out, what was refused or late."""

    consumed: Counter = field(default_factory=Counter)
    outputs: Counter = field(default_factory=Counter)
    dead_letters: int = 0
    late_events: int = 0
    duplicates: int = 0
    latency: Histogram = field(default_factory=Histogram)  # seconds per batch, from read to delivered
    offset_gaps: int = 0  # a record further on than the next one of its partition (skipped records)
    replayed: int = 0     # a record behind the next one of its partition (read again)
    refetched: int = 0    # records the consumer skipped, read by the worker itself (streams.worker.reading)
    deferred: int = 0     # records delivered while the worker was paused for a rebalance, read again after
    not_owned: int = 0    # records of a partition no longer assigned, delivered late and dropped
    forwarded: Counter = field(default_factory=Counter)  # (input topic, "key" | "partition") -> input
    # records read where their key's state does not live, forwarded once through a feed


@dataclass(frozen=True)
class Family:
    """One metric family: name, kind, help and its samples (label set -> value), or a histogram."""

    name: str
    kind: str
    help: str
    samples: tuple[tuple[tuple[tuple[str, str], ...], float], ...] = ()
    histogram: Histogram | None = None

    def __post_init__(self) -> None:
        if not _METRIC_NAME.match(self.name):
            raise ValueError(f"not a Prometheus metric name: {self.name!r}")
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {self.kind!r}")
        if self.kind == "counter" and not self.name.endswith("_total"):
            raise ValueError(f"a counter's name ends in _total: {self.name!r}")
        for labels, _ in self.samples:
            for label, _value in labels:
                if not _LABEL_NAME.match(label) or label.startswith("__") or label == "le":
                    raise ValueError(f"not a usable label name: {label!r}")


def sample(value: float, **labels: str) -> tuple[tuple[tuple[str, str], ...], float]:
    """One sample of a family: its labels (in the given order) and value."""
    return tuple((k, str(v)) for k, v in labels.items()), value


@dataclass
class Snapshot:
    """Every number `/metrics` serves, copied at one moment."""

    consumed: Mapping[str, int] = field(default_factory=dict)             # topic -> records read
    outputs: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (rule|metric|CANCELLATION, stage|code)
    dead_letters: int = 0
    late_events: int = 0
    duplicates: int = 0
    offset_gaps: int = 0
    replayed: int = 0
    refetched: int = 0
    deferred: int = 0
    forwarded: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (input topic, reason)
    latency: Histogram | None = None
    open_orders: int = 0
    open_waybills: int = 0
    pending_deadlines: int = 0
    lag: Mapping[str, int] = field(default_factory=dict)                  # input topic -> records behind
    ready: bool = False


def output_topic(kind: str) -> str:
    """The output topic an outputs-counter key was sent to, from its first part."""
    if kind == _CANCELLATION:
        return "cancellation-outcomes"
    if kind in _SHOP_METRICS:
        return "shop-alerts"
    return "violation-warnings"


def consumer_lag(assigned: Iterable[tuple[str, int]], ends: Mapping[tuple[str, int], int | None],
                 processed: Mapping[tuple[str, int], int], start_offset: Callable[[tuple[str, int]], int],
                 topics: Iterable[str]) -> dict[str, int]:
    """Records behind per topic of `topics`: over assigned partitions, end offset minus next offset.

    `ends` holds each partition's end offset (the offset the next record will get), `processed`
    the last offset the worker processed, `start_offset` where it started when it processed none
    yet (the committed offset). A partition whose end is unknown adds nothing, but its topic is
    still listed (as 0) so that the series does not come and go.
    """
    wanted = set(topics)
    lag: dict[str, int] = {}
    for topic, partition in assigned:
        if topic not in wanted:
            continue
        lag.setdefault(topic, 0)
        tp = (topic, partition)
        end = ends.get(tp)
        if end is None:
            continue
        done = processed.get(tp)
        next_offset = done + 1 if done is not None else (start_offset(tp) or 0)
        lag[topic] += max(0, end - next_offset)
    return lag


def families(snapshot: Snapshot) -> list[Family]:
    """The metric families of a snapshot, in the order they are served."""
    out = [
        Family("shipguard_ready", "gauge", "1 once table recovery is done and partitions are assigned, else 0",
               (sample(int(snapshot.ready)),)),
        Family("shipguard_events_consumed_total", "counter",
               "Records read by the worker, per topic (input topics and its internal feeds)",
               tuple(sample(n, topic=topic) for topic, n in sorted(snapshot.consumed.items()))),
        Family("shipguard_outputs_total", "counter",
               "Records emitted, per output topic, rule (a shop metric, or CANCELLATION) and stage "
               "(for cancellations the decision code)",
               tuple(sample(n, topic=output_topic(kind), rule=kind, stage=stage)
                     for (kind, stage), n in sorted(snapshot.outputs.items()))),
        Family("shipguard_dead_letters_total", "counter", "Input records sent to dead-letters",
               (sample(snapshot.dead_letters),)),
        Family("shipguard_late_events_total", "counter",
               "Events read later than the allowed lateness behind stream time (event clock only)",
               (sample(snapshot.late_events),)),
        Family("shipguard_duplicates_total", "counter",
               "Events whose event_id the order had already seen (no second effect)",
               (sample(snapshot.duplicates),)),
        Family("shipguard_offset_gaps_total", "counter",
               "Records that came further on than the next one of their partition (records skipped by the consumer)",
               (sample(snapshot.offset_gaps),)),
        Family("shipguard_records_refetched_total", "counter",
               "Records the consumer skipped that the worker read from the broker itself and processed",
               (sample(snapshot.refetched),)),
        Family("shipguard_records_deferred_total", "counter",
               "Records delivered while the worker was paused for a rebalance, dropped uncommitted and read again",
               (sample(snapshot.deferred),)),
        Family("shipguard_forwarded_total", "counter",
               "Input records read in another partition than their key's (reason=partition: the publisher's "
               "partitioner is not murmur2; reason=key: the record's key is not its order id or waybill number), "
               "forwarded once through an internal feed to the key's partition",
               tuple(sample(n, topic=topic, reason=reason)
                     for (topic, reason), n in sorted(snapshot.forwarded.items()))),
        Family("shipguard_replayed_total", "counter",
               "Records that came again behind the next one of their partition (read twice; no second effect)",
               (sample(snapshot.replayed),)),
    ]
    if snapshot.latency is not None:
        out.append(Family("shipguard_processing_latency_seconds", "histogram",
                          "Seconds from a batch of consumed records to its outputs sent, one observation "
                          "per batch", histogram=snapshot.latency))
    out += [
        Family("shipguard_open_orders", "gauge",
               "Orders held in this worker's state, closed markers included (RocksDB store: its estimate)",
               (sample(snapshot.open_orders),)),
        Family("shipguard_open_waybills", "gauge",
               "Waybill numbers held in this worker's state (RocksDB store: its estimate)",
               (sample(snapshot.open_waybills),)),
        Family("shipguard_pending_deadlines", "gauge", "Scheduled timers of orders, waybill numbers and shops",
               (sample(snapshot.pending_deadlines),)),
        Family("shipguard_consumer_lag", "gauge",
               "Records of assigned input partitions not processed yet, per input topic",
               tuple(sample(n, topic=topic) for topic, n in sorted(snapshot.lag.items()))),
    ]
    return out


def render(snapshot: Snapshot) -> str:
    """The exposition text of a snapshot."""
    return exposition(families(snapshot))


def exposition(items: Iterable[Family]) -> str:
    """Prometheus text format 0.0.4 of `items`, ending with a newline."""
    lines: list[str] = []
    for family in items:
        lines.append(f"# HELP {family.name} {escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        if family.histogram is not None:
            histogram = family.histogram
            for bound, count in histogram.cumulative():
                lines.append(f"{family.name}_bucket{{le=\"{format_value(bound)}\"}} {count}")
            lines.append(f"{family.name}_sum {format_value(histogram.sum)}")
            lines.append(f"{family.name}_count {histogram.count}")
            continue
        for labels, value in family.samples:
            lines.append(f"{family.name}{format_labels(labels)} {format_value(value)}")
    return "\n".join(lines) + "\n"


def escape_label_value(value: str) -> str:
    """A label value inside double quotes: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def escape_help(text: str) -> str:
    """HELP text: backslash and newline escaped (double quotes stay as they are)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_labels(labels: Sequence[tuple[str, str]]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f"{name}=\"{escape_label_value(value)}\"" for name, value in labels) + "}"


def format_value(value: float) -> str:
    """A sample value: integers without a point, floats in Go's/Prometheus' spelling."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))
