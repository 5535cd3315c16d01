"""State models, kept apart from wire events: what the tables hold per order and per waybill.

Recipients appear here only as a salted hash plus province and city, and the masked forms that
outputs carry (see processors.pii): the clear name, phone and address never reach a table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from schemas.events import Carrier, DeliveryMode, Platform, ScanStatus
from schemas.types import Instant, Money


class StateModel(BaseModel):
    """Base of state models: immutable; processors return updated copies."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class OrderFacts(StateModel):
    """What `order-paid` told us, with the recipient reduced to hash, region and masks."""

    shop_id: str
    platform: Platform
    paid_at: Instant
    ship_by: Instant
    amount: Money
    currency: str
    delivery_mode: DeliveryMode
    presale: bool
    stop_remark: bool
    recipient_hash: str
    province: str
    city: str
    masked_name: str
    masked_phone: str


class UploadFact(StateModel):
    """One waybill upload of the order; the latest by uploaded_at is the current number."""

    event_id: str
    carrier: Carrier
    waybill_no: str | None
    uploaded_at: Instant
    valid: bool


class ScanFact(StateModel):
    """One carrier scan as the order side keeps it (joined from the waybill side)."""

    event_id: str
    waybill_no: str
    carrier: Carrier
    status: ScanStatus
    scan_at: Instant
    city: str
    province: str | None = None


class OtherUpload(StateModel):
    """Another order that uploaded the same number (for the reuse rule)."""

    order_id: str
    upload_event_id: str
    carrier: Carrier
    uploaded_at: Instant
    same_recipient: bool
    waybill_no: str


class Emitted(StateModel):
    """A (warning_id, stage) already emitted, with what later stages need to know."""

    warning_id: str
    rule: str
    stage: Literal["WARNING", "VIOLATION", "RESOLVED"]
    occurred_at: Instant
    waybill_no: str | None = None


class PendingRequest(StateModel):
    """A cancellation request not judged yet (judged at requested_at, or +lateness if the order is unknown)."""

    event_id: str
    shop_id: str
    reason: str
    detail: str
    requested_at: Instant
    waiting: bool = False  # the order was unknown when the request came due: decided at +lateness


class OrderState(StateModel):
    """Everything the order side knows of one order. Deleted when no rule can fire any more."""

    order_id: str
    partition: int = -1  # the changelog partition the shell writes this key to
    facts: OrderFacts | None = None
    seen: tuple[str, ...] = ()
    uploads: tuple[UploadFact, ...] = ()
    forwarded: tuple[str, ...] = ()     # upload event_ids registered with the waybill side
    joins_pending: tuple[str, ...] = ()  # upload event_ids whose scan history has not arrived
    scans: tuple[ScanFact, ...] = ()
    others: tuple[OtherUpload, ...] = ()
    emitted: tuple[Emitted, ...] = ()
    last_activity: Instant | None = None
    closed: bool = False  # no rule can fire any more: only this marker is kept until retention
    requests: tuple[PendingRequest, ...] = ()
    cancelled_at: Instant | None = None
    # when the order side must next look at this order (kept by the shell, so that a restart
    # schedules the timers of a million orders without running their rules again)
    wake_at: Instant | None = None


class Registration(StateModel):
    """An order that uploaded this waybill number."""

    order_id: str
    upload_event_id: str
    carrier: Carrier
    uploaded_at: Instant
    recipient_hash: str


class WaybillState(StateModel):
    """The waybill side: a number's scans (kept 30 days after the last) and the orders that use it."""

    waybill_no: str
    partition: int = -1
    scans: tuple[ScanFact, ...] = ()
    orders: tuple[Registration, ...] = ()
    last_activity: Instant | None = None

    def expires_at(self, retention) -> datetime | None:
        """When this number's state may be deleted: retention after its last activity."""
        return self.last_activity + retention if self.last_activity else None


class OutboxItem(StateModel):
    """One message a batch emits because of a state change, kept until the next batch of its side."""

    topic: str
    partition: int | None = None  # explicit for output topics; None = the key's default partition
    key: str | None = None
    value: str                       # the message's JSON text
    identity: str | None = None   # set for output topics: what "appears once" means there


class Outbox(StateModel):
    """The messages of one side's latest batch for one partition, written before its state.

    `bases` holds, per output topic, the offset at which this batch's records start on the
    partition of that topic (this worker is its only writer): recovery reads from there to see
    which already landed. Lives as long as the partition: the next batch overwrites it.
    """

    partition: int = -1
    items: tuple[OutboxItem, ...] = ()
    bases: dict[str, int] = {}


class InputClock(StateModel):
    """The latest event time read from one input partition (key `topic:partition`).

    Written with each batch's state, before its offsets are committed: a worker that gains the
    partition (restart, failover) starts its stream time from it, even when the partition has
    nothing left to read. Lives as long as the partition.
    """

    partition: int = -1
    at: Instant


__all__ = ["OrderFacts", "UploadFact", "ScanFact", "OtherUpload", "Emitted", "OrderState",
           "Registration", "WaybillState", "OutboxItem", "Outbox", "InputClock"]
