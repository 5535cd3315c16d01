"""Buyer remarks that ask not to ship by courier (rule 10), and the look-alikes that must not match."""

import pytest

from processors.remarks import asks_no_courier, normalise
from simulator import buyers

ASKS_NO_COURIER = [
    "快递停发",
    "我们这边快递停发了",
    "快递都停发了，先别发",
    "快递暂停发货了",
    "疫情期间停发快递",
    "不要发快递",
    "别发快递，我来店里拿",
    "不发快递",
    "勿寄快递",
    "不需要发快递",
    "自提",
    "我自提",
    "门店自提，谢谢",
    "到店自取",
    "上门自取",
    "自己来拿",
    "我自己过来取",
    "已约快递",
    "我已约快递上门取件",
    "已经约了快递来取",
    "不要发快递，到店自取",
    "别 发 快 递！",            # spaces and punctuation are dropped
    "ＺＩＴＩ　自提",           # full-width letters and spaces
    "到店自取，不要发快递到家",  # another phrase still asks
]

COURIER_STILL = [
    "请尽快发快递",
    "快递员放门口",
    "发顺丰快递",
    "不要放快递柜",
    "放自提柜",             # a locker is where the courier delivers to
    "送到小区自提点",
    "放驿站我自提",
    "丰巢自取就行",
    "已发快递请查收",
    "不要发中通快递，发顺丰",  # another carrier is still a courier
    "不要发快递到公司，发到家里",
    "怎么还不发快递？",
    "为什么不发快递",
    "快递停了三天没动",     # a stalled parcel, not a request
    "自己去驿站拿",
    "",
    None,
]


@pytest.mark.parametrize("remark", ASKS_NO_COURIER)
def test_remarks_that_ask_not_to_ship_by_courier_match(remark):
    assert asks_no_courier(remark)


@pytest.mark.parametrize("remark", COURIER_STILL)
def test_remarks_that_still_want_a_courier_do_not_match(remark):
    assert not asks_no_courier(remark)


@pytest.mark.parametrize("remark", buyers.STOP_REMARKS)
def test_every_stop_remark_of_the_simulator_matches(remark):
    assert asks_no_courier(remark)


@pytest.mark.parametrize("remark", buyers.HARMLESS_REMARKS)
def test_no_harmless_remark_of_the_simulator_matches(remark):
    assert not asks_no_courier(remark)


def test_normalising_drops_spaces_punctuation_and_symbols_and_makes_full_width_half_width():
    assert normalise(" 自提！ＯＫ，谢谢😊\n") == "自提ok谢谢"
