"""CPU seconds and peak memory of a process tree, by pid (Linux /proc through psutil).

`ProcStat(pid)` follows the process and its descendants: `sample()` returns the tree's CPU
seconds so far (user + system of every process seen, live or exited) and its RSS now. CPU of a
process is kept at the last value read, so a child that exited between two samples still counts
up to its last sample; children the root reaped also show in the root's `children_user` and
`children_system`, which are added. Peak RSS is the larger of the highest sampled sum of the
tree's RSS and the highest kernel high-water mark (VmHWM, exact, not sampled) of any member, so a
one-process contender (all of ours) gets its exact peak. `start()` samples in a thread every
`interval` seconds until `stop()` or until the root exits.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import psutil


@dataclass
class Sample:
    """One reading: when (monotonic), CPU seconds of the tree so far, RSS of the tree now (bytes)."""

    at: float
    cpu_s: float
    rss: int


def _vm_hwm(pid: int) -> int:
    """VmHWM (peak resident set) of a pid in bytes, 0 when unreadable."""
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class ProcStat:
    """CPU and peak RSS of the process tree rooted at `pid`."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid = pid
        self.interval = interval
        self.root = psutil.Process(pid)
        self._cpu: dict[int, float] = {}  # pid -> last user+system seen (own, not children's)
        self._reaped = 0.0  # root's children_user + children_system
        self.peak_rss = 0  # bytes
        self.peak_hwm = 0  # bytes
        self.last: Sample | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> Sample:
        """Read the tree now; after the root exited, the last reading (with its time)."""
        with self._lock:
            try:
                members = [self.root] + self.root.children(recursive=True)
            except psutil.Error:
                return self.last or Sample(time.monotonic(), 0.0, 0)
            rss = 0
            for proc in members:
                try:
                    with proc.oneshot():
                        times = proc.cpu_times()
                        mem = proc.memory_info()
                except psutil.Error:
                    continue
                self._cpu[proc.pid] = times.user + times.system
                if proc.pid == self.pid:
                    self._reaped = times.children_user + times.children_system
                rss += mem.rss
                self.peak_hwm = max(self.peak_hwm, _vm_hwm(proc.pid))
            self.peak_rss = max(self.peak_rss, rss)
            self.last = Sample(time.monotonic(), sum(self._cpu.values()) + self._reaped, rss)
            return self.last

    @property
    def peak_mb(self) -> float:
        """Peak RSS of the tree in MB (10^6 bytes)."""
        return max(self.peak_rss, self.peak_hwm) / 1e6

    def start(self) -> ProcStat:
        """Sample in a background thread until `stop()` or the root's exit."""
        def loop() -> None:
            while not self._stop.is_set():
                self.sample()
                try:
                    if not self.root.is_running() or self.root.status() == psutil.STATUS_ZOMBIE:
                        return
                except psutil.Error:
                    return
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=loop, name=f"procstat-{self.pid}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> Sample:
        """Take a last sample (if the root still runs), stop the thread, return the last reading."""
        last = self.sample()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return last
