"""Delivery: every output message on its topic once, even across crashes and lost answers.

Two ways, chosen when the shell is built:
- `Delivery` sends and waits; a message whose send failed ambiguously is looked for in its
  output partition (this worker is its only writer) and sent again only if absent. Used where
  nothing can crash between writing state and sending (in process).
- `OutboxDelivery` also writes each batch's messages to its partition's outbox (a changelog
  table) before the batch's state; after an assignment the outboxes are compared with the output
  partitions and what is missing is sent (`recover`). Used by the worker on Kafka.
See docs/delivery.md. Owned state: each output partition's end as we wrote it, the identities an
outbox held at the last recovery (never emitted again), and the outboxes themselves (one set of
chunks per side and partition, overwritten by each batch).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from schemas import codec
from schemas.outputs import identity
from schemas.state import Outbox, OutboxItem
from streams import topics as T
from streams.worker.port import Broker
from streams.worker.records import TP, Outgoing
from streams.worker.stores import StateStore

log = logging.getLogger("shipguard")
OUTBOX_CHUNK_BYTES = 262_144  # an outbox record stays well below Kafka's default 1 MB message limit
Bases = dict[TP, int | None]  # output partition -> where it stood before


def output_tp(item: Outgoing) -> TP:
    """The output partition of a message for an output topic (those always name their partition)."""
    assert item.partition is not None, f"an output for {item.topic} without a partition"
    return item.topic, item.partition


def chunks(items: list[Outgoing], limit: int) -> list[list[Outgoing]]:
    """`items` in order, cut into runs of at most about `limit` bytes (at least one item each)."""
    runs: list[list[Outgoing]] = [[]]
    size = 0
    for item in items:
        cost = len(item.value) + len(item.key or b"") + 128
        if runs[-1] and size + cost > limit:
            runs.append([])
            size = 0
        runs[-1].append(item)
        size += cost
    return runs


class Delivery:
    """Send a batch's messages and repair what failed by reading the output partitions back."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.output_next: dict[TP, int] = {}  # output partition -> its end, as we wrote it
        self.recovered: set[str] = set()  # identities an outbox held at the last recovery: never again
        self.needs_recovery = False

    def unsent(self, out: list[Outgoing]) -> list[Outgoing]:
        """`out` without the outputs an outbox held at the last recovery (sent then)."""
        if self.recovered:
            return [o for o in out if o.identity is None or o.identity not in self.recovered]
        return out

    async def write_outboxes(self, out: list[Outgoing]) -> None:
        """Nothing to write without outboxes."""

    def on_assigned(self) -> None:
        """Partitions were (re)assigned."""

    async def recover_if_needed(self, assigned: list[TP], shop_feed: str) -> None:
        """Nothing to recover without outboxes."""

    async def deliver(self, out: list[Outgoing], bases: Bases | None = None) -> None:
        """Send and wait for every message; repair what failed (see streams.kafka.clients). `bases`:
        where each output partition stood before these messages (default: as we wrote it)."""
        if bases is None:
            bases = {output_tp(o): self.output_next.get(output_tp(o)) for o in out if o.identity is not None}
        failed = self._delivered(out, await self.broker.send(out))
        attempt = 0
        while failed:
            attempt += 1
            log.warning("delivery failed messages=%d attempt=%d: reading the output partitions back",
                        len(failed), attempt)
            await asyncio.sleep(min(5.0, 0.2 * 2 ** attempt))
            try:
                missing = await self.not_landed(failed, bases)
                failed = self._delivered(missing, await self.broker.send(missing))
            except Exception as exc:  # the broker is still away: try again
                log.warning("delivery repair failed attempt=%d error=%r", attempt, exc)
        if attempt:
            log.info("delivery repaired attempts=%d", attempt)

    def _delivered(self, out: list[Outgoing], results: list[Any] | None) -> list[Outgoing]:
        """Note where output partitions now end; return the messages whose send failed."""
        failed = []
        for item, result in zip(out, results or [None] * len(out), strict=True):
            if isinstance(result, BaseException):
                failed.append(item)
            elif item.identity is not None and isinstance(result, int):
                tp = output_tp(item)
                self.output_next[tp] = max(self.output_next.get(tp, 0), result + 1)
        return failed

    async def not_landed(self, items: list[Outgoing], bases: Bases) -> list[Outgoing]:
        """Of `items`, those not on the broker: output messages absent from their partition
        since `bases`; feed messages all (their readers ignore a repeat)."""
        landed: dict[TP, set[str | None]] = {}
        for topic, partition in {output_tp(o) for o in items if o.identity is not None}:
            start = bases.get((topic, partition))
            if start is None:  # no base known (not expected): what is there now is not ours
                start = (await self.broker.end_offsets([(topic, partition)]))[(topic, partition)]
            values, end = await self.broker.read_back(topic, partition, start)
            landed[(topic, partition)] = {identity(topic, codec.loads(v)) for v in values}
            self.output_next[(topic, partition)] = end
        return [o for o in items if o.identity is None or o.identity not in landed[output_tp(o)]]


class OutboxDelivery(Delivery):
    """Delivery with an outbox per side and partition, written before the batch's state."""

    def __init__(self, broker: Broker, outbox: StateStore) -> None:
        super().__init__(broker)
        self.outbox = outbox
        self.outbox_chunks: dict[tuple[str, int], int] = {}  # outbox records per (side, partition)
        self.needs_recovery = True

    async def write_outboxes(self, out: list[Outgoing]) -> None:
        """Each message caused by a state change goes to its (side, partition)'s outbox; wait."""
        boxes: dict[tuple[str, int], list[Outgoing]] = {}
        for item in out:
            if item.origin is not None:
                boxes.setdefault(item.origin, []).append(item)
        for (side, partition), items in boxes.items():
            runs = chunks(items, OUTBOX_CHUNK_BYTES)
            for n, run in enumerate(runs):
                self.outbox.put(f"{side}:{partition}:{n}", await self._outbox(partition, run), partition)
            for n in range(len(runs), self.outbox_chunks.get((side, partition), 0)):
                self.outbox.put(f"{side}:{partition}:{n}", None, partition)  # an older batch's
            self.outbox_chunks[(side, partition)] = len(runs)
        await self.outbox.flush()

    async def _outbox(self, partition: int, items: list[Outgoing]) -> Outbox:
        """One partition's outbox: its messages, and where each output partition ends now."""
        tps = sorted({output_tp(o) for o in items if o.identity is not None})
        unknown = [tp for tp in tps if tp not in self.output_next]
        if unknown:  # not written since the last recovery: we are its only writer, so its end is ours
            self.output_next.update(await self.broker.end_offsets(unknown))
        return Outbox(partition=partition, bases={topic: self.output_next[(topic, p)] for topic, p in tps},
                      items=tuple(OutboxItem(topic=o.topic, partition=o.partition, value=o.value.decode("utf-8"),
                                             key=None if o.key is None else o.key.decode("utf-8"),
                                             identity=o.identity) for o in items))

    def on_assigned(self) -> None:
        """Partitions were (re)assigned: check their outboxes before the next batch or tick."""
        self.needs_recovery = True

    async def recover_if_needed(self, assigned: list[TP], shop_feed: str) -> None:
        if self.needs_recovery:
            self.needs_recovery = False
            await self.recover(assigned, shop_feed)

    async def recover(self, assigned: list[TP], shop_feed: str) -> None:
        """Finish what the last owner of each assigned partition may have left half done.

        Every outbox of an assigned partition is compared with the output partitions from its
        bases on: output messages found there are not sent again, the others are; feed messages
        are sent again (their readers ignore repeats). Each output message an outbox held is
        remembered, so that reading its input again cannot emit it a second time.
        """
        started = time.monotonic()
        sides = {"order": T.ORDER_PAID, "waybill": T.TRACKING_SCANS, "shop": shop_feed}
        pending: list[Outgoing] = []
        bases: Bases = {}
        self.output_next, self.recovered = {}, set()
        for side, topic in sides.items():
            for partition in sorted(p for t, p in assigned if t == topic):
                # a batch writes chunks 0..n-1 in order on one changelog partition, then deletes
                # the older batch's beyond: chunk n+1 can only be there if chunk n is
                boxes: list[Outbox] = []
                while (box := self.outbox.get(f"{side}:{partition}:{len(boxes)}", partition)) is not None:
                    boxes.append(box)
                self.outbox_chunks[(side, partition)] = len(boxes)
                for held, item in [(box, item) for box in boxes for item in box.items]:
                    message = Outgoing(item.topic, None if item.key is None else item.key.encode("utf-8"),
                                       item.value.encode("utf-8"), item.partition, (side, partition), item.identity)
                    pending.append(message)
                    if item.identity is not None:
                        self.recovered.add(item.identity)
                        tp = output_tp(message)
                        base, known = held.bases.get(item.topic), bases.get(tp)
                        # chunks of two batches (a crash between them): read from the older base
                        bases[tp] = base if known is None or base is None else min(base, known)
        missing = await self.not_landed(pending, bases) if pending else []
        if missing:
            await self.deliver(missing, bases)
        log.info("outboxes checked partitions=%d held=%d resent=%d outputs_resent=%d in_ms=%.0f",
                 len({p for t, p in assigned}), len(pending), len(missing),
                 sum(o.identity is not None for o in missing), (time.monotonic() - started) * 1000)
