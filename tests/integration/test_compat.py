"""Each deviation of the embedded broker from Kafka, shown on the raw broker, and shipguard's fix, shown working."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import faust
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from streams.config import Settings, load_settings
from streams.kafka import admin, compat, offsets, overrides
from streams.kafka.embedded import EmbeddedBroker
from streams.topics import all_topics, changelog_topics

pytestmark = pytest.mark.integration

T = TypeVar("T")


# -- (a) ListOffsets(latest) is too low -------------------------------------------------------


def test_the_broker_reports_the_end_of_a_partition_as_the_start_of_its_last_batch_plus_one(
    broker: EmbeddedBroker,
) -> None:
    admin.ensure_topics(broker.url, ["offsets"], 1)
    _produce_one_then_a_batch_of_ten(broker, "offsets")

    async def list_offsets_and_fetch() -> tuple[int, int, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            tp = TopicPartition("offsets", 0)
            reported = (await consumer.end_offsets([tp]))[tp]
            consumer.assign([tp])
            consumer.seek(tp, 0)
            records = 0
            while records < 11:
                records += len((await consumer.getmany(tp, timeout_ms=5000)).get(tp, []))
            return reported, consumer.highwater(tp), records
        finally:
            await consumer.stop()

    reported, highwater, records = asyncio.run(list_offsets_and_fetch())

    assert (reported, highwater, records) == (2, 11, 11)  # Kafka: (11, 11, 11)


def test_real_end_offsets_are_the_fetch_high_water_marks(broker: EmbeddedBroker) -> None:
    admin.ensure_topics(broker.url, ["offsets"], 2)
    _produce_one_then_a_batch_of_ten(broker, "offsets")

    assert admin.end_offsets(broker.url, "offsets") == {0: 11, 1: 0}
    assert offsets.real_end_offsets(broker.bootstrap, "offsets") == {0: 11, 1: 0}


def test_real_end_offsets_of_a_missing_topic_is_an_error_and_creates_nothing(broker: EmbeddedBroker) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        admin.end_offsets(broker.url, "nowhere")

    assert admin.partition_counts(broker.url, ["nowhere"]) == {}


def test_the_end_offset_fix_installs_once_and_uninstalls() -> None:
    with _end_offset_fix_restored():
        overrides.uninstall_end_offset_fix()

        assert overrides.install_end_offset_fix(offsets.raise_to_highwater) is True
        assert overrides.install_end_offset_fix(offsets.raise_to_highwater) is False
        assert overrides.uninstall_end_offset_fix() is True
        assert overrides.uninstall_end_offset_fix() is False


PROBE_APP = '''
"""A Faust worker with one Table: `write` mode stores commands, `read` mode dumps what recovery restored."""
import json, os
import faust
from streams.kafka import compat

mode = os.environ["PROBE_MODE"]
app = faust.App(
    os.environ["PROBE_APP_ID"],
    broker=os.environ["PROBE_BROKER"],
    store="memory://",
    datadir=os.environ["PROBE_DATA_DIR"],
    topic_partitions=1,
    producer_linger=0.5,  # so that the changelog's last record batch holds many records
    **compat.faust_settings(embedded=True),
)
if os.environ["PROBE_FIX"] == "1":
    compat.apply(app, embedded=True)
commands = app.topic("probe-commands", value_serializer="json", partitions=1)
# Every run has its own app id, so its own consumer group (none waits for an earlier run to
# leave its group), and all of them recover the same table from one changelog.
changelog = app.topic(  # as Faust makes one, but with the same name for every app id
    "probe-values-changelog", key_type=str, value_type=int, key_serializer="json", value_serializer="json",
    partitions=1, compacting=True, internal=True,
)
values = app.Table("values", key_type=str, value_type=int, default=int, partitions=1, changelog_topic=changelog)

@app.agent(commands)
async def handle(stream):
    async for command in stream:
        if command["op"] == "set" and mode == "write":
            values[command["key"]] = command["value"]
        elif command["op"] == "dump" and mode == "read":
            out = os.environ["PROBE_OUT"]
            with open(out + ".tmp", "w") as file:
                json.dump(dict(values.items()), file)
            os.rename(out + ".tmp", out)

if __name__ == "__main__":
    app.main()
'''


def test_a_faust_table_recovers_every_value_with_the_fix_and_misses_the_last_batch_without_it(
    broker: EmbeddedBroker, tmp_path: Path, python_env: dict[str, str]
) -> None:
    keys = 40
    script = tmp_path / "probe_app.py"
    script.write_text(PROBE_APP)
    admin.ensure_topics(broker.url, ["probe-commands", "probe-values-changelog"], 1)

    def worker(name: str, mode: str, fix: bool) -> subprocess.Popen[bytes]:
        env = {
            **python_env, "PROBE_MODE": mode, "PROBE_FIX": "1" if fix else "0", "PROBE_APP_ID": f"probe-{name}",
            "PROBE_BROKER": broker.url, "PROBE_DATA_DIR": str(tmp_path / name),
            "PROBE_OUT": str(tmp_path / f"{name}.json"),
        }
        with open(tmp_path / f"{name}.log", "wb") as log:
            return subprocess.Popen(
                [sys.executable, str(script), "worker", "--without-web", "-l", "info"],
                env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
            )

    workers: list[subprocess.Popen[bytes]] = []
    try:
        writer = worker("writer", "write", fix=True)
        workers.append(writer)
        _produce(broker, "probe-commands", [{"op": "set", "key": f"k{i}", "value": i} for i in range(keys)])
        _wait_for(lambda: admin.end_offsets(broker.url, "probe-values-changelog")[0] >= keys, 60,
                  "the writer to fill the changelog", tmp_path / "writer.log")
        _stop(writer)

        workers += [worker("fixed", "read", fix=True), worker("stock", "read", fix=False)]
        _produce(broker, "probe-commands", [{"op": "dump"}])
        for name in ("fixed", "stock"):
            _wait_for((tmp_path / f"{name}.json").exists, 60, f"the {name} worker's dump", tmp_path / f"{name}.log")
    finally:
        for proc in workers:
            _stop(proc)

    fixed, stock = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("fixed", "stock"))
    assert fixed == {f"k{i}": i for i in range(keys)}
    assert len(stock) < keys, f"stock Faust recovered all {keys} values: was the broker's ListOffsets fixed?"


# -- (b) no idempotent or transactional producer ----------------------------------------------


def test_the_broker_refuses_an_idempotent_producer(broker: EmbeddedBroker) -> None:
    admin.ensure_topics(broker.url, ["produced"], 1)

    async def start_idempotent_producer() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True)
        try:
            await producer.start()  # sends InitProducerId
        finally:
            await producer.stop()

    with pytest.raises(KafkaError, match="UnknownError"):
        asyncio.run(start_idempotent_producer())


def test_the_faust_settings_give_a_producer_that_delivers(broker: EmbeddedBroker) -> None:
    admin.ensure_topics(broker.url, ["produced"], 1)
    app = faust.App("compat-producer", broker=broker.url, **compat.faust_settings(embedded=True))
    with _end_offset_fix_restored():
        compat.apply(app, embedded=True)

    async def send_with_faust() -> None:
        await app.producer.start()
        try:
            await app.producer.send_and_wait("produced", b"k", b"v", partition=0, timestamp=None, headers=None)
        finally:
            await app.producer.stop()

    asyncio.run(send_with_faust())

    assert app.conf.processing_guarantee.value == "at_least_once"
    assert admin.end_offsets(broker.url, "produced") == {0: 1}


def test_a_plain_producer_with_the_compat_settings_delivers(broker: EmbeddedBroker) -> None:
    admin.ensure_topics(broker.url, ["produced"], 1)

    _produce(broker, "produced", [{"n": 1}, {"n": 2}])

    assert admin.end_offsets(broker.url, "produced") == {0: 2}


def test_apply_refuses_an_exactly_once_app_on_the_embedded_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROCESSING_GUARANTEE", "exactly_once")  # Faust lets it override keyword settings
    app = faust.App("compat-eos", broker="kafka://127.0.0.1:1", **compat.faust_settings(embedded=True))

    with pytest.raises(compat.CompatError, match="at_least_once"):
        compat.apply(app, embedded=True)
    compat.apply(app, embedded=False)  # Kafka: its choice


# -- (c) auto-created topics get 4 partitions -------------------------------------------------


def test_the_broker_auto_creates_a_missing_topic_with_four_partitions(broker: EmbeddedBroker) -> None:
    _produce(broker, "never-created", [{"n": 1}])

    assert admin.partition_counts(broker.url, ["never-created"]) == {"never-created": 4}


def test_topics_created_up_front_keep_the_configured_partition_count(broker: EmbeddedBroker) -> None:
    settings = load_settings({"SHIPGUARD_BROKER": broker.url, "SHIPGUARD_PARTITIONS": "8"})
    topics = all_topics(settings.app_id) + changelog_topics(settings.app_id)

    created = compat.create_topics_up_front(settings)
    _produce(broker, topics[0], [{"n": 1}])

    assert sorted(created) == sorted(topics)
    assert admin.partition_counts(broker.url, topics) == {t: 8 for t in topics}
    assert compat.create_topics_up_front(settings) == []  # idempotent


def test_ensure_topics_warns_about_an_existing_topic_with_another_partition_count(
    broker: EmbeddedBroker, caplog: pytest.LogCaptureFixture
) -> None:
    admin.ensure_topics(broker.url, ["order-paid"], 3)

    with caplog.at_level(logging.WARNING, logger="streams.kafka.admin"):
        created = admin.ensure_topics(broker.url, ["order-paid", "waybill-uploaded"], 8)

    assert created == ["waybill-uploaded"]
    assert admin.partition_counts(broker.url, ["order-paid"]) == {"order-paid": 3}
    [warning] = [r for r in caplog.records if r.name == "streams.kafka.admin"]  # not kafka-python's own
    assert "'order-paid' has 3 partitions, shipguard expects 8" in warning.getMessage()


# -- (d) a group's first join waits half the session timeout ----------------------------------


def test_a_consumer_groups_first_join_waits_half_the_session_timeout(broker: EmbeddedBroker) -> None:
    admin.ensure_topics(broker.url, ["joined"], 1)

    async def join_time(session_timeout_ms: int) -> float:
        consumer = AIOKafkaConsumer(
            "joined", bootstrap_servers=broker.bootstrap, group_id=f"join-{session_timeout_ms}",
            session_timeout_ms=session_timeout_ms, heartbeat_interval_ms=1000,
        )
        started = time.monotonic()
        await consumer.start()
        try:
            while not consumer.assignment():
                await asyncio.sleep(0.02)
            return time.monotonic() - started
        finally:
            await consumer.stop()

    async def both() -> list[float]:
        return list(await asyncio.gather(join_time(4000), join_time(8000)))

    short, long = asyncio.run(both())

    # each join is held for half its session timeout (Kafka: about 3 s for both, whatever the timeout);
    # how much longer a loaded machine takes is not the broker's behaviour, so there is no upper bound
    assert short >= 1.8 and long >= 3.8 and long > short
    assert compat.faust_settings(embedded=True)["broker_session_timeout"] == 10.0
    assert "broker_session_timeout" not in compat.faust_settings(embedded=False)


# -- which broker is it ---------------------------------------------------------------------


def test_detect_recognises_the_embedded_broker_and_an_explicit_setting_wins(broker: EmbeddedBroker) -> None:
    def settings(compat_setting: str) -> Settings:
        return load_settings({"SHIPGUARD_BROKER": broker.url, "SHIPGUARD_BROKER_COMPAT": compat_setting})

    assert compat.detect(settings("auto")) is True
    assert compat.detect(settings("kafka")) is False
    assert compat.detect(settings("embedded")) is True
    assert admin.is_embedded_broker(broker.url) is True
    assert admin.is_embedded_cluster_id("tansu_cluster")
    assert not admin.is_embedded_cluster_id("MkU3OEVBNTcwNTJENDM2Qk")  # what Kafka reports


# -- helpers --------------------------------------------------------------------------------


@contextmanager
def _end_offset_fix_restored() -> Iterator[None]:
    """Leave Faust as the test found it: the fix patches a class, for the whole process."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    before = AIOKafkaConsumerThread._highwaters
    try:
        yield
    finally:
        AIOKafkaConsumerThread._highwaters = before  # type: ignore[method-assign]


def _produce_one_then_a_batch_of_ten(broker: EmbeddedBroker, topic: str) -> None:
    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, **compat.aiokafka_producer_settings(True))
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"alone", partition=0)
            batch = producer.create_batch()
            for i in range(10):
                batch.append(key=None, value=b"batched %d" % i, timestamp=None)
            await (await producer.send_batch(batch, topic, partition=0))
        finally:
            await producer.stop()

    asyncio.run(produce())


def _produce(broker: EmbeddedBroker, topic: str, values: list[dict]) -> None:
    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, **compat.aiokafka_producer_settings(True))
        await producer.start()
        try:
            sent = [await producer.send(topic, json.dumps(value).encode()) for value in values]
            await asyncio.gather(*sent)
        finally:
            await producer.stop()

    asyncio.run(produce())


def _wait_for(probe: Callable[[], T], timeout: float, what: str, log: Path) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; {log.name} ends with:\n{tail}")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_fetch_wait_fix_gives_fausts_worker_consumer_a_short_fetch_wait_and_uninstalls() -> None:
    async def worker_consumer_wait() -> int:
        app = faust.App("shipguard-fetch-wait-probe", broker="kafka://127.0.0.1:9", store="memory://")
        thread = app.consumer._thread
        consumer = thread._create_worker_consumer(app.transport)
        return consumer._fetch_max_wait_ms

    overrides.uninstall_fetch_wait_fix()
    try:
        assert asyncio.run(worker_consumer_wait()) == 1500  # Faust's hard-coded wait
        assert (overrides.install_fetch_wait_fix(compat.EMBEDDED_FETCH_MAX_WAIT_MS) is True
                and overrides.install_fetch_wait_fix(compat.EMBEDDED_FETCH_MAX_WAIT_MS) is False)
        assert asyncio.run(worker_consumer_wait()) == compat.EMBEDDED_FETCH_MAX_WAIT_MS
    finally:
        assert overrides.uninstall_fetch_wait_fix() is True
    assert asyncio.run(worker_consumer_wait()) == 1500
