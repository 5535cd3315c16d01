"""Placeholder: filled in by issue 3 (see processors/ship_overdue.py for the shape of a rule)."""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from processors.config import RulesConfig
from processors.lifecycle import RuleResult
from schemas.state import OrderState


def evaluate(order: OrderState, now: Optional[datetime], rules: RulesConfig) -> RuleResult:
    """No stages yet."""
    return RuleResult()
