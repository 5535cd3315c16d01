"""Rule thresholds: one TOML document validated by pydantic, per-platform defaults, no constants in code.

`parse_rules_toml(text)` validates a rules document; a bad one raises RulesError naming the
offending key. Reading the file is the shell's (`streams.rules_file.load_rules`): the packaged
`rules.toml` (DEFAULT_RULES_PATH) or the file named by SHIPGUARD_RULES.
"""

from __future__ import annotations

import tomllib
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.events import Platform

DEFAULT_RULES_PATH = Path(__file__).with_name("rules.toml")  # package data; read by the shell, not here
PLATFORMS = ("douyin", "taobao", "tiktok")


class RulesError(ValueError):
    """The rules file is missing, not TOML, or has a bad key; the message names it."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PlatformRules(_Strict):
    """Thresholds of one platform (all durations positive)."""

    ship_window_hours: float = Field(gt=0)
    ship_warning_lead_hours: float = Field(ge=0)
    dispatch_evidence: Literal["valid_upload", "first_scan"]
    invalid_waybill_rectify_hours: float = Field(gt=0)
    reuse_window_days: float = Field(gt=0)
    reused_waybill_rectify_hours: float = Field(gt=0)
    pickup_hours: float = Field(gt=0)
    no_pickup_rectify_hours: float = Field(gt=0)
    stalled_after_pickup_hours: float = Field(gt=0)
    stall_hours: float = Field(gt=0)
    stall_hours_remote: float = Field(gt=0)
    stall_hours_very_remote: float = Field(gt=0)
    out_for_delivery_stall_hours: float = Field(gt=0)
    stall_rectify_hours: float = Field(gt=0)
    not_delivered_days: float = Field(gt=0)
    not_delivered_rectify_days: float = Field(gt=0)
    # shop alerts: rates are exact decimals (alerts write them as strings of at most 4 places)
    seller_fault_cancel_rate_threshold: Decimal = Field(gt=0, lt=1, decimal_places=4)
    late_dispatch_rate_threshold: Decimal = Field(gt=0, lt=1, decimal_places=4)
    shop_window_days: float = Field(gt=0)
    shop_min_orders: int = Field(ge=1)

    @property
    def ship_window(self) -> timedelta:
        return timedelta(hours=self.ship_window_hours)

    @property
    def ship_warning_lead(self) -> timedelta:
        return timedelta(hours=self.ship_warning_lead_hours)

    @property
    def shop_window(self) -> timedelta:
        return timedelta(days=self.shop_window_days)


class RulesConfig(_Strict):
    """All thresholds: global ones plus one PlatformRules per platform."""

    allowed_lateness_minutes: float = Field(ge=0)
    scan_retention_days: float = Field(gt=0)
    order_retention_days: float = Field(gt=0)
    remote_provinces: tuple[str, ...]
    very_remote_provinces: tuple[str, ...]
    platforms: dict[Platform, PlatformRules]

    @model_validator(mode="after")
    def _every_platform(self) -> RulesConfig:
        missing = [p for p in PLATFORMS if p not in self.platforms]
        if missing:
            raise ValueError(f"platforms: missing {', '.join(missing)}")
        return self

    @property
    def allowed_lateness(self) -> timedelta:
        return timedelta(minutes=self.allowed_lateness_minutes)

    @property
    def scan_retention(self) -> timedelta:
        return timedelta(days=self.scan_retention_days)

    @property
    def order_retention(self) -> timedelta:
        return timedelta(days=self.order_retention_days)

    def platform(self, name: Platform) -> PlatformRules:
        """Thresholds for one platform."""
        return self.platforms[name]


def parse_rules(data: dict) -> RulesConfig:
    """Validate a parsed rules document, merging `[platforms.default]` into each platform."""
    data = dict(data)
    platforms = dict(data.get("platforms") or {})
    default = platforms.pop("default", {})
    unknown = [p for p in platforms if p not in PLATFORMS]
    if unknown:
        raise RulesError(f"platforms.{unknown[0]}: unknown platform (expected {', '.join(PLATFORMS)})")
    data["platforms"] = {p: {**default, **(platforms.get(p) or {})} for p in PLATFORMS}
    try:
        return RulesConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        key = ".".join(str(p) for p in first["loc"])
        raise RulesError(f"{key}: {first['msg']}") from None


def parse_rules_toml(text: str) -> RulesConfig:
    """Validate a rules document written in TOML (the packaged rules.toml is one)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"not valid TOML: {exc}") from None
    return parse_rules(data)
