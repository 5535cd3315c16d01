"""Named instants and event builders shared by the test tiers (plain data, no I/O)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from schemas.events import CancellationRequested, OrderPaid, ParcelScanned, WaybillUploaded

CST = timezone(timedelta(hours=8))
PAID = datetime(2026, 3, 2, 10, 0, tzinfo=CST)
SHIP_BY = PAID + timedelta(hours=48)
WARN_AT = SHIP_BY - timedelta(hours=6)
SECOND = timedelta(seconds=1)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def days(n: float) -> timedelta:
    return timedelta(days=n)


def iso(value: datetime) -> str:
    return value.isoformat()


def order_paid(order_id: str = "O1", *, at: datetime = PAID, platform: str = "douyin",
               event_id: str | None = None, **extra: Any) -> OrderPaid:
    data = {"event_id": event_id or f"{order_id}-paid", "order_id": order_id, "shop_id": "shopA",
            "platform": platform, "paid_at": iso(at), "amount": "129.00", "currency": "CNY",
            "recipient": {"name": "张三", "phone": "13812345678", "province": "浙江省", "city": "杭州市",
                          "district": "西湖区", "address": "文三路 100 号"}}
    data.update(extra)
    return OrderPaid.model_validate(data)


def upload(order_id: str = "O1", number: str | None = "SF1400000000001", *, at: datetime,
           carrier: str = "SF", event_id: str | None = None) -> WaybillUploaded:
    return WaybillUploaded.model_validate({
        "event_id": event_id or f"{order_id}-up-{number}-{at.isoformat()}", "order_id": order_id,
        "shop_id": "shopA", "carrier": carrier, "waybill_no": number, "uploaded_at": iso(at)})


def scan(number: str = "SF1400000000001", *, at: datetime, status: str = "PICKED_UP",
         city: str = "杭州市", event_id: str | None = None, carrier: str = "SF") -> ParcelScanned:
    return ParcelScanned.model_validate({
        "event_id": event_id or f"scan-{number}-{at.isoformat()}-{status}", "carrier": carrier,
        "waybill_no": number, "scan_at": iso(at), "status": status, "city": city})


def cancellation(order_id: str = "O1", *, at: datetime, reason: str = "OUT_OF_STOCK",
                 detail: str = "") -> CancellationRequested:
    return CancellationRequested.model_validate({
        "event_id": f"{order_id}-cancel-{at.isoformat()}", "order_id": order_id, "shop_id": "shopA",
        "reason": reason, "detail": detail, "requested_at": iso(at)})
