"""The shop side: facts the order side sends about a shop, and what the shop-alert processor keeps.

A `ShopFact` is one thing that moves a shop's rates (an order paid, an approved merchant-fault
cancellation, a SHIP_OVERDUE violation), placed in time by its event time `at`. `ShopState` holds
each counted fact once, by the instant that places it in a window (see processors.shop_alerts
for how long and why).
"""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from schemas.events import Platform
from schemas.outputs import ShopMetric
from schemas.state import StateModel
from schemas.types import FactId, Id, Instant

ShopFactKind = Literal["ORDER_PAID", "MERCHANT_FAULT_CANCEL", "SHIP_OVERDUE_VIOLATION"]


class ShopFact(StateModel):
    """Order side -> shop side: one fact about one order of a shop, at its event time.

    `at` is paid_at (ORDER_PAID), the approved request's requested_at (MERCHANT_FAULT_CANCEL) or
    the violation's occurred_at, i.e. the ship_by (SHIP_OVERDUE_VIOLATION). An ORDER_PAID carries
    the order's ship_by (explicit or paid_at + ship window): the late-dispatch denominator counts
    orders by it. `fact_id` is unique per fact; a repeated fact_id has no second effect.
    """

    kind: ShopFactKind
    fact_id: FactId
    shop_id: Id
    platform: Platform
    order_id: Id
    at: Instant
    ship_by: Instant | None = None

    @model_validator(mode="after")
    def _order_paid_needs_ship_by(self) -> ShopFact:
        if self.kind == "ORDER_PAID" and self.ship_by is None:
            raise ValueError("ship_by: an ORDER_PAID fact must carry the order's ship_by")
        return self


class Counted(StateModel):
    """One fact counted in a rate, at the instant that places it in a window."""

    fact_id: str
    at: Instant


class LastAlert(StateModel):
    """The latest alert of one metric: a WARNING is open until its RESOLVED."""

    metric: ShopMetric
    alert_id: str
    stage: Literal["WARNING", "RESOLVED"]
    window_end: Instant


class ShopState(StateModel):
    """What the shop side keeps of one shop; every tuple of `Counted` is sorted by `at`.

    evaluated_through: the horizon up to which every evaluation point has been evaluated (a fact
    at or before it is later than the lateness); purged_through: facts at or before it may have
    been deleted, so a window reaching back to it is incomplete and a fact there is dropped.
    """

    shop_id: str
    platform: Platform
    partition: int = -1                   # the changelog partition the shell writes this key to
    paid: tuple[Counted, ...] = ()        # orders paid, by paid_at
    due: tuple[Counted, ...] = ()         # the same orders by ship_by (LATE_DISPATCH denominator)
    cancelled: tuple[Counted, ...] = ()   # approved merchant-fault cancellations, by requested_at
    overdue: tuple[Counted, ...] = ()     # SHIP_OVERDUE violations, by occurred_at (= ship_by)
    alerts: tuple[LastAlert, ...] = ()    # at most one per metric
    evaluated_through: Instant | None = None
    purged_through: Instant | None = None

    def last_alert(self, metric: str) -> LastAlert | None:
        """The latest alert of `metric`, if any."""
        return next((a for a in self.alerts if a.metric == metric), None)

    @property
    def size(self) -> int:
        """How many counted entries the shop holds (what grows with its traffic)."""
        return len(self.paid) + len(self.due) + len(self.cancelled) + len(self.overdue)


__all__ = ["ShopFactKind", "ShopFact", "Counted", "LastAlert", "ShopState"]
