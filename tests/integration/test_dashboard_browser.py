"""The dashboard in a real browser (Debian's headless Chromium, driven by Selenium) while a real
worker processes a real replay: the page's feed and counts must update by themselves.

Chromium comes from Debian (`chromium`, `chromium-driver`; `scripts/ensure-chromium.sh`, which
`make test` runs, installs them). Without it this test fails and says so: it never skips.
The screenshot lands in tests/artifacts/dashboard.png.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from streams.cli.supervise import WorkerProcess, wait_idle
from streams.kafka.embedded import EmbeddedBroker, free_port
from tests.integration.test_dashboard import DashboardProcess, get_json

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
APP_ID = "shipguard-dash"
TOKEN = "browser-test-token"
CUT = datetime.fromisoformat("2026-03-05T00:00:00+08:00")  # stop mid-week: warnings still open


def require_chromium() -> None:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        pytest.fail(f"headless Chromium is needed for the dashboard's browser test and {', '.join(missing)} "
                    "is missing: run `scripts/ensure-chromium.sh` (`make test` does), or `apt-get install "
                    "chromium chromium-driver`, or point CHROMIUM / CHROMEDRIVER at them.", pytrace=False)


def scenario(tmp: Path) -> Path:
    """A simulated shop-week with many faults, cut mid-week and ended by a tick at the cut."""
    events, labels = tmp / "week.jsonl", tmp / "labels.json"
    subprocess.run([sys.executable, "-m", "streams.cli", "simulate", "--orders", "400", "--days", "3", "--seed", "5",
                    "--fault-share", "0.35", "--cancel-share", "0.08", "--shops", "8", "--problem-shop-share", "0.25",
                    "--out", str(events), "--labels", str(labels)], check=True, capture_output=True, timeout=60,
                   cwd=REPO)
    kept = [line for line in events.read_text(encoding="utf-8").splitlines()
            if line and json.loads(line)["topic"] != "clock-ticks"
            and datetime.fromisoformat(json.loads(line)["at"]) < CUT]
    tick = {"topic": "clock-ticks", "value": {"at": CUT.isoformat()}}
    cut = tmp / "week-cut.jsonl"
    cut.write_text("\n".join(kept + [json.dumps(tick)]) + "\n", encoding="utf-8")
    return cut


def chrome():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1440,1000", "--force-device-scale-factor=1", "--lang=en-US"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def number(driver, element_id: str) -> int:
    text = driver.find_element("id", element_id).text.replace(",", "").strip()
    return int(text) if text.isdigit() else -1


def test_the_page_shows_the_feed_and_counts_updating_while_a_replay_runs(tmp_path):
    require_chromium()
    from selenium.webdriver.support.ui import WebDriverWait

    stream = scenario(tmp_path)
    with EmbeddedBroker() as broker:
        worker = WorkerProcess(broker.url, tmp_path / "worker.log", app_id=APP_ID, web_port=free_port())
        dashboard = DashboardProcess(broker.url, tmp_path / "dashboard.log", token=TOKEN, app_id=APP_ID,
                                     clock="event")
        with worker, dashboard:
            driver = chrome()
            try:
                wait = WebDriverWait(driver, 40, poll_frequency=0.1)
                driver.get(f"{dashboard.base}/?token={TOKEN}")
                wait.until(lambda d: d.find_element("id", "status").text.endswith("live"))
                assert number(driver, "records") == 0 and "token=" not in driver.current_url

                replay = subprocess.Popen([sys.executable, "-m", "streams.cli", "replay", str(stream), "--quiet"],
                                          env=worker.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                try:
                    # The same page, never reloaded: records arrive through /events.
                    wait.until(lambda d: number(d, "records") > 0)
                    wait.until(lambda d: d.find_elements("css selector", "#feed li[data-live]"))
                    wait.until(lambda d: number(d, "kpi-warnings") > 0 and number(d, "kpi-violations") > 0)
                    out, err = replay.communicate(timeout=60)
                    assert replay.returncode == 0, err
                finally:
                    if replay.poll() is None:
                        replay.kill()
                wait_idle([broker.bootstrap], APP_ID, timeout=90, settle=0.5)
                final = dashboard.wait_state(lambda s: s["status"] == "live" and s["records"] > 0)
                # The page catches up with everything the worker wrote.
                records = dashboard.wait_state(lambda s: s["records"] >= final["records"])["records"]
                wait.until(lambda d: number(d, "records") == get_json(dashboard.base + "/api/state", TOKEN)["records"])
                state = get_json(dashboard.base + "/api/state", TOKEN)
                assert records > 50 and state["totals"]["open_warnings"] > 0
                assert number(driver, "kpi-open") == state["totals"]["open_warnings"]
                assert number(driver, "kpi-violations") == state["totals"]["violations"]
                rows = driver.find_elements("css selector", "#open-warnings tbody tr")
                assert len(rows) == len(state["open_warnings"])
                first = rows[0].find_elements("css selector", "td")
                assert state["open_warnings"][0]["order_id"] in first[2].text, "soonest deadline on top"
                assert driver.find_elements("css selector", "#chart svg rect"), "the chart has bars"
                assert len(driver.find_elements("css selector", "#shops tbody tr")) == len(state["shops"])
                errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
                assert not errors, errors

                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                height = driver.execute_script("return document.documentElement.scrollHeight")
                driver.set_window_size(1440, min(max(int(height), 1000), 4000))
                driver.execute_script("window.dispatchEvent(new Event('resize'))")
                wait.until(lambda d: d.find_elements("css selector", "#chart svg rect")
                           and not d.find_elements("css selector", "#feed li.fresh"))  # highlights faded
                shot = ARTIFACTS / "dashboard.png"
                assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
            finally:
                driver.quit()
