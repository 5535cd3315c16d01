"""Input events, one immutable model per input topic of the contract (named in the past tense)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from schemas.types import FreeText, Id, Money, ShortText, StrictBool, Text, Time, WaybillNo

Platform = Literal["douyin", "taobao", "tiktok"]
DeliveryMode = Literal["express", "self_pickup"]
Carrier = Literal["SF", "ZTO", "YTO", "STO", "YUNDA", "JT", "JD", "EMS", "DEPPON", "OTHER", "SELF_PICKUP"]
ScanStatus = Literal["PICKED_UP", "IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED",
                     "FAILED_ATTEMPT", "EXCEPTION", "RETURNED"]
CancelReason = Literal["OUT_OF_STOCK", "QUALITY_ISSUE", "LOGISTICS_EXCEPTION", "OTHER"]


class WireModel(BaseModel):
    """Base of every wire model: immutable, unknown fields ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Recipient(WireModel):
    """Who receives the parcel; name, phone and address are PII and never leave the worker."""

    name: ShortText
    phone: ShortText
    province: ShortText
    city: ShortText
    district: ShortText | None = None
    address: Text


class OrderPaid(WireModel):
    """`order-paid`: a buyer paid; starts the order's clock."""

    event_id: Id
    order_id: Id
    shop_id: Id
    platform: Platform
    paid_at: Time
    amount: Money
    currency: ShortText = "CNY"
    ship_by: Time | None = None
    presale: StrictBool = False
    delivery_mode: DeliveryMode = "express"
    buyer_remark: FreeText | None = None
    recipient: Recipient

    @model_validator(mode="after")
    def _presale_needs_ship_by(self) -> OrderPaid:
        if self.presale and self.ship_by is None:
            raise ValueError("ship_by: presale orders must carry ship_by")
        return self


class WaybillUploaded(WireModel):
    """`waybill-uploaded`: the merchant uploaded a waybill number; a later upload replaces it."""

    event_id: Id
    order_id: Id
    shop_id: Id
    carrier: Carrier
    waybill_no: WaybillNo | None = None
    uploaded_at: Time

    @model_validator(mode="after")
    def _number_unless_self_pickup(self) -> WaybillUploaded:
        if self.carrier != "SELF_PICKUP" and not self.waybill_no:
            raise ValueError("waybill_no: required unless carrier is SELF_PICKUP")
        return self


class ParcelScanned(WireModel):
    """`tracking-scans`: a carrier scanned a parcel; carriers know waybills, not orders."""

    event_id: Id
    carrier: Carrier
    waybill_no: WaybillNo
    scan_at: Time
    status: ScanStatus
    city: ShortText
    province: ShortText | None = None
    description: FreeText | None = None


class CancellationRequested(WireModel):
    """`cancellation-requests`: the merchant asks to cancel shipment (取消发货)."""

    event_id: Id
    order_id: Id
    shop_id: Id
    reason: CancelReason
    detail: FreeText = ""
    requested_at: Time


class ClockTick(WireModel):
    """`clock-ticks`: moves stream time in event mode; no event_id, never deduplicated."""

    at: Time


# topic name -> model; the one place that says which model reads which input topic.
INPUT_MODELS: dict[str, type[WireModel]] = {
    "order-paid": OrderPaid,
    "waybill-uploaded": WaybillUploaded,
    "tracking-scans": ParcelScanned,
    "cancellation-requests": CancellationRequested,
    "clock-ticks": ClockTick,
}
