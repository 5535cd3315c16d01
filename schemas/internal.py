"""Messages on shipguard's own repartition topics (`<app>-waybill-feed`, `<app>-order-feed`).

These are internal: they carry the producer's stream time in-band (`wm`) so that the consumer
side can hold its timers until every scan read before that time has reached it.
"""

from __future__ import annotations

from typing import Any, Literal

from schemas.state import OrderFacts, OtherUpload, ScanFact, StateModel
from schemas.types import Instant


class RegisterUpload(StateModel):
    """Order side -> waybill side: this order uploaded this number; send me its scans."""

    kind: Literal["register"] = "register"
    order_id: str
    upload_event_id: str
    carrier: str
    waybill_no: str
    uploaded_at: Instant
    recipient_hash: str


class Rekeyed(StateModel):
    """An input record that arrived under the wrong key, forwarded under its real key."""

    kind: Literal["rekeyed"] = "rekeyed"
    topic: str
    value: dict[str, Any]


class PaidOrder(StateModel):
    """An `order-paid` that arrived in another partition than its order's, forwarded to the order's
    partition with the recipient already reduced to hash, region and masks (never in clear)."""

    kind: Literal["paid"] = "paid"
    event_id: str
    order_id: str
    facts: OrderFacts


class ScansForOrder(StateModel):
    """Waybill side -> order side: scans of a number the order uploaded.

    `join_for` is set on the reply to a registration (the whole 30-day history, possibly empty);
    live scans come one by one with `join_for` None.
    """

    kind: Literal["scans"] = "scans"
    order_id: str
    waybill_no: str
    join_for: str | None = None
    scans: tuple[ScanFact, ...] = ()
    others: tuple[OtherUpload, ...] = ()


class Watermark(StateModel):
    """One side -> every partition of the other side's feed: all it read from its input
    partitions `sources` with event time up to `at` has been handled and its messages sent.

    `read` (on the order and waybill feeds): every input record its sender read from `sources` up
    to that time in another partition than its key's is on the feeds (`PaidOrder`, `Rekeyed`);
    the key's owner counts its own time only up to every worker's `read`. Either may be absent
    (not known yet)."""

    kind: Literal["wm"] = "wm"
    sources: tuple[int, ...]
    at: Instant | None = None
    read: Instant | None = None


WaybillFeed = RegisterUpload | Rekeyed | Watermark
OrderFeed = ScansForOrder | PaidOrder | Rekeyed | Watermark
WAYBILL_FEED_KINDS = {"register": RegisterUpload, "rekeyed": Rekeyed, "wm": Watermark}
ORDER_FEED_KINDS = {"scans": ScansForOrder, "paid": PaidOrder, "rekeyed": Rekeyed, "wm": Watermark}


def _shop_feed_kinds() -> dict[str, type]:
    from schemas.shop import ShopFact  # the shop feed carries shop facts (their `kind`) and marks

    return {"wm": Watermark, "ORDER_PAID": ShopFact, "MERCHANT_FAULT_CANCEL": ShopFact,
            "SHIP_OVERDUE_VIOLATION": ShopFact}


SHOP_FEED_KINDS = _shop_feed_kinds()
__all__ = ["PaidOrder", "RegisterUpload", "Rekeyed", "ScansForOrder", "Watermark", "WaybillFeed",
           "OrderFeed",
           "WAYBILL_FEED_KINDS", "ORDER_FEED_KINDS", "SHOP_FEED_KINDS"]
