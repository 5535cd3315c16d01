"""The dashboard's Kafka reader: `OutputReader` folds the output topics into a `DashboardState`.

A plain aiokafka consumer (not Faust) that assigns itself every partition of
`violation-warnings`, `cancellation-outcomes` and `shop-alerts`, starts at the first record of
the last `--hours` (ListOffsets by timestamp) and skips any older record by its timestamp as
well (the embedded broker answers that ListOffsets with offset 0). It never commits: a
restarted dashboard reads the same hours again. No group membership either, so every replica
sees every partition and there is no group join to wait for (partitions added to a topic
later are read after a restart).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from schemas.outputs import OUTPUT_MODELS
from schemas.types import format_time
from streams.dashboard.state import TOPICS, DashboardState, OutputRecord

log = logging.getLogger("shipguard.dashboard")


# -- decoding ----------------------------------------------------------------------------------

def decode_output(topic: str, raw: bytes | None) -> OutputRecord:
    """Decode and validate one output record; raises codec.BadInput naming the defect."""
    from pydantic import ValidationError

    from schemas import codec

    if raw is None:
        raise codec.BadInput("(value): the record has no value")
    data = codec.loads(raw)
    if not isinstance(data, dict):
        raise codec.BadInput(f"(value): expected a JSON object, got {type(data).__name__}")
    try:
        return OUTPUT_MODELS[topic].model_validate(data)  # type: ignore[return-value]  # the topic's own model
    except ValidationError as exc:
        raise codec.BadInput(codec.describe(exc)) from None


# -- the Kafka reader --------------------------------------------------------------------------


class OutputReader:
    """Reads the output topics from `since` on into the state; hands each new feed item on."""

    def __init__(self, bootstrap: list[str], client_id: str, since: datetime, state: DashboardState,
                 on_item: Callable[[dict[str, Any]], None], client_kwargs: dict[str, Any] | None = None) -> None:
        self.bootstrap = bootstrap
        self.client_kwargs = client_kwargs or {}  # TLS / SASL
        self.client_id = client_id
        self.since_ms = int(since.timestamp() * 1000)
        self.state = state
        self.on_item = on_item
        self.status = "connecting"  # -> catching up -> live
        self.partitions = 0
        self.started = time.monotonic()
        self.resume: dict[tuple[str, int], int] = {}  # next offset per partition: a reconnect goes on from there

    async def run(self, stop: asyncio.Event) -> None:
        """Read until `stop`; a lost broker is retried every few seconds, the state kept."""
        from aiokafka.errors import KafkaError

        while not stop.is_set():
            try:
                await self._read(stop)
            except (TimeoutError, KafkaError, OSError) as exc:
                self.status = "connecting"
                log.warning("dashboard broker unavailable broker=%s error=%s retry_in_s=3",
                            ",".join(self.bootstrap), type(exc).__name__)
                await sleep_unless_stopped(stop, 3.0)

    async def _read(self, stop: asyncio.Event) -> None:
        from aiokafka import AIOKafkaConsumer

        from streams.kafka.offsets import raise_to_highwater

        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, client_id=self.client_id, group_id=None,
                                    enable_auto_commit=False, fetch_max_wait_ms=250, request_timeout_ms=15_000,
                                    **self.client_kwargs)
        try:
            await consumer.start()
            tps = await self._partitions(consumer, stop)
            if not tps:
                return
            consumer.assign(tps)
            await self._seek(consumer, tps)
            ends = await raise_to_highwater(consumer._client, await consumer.end_offsets(tps))
            pending = {tp: end for tp, end in ends.items() if end > 0}
            self.partitions = len(tps)
            self.status = "catching up" if pending else "live"
            log.info("dashboard reading topics=%s partitions=%d since=%s", ",".join(TOPICS), len(tps),
                     format_time(datetime.fromtimestamp(self.since_ms / 1000, UTC)))
            if not pending:
                self._log_caught_up()
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=1000)
                for tp, records in batches.items():
                    for record in records:
                        self._take(tp.topic, record)
                if pending:
                    for tp in [tp for tp, end in pending.items() if await consumer.position(tp) >= end]:
                        del pending[tp]
                    if not pending:
                        self.status = "live"
                        self._log_caught_up()
        finally:
            await consumer.stop()

    async def _partitions(self, consumer: Any, stop: asyncio.Event) -> list[Any]:
        """Every partition of the three topics, once all three exist (asking never creates one)."""
        from aiokafka import TopicPartition

        waited = False
        while not stop.is_set():
            cluster = await consumer._client.fetch_all_metadata()
            found = {topic: cluster.partitions_for_topic(topic) for topic in TOPICS}
            missing = [topic for topic, parts in found.items() if not parts]
            if not missing:
                return [TopicPartition(topic, p) for topic in TOPICS for p in sorted(found[topic])]
            self.status = "waiting for topics"
            if not waited:
                log.warning("dashboard waiting for topics missing=%s", ",".join(missing))
                waited = True
            await sleep_unless_stopped(stop, 2.0)
        return []

    async def _seek(self, consumer: Any, tps: list[Any]) -> None:
        """Where the last connection left off, else to the first record at or after `since` (where the
        broker cannot say, the beginning)."""
        for tp in tps:
            if (tp.topic, tp.partition) in self.resume:
                consumer.seek(tp, self.resume[(tp.topic, tp.partition)])
        tps = [tp for tp in tps if (tp.topic, tp.partition) not in self.resume]
        if not tps:
            return
        try:
            found = await consumer.offsets_for_times({tp: self.since_ms for tp in tps})
        except Exception as exc:  # an old broker without timestamp lookup: read all, skip by timestamp
            log.warning("dashboard offsets_for_times failed error=%s reading_from=beginning", type(exc).__name__)
            await consumer.seek_to_beginning(*tps)
            return
        for tp in tps:
            answer = found.get(tp)
            if answer is None:  # no record since then: only new ones
                await consumer.seek_to_end(tp)
            else:
                consumer.seek(tp, answer.offset)

    def _take(self, topic: str, record: Any) -> None:
        from schemas import codec

        self.resume[(topic, record.partition)] = record.offset + 1
        if record.timestamp is not None and 0 <= record.timestamp < self.since_ms:
            self.state.dropped["older_than_window"] += 1
            return
        try:
            value = decode_output(topic, record.value)
        except codec.BadInput as exc:
            self.state.dropped["bad_records"] += 1
            log.warning("dashboard bad record topic=%s partition=%d offset=%d error=%s",
                        topic, record.partition, record.offset, str(exc)[:200])
            return
        at = (datetime.fromtimestamp(record.timestamp / 1000, UTC)
              if record.timestamp is not None and record.timestamp >= 0 else datetime.now(UTC))
        item = self.state.apply(topic, value, at)
        if item is not None:
            self.on_item(item)

    def _log_caught_up(self) -> None:
        log.info("dashboard caught up records=%d seconds=%.1f dropped=%s", self.state.records,
                 time.monotonic() - self.started,
                 ",".join(f"{k}:{v}" for k, v in sorted(self.state.dropped.items())) or "none")


async def sleep_unless_stopped(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less when `stop` is set first."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass
