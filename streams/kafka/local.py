"""What the brokers shipguard starts on this machine share: the loopback host, their error, their log."""

from __future__ import annotations

import os
from typing import IO

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
