"""In wall-clock mode a deadline fires by the wall clock, with no further input; stopping leaves nothing."""

import os
import time
from datetime import UTC, datetime, timedelta

import pytest

from schemas import codec
from streams.cli.supervise import WorkerProcess, read_topic
from streams.kafka.embedded import EmbeddedBroker, free_port
from tests.factories import order_paid

pytestmark = pytest.mark.integration


def test_a_warning_fires_from_the_wall_clock_with_no_new_input_and_the_worker_stops_cleanly(tmp_path):
    from kafka import KafkaProducer

    with EmbeddedBroker() as broker:
        worker = WorkerProcess(broker.url, tmp_path / "worker.log", clock="wall", app_id="shipguard-wall",
                               web_port=free_port())
        with worker:
            # paid so that ship_by - 6h + lateness falls 3 s from now: nothing else will arrive
            due = datetime.now(UTC) + timedelta(seconds=3)
            paid = due - timedelta(minutes=10) - timedelta(hours=42)
            producer = KafkaProducer(bootstrap_servers=[broker.bootstrap])
            producer.send("order-paid", key=b"W1", value=codec.dumps(order_paid("W1", at=paid)))
            producer.flush()
            producer.close()
            deadline = time.monotonic() + 30
            warnings = []
            while time.monotonic() < deadline and not warnings:
                time.sleep(0.5)
                warnings = read_topic([broker.bootstrap], "violation-warnings", timeout=0.5)
            fired_at = datetime.now(UTC)
            group = worker.process.pid
        assert [(w["order_id"], w["stage"]) for w in warnings] == [("W1", "WARNING")]
        assert fired_at >= due, "it must not fire before its time plus the allowed lateness"
        assert worker.process.poll() is not None
        with pytest.raises(ProcessLookupError):
            os.killpg(group, 0)  # no process of the worker's group is left
