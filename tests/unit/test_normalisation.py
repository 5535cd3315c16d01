"""Carrier number formats, province and city normalisation, and PII masks."""

import pytest

from processors.carriers import is_valid_waybill
from processors.geo import normalise_city, normalise_province, remoteness
from processors.pii import mask_name, mask_phone, recipient_hash
from streams.rules_file import load_rules

RULES = load_rules()


@pytest.mark.parametrize("carrier, number", [
    ("SF", "SF1400000000001"), ("SF", "SFA400000000001"), ("ZTO", "73100000000003"), ("ZTO", "123456789012"),
    ("YTO", "YT1234567890123"), ("STO", "773456789012345"), ("YUNDA", "312345678901234"),
    ("YUNDA", "5123456789012"), ("JT", "JT123456789012"), ("JT", "JT1234567890123"),
    ("JD", "JDAB12345678901"), ("EMS", "EA123456789CN"), ("EMS", "1123456789012"),
    ("DEPPON", "DPK12345678901"), ("DEPPON", "DPK123456789012"), ("OTHER", "AB-12345"),
])
def test_numbers_in_the_carriers_format_are_valid(carrier, number):
    assert is_valid_waybill(carrier, number)


@pytest.mark.parametrize("carrier, number", [
    ("SF", "SF12345"), ("SF", "1400000000001"), ("ZTO", "79100000000003"), ("YTO", "YT123"),
    ("STO", "663456789012345"), ("YUNDA", "612345678901234"), ("JT", "JT12345678901"),
    ("JD", "JD1234567890"), ("EMS", "E123456789CN"), ("DEPPON", "DPK1234567890"),
    ("OTHER", "AB-1234"), ("OTHER", "A" * 31), ("SF", "SF1400000000001X"), ("ZTO", None),
])
def test_numbers_outside_the_carriers_format_are_invalid(carrier, number):
    assert not is_valid_waybill(carrier, number)


def test_a_number_of_another_carrier_is_invalid_for_the_declared_one():
    assert not is_valid_waybill("ZTO", "SF1400000000001")


@pytest.mark.parametrize("raw, normal", [("杭州市", "杭州"), ("杭州", "杭州"), ("大兴安岭地区", "大兴安岭"),
                                         ("锡林郭勒盟", "锡林郭勒"), ("延边朝鲜族自治州", "延边朝鲜族"),
                                         (" 杭州 市", "杭州")])
def test_cities_compare_after_dropping_the_administrative_suffix(raw, normal):
    assert normalise_city(raw) == normal


@pytest.mark.parametrize("raw, normal", [("浙江省", "浙江"), ("北京市", "北京"), ("新疆维吾尔自治区", "新疆"),
                                         ("广西壮族自治区", "广西"), ("宁夏回族自治区", "宁夏"),
                                         ("香港特别行政区", "香港")])
def test_provinces_compare_after_dropping_suffixes_and_ethnic_names(raw, normal):
    assert normalise_province(raw) == normal


@pytest.mark.parametrize("province, kind", [("新疆维吾尔自治区", "very_remote"), ("西藏自治区", "very_remote"),
                                            ("内蒙古自治区", "remote"), ("海南省", "remote"),
                                            ("宁夏回族自治区", "remote"), ("浙江省", "normal")])
def test_destination_remoteness_comes_from_the_configured_provinces(province, kind):
    assert remoteness(province, RULES.remote_provinces, RULES.very_remote_provinces) == kind


def test_pii_is_masked_and_hashed_with_the_salt():
    assert (mask_name("张三"), mask_name("欧阳娜娜"), mask_phone("13812345678")) == ("张*", "欧***", "138****5678")
    one = recipient_hash("salt", "张三", "13812345678", "文三路 100 号")
    assert one == recipient_hash("salt", "张三 ", "138 1234 5678", "文三路100号")
    assert one != recipient_hash("other", "张三", "13812345678", "文三路 100 号")
    assert "张三" not in one and "13812345678" not in one
