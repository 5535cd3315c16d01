"""Shop alerts: seller-fault cancel rate (> 2.5 %) and late-dispatch rate (> 4 %) over (t - 7 days, t]."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction

import pytest

from processors import shop_alerts
from processors.config import RulesError
from schemas.shop import ShopFact
from streams.rules_file import DEFAULT_RULES_PATH, load_rules
from tests.factories import SECOND, days, hours

RULES = load_rules()
LATENESS = RULES.allowed_lateness
CST = timezone(timedelta(hours=8))
MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=CST)  # the first orders of the week
T = MONDAY + days(3)                            # the instant most tests evaluate at
SFCR, LDR = "SELLER_FAULT_CANCEL_RATE", "LATE_DISPATCH_RATE"


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def paid(n: int, at: datetime, ship_by: datetime | None = None, shop: str = "shopA") -> ShopFact:
    return ShopFact(kind="ORDER_PAID", fact_id=f"paid-{n}", shop_id=shop, platform="douyin",
                    order_id=f"O{n}", at=at, ship_by=ship_by or at + hours(48))


def cancelled(n: int, at: datetime) -> ShopFact:
    return ShopFact(kind="MERCHANT_FAULT_CANCEL", fact_id=f"cancel-{n}", shop_id="shopA",
                    platform="douyin", order_id=f"O{n}", at=at)


def overdue(n: int, at: datetime) -> ShopFact:
    return ShopFact(kind="SHIP_OVERDUE_VIOLATION", fact_id=f"overdue-{n}", shop_id="shopA",
                    platform="douyin", order_id=f"O{n}", at=at)


def orders(count: int, at: datetime, first: int = 1, ship_by: datetime | None = None) -> list[ShopFact]:
    """`count` orders paid at `at`, numbered from `first`."""
    return [paid(n, at, ship_by) for n in range(first, first + count)]


class Shop:
    """Reads facts one at a time as the shell does: stream time = the latest event time read,
    the processor's `now` = stream time - lateness; `tick` moves stream time with no fact."""

    def __init__(self) -> None:
        self.state = None
        self.alerts = []
        self.stream: datetime | None = None
        self.next: datetime | None = None

    @property
    def horizon(self) -> datetime | None:
        return self.stream - LATENESS if self.stream else None

    def _take(self, step: shop_alerts.ShopStep) -> Shop:
        self.state, self.next = step.state, step.next_deadline
        self.alerts.extend(step.outputs)
        return self

    def read(self, *facts: ShopFact) -> Shop:
        for fact in facts:
            self.stream = max(self.stream, fact.at) if self.stream else fact.at
            self._take(shop_alerts.apply(self.state, fact, self.horizon, RULES))
        return self

    def tick(self, stream: datetime) -> Shop:
        self.stream = max(self.stream, stream) if self.stream else stream
        if self.state is not None:
            self._take(shop_alerts.on_time(self.state, self.horizon, RULES))
        return self

    def settle(self) -> Shop:
        """Let stream time pass the lateness of everything read: every evaluation point is due."""
        return self.tick(self.stream + LATENESS)

    @property
    def out(self) -> list[tuple[str, str, datetime]]:
        return [(a.metric, a.stage, a.window_end) for a in self.alerts]


# --- the seller-fault cancel rate -----------------------------------------------------------------

def test_one_cancellation_in_thirty_nine_orders_is_above_two_and_a_half_percent_and_warns():
    shop = Shop().read(*orders(39, MONDAY), cancelled(1, T)).settle()
    (alert,) = shop.alerts
    assert (alert.metric, alert.stage, alert.window_end) == (SFCR, "WARNING", T)
    assert alert.window_start == T - days(7) and alert.orders_in_window == 39
    assert (alert.value, alert.threshold) == (Decimal("0.0257"), Decimal("0.025"))
    assert json.loads(alert.model_dump_json())["value"] == "0.0257"
    assert json.loads(alert.model_dump_json())["threshold"] == "0.025"


def test_one_cancellation_in_forty_orders_is_exactly_two_and_a_half_percent_and_not_above():
    assert Shop().read(*orders(40, MONDAY), cancelled(1, T)).settle().out == []


def test_exactly_at_the_threshold_is_decided_in_exact_arithmetic_at_any_size():
    shop = Shop().read(*orders(1000, MONDAY), *(cancelled(n, T) for n in range(1, 26))).settle()
    assert shop.out == [], "25 / 1000 is exactly 2.5 %"
    shop.read(cancelled(26, T + SECOND)).settle()
    assert shop.out == [(SFCR, "WARNING", T + SECOND)]


def test_fewer_than_twenty_orders_in_the_window_give_no_alert_whatever_the_rate():
    shop = Shop().read(*orders(19, MONDAY), *(cancelled(n, T) for n in range(1, 20))).settle()
    assert shop.out == []


def test_the_twentieth_order_makes_the_rate_count():
    shop = Shop().read(*orders(19, MONDAY), cancelled(1, T), paid(20, T + hours(1))).settle()
    assert shop.out == [(SFCR, "WARNING", T + hours(1))]
    assert shop.alerts[0].orders_in_window == 20 and shop.alerts[0].value == Decimal("0.05")


def test_a_cancelled_order_still_counts_as_an_order_paid():
    shop = Shop().read(*orders(40, MONDAY), cancelled(1, T)).settle()
    assert shop.out == [], "1 / 40: the cancelled order O1 stays in the denominator"
    shop = Shop().read(*orders(39, MONDAY), cancelled(1, T)).settle()
    assert shop.alerts[0].orders_in_window == 39


def test_no_second_warning_while_the_rate_stays_above():
    shop = Shop().read(*orders(30, MONDAY), cancelled(1, T), cancelled(2, T + hours(1)),
                       paid(31, T + hours(2)), cancelled(3, T + hours(3))).settle()
    assert shop.out == [(SFCR, "WARNING", T)]


def test_flapping_around_the_threshold_warns_resolves_and_warns_again_with_a_new_alert_id():
    shop = Shop().read(*orders(39, MONDAY), cancelled(1, T), paid(40, T + hours(1)),
                       cancelled(2, T + hours(2)), *orders(40, T + hours(3), first=41)).settle()
    assert shop.out == [(SFCR, "WARNING", T), (SFCR, "RESOLVED", T + hours(1)),
                        (SFCR, "WARNING", T + hours(2)), (SFCR, "RESOLVED", T + hours(3))]
    first, resolved, second, resolved_again = shop.alerts
    assert resolved.alert_id == first.alert_id and resolved_again.alert_id == second.alert_id
    assert first.alert_id != second.alert_id
    assert resolved.value == Decimal("0.025") and resolved.orders_in_window == 40


def test_a_warning_value_is_rounded_up_so_that_it_never_reads_as_the_threshold():
    # 13 / 519 = 0.025048...: above 2.5 %, and would round half-up to "0.0250"
    shop = Shop().read(*orders(519, MONDAY), *(cancelled(n, T) for n in range(1, 13))).settle()
    assert shop.out == []
    shop.read(cancelled(13, T + SECOND)).settle()
    assert shop.alerts[0].value == Decimal("0.0251")
    assert shop_alerts.rate_value(Fraction(13, 519), "RESOLVED") == Decimal("0.0250")
    assert str(shop_alerts.rate_value(Fraction(0), "RESOLVED")) == "0.0000"


# --- window edges ---------------------------------------------------------------------------------

@pytest.mark.parametrize("age, counts", [
    (days(7) - SECOND, True),    # inside (t - 7 days, t]
    (days(7), False),            # exactly t - 7 days: the window is open on the left
    (days(7) + SECOND, False),
])
def test_an_order_counts_only_while_it_is_less_than_seven_days_old(age, counts):
    shop = Shop().read(paid(1, T - age), *orders(19, T - hours(1), first=2), cancelled(2, T)).settle()
    assert shop.out == ([(SFCR, "WARNING", T)] if counts else [])


def test_an_order_paid_at_t_itself_counts_at_t():
    shop = Shop().read(*orders(19, MONDAY), paid(20, T), cancelled(1, T)).settle()
    assert shop.out == [(SFCR, "WARNING", T)] and shop.alerts[0].orders_in_window == 20


def test_a_cancellation_exactly_seven_days_old_is_out_of_the_window():
    shop = Shop().read(*orders(15, T - days(8)), cancelled(1, T - days(7)),
                       *orders(39, T, first=40), cancelled(40, T)).settle()
    assert shop.out == [(SFCR, "WARNING", T)]
    assert shop.alerts[0].value == Decimal("0.0257"), "1 / 39, not 2 / 39"


def test_orders_only_ageing_out_of_the_window_emit_nothing():
    shop = Shop().read(*orders(39, MONDAY), cancelled(1, T)).settle()
    assert shop.out == [(SFCR, "WARNING", T)]
    shop.tick(T + days(6)).tick(T + days(30))
    assert shop.out == [(SFCR, "WARNING", T)] and shop.state is None


# --- the late-dispatch rate -----------------------------------------------------------------------

def test_late_dispatch_counts_orders_whose_ship_by_fell_in_the_window_not_orders_paid_in_it():
    ship_by = MONDAY + hours(48)
    shop = Shop().read(*orders(24, MONDAY), *orders(30, ship_by - hours(1), first=25),
                       overdue(1, ship_by)).settle()
    (alert,) = shop.alerts
    assert (alert.metric, alert.stage, alert.window_end) == (LDR, "WARNING", ship_by)
    assert alert.orders_in_window == 24, "the 30 later orders are not due yet"
    assert (alert.value, alert.threshold) == (Decimal("0.0417"), Decimal("0.04"))


def test_one_violation_in_twenty_five_orders_due_is_exactly_four_percent_and_not_above():
    ship_by = MONDAY + hours(48)
    assert Shop().read(*orders(25, MONDAY), overdue(1, ship_by)).settle().out == []


def test_the_late_dispatch_rate_is_evaluated_at_an_order_paid_and_resolves_as_more_orders_fall_due():
    ship_by = MONDAY + hours(48)
    shop = Shop().read(*orders(24, MONDAY), *orders(10, MONDAY + hours(1), first=25),
                       overdue(1, ship_by), paid(35, ship_by + hours(2))).settle()
    assert shop.out == [(LDR, "WARNING", ship_by), (LDR, "RESOLVED", ship_by + hours(2))]
    assert shop.alerts[1].orders_in_window == 34 and shop.alerts[1].value == Decimal("0.0294")


def test_a_presale_ship_by_counts_when_it_falls_in_the_window_even_if_paid_long_before():
    due = MONDAY + days(40)
    shop = Shop().read(*orders(24, MONDAY, ship_by=due))
    shop.tick(due - hours(1))
    assert shop.state is not None, "orders still due are kept"
    shop.read(overdue(1, due)).settle()
    assert shop.out == [(LDR, "WARNING", due)] and shop.alerts[0].orders_in_window == 24


def test_both_rates_can_warn_at_the_same_instant():
    ship_by = MONDAY + hours(48)
    shop = Shop().read(*orders(24, MONDAY), overdue(1, ship_by), cancelled(2, ship_by)).settle()
    assert shop.out == [(SFCR, "WARNING", ship_by), (LDR, "WARNING", ship_by)]


# --- duplicates, out of order, late ---------------------------------------------------------------

def test_a_repeated_fact_id_has_no_second_effect():
    shop = Shop().read(*orders(39, MONDAY), cancelled(1, T))
    before = shop.state
    shop.read(cancelled(1, T), paid(5, MONDAY))
    assert shop.state == before
    shop.settle()
    assert shop.out == [(SFCR, "WARNING", T)] and shop.alerts[0].value == Decimal("0.0257")


def test_a_repeated_order_paid_does_not_make_a_twentieth_order():
    shop = Shop().read(*orders(19, MONDAY), paid(19, MONDAY), cancelled(1, T)).settle()
    assert shop.out == []


def test_facts_out_of_order_within_the_lateness_give_the_same_alerts_as_in_order():
    in_order = [*orders(38, MONDAY), paid(39, T - minutes(5)), cancelled(1, T),
                paid(40, T + minutes(3)), cancelled(2, T + minutes(5))]
    shuffled = [*orders(38, MONDAY), cancelled(1, T), paid(39, T - minutes(5)),
                cancelled(2, T + minutes(5)), paid(40, T + minutes(3))]
    a, b = Shop().read(*in_order).settle(), Shop().read(*shuffled).settle()
    assert a.out == b.out == [(SFCR, "WARNING", T), (SFCR, "RESOLVED", T + minutes(3)),
                              (SFCR, "WARNING", T + minutes(5))]
    assert [x.alert_id for x in a.alerts] == [x.alert_id for x in b.alerts]


def test_a_violation_that_arrives_a_lateness_after_its_ship_by_does_not_make_the_other_rate_flap():
    ship_by = MONDAY + hours(48)
    shop = Shop().read(*orders(39, MONDAY), cancelled(1, ship_by + minutes(5)))
    shop.read(overdue(1, ship_by)).settle()  # the order side emits it once its horizon passed ship_by
    assert shop.out == [(SFCR, "WARNING", ship_by + minutes(5))]


def test_nothing_is_evaluated_before_the_horizon_reaches_the_fact():
    shop = Shop().read(*orders(39, MONDAY), cancelled(1, T))
    assert shop.out == [] and shop.next == T
    shop.tick(T + LATENESS - SECOND)
    assert shop.out == []
    shop.tick(T + LATENESS)
    assert shop.out == [(SFCR, "WARNING", T)]


def test_a_fact_later_than_the_lateness_is_evaluated_at_once_at_its_own_instant():
    shop = Shop().read(*orders(39, MONDAY), paid(40, T + hours(5))).settle()
    shop.read(cancelled(1, T))  # stream time is T + 5 h: this is 5 hours late
    assert shop.out == [(SFCR, "WARNING", T)]
    assert shop.alerts[0].orders_in_window == 39, "the order at T + 5 h is not in (T - 7 d, T]"


def test_a_late_fact_does_not_move_a_stage_that_speaks_for_a_later_instant():
    shop = Shop().read(*orders(39, MONDAY), cancelled(1, T)).settle().tick(T + hours(5))
    shop.read(paid(40, T - hours(1)))  # late: at T - 1 h the rate is 0 / 40, but the WARNING is at T
    assert shop.out == [(SFCR, "WARNING", T)]
    shop.read(paid(41, T + hours(6))).settle()
    assert shop.out[-1] == (SFCR, "RESOLVED", T + hours(6)), "the next instant counts the late order"


def test_a_fact_older_than_the_retention_is_dropped_and_a_duplicate_of_a_deleted_fact_is_not_recounted():
    presale = paid(39, MONDAY, ship_by=MONDAY + days(30))
    shop = Shop().read(*orders(38, MONDAY), presale, cancelled(1, T)).settle()
    shop.tick(T + days(7) + LATENESS)
    assert shop.state is not None and shop.state.cancelled == (), "the presale ship_by keeps the shop"
    shop.read(cancelled(1, T), cancelled(2, T - hours(1)))
    assert shop.out == [(SFCR, "WARNING", T)]
    assert shop.state.cancelled == ()


def test_a_late_fact_whose_window_lost_data_is_counted_but_not_evaluated():
    shop = Shop().read(*orders(39, MONDAY), paid(40, MONDAY + days(7) + hours(1)))
    shop.tick(MONDAY + days(7) + hours(2))  # MONDAY's orders are deleted: window + lateness passed
    shop.read(cancelled(1, MONDAY + days(7)))
    assert shop.out == [] and len(shop.state.cancelled) == 1


# --- state lifetime -------------------------------------------------------------------------------

def test_next_deadline_is_the_next_evaluation_point_then_the_next_deletion():
    shop = Shop().read(*orders(20, MONDAY))
    assert shop.next == MONDAY
    shop.settle()
    assert shop.next == MONDAY + days(7), "the orders paid at MONDAY leave the window"
    shop.tick(MONDAY + days(7) + LATENESS)
    assert shop.next == MONDAY + hours(48) + days(7), "their ship_by stays for the late-dispatch rate"


def test_the_state_is_deleted_once_stream_time_passed_the_last_instant_plus_seven_days_and_the_lateness():
    ship_by = MONDAY + hours(48)
    shop = Shop().read(*orders(39, MONDAY), cancelled(1, T), overdue(1, ship_by))
    last = max(T, ship_by)
    shop.tick(last + days(7) + LATENESS - SECOND)
    assert shop.state is not None
    shop.tick(last + days(7) + LATENESS)
    assert shop.state is None and shop.next is None


def test_the_state_stays_flat_over_two_hundred_days_and_is_deleted_after_the_last_fact():
    sizes = []
    shop = Shop()
    for day in range(200):
        noon = MONDAY + days(day) + hours(3)
        shop_day = [paid(day * 100 + n, noon + minutes(10 * n)) for n in range(30)]
        shop_day += [cancelled(day * 100, noon + hours(6)), overdue(day * 100 + 1, noon + hours(7))]
        shop.read(*shop_day)
        sizes.append(shop.state.size)
    assert len(set(sizes[10:])) == 1, f"state grows: {sizes[10:20]} ... {sizes[-5:]}"
    # by paid_at: the last 7 days + lateness; by ship_by: the same span and the 48 h still ahead
    assert sizes[-1] <= 30 * (8 + 10) + 2 * 8
    last_ship_by = MONDAY + days(199) + hours(3) + minutes(290) + hours(48)
    shop.tick(last_ship_by + days(7) + LATENESS)
    assert shop.state is None


def test_alert_ids_are_stable_and_use_the_instant_not_its_offset():
    a = Shop().read(*orders(39, MONDAY), cancelled(1, T)).settle().alerts[0]
    b = Shop().read(*orders(39, MONDAY), cancelled(1, T.astimezone(UTC))).settle().alerts[0]
    assert a.alert_id == b.alert_id == shop_alerts.alert_id("shopA", SFCR, T)
    assert a.alert_id != shop_alerts.alert_id("shopB", SFCR, T) != shop_alerts.alert_id("shopA", LDR, T)


def test_an_order_paid_fact_must_carry_its_ship_by():
    with pytest.raises(ValueError, match="ship_by"):
        ShopFact(kind="ORDER_PAID", fact_id="f", shop_id="s", platform="douyin", order_id="O", at=T)


# --- thresholds in the rules file -----------------------------------------------------------------

def test_the_packaged_rules_hold_the_shop_alert_defaults():
    p = RULES.platform("tiktok")
    assert (p.seller_fault_cancel_rate_threshold, p.late_dispatch_rate_threshold) == (Decimal("0.025"), Decimal("0.04"))
    assert (p.shop_window, p.shop_min_orders) == (days(7), 20)


@pytest.mark.parametrize("line, bad", [
    ("seller_fault_cancel_rate_threshold = 1.5", "seller_fault_cancel_rate_threshold"),
    ("late_dispatch_rate_threshold = 0", "late_dispatch_rate_threshold"),
    ("late_dispatch_rate_threshold = 0.04125", "late_dispatch_rate_threshold"),
    ("shop_window_days = 0", "shop_window_days"),
    ("shop_min_orders = 0", "shop_min_orders"),
])
def test_a_bad_shop_alert_threshold_is_refused_with_the_key_named(tmp_path, line, bad):
    path = tmp_path / "rules.toml"
    text = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
    path.write_text(text.replace("[platforms.taobao]\n", f"[platforms.taobao]\n{line}\n"), encoding="utf-8")
    with pytest.raises(RulesError, match=rf"platforms\.taobao\.{bad}"):
        load_rules(path)
