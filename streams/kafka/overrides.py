"""Every place shipguard reaches into Faust's or aiokafka's internals, and why.

Faust provides group membership, batching, table restore, the web server and a timer; commits,
state addressing, producing, delivery and read completeness are shipguard's. Where the two meet
we touch what the libraries do not publish. All of it is here, pinned to faust-streaming 0.15.3
and aiokafka 0.14.0 (pyproject.toml): a version bump starts by reading this table.

The table: each row says what is overridden or read, why, and which test proves it.

1. `AIOKafkaConsumerThread._highwaters`, wrapped (embedded broker only)
   why:  Tansu's ListOffsets(latest) is too low: Faust's recovery stopped short of a changelog's end
         (a table missed its last updates; RocksDB raised ConsistencyError on restart)
   test: tests/integration/test_compat.py (the end offset fix tests)
2. `AIOKafkaConsumerThread._create_worker_consumer`, wrapped to set `_fetch_max_wait_ms` (embedded only)
   why:  Faust hard-codes a 1,500 ms fetch wait, and Tansu holds a Fetch for about half of it even
         with records waiting: each hop between the sides waited ~0.4 s
   test: tests/integration/test_compat.py (the fetch wait tests)
3. aiokafka `SendProduceReqHandler._can_retry`, and the sender's `_send_produce_req` (output producer)
   why:  a plain producer retries a request whose answer was lost, which can write an output twice;
         ours fails it and the shell reads the partition back
   test: tests/streams/test_delivery.py
4. Faust consumer's `_new_offset` and `_filter_tps_with_pending_acks`
   why:  after starting a partition mid-stream Faust committed past records it never delivered, or
         stalled behind processed ones; the shell knows what landed
   test: tests/streams/test_read_completeness.py, tests/integration/test_crash_safety.py
5. Faust consumer's `_committed_offset`, read
   why:  where the consumer thinks it started on a partition, before the shell asked the broker
   test: tests/integration/test_failover.py
6. Faust `Recovery.active_offsets` and RocksDB `set_persisted_offset`, written for the shell's records
   why:  Faust restored a kept partition from before the shell's own changelog records and wrote them
         over newer state (stages twice, shops losing facts)
   test: tests/streams/test_takeover.py, tests/integration/test_failover.py, test_restart.py
7. Faust RocksDB store: `_db_for_partition`, `_key_index`, `_get_bucket_for_key`, `_iteritems`,
   `_size`, `_dbs_for_actives`
   why:  Faust's `table[k]` picks the database of the *current event's* partition, wrong for every
         other key of a batch; the shell names the partition
   test: tests/unit/test_metrics.py, tests/integration/test_restart.py (rocksdb)
8. Faust memory store's `_key_partition` (note_key_partition)
   why:  Faust drops a revoked partition's keys by it; the shell writes keys itself
   test: tests/integration/test_failover.py
9. aiokafka consumer's `_client`
   why:  one Fetch for the real high-water mark, and metadata without creating topics
   test: tests/integration/test_compat.py, tests/integration/test_dashboard.py
10. aiokafka producer client's `add_topic` and `_topics` (every producer of the worker: Faust's, via
    Faust's `Producer._new_producer`, and the output producer)
   why:  a producer that once waited for a topic new to its metadata (a changelog Faust had just
         created) asked for that topic alone from then on, forgot every other topic's leaders, and
         the worker processed nothing (4 starts in 14 on a fresh Apache Kafka)
   test: tests/integration/test_overrides.py
11. `AIOKafkaConsumerThread._create_worker_consumer`, wrapped to set `_isolation_level` (with transactions)
   why:  Faust reads `read_committed` only under its own exactly_once, which shipguard does not use
         (its transactions are its own, per side and partition); without it the worker would restore
         and read aborted changelog records, feed messages and a fenced worker's writes
   test: tests/integration/test_overrides.py
12. `AIOKafkaConsumerThread._highwaters`, wrapped (with transactions)
   why:  a changelog written in transactions ends with a commit marker that no consumer delivers;
         Faust's recovery waits for the record at end - 1 and a restarted worker never got ready
   test: tests/integration/test_fencing.py
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any

from aiokafka.producer.sender import SendProduceReqHandler

from streams.kafka.errors import AMBIGUOUS

log = logging.getLogger("shipguard")
_ORIGINAL = "__shipguard_original__"


def _install(owner: Any, name: str, wrap: Callable[[Any], Any], marker: str = _ORIGINAL) -> bool:
    """`owner.<name>` = `wrap(current)`, marked (value: `current`); False if already marked."""
    current = getattr(owner, name)
    if hasattr(current, marker):
        return False
    wrapper = wrap(current)
    setattr(wrapper, marker, current)
    setattr(owner, name, wrapper)  # the override itself
    return True
RaiseEnds = Callable[[Any, Mapping[Any, int]], Awaitable[dict[Any, int]]]


# ---- 1 and 2: Faust's consumer thread, on the embedded broker only ----------------------------------
def install_end_offset_fix(raise_to_highwater: RaiseEnds) -> bool:
    """Make Faust's table recovery read the real end of each changelog partition; idempotent.

    Faust 0.15.3's recovery (`Recovery._build_highwaters`) asks `consumer.highwaters(...)`, which
    `AIOKafkaConsumerThread._highwaters` answers with ListOffsets(latest). Recovery then stops at
    that offset - 1, so on the embedded broker it skips the rest of the last record batch. The
    wrapper passes its answer through `raise_to_highwater` (streams.kafka.offsets) with the
    worker's own consumer client: one extra Fetch per rebalance, no new connection, no change to
    positions. Under exactly_once Faust reads the last stable offset and the wrapper leaves it.
    True if this call installed it, False if it was already installed.
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    def wrap(current: Any) -> Any:
        @functools.wraps(current)
        async def _highwaters(self: AIOKafkaConsumerThread, partitions: Any) -> Mapping[Any, int]:
            reported = await current(self, partitions)
            if self.consumer.in_transaction:
                return reported
            return await raise_to_highwater(client_of(self._ensure_consumer()), reported)
        return _highwaters

    installed = _install(AIOKafkaConsumerThread, "_highwaters", wrap)
    if installed:
        log.info("embedded broker: Faust recovery reads changelog ends from Fetch high-water marks")
    return installed


def uninstall_end_offset_fix() -> bool:
    """Restore Faust's own `_highwaters`; True if the fix was installed."""
    return _restore("_highwaters")


def install_fetch_wait_fix(wait_ms: int) -> bool:
    """Shorten the Faust worker consumer's fetch max wait to `wait_ms`; idempotent.

    Faust 0.15.3 hard-codes `fetch_max_wait_ms=1500` in `_create_worker_consumer`; the wrapper
    sets the new (not yet started) consumer's `_fetch_max_wait_ms`, which aiokafka hands to its
    Fetcher at start. A rebalance creates no new consumer. True if this call installed it.
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    installed = _install(AIOKafkaConsumerThread, "_create_worker_consumer",
                         lambda current: _setting_consumer(current, "_fetch_max_wait_ms", wait_ms))
    if installed:
        log.info("embedded broker: Faust's consumer waits at most %d ms per fetch", wait_ms)
    return installed


def _setting_consumer(current: Any, attribute: str, value: Any) -> Any:
    """A `_create_worker_consumer` that sets `attribute` on the new (not yet started) consumer."""

    @functools.wraps(current)
    def _create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = current(self, transport)
        setattr(consumer, attribute, value)
        return consumer
    return _create_worker_consumer


def uninstall_fetch_wait_fix() -> bool:
    """Restore Faust's own `_create_worker_consumer`; True if the fix was installed."""
    return _restore("_create_worker_consumer")


def _restore(name: str) -> bool:
    """Put back Faust's own `AIOKafkaConsumerThread.<name>`; True if a wrapper of ours was there."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    original = getattr(getattr(AIOKafkaConsumerThread, name), _ORIGINAL, None)
    if original is None:
        return False
    setattr(AIOKafkaConsumerThread, name, original)
    return True


# ---- 3: the output producer never retries an ambiguous failure -----------------------------------------
class NoAmbiguousRetry(SendProduceReqHandler):
    """aiokafka's produce request handler, failing (not retrying) a request whose outcome is unknown."""

    def _can_retry(self, error: Any, batch: Any) -> bool:
        if isinstance(error, AMBIGUOUS):
            return False
        return super()._can_retry(error, batch)


def forbid_ambiguous_retries(producer: Any) -> None:
    """Make `producer` fail, not retry, a produce request whose outcome is unknown.

    Replaces the sender's `_send_produce_req` on this producer only (the same four lines as
    aiokafka 0.14's, with our handler).
    """
    sender = producer._sender

    async def send_produce_req(node_id: int, batches: dict) -> None:
        handler = NoAmbiguousRetry(sender, batches)
        await handler.do(node_id)
        sender._in_flight.remove(node_id)
        for tp in batches:
            sender._muted_partitions.remove(tp)

    sender._send_produce_req = send_produce_req


# ---- 4 and 5: what Faust's consumer commits, and where it started ----------------------------------------
def commit_what_landed(consumer: Any, committable: Callable[[tuple[str, int]], int | None],
                       landed: Callable[[], Iterable[tuple[str, int]]] = tuple) -> None:
    """Make Faust's `consumer` commit, per partition, what `committable` says has landed; idempotent.

    Faust computes a commit from the offsets its streams acknowledged and from the holes it
    noticed itself. After a worker starts on a partition mid-stream both can be wrong: it has
    been seen to commit past records it never delivered, or to stall one offset per commit
    behind records that were processed. The shell knows exactly which records it processed
    and landed (`Reading.committable`): that is what is committed, and nothing for a partition
    without a landed record. Faust's own computation still runs, to trim its bookkeeping.

    Faust only looks at partitions it delivered records of since the assignment; a partition
    whose records the shell read itself (a tail Faust never delivered) is added from `landed`,
    else its commit would stay behind for good.
    """
    if getattr(consumer, "_shipguard_commits", None) == committable:
        return
    faust_new_offset = type(consumer)._new_offset
    faust_pending = type(consumer)._filter_tps_with_pending_acks

    def _new_offset(tp: Any) -> int | None:
        faust_new_offset(consumer, tp)
        return committable((tp.topic, tp.partition))

    def _filter_tps_with_pending_acks(topics: Any = None) -> Iterator[Any]:
        from faust.types import TP

        seen = set()
        for tp in faust_pending(consumer, topics):
            seen.add(tp)
            yield tp
        for topic, partition in list(landed()):
            tp = TP(topic, partition)
            if tp not in seen and (topics is None or tp in topics or topic in topics):
                yield tp

    consumer._new_offset = _new_offset
    consumer._filter_tps_with_pending_acks = _filter_tps_with_pending_acks
    consumer._shipguard_commits = committable


def committed_offset(app: Any, topic: str, partition: int) -> int:
    """Where Faust's consumer thinks the group's commit of a partition is (0 if it has none)."""
    from faust.types import TP

    return app.consumer._committed_offset.get(TP(topic, partition)) or 0


# ---- 6: Faust's note of changelog records it has seen -----------------------------------------------------
def note_changelog_written(table: Any, recovery: Any, rocksdb: bool, meta: Any) -> None:
    """A changelog record the shell wrote is noted where Faust notes the records it read.

    Faust restores a partition kept through a rebalance from the last offset it knows of:
    without the note, it read the shell's own records since the last restore again and wrote
    them over newer state. With RocksDB, also what `Table._on_changelog_sent` does: a restart
    reads only what follows.
    """
    from faust.types import TP

    tp = TP(meta.topic, meta.partition)
    known = recovery.active_offsets.get(tp)
    if known is None or meta.offset > known:
        recovery.active_offsets[tp] = meta.offset
    if rocksdb:
        table.data.set_persisted_offset(tp, meta.offset)


# ---- 7 and 8: Faust's stores, addressed by partition ------------------------------------------------------
class RocksDBTableData:
    """Faust's RocksDB store addressed by partition (one database per changelog partition).

    Faust's own `__getitem__`/`__setitem__` pick the database of `current_event()`'s partition,
    which inside a batch is the batch's last record: wrong for every other key of the batch.
    Here the caller names the partition (every topic is co-partitioned, so a key's partition is
    that of the record that brought it); without one (timers), the key's last known partition
    or a search over the open databases.
    """

    def __init__(self, store: Any, encode_key: Callable[[str], bytes], encode_value: Callable[[Any], bytes],
                 decode_key: Callable[[bytes], str], decode_value: Callable[[bytes], Any]) -> None:
        self.store = store
        self.encode_key, self.encode_value = encode_key, encode_value
        self.decode_key, self.decode_value = decode_key, decode_value

    def get(self, key: str, partition: int | None = None) -> Any:
        raw_key = self.encode_key(key)
        if partition is None:
            found = self.store._get_bucket_for_key(raw_key)
            raw = found.value if found is not None else None
        else:
            raw = self.store._db_for_partition(partition).get(raw_key)
            if raw is not None:
                self.store._key_index[raw_key] = partition
        return None if raw is None else self.decode_value(raw)

    def put(self, key: str, value: Any, partition: int) -> None:
        raw_key = self.encode_key(key)
        db = self.store._db_for_partition(partition)
        if value is None:
            db.delete(raw_key)
            self.store._key_index.pop(raw_key, None)
        else:
            db.put(raw_key, self.encode_value(value))
            self.store._key_index[raw_key] = partition

    def items(self) -> Iterable[tuple[str, Any]]:
        return ((self.decode_key(k), self.decode_value(v)) for k, v in self.store._iteritems())

    def __len__(self) -> int:
        return self.store._size()

    def estimate_keys(self) -> int:
        """RocksDB's own estimate of the keys of the served partitions (len() reads every key)."""
        return sum(int(db.property_int_value("rocksdb.estimate-num-keys") or 0)
                   for db in self.store._dbs_for_actives())


def note_key_partition(store: Any, key: str, value: Any, partition: int) -> None:
    """After the shell wrote `key` into Faust's memory store: note (or forget) the key's partition."""
    key_partition = getattr(store, "_key_partition", None)
    if key_partition is None:
        return
    if value is None:
        key_partition.pop(key, None)
    else:
        key_partition[key] = partition


# ---- 9: the consumer's client --------------------------------------------------------------------------
def client_of(consumer: Any) -> Any:
    """The `AIOKafkaClient` inside an aiokafka consumer (to send a Fetch or read all metadata)."""
    return consumer._client


# ---- 10: a producer's metadata covers every topic ---------------------------------------------------
def keep_every_topic(producer: Any) -> None:
    """Make `producer`'s metadata refreshes always ask for every topic.

    aiokafka 0.14's client asks for all topics while `_topics` is empty; once `_wait_on_metadata`
    `add_topic`s a topic it had not heard of, each refresh asks for the added topics alone and
    replaces the whole cluster view: a batch queued for any other topic waits for a leader without
    end. Here `add_topic` only forces a refresh of everything, which still finds the new topic.
    """
    client = producer.client
    client._topics = set()

    def add_topic(topic: str) -> Any:
        return client.force_metadata_update()

    client.add_topic = add_topic


def install_every_topic_fix() -> bool:
    """Apply `keep_every_topic` to every producer Faust creates; idempotent. True if installed now."""
    from faust.transport.drivers.aiokafka import Producer

    def wrap(current: Any) -> Any:
        @functools.wraps(current)
        def _new_producer(self: Producer, transactional_id: str | None = None) -> Any:
            producer = current(self, transactional_id)
            keep_every_topic(producer)
            return producer
        return _new_producer

    return _install(Producer, "_new_producer", wrap)


# ---- 11: Faust's consumer reads only committed records ---------------------------------------------
_READ_COMMITTED = "__shipguard_read_committed__"


def install_read_committed() -> bool:
    """Make the Faust worker consumer read with `isolation_level=read_committed`; idempotent.

    Faust 0.15.3 sets it in `_create_worker_consumer` only when `processing_guarantee` is
    exactly_once; the wrapper sets the new (not yet started) consumer's `_isolation_level`, which
    aiokafka hands to its Fetcher at start. Only with transactions (Apache Kafka), where row 2 (the
    same method) is never installed. True if this call installed it.
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    return _install(AIOKafkaConsumerThread, "_create_worker_consumer",
                    lambda current: _setting_consumer(current, "_isolation_level", "read_committed"),
                    marker=_READ_COMMITTED)


# ---- 12: Faust's recovery ends at the last committed record ----------------------------------------


def install_transactional_ends(lower: Callable[[Mapping[Any, int]], Awaitable[dict[Any, int]]]) -> bool:
    """Make Faust's table recovery end at each changelog's last committed record; idempotent.

    `AIOKafkaConsumerThread._highwaters` answers the last stable offset (read_committed), which
    follows a commit marker; `lower` (streams.kafka.offsets.after_last_records, with the worker's
    connection settings) reads where the last committed record is. Runs in Faust's consumer thread,
    once per rebalance. Installed only with transactions (never with row 1). True if installed now.
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    def wrap(current: Any) -> Any:
        @functools.wraps(current)
        async def _highwaters(self: AIOKafkaConsumerThread, partitions: Any) -> Mapping[Any, int]:
            return await lower(await current(self, partitions))
        return _highwaters

    return _install(AIOKafkaConsumerThread, "_highwaters", wrap)
