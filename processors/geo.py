"""Province and city normalisation (杭州 = 杭州市, 新疆维吾尔自治区 = 新疆) and destination remoteness."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

Remoteness = Literal["normal", "remote", "very_remote"]

_CITY_SUFFIXES = ("自治州", "地区", "市", "盟")
_PROVINCE_SUFFIXES = ("特别行政区", "自治区", "省", "市")
_PROVINCE_ETHNIC = ("壮族", "回族", "维吾尔")


def _strip_suffix(name: str, suffixes: tuple[str, ...]) -> str:
    for suffix in suffixes:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


@lru_cache(maxsize=8192)
def normalise_city(city: str | None) -> str:
    """Drop spaces and a trailing 市, 地区, 盟 or 自治州."""
    return _strip_suffix("".join((city or "").split()), _CITY_SUFFIXES)


@lru_cache(maxsize=4096)
def normalise_province(province: str | None) -> str:
    """Drop spaces, a trailing 省, 市, 自治区 or 特别行政区, and the names 壮族, 回族, 维吾尔."""
    name = _strip_suffix("".join((province or "").split()), _PROVINCE_SUFFIXES)
    for ethnic in _PROVINCE_ETHNIC:
        name = name.replace(ethnic, "")
    return name


@lru_cache(maxsize=1024)
def remoteness(province: str | None, remote: tuple[str, ...], very_remote: tuple[str, ...]) -> Remoteness:
    """Classify a destination province against the configured (normalised) lists (cached: the
    lists are the configuration's tuples)."""
    name = normalise_province(province)
    if name in {normalise_province(p) for p in very_remote}:
        return "very_remote"
    if name in {normalise_province(p) for p in remote}:
        return "remote"
    return "normal"
