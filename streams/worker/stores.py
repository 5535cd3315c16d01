"""The shell's state: one keyed store per table, written with an explicit changelog partition.

Owners: orders are deleted by `processors.order.on_time` after their retention, numbers by
`processors.waybill.on_time`, shops by `processors.shop_alerts.on_time`; input clocks are one key
per input partition (overwritten, never growing). Outboxes belong to `streams.worker.delivery`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

from schemas.state import InputClock
from streams.worker.records import TP

SendChangelog = Callable[[int, str, Any], Awaitable[Any]]


class KeyedData(Protocol):
    """Where a store keeps its states: a dict, Faust's memory store or its RocksDB store."""

    def get(self, key: str, partition: int | None = None) -> Any: ...

    def put(self, key: str, value: Any, partition: int) -> None: ...

    def items(self) -> Iterable[tuple[str, Any]]: ...

    def __len__(self) -> int: ...


class MappingStore:
    """A mapping of key -> state: a dict in process, or Faust's memory store.

    `noted(mapping, key, value, partition)` is told of every write (Faust's memory store keeps each
    key's partition: streams.kafka.overrides.note_key_partition).
    """

    def __init__(self, mapping: Any, noted: Callable[[Any, str, Any, int], None] | None = None) -> None:
        self.mapping = mapping
        self.noted = noted

    def get(self, key: str, partition: int | None = None) -> Any:
        return self.mapping.get(key)

    def put(self, key: str, value: Any, partition: int) -> None:
        if value is None:
            self.mapping.pop(key, None)
        else:
            self.mapping[key] = value
        if self.noted is not None:
            self.noted(self.mapping, key, value, partition)

    def items(self) -> Iterable[tuple[str, Any]]:
        return iter(self.mapping.items())

    def __len__(self) -> int:
        return len(self.mapping)


class StateStore:
    """A keyed table the shell writes with an explicit changelog partition.

    Faust's `table[k] = v` writes the changelog partition of the *current event*, which inside a
    batch is the batch's last event: wrong for the others; and it queues the write in Faust's
    ProducerBuffer, which drains one message per loop turn and stalls the stream when full.
    We write the store at once and queue one changelog record per dirty key; `flush` sends them
    (awaited, in order) before the batch's outputs. A plain dict is wrapped in a `MappingStore`.
    """

    def __init__(self, data: Any, send_changelog: SendChangelog | None) -> None:
        self.data: KeyedData = MappingStore(data) if isinstance(data, dict) else data
        self.send_changelog = send_changelog
        self.pending: dict[str, tuple[int, Any]] = {}

    def get(self, key: str, partition: int | None = None) -> Any:
        return self.data.get(key, partition)

    def put(self, key: str, value: Any, partition: int) -> None:
        self.data.put(key, value, partition)
        if self.send_changelog is not None:
            self.pending.pop(key, None)  # keep the changelog in write order
            self.pending[key] = (partition, value)

    async def flush(self) -> None:
        """Send the queued changelog records (the latest value of each key written since) and
        wait until the broker has them all."""
        delivered = await self.send()
        if delivered:
            await asyncio.gather(*delivered)

    async def send(self) -> list[Any]:
        """Hand the queued changelog records to the producer; their delivery futures, not awaited
        (inside a transaction they complete when it commits)."""
        pending, self.pending = self.pending, {}
        if self.send_changelog is None:
            return []
        sent = [await self.send_changelog(partition, key, value) for key, (partition, value) in pending.items()]
        return [future for future in sent if future is not None]

    def __len__(self) -> int:
        return len(self.data)

    def items(self) -> Iterable[tuple[str, Any]]:
        """Every stored (key, state), one at a time (a list of a million states would stay in
        the process's heap after use)."""
        return self.data.items()


class Stores:
    """The worker's tables: one per side, and each input partition's latest event time."""

    def __init__(self, orders: StateStore, waybills: StateStore, shops: StateStore, clocks: StateStore) -> None:
        self.orders, self.waybills, self.shops, self.clocks = orders, waybills, shops, clocks
        self.by_side = {"order": orders, "waybill": waybills, "shop": shops}

    @staticmethod
    def put(store: StateStore, key: str, state: Any, partition: int) -> None:
        """Store a key's new state (None deletes it), stamped with the partition it lives in."""
        if state is not None and state.partition != partition:
            state = state.model_copy(update={"partition": partition})
        store.put(key, state, partition)

    def write_clocks(self, latest: dict[TP, datetime]) -> None:
        """Queue the latest event time of each input partition in `latest` (key "topic:partition")."""
        for (topic, partition), at in latest.items():
            self.clocks.put(f"{topic}:{partition}", InputClock(partition=partition, at=at), partition)

    async def send(self) -> list[Any]:
        """Every table's queued changelog records handed to the producer; their futures."""
        stores = (self.orders, self.waybills, self.shops, self.clocks)
        return [future for store in stores for future in await store.send()]

    async def flush(self) -> None:
        """Every table's queued changelog records on the broker."""
        await asyncio.gather(self.orders.flush(), self.waybills.flush(), self.shops.flush(), self.clocks.flush())
