"""Settings come from the environment; thresholds from one validated rules file (read by the shell)."""

import pytest

from processors.config import RulesError, parse_rules_toml
from streams.config import ConfigError, load_settings
from streams.rules_file import DEFAULT_RULES_PATH, load_rules


def test_settings_have_local_defaults():
    settings = load_settings({})
    assert (settings.broker, settings.clock, settings.partitions) == ("kafka://127.0.0.1:9092", "wall", 8)
    assert settings.bootstrap_servers == ["127.0.0.1:9092"]


def test_settings_read_the_environment_and_flags_win():
    settings = load_settings({"SHIPGUARD_CLOCK": "event", "SHIPGUARD_PARTITIONS": "4"}, clock="wall")
    assert (settings.clock, settings.partitions) == ("wall", 4)


@pytest.mark.parametrize("env, fragment", [
    ({"SHIPGUARD_PARTITIONS": "many"}, "SHIPGUARD_PARTITIONS='many': expected a whole number"),
    ({"SHIPGUARD_PARTITIONS": "0"}, "SHIPGUARD_PARTITIONS=0: expected 1..1024"),
    ({"SHIPGUARD_CLOCK": "lunar"}, "SHIPGUARD_CLOCK='lunar': expected one of wall, event"),
])
def test_a_malformed_setting_names_the_variable(env, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        load_settings(env)


def test_the_packaged_rules_hold_the_contract_defaults():
    rules = load_rules()
    douyin, tiktok = rules.platform("douyin"), rules.platform("tiktok")
    assert (douyin.ship_window_hours, douyin.ship_warning_lead_hours) == (48, 6)
    assert (douyin.dispatch_evidence, tiktok.dispatch_evidence) == ("valid_upload", "first_scan")
    assert rules.allowed_lateness_minutes == 10 and "新疆" in rules.very_remote_provinces


def test_a_bad_rules_file_is_refused_with_the_offending_key_named(tmp_path):
    bad = tmp_path / "rules.toml"
    bad.write_text(DEFAULT_RULES_PATH.read_text(encoding="utf-8").replace(
        "pickup_hours = 24 ", "pickup_hours = -3 "), encoding="utf-8")
    with pytest.raises(RulesError, match=r"platforms\.douyin\.pickup_hours"):
        load_rules(bad)


def test_an_unknown_key_in_the_rules_file_is_refused(tmp_path):
    bad = tmp_path / "rules.toml"
    bad.write_text(DEFAULT_RULES_PATH.read_text(encoding="utf-8") + "\nship_windw = 3\n", encoding="utf-8")
    with pytest.raises(RulesError, match="ship_windw"):
        load_rules(bad)


def test_a_missing_rules_file_says_so(tmp_path):
    with pytest.raises(RulesError, match="cannot read rules file"):
        load_rules(tmp_path / "nope.toml")


def test_a_rules_file_that_is_not_toml_is_refused_with_its_name(tmp_path):
    bad = tmp_path / "rules.toml"
    bad.write_text("allowed_lateness_minutes = = 10\n", encoding="utf-8")
    with pytest.raises(RulesError, match=rf"^{bad}: not valid TOML"):
        load_rules(bad)


def test_the_core_validates_a_rules_document_given_as_text_without_reading_a_file():
    text = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
    assert parse_rules_toml(text) == load_rules()
    with pytest.raises(RulesError, match=r"^platforms\.douyin\.pickup_hours"):
        parse_rules_toml(text.replace("pickup_hours = 24 ", "pickup_hours = -3 "))


def test_the_worker_refuses_a_bad_rules_file_at_start_and_names_the_key(tmp_path):
    import os
    import subprocess
    import sys

    bad = tmp_path / "rules.toml"
    bad.write_text(DEFAULT_RULES_PATH.read_text(encoding="utf-8").replace("stall_hours = 48 ", "stall_hours = \"x\" "),
                   encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "streams.cli", "worker"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "SHIPGUARD_RULES": str(bad), "SHIPGUARD_BROKER": "kafka://127.0.0.1:1"})
    assert done.returncode == 2
    assert "platforms.douyin.stall_hours" in done.stderr


def test_the_web_port_listens_on_loopback_unless_told_and_faust_binds_what_it_is_told():
    from streams.runtime.app import build_app  # here: it imports Faust

    assert load_settings({}).web_host == "127.0.0.1"
    for host in ("127.0.0.1", "0.0.0.0"):
        settings = load_settings({"SHIPGUARD_WEB_HOST": host, "SHIPGUARD_APP_ID": "web-bind-test"})
        app = build_app(settings, load_rules()).app
        # web_bind is what Faust's web server listens on (web_host is only the name it advertises)
        assert (app.conf.web_bind, app.conf.web_host) == (host, host)
