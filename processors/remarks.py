"""Buyer remarks that ask not to ship by courier (rule 10: 快递停发, 不要发快递, 自提, 到店自取 ...).

A remark is normalised first (full-width to half-width, lower case, spaces and punctuation
dropped), then matched against a short list of phrasings. Some phrasings look alike but mean
the opposite and are cut out before matching (`COURIER_STILL`): a 自提柜 / 自提点 or "驿站自提" is
where a courier delivers *to*, and "怎么还不发快递" urges the merchant to ship.
The lists are tested phrase by phrase in tests/unit/test_remarks.py; grow them there first.
"""

from __future__ import annotations

import re
import unicodedata

# Phrasings that ask the merchant not to send the parcel by courier.
ASKS_NO_COURIER = tuple(re.compile(p) for p in (
    r"快递(已经?|都|全|暂)?停(发|运)",                       # 快递停发, 快递都停发了, 快递暂停发货
    r"停发快递",
    r"(不要|别|不|勿|不用|不需要|无需)再?(发|寄)快递(?![到去至给往])",  # not 不要发快递到公司 (ship elsewhere)
    r"自提",                                                  # 自提, 我自提, 门店自提
    r"(到店|门店|上门|来店)自取",
    r"自己(过)?来(拿|取)",                                     # 自己来拿: comes to the shop
    r"已(经)?(预)?约(了|好)?快递",                             # 已约快递: the buyer booked a courier
))
# Look-alikes cut out before matching: the courier still delivers, to a locker or station.
COURIER_STILL = tuple(re.compile(p) for p in (
    r"自提(柜|点|站)",
    r"(驿站|丰巢|快递柜|菜鸟|代收点).{0,2}自(提|取)",            # 放驿站我自提
    r"(怎么|为什么|为啥|咋)还?不(发|寄)快递",                    # a complaint that it has not shipped
))


def normalise(remark: str) -> str:
    """The remark as matched: half-width, lower case, without spaces, punctuation or symbols."""
    text = unicodedata.normalize("NFKC", remark).lower()
    return "".join(ch for ch in text if unicodedata.category(ch)[0] not in "PZSC")


def asks_no_courier(remark: str | None) -> bool:
    """True when the buyer's remark asks not to ship by courier."""
    if not remark:
        return False
    text = normalise(remark)
    for pattern in COURIER_STILL:
        text = pattern.sub("|", text)  # a separator, so that no phrase spans the cut
    return any(pattern.search(text) for pattern in ASKS_NO_COURIER)
