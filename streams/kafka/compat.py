"""Compatibility with the embedded broker: its deviations from Apache Kafka and shipguard's fix for each.

The embedded broker (Tansu 0.6.0, `shipguard broker`) speaks the Kafka protocol but differs from
Apache Kafka in five ways that matter to shipguard (measured; see BROKER.md):

| deviation | function |
|---|---|
| (a) ListOffsets(latest) is too low: first offset of the last record batch + 1 | `install_end_offset_fix` (via `apply`), `real_end_offsets` |
| (b) no idempotent or transactional producer | `at_least_once_settings` (via `faust_settings`), `aiokafka_producer_settings`, `apply` |
| (c) auto-created topics get 4 partitions | `create_topics_up_front` |
| (d) a group's first join waits half the session timeout (Faust's: 60 s) | `quick_group_join_settings` (via `faust_settings`) |
| (e) a Fetch is held for about half its max wait even when records are waiting | `install_fetch_wait_fix` (via `apply`) |

The worker wires it up once, and runs unchanged against Apache Kafka:

    embedded = compat.detect(settings)      # SHIPGUARD_BROKER_COMPAT: auto | embedded | kafka
    compat.create_topics_up_front(settings)
    app = faust.App(settings.app_id, **compat.faust_settings(embedded), ...)
    compat.apply(app, embedded)             # installs the end offset fix on the embedded broker only

What patches or tunes Faust, (a), (d) and (e), is switched on only for the embedded broker, so
that production runs stock Faust; (a) would change nothing there anyway. (b) and (c) are shipguard's
choice on both brokers, so that the worker behaves the same on both.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping, Optional, Protocol, Sequence, TypeVar, Union

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.protocol.fetch import FetchRequest

from streams.config import Settings, strip_scheme

if TYPE_CHECKING:
    import faust
    from aiokafka.client import AIOKafkaClient

log = logging.getLogger(__name__)

#: The cluster id the embedded broker reports unless started with another `--cluster-id`.
EMBEDDED_CLUSTER_ID = "tansu_cluster"

#: How long the high-water Fetch may wait on a partition with nothing to return (empty partitions only).
HIGHWATER_FETCH_WAIT_MS = 100



class _TopicPartition(Protocol):
    topic: str
    partition: int


K = TypeVar("K", bound=_TopicPartition)  # aiokafka's or Faust's TP: both are (topic, partition) tuples


class CompatError(RuntimeError):
    """The Faust app is configured in a way the embedded broker cannot serve; the message says how to fix it."""


def is_embedded_cluster_id(cluster_id: str) -> bool:
    """True for the cluster id of a Tansu broker (`tansu_cluster` by default)."""
    return cluster_id.strip().lower().startswith("tansu")


def detect(settings: Settings) -> bool:
    """Whether to switch the compatibility fixes on: SHIPGUARD_BROKER_COMPAT wins, `auto` asks the broker.

    `auto` reads the cluster id (Tansu reports `tansu_cluster`; Apache Kafka a random id), so the
    broker must be up; `embedded` or `kafka` skip the question.
    """
    if settings.broker_compat != "auto":
        return settings.broker_compat == "embedded"
    from streams import admin  # here, not at the top: admin imports this module
    from streams.kafka.security import kafka_python_kwargs

    try:
        return admin.is_embedded_broker(settings.bootstrap_servers, security=kafka_python_kwargs(settings))
    except admin.BrokerUnreachable as exc:
        raise admin.BrokerUnreachable(
            f"{str(exc).rstrip('.')}. SHIPGUARD_BROKER_COMPAT=auto asks the broker which kind it is; set it to "
            "`embedded` or `kafka` to decide without asking."
        ) from None


def apply(app: "faust.App", embedded: bool) -> None:
    """Make `app` safe on the broker it runs against; idempotent. Call before the worker starts."""
    if not embedded:
        return
    guarantee = str(getattr(app.conf.processing_guarantee, "value", app.conf.processing_guarantee))
    if guarantee != "at_least_once":
        # Faust lets the PROCESSING_GUARANTEE environment variable override keyword settings.
        raise CompatError(
            f"processing_guarantee is {guarantee!r}, but the embedded broker has no transactional "
            "producer, so a Faust worker with exactly_once cannot start. Use at_least_once "
            "(unset PROCESSING_GUARANTEE): shipguard makes its outputs idempotent itself."
        )
    install_end_offset_fix()
    install_fetch_wait_fix()


# -- (a) ListOffsets(latest) is too low -------------------------------------------------------


async def raise_to_highwater(client: "AIOKafkaClient", end_offsets: Mapping[K, int]) -> dict[K, int]:
    """Raise each ListOffsets end offset to the high-water mark a Fetch response reports.

    Broker: ListOffsets(latest) answers the first offset of the partition's last record batch
    + 1 (one record, then a batch of 10: it says 2); only the Fetch response carries the real
    high-water mark (11). Kafka: ListOffsets(latest) is the high-water mark, the same number.
    Fix: one Fetch per partition leader, at the last offset ListOffsets vouches for (end - 1,
    where data exists, so the broker answers at once; an empty partition waits up to
    HIGHWATER_FETCH_WAIT_MS), with a 1-byte limit, reading only the high-water mark; the answer
    is the larger of the two numbers. Keys are the caller's (aiokafka or Faust TPs). On a failed
    Fetch the ListOffsets number is kept and a warning logged.
    """
    result = dict(end_offsets)
    keys: dict[tuple[str, int], K] = {}
    by_leader: dict[int, dict[str, list[tuple[int, int, int]]]] = defaultdict(lambda: defaultdict(list))
    for tp, end in end_offsets.items():
        leader = client.cluster.leader_for_partition(TopicPartition(tp.topic, tp.partition))
        if end is None or leader is None or leader < 0:
            continue
        keys[(tp.topic, tp.partition)] = tp
        by_leader[leader][tp.topic].append((tp.partition, max(end - 1, 0), 1))

    async def ask(leader: int, topics: dict[str, list[tuple[int, int, int]]]) -> None:
        request = FetchRequest(HIGHWATER_FETCH_WAIT_MS, 1, 1, 0, list(topics.items()))
        try:
            response = await client.send(leader, request)
        except Exception as exc:  # keep ListOffsets' answer rather than fail a rebalance
            log.warning("high-water Fetch to broker %s failed (%r): end offsets may be too low", leader, exc)
            return
        for topic, partitions in response.topics:
            for partition, error_code, highwater, *_ in partitions:
                tp = keys.get((topic, partition))
                if tp is not None and error_code == 0 and highwater > result[tp]:
                    result[tp] = highwater

    await asyncio.gather(*(ask(leader, topics) for leader, topics in by_leader.items()))
    return result


def real_end_offsets(bootstrap: Union[str, Sequence[str]], topic: str, timeout: float = 10.0,
                     security: Optional[Mapping[str, Any]] = None) -> dict[int, int]:
    """The real end offset (offset of the next record) of each partition of `topic`, on either broker.

    `bootstrap` is `host:port` or a list of them (a `kafka://` prefix is dropped); `security` the
    client keywords from `streams.kafka.security` (None: PLAINTEXT). Blocking; safe to call from inside
    a running event loop (it runs on its own loop in a helper thread).
    """
    servers = [strip_scheme(s) for s in ([bootstrap] if isinstance(bootstrap, str) else bootstrap)]
    return _run_on_own_loop(lambda: _real_end_offsets(servers, topic, timeout, security or {}))


async def _real_end_offsets(servers: list[str], topic: str, timeout: float,
                            security: Mapping[str, Any]) -> dict[int, int]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers,
        client_id="shipguard-offsets",
        enable_auto_commit=False,
        request_timeout_ms=int(timeout * 1000),
        **security,
    )
    await consumer.start()
    try:
        # Metadata for all topics: unlike asking for one topic, this never auto-creates it.
        cluster = await consumer._client.fetch_all_metadata()
        partitions = cluster.partitions_for_topic(topic)
        if not partitions:
            raise ValueError(f"topic {topic!r} does not exist on {', '.join(servers)}")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        reported = await asyncio.wait_for(consumer.end_offsets(tps), timeout)
        real = await raise_to_highwater(consumer._client, reported)
    finally:
        await consumer.stop()
    return {tp.partition: real[tp] for tp in tps}


def _run_on_own_loop(make_coro: Callable[[], Awaitable[Any]]) -> Any:
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="shipguard-compat") as pool:
        return pool.submit(lambda: asyncio.run(make_coro())).result()  # type: ignore[arg-type]


_ORIGINAL = "__shipguard_original__"


def install_end_offset_fix() -> bool:
    """Make Faust's table recovery read the real end of each changelog partition; idempotent.

    Broker and Kafka behaviour: see `raise_to_highwater`. Faust 0.15.3's recovery
    (`faust/tables/recovery.py`, `Recovery._build_highwaters`) asks
    `consumer.highwaters(*changelog_tps)`, which the aiokafka driver's
    `AIOKafkaConsumerThread._highwaters` answers with `AIOKafkaConsumer.end_offsets`, i.e.
    ListOffsets(latest). Recovery then stops at that offset - 1, so on the embedded broker it
    skips the rest of the last record batch (a table misses its last updates), and a rocksdb
    store, whose persisted offset is past that point, raises ConsistencyError on restart.
    Fix: wrap `_highwaters` so that it passes its answer through `raise_to_highwater`, with
    the worker's own consumer client (one extra Fetch per rebalance, no new connection, no
    change to the consumer's positions, so it is safe during rebalances). Under exactly_once
    Faust reads the last stable offset instead and the wrapper leaves it alone.
    Returns True if this call installed it, False if it was already installed.
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    current = AIOKafkaConsumerThread._highwaters
    if hasattr(current, _ORIGINAL):
        return False

    @functools.wraps(current)
    async def _highwaters(self: AIOKafkaConsumerThread, partitions: Any) -> Mapping[Any, int]:
        reported = await current(self, partitions)
        if self.consumer.in_transaction:
            return reported
        return await raise_to_highwater(self._ensure_consumer()._client, reported)

    setattr(_highwaters, _ORIGINAL, current)
    AIOKafkaConsumerThread._highwaters = _highwaters  # type: ignore[method-assign]
    log.info("embedded broker: Faust recovery reads changelog ends from Fetch high-water marks")
    return True


def _restore(name: str) -> bool:
    """Put back Faust's own `AIOKafkaConsumerThread.<name>`; True if a wrapper of ours was there."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    original = getattr(getattr(AIOKafkaConsumerThread, name), _ORIGINAL, None)
    if original is None:
        return False
    setattr(AIOKafkaConsumerThread, name, original)
    return True


def uninstall_end_offset_fix() -> bool:
    """Restore Faust's own `_highwaters`; True if the fix was installed."""
    return _restore("_highwaters")


# -- (e) a Fetch is held even when records are waiting ------------------------------------------

#: The worker consumer's fetch max wait on the embedded broker (Faust hard-codes 1500 ms).
EMBEDDED_FETCH_MAX_WAIT_MS = 20


def install_fetch_wait_fix(wait_ms: int = EMBEDDED_FETCH_MAX_WAIT_MS) -> bool:
    """Shorten the Faust worker consumer's fetch max wait; idempotent.

    Broker: a Fetch is answered after about half of its max wait even when the partition has
    records (one producer -> consumer hop, measured: max wait 1500 ms -> p50 420 ms, 500 ms ->
    134 ms, 100 ms -> 30 ms, 5 ms -> 5 ms). Kafka answers as soon as fetch.min.bytes (1) is
    there. Faust 0.15.3 hard-codes `fetch_max_wait_ms=1500` in
    `AIOKafkaConsumerThread._create_worker_consumer`, and every record shipguard forwards between
    its agents makes such a hop, so on the embedded broker a scan waited seconds to reach its
    order. Fix: wrap `_create_worker_consumer` and set the new (not yet started) consumer's
    `_fetch_max_wait_ms`, which aiokafka hands to its Fetcher at start. Nothing else changes;
    a rebalance creates no new consumer. The cost is polling while idle (a few % of a core).
    Returns True if this call installed it, False if it was already installed.
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    current = AIOKafkaConsumerThread._create_worker_consumer
    if hasattr(current, _ORIGINAL):
        return False

    @functools.wraps(current)
    def _create_worker_consumer(self: AIOKafkaConsumerThread, transport: Any) -> Any:
        consumer = current(self, transport)
        consumer._fetch_max_wait_ms = wait_ms
        return consumer

    setattr(_create_worker_consumer, _ORIGINAL, current)
    AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer  # type: ignore[method-assign]
    log.info("embedded broker: Faust's consumer waits at most %d ms per fetch", wait_ms)
    return True


def uninstall_fetch_wait_fix() -> bool:
    """Restore Faust's own `_create_worker_consumer`; True if the fix was installed."""
    return _restore("_create_worker_consumer")


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
    touches them; Faust creates its own changelog topics with `topic_partitions`. Runs on both
    brokers; returns the names it created.
    """
    from streams import admin  # here, not at the top: admin imports this module
    from streams.kafka.security import kafka_python_kwargs
    from streams.topics import all_topics

    return admin.ensure_topics(settings.bootstrap_servers, all_topics(settings.app_id), settings.partitions,
                               security=kafka_python_kwargs(settings))


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
    Production keeps Faust's default, which tolerates longer pauses of a busy worker.
    """
    return {"broker_session_timeout": EMBEDDED_SESSION_TIMEOUT_S}


def faust_settings(embedded: bool) -> dict[str, Any]:
    """The Faust App keyword settings the broker kind decides (see the functions it merges)."""
    settings = at_least_once_settings()
    if embedded:
        settings.update(quick_group_join_settings())
    return settings
