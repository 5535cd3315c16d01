"""`shipguard broker`: the embedded broker or Apache Kafka with every shipguard topic, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from streams.kafka import admin
from streams.kafka.apache import KAFKA_VERSION, ApacheKafka
from streams.kafka.embedded import BrokerError, EmbeddedBroker
from streams.topics import all_topics


def run_broker_cli(port: int, partitions: int, app_id: str, kind: str = "tansu", data_dir: Path | None = None) -> int:
    """`shipguard broker`: start, create every topic, print the URL, run until Ctrl-C or SIGTERM.

    Exit code: 0 after a clean stop, 2 when the broker cannot start (the reason on stderr), 1 if
    it dies while running.
    """
    stop_requested = threading.Event()
    previous = {
        signum: signal.signal(signum, lambda *_: stop_requested.set())
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        broker: EmbeddedBroker | ApacheKafka = (ApacheKafka(port, data_dir) if kind == "kafka"
                                                 else EmbeddedBroker(port))
        with broker:
            topics = all_topics(app_id)
            admin.ensure_topics(broker.bootstrap, topics, partitions)
            print(
                f"shipguard broker ready on {broker.url} ({len(topics)} topics x {partitions} partitions)",
                flush=True,
            )
            if isinstance(broker, ApacheKafka):
                print(f"Apache Kafka {KAFKA_VERSION} (KRaft, one node), data in {broker.data_dir}. Ctrl-C stops it.",
                      flush=True)
            else:
                print("memory storage: every record is lost when it stops. Ctrl-C stops it.", flush=True)
            while not stop_requested.wait(0.5):
                if not broker.running:
                    print(
                        f"shipguard broker: the {kind} broker stopped by itself. Its output ends with:\n"
                        f"{broker.log_tail()}",
                        file=sys.stderr,
                    )
                    return 1
        print("shipguard broker stopped", flush=True)
        return 0
    except (BrokerError, admin.BrokerUnreachable) as exc:
        print(f"shipguard broker: {exc}", file=sys.stderr)
        return 2
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
