"""The Kafka clients of `shipguard tail` and `shipguard publish`: the only place the tools open one.

They use kafka-python (the CLI is synchronous); the broker comes from `--broker` or
SHIPGUARD_BROKER, with the TLS/SASL settings of the environment.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TextIO

BROKER_WAIT_SECONDS = 10.0


def client_settings(broker: str | None) -> tuple[list[str], dict[str, Any]]:
    """(bootstrap servers, TLS/SASL keywords) of a broker that answers; ConfigError if the settings
    are malformed, BrokerUnreachable (saying where) if no broker answers within 10 s."""
    from streams.config import load_settings
    from streams.kafka.admin import wait_for_broker
    from streams.kafka.security import kafka_python_kwargs

    settings = load_settings(broker=broker)
    security = kafka_python_kwargs(settings)
    # a TCP probe first: a kafka-python client on a dead address retries for 30 s, logging each try
    wait_for_broker(settings.bootstrap_servers, timeout=BROKER_WAIT_SECONDS, security=security)
    return settings.bootstrap_servers, security


def make_producer(broker: str | None) -> Any:
    """A kafka-python producer that keeps file order (one request in flight)."""
    from kafka import KafkaProducer

    bootstrap, security = client_settings(broker)
    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                         max_in_flight_requests_per_connection=1, enable_idempotence=False,
                         client_id="shipguard-publish", **security)


def make_consumer(broker: str | None) -> Any:
    """A kafka-python consumer outside any group (it commits nothing)."""
    from kafka import KafkaConsumer

    bootstrap, security = client_settings(broker)
    return KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                         allow_auto_create_topics=False, client_id="shipguard-tail", **security)


def connect(command: str, make: Callable[[str | None], Any], broker: str | None,
            err: TextIO) -> tuple[Any, int]:
    """(client, 0), or (None, exit code) with the reason printed: 2 for settings, 1 for the broker."""
    from streams.config import ConfigError

    try:
        return make(broker), 0
    except ConfigError as exc:
        print(f"shipguard {command}: {exc}", file=err)
        return None, 2
    except Exception as exc:  # noqa: BLE001 - BrokerUnreachable, kafka's errors: say where, not a traceback
        print(f"shipguard {command}: {exc}", file=err)
        return None, 1
