"""The test proxy forwards bytes both ways, and an outage resets every connection on both sides."""

import socket
import socketserver
import struct
import threading
import time

import pytest

from tests.integration.proxy import TcpProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self):
        self.server.connections += 1
        try:
            while data := self.request.recv(65536):
                self.request.sendall(data)
        except ConnectionResetError:
            self.server.resets += 1


@pytest.fixture
def echo():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    server.connections = server.resets = 0
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(echo):
    with TcpProxy(echo.server_address[1]) as started:
        yield started


def kafka_header(client_id: str) -> bytes:
    """The start of a Kafka request (ApiVersions v0) naming `client_id`."""
    name = client_id.encode()
    body = struct.pack(">hhih", 18, 0, 1, len(name)) + name
    return struct.pack(">i", len(body)) + body


def connect(proxy: TcpProxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=2)


def echoed(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def is_cut(sock: socket.socket) -> bool:
    """True when the connection was reset (or closed) by the other end."""
    try:
        sock.sendall(b"x")
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def refused_at_once(proxy: TcpProxy, first: bytes = b"") -> bool:
    """True when a new connection is reset, whether already in connect() or just after."""
    try:
        with connect(proxy) as sock:
            if first:
                sock.sendall(first)
            return is_cut(sock)
    except ConnectionResetError:
        return True


def wait_for(condition, timeout=2.0):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_the_proxy_forwards_bytes_both_ways_and_counts_connections(proxy, echo):
    with connect(proxy) as a, connect(proxy) as b:
        assert echoed(a, b"hello") == b"hello"
        assert echoed(b, b"x" * 200_000) == b"x" * 200_000
        assert proxy.accepted == 2 and proxy.open_connections == 2 and echo.connections == 2
    assert wait_for(lambda: proxy.open_connections == 0)


def test_an_outage_resets_open_connections_on_both_sides_and_resets_new_ones_until_up(proxy, echo):
    with connect(proxy) as sock:
        assert echoed(sock, b"before") == b"before"
        assert proxy.down() == 1
        assert is_cut(sock)
        assert wait_for(lambda: echo.resets == 1), "the upstream side must be reset too"
    assert refused_at_once(proxy)  # the port still accepts, and resets at once
    assert proxy.refused == 1 and proxy.dropped == 1 and proxy.open_connections == 0
    proxy.up()
    with connect(proxy) as after:
        assert echoed(after, b"after") == b"after"
    assert proxy.accepted == 2


def test_an_outage_spares_the_connections_of_the_named_kafka_clients(echo):
    with TcpProxy(echo.server_address[1], spare={"publisher"}) as proxy:
        with connect(proxy) as worker, connect(proxy) as publisher:
            assert echoed(worker, kafka_header("worker")) == kafka_header("worker")
            assert echoed(publisher, kafka_header("publisher")) == kafka_header("publisher")
            assert proxy.down() == 1
            assert is_cut(worker)
            assert echoed(publisher, b"still here") == b"still here"
            with connect(proxy) as late:
                assert echoed(late, kafka_header("publisher")) == kafka_header("publisher")
            assert refused_at_once(proxy, kafka_header("worker"))
        assert proxy.refused == 1 and proxy.dropped == 1


def test_a_stopped_proxy_closes_its_connections_and_its_port(echo):
    proxy = TcpProxy(echo.server_address[1]).start()
    sock = connect(proxy)
    assert echoed(sock, b"ping") == b"ping"
    proxy.stop()
    assert is_cut(sock)
    sock.close()
    with pytest.raises(ConnectionRefusedError):
        connect(proxy)
    proxy.stop()  # twice is fine
