"""Both brokers the integration tier runs on: the embedded Tansu and Apache Kafka (KRaft, one node).

`KINDS` parametrizes a test over both; `new_broker(kind)` gives the broker to start, and skips the
test with the reason when Apache Kafka cannot run here (no Java 17 or Maven).
"""

from __future__ import annotations

from typing import Any

import pytest

from streams.kafka import apache
from streams.kafka.embedded import EmbeddedBroker
from streams.kafka.local import LocalBroker

KINDS = ("tansu", "kafka")


def new_broker(kind: str, port: int | None = None, advertised_port: int | None = None, **kwargs: Any) -> LocalBroker:
    """A broker of `kind`, not started (use it as a context manager)."""
    if kind == "tansu":
        return EmbeddedBroker(port, advertised_port=advertised_port, **kwargs)
    why = apache.unavailable()
    if why is not None:
        pytest.skip(f"Apache Kafka cannot run on this machine: {why}")
    return apache.ApacheKafka(port, advertised_port=advertised_port, **kwargs)


both_brokers = pytest.mark.parametrize("kind", KINDS)

#: Worker settings for tests that kill workers: a dead member's partitions move after 10 s on
#: either broker (the embedded broker's default; Faust's 60 s on Apache Kafka would outlast the waits).
QUICK_FAILOVER = {"SHIPGUARD_SESSION_TIMEOUT_S": "10"}
