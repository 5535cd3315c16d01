"""The warning lifecycle shared by every rule: WARNING -> VIOLATION or RESOLVED, each stage once.

A rule is declarative: from an order's facts and `now` (stream time minus the allowed lateness)
it lists the stages that have happened so far (`StageOut`) and the next instant at which a
timed stage may happen. `new_stages` keeps those not yet emitted, in occurred_at order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from functools import lru_cache
from typing import Any

from schemas.state import Emitted
from schemas.types import format_time

BEIJING = timezone(timedelta(hours=8))
SEVERITY = {"WARNING": "medium", "VIOLATION": "high", "RESOLVED": "low"}


def warning_id(order_id: str, rule: str, occurrence: str = "") -> str:
    """Stable id of one occurrence of a rule on an order: the same across restarts and replays."""
    digest = hashlib.blake2b(f"{order_id}\x1f{rule}\x1f{occurrence}".encode(), digest_size=10)
    return "W" + digest.hexdigest()


@lru_cache(maxsize=8192)
def local_time(value: datetime) -> str:
    """An instant as a merchant reads it: Beijing time, minutes (cached: rules format the same
    instants on every evaluation)."""
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
    deadline: datetime | None = None
    waybill_no: str | None = None


@dataclass
class RuleResult:
    """What a rule says at `now`: stages that happened, and when to look again."""

    stages: list[StageOut] = field(default_factory=list)
    next_at: datetime | None = None

    def wake_at(self, when: datetime | None) -> None:
        """Ask to be evaluated again at `when` (keeps the earliest)."""
        if when is not None and (self.next_at is None or when < self.next_at):
            self.next_at = when


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of a rule on an order, as a rule sees it from the facts.

    warn_at: when the WARNING happens (a timer, or the event that causes it when
    `warning_on_event`); deadline: when it becomes a VIOLATION (None: never, rule 10);
    rectified_at: event time of the first rectifying event (RESOLVED if strictly before the
    deadline); ends_at: when the rule stops because its number was replaced (改单号): an open
    WARNING then ends RESOLVED with `evidence.resolution = "WAYBILL_REPLACED"`;
    outcome_keys: the evidence keys that describe how the occurrence ended (the rectifying event,
    the replacement); they are filled only on RESOLVED and null on WARNING and VIOLATION, so that
    a stage's evidence holds only what was true at its time, whatever the worker had read by
    then (the event-mode guarantee covers whole records, evidence included).
    violation_only: rules 7 and 8, a VIOLATION at `warn_at` and nothing else (when its event
    is read if `warning_on_event`, i.e. in wall mode; else once `now` has reached `warn_at`).
    """

    rule: str
    key: str
    warn_at: datetime
    deadline: datetime | None
    messages: dict[str, str]
    evidence: dict[str, Any]
    rectified_at: datetime | None = None
    ends_at: datetime | None = None
    warning_on_event: bool = False
    violation_only: bool = False
    outcome_keys: tuple[str, ...] = ()
    waybill_no: str | None = None


def occurrence_stages(order_id: str, occurrence: Occurrence, now: datetime | None,
                      done: frozenset[tuple[str, str]]) -> RuleResult:
    """The stages of one occurrence that have happened by `now`, and when to look again.

    Timed stages need `now` to have reached them; stages an event brings about happen when the
    event is known. An emitted stage is never undone: once VIOLATION or RESOLVED is out, the
    occurrence is over; a rectifying event that arrives after its WARNING was emitted resolves
    it at max(event time, WARNING time) so that no stage predates its WARNING. `done` holds the
    (warning_id, stage) pairs already emitted (`emitted_keys`).
    """
    o, result = occurrence, RuleResult()
    wid = warning_id(order_id, o.rule, o.key)

    def stage(name: str, at: datetime, **extra: Any) -> None:
        evidence = {**o.evidence, **extra}
        if name != "RESOLVED":
            evidence.update(dict.fromkeys(o.outcome_keys))
        result.stages.append(StageOut(wid, o.rule, name, at, message=o.messages[name], evidence=evidence,
                                      deadline=o.deadline if name == "WARNING" else None,
                                      waybill_no=o.waybill_no))

    if o.violation_only:
        if (wid, "VIOLATION") not in done:
            if o.warning_on_event or (now is not None and now >= o.warn_at):
                stage("VIOLATION", o.warn_at)
            else:
                result.wake_at(o.warn_at)
        return result
    if (wid, "VIOLATION") in done or (wid, "RESOLVED") in done:
        return result
    warned = (wid, "WARNING") in done
    if not warned:
        if o.ends_at is not None and o.warn_at >= o.ends_at:
            return result  # the number was replaced before the rule could warn
        if o.rectified_at is not None and o.rectified_at < o.warn_at:
            return result  # rectified strictly before the WARNING's time: prevented
        if o.warning_on_event or (now is not None and now >= o.warn_at):
            stage("WARNING", o.warn_at)
        else:
            result.wake_at(o.warn_at)
            return result
    if o.rectified_at is not None and (o.deadline is None or o.rectified_at < o.deadline) \
            and (o.ends_at is None or o.rectified_at <= o.ends_at):
        stage("RESOLVED", max(o.rectified_at, o.warn_at))
    elif o.ends_at is not None and (o.deadline is None or o.ends_at < o.deadline):
        stage("RESOLVED", max(o.ends_at, o.warn_at), resolution="WAYBILL_REPLACED")
    elif o.deadline is not None:
        if now is not None and now >= o.deadline:
            stage("VIOLATION", o.deadline)
        else:
            result.wake_at(o.deadline)
    return result


def collect(order_id: str, occurrences: Iterable[Occurrence], now: datetime | None,
            emitted: Iterable[Emitted]) -> RuleResult:
    """Stages and next wake-up of several occurrences together."""
    done = emitted_keys(emitted)
    result = RuleResult()
    for occurrence in occurrences:
        part = occurrence_stages(order_id, occurrence, now, done)
        result.stages.extend(part.stages)
        result.wake_at(part.next_at)
    return result


def emitted_keys(emitted: Iterable[Emitted]) -> frozenset[tuple[str, str]]:
    """The (warning_id, stage) pairs already emitted, for membership tests."""
    return frozenset((e.warning_id, e.stage) for e in emitted)


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


def earliest(*times: datetime | None) -> datetime | None:
    """The earliest of some optional instants."""
    present = [t for t in times if t is not None]
    return min(present) if present else None
