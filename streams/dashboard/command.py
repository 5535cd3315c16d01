"""`shipguard dashboard`: its arguments, and the command that serves the dashboard until stopped."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from streams.dashboard.server import dashboard_env, serve
from streams.dashboard.state import DEFAULT_HOURS

log = logging.getLogger("shipguard.dashboard")


def _hours(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of hours") from None
    if not 0 < value <= 24 * 30:
        raise argparse.ArgumentTypeError(f"{text}: expected more than 0 and at most 720 hours")
    return value


EPILOG = """examples:
  shipguard dashboard                                  # http://127.0.0.1:8080/, the last 24 hours
  shipguard dashboard --port 8081 --hours 100          # over 4 days: open NOT_DELIVERED warnings too
  SHIPGUARD_DASHBOARD_TOKEN=s3cret shipguard dashboard --host 0.0.0.0
                                                       # then open http://HOST:8080/?token=s3cret
  SHIPGUARD_CLOCK=event shipguard dashboard            # during a replay: time left by stream time

Counts cover the records of the last --hours (by record timestamp). An open warning is a
WARNING with no VIOLATION or RESOLVED yet; one whose WARNING is older than --hours is not
seen. Shops are ranked by open rate alerts, then violations in the window, then open warnings.
"""


def add_dashboard_parser(sub: Any) -> None:
    """Add `shipguard dashboard` to the CLI's subparsers."""
    p = sub.add_parser(
        "dashboard", help="live web dashboard: warnings, open deadlines, shops at risk, cancellations",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Serve a live web page over violation-warnings, cancellation-outcomes and shop-alerts: "
                    "a live feed, counts by rule and stage, open warnings by time left, shops ranked by "
                    "risk, cancellation outcomes by code and warnings per hour. It reads the topics "
                    "itself (plain Kafka consumer, no commits, nothing shared with the worker).")
    p.add_argument("--port", type=int, help="HTTP port (default SHIPGUARD_DASHBOARD_PORT or 8080; 0: any free port)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 in a container, with a token)")
    p.add_argument("--hours", type=_hours, default=DEFAULT_HOURS,
                   help="read and count the records of the last H hours (default 24)")
    p.add_argument("--token", help="require this token (default SHIPGUARD_DASHBOARD_TOKEN, better: a flag shows "
                                   "in `ps`; none: no auth)")
    p.add_argument("--broker", help="bootstrap URL (default SHIPGUARD_BROKER)")
    p.add_argument("--clock", choices=("wall", "event"),
                   help="wall: time left by the wall clock; event: by the latest event time read "
                        "(replays). Default SHIPGUARD_CLOCK or wall")
    p.set_defaults(func=cmd_dashboard)


def cmd_dashboard(args: argparse.Namespace) -> int:
    """`shipguard dashboard`: returns an exit code (2 for a bad setting or a taken port)."""
    from streams.config import ConfigError, load_settings
    from streams.kafka.security import aiokafka_kwargs

    try:
        settings = load_settings(broker=args.broker, clock=args.clock)
        env_token, env_port = dashboard_env()
        client_kwargs = aiokafka_kwargs(settings)
    except ConfigError as exc:
        print(f"shipguard dashboard: {exc}", file=sys.stderr)
        return 2
    level = logging.WARNING if settings.log_level in ("warning", "warn") else getattr(
        logging, settings.log_level.upper(), logging.INFO)
    log.setLevel(level)
    port = env_port if args.port is None else args.port
    token = args.token or env_token
    return asyncio.run(serve(settings.bootstrap_servers, args.host, port, args.hours, token, settings.clock,
                             settings.app_id, client_kwargs))
