"""Start the worker: read settings and rules, prepare the broker, run the Faust app."""

from __future__ import annotations

import logging
import os
import sys
from typing import Optional

from processors.config import RulesError, load_rules
from streams.config import ConfigError, load_settings

log = logging.getLogger("shipguard")


def configure_logging(level: str) -> None:
    """shipguard logs key=value lines on stderr through its own handler; Faust and aiokafka WARNING.

    Faust's worker installs its own root handlers at start (level WARNING here), so shipguard's
    logger does not propagate to them: its INFO lines would be dropped.
    """
    numeric = getattr(logging, "WARNING" if level == "warn" else level.upper(), logging.INFO)
    logging.getLogger().setLevel(logging.WARNING)
    for noisy in ("faust", "mode", "aiokafka", "kafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    log.setLevel(numeric)
    if not any(getattr(h, "_shipguard", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s level=%(levelname)s %(message)s"))
        handler._shipguard = True  # type: ignore[attr-defined]
        log.addHandler(handler)
    log.propagate = False


def run_worker(broker: Optional[str] = None, clock: Optional[str] = None) -> int:
    """`shipguard worker`: returns a process exit code."""
    try:
        settings = load_settings(broker=broker, clock=clock)
        rules = load_rules(settings.rules_path)
    except (ConfigError, RulesError) as exc:
        print(f"shipguard worker: {exc}", file=sys.stderr)
        return 2
    import faust

    from streams import admin, compat
    from streams.app import build_app

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s",
                        force=True)
    configure_logging(settings.log_level)
    try:
        admin.wait_for_broker(settings.bootstrap_servers, timeout=30.0)
    except Exception as exc:
        print(f"shipguard worker: broker {settings.broker} is not reachable: {exc}", file=sys.stderr)
        return 1
    embedded = compat.detect(settings)
    compat.create_topics_up_front(settings)
    log.info("shipguard worker starting: broker=%s embedded=%s clock=%s partitions=%d",
             settings.broker, embedded, settings.clock, settings.partitions)
    built = build_app(settings, rules, compat.faust_settings(embedded), embedded=embedded)
    compat.apply(built.app, embedded)

    async def _quiet() -> None:
        # Faust's worker resets the root logger's level at start; put it back (BROKER.md: 9%).
        configure_logging(settings.log_level)

    built.app.on_startup_finished = _quiet

    worker = faust.Worker(built.app, loglevel=os.environ.get("SG_FAUST_LOGLEVEL", "WARNING"), quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
    return 0
