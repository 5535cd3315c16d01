"""The shop-alert labeller (simulator/shop_labels.py): hand-checked windows, thresholds and open questions.

Every expected alert below was worked out by hand from the contract's "Shop alerts" section, not
from any implementation: the labeller is the second reading that checks the worker's.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from fractions import Fraction

import pytest

from schemas.codec import loads
from simulator import output
from simulator.check import CheckReport, _alerts
from simulator.cli import add_arguments, config_from
from simulator.generator import PROBLEM_SHOP_VARIANTS, SimulationConfig, generate
from simulator.labels import Ambiguous, World, evaluate, utc, world_from_messages
from simulator.model import Cancellation, Order, Recipient, Upload
from simulator.shop_labels import (
    DEFAULT_SHOP_THRESHOLDS,
    LATE_DISPATCH_RATE,
    SELLER_FAULT_CANCEL_RATE,
    ShopFacts,
    ShopThresholds,
    as_json,
    evaluate_metric,
    evaluate_shop,
    label_shops,
    label_world,
    shop_facts,
)

MIN, H, D = 60, 3600, 86400
T0 = int(datetime(2026, 3, 2, 10, 0, tzinfo=timezone(timedelta(hours=8))).timestamp())
CANCEL, LATE = SELLER_FAULT_CANCEL_RATE, LATE_DISPATCH_RATE


def shop(paid=(), cancelled=(), late=(), ship_by=None) -> ShopFacts:
    """A shop's facts; ship_by defaults to paid_at + 48 h."""
    ship_by = [p + 2 * D for p in paid] if ship_by is None else list(ship_by)
    facts = ShopFacts("S1", orders=list(zip(paid, ship_by, strict=True)), cancelled=list(cancelled), late=list(late))
    facts.sort()
    return facts


def alerts(facts: ShopFacts, metric: str, th: ShopThresholds = DEFAULT_SHOP_THRESHOLDS) -> list[tuple[str, int]]:
    """The labelled alerts of one metric, asserting that the contract fixes all of them."""
    labelled, unlabelled = evaluate_shop(facts, th)
    assert [u for u in unlabelled if u.metric == metric] == []
    return [(a.stage, a.at) for a in labelled if a.metric == metric]


def hourly(n: int, start: int = T0) -> list[int]:
    return [start + k * H for k in range(n)]


# ------------------------------------------------------------------ SELLER_FAULT_CANCEL_RATE
def test_fewer_than_twenty_orders_in_the_window_give_nothing_however_bad():
    paid = hourly(19)
    facts = shop(paid, cancelled=[p + 30 * MIN for p in paid])         # 19 of 19 cancelled
    assert alerts(facts, CANCEL) == []


def test_the_twentieth_order_makes_the_rate_count():
    paid = hourly(20)
    facts = shop(paid, cancelled=[paid[0] + 30 * MIN, paid[1] + 30 * MIN])
    assert alerts(facts, CANCEL) == [("WARNING", paid[19])]             # 2/20 = 10 %, first with 20 orders


def test_exactly_two_and_a_half_percent_is_not_above_the_threshold():
    paid = hourly(40)
    cancelled = paid[39] + 30 * MIN
    assert alerts(shop(paid, cancelled=[cancelled]), CANCEL) == []       # 1/40 = 2.5 %
    assert alerts(shop(paid[:39], cancelled=[cancelled]), CANCEL) == [("WARNING", cancelled)]   # 1/39


def test_each_new_order_grows_the_denominator_until_the_rate_is_back_at_the_threshold():
    paid = hourly(45)
    cancelled = paid[19] + 30 * MIN                                     # after the 20th order: 1/20
    assert alerts(shop(paid, cancelled=[cancelled]), CANCEL) == [
        ("WARNING", cancelled),          # 1/20 = 5 %
        ("RESOLVED", paid[39])]          # 1/21 ... 1/39 stay above; the 40th order: 1/40 = 2.5 %


def test_the_twenty_first_order_changes_the_denominator():
    paid = hourly(22)
    th = ShopThresholds(seller_fault_cancel_rate=Fraction(1, 21))       # between 1/20 and 1/22
    facts = shop(paid, cancelled=[paid[19] + 30 * MIN])
    assert alerts(facts, CANCEL, th) == [("WARNING", paid[19] + 30 * MIN), ("RESOLVED", paid[20])]


def test_warning_resolved_warning_as_the_rate_flaps():
    paid = hourly(40)
    first, second = paid[19] + 30 * MIN, paid[39] + 30 * MIN
    assert alerts(shop(paid, cancelled=[first, second]), CANCEL) == [
        ("WARNING", first),              # 1/20
        ("RESOLVED", paid[39]),          # 1/40: at the threshold
        ("WARNING", second)]             # 2/40 = 5 %


def test_a_cancelled_order_still_counts_as_paid_and_cancellations_count_whatever_order_they_cancel():
    # the cancelled orders are among the 40 paid ones: 1/40, not 1/39
    paid = hourly(40)
    assert alerts(shop(paid, cancelled=[paid[39] + MIN]), CANCEL) == []


@pytest.mark.parametrize("offset, expected", [
    (0, ["RESOLVED"]),        # exactly 7 days later: the window (t - 7 d, t] no longer holds it
    (-1, []),                 # one second earlier it still counts
])
def test_a_cancellation_seven_days_old_has_left_the_window(offset, expected):
    cancelled = T0
    paid = [T0 - H] + hourly(30, T0 + H)                  # 31 orders, all in every window below
    late_order = cancelled + 7 * D + offset
    got = alerts(shop(paid + [late_order], cancelled=[cancelled]), CANCEL)
    assert got[0] == ("WARNING", paid[19])               # 1/20 (the order paid before the cancellation counts)
    assert [stage for stage, _ in got[1:]] == expected
    if expected:
        assert got[1][1] == late_order


def test_an_order_seven_days_old_has_left_the_window_and_ageing_alone_emits_nothing():
    paid = hourly(40)                                   # 40 orders, one cancellation: 2.5 %, nothing
    cancelled = paid[39] + 30 * MIN
    oldest_gone = paid[0] + 7 * D                       # from here the window holds 39 orders: 1/39
    assert alerts(shop(paid, cancelled=[cancelled]), CANCEL) == []          # no evaluation after ageing
    facts = shop(paid + [oldest_gone], cancelled=[cancelled])               # an order paid exactly then
    assert alerts(facts, CANCEL) == []                  # it replaces the oldest: 1/40 again
    facts = shop(paid + [oldest_gone + 90 * MIN], cancelled=[cancelled])    # two orders gone, one new: 1/39
    assert alerts(facts, CANCEL) == [("WARNING", oldest_gone + 90 * MIN)]


def test_only_approved_merchant_fault_cancellations_count_and_every_order_counts_as_paid():
    def order(i: int, paid: int, *requests: tuple[int, str, str]) -> Order:
        o = Order(index=i, order_id=f"O{i}", shop_id="S9", platform="douyin", paid_at=paid, amount="10.00",
                  recipient=Recipient("张三", "13812345678", "浙江省", "杭州市", "西湖区", "文三路 1 号"),
                  event_id=f"op-{i}", delivery_mode="self_pickup" if i % 2 else "express")
        o.uploads = [Upload(f"wu-{i}", paid + H, "SELF_PICKUP", None)]
        o.cancellations = [Cancellation(f"cr-{i}-{k}", t, reason, detail) for k, (t, reason, detail)
                           in enumerate(requests)]
        return o

    orders = [order(i, T0 + i * H) for i in range(20)]
    orders[3] = order(3, T0 + 3 * H, (T0 + 3 * H + 30 * MIN, "OUT_OF_STOCK", ""),            # approved
                      (T0 + 3 * H + 40 * MIN, "OUT_OF_STOCK", ""))                             # already cancelled
    orders[4] = order(4, T0 + 4 * H, (T0 + 4 * H + 30 * MIN, "LOGISTICS_EXCEPTION", "慢"))   # rejected
    orders[5] = order(5, T0 + 5 * H, (T0 + 5 * H + 30 * MIN, "OTHER", " "))                   # detail required
    world = World()
    for o in orders:
        world.add_order(o)
    verdicts = {o.index: evaluate(o, world) for o in orders}
    facts = shop_facts(orders, verdicts)["S9"]
    assert facts.cancelled == [T0 + 3 * H + 30 * MIN] and len(facts.orders) == 20
    assert facts.ship_by == [T0 + i * H + 2 * D for i in range(20)]       # the default window: 48 h
    labels = label_shops(orders, verdicts)
    assert [(a.metric, a.stage, a.at) for a in labels.alerts] == [(CANCEL, "WARNING", T0 + 19 * H)]   # 1/20


# ------------------------------------------------------------------ LATE_DISPATCH_RATE
def test_late_dispatch_counts_violations_over_orders_whose_ship_by_fell_in_the_window():
    paid = hourly(30)
    ship_by = [p + 2 * D for p in paid]
    late = [ship_by[0]]
    # evaluations only at order-paid and violation facts: the violation itself has 1/1 (too few);
    # at every order paid before the 20th ship_by the window holds fewer than 20 ship_bys
    facts = shop(paid, late=late, ship_by=ship_by)
    assert alerts(facts, LATE) == []
    more = hourly(10, T0 + 2 * D + 20 * H + 30 * MIN)      # payments after the 21st ship_by: 1/21 .. 1/24, 1/25
    facts = shop(paid + more, late=late, ship_by=ship_by + [p + 2 * D for p in more])
    assert alerts(facts, LATE) == [("WARNING", more[0]),   # 1/21 = 4.8 %
                                   ("RESOLVED", more[4])]  # 1/25 = 4 %: at the threshold


def test_a_violation_evaluates_both_rates_at_its_ship_by():
    paid = hourly(24)
    ship_by = [p + 2 * D for p in paid]
    facts = shop(paid, late=[ship_by[23]], ship_by=ship_by)        # the 24th ship_by is the violation: 1/24
    assert alerts(facts, LATE) == [("WARNING", ship_by[23])]


def test_fewer_than_twenty_ship_bys_give_nothing_even_if_every_order_is_late():
    paid = hourly(19)
    ship_by = [p + 2 * D for p in paid]
    assert alerts(shop(paid, late=ship_by, ship_by=ship_by), LATE) == []


# ------------------------------------------------------------------ where the contract does not decide
def test_facts_at_one_instant_are_evaluated_together_but_a_worker_reading_one_at_a_time_may_differ():
    paid = hourly(39)
    t = T0 + 40 * H
    facts = shop(paid + [t], cancelled=[t])              # the 40th order and a cancellation at one instant
    num, den = facts.series(CANCEL)
    assert evaluate_metric("S1", CANCEL, facts.triggers(), num, den) == []      # together: 1/40
    labelled, unlabelled = evaluate_shop(facts)
    assert labelled == [] and [(u.metric, u.since) for u in unlabelled] == [(CANCEL, t)]


@pytest.mark.parametrize("gap, labelled", [(5 * MIN, False), (11 * MIN, True)])
def test_an_order_paid_within_the_lateness_after_a_violation_leaves_the_alerts_open(gap, labelled):
    paid = hourly(30)
    ship_by = [p + 2 * D for p in paid]
    v1, v2 = ship_by[20], ship_by[29]                 # 1/21: WARNING; then 1/30 would be at or below
    after = v2 + gap                                  # ... but with the second violation: 2/30, still above
    facts = shop(paid + [after], late=[v1, v2], ship_by=ship_by + [after + 2 * D])
    exact = [(a.stage, a.at) for a in evaluate_shop(facts)[0] if a.metric == LATE]
    unlabelled = [u for u in evaluate_shop(facts)[1] if u.metric == LATE]
    if labelled:
        assert exact == [("WARNING", v1)] and unlabelled == []
    else:
        # a worker that evaluates `after` before the violation's timer fires sees 1/30 and resolves
        assert exact == [("WARNING", v1)] and [u.since for u in unlabelled] == [after]


def test_a_violation_whose_timer_fires_only_with_the_next_event_leaves_that_events_evaluation_open():
    paid = hourly(30)
    ship_by = [p + 2 * D for p in paid]
    v1, v2 = ship_by[20], ship_by[29]
    after = v2 + 30 * MIN                             # well past the lateness, but the next event of the stream
    facts = shop(paid + [after], late=[v1, v2], ship_by=ship_by + [after + 2 * D])
    assert [u for u in evaluate_shop(facts)[1] if u.metric == LATE] == []
    quiet = sorted(paid + [v1 + 11 * MIN, after])     # nothing between v2 and `after`: v2's timer fires with it
    assert [u.since for u in evaluate_shop(facts, event_times=quiet)[1] if u.metric == LATE] == [after]
    busy = sorted(quiet + [v2 + 11 * MIN])            # a scan of another shop moves stream time first
    assert [u for u in evaluate_shop(facts, event_times=busy)[1] if u.metric == LATE] == []


def test_a_violation_fired_only_by_a_jump_of_stream_time_may_find_its_window_pruned():
    # 25 presale orders never dispatched, one ship_by; the next event is a tick twelve days later
    paid = [T0 + k * MIN for k in range(25)]
    ship_by = [T0 + 6 * D] * 25
    facts = shop(paid, late=ship_by, ship_by=ship_by)
    assert alerts(facts, LATE) == [("WARNING", T0 + 6 * D)]                       # 25/25
    soon = sorted(paid + [T0 + 6 * D + H])
    assert evaluate_shop(facts, event_times=soon)[1] == []
    jump = sorted(paid + [T0 + 18 * D])               # past ship_by + 7 days + the lateness: may be dropped
    labelled, unlabelled = evaluate_shop(facts, event_times=jump)
    assert labelled == [] and [(u.metric, u.since) for u in unlabelled] == [(LATE, T0 + 6 * D)]


def test_a_warning_open_while_the_window_empties_is_an_open_question():
    paid = hourly(20)
    first = paid[19] + 30 * MIN
    later = T0 + 10 * D                                  # the window holds no order any more
    facts = shop(paid, cancelled=[first, later])
    num, den = facts.series(CANCEL)
    with pytest.raises(Ambiguous):
        evaluate_metric("S1", CANCEL, facts.triggers(), num, den)
    assert [(a.stage, a.at) for a in evaluate_metric("S1", CANCEL, facts.triggers(), num, den, strict=False)] \
        == [("WARNING", first)]                          # read as "not evaluated": the WARNING stays open
    labelled, unlabelled = evaluate_shop(facts)
    assert [(a.stage, a.at) for a in labelled] == [("WARNING", first)]
    assert [(u.metric, u.since) for u in unlabelled] == [(CANCEL, later)]


# ------------------------------------------------------------------ the labels file and the check
def test_the_labels_file_lists_shop_alerts_in_time_order_in_utc():
    sim = generate(SimulationConfig(orders=2000, days=7, seed=3, problem_shop_share=0.1))
    data = loads(output.render_labels(sim))
    assert data == output.labels(sim)
    items = data["shop_alerts"]
    assert items and all(set(a) == {"shop_id", "metric", "stage", "window_end"} for a in items)
    assert all(a["window_end"].endswith("Z") for a in items)
    assert [a["window_end"] for a in items] == sorted(a["window_end"] for a in items)
    assert data["generator"]["problem_shop_share"] == 0.1
    # the same alerts come out of the events file alone
    messages = [loads(line) for line in output.render_events(sim).splitlines()]
    ticks = [int(datetime.fromisoformat(m["value"]["at"]).timestamp()) for m in messages if m["topic"] == "clock-ticks"]
    alerts_json, unlabelled_json = as_json(label_world(world_from_messages(messages), ticks=ticks))
    assert alerts_json == items and unlabelled_json == data["shop_alerts_unlabelled"]


def test_without_the_option_the_generator_params_stay_as_they_were():
    sim = generate(SimulationConfig(orders=200, days=2, seed=9))
    assert "problem_shop_share" not in output.generator_params(sim)
    assert list(output.labels(sim))[-2:] == ["shop_alerts", "shop_alerts_unlabelled"]


def test_ten_thousand_orders_with_problem_shops_label_warnings_of_both_metrics_in_those_shops():
    sim = generate(SimulationConfig(orders=10000, days=7, seed=42, problem_shop_share=0.08))
    labels = label_shops(sim.orders, sim.verdicts)
    warnings = {(a.shop_id, a.metric) for a in labels.alerts if a.stage == "WARNING"}
    assert {metric for _, metric in warnings} == {CANCEL, LATE}
    by_size = sorted(sim.shops, key=lambda s: (-s.size, s.shop_id))
    late_shop, oos_shop = by_size[1].shop_id, by_size[2].shop_id
    assert (late_shop, LATE) in warnings and (oos_shop, CANCEL) in warnings
    # and they stay above: the last alert of each problem is a WARNING
    last = {(a.shop_id, a.metric): a.stage for a in labels.alerts}
    assert last[late_shop, LATE] == "WARNING" and last[oos_shop, CANCEL] == "WARNING"


def test_the_option_changes_only_the_roles_of_two_shops_orders():
    plain = generate(SimulationConfig(orders=2000, days=7, seed=5))
    bad = generate(SimulationConfig(orders=2000, days=7, seed=5, problem_shop_share=0.1))
    def late(sim):
        return Counter(o.shop_id for o in sim.orders if o.fault == "SHIP_OVERDUE")

    def out_of_stock(sim):
        return Counter(o.shop_id for o in sim.orders if o.cancel_variant in PROBLEM_SHOP_VARIANTS["out_of_stock"])

    assert not late(plain) - late(bad) and not out_of_stock(plain) - out_of_stock(bad)
    (late_shop, n_late), = (late(bad) - late(plain)).items()
    (oos_shop, n_oos), = (out_of_stock(bad) - out_of_stock(plain)).items()
    assert late_shop != oos_shop and n_late > 10 and n_oos > 10


def test_the_cli_option_reaches_the_config():
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ["--orders", "5", "--days", "1", "--seed", "1", "--out", "e", "--labels", "l"]
    assert config_from(parser.parse_args(base)).problem_shop_share == 0.0
    assert config_from(parser.parse_args(base + ["--problem-shop-share", "0.08"])).problem_shop_share == 0.08
    with pytest.raises(SystemExit):
        parser.parse_args(base + ["--problem-shop-share", "2"])


def test_the_check_compares_instants_and_skips_what_the_labels_leave_open():
    labels = {"shop_alerts": [
        {"shop_id": "A", "metric": CANCEL, "stage": "WARNING", "window_end": "2026-03-02T02:00:00Z"},
        {"shop_id": "B", "metric": LATE, "stage": "WARNING", "window_end": "2026-03-02T02:00:00Z"}],
        "shop_alerts_unlabelled": [{"shop_id": "B", "metric": LATE, "since": "2026-03-03T00:00:00Z", "reason": "x"}]}
    emitted = [{"shop_id": "A", "metric": CANCEL, "stage": "WARNING", "window_end": "2026-03-02T10:00:00+08:00"},
               {"shop_id": "B", "metric": LATE, "stage": "WARNING", "window_end": "2026-03-02T02:00:00Z"},
               {"shop_id": "B", "metric": LATE, "stage": "RESOLVED", "window_end": "2026-03-03T01:00:00Z"}]
    wanted, got = _alerts(labels, emitted)
    assert wanted == got and sum(wanted.values()) == 2
    wanted, got = _alerts(labels, emitted[:1] + [{**emitted[1], "window_end": "2026-03-02T02:00:01Z"}])
    assert wanted != got


def test_a_missing_shop_alert_makes_the_check_imperfect_and_shows_in_the_table():
    report = CheckReport(alerts_expected=1, alerts_emitted=0, alerts_missing=[("A", CANCEL, "WARNING", utc(T0))])
    assert not report.perfect
    assert "| shop alerts | | 1 | 0 | - | 0.0% |" in report.table()
    assert CheckReport(alerts_expected=1, alerts_emitted=1, alerts_matched=1).perfect
