"""Where each kind of processor output goes: an output topic, or another side's feed.

Output topics get the key's own partition number, so that each output partition has one writer
(the owner of that partition); feed messages are keyed by the key of the side that reads them and
sent to that key's partition, computed here (murmur2, `streams.topics.partition_for`) rather than
left to the producer's partitioner.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from schemas import codec
from schemas.internal import RegisterUpload, ScansForOrder
from schemas.outputs import CancellationOutcome, ShopAlert, ViolationWarning, identity
from schemas.shop import ShopFact
from schemas.types import format_time
from streams import topics as T
from streams.worker.clock import StreamTime
from streams.worker.metrics import Metrics
from streams.worker.records import Outgoing

log = logging.getLogger("shipguard")


class Router:
    """Messages for a side's outputs, counted and logged."""

    def __init__(self, app_id: str, metrics: Metrics, time: StreamTime) -> None:
        self.waybill_feed, self.order_feed, self.shop_feed = T.internal_topics(app_id)
        self.metrics, self.time, self.partitions = metrics, time, time.partitions

    def route(self, key: str, outputs: Sequence[Any], partition: int, side: str) -> list[Outgoing]:
        """Messages for the outputs of `key` (stored in `partition` on `side`)."""
        routed = []
        origin = (side, partition)
        for item in outputs:
            if isinstance(item, ViolationWarning):
                self.metrics.outputs[(item.rule, item.stage)] += 1
                log.info("warning order=%s rule=%s stage=%s occurred_at=%s warning_id=%s",
                         item.order_id, item.rule, item.stage, format_time(item.occurred_at),
                         item.warning_id)
                routed.append(self._output(T.VIOLATION_WARNINGS, key, item, partition, origin))
            elif isinstance(item, CancellationOutcome):
                self.metrics.outputs[("CANCELLATION", item.code)] += 1
                log.info("cancellation order=%s request=%s decision=%s code=%s", item.order_id,
                         item.request_event_id, item.decision, item.code)
                routed.append(self._output(T.CANCELLATION_OUTCOMES, key, item, partition, origin))
            elif isinstance(item, ShopAlert):
                self.metrics.outputs[(item.metric, item.stage)] += 1
                log.info("shop alert shop=%s metric=%s stage=%s value=%s window_end=%s", item.shop_id, item.metric,
                         item.stage, item.value, format_time(item.window_end))
                routed.append(self._output(T.SHOP_ALERTS, item.shop_id, item, partition, origin))
            elif isinstance(item, ShopFact):
                self.time.fact_sent()
                routed.append(self.forward(self.shop_feed, item.shop_id, item, origin))
            elif isinstance(item, RegisterUpload):
                routed.append(self.forward(self.waybill_feed, item.waybill_no, item, origin))
            elif isinstance(item, ScansForOrder):
                routed.append(self.forward(self.order_feed, item.order_id, item, origin))
        return routed

    def forward(self, feed: str, key: str, item: Any, origin: tuple[str, int] | None = None) -> Outgoing:
        """`item` on `feed`, in the partition of `key` (where the side that reads it keeps `key`)."""
        encoded = key.encode("utf-8")
        return Outgoing(feed, encoded, codec.dumps(item), T.partition_for(encoded, self.partitions), origin)

    @staticmethod
    def _output(topic: str, key: str, item: Any, partition: int, origin: tuple[str, int]) -> Outgoing:
        return Outgoing(topic, key.encode("utf-8"), codec.dumps(item), partition, origin, identity(topic, item))
