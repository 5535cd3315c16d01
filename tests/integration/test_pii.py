"""Recipient PII never leaves the worker in clear: no output, internal feed, changelog or log line
of a replay holds a recipient's name, phone or street address."""


import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from streams import topics as T
from streams.cli.replay import replay
from streams.cli.supervise import WorkerProcess, wait_idle
from streams.kafka import admin
from streams.kafka.embedded import EmbeddedBroker, free_port
from tests.integration.simulated import simulated_stream

pytestmark = pytest.mark.integration
APP_ID = "shipguard-pii"


def raw_records(bootstrap, topic):
    """Every key and value of `topic` as text (undecodable bytes replaced)."""
    ends = admin.end_offsets(bootstrap, topic)
    consumer = KafkaConsumer(bootstrap_servers=list(bootstrap), enable_auto_commit=False, consumer_timeout_ms=3000)
    try:
        partitions = [TopicPartition(topic, p) for p in ends]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        texts = []
        for record in consumer:
            for part in (record.key, record.value):
                if part is not None:
                    texts.append(part.decode("utf-8", "replace"))
        return texts
    finally:
        consumer.close()


def test_no_output_feed_changelog_or_log_line_holds_a_recipients_name_phone_or_address(tmp_path):
    events, labels = simulated_stream(tmp_path, "--orders", "150", "--days", "3", "--seed", "21")
    secrets = set()
    for line in events.read_text(encoding="utf-8").splitlines():
        message = orjson.loads(line)
        if message["topic"] == T.ORDER_PAID:
            recipient = message["value"]["recipient"]
            secrets |= {recipient["name"], recipient["phone"], recipient["address"]}
    assert len(secrets) > 300, "the stream must carry many recipients to look for"

    with EmbeddedBroker() as broker:
        bootstrap = [broker.bootstrap]
        log = tmp_path / "worker.log"
        with WorkerProcess(broker.url, log, app_id=APP_ID, web_port=free_port(),
                           extra_env={"SHIPGUARD_LOG_LEVEL": "debug"}):
            replay(events, bootstrap, 8, progress=False)
            wait_idle(bootstrap, APP_ID, timeout=120)
        written = T.OUTPUT_TOPICS + T.internal_topics(APP_ID) + tuple(
            f"{APP_ID}-{table}-changelog" for table in ("orders", "waybills", "shops"))
        places = {topic: raw_records(bootstrap, topic) for topic in written}
    places["worker log"] = [log.read_text(encoding="utf-8", errors="replace")]
    assert places["violation-warnings"] and places[f"{APP_ID}-orders-changelog"], "nothing was written to search"
    leaks = sorted({(where, secret) for where, texts in places.items() for text in texts
                    for secret in secrets if secret in text})
    assert leaks == []
