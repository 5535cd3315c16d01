"""`TlsFront`: TLS before the embedded broker, which cannot serve TLS itself (see `EmbeddedBroker`)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ssl
import threading

from streams.kafka.local import HOST, BrokerError


class TlsFront:
    """TLS on 127.0.0.1:`port`, forwarded as plain TCP to 127.0.0.1:`backend_port`.

    It stands in for the TLS the embedded broker cannot serve (see EmbeddedBroker): an asyncio
    server on a thread of its own, with the PEM certificate chain and key given, asking clients
    for no certificate. Kafka's bytes pass unchanged, SASL included (it runs inside the stream).
    BrokerError when the certificate or key cannot be loaded; OSError when `port` is taken.
    """

    def __init__(self, cert: str, key: str, port: int, backend_port: int) -> None:
        self.port, self.backend_port = port, backend_port
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            self._context.load_cert_chain(cert, key)
        except (ssl.SSLError, OSError) as exc:
            raise BrokerError(f"cannot serve TLS with certificate {cert} and key {key}: {exc}") from None
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    def start(self) -> TlsFront:
        """Listen on `port` and return; the connections are served on the front's own thread."""
        listening: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, args=(listening,), name=f"tls-front-{self.port}",
                                        daemon=True)
        self._thread.start()
        listening.result(timeout=10)
        return self

    def stop(self) -> None:
        """Close the listener and every connection; safe to call twice."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shut_down(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            thread.join(timeout=10)

    def _run(self, listening: concurrent.futures.Future[None]) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._server = self._loop.run_until_complete(asyncio.start_server(
                self._serve, HOST, self.port, ssl=self._context, reuse_address=True))
        except OSError as exc:
            listening.set_exception(exc)
            self._loop.close()
            return
        listening.set_result(None)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    async def _shut_down(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            reader, writer = await asyncio.open_connection(HOST, self.backend_port)
        except OSError:
            client_writer.close()
            self._connections.discard(task)
            return
        try:
            await asyncio.gather(_pipe(client_reader, writer), _pipe(reader, client_writer))
        finally:
            writer.close()
            client_writer.close()
            self._connections.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until either side ends; then close `writer`, which ends the other direction too."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:  # reset, or a TLS error (ssl.SSLError is an OSError)
        pass
    finally:
        writer.close()
