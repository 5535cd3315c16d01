"""Run and watch a worker process: used by `shipguard demo` (make run) and the integration tests.

`WorkerProcess` starts `shipguard worker` with its own environment and log file, waits until it
logs that it is ready (table recovery done, partitions assigned), and stops it without leaving
a process behind. `wait_idle` waits until the worker's consumer group has committed every input
and internal record; `read_topic` reads a topic from the beginning. Their `security` is the
client keywords from `streams.kafka.security` (None: PLAINTEXT).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from schemas import codec
from streams import topics as T

READY_MARK = "shipguard worker ready"


def stop_group(process: subprocess.Popen | None, grace: float) -> int | None:
    """SIGTERM a process started with its own session, SIGKILL its group after `grace` seconds;
    returns its exit code (None if it never started)."""
    if process is None:
        return None
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        except ProcessLookupError:
            pass
    return process.returncode


class WorkerFailed(RuntimeError):
    """The worker exited or did not become ready; the message carries its log tail."""


class WorkerProcess:
    """A `shipguard worker` subprocess with a log file."""

    def __init__(self, broker_url: str, log_path: Path, *, clock: str = "event", app_id: str = "shipguard",
                 partitions: int = 8, web_port: int = 6066, data_dir: Path | None = None,
                 extra_env: dict[str, str] | None = None, wrapper: Sequence[str] = ()) -> None:
        self.log_path = log_path
        self.wrapper = tuple(wrapper)  # a command the worker runs under (`ip netns exec NAME`, in a test)
        self.env = {**os.environ, "SHIPGUARD_BROKER": broker_url, "SHIPGUARD_CLOCK": clock,
                    "SHIPGUARD_APP_ID": app_id, "SHIPGUARD_PARTITIONS": str(partitions),
                    "SHIPGUARD_WEB_PORT": str(web_port), "PYTHONUNBUFFERED": "1",
                    "SHIPGUARD_DATA_DIR": str(data_dir or log_path.parent / f"{app_id}-data"),
                    **(extra_env or {})}
        repo = str(Path(__file__).resolve().parents[2])
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p)
        self.process: subprocess.Popen | None = None
        self.log_start = 0  # where this run's lines begin in a shared log file
        self.started_at = 0.0
        self.ready_after: float | None = None

    def start(self, timeout: float = 60.0) -> WorkerProcess:
        """Spawn the worker and wait until it is ready (raises WorkerFailed with its log tail)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.log_start = log.tell()
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            [*self.wrapper, sys.executable, "-m", "streams.cli", "worker"], env=self.env, stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = self.started_at + timeout
        while time.monotonic() < deadline:
            if READY_MARK in self.log_text():
                self.ready_after = time.monotonic() - self.started_at
                return self
            if self.process.poll() is not None:
                raise WorkerFailed(f"worker exited with {self.process.returncode}:\n{self.log_tail()}")
            time.sleep(0.1)
        self.stop()
        raise WorkerFailed(f"worker not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def log_text(self) -> str:
        """This run's part of the log file."""
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(self.log_start)
                return handle.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        """The last `lines` lines of this run's part of the log file."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; the whole process group goes."""
        stop_group(self.process, grace)

    def kill(self) -> None:
        """SIGKILL at once (crash tests)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def consumed_topics(app_id: str) -> tuple[str, ...]:
    """Every topic the worker consumes: the inputs and its internal feeds (streams.topics.side_of)."""
    return tuple(T.side_of(app_id))


def group_lag(bootstrap: Sequence[str], group: str, topics: Iterable[str],
              security: Mapping[str, Any] | None = None) -> int:
    """Records not yet committed by `group` over `topics` (real end offsets, not ListOffsets)."""
    return _lag_and_ends(bootstrap, group, topics, (), security)[0]


def lagging(bootstrap: Sequence[str], group: str, topics: Iterable[str],
            security: Mapping[str, Any] | None = None) -> dict[tuple[str, int], tuple[int, int]]:
    """The partitions of `topics` that `group` has not committed to the end: (committed, end) each."""
    return _behind_and_ends(bootstrap, group, topics, (), security)[0]


def _lag_and_ends(bootstrap: Sequence[str], group: str, topics: Iterable[str], also: Iterable[str],
                  security: Mapping[str, Any] | None) -> tuple[int, dict[tuple[str, int], int]]:
    """`group`'s lag over `topics`, and the end offsets of `topics` and `also`, in one round of reads."""
    behind, ends = _behind_and_ends(bootstrap, group, topics, also, security)
    return sum(end - done for done, end in behind.values()), ends


def _behind_and_ends(bootstrap: Sequence[str], group: str, topics: Iterable[str], also: Iterable[str],
                     security: Mapping[str, Any] | None
                     ) -> tuple[dict[tuple[str, int], tuple[int, int]], dict[tuple[str, int], int]]:
    """The partitions of `topics` behind (committed, end), and the end offsets of `topics` and `also`.

    The committed offsets are read first: an end read after them is never below them.
    """
    from streams.kafka.admin import committed_offsets, end_offsets

    committed = committed_offsets(bootstrap, group, security=security)
    topics = list(topics)
    ends = {(topic, partition): end for topic in [*topics, *also]
            for partition, end in end_offsets(bootstrap, topic, security).items()}
    behind = {}
    for tp, end in ends.items():
        done = max(0, committed.get(tp, 0))
        if tp[0] in topics and done < end:
            behind[tp] = (done, end)
    return behind, ends


def wait_idle(bootstrap: Sequence[str], app_id: str, timeout: float = 60.0, settle: float = 1.0,
              security: Mapping[str, Any] | None = None) -> float:
    """Wait until the worker has committed every record it consumes, twice `settle` apart."""
    started = time.monotonic()
    topics = consumed_topics(app_id)
    while time.monotonic() - started < timeout:
        if group_lag(bootstrap, app_id, topics, security) == 0:
            time.sleep(settle)
            if group_lag(bootstrap, app_id, topics, security) == 0:
                return time.monotonic() - started
        time.sleep(0.2)
    raise TimeoutError(f"worker still has unprocessed records after {timeout:.0f}s")


def wait_idle_or_stalled(bootstrap: Sequence[str], app_id: str, timeout: float = 120.0, stall: float = 15.0,
                         settle: float = 12.0, security: Mapping[str, Any] | None = None) -> bool:
    """True once the group has committed everything and nothing was written for `settle` seconds;
    False when its lag has not moved for `stall` seconds (a stuck worker) or `timeout` has passed.

    Committed is not finished: the last timers fire on ticks after the last input, once the
    other side's watermarks arrived (feed records, which the group then reads and commits), so
    the consumed and the output topics must also stop growing; for longer than a partition may
    stay quiet before the worker reads it itself (streams.worker.STALLED_AFTER_S).
    """
    started = time.monotonic()
    topics = consumed_topics(app_id)
    last, since = None, time.monotonic()
    quiet_ends, quiet_since = None, time.monotonic()
    while time.monotonic() - started < timeout:
        lag, offsets = _lag_and_ends(bootstrap, app_id, topics, T.OUTPUT_TOPICS, security)
        if lag == 0:
            ends = sum(offsets.values())
            if ends != quiet_ends:
                quiet_ends, quiet_since = ends, time.monotonic()
            elif time.monotonic() - quiet_since >= settle:
                return True
        else:
            quiet_ends = None
        if lag != last:
            last, since = lag, time.monotonic()
        elif lag and time.monotonic() - since > stall:
            return False
        time.sleep(0.5)
    return False


def read_topic(bootstrap: Sequence[str], topic: str, timeout: float = 2.0,
               security: Mapping[str, Any] | None = None) -> list[dict]:
    """Every value on `topic` from the beginning, decoded (waits `timeout` for stragglers)."""
    from kafka import KafkaConsumer, TopicPartition

    from streams.kafka.admin import end_offsets

    ends = end_offsets(bootstrap, topic, security)
    consumer = KafkaConsumer(bootstrap_servers=list(bootstrap), enable_auto_commit=False,
                             client_id="shipguard-reader", consumer_timeout_ms=int(timeout * 1000),
                             **(security or {}))
    try:
        partitions = [TopicPartition(topic, p) for p in ends]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        values, remaining = [], sum(ends.values())
        deadline = time.monotonic() + timeout + 10
        while remaining > 0 and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    values.append(codec.loads(record.value))
                    remaining -= 1
        return values
    finally:
        consumer.close()
