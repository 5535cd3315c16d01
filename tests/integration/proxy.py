"""A TCP proxy for tests that cut the network between Kafka clients and the broker.

`TcpProxy` listens on 127.0.0.1 (a free port) and forwards every connection to the upstream
address, byte for byte, on an asyncio loop in its own thread. `down()` resets every open
connection on both sides at once (RST, not FIN: what a client sees when a broker dies or a
route breaks) and resets each new one as soon as it is accepted, until `up()`. A Kafka client
reconnects to the address the broker advertises, so the broker must advertise the proxy's port
(`EmbeddedBroker(advertised_port=proxy.port)`), and then *every* client goes through the proxy.
`spare` names Kafka client ids whose connections an outage leaves alone (a publisher that
should keep writing while the worker is cut off); the proxy reads them from the first request
header, which every Kafka client sends as soon as it connects.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import Iterable

HOST = "127.0.0.1"
#: size (int32), api key (int16), api version (int16), correlation id (int32), client id length (int16)
_HEADER = struct.Struct(">ihhih")


class TcpProxy:
    """127.0.0.1:`port` -> `upstream_host`:`upstream_port`, with an off switch."""

    def __init__(self, upstream_port: int, upstream_host: str = HOST, *, spare: Iterable[str] = ()) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.spare = frozenset(spare)
        self.port = 0
        self.accepted = 0  # connections forwarded to the upstream
        self.refused = 0   # connections reset on arrival because the proxy was down
        self.dropped = 0   # open connections reset by down()
        self._down = False
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None

    @property
    def bootstrap(self) -> str:
        """`127.0.0.1:PORT` for plain Kafka clients."""
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        """`kafka://127.0.0.1:PORT`, as SHIPGUARD_BROKER takes it."""
        return f"kafka://{self.bootstrap}"

    @property
    def is_down(self) -> bool:
        return self._down

    @property
    def open_connections(self) -> int:
        return len(self._links)

    def start(self) -> TcpProxy:
        """Listen and forward; returns once the port is bound."""
        if self._thread is not None:
            raise RuntimeError("this proxy is already started")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"tcp-proxy-{self.upstream[1]}",
                                        daemon=True)
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        """Reset every connection, stop listening and end the thread; safe to call twice."""
        loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()

    def down(self) -> int:
        """Start an outage: reset every open connection (except spared clients'); returns how many."""
        return self._call(self._cut())

    def up(self) -> None:
        """End the outage: new connections are forwarded again."""
        self._down = False

    def outage(self, seconds: float) -> int:
        """`down()`, wait `seconds`, `up()`; returns how many open connections were reset."""
        dropped = self.down()
        try:
            time.sleep(seconds)
        finally:
            self.up()
        return dropped

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (f"TcpProxy({self.bootstrap} -> {self.upstream[0]}:{self.upstream[1]}, "
                f"{'down' if self._down else 'up'}, open={self.open_connections}, accepted={self.accepted}, "
                f"refused={self.refused}, dropped={self.dropped})")

    # -- on the proxy's loop -----------------------------------------------------------------

    def _call(self, coro):  # type: ignore[no-untyped-def]
        assert self._loop is not None, "the proxy is not started"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> int:
        self._down = True
        cut = [link for link in self._links if link.client_id not in self.spare]
        for link in cut:
            link.reset()
        self.dropped += len(cut)
        return len(cut)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.reset()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._forward(reader, writer)
        finally:
            self._tasks.discard(task)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first, client_id = b"", None
        if self.spare:  # deciding needs the client id, so read it first
            try:
                first, client_id = await _first_header(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                _reset(writer)
                return
        if self._down and client_id not in self.spare:
            self.refused += 1
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:  # the upstream is gone: the client sees what it would see without us
            self.refused += 1
            _reset(writer)
            return
        self.accepted += 1
        link = _Link(client_id, writer, up_writer)
        self._links.add(link)
        try:
            if first:
                up_writer.write(first)
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        finally:
            self._links.discard(link)
            link.close()


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self, client_id: str | None, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter):
        self.client_id, self.client, self.upstream = client_id, client, upstream

    def reset(self) -> None:
        _reset(self.client)
        _reset(self.upstream)

    def close(self) -> None:
        self.client.close()
        self.upstream.close()


async def _first_header(reader: asyncio.StreamReader) -> tuple[bytes, str | None]:
    """The first request's bytes up to the end of its client id, and that id (None if null)."""
    head = await reader.readexactly(_HEADER.size)
    length = _HEADER.unpack(head)[-1]
    if length < 0:
        return head, None
    name = await reader.readexactly(length)
    return head + name, name.decode("utf-8", "replace")


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of file, then pass the half-close on; a reset ends it quietly."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof() and not writer.is_closing():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST: SO_LINGER 0, then abort (drops whatever is still buffered)."""
    sock = writer.get_extra_info("socket")
    if sock is not None and not writer.is_closing():
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()
