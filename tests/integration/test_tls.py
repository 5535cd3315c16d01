"""TLS and SASL configured only through SHIPGUARD_* variables, against the embedded broker.

A throwaway CA signs a certificate for 127.0.0.1/localhost. Tansu 0.6.0 cannot serve TLS itself
(see `EmbeddedBroker`), so `EmbeddedBroker(tls=...)` puts a `TlsFront` before it: the clients
below do real TLS with real verification on a real socket. SASL: Tansu with `--authentication`
offers SCRAM-SHA-256/512 but not PLAIN, and on its memory storage no SCRAM user can log in
(measured: AlterUserScramCredentials answers success, yet the login says `e=unknown-user`), so
the SASL tests watch the requests our clients send and show that they do the SCRAM exchange,
and give up when the broker cannot prove it knows the password.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from streams.cli.replay import make_producer, replay
from streams.cli.supervise import WorkerFailed, WorkerProcess, read_topic, wait_idle
from streams.config import load_settings
from streams.kafka import admin, security
from streams.kafka.compat import EMBEDDED_CLUSTER_ID
from streams.kafka.embedded import HOST, EmbeddedBroker, broker_binary, free_port
from streams.kafka.tls_front import TlsFront

pytestmark = pytest.mark.integration

OPENSSL = "/usr/bin/openssl"
EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "examples" / "ex02-ship-overdue"
APP_ID = "shipguard-tls"
PARTITIONS = 2

METADATA, SASL_HANDSHAKE, SASL_AUTHENTICATE = 3, 17, 36


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, str]:
    """A throwaway CA and a server certificate it signed for 127.0.0.1 and localhost; and another CA."""
    d = tmp_path_factory.mktemp("pki")

    def run(*args: str) -> None:
        subprocess.run([OPENSSL, *args], check=True, capture_output=True)

    for ca in ("ca", "other-ca"):
        run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
            "-subj", f"/CN=shipguard test {ca}", "-keyout", str(d / f"{ca}.key"), "-out", str(d / f"{ca}.pem"),
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=localhost",
        "-keyout", str(d / "server.key"), "-out", str(d / "server.csr"))
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", str(d / "server.csr"), "-CA", str(d / "ca.pem"), "-CAkey", str(d / "ca.key"),
        "-CAcreateserial", "-days", "1", "-extfile", str(d / "server.ext"), "-out", str(d / "server.pem"))
    return {name: str(d / f"{name}.pem") if name != "server.key" else str(d / name)
            for name in ("ca", "other-ca", "server", "server.key")}


@pytest.fixture(scope="module")
def tls_broker(pki) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(tls=(pki["server"], pki["server.key"])) as started:
        yield started


def tls_env(broker: EmbeddedBroker, cafile: str | None) -> dict[str, str]:
    env = {"SHIPGUARD_BROKER": broker.url, "SHIPGUARD_SECURITY_PROTOCOL": "SSL"}
    return {**env, "SHIPGUARD_SSL_CAFILE": cafile} if cafile else env


def handshake(port: int, context: ssl.SSLContext) -> str:
    """A bare TLS handshake with 127.0.0.1:`port`; returns the TLS version agreed."""
    with socket.create_connection((HOST, port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=HOST) as tls:
            return str(tls.version())


# -- (a) nothing but a verifying TLS client gets in ---------------------------------------------


def test_a_client_with_our_ca_completes_the_handshake_and_one_with_another_ca_or_the_system_cas_is_refused(
        tls_broker, pki):
    ours = security.ssl_context(load_settings(tls_env(tls_broker, pki["ca"])))
    assert handshake(tls_broker.port, ours) in ("TLSv1.2", "TLSv1.3")
    for cafile in (pki["other-ca"], None):
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
            handshake(tls_broker.port, security.ssl_context(load_settings(tls_env(tls_broker, cafile))))


def test_a_plaintext_kafka_client_gets_no_answer_from_the_tls_port(tls_broker):
    with pytest.raises(admin.BrokerUnreachable):
        admin.wait_for_broker(tls_broker.bootstrap, timeout=1.5)


def test_a_kafka_client_trusting_another_ca_gets_no_answer_either(tls_broker, pki):
    other = security.kafka_python_kwargs(load_settings(tls_env(tls_broker, pki["other-ca"])))
    with pytest.raises(admin.BrokerUnreachable):
        admin.wait_for_broker(tls_broker.bootstrap, timeout=1.5, security=other)


# -- (b) produce and consume with our keywords, both libraries ----------------------------------


def test_records_go_through_tls_both_ways_with_our_keywords_for_aiokafka_and_kafka_python(tls_broker, pki):
    from aiokafka import AIOKafkaProducer

    settings = load_settings(tls_env(tls_broker, pki["ca"]))
    kafka_python = security.kafka_python_kwargs(settings)
    bootstrap = [tls_broker.bootstrap]
    admin.wait_for_broker(bootstrap, timeout=5, security=kafka_python)
    admin.ensure_topics(bootstrap, ["tls-check"], 2, security=kafka_python)

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **security.aiokafka_kwargs(settings))
        await producer.start()
        try:
            for n in range(3):
                await producer.send_and_wait("tls-check", f'{{"n": {n}}}'.encode(), partition=n % 2)
        finally:
            await producer.stop()

    asyncio.run(produce())
    producer = make_producer(bootstrap, kafka_python)
    producer.send("tls-check", b'{"n": 3}', partition=1)
    producer.flush()
    producer.close()
    # read_topic: end offsets through aiokafka (compat), the records through kafka-python
    assert sorted(v["n"] for v in read_topic(bootstrap, "tls-check", security=kafka_python)) == [0, 1, 2, 3]


# -- (c) a real worker, configured only through the environment ---------------------------------


def test_a_worker_configured_only_through_the_environment_works_over_tls(tls_broker, pki, tmp_path):
    env = {"SHIPGUARD_SECURITY_PROTOCOL": "SSL", "SHIPGUARD_SSL_CAFILE": pki["ca"]}
    settings = load_settings({**tls_env(tls_broker, pki["ca"]), "SHIPGUARD_PARTITIONS": str(PARTITIONS)})
    kwargs = security.kafka_python_kwargs(settings)
    worker = WorkerProcess(tls_broker.url, tmp_path / "worker.log", app_id=APP_ID, partitions=PARTITIONS,
                           web_port=free_port(), extra_env=env)
    with worker:
        assert re.search(r'security="?SSL, CA ', worker.log_text())
        replay(EXAMPLE.with_suffix(".jsonl"), [tls_broker.bootstrap], PARTITIONS, progress=False, security=kwargs)
        wait_idle([tls_broker.bootstrap], APP_ID, timeout=90, security=kwargs)
        warnings = read_topic([tls_broker.bootstrap], "violation-warnings", security=kwargs)
    want = json.loads(EXAMPLE.with_suffix(".expected.json").read_text(encoding="utf-8"))["violation-warnings"]
    assert sorted((w["order_id"], w["rule"], w["stage"], w["occurred_at"]) for w in warnings) == \
        sorted((w["order_id"], w["rule"], w["stage"], w["occurred_at"]) for w in want)


def test_a_worker_with_a_missing_ca_file_stops_at_once_and_names_the_variable(tls_broker, tmp_path):
    env = {"SHIPGUARD_SECURITY_PROTOCOL": "SSL", "SHIPGUARD_SSL_CAFILE": str(tmp_path / "nope.pem")}
    worker = WorkerProcess(tls_broker.url, tmp_path / "worker.log", app_id=APP_ID, web_port=free_port(),
                           extra_env=env)
    with pytest.raises(WorkerFailed, match="exited with 2"):
        worker.start(timeout=30)
    assert "SHIPGUARD_SSL_CAFILE=" in worker.log_text() and "no such file" in worker.log_text()


# -- (d) SASL: the SCRAM exchange happens, PLAIN is refused by the broker ------------------------


class RecordingRelay:
    """127.0.0.1:`port` -> 127.0.0.1:`upstream_port`, noting each request a client sends:
    (api key, SASL mechanism for a SaslHandshake, else None)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.requests: list[tuple[int, str | None]] = []
        self._listener = socket.create_server((HOST, 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def api_keys(self) -> list[int]:
        return [key for key, _ in self.requests]

    def close(self) -> None:
        self._listener.close()
        for sock in self._sockets:
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection((HOST, self.upstream_port))
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, record: bool) -> None:
        buffer = b""
        try:
            while data := source.recv(65536):
                sink.sendall(data)
                buffer += data
                while record and len(buffer) >= 4 and len(buffer) >= 4 + struct.unpack(">i", buffer[:4])[0]:
                    size = struct.unpack(">i", buffer[:4])[0]
                    self._note(buffer[4:4 + size])
                    buffer = buffer[4 + size:]
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _note(self, frame: bytes) -> None:
        api_key, _, _, id_length = struct.unpack(">hhih", frame[:10])
        mechanism = None
        if api_key == SASL_HANDSHAKE:  # v0/v1: a non-flexible header, then the mechanism string
            at = 10 + max(id_length, 0)
            (length,) = struct.unpack(">h", frame[at:at + 2])
            mechanism = frame[at + 2:at + 2 + length].decode()
        self.requests.append((api_key, mechanism))


@contextmanager
def tansu_with_authentication(advertised_port: int) -> Iterator[int]:
    """Tansu with `--authentication` on a private port, advertising `advertised_port`; yields its port."""
    port = free_port()
    proc = subprocess.Popen(
        [broker_binary(), "broker", "--cluster-id", EMBEDDED_CLUSTER_ID, "--storage-engine", "memory://tansu/",
         "--listener-url", f"tcp://{HOST}:{port}", "--advertised-listener-url", f"tcp://{HOST}:{advertised_port}",
         "--authentication"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1"}, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((HOST, port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "tansu --authentication did not start"
                time.sleep(0.02)
        yield port
    finally:
        proc.terminate()
        proc.wait(5)


@pytest.fixture(params=["SASL_PLAINTEXT", "SASL_SSL"])
def sasl_broker(request, pki) -> Iterator[tuple[str, RecordingRelay, dict[str, str]]]:
    """(bootstrap, relay, environment) for Tansu with authentication, behind TLS for SASL_SSL."""
    protocol = request.param
    front_port = free_port()
    advertised = front_port if protocol == "SASL_SSL" else None
    with tansu_with_authentication(advertised or 0) as tansu_port:
        relay = RecordingRelay(tansu_port)
        front = TlsFront(pki["server"], pki["server.key"], front_port, relay.port).start() if advertised else None
        env = {"SHIPGUARD_BROKER": f"kafka://{HOST}:{front_port if front else relay.port}",
               "SHIPGUARD_SECURITY_PROTOCOL": protocol, "SHIPGUARD_SASL_USERNAME": "worker",
               "SHIPGUARD_SASL_PASSWORD": "s3cret-pw", **({"SHIPGUARD_SSL_CAFILE": pki["ca"]} if front else {})}
        try:
            yield env["SHIPGUARD_BROKER"].split("//")[1], relay, env
        finally:
            if front:
                front.stop()
            relay.close()


def aiokafka_start(bootstrap: str, kwargs: dict) -> BaseException | None:
    """Start and stop an aiokafka producer; the exception start() raised, if any."""
    from aiokafka import AIOKafkaProducer

    async def attempt() -> BaseException | None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=3000, **kwargs)
        try:
            await producer.start()
        except Exception as exc:
            return exc
        finally:
            await producer.stop()
        return None

    return asyncio.run(attempt())


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_a_scram_client_from_the_environment_does_the_exchange_and_stops_when_the_broker_cannot_prove_the_password(
        sasl_broker, mechanism):
    bootstrap, relay, env = sasl_broker
    settings = load_settings({**env, "SHIPGUARD_SASL_MECHANISM": mechanism})
    assert aiokafka_start(bootstrap, security.aiokafka_kwargs(settings)) is not None
    with pytest.raises(admin.BrokerUnreachable):
        admin.wait_for_broker(bootstrap, timeout=1.0, security=security.kafka_python_kwargs(settings))
    assert (SASL_HANDSHAKE, mechanism) in relay.requests
    assert relay.api_keys().count(SASL_AUTHENTICATE) >= 4  # client-first and client-final, by both clients
    # Tansu would answer (it lets a connection on after a failed SCRAM exchange): the clients do not ask.
    assert METADATA not in relay.api_keys()


def test_plain_is_refused_by_the_embedded_broker_at_the_handshake(sasl_broker):
    bootstrap, relay, env = sasl_broker
    settings = load_settings({**env, "SHIPGUARD_SASL_MECHANISM": "PLAIN"})
    assert aiokafka_start(bootstrap, security.aiokafka_kwargs(settings)) is not None
    assert (SASL_HANDSHAKE, "PLAIN") in relay.requests
    assert SASL_AUTHENTICATE not in relay.api_keys() and METADATA not in relay.api_keys()


def test_a_client_without_sasl_is_refused_by_a_broker_that_requires_it(sasl_broker, pki):
    bootstrap, relay, env = sasl_broker
    tls = env["SHIPGUARD_SECURITY_PROTOCOL"] == "SASL_SSL"
    plain = {"SHIPGUARD_SECURITY_PROTOCOL": "SSL", "SHIPGUARD_SSL_CAFILE": pki["ca"]} if tls else {}
    with pytest.raises(admin.BrokerUnreachable):
        admin.wait_for_broker(bootstrap, timeout=1.0, security=security.kafka_python_kwargs(load_settings(plain)))
    assert METADATA in relay.api_keys() and SASL_HANDSHAKE not in relay.api_keys()
