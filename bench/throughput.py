"""Throughput of (a) a plain aiokafka passthrough, (b) a Faust passthrough, (c) the shipguard worker.

All on one embedded broker, in one run, over one simulated stream published once before any
contender starts; each contender runs in its own subprocess with its own consumer group and reads
the same input topics from offset 0. (c) runs again with two worker processes in one group.

How the rate is measured (`watch`). Before a contender starts, the real end offset of every
input partition is known (the stream is fully published; real = raised to Fetch's high-water
mark, docs/broker.md). While it runs, the bench polls the group's committed offsets (kafka-python's
admin; one OffsetFetch, about 2 ms) every POLL_S, and the end offsets of the topics the
contender writes to (its output topic; for the worker its internal feeds and output topics).

* t_first: the first poll at which the contender shows progress: something committed, or one
  of the topics it writes to grew. Writing follows reading within a batch (milliseconds for the
  passthroughs; for the worker, its first batch's processing), so t_first is late by at most
  POLL_S plus that first batch.
* t_last: the first poll at which the committed offset of every input partition has reached its
  real end. For the worker also every record of its internal feeds (the waybill and shop sides'
  work caused by the inputs) must be committed, seen at two polls in a row, SETTLE_S apart: its
  outputs are then complete. Committed offsets trail consumption by up to one commit interval:
  (a) commits every second and at once when caught up (so ~0.1 s at the end), Faust, in (b)
  and (c), every 2.8 s (its default commit_interval), which makes t_last late by 0-2.8 s plus
  POLL_S. For (a) and (b) the time their output topic held every record is recorded too
  (`output_complete_s`): the difference shows that lag.

events/s = input records (every record of the input topics; a clock tick is one record per
partition) / (t_last - t_first). The rate is therefore a slight underestimate, by at most
(commit interval + 2 polls) / window: about 5% for a 60 s window in (b) or (c). CPU s per 1,000
events: the contender's CPU (user + system, process tree, `bench.procstat`) between the poll
before t_first and t_last; the broker's CPU over the same window is reported beside it. Peak RSS:
the process's kernel high-water mark (VmHWM) over its whole life, start-up included; for two
workers the sum of both.

`timeline` (every TIMELINE_S) shows where the time goes: input records not yet committed, and
for the worker its internal feed records not yet committed (after the last input, the closing
clock tick fires every remaining timer and the two sides exchange the consequences).

After (c) the records it wrote to violation-warnings, cancellation-outcomes and shop-alerts
(only this run's: from the end offsets noted before it started) are read back and compared with
the simulator's labels (`simulator.check.compare`), duplicates of (warning_id, stage) counted;
after the two-worker run the full records of the three topics must equal the one-worker run's
(as multisets, order ignored) and the labels. When anything differs (or with `reference`), the
full records of both runs are also compared with the contract's reference reading (the stream
through the worker's logic one record at a time, in process), field by field, to say which run
deviates and in which fields. A difference raises `BenchFailed`; the records are kept in the
work directory (`c-outputs.jsonl`, `c2-outputs.jsonl`, `reference-outputs.jsonl`).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.procstat import ProcStat
from streams import topics as T

POLL_S = 0.2
SETTLE_S = 0.5
TIMELINE_S = 2.0
PARTITIONS = 8
CHECKED_TOPICS = (T.VIOLATION_WARNINGS, T.CANCELLATION_OUTCOMES, T.SHOP_ALERTS)
WRITTEN_TOPICS = CHECKED_TOPICS + (T.DEAD_LETTERS,)
REPO = Path(__file__).resolve().parents[1]

Log = Callable[[str], None]


class BenchFailed(RuntimeError):
    """A contender failed or the worker's outputs differ; the message says what, with log tails."""


def say(message: str) -> None:
    """A progress line on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- offsets ----------------------------------------------------------------------------------


class Offsets:
    """Real end offsets (persistent aiokafka client on its own loop) and a group's committed offsets."""

    def __init__(self, bootstrap: str) -> None:
        from aiokafka import AIOKafkaConsumer
        from kafka import KafkaAdminClient

        self.bootstrap = bootstrap
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="bench-offsets", daemon=True)
        self._thread.start()
        self._partitions: dict[str, list[int]] = {}

        async def make() -> Any:
            consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, client_id="bench-offsets",
                                        enable_auto_commit=False)
            await consumer.start()
            return consumer

        self._consumer = self._run(make())
        self._admin = KafkaAdminClient(bootstrap_servers=[bootstrap], client_id="bench-monitor")

    def _run(self, coro: Any, timeout: float = 30.0) -> Any:
        future: Future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)

    def ends(self, topics: tuple[str, ...] | list[str]) -> dict[tuple[str, int], int]:
        """Real end offset of every partition of `topics` (ListOffsets raised to the Fetch high-water mark)."""
        from aiokafka import TopicPartition

        from streams.kafka.offsets import raise_to_highwater
        from streams.kafka.overrides import client_of

        async def ask() -> dict[tuple[str, int], int]:
            client = client_of(self._consumer)
            missing = [t for t in topics if t not in self._partitions]
            if missing:
                cluster = await client.fetch_all_metadata()
                for topic in missing:
                    parts = cluster.partitions_for_topic(topic)
                    if not parts:
                        raise BenchFailed(f"topic {topic!r} does not exist")
                    self._partitions[topic] = sorted(parts)
                client.set_topics(list(self._partitions))
                await client.force_metadata_update()
            tps = [TopicPartition(t, p) for t in topics for p in self._partitions[t]]
            reported = await self._consumer.end_offsets(tps)
            for tp in tps:
                if client.cluster.leader_for_partition(tp) is None:
                    raise BenchFailed(f"no leader known for {tp}: cannot read its real end offset")
            real = await raise_to_highwater(client, reported)
            return {(tp.topic, tp.partition): real[tp] for tp in tps}

        return self._run(ask())

    def committed(self, group: str) -> dict[tuple[str, int], int]:
        """The group's committed offsets (kafka-python admin: aiokafka's fails on this broker)."""
        offsets = self._admin.list_group_offsets(group).get(group, {})
        return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items() if meta.offset >= 0}

    def close(self) -> None:
        try:
            self._run(self._consumer.stop(), timeout=10)
        except Exception:
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._admin.close()


def read_records(bootstrap: str, topic: str, start: dict[int, int], end: dict[int, int],
                 timeout: float = 60.0) -> list[tuple[bytes | None, bytes]]:
    """(key, value) of every record of `topic` from `start` to `end` (per partition), in partition order."""
    from kafka import KafkaConsumer, TopicPartition

    wanted = {p: (start.get(p, 0), e) for p, e in end.items() if e > start.get(p, 0)}
    if not wanted:
        return []
    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], enable_auto_commit=False, client_id="bench-reader",
                             max_partition_fetch_bytes=4 * 1024 * 1024)
    try:
        tps = {p: TopicPartition(topic, p) for p in wanted}
        consumer.assign(list(tps.values()))
        for p, (s, _) in wanted.items():
            consumer.seek(tps[p], s)
        got: dict[int, list[tuple[bytes | None, bytes]]] = {p: [] for p in wanted}
        deadline = time.monotonic() + timeout
        pending = set(wanted)
        while pending:
            if time.monotonic() > deadline:
                raise BenchFailed(f"reading {topic}: partitions {sorted(pending)} incomplete after {timeout:.0f}s")
            for tp, records in consumer.poll(timeout_ms=500).items():
                limit = wanted[tp.partition][1]
                for record in records:
                    if record.offset < limit:
                        got[tp.partition].append((record.key, record.value))
                if consumer.position(tp) >= limit:
                    pending.discard(tp.partition)
                    consumer.pause(tp)
        return [item for p in sorted(got) for item in got[p]]
    finally:
        consumer.close()


def by_topic(ends: dict[tuple[str, int], int], topic: str) -> dict[int, int]:
    return {p: e for (t, p), e in ends.items() if t == topic}


# -- contenders -------------------------------------------------------------------------------


class Contender:
    """A benchmark subject: one or more processes, started without blocking the watcher."""

    name = ""
    group = ""
    writes: tuple[str, ...] = ()  # topics whose growth shows that it started working
    idle_topics: tuple[str, ...] = ()  # besides the inputs, topics it must have committed entirely

    def start(self) -> None:
        raise NotImplementedError

    def pids(self) -> list[int]:
        """The pids of its root processes once they exist (may be fewer right after start)."""
        raise NotImplementedError

    @property
    def expected_pids(self) -> int:
        return 1

    def failure(self) -> str | None:
        """Why it failed (exited, not ready), or None while it runs."""
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def log_tail(self) -> str:
        raise NotImplementedError


class Subprocess(Contender):
    """A command in its own session with a log file, stopped with SIGTERM (SIGKILL after 15 s)."""

    def __init__(self, name: str, group: str, command: list[str], log_path: Path, env: dict[str, str],
                 writes: tuple[str, ...]) -> None:
        self.name, self.group, self.command, self.log_path, self.env = name, group, command, log_path, env
        self.writes = writes
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True, cwd=str(REPO))

    def pids(self) -> list[int]:
        return [self.process.pid] if self.process else []

    def failure(self) -> str | None:
        if self.process is not None and self.process.poll() is not None:
            return f"{self.name} exited with {self.process.returncode}"
        return None

    def stop(self) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        except ProcessLookupError:
            pass

    def log_tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])
        except OSError:
            return ""


class Workers(Contender):
    """`n` shipguard workers (clock=event) in one group, started together (in threads: start() blocks)."""

    def __init__(self, name: str, broker_url: str, app_id: str, workdir: Path, n: int) -> None:
        from streams.cli.supervise import WorkerProcess
        from streams.kafka.embedded import free_port

        self.name, self.group, self.n = name, app_id, n
        self.workers = [WorkerProcess(broker_url, workdir / f"{app_id}-{i}.log", clock="event", app_id=app_id,
                                      partitions=PARTITIONS, web_port=free_port(),
                                      data_dir=workdir / f"{app_id}-{i}-data")
                        for i in range(n)]
        self.writes = T.internal_topics(app_id) + WRITTEN_TOPICS
        self.idle_topics = T.internal_topics(app_id)
        self.errors: list[str] = []
        self.threads: list[threading.Thread] = []

    @property
    def expected_pids(self) -> int:
        return self.n

    def start(self) -> None:
        def start_one(worker: Any) -> None:
            try:
                worker.start(timeout=120)
            except Exception as exc:
                self.errors.append(str(exc))

        self.threads = [threading.Thread(target=start_one, args=(w,), daemon=True) for w in self.workers]
        for thread in self.threads:
            thread.start()

    def pids(self) -> list[int]:
        return [w.process.pid for w in self.workers if w.process is not None]

    def ready_after(self) -> list[float | None]:
        return [w.ready_after for w in self.workers]

    def failure(self) -> str | None:
        if self.errors:
            return "; ".join(e.splitlines()[0] for e in self.errors)
        for i, w in enumerate(self.workers):
            if w.process is not None and w.process.poll() is not None:
                return f"worker {i} exited with {w.process.returncode}"
        return None

    def stop(self) -> None:
        for thread in self.threads:
            thread.join(timeout=130)
        for w in self.workers:
            w.stop()

    def log_tail(self) -> str:
        return "\n".join(f"--- worker {i} ({w.log_path}) ---\n{w.log_tail()}" for i, w in enumerate(self.workers))


# -- measuring ---------------------------------------------------------------------------------


@dataclass
class Measurement:
    """One contender's numbers (times in seconds, memory in MB)."""

    name: str
    events: int
    seconds: float
    events_per_s: float
    cpu_s: float
    cpu_s_per_1k: float
    peak_rss_mb: float
    broker_cpu_s_per_1k: float
    started_after_s: float  # from spawn to t_first (start-up, group join)
    inputs_committed_s: float  # t_first -> every input committed
    output_complete_s: float | None = None  # t_first -> output topic complete (passthroughs)
    processes: int = 1
    peak_rss_mb_each: list[float] = field(default_factory=list)
    progress_seen_by: str = ""
    #: CPU used by other processes during the window, as a share of the machine (0.02 = 2%):
    #: anything much above 0 means the numbers were disturbed.
    other_cpu_share: float = 0.0
    #: every TIMELINE_S: [s since t_first, input records not yet committed, internal feed records
    #: not yet committed, internal feed records written so far]
    timeline: list[list[float]] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        return asdict(self)


def watch(contender: Contender, offsets: Offsets, input_ends: dict[tuple[str, int], int],
          broker_pid: int | None, timeout: float, expect_output: int | None = None) -> Measurement:
    """Start `contender`, measure it as the module docstring says, stop it; BenchFailed on failure."""
    events = sum(input_ends.values())
    inputs = set(input_ends)
    base = offsets.ends(list(contender.writes))
    broker = ProcStat(broker_pid) if broker_pid else None
    stats: dict[int, ProcStat] = {}
    spawned = time.monotonic()
    contender.start()
    deadline = spawned + timeout

    me = psutil.Process()

    def sample() -> tuple[float, float, float, float]:
        """(time, contender CPU s, broker CPU s, CPU s of everything else on the machine)."""
        for pid in contender.pids():
            if pid not in stats:
                stats[pid] = ProcStat(pid)
        cpu = sum(s.sample().cpu_s for s in stats.values())
        broker_cpu = broker.sample().cpu_s if broker else 0.0
        machine = psutil.cpu_times()
        busy = machine.user + machine.nice + machine.system + getattr(machine, "irq", 0.0) \
            + getattr(machine, "softirq", 0.0) + getattr(machine, "steal", 0.0)
        own = me.cpu_times()
        return time.monotonic(), cpu, broker_cpu, busy - cpu - broker_cpu - own.user - own.system

    def check_alive(stage: str) -> None:
        problem = contender.failure()
        if problem is None and time.monotonic() > deadline:
            problem = f"{contender.name} not done after {timeout:.0f}s ({stage})"
        if problem:
            raise BenchFailed(f"{problem}\n{contender.log_tail()}")

    try:
        # t_first
        previous = sample()
        seen_by = ""
        while True:
            check_alive("waiting for it to start consuming")
            time.sleep(POLL_S / 2)
            now = sample()
            committed = offsets.committed(contender.group)
            if any(committed.get(tp, 0) > 0 for tp in inputs):
                seen_by = "committed offsets"
            else:
                grown = offsets.ends(list(contender.writes))
                if any(grown[tp] > base.get(tp, 0) for tp in grown):
                    seen_by = "its output topics growing"
            if seen_by:
                break
            previous = now
        # t_first is this poll; the CPU baseline the one before it, so the window's CPU is all in.
        t_first, t_cpu_first, cpu_first, broker_first, other_first = now[0], *previous
        # t_last on the inputs (and the output topic's completion for the passthroughs)
        output_done: float | None = None
        timeline: list[list[float]] = []
        next_point = t_first

        def record(now: tuple, committed: dict, ends: dict | None = None) -> None:
            """Every TIMELINE_S: [s since t_first, inputs left, internal records left, internal records written]."""
            nonlocal next_point
            if now[0] < next_point:
                return
            next_point = now[0] + TIMELINE_S
            left = sum(max(0, end - committed.get(tp, 0)) for tp, end in input_ends.items())
            if contender.idle_topics and ends is None:
                ends = offsets.ends(list(contender.idle_topics))
            internal = [sum(max(0, e - committed.get(tp, 0)) for tp, e in ends.items()), sum(ends.values())] \
                if ends else [0, 0]
            timeline.append([round(now[0] - t_first, 1), left, *internal])

        while True:
            check_alive("consuming the inputs")
            now = sample()
            committed = offsets.committed(contender.group)
            record(now, committed)
            if expect_output is not None and output_done is None:
                grown = offsets.ends(list(contender.writes))
                if sum(grown.values()) - sum(base.values()) >= expect_output:
                    output_done = now[0]
            if all(committed.get(tp, 0) >= end for tp, end in input_ends.items()):
                t_inputs = now
                break
            time.sleep(POLL_S)
        t_last = t_inputs
        # the worker: every internal record committed too, twice SETTLE_S apart
        if contender.idle_topics:
            first_idle = None
            while True:
                check_alive("draining its internal feeds")
                now = sample()
                committed = offsets.committed(contender.group)
                ends = offsets.ends(list(contender.idle_topics))
                record(now, committed, ends)
                lag = sum(max(0, end - committed.get(tp, 0)) for tp, end in ends.items())
                if lag == 0:
                    if first_idle is not None and now[0] - first_idle[0] >= SETTLE_S:
                        t_last = first_idle
                        break
                    first_idle = first_idle or now
                    time.sleep(SETTLE_S)
                else:
                    first_idle = None
                    time.sleep(POLL_S)
        if expect_output is not None:
            grown = offsets.ends(list(contender.writes))
            written = sum(grown.values()) - sum(base.values())
            if written != expect_output:
                raise BenchFailed(f"{contender.name} wrote {written} records for {expect_output} inputs")
            output_done = output_done or t_last[0]
        seconds = t_last[0] - t_first
        cpu = t_last[1] - cpu_first
        peaks = []
        for s in stats.values():
            s.stop()
            peaks.append(round(s.peak_mb, 1))
        return Measurement(
            name=contender.name, events=events, seconds=round(seconds, 3),
            events_per_s=round(events / seconds, 1), cpu_s=round(cpu, 2),
            cpu_s_per_1k=round(1000 * cpu / events, 4), peak_rss_mb=round(sum(peaks), 1),
            broker_cpu_s_per_1k=round(1000 * (t_last[2] - broker_first) / events, 4),
            other_cpu_share=round(max(0.0, t_last[3] - other_first)
                                  / ((t_last[0] - t_cpu_first) * (os.cpu_count() or 1)), 3),
            started_after_s=round(t_first - spawned, 2), inputs_committed_s=round(t_inputs[0] - t_first, 3),
            output_complete_s=None if output_done is None else round(output_done - t_first, 3),
            processes=len(stats), peak_rss_mb_each=peaks, progress_seen_by=seen_by, timeline=timeline)
    finally:
        contender.stop()


# -- the stream ---------------------------------------------------------------------------------


@dataclass
class Stream:
    events_path: Path
    labels: dict[str, Any]
    input_ends: dict[tuple[str, int], int]
    lines: int
    publish_seconds: float
    simulate_seconds: float

    @property
    def events(self) -> int:
        return sum(self.input_ends.values())


def simulate(workdir: Path, orders: int, days: int, seed: int, duplicate_share: float) -> tuple[Path, Path, float]:
    events, labels = workdir / "events.jsonl", workdir / "labels.json"
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "streams.cli", "simulate", "--orders", str(orders),
                           "--days", str(days), "--seed", str(seed), "--duplicate-share", str(duplicate_share),
                           "--out", str(events), "--labels", str(labels)],
                          cwd=str(REPO), capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchFailed(f"shipguard simulate failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    (workdir / "simulate.txt").write_text(done.stdout + done.stderr)
    return events, labels, time.monotonic() - began


def publish(bootstrap: str, offsets: Offsets, events: Path, labels: Path, simulate_seconds: float) -> Stream:
    """Create the contract topics (8 partitions) and publish the stream once, in order."""
    from streams.cli.replay import replay
    from streams.kafka import admin

    admin.ensure_topics(bootstrap, T.CONTRACT_TOPICS, PARTITIONS)
    report = replay(events, [bootstrap], PARTITIONS, progress=False)
    input_ends = offsets.ends(list(T.INPUT_TOPICS))
    if sum(input_ends.values()) != report.total:
        raise BenchFailed(f"published {report.total} records but the input topics hold {sum(input_ends.values())}")
    lines = sum(1 for line in open(events, "rb") if line.strip())
    return Stream(events, json.loads(labels.read_text(encoding="utf-8")), input_ends, lines,
                  report.seconds, simulate_seconds)


# -- checking the worker's outputs ----------------------------------------------------------------


def canonical(key: bytes | None, value: bytes) -> tuple[bytes | None, bytes]:
    import orjson

    try:
        return key, orjson.dumps(orjson.loads(value), option=orjson.OPT_SORT_KEYS)
    except orjson.JSONDecodeError:
        return key, value


def collect_outputs(offsets: Offsets, before: dict[tuple[str, int], int]) -> dict[str, list[tuple]]:
    """This run's records of the checked topics and dead-letters (those written after `before`)."""
    after = offsets.ends(list(WRITTEN_TOPICS))
    return {topic: read_records(offsets.bootstrap, topic, by_topic(before, topic), by_topic(after, topic))
            for topic in WRITTEN_TOPICS}


def verify_against_labels(labels: dict[str, Any], outputs: dict[str, list[tuple]]) -> dict[str, Any]:
    """Compare with the labels; a dict for the results file (with `ok` and `differences`)."""
    from schemas import codec
    from simulator.check import compare, differences

    decoded = {t: [codec.loads(v) for _, v in outputs[t]] for t in CHECKED_TOPICS}
    report = compare(labels, decoded[T.VIOLATION_WARNINGS], decoded[T.CANCELLATION_OUTCOMES],
                     decoded[T.SHOP_ALERTS])
    stages = Counter((w["warning_id"], w["stage"]) for w in decoded[T.VIOLATION_WARNINGS])
    duplicates = sum(n - 1 for n in stages.values() if n > 1)
    diff = differences(report)
    if duplicates:
        diff.append(f"  {duplicates} duplicated (warning_id, stage) records")
    return {
        "ok": report.perfect and duplicates == 0,
        "warnings": {"expected": sum(report.expected.values()), "emitted": sum(report.emitted.values()),
                     "matched": sum(report.matched.values())},
        "outcomes": {"expected": report.outcomes_expected, "emitted": report.outcomes_emitted,
                     "matched": report.outcomes_matched},
        "shop_alerts": {"expected": report.alerts_expected, "emitted": report.alerts_emitted,
                        "matched": report.alerts_matched},
        "duplicate_warning_stages": duplicates,
        "dead_letters": len(outputs[T.DEAD_LETTERS]),
        "differences": diff,
        "table": report.table(),
    }


IDENTITY = {T.VIOLATION_WARNINGS: ("warning_id", "stage"), T.CANCELLATION_OUTCOMES: ("request_event_id",),
            T.SHOP_ALERTS: ("alert_id", "stage")}


def _differing_paths(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted paths where two decoded JSON values differ (a key missing on one side counts)."""
    if isinstance(a, dict) and isinstance(b, dict):
        paths = []
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                paths.append(f"{prefix}{k}")
            elif a[k] != b[k]:
                paths.extend(_differing_paths(a[k], b[k], f"{prefix}{k}."))
        return paths
    return [prefix.rstrip(".") or "(value)"] if a != b else []


def same_outputs(one: dict[str, list[tuple]], other: dict[str, list[tuple]],
                 names: tuple[str, str] = ("one worker", "two workers")) -> dict[str, Any]:
    """Full records of the checked topics as multisets (order ignored): equal, or what differs.

    Records present on one side only are paired by identity ((warning_id, stage), request_event_id,
    (alert_id, stage)); for a pair the differing fields are counted by dotted path, so a difference
    in evidence shows as e.g. `evidence.first_upload: 40`.
    """
    from schemas import codec

    a_name, b_name = names
    result: dict[str, Any] = {"ok": True, "compared": list(names), "per_topic": {}, "examples": []}
    for topic in CHECKED_TOPICS:
        a = Counter(canonical(k, v) for k, v in one[topic])
        b = Counter(canonical(k, v) for k, v in other[topic])
        only_a, only_b = a - b, b - a
        entry: dict[str, Any] = {a_name: sum(a.values()), b_name: sum(b.values()),
                                 f"only_{a_name}": sum(only_a.values()), f"only_{b_name}": sum(only_b.values())}
        if only_a or only_b:
            result["ok"] = False
            fields = IDENTITY[topic]
            index_a = {tuple(d.get(f) for f in fields): d for d in (codec.loads(v) for _, v in only_a.elements())}
            index_b = {tuple(d.get(f) for f in fields): d for d in (codec.loads(v) for _, v in only_b.elements())}
            paths: Counter = Counter()
            for ident in sorted(set(index_a) & set(index_b), key=str):
                differing = _differing_paths(index_a[ident], index_b[ident])
                paths.update(differing)
                if len(result["examples"]) < 6:
                    da, db = index_a[ident], index_b[ident]
                    detail = "; ".join(f"{path}: {a_name} {_at(da, path)!r:.160} / {b_name} {_at(db, path)!r:.160}"
                                       for path in differing[:3])
                    result["examples"].append(f"{topic} {ident}: {detail}")
            entry["differing_fields"] = dict(paths.most_common())
            entry[f"ids_only_{a_name}"] = len(set(index_a) - set(index_b))
            entry[f"ids_only_{b_name}"] = len(set(index_b) - set(index_a))
        result["per_topic"][topic] = entry
    return result


def _at(record: dict, path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        value = value.get(part, "(absent)") if isinstance(value, dict) else "(absent)"
    return value


def save_outputs(path: Path, outputs: dict[str, list[tuple]]) -> None:
    """The records as JSON lines {"topic", "key", "value"} (for inspecting a difference later)."""
    with open(path, "w", encoding="utf-8") as handle:
        for topic, records in outputs.items():
            for key, value in records:
                handle.write(json.dumps({"topic": topic, "key": key.decode("utf-8", "replace") if key else None,
                                         "value": value.decode("utf-8", "replace")}, ensure_ascii=False) + "\n")


def reference_outputs(events: Path) -> dict[str, list[tuple]]:
    """The contract's reference reading: the stream through the worker's logic one record at a time.

    `streams.inprocess.engine.InProcessEngine` with the worker's rules and PII salt (what a worker with
    the default environment uses), in this process.
    """
    from streams.config import load_settings
    from streams.inprocess.engine import InProcessEngine
    from streams.rules_file import load_rules

    engine = InProcessEngine(load_rules(), partitions=PARTITIONS, salt=load_settings().pii_salt)
    asyncio.run(engine.run_file(events))
    return {t: [(r.key, r.value) for p in sorted(engine.log[t]) for r in engine.log[t][p]]
            for t in WRITTEN_TOPICS}


# -- the throughput part ------------------------------------------------------------------------


def run(broker: Any, workdir: Path, result: dict[str, Any], *, orders: int, days: int, seed: int,
        duplicate_share: float, scaleout: bool, reference: bool = False, log: Log = say) -> dict[str, Any]:
    """Every throughput phase on `broker` (started, empty), filling `result` (also when it fails).

    Raises BenchFailed when a contender fails or the worker's outputs differ; `result` then holds
    what was measured so far and `failure`. With `reference`, or whenever a check failed, the
    full output records are also compared with the one-record-at-a-time reading in process.
    """
    began = time.monotonic()
    run_id = uuid.uuid4().hex[:6]
    timings: dict[str, float] = {}
    result.update({"rows": {}, "checks": {}, "timings": timings})
    offsets: Offsets | None = None
    try:
        log(f"simulating {orders} orders over {days} days (seed {seed}, duplicates {duplicate_share})")
        events_path, labels_path, sim_s = simulate(workdir, orders, days, seed, duplicate_share)
        offsets = Offsets(broker.bootstrap)
        log(f"publishing the stream to the embedded broker ({events_path.stat().st_size / 1e6:.1f} MB)")
        stream = publish(broker.bootstrap, offsets, events_path, labels_path, sim_s)
        timings["simulate_s"], timings["publish_s"] = round(sim_s, 1), round(stream.publish_seconds, 1)
        result["stream"] = {
            "orders": orders, "days": days, "seed": seed, "duplicate_share": duplicate_share,
            "file_lines": stream.lines, "input_records": stream.events,
            "input_records_per_topic": {t: sum(by_topic(stream.input_ends, t).values()) for t in T.INPUT_TOPICS},
            "faults_injected": stream.labels.get("injected"),
            "expected_warning_stages": sum(len(o["expected"]) for o in stream.labels["orders"].values()),
            "expected_outcomes": sum(len(o.get("cancellations", [])) for o in stream.labels["orders"].values()),
            "expected_shop_alerts": len(stream.labels.get("shop_alerts", [])),
        }
        log(f"published {stream.events} input records ({stream.lines} lines) in {stream.publish_seconds:.1f}s")
        timeout = max(180.0, stream.events / 250)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
               "PYTHONUNBUFFERED": "1"}
        from streams.kafka import admin
        from streams.kafka.embedded import free_port

        # (a)
        out_a = f"bench-aiokafka-out-{run_id}"
        admin.ensure_topics(broker.bootstrap, [out_a], PARTITIONS)
        group_a = f"bench-aiokafka-{run_id}"
        log("(a) plain aiokafka passthrough")
        a = watch(Subprocess("a: aiokafka passthrough", group_a,
                             [sys.executable, "-m", "bench.passthrough_aiokafka", "--bootstrap", broker.bootstrap,
                              "--group", group_a, "--out", out_a, *T.INPUT_TOPICS],
                             workdir / "a-aiokafka.log", env, (out_a,)),
                  offsets, stream.input_ends, broker.pid, timeout, expect_output=stream.events)
        result["rows"]["a"] = a.row()
        log(f"(a) {a.events_per_s:,.0f} events/s in {a.seconds:.1f}s")
        # (b)
        out_b, app_b = f"bench-faust-out-{run_id}", f"bench-faust-{run_id}"
        admin.ensure_topics(broker.bootstrap, [out_b], PARTITIONS)
        log("(b) Faust passthrough agent, default settings")
        env_b = {**env, "BENCH_BROKER": broker.url, "BENCH_APP_ID": app_b, "BENCH_OUT": out_b,
                 "BENCH_TOPICS": ",".join(T.INPUT_TOPICS), "BENCH_WEB_PORT": str(free_port()),
                 "BENCH_DATADIR": str(workdir / "b-faust-data")}
        b = watch(Subprocess("b: Faust passthrough", app_b,
                             [sys.executable, "-m", "bench.passthrough_faust", "worker", "-l", "warn"],
                             workdir / "b-faust.log", env_b, (out_b,)),
                  offsets, stream.input_ends, broker.pid, timeout, expect_output=stream.events)
        result["rows"]["b"] = b.row()
        log(f"(b) {b.events_per_s:,.0f} events/s in {b.seconds:.1f}s")
        # (c)
        def run_shipguard(row: str, name: str, processes: int) -> tuple[Any, dict]:
            """Run `processes` shipguard workers in one fresh group; their rate and outputs."""
            group = f"bench-sg{processes}-{run_id}"
            admin.ensure_topics(broker.bootstrap, T.all_topics(group), PARTITIONS)
            before = offsets.ends(list(WRITTEN_TOPICS))
            workers = Workers(name, broker.url, group, workdir, processes)
            measured = watch(workers, offsets, stream.input_ends, broker.pid, timeout)
            result["rows"][row] = {**measured.row(), "ready_after_s": workers.ready_after()}
            return measured, before

        log("(c) shipguard worker, every rule on, clock=event")
        c, before = run_shipguard("c", "c: shipguard worker", 1)
        log(f"(c) {c.events_per_s:,.0f} events/s in {c.seconds:.1f}s; reading its outputs back")
        outputs_c = collect_outputs(offsets, before)
        save_outputs(workdir / "c-outputs.jsonl", outputs_c)
        problems: list[str] = []
        check_c = verify_against_labels(stream.labels, outputs_c)
        result["checks"]["c_vs_labels"] = check_c
        if check_c["ok"]:
            log(f"(c) outputs equal the labels: {check_c['warnings']['emitted']} warning stages, "
                f"{check_c['outcomes']['emitted']} outcomes, {check_c['shop_alerts']['emitted']} shop alerts, "
                f"0 duplicates")
        else:
            problems.append("(c)'s outputs differ from the simulator's labels:\n" + "\n".join(check_c["differences"])
                            + "\n" + check_c["table"])
            log("(c) outputs DIFFER from the labels (details at the end)")
        # (c) x2
        outputs_c2 = None
        if scaleout:
            log("(c x2) two shipguard workers in one group")
            c2, before = run_shipguard("c2", "c x2: two shipguard workers", 2)
            result["scaleout_speedup"] = round(c2.events_per_s / c.events_per_s, 3)
            log(f"(c x2) {c2.events_per_s:,.0f} events/s in {c2.seconds:.1f}s "
                f"(x{result['scaleout_speedup']:.2f}); reading its outputs back")
            outputs_c2 = collect_outputs(offsets, before)
            save_outputs(workdir / "c2-outputs.jsonl", outputs_c2)
            check_c2 = verify_against_labels(stream.labels, outputs_c2)
            identical = same_outputs(outputs_c, outputs_c2)
            result["checks"]["c2_vs_labels"] = check_c2
            result["checks"]["c2_vs_c"] = identical
            if not check_c2["ok"]:
                problems.append("two workers' outputs differ from the labels:\n" + "\n".join(check_c2["differences"]))
            if not identical["ok"]:
                problems.append("two workers' full output records differ from one worker's: "
                                + json.dumps(identical["per_topic"]) + "\n" + "\n".join(identical["examples"]))
            log("(c x2) outputs " + ("identical to one worker's" if identical["ok"] else "DIFFER from one worker's")
                + " and " + ("equal to the labels" if check_c2["ok"] else "DIFFER from the labels"))
        if reference or problems:
            log("computing the one-record-at-a-time reference in process (about a minute per 100,000 events)")
            ref = reference_outputs(stream.events_path)
            save_outputs(workdir / "reference-outputs.jsonl", ref)
            result["checks"]["c_vs_reference"] = same_outputs(ref, outputs_c, ("reference", "one worker"))
            if outputs_c2 is not None:
                result["checks"]["c2_vs_reference"] = same_outputs(ref, outputs_c2, ("reference", "two workers"))
            for key, label in (("c_vs_reference", "one worker"), ("c2_vs_reference", "two workers")):
                if key in result["checks"]:
                    same = result["checks"][key]
                    log(f"{label}: full records " + ("equal to" if same["ok"] else "DIFFER from")
                        + " the one-at-a-time reference")
                    if not same["ok"]:
                        problems.append(f"{label}'s full output records differ from the one-at-a-time reference: "
                                        + json.dumps(same["per_topic"]) + "\n" + "\n".join(same["examples"]))
        if problems:
            raise BenchFailed("\n".join(problems))
    except BenchFailed as exc:
        result["failure"] = str(exc)
        raise
    finally:
        rows = result["rows"]
        for key in ("c", "c2"):
            if key in rows and "a" in rows and "b" in rows:
                rows[key]["ratio_to_a"] = round(rows[key]["events_per_s"] / rows["a"]["events_per_s"], 4)
                rows[key]["ratio_to_b"] = round(rows[key]["events_per_s"] / rows["b"]["events_per_s"], 4)
        timings["throughput_total_s"] = round(time.monotonic() - began, 1)
        if offsets is not None:
            offsets.close()
    return result
