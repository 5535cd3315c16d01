"""Plain Kafka client helpers (kafka-python's admin client): probe the broker, create topics,
read end offsets. Used by the CLI, the worker's start-up and the tests; nothing here is Faust.

`bootstrap` is anything `SHIPGUARD_BROKER` may hold (`kafka://host:port`, comma separated) or a
list of `host:port` pairs. `security` is the client's security keywords from `streams.kafka.security`
(`kafka_python_kwargs(settings)`; the same keywords serve aiokafka); None talks PLAINTEXT.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import kafka.errors
from kafka.admin import KafkaAdminClient

from streams.config import strip_scheme
from streams.kafka.offsets import real_end_offsets

log = logging.getLogger(__name__)

Bootstrap = str | Sequence[str]
Security = Mapping[str, Any] | None

_TOPIC_ALREADY_EXISTS = kafka.errors.TopicAlreadyExistsError.errno
_UNREACHABLE = (kafka.errors.KafkaTimeoutError, kafka.errors.KafkaConnectionError)


#: The cluster id the embedded broker reports unless started with another `--cluster-id`.
EMBEDDED_CLUSTER_ID = "tansu_cluster"


def is_embedded_cluster_id(cluster_id: str) -> bool:
    """True for the cluster id of a Tansu broker (`tansu_cluster` by default)."""
    return cluster_id.strip().lower().startswith("tansu")


class BrokerUnreachable(ConnectionError):
    """No Kafka broker answered at the bootstrap address in time; the message says where."""


def servers(bootstrap: Bootstrap) -> list[str]:
    """`kafka://a:9092,kafka://b:9092` or a list of URLs -> `["a:9092", "b:9092"]`."""
    urls = bootstrap.split(",") if isinstance(bootstrap, str) else list(bootstrap)
    return [strip_scheme(url) for url in urls if url.strip()]


def wait_for_broker(bootstrap: Bootstrap, timeout: float = 10.0, security: Security = None) -> None:
    """Block until a broker answers a Kafka metadata request; raise BrokerUnreachable after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        # A TCP connect first: it costs nothing, while every failed Kafka client start logs
        # errors and costs a thread. The metadata request below is what decides readiness.
        if _accepts_connections(bootstrap):
            try:
                with _admin(bootstrap, max(remaining, 0.1), security) as admin:
                    admin.list_topics()
                return
            except (BrokerUnreachable, kafka.errors.KafkaError):
                pass  # listening, not serving yet
        if time.monotonic() >= deadline:
            raise BrokerUnreachable(
                f"no Kafka broker answered at {', '.join(servers(bootstrap))} within {timeout:g} s. "
                "Start one with `shipguard broker`, or point SHIPGUARD_BROKER at a running broker."
            )
        time.sleep(0.05)


def cluster_id(bootstrap: Bootstrap, timeout: float = 10.0, security: Security = None) -> str:
    """The cluster id the broker reports (Kafka: a random base64 id; the embedded broker: `tansu_cluster`)."""
    with _admin(bootstrap, timeout, security) as admin:
        return str(admin.describe_cluster().get("cluster_id") or "")


def is_embedded_broker(bootstrap: Bootstrap, timeout: float = 10.0, security: Security = None) -> bool:
    """True when the broker at `bootstrap` is the embedded Tansu broker (judged by its cluster id)."""
    return is_embedded_cluster_id(cluster_id(bootstrap, timeout, security))


def partition_counts(bootstrap: Bootstrap, names: Iterable[str], timeout: float = 10.0,
                     security: Security = None) -> dict[str, int]:
    """Partition count of each existing topic among `names`; missing topics are left out (and not created)."""
    with _admin(bootstrap, timeout, security) as admin:
        return _partition_counts(admin, list(names))


def ensure_topics(
    bootstrap: Bootstrap, names: Iterable[str], partitions: int, timeout: float = 10.0, security: Security = None,
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> list[str]:
    """Create the missing topics with `partitions` partitions; return the names created.

    `configs` gives topic configs by name (e.g. `cleanup.policy=compact` for a changelog), used only
    for topics this call creates.

    Idempotent. A topic that already exists with another partition count is left alone and a
    warning says so: its keys would land on other partitions than those of the topics it is
    co-partitioned with, so the fix is to delete and recreate it (or to set SHIPGUARD_PARTITIONS).
    """
    names = list(dict.fromkeys(names))
    with _admin(bootstrap, timeout, security) as admin:
        existing = _partition_counts(admin, names)
        missing = [name for name in names if name not in existing]
        created = _create_topics(admin, missing, partitions, timeout, configs or {}) if missing else []
        if len(created) < len(missing):  # someone else created some between our look and our create
            existing.update(_partition_counts(admin, [name for name in missing if name not in created]))
    for name, count in existing.items():
        if count != partitions:
            log.warning(
                "topic %r has %d partitions, shipguard expects %d: its keys will not line up with "
                "the other topics' partitions. Delete and recreate it with %d partitions, or set "
                "SHIPGUARD_PARTITIONS=%d if all topics have %d.",
                name, count, partitions, partitions, count, count,
            )
    return created


def partition_mismatches(counts: dict[str, int], partitions: int) -> list[str]:
    """What stops a worker with `partitions` partitions on topics with these `counts`, one line each.

    Every topic shipguard reads or writes has exactly `partitions` (the contract): a key's
    partition is murmur2 of the key modulo the count, the topics it reads must agree on it
    (co-partitioning), and an output goes to its key's partition number.
    """
    return [f"topic {name!r} has {count} partitions, SHIPGUARD_PARTITIONS is {partitions}"
            for name, count in sorted(counts.items()) if count != partitions]


def topic_configs(bootstrap: Bootstrap, names: Iterable[str], timeout: float = 10.0,
                  security: Security = None) -> dict[str, dict[str, str]]:
    """Each topic's configuration as the broker reports it (name -> {key: value})."""
    from kafka.admin import ConfigResource, ConfigResourceType

    with _admin(bootstrap, timeout, security) as admin:
        answer = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in names],
                                        config_filter="all")
    # kafka-python 3: {"topic": {name: {key: value or {"value": value, "config_source": ...}, ...}}}
    return {name: {key: str(value["value"] if isinstance(value, dict) else value) for key, value in entries.items()}
            for name, entries in answer.get("topic", {}).items()}


def end_offsets(bootstrap: Bootstrap, topic: str, security: Security = None) -> dict[int, int]:
    """The real end offset (offset of the next record) of each partition of `topic`, on any broker.

    Kafka's ListOffsets is not trusted alone because the embedded broker's answer is too low;
    see `streams.kafka.offsets.real_end_offsets`.
    """
    return real_end_offsets(servers(bootstrap), topic, security=security)


def committed_offsets(bootstrap: Bootstrap, group: str, timeout: float = 10.0,
                      security: Security = None) -> dict[tuple[str, int], int]:
    """The offsets consumer group `group` has committed, per (topic, partition) it ever committed.

    A coordinator that is not there yet (Apache Kafka creates its offsets topic on the first
    group's first request) or is moving is asked again until `timeout`."""
    deadline = time.monotonic() + timeout
    with _admin(bootstrap, timeout, security) as admin:
        while True:
            try:
                offsets = admin.list_group_offsets(group).get(group, {})
                break
            except (kafka.errors.CoordinatorNotAvailableError, kafka.errors.NotCoordinatorError,
                    kafka.errors.CoordinatorLoadInProgressError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


@contextmanager
def _admin(bootstrap: Bootstrap, timeout: float, security: Security = None) -> Iterator[KafkaAdminClient]:
    """A short-lived admin client; BrokerUnreachable when no broker answers within `timeout`."""
    try:
        admin = _AdminClient(
            bootstrap_servers=servers(bootstrap),
            client_id="shipguard-admin",
            bootstrap_timeout_ms=max(int(timeout * 1000), 100),
            request_timeout_ms=max(int(timeout * 1000), 1000),
            **(security or {}),
        )
    except _UNREACHABLE as exc:
        raise BrokerUnreachable(
            f"no Kafka broker answered at {', '.join(servers(bootstrap))} within {timeout:g} s ({exc})"
        ) from None
    try:
        yield admin
    finally:
        admin.close()


def _partition_counts(admin: KafkaAdminClient, names: list[str]) -> dict[str, int]:
    # kafka-python asks with allow_auto_topic_creation=False: asking about a topic creates nothing.
    described = admin.describe_topics(names) if names else []
    return {t["name"]: len(t["partitions"]) for t in described if t.get("error_code", 0) == 0}


def _create_topics(admin: KafkaAdminClient, names: list[str], partitions: int, timeout: float,
                   configs: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Create `names`; return those this call created (TopicAlreadyExists is not an error)."""
    result = admin.create_topics(
        {name: {"num_partitions": partitions, **({"configs": dict(configs[name])} if name in configs else {})}
         for name in names},
        timeout_ms=int(timeout * 1000),
        raise_errors=False,
    )
    created = []
    for topic in result["topics"]:
        code = topic["error_code"]
        if code == 0:
            created.append(topic["name"])
        elif code != _TOPIC_ALREADY_EXISTS:
            error = kafka.errors.for_code(code).__name__
            detail = topic.get("error_message") or ""
            raise RuntimeError(f"could not create topic {topic['name']!r}: {error} {detail}".strip())
    if created:
        admin.wait_for_topics(created, timeout_ms=int(timeout * 1000))  # leaders elected (Kafka)
    return created


class _AdminClient(KafkaAdminClient):
    """kafka-python's admin client, which also stops its I/O thread when it fails to bootstrap."""

    def __init__(self, **configs: object) -> None:
        try:
            super().__init__(**configs)
        except Exception:
            # kafka-python 3.0 starts its network thread before bootstrapping and leaves it
            # running when bootstrap fails: one leaked thread per failed attempt.
            if hasattr(self, "_net"):
                self._closed = False
                self.close()
            raise


def _accepts_connections(bootstrap: Bootstrap) -> bool:
    """True when at least one bootstrap address accepts a TCP connection."""
    for server in servers(bootstrap):
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout=0.5):
                return True
        except (OSError, ValueError):
            continue
    return False
