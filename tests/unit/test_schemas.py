"""The wire schemas are strict where the contract is, and lenient where it says so."""

import base64

import pytest

from schemas.codec import BadInput, decode_input, dumps, loads, raw_text
from schemas.outputs import DeadLetter
from tests.factories import PAID, order_paid

GOOD_ORDER = loads(dumps({
    "event_id": "e1", "order_id": "O1", "shop_id": "s1", "platform": "douyin",
    "paid_at": "2026-03-02T10:00:00+08:00", "amount": "129.00",
    "recipient": {"name": "张三", "phone": "13812345678", "province": "浙江省", "city": "杭州市",
                  "address": "文三路 100 号"}}))


def order_with(**changes):
    data = dict(GOOD_ORDER)
    data.update(changes)
    return dumps(data)


def test_a_valid_order_paid_decodes_with_defaults_from_the_contract():
    order = decode_input("order-paid", dumps(GOOD_ORDER))
    assert order.currency == "CNY" and order.delivery_mode == "express" and order.presale is False


@pytest.mark.parametrize("field, value, fragment", [
    ("amount", 129.0, "amount: money must be a decimal string"),
    ("amount", "-5.00", "amount: not a non-negative decimal string"),
    ("paid_at", "2026-03-02T10:00:00", "paid_at: time has no UTC offset"),
    ("paid_at", 1772416800, "paid_at: time must be an ISO-8601 string"),
    ("paid_at", "1900-01-01T00:00:00+08:00", "paid_at: time out of range"),
    ("platform", "jd", "platform: Input should be 'douyin', 'taobao' or 'tiktok'"),
    ("order_id", 42, "order_id: Input should be a valid string"),
    ("presale", "true", "presale: Input should be a valid boolean"),
])
def test_a_wrong_type_or_unknown_enum_is_refused_with_its_field_path(field, value, fragment):
    with pytest.raises(BadInput) as caught:
        decode_input("order-paid", order_with(**{field: value}))
    assert fragment in str(caught.value)


def test_a_missing_required_field_is_named():
    data = dict(GOOD_ORDER)
    del data["shop_id"]
    with pytest.raises(BadInput, match="shop_id: Field required"):
        decode_input("order-paid", dumps(data))


def test_a_presale_order_without_ship_by_is_refused():
    with pytest.raises(BadInput, match="presale orders must carry ship_by"):
        decode_input("order-paid", order_with(presale=True))


def test_unknown_fields_are_ignored():
    assert decode_input("order-paid", order_with(colour="blue")).order_id == "O1"


def test_a_value_that_is_not_json_or_not_an_object_is_refused():
    with pytest.raises(BadInput, match="not JSON"):
        decode_input("order-paid", b"{nope")
    with pytest.raises(BadInput, match="expected a JSON object"):
        decode_input("order-paid", b"[1, 2]")
    with pytest.raises(BadInput, match="no value"):
        decode_input("order-paid", None)


def test_waybill_numbers_are_upper_cased_and_stripped_of_spaces_on_every_topic():
    up = decode_input("waybill-uploaded", dumps({
        "event_id": "u", "order_id": "O1", "shop_id": "s", "carrier": "SF",
        "waybill_no": " sf14 0000 0000001", "uploaded_at": "2026-03-02T15:00:00+08:00"}))
    sc = decode_input("tracking-scans", dumps({
        "event_id": "s", "carrier": "SF", "waybill_no": "sf1400000000001 ", "scan_at": "2026-03-02T15:00:00+08:00",
        "status": "PICKED_UP", "city": "杭州"}))
    assert up.waybill_no == sc.waybill_no == "SF1400000000001"


def test_a_waybill_number_is_required_unless_the_carrier_is_self_pickup():
    base = {"event_id": "u", "order_id": "O1", "shop_id": "s", "uploaded_at": "2026-03-02T15:00:00+08:00"}
    assert decode_input("waybill-uploaded", dumps({**base, "carrier": "SELF_PICKUP"})).waybill_no is None
    with pytest.raises(BadInput, match="required unless carrier is SELF_PICKUP"):
        decode_input("waybill-uploaded", dumps({**base, "carrier": "ZTO"}))


def test_outputs_write_times_in_utc_with_a_z_and_money_as_strings():
    order = order_paid()
    assert loads(dumps(order))["paid_at"] == "2026-03-02T02:00:00Z"
    assert loads(dumps(order))["amount"] == "129.00"
    assert PAID.utcoffset().total_seconds() == 8 * 3600


def test_bytes_that_are_not_utf8_are_kept_as_base64_in_a_dead_letter():
    raw = b"\xff\xfe bad"
    text, encoding = raw_text(raw)
    assert encoding == "base64" and base64.b64decode(text) == raw
    assert raw_text(b'{"a": 1}') == ('{"a": 1}', "utf-8")
    letter = DeadLetter(source_topic="order-paid", partition=1, offset=2, error="x", received_at=PAID,
                        raw=text, raw_encoding=encoding)
    assert loads(dumps(letter))["raw_encoding"] == "base64"


@pytest.mark.parametrize("length", [2001, 10_000, 1_000_000])
def test_an_over_long_buyer_remark_is_truncated_and_marked_and_the_order_is_kept(length):
    remark = "请" * length
    order = decode_input("order-paid", order_with(buyer_remark=remark))
    assert len(order.buyer_remark) == 2000
    assert order.buyer_remark.endswith(f" [truncated by shipguard: {length} characters]")
    assert order.buyer_remark.startswith("请" * 1900)


def test_free_text_within_its_limit_is_kept_as_it_is_and_an_address_is_not_free_text():
    assert decode_input("order-paid", order_with(buyer_remark="请" * 2000)).buyer_remark == "请" * 2000
    long_address = dict(GOOD_ORDER["recipient"], address="路" * 2001)
    with pytest.raises(BadInput, match="address"):
        decode_input("order-paid", order_with(recipient=long_address))


def test_an_over_long_scan_description_and_request_detail_are_truncated_too():
    from tests.factories import cancellation, scan

    scan_value = loads(dumps(scan(at=PAID).model_dump(mode="json")))
    scan_value["description"] = "x" * 5000
    described = decode_input("tracking-scans", dumps(scan_value)).description
    assert described is not None and described.endswith("[truncated by shipguard: 5000 characters]")
    request = loads(dumps(cancellation(at=PAID).model_dump(mode="json")))
    request["detail"] = "y" * 3000
    assert len(decode_input("cancellation-requests", dumps(request)).detail) == 2000
