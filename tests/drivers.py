"""Drive one order through the pure order processor, as the waybill side would feed it."""

from __future__ import annotations

from dataclasses import replace

from processors import order as rules
from processors.order import Context
from processors.waybill import scan_fact
from schemas.internal import OtherUpload, ScansForOrder
from streams.rules_file import load_rules
from tests.factories import order_paid

CTX = Context(rules=load_rules(), salt="s")
# the worker in wall clock mode: rules 7 and 8 and the review decide when their event is read
WALL_CTX = replace(CTX, decide_on_read=True)


def stages(step_outputs):
    return [(o.rule, o.stage, o.occurred_at) for o in step_outputs if hasattr(o, "stage")]


class Order:
    """Drives one order through the pure processor and collects its warnings."""

    def __init__(self, platform="douyin", only=None, ctx=CTX, **paid):
        self.ctx = ctx
        self.state = None
        self.out = []
        self.only = only  # collect the stages of this rule only
        self.apply(order_paid(platform=platform, **paid), now=None)

    def apply(self, event, now):
        step = rules.apply(self.state, "O1", event, now, self.ctx)
        self.state, self.next = step.state, step.next_deadline
        self.out += [s for s in stages(step.outputs) if self.only in (None, s[0])]
        return self

    def join(self, upload_event, *scans, now=None, others=()):
        """The waybill side's answer to a registration, with the number's history (and other orders)."""
        self.apply(ScansForOrder(order_id="O1", waybill_no=upload_event.waybill_no, join_for=upload_event.event_id,
                                 scans=tuple(scan_fact(s) for s in scans), others=tuple(others)), now)
        return self

    def at(self, now):
        step = rules.on_time(self.state, now, self.ctx)
        self.state, self.next = step.state, step.next_deadline
        self.out += [s for s in stages(step.outputs) if self.only in (None, s[0])]
        return self

    def scans(self, number, *scans, now=None):
        """Live scans of an uploaded number, forwarded one batch at a time."""
        return self.apply(ScansForOrder(order_id="O1", waybill_no=number, scans=tuple(scan_fact(s) for s in scans)),
                          now)


__all__ = ["CTX", "WALL_CTX", "Order", "OtherUpload", "stages"]
