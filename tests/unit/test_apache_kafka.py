"""`shipguard broker --kind kafka` without running it: what Java it accepts, why it cannot run, its config."""

from pathlib import Path

import pytest

from streams.kafka import apache


@pytest.mark.parametrize(("banner", "major"), [
    ('openjdk version "17.0.15" 2025-04-15', 17),
    ('openjdk version "21" 2023-09-19', 21),
    ('java version "1.8.0_392"', 8),
    ("no version here", None),
])
def test_the_java_major_version_is_read_from_its_banner(banner, major):
    assert apache._java_major(banner) == major


def test_without_java_on_the_path_it_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert "no `java` on PATH" in (apache.unavailable() or "")


def test_the_node_is_one_kraft_broker_and_controller_on_loopback_with_single_replica_internal_topics(tmp_path):
    node = apache.ApacheKafka(port=19999, data_dir=tmp_path)
    node.data_dir = Path(tmp_path)
    config = dict(line.split("=", 1) for line in node._properties().splitlines() if line)
    assert config["process.roles"] == "broker,controller"
    assert config["listeners"] == (f"PLAINTEXT://127.0.0.1:19999,INTERNAL://127.0.0.1:{node.internal_port},"
                                   f"CONTROLLER://127.0.0.1:{node.controller_port}")
    assert config["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:19999,INTERNAL://127.0.0.1:{node.internal_port}"
    assert config["inter.broker.listener.name"] == "INTERNAL"
    assert config["offsets.topic.replication.factor"] == config["transaction.state.log.replication.factor"] == "1"
    assert config["auto.create.topics.enable"] == "false"
    assert config["log.dirs"] == str(tmp_path / "logs")


def test_clients_can_be_sent_to_another_port_while_the_broker_talks_to_itself_directly(tmp_path):
    node = apache.ApacheKafka(port=19999, data_dir=tmp_path, advertised_port=29999)
    node.data_dir = Path(tmp_path)
    config = dict(line.split("=", 1) for line in node._properties().splitlines() if line)
    assert config["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:29999,INTERNAL://127.0.0.1:{node.internal_port}"
    assert len({node.port, node.internal_port, node.controller_port}) == 3

