"""The warning lifecycle shared by every rule: WARNING -> VIOLATION or RESOLVED, each stage once.

A rule is declarative: from an order's facts and `now` (stream time minus the allowed lateness)
it lists the stages that have happened so far (`StageOut`) and the next instant at which a
timed stage may happen. `new_stages` keeps those not yet emitted, in occurred_at order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Iterable, Optional

from schemas.state import Emitted
from schemas.types import format_time

BEIJING = timezone(timedelta(hours=8))
SEVERITY = {"WARNING": "medium", "VIOLATION": "high", "RESOLVED": "low"}


def warning_id(order_id: str, rule: str, occurrence: str = "") -> str:
    """Stable id of one occurrence of a rule on an order: the same across restarts and replays."""
    digest = hashlib.blake2b(f"{order_id}\x1f{rule}\x1f{occurrence}".encode("utf-8"), digest_size=10)
    return "W" + digest.hexdigest()


def local_time(value: datetime) -> str:
    """An instant as a merchant reads it: Beijing time, minutes."""
    return value.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class StageOut:
    """One stage a rule says has happened (not yet checked against what was emitted)."""

    warning_id: str
    rule: str
    stage: str
    occurred_at: datetime
    message: str
    evidence: dict[str, Any]
    deadline: Optional[datetime] = None
    waybill_no: Optional[str] = None


@dataclass
class RuleResult:
    """What a rule says at `now`: stages that happened, and when to look again."""

    stages: list[StageOut] = field(default_factory=list)
    next_at: Optional[datetime] = None

    def wake_at(self, when: Optional[datetime]) -> None:
        """Ask to be evaluated again at `when` (keeps the earliest)."""
        if when is not None and (self.next_at is None or when < self.next_at):
            self.next_at = when


def emitted_stage(emitted: Iterable[Emitted], wid: str, stage: str) -> Optional[Emitted]:
    """The emitted record of (warning_id, stage), if any."""
    for item in emitted:
        if item.warning_id == wid and item.stage == stage:
            return item
    return None


def new_stages(stages: Iterable[StageOut], emitted: Iterable[Emitted]) -> list[StageOut]:
    """Stages not emitted before, each (warning_id, stage) once, in occurred_at order."""
    done = {(e.warning_id, e.stage) for e in emitted}
    fresh: dict[tuple[str, str], StageOut] = {}
    for stage in stages:
        key = (stage.warning_id, stage.stage)
        if key not in done and key not in fresh:
            fresh[key] = stage
    order = {"WARNING": 0, "VIOLATION": 1, "RESOLVED": 1}
    return sorted(fresh.values(), key=lambda s: (s.occurred_at, order[s.stage], s.rule, s.warning_id))


def to_wire(value: Any) -> Any:
    """Evidence as the contract writes it: instants in UTC with Z, money as decimal strings."""
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    return value


def earliest(*times: Optional[datetime]) -> Optional[datetime]:
    """The earliest of some optional instants."""
    present = [t for t in times if t is not None]
    return min(present) if present else None
