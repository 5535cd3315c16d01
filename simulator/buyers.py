"""Buyers: realistic Chinese recipients (name, phone, address) and the remarks they leave."""

from __future__ import annotations

import random

from simulator.geo import PROVINCE_WEIGHTS, PROVINCES, City, Province
from simulator.model import Recipient

_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任"
    "沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
_COMPOUND_SURNAMES = ("欧阳", "司马", "上官", "诸葛", "慕容")
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍鹏辉玲建国红梅鑫宇浩然子轩梓涵雨欣思远佳怡晨博文"
_UYGHUR_NAMES = ("阿依古丽", "买买提·艾力", "古丽娜尔", "艾尔肯", "热依拉", "努尔兰")
_TIBETAN_NAMES = ("扎西", "卓玛", "次仁", "央金", "多吉", "格桑")

# Mobile prefixes really in use (China Mobile, Unicom, Telecom); all start 13/15/17/18/19.
_PHONE_PREFIXES = (
    "130", "131", "132", "133", "134", "135", "136", "137", "138", "139",
    "150", "151", "152", "153", "155", "156", "157", "158", "159",
    "170", "173", "175", "176", "177", "178",
    "180", "181", "182", "183", "184", "185", "186", "187", "188", "189",
    "191", "193", "195", "196", "197", "198", "199",
)

_ROADS = ("人民路", "解放路", "中山路", "建设路", "文三路", "长江路", "黄河路", "幸福路", "和平街",
          "新华路", "胜利路", "友谊路", "光明街", "迎宾大道", "滨江路", "学院路")
_ESTATES = ("阳光花园", "金色家园", "锦绣华庭", "翠苑一区", "幸福里小区", "万科城", "碧桂园",
            "绿地新都会", "保利香槟国际", "恒大名都", "世纪新城", "东方丽景")
_VILLAGES = ("李家村", "张庄村", "新河村", "东岗村", "王家营村")

HARMLESS_REMARKS = (
    "请尽快发货", "不要放门口", "送货前请打电话", "放驿站就行", "周末不在家，请工作日派送",
    "礼物，请不要放价格单", "麻烦包装结实一点", "谢谢老板", "颜色要黑色的", "尺码要大一号",
    "尽量发顺丰", "放丰巢柜", "家里有狗，敲门即可", "麻烦多送两个赠品",
)
# Remarks that ask the merchant not to ship by courier (contract rule 10, EXPRESS_STOP_REMARK).
STOP_REMARKS = (
    "快递停发了，先别发，我自己来拿", "不要发快递，到店自取", "到店自取，谢谢", "我已约快递上门取件",
    "自提", "这边快递停发，麻烦暂缓发货", "自己来拿，别发货",
)


def person_name(rng: random.Random, province: Province) -> str:
    """A plausible full name for someone living in `province`."""
    if province.short == "新疆" and rng.random() < 0.4:
        return rng.choice(_UYGHUR_NAMES)
    if province.short == "西藏" and rng.random() < 0.5:
        return rng.choice(_TIBETAN_NAMES)
    surname = rng.choice(_COMPOUND_SURNAMES) if rng.random() < 0.02 else rng.choice(_SURNAMES)
    given = "".join(rng.choice(_GIVEN) for _ in range(1 if rng.random() < 0.35 else 2))
    return surname + given


def phone_number(rng: random.Random) -> str:
    """An 11-digit mainland mobile number."""
    return rng.choice(_PHONE_PREFIXES) + str(rng.randrange(10 ** 8)).zfill(8)


def street_address(rng: random.Random) -> str:
    """A street address below the district: estate, building, unit and flat, or a village."""
    if rng.random() < 0.12:
        return f"{rng.choice(_VILLAGES)}{rng.randint(1, 9)}组{rng.randint(1, 80)}号"
    return (f"{rng.choice(_ROADS)}{rng.randint(1, 999)}号{rng.choice(_ESTATES)}"
            f"{rng.randint(1, 30)}栋{rng.randint(1, 6)}单元{rng.randint(1, 32)}{rng.randint(1, 4):02d}室")


def pick_city(rng: random.Random, *, remoteness: str | None = None) -> City:
    """A recipient city, weighted by province; optionally only from remote or very remote ones."""
    if remoteness is None:
        province = rng.choices(PROVINCES, weights=PROVINCE_WEIGHTS)[0]
    else:
        province = rng.choice([p for p in PROVINCES if p.remoteness == remoteness])
    return rng.choice(province.cities)


def recipient_in(rng: random.Random, where: City) -> Recipient:
    """A new recipient in `where`, with the province and city written the way buyers write them."""
    province = where.province
    return Recipient(
        name=person_name(rng, province),
        phone=phone_number(rng),
        province=province.short if rng.random() < 0.15 else province.name,
        city=where.short if rng.random() < 0.3 else where.name,
        district=rng.choice(where.districts) if rng.random() < 0.92 else None,
        address=street_address(rng),
    )


def harmless_remark(rng: random.Random) -> str:
    """A buyer remark that asks for nothing the rules care about."""
    return rng.choice(HARMLESS_REMARKS)


def stop_remark(rng: random.Random) -> str:
    """A buyer remark that asks the merchant not to ship by courier."""
    return rng.choice(STOP_REMARKS)
