"""The simulator's own picture of a stream: orders with their uploads and requests, and parcel scans.

Times are whole seconds since the epoch (UTC); the generator and the labeller both work on these
plain records, and only `simulator.output` turns them into wire messages. Waybill numbers on
scans are normalised; an upload keeps the number as the merchant typed it (`waybill_no`) and
exposes the normalised identity as `number`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.types import normalise_waybill

MINUTE = 60
HOUR = 3600
DAY = 86400


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who receives the parcel, as the buyer wrote it."""

    name: str
    phone: str
    province: str
    city: str
    district: str | None
    address: str

    @property
    def identity(self) -> tuple[str, ...]:
        """What makes two recipients the same person at the same place (the reuse check)."""
        return (self.name, self.phone, self.province, self.city, self.district or "", self.address)


@dataclass(slots=True)
class Upload:
    """One `waybill-uploaded` event."""

    event_id: str
    t: int
    carrier: str
    waybill_no: str | None

    @property
    def number(self) -> str | None:
        """The normalised waybill number: its identity everywhere."""
        return normalise_waybill(self.waybill_no) if self.waybill_no else None


@dataclass(slots=True)
class Scan:
    """One `tracking-scans` event."""

    event_id: str
    t: int
    carrier: str
    number: str
    status: str
    city: str
    province: str | None = None
    description: str | None = None


@dataclass(slots=True)
class Cancellation:
    """One `cancellation-requests` event."""

    event_id: str
    t: int
    reason: str
    detail: str


@dataclass(slots=True)
class Order:
    """One order: its `order-paid` facts plus the uploads and cancellation requests made for it."""

    index: int
    order_id: str
    shop_id: str
    platform: str
    paid_at: int
    amount: str
    recipient: Recipient
    currency: str = "CNY"
    ship_by: int | None = None
    presale: bool = False
    delivery_mode: str = "express"
    remark: str | None = None
    event_id: str = ""
    uploads: list[Upload] = field(default_factory=list)
    cancellations: list[Cancellation] = field(default_factory=list)
    # what the generator meant to do with it (not on the wire)
    fault: str | None = None
    variant: str | None = None
    cancel_variant: str | None = None

