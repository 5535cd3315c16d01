"""What the brokers shipguard starts on this machine share: the loopback host, their error, their log."""

from __future__ import annotations

import atexit
import os
import subprocess
from typing import IO, Any

HOST = "127.0.0.1"


def log_tail(log: IO[bytes] | None, lines: int = 20) -> str:
    """The last `lines` lines a broker process wrote to `log` (pread: its file offset is left alone,
    since the process shares it and keeps writing)."""
    if log is None:
        return ""
    fd = log.fileno()
    size = os.fstat(fd).st_size
    text = os.pread(fd, 65536, max(0, size - 65536)).decode("utf-8", "replace")
    return "\n".join(text.strip().splitlines()[-lines:])


class BrokerError(RuntimeError):
    """The embedded broker cannot run; the message says why and what to do, in plain words."""


class LocalBroker:
    """What the brokers shipguard starts on this machine share: where they listen, their process,
    their log, and the context manager (start on enter, stop on exit)."""

    def __init__(self, port: int, host: str = HOST) -> None:
        self.host, self.port = host, port
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """Bootstrap URL in SHIPGUARD_BROKER form: `kafka://127.0.0.1:PORT`."""
        return f"kafka://{self.host}:{self.port}"

    @property
    def bootstrap(self) -> str:
        """Bootstrap address for plain Kafka clients: `127.0.0.1:PORT`."""
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """True while the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """Process id of the broker, while it has one."""
        return self._proc.pid if self._proc is not None else None

    def log_tail(self, lines: int = 20) -> str:
        """The last lines the broker printed (empty once stopped)."""
        return log_tail(self._log, lines)

    def start(self, timeout: float = 15.0) -> Any:
        raise NotImplementedError

    def stop(self, grace: float = 5.0) -> None:
        raise NotImplementedError

    def _end_process(self, grace: float) -> None:
        """SIGTERM the broker's process, SIGKILL after `grace` seconds; nothing if it has none."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        atexit.unregister(self.stop)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> Any:
        return self.start() if self._proc is None else self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
