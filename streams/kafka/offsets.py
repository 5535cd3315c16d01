"""End offsets that are right on either broker: the high-water mark a Fetch reports.

Tansu's ListOffsets(latest) answers the first offset of the partition's last record batch + 1;
Apache Kafka's is the high-water mark. `raise_to_highwater` corrects the first into the second
with one Fetch per partition leader (docs/broker.md).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections import defaultdict
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.protocol.fetch import FetchRequest

from streams.config import strip_scheme
from streams.kafka.overrides import client_of

log = logging.getLogger(__name__)

#: How long the high-water Fetch may wait on a partition with nothing to return (empty partitions only).
HIGHWATER_FETCH_WAIT_MS = 100


class _TopicPartition(Protocol):
    topic: str
    partition: int


K = TypeVar("K", bound=_TopicPartition)  # aiokafka's or Faust's TP: both are (topic, partition) tuples


async def real_ends(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    """`consumer.end_offsets(tps)`, raised to the Fetch high-water marks."""
    return await raise_to_highwater(client_of(consumer), await consumer.end_offsets(tps))


async def raise_to_highwater(client: Any, end_offsets: Mapping[K, int]) -> dict[K, int]:
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


def real_end_offsets(bootstrap: str | Sequence[str], topic: str, timeout: float = 10.0,
                     security: Mapping[str, Any] | None = None) -> dict[int, int]:
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
        cluster = await client_of(consumer).fetch_all_metadata()
        partitions = cluster.partitions_for_topic(topic)
        if not partitions:
            raise ValueError(f"topic {topic!r} does not exist on {', '.join(servers)}")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        reported = await asyncio.wait_for(consumer.end_offsets(tps), timeout)
        real = await raise_to_highwater(client_of(consumer), reported)
    finally:
        await consumer.stop()
    return {tp.partition: real[tp] for tp in tps}


def _run_on_own_loop(make_coro: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="shipguard-compat") as pool:
        return pool.submit(lambda: asyncio.run(make_coro())).result()


async def after_last_records(bootstrap_servers: list[str], ends: Mapping[K, int], client_kwargs: Mapping[str, Any],
                             timeout: float = 30.0) -> dict[K, int]:
    """`_after_last_records` on a loop of its own in a helper thread (from Faust's consumer thread,
    a consumer started on that thread's loop never finished stopping)."""
    if not any(ends.values()):
        return dict(ends)
    return await asyncio.get_running_loop().run_in_executor(
        None, lambda: asyncio.run(_after_last_records(bootstrap_servers, ends, client_kwargs, timeout)))


async def _after_last_records(bootstrap_servers: list[str], ends: Mapping[K, int], client_kwargs: Mapping[str, Any],
                              timeout: float) -> dict[K, int]:
    """Lower each end offset (a last stable offset) to the offset after the partition's last committed record.

    With transactions a partition's last offsets are control records (a commit or abort marker,
    and aborted records before it), which no consumer ever delivers. Faust's table recovery waits
    for the record at end - 1, so a changelog ending in a marker would never be restored. One
    read_committed consumer reads the tail of each partition (the last 16 offsets, then more
    while it holds no record); a partition with no committed record at all gets 0.
    """
    result = dict(ends)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False,
                                isolation_level="read_committed", client_id="shipguard-last-records",
                                **client_kwargs)
    await consumer.start()
    try:
        for key, end in ends.items():
            if not end:
                continue
            tp = TopicPartition(key.topic, key.partition)
            consumer.assign([tp])
            window, last = 16, None
            while last is None:
                start = max(0, end - window)
                consumer.seek(tp, start)
                deadline = asyncio.get_running_loop().time() + timeout
                while await consumer.position(tp) < end:
                    batch = await consumer.getmany(tp, timeout_ms=200)
                    offsets = [r.offset for r in batch.get(tp, []) if r.offset < end]
                    if offsets:
                        last = max(offsets) if last is None else max(last, *offsets)
                    if asyncio.get_running_loop().time() > deadline:
                        raise TimeoutError(f"reading the tail of {tp.topic}/{tp.partition} up to {end}")
                if last is None and start == 0:
                    break
                window *= 16
            result[key] = 0 if last is None else last + 1
    finally:
        await consumer.stop()
    return result
