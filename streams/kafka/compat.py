"""Compatibility with the embedded broker: its deviations from Apache Kafka and shipguard's fix for each.

The embedded broker (Tansu 0.6.0, `shipguard broker`) speaks the Kafka protocol but differs from
Apache Kafka in five ways that matter to shipguard (measured; see docs/broker.md):

| deviation | function |
|---|---|
| (a) ListOffsets(latest) is too low: the last record batch's first offset + 1 | `apply` (overrides row 1); `offsets` |
| (b) no idempotent or transactional producer | `at_least_once_settings`, `aiokafka_producer_settings`, `apply` |
| (c) auto-created topics get 4 partitions | `create_topics_up_front` |
| (d) a group's first join waits half the session timeout (Faust's: 60 s) | `quick_group_join_settings` |
| (e) a Fetch is held about half its max wait even with records waiting | `apply` (overrides row 2) |

(`overrides` is streams.kafka.overrides, `offsets` streams.kafka.offsets; `faust_settings` merges (b) and (d).)

The worker wires it up once, and runs unchanged against Apache Kafka:

    embedded = compat.detect(settings)      # SHIPGUARD_BROKER_COMPAT: auto | embedded | kafka
    compat.create_topics_up_front(settings)
    app = faust.App(settings.app_id, **compat.faust_settings(embedded), ...)
    compat.apply(app, embedded)             # installs (a) and (e) on the embedded broker only

What patches or tunes Faust, (a), (d) and (e), is switched on only for the embedded broker, so
that production runs stock Faust; (a) would change nothing there anyway. (b) and (c) are shipguard's
choice on both brokers, so that the worker behaves the same on both.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from streams.config import Settings
from streams.kafka import admin, overrides
from streams.kafka.admin import EMBEDDED_CLUSTER_ID, is_embedded_cluster_id
from streams.kafka.offsets import raise_to_highwater
from streams.kafka.security import kafka_python_kwargs
from streams.topics import all_topics, changelog_topics

if TYPE_CHECKING:
    import faust

# the broker kind is compat's question too: EMBEDDED_CLUSTER_ID and is_embedded_cluster_id are re-exported
__all__ = ["EMBEDDED_CLUSTER_ID", "EMBEDDED_FETCH_MAX_WAIT_MS", "EMBEDDED_SESSION_TIMEOUT_S", "CompatError",
           "aiokafka_producer_settings", "apply", "at_least_once_settings", "create_topics_up_front", "detect",
           "faust_settings", "is_embedded_cluster_id", "quick_group_join_settings"]

log = logging.getLogger("shipguard.compat")  # under shipguard: its INFO lines reach the worker log





class CompatError(RuntimeError):
    """The Faust app is configured in a way the embedded broker cannot serve; the message says how to fix it."""


def detect(settings: Settings) -> bool:
    """Whether to switch the compatibility fixes on: SHIPGUARD_BROKER_COMPAT wins, `auto` asks the broker.

    `auto` reads the cluster id (Tansu reports `tansu_cluster`; Apache Kafka a random id), so the
    broker must be up; `embedded` or `kafka` skip the question.
    """
    if settings.broker_compat != "auto":
        return settings.broker_compat == "embedded"
    try:
        return admin.is_embedded_broker(settings.bootstrap_servers, security=kafka_python_kwargs(settings))
    except admin.BrokerUnreachable as exc:
        raise admin.BrokerUnreachable(
            f"{str(exc).rstrip('.')}. SHIPGUARD_BROKER_COMPAT=auto asks the broker which kind it is; set it to "
            "`embedded` or `kafka` to decide without asking."
        ) from None


def apply(app: faust.App, embedded: bool) -> None:
    """Make `app` safe on the broker it runs against; idempotent. Call before the worker starts."""
    if not embedded:
        log.info("broker compat fixes: none (not the embedded broker)")
        return
    guarantee = str(getattr(app.conf.processing_guarantee, "value", app.conf.processing_guarantee))
    if guarantee != "at_least_once":
        # Faust lets the PROCESSING_GUARANTEE environment variable override keyword settings.
        raise CompatError(
            f"processing_guarantee is {guarantee!r}, but the embedded broker has no transactional "
            "producer, so a Faust worker with exactly_once cannot start. Use at_least_once "
            "(unset PROCESSING_GUARANTEE): shipguard makes its outputs idempotent itself."
        )
    overrides.install_end_offset_fix(raise_to_highwater)  # (a): streams.kafka.overrides, row 1
    overrides.install_fetch_wait_fix(EMBEDDED_FETCH_MAX_WAIT_MS)  # (e): row 2
    log.info("broker compat fixes: end offsets raised to the high-water mark, fetch wait %d ms (embedded broker)",
             EMBEDDED_FETCH_MAX_WAIT_MS)


# -- (e) a Fetch is held even when records are waiting ------------------------------------------

#: The worker consumer's fetch max wait on the embedded broker (Faust hard-codes 1500 ms).
#: Broker: a Fetch is answered after about half of its max wait even when the partition has
#: records (one hop, measured: max wait 1500 ms -> p50 420 ms, 500 ms -> 134 ms, 100 ms -> 30 ms,
#: 5 ms -> 5 ms). Kafka answers as soon as fetch.min.bytes (1) is there. Every record shipguard
#: forwards between its sides makes such a hop; the cost of 20 ms is polling while idle (a few %
#: of a core). Installed by `apply` (streams.kafka.overrides, row 2).
EMBEDDED_FETCH_MAX_WAIT_MS = 20


# -- (b) no idempotent or transactional producer ----------------------------------------------


def at_least_once_settings() -> dict[str, Any]:
    """Faust App settings for a broker without idempotent or transactional producers.

    Broker: InitProducerId fails (`InitProducerIdRequest ... UnknownError`), so an idempotent
    or transactional producer cannot start, nor can a Faust worker with exactly_once. Kafka:
    both work. Fix: processing_guarantee at_least_once, whose Faust producer never asks for
    idempotence, and acks=all so a record is written before its input's offset is committed.
    shipguard makes emission idempotent itself (the contract: each (warning_id, stage) appears
    once, also across crashes and restarts), so what a restart replays has no second effect.
    Used for Apache Kafka too, on purpose: the worker behaves the same on both. Faust lets
    environment variables (PROCESSING_GUARANTEE) override keyword settings; `apply` checks.
    """
    return {"processing_guarantee": "at_least_once", "producer_acks": -1}


def aiokafka_producer_settings(embedded: bool) -> dict[str, Any]:
    """Keyword settings for a plain AIOKafkaProducer (replay, simulator): no idempotence, acks=all.

    Same deviation as `at_least_once_settings`, same answer on both brokers; aiokafka's default
    is already non-idempotent, this says it out loud so that nobody turns it on.
    """
    return {"enable_idempotence": False, "acks": "all"}


# -- (c) auto-created topics get 4 partitions -------------------------------------------------


def create_topics_up_front(settings: Settings) -> list[str]:
    """Create every shipguard topic with SHIPGUARD_PARTITIONS partitions before any client uses it.

    Broker: a produce or metadata request for a missing topic creates it with 4 partitions.
    Kafka: with its default settings the same happens with `num.partitions` (1). Either way the
    co-partitioned topics would disagree with SHIPGUARD_PARTITIONS. Fix: create all of them
    (`topics.all_topics`) with the configured count before the worker, the replayer or a test
    touches them, and the tables' changelogs too, compacted (Faust would create those as the
    worker starts, and a consumer that subscribed before a new topic reached the broker's metadata
    left it unassigned). Runs on both brokers; returns the names it created.
    """
    compacted = {name: {"cleanup.policy": "compact"} for name in changelog_topics(settings.app_id)}
    return admin.ensure_topics(settings.bootstrap_servers, all_topics(settings.app_id) + tuple(compacted),
                               settings.partitions, security=kafka_python_kwargs(settings), configs=compacted)


# -- (d) a consumer group's first join waits half the session timeout --------------------------

#: Faust's default broker_session_timeout is 60 s: a 30 s wait before a worker gets partitions.
EMBEDDED_SESSION_TIMEOUT_S = 10.0


def quick_group_join_settings() -> dict[str, Any]:
    """Faust App settings that keep the first consumer group join short on the embedded broker.

    Broker: JoinGroup answers only after half the member's session timeout (measured with
    aiokafka: 10 s -> 5.0 s, 30 s -> 15 s, 60 s -> 30 s), so a Faust worker with its default
    60 s session timeout waits 30 s for its partitions. Kafka: the first join waits
    group.initial.rebalance.delay.ms (3 s by default), whatever the session timeout. Fix: a
    10 s session timeout on the embedded broker (join in 5 s; heartbeats stay every 3 s).
    Apache Kafka keeps Faust's default, which tolerates longer pauses of a busy worker;
    `SHIPGUARD_SESSION_TIMEOUT_S` overrides either (streams.runtime.runner).
    """
    return {"broker_session_timeout": EMBEDDED_SESSION_TIMEOUT_S}


def faust_settings(embedded: bool) -> dict[str, Any]:
    """The Faust App keyword settings the broker kind decides (see the functions it merges)."""
    settings = at_least_once_settings()
    if embedded:
        settings.update(quick_group_join_settings())
    return settings
