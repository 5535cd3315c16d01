"""DashboardState: what the dashboard shows, folded from output records with named instants.

No Kafka and no event loop: `apply(topic, record, now)` with `now` the record's time,
`snapshot(now)` with the wall clock.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas import codec
from schemas.outputs import CancellationOutcome, ShopAlert, ViolationWarning
from streams.config import ConfigError
from streams.dashboard.command import add_dashboard_parser
from streams.dashboard.reader import decode_output
from streams.dashboard.server import dashboard_env
from streams.dashboard.state import DashboardState, Limits
from streams.dashboard.window_counts import WindowCounts

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)  # when the records arrive (record time)
PAID = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)  # event time of the orders


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def warning(order: str, stage: str, at: datetime, *, rule: str = "SHIP_OVERDUE", shop: str = "shopA",
            deadline: datetime | None = None, severity: str = "medium") -> ViolationWarning:
    return ViolationWarning.model_validate({
        "warning_id": f"W-{order}-{rule}", "order_id": order, "shop_id": shop, "platform": "douyin", "rule": rule,
        "stage": stage, "severity": severity, "occurred_at": at, "deadline": deadline, "waybill_no": None,
        "evidence": {}, "message": f"订单{order}须尽快发货。"})


def outcome(order: str, code: str, decision: str, *, shop: str = "shopA", fault: bool = False) -> CancellationOutcome:
    return CancellationOutcome.model_validate({
        "request_event_id": f"R-{order}", "order_id": order, "shop_id": shop, "decision": decision,
        "reason": "OUT_OF_STOCK", "code": code, "explanation": "说明",
        "refund": {"amount": "129.00", "currency": "CNY"} if decision == "APPROVED" else None,
        "order_status": "CANCELLED" if decision == "APPROVED" else "PAID", "merchant_fault": fault,
        "decided_at": PAID})


def alert(shop: str, stage: str, *, metric: str = "LATE_DISPATCH_RATE", at: datetime = PAID,
          alert_id: str | None = None) -> ShopAlert:
    return ShopAlert.model_validate({
        "alert_id": alert_id or f"A-{shop}-{metric}", "shop_id": shop, "platform": "taobao", "metric": metric,
        "stage": stage, "value": "0.0625" if stage == "WARNING" else "0.0400", "threshold": "0.04",
        "orders_in_window": 32, "window_start": at - timedelta(days=7), "window_end": at})


def open_orders(state: DashboardState, now: datetime = T0) -> list[str]:
    return [row["order_id"] for row in state.snapshot(now)["open_warnings"]]


def rule_row(snapshot: dict[str, Any], rule: str) -> dict[str, Any]:
    return next(row for row in snapshot["rules"] if row["rule"] == rule)


# -- open warnings ---------------------------------------------------------------------------------


def test_a_warning_stays_open_until_its_violation_arrives_and_then_nothing_is_left_open():
    state = DashboardState()
    state.apply("violation-warnings", warning("O1", "WARNING", PAID, deadline=PAID + hours(6)), T0)
    assert open_orders(state) == ["O1"]
    state.apply("violation-warnings", warning("O1", "VIOLATION", PAID + hours(6)), T0)
    assert open_orders(state) == [] and not state.open


def test_a_resolved_warning_is_no_longer_open():
    state = DashboardState()
    state.apply("violation-warnings", warning("O1", "WARNING", PAID, deadline=PAID + hours(6)), T0)
    state.apply("violation-warnings", warning("O1", "RESOLVED", PAID + hours(1)), T0)
    assert not state.open and state.snapshot(T0)["totals"]["resolved"] == 1


def test_open_warnings_come_soonest_deadline_first_with_time_left_from_the_wall_clock():
    state = DashboardState(clock="wall")
    state.apply("violation-warnings", warning("LATER", "WARNING", PAID, deadline=T0 + hours(20)), T0)
    state.apply("violation-warnings", warning("SOON", "WARNING", PAID, deadline=T0 + hours(1)), T0)
    state.apply("violation-warnings", warning("OVERDUE", "WARNING", PAID, deadline=T0 - timedelta(minutes=5)), T0)
    rows = state.snapshot(T0)["open_warnings"]
    assert [row["order_id"] for row in rows] == ["OVERDUE", "SOON", "LATER"]
    assert [row["seconds_left"] for row in rows] == [-300, 3600, 72000]
    assert rows[1]["name"] == "发货超时" and rows[1]["deadline"] == "2026-03-01T11:00:00Z"


def test_in_event_clock_mode_time_left_counts_from_the_latest_event_time_read():
    state = DashboardState(clock="event")
    state.apply("violation-warnings", warning("O1", "WARNING", PAID, deadline=PAID + hours(6)), T0 + hours(900))
    state.apply("cancellation-outcomes", outcome("O2", "IN_TRANSIT", "REJECTED"), T0 + hours(900))
    snapshot = state.snapshot(T0 + hours(900))
    assert snapshot["clock_now"] == "2026-03-01T08:00:00Z"
    assert snapshot["open_warnings"][0]["seconds_left"] == 6 * 3600


def test_a_violation_read_before_its_warning_leaves_nothing_open():
    state = DashboardState()
    state.apply("violation-warnings", warning("O1", "VIOLATION", PAID + hours(6)), T0)
    state.apply("violation-warnings", warning("O1", "WARNING", PAID, deadline=PAID + hours(6)), T0)
    assert not state.open and state.dropped["late_warnings"] == 1


def test_a_duplicate_record_is_counted_once_and_gives_no_feed_item():
    state = DashboardState()
    record = warning("O1", "WARNING", PAID, deadline=PAID + hours(6))
    assert state.apply("violation-warnings", record, T0) is not None
    assert state.apply("violation-warnings", record, T0) is None
    assert state.apply("cancellation-outcomes", outcome("O2", "APPROVED", "APPROVED"), T0) is not None
    assert state.apply("cancellation-outcomes", outcome("O2", "APPROVED", "APPROVED"), T0) is None
    snapshot = state.snapshot(T0)
    assert snapshot["totals"]["warnings"] == 1 and snapshot["totals"]["approved"] == 1
    assert snapshot["records"] == 2 and len(snapshot["feed"]) == 2 and state.dropped["duplicates"] == 2


# -- counts ------------------------------------------------------------------------------------------


def test_counts_go_by_rule_and_stage_and_outcomes_by_code_and_decision():
    state = DashboardState()
    state.apply("violation-warnings", warning("O1", "WARNING", PAID, deadline=PAID + hours(24), rule="NO_PICKUP"), T0)
    state.apply("violation-warnings", warning("O1", "VIOLATION", PAID + hours(24), rule="NO_PICKUP"), T0)
    state.apply("violation-warnings", warning("O2", "VIOLATION", PAID, rule="ADDRESS_MISMATCH"), T0)
    state.apply("cancellation-outcomes", outcome("O3", "APPROVED", "APPROVED", fault=True), T0)
    state.apply("cancellation-outcomes", outcome("O4", "DETAIL_REQUIRED", "REJECTED"), T0)
    snapshot = state.snapshot(T0)
    assert rule_row(snapshot, "NO_PICKUP") == {"rule": "NO_PICKUP", "name": "揽收超时", "WARNING": 1,
                                               "VIOLATION": 1, "RESOLVED": 0}
    assert rule_row(snapshot, "ADDRESS_MISMATCH")["VIOLATION"] == 1
    assert len(snapshot["rules"]) == 10, "every rule has a row, zeros included"
    codes = {row["code"]: (row["APPROVED"], row["REJECTED"]) for row in snapshot["outcomes"]}
    assert codes["APPROVED"] == (1, 0) and codes["DETAIL_REQUIRED"] == (0, 1) and codes["IN_TRANSIT"] == (0, 0)
    assert snapshot["totals"] | {} == {"warnings": 1, "violations": 2, "resolved": 0, "open_warnings": 0,
                                       "open_shop_alerts": 0, "approved": 1, "rejected": 1, "merchant_fault": 1}


def test_counts_slide_with_the_window_of_record_time():
    state = DashboardState(window=hours(24))
    state.apply("violation-warnings", warning("EARLY", "VIOLATION", PAID), T0)
    state.apply("violation-warnings", warning("LATE", "VIOLATION", PAID), T0 + hours(20))
    assert state.snapshot(T0 + hours(20))["totals"]["violations"] == 2
    assert state.snapshot(T0 + hours(26))["totals"]["violations"] == 1
    assert state.snapshot(T0 + hours(46))["totals"]["violations"] == 0
    assert state.counts.total == {} and len(state.counts) == 0, "nothing left behind"


def test_a_record_older_than_the_window_counts_nowhere():
    counts = WindowCounts(hours(24), slots=24)
    assert counts.add("x", T0 + hours(48))
    assert not counts.add("x", T0)
    assert counts.total == {"x": 1}


# -- shops -------------------------------------------------------------------------------------------


def test_shops_rank_by_open_rate_alerts_then_violations_then_open_warnings():
    state = DashboardState()
    for n in range(3):
        state.apply("violation-warnings", warning(f"V{n}", "VIOLATION", PAID, shop="manyViolations"), T0)
    state.apply("violation-warnings", warning("V9", "VIOLATION", PAID, shop="alerted"), T0)
    state.apply("shop-alerts", alert("alerted", "WARNING"), T0)
    for n in range(4):
        state.apply("violation-warnings",
                    warning(f"O{n}", "WARNING", PAID, shop="manyOpen", deadline=PAID + hours(6)), T0)
    rows = state.snapshot(T0)["shops"]
    assert [row["shop_id"] for row in rows] == ["alerted", "manyViolations", "manyOpen"]
    assert [row["risk"] for row in rows] == ["high", "medium", "low"]
    assert rows[0]["alerts"] == [{"metric": "LATE_DISPATCH_RATE", "name": "延迟发货率", "value": "0.0625",
                                  "threshold": "0.04", "orders_in_window": 32}]
    assert rows[2]["open_warnings"] == 4 and rows[1]["violations"] == 3


def test_a_resolved_shop_alert_is_no_longer_open():
    state = DashboardState()
    state.apply("shop-alerts", alert("s1", "WARNING"), T0)
    assert state.snapshot(T0)["totals"]["open_shop_alerts"] == 1
    state.apply("shop-alerts", alert("s1", "RESOLVED", at=PAID + hours(3)), T0)
    snapshot = state.snapshot(T0)
    assert snapshot["totals"]["open_shop_alerts"] == 0 and snapshot["shops"] == []
    metric = next(row for row in snapshot["shop_alert_counts"] if row["metric"] == "LATE_DISPATCH_RATE")
    assert (metric["WARNING"], metric["RESOLVED"]) == (1, 1)


def test_a_shop_alert_warning_read_after_its_resolution_does_not_reopen_it():
    state = DashboardState()
    state.apply("shop-alerts", alert("s1", "RESOLVED", at=PAID + hours(3)), T0)
    state.apply("shop-alerts", alert("s1", "WARNING"), T0)
    assert state.snapshot(T0)["totals"]["open_shop_alerts"] == 0 and state.dropped["late_alerts"] == 1


# -- chart and feed ----------------------------------------------------------------------------------


def test_the_chart_counts_stages_per_hour_of_event_time_with_empty_hours_as_zeros():
    state = DashboardState()
    state.apply("violation-warnings",
                warning("O1", "WARNING", PAID + timedelta(minutes=10), deadline=PAID + hours(6)), T0)
    state.apply("violation-warnings",
                warning("O2", "WARNING", PAID + timedelta(minutes=50), deadline=PAID + hours(6)), T0)
    state.apply("violation-warnings", warning("O1", "VIOLATION", PAID + hours(3)), T0)
    chart = state.snapshot(T0)["chart"]
    assert chart["start"] == "2026-03-01T08:00:00Z" and chart["bucket_seconds"] == 3600
    assert chart["series"] == {"WARNING": [2, 0, 0, 0], "VIOLATION": [0, 0, 0, 1], "RESOLVED": [0, 0, 0, 0]}


def test_the_chart_keeps_only_its_latest_hours_and_drops_older_ones():
    state = DashboardState(limits=Limits(chart_hours=3))
    for n in range(6):
        state.apply("violation-warnings", warning(f"O{n}", "VIOLATION", PAID + hours(n)), T0)
    state.apply("violation-warnings", warning("OLD", "VIOLATION", PAID), T0)
    chart = state.snapshot(T0)["chart"]
    assert chart["start"] == "2026-03-01T11:00:00Z" and chart["series"]["VIOLATION"] == [1, 1, 1]
    assert state.dropped["chart_too_old"] == 1


def test_the_feed_is_newest_first_and_says_what_happened_in_the_merchants_words():
    state = DashboardState()
    state.apply("violation-warnings", warning("O1", "WARNING", PAID, deadline=PAID + hours(6)), T0)
    state.apply("shop-alerts", alert("s1", "WARNING"), T0)
    state.apply("cancellation-outcomes", outcome("O3", "APPROVED", "APPROVED"), T0)
    feed = state.snapshot(T0)["feed"]
    assert [item["kind"] for item in feed] == ["outcome", "shop-alert", "warning"]
    assert feed[0]["refund"] == "129.00 CNY" and feed[0]["label_zh"] == "同意取消"
    assert feed[1]["text"] == "延迟发货率 6.25% > 阈值 4%（近 7 天 32 单）"
    assert feed[2]["label_zh"] == "发货超时" and feed[2]["deadline"] == "2026-03-01T14:00:00Z"
    assert [item["seq"] for item in feed] == [3, 2, 1]


def test_a_snapshot_is_plain_json():
    state = DashboardState()
    state.apply("violation-warnings", warning("O1", "WARNING", PAID, deadline=PAID + hours(6)), T0)
    state.apply("shop-alerts", alert("s1", "WARNING"), T0)
    state.apply("cancellation-outcomes", outcome("O3", "APPROVED", "APPROVED"), T0)
    assert codec.loads(codec.dumps(state.snapshot(T0)))["records"] == 3


def test_an_unknown_topic_is_refused():
    with pytest.raises(ValueError):
        DashboardState().apply("dead-letters", warning("O1", "VIOLATION", PAID), T0)


# -- memory bound ------------------------------------------------------------------------------------


def test_memory_stays_at_its_caps_after_a_hundred_thousand_records():
    limits = Limits(feed=50, open_warnings=1_000, shops=200, seen=5_000, chart_hours=48, slots=24)
    state = DashboardState(window=hours(24), limits=limits)
    sizes = []
    for n in range(100_000):
        now = T0 + timedelta(seconds=6 * n)  # a week of record time
        event_time = PAID + timedelta(seconds=6 * n)
        shop = f"shop{n % 1_000}"
        kind = n % 10
        if kind < 6:  # most WARNINGs never close: the open map must hold at its cap
            record: Any = warning(f"O{n}", "WARNING", event_time, shop=shop, deadline=event_time + hours(6))
            topic = "violation-warnings"
        elif kind < 8:
            record, topic = warning(f"O{n - 2}", "VIOLATION", event_time, shop=shop), "violation-warnings"
        elif kind == 8:
            record, topic = outcome(f"C{n}", "APPROVED", "APPROVED", shop=shop), "cancellation-outcomes"
        else:
            record, topic = alert(shop, "WARNING" if n % 20 == 9 else "RESOLVED", at=event_time,
                                  alert_id=f"A{n // 20}"), "shop-alerts"
        state.apply(topic, record, now)
        if n % 10_000 == 9_999:
            sizes.append((len(state.feed), len(state.open), len(state.shops), len(state._seen), len(state.chart),
                          len(state.counts), len(state.shop_violations), len(state.shop_violations.total)))
    assert state.records == 100_000
    for feed, open_, shops, seen, chart, slots, shop_slots, shop_keys in sizes:
        assert feed == 50 and 990 <= open_ <= 1_000 and shops == 200 and seen == 5_000 and chart <= 48
        assert slots <= 25 and shop_slots <= 25 and shop_keys <= 200
    assert sizes[-1][4] == 48, "the chart filled up to its cap and stayed there"
    assert state.dropped["open_warnings_evicted"] > 30_000 and state.dropped["shops_evicted"] > 0
    snapshot = state.snapshot(T0 + timedelta(seconds=600_000))
    assert len(snapshot["open_warnings"]) == limits.top and len(snapshot["chart"]["series"]["WARNING"]) == 48


# -- command line ----------------------------------------------------------------------------------


def test_the_dashboard_command_parses_its_flags_and_its_help_shows_an_example():
    parser = argparse.ArgumentParser(prog="shipguard")
    add_dashboard_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["dashboard", "--port", "8099", "--hours", "6", "--token", "t"])
    assert (args.port, args.hours, args.token, args.host) == (8099, 6.0, "t", "127.0.0.1")
    with pytest.raises(SystemExit):
        parser.parse_args(["dashboard", "--hours", "0"])
    help_text = parser._subparsers._group_actions[0].choices["dashboard"].format_help()
    assert "examples:" in help_text and "shipguard dashboard --port" in help_text


def test_the_dashboard_variables_give_the_token_and_the_port_and_a_bad_port_is_refused():
    assert dashboard_env({}) == (None, 8080)
    assert dashboard_env(
        {"SHIPGUARD_DASHBOARD_TOKEN": " s3cret ", "SHIPGUARD_DASHBOARD_PORT": "9000"}
    ) == ("s3cret", 9000)
    with pytest.raises(ConfigError, match="SHIPGUARD_DASHBOARD_PORT"):
        dashboard_env({"SHIPGUARD_DASHBOARD_PORT": "http"})


def test_a_record_that_is_not_an_output_of_its_topic_is_refused_with_the_reason():
    with pytest.raises(codec.BadInput, match="stage"):
        decode_output("violation-warnings", codec.dumps({**warning("O1", "WARNING", PAID).model_dump(mode="json"),
                                                         "stage": "MAYBE"}))
    with pytest.raises(codec.BadInput, match="not JSON"):
        decode_output("shop-alerts", b"{")
