"""`shipguard order`: one order's state and timeline, asked of a running worker's web view.

A thin shell around pure functions (render the worker's answer), so the unit tests run it
without a worker: the HTTP call is made in `fetch_order` and can be passed in.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any, TextIO

from streams.cli.subcommand import add_subcommand


def add_order_parser(sub: Any) -> None:
    """Add the `order` subcommand to the `shipguard` parser."""
    p = add_subcommand(
        sub, "order", help="show one order's state and timeline from a running worker",
        description="Ask a worker's web view (/order/ORDER_ID) for the order's stored state and print its "
                    "status, next deadline and timeline. Only the worker that holds the order's partition "
                    "knows it; the answer says which partition that is.",
        epilog="examples:\n"
               "  shipguard order 570001\n"
               "  shipguard order 570001 --url http://10.0.0.7:6066 --json\n")
    p.add_argument("order_id", metavar="ORDER_ID")
    p.add_argument("--url", help="the worker's web address (default http://127.0.0.1:SHIPGUARD_WEB_PORT, "
                                 "port 6066)")
    p.add_argument("--json", action="store_true", help="print the worker's JSON answer as it is")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the worker (default 5)")
    p.set_defaults(func=cmd_order)


class WorkerUnreachable(ConnectionError):
    """No worker answered at the web URL."""


def fetch_order(url: str, order_id: str, timeout: float = 5.0) -> tuple[int, dict]:
    """(HTTP status, JSON body) of GET {url}/order/{order_id}."""
    target = f"{url.rstrip('/')}/order/{urllib.parse.quote(order_id, safe='')}"
    try:
        with urllib.request.urlopen(target, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body)
        except ValueError:
            return exc.code, {"error": body.decode("utf-8", "replace")[:200] or exc.reason}
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise WorkerUnreachable(f"no worker answered at {url}: {reason}") from None


def format_order(view: dict) -> str:
    """A readable page of one order from the worker's /order answer."""
    state = view.get("state") or {}
    facts = state.get("facts") or {}
    rows = [f"order {view.get('order_id')}  ({view.get('status')}; partition {view.get('partition')} "
            f"of {view.get('partitions')})"]
    if facts:
        rows.append(f"  shop      {facts.get('shop_id')} on {facts.get('platform')}, "
                    f"{facts.get('delivery_mode')}{', presale' if facts.get('presale') else ''}")
        rows.append(f"  paid      {facts.get('paid_at')}  {facts.get('amount')} {facts.get('currency')}")
        rows.append(f"  ship by   {facts.get('ship_by')}")
        rows.append(f"  recipient {facts.get('masked_name')} {facts.get('masked_phone')}, "
                    f"{facts.get('province')} {facts.get('city')}")
    elif view.get("status") == "closed":
        rows.append(f"  closed    every rule on it has settled, so its history was dropped; a marker stays "
                    f"until {view.get('wake_at') or '-'} (retention) so that late or repeated events change nothing")
    else:
        rows.append("  (no order-paid read yet: only later events of this order are known)")
    uploads = state.get("uploads") or []
    if uploads:
        current = max(uploads, key=lambda u: u.get("uploaded_at") or "")
        rows.append(f"  waybill   {current.get('carrier')} {current.get('waybill_no') or '-'}"
                    f"{'' if current.get('valid', True) else ' (invalid format)'}")
    if state.get("cancelled_at"):
        rows.append(f"  cancelled {state['cancelled_at']}")
    if view.get("status") != "closed":
        rows.append(f"  next wake {view.get('wake_at') or '-'}")
    open_rules = _open_warnings(state.get("emitted") or [])
    if open_rules:
        rows.append(f"  open      {', '.join(open_rules)}")
    rows.append("timeline")
    timeline = view.get("timeline") or []
    width = max((len(e.get("event", "")) for e in timeline), default=0)
    for entry in timeline:
        rows.append(f"  {entry.get('at')}  {entry.get('event', ''):<{width}}  {entry.get('detail', '')}".rstrip())
    if not timeline:
        rows.append("  (nothing yet)")
    return "\n".join(rows)


def _open_warnings(emitted: list[dict]) -> list[str]:
    """Rules whose latest stage is a WARNING (neither VIOLATION nor RESOLVED yet)."""
    last: dict[str, dict] = {}
    for item in sorted(emitted, key=lambda e: e.get("occurred_at") or ""):
        last[item.get("warning_id", "")] = item
    return sorted(f"{e.get('rule')} (since {e.get('occurred_at')})" for e in last.values()
                  if e.get("stage") == "WARNING")


def cmd_order(args: argparse.Namespace, fetch: Callable[..., tuple[int, dict]] = fetch_order,
              out: TextIO | None = None) -> int:
    """`shipguard order`: returns an exit code."""
    out = out or sys.stdout
    url = args.url
    if not url:
        from streams.config import ConfigError, load_settings

        try:
            url = f"http://127.0.0.1:{load_settings().web_port}"
        except ConfigError as exc:
            print(f"shipguard order: {exc}", file=sys.stderr)
            return 2
    try:
        status, body = fetch(url, args.order_id, timeout=args.timeout)
    except WorkerUnreachable as exc:
        print(f"shipguard order: {exc}. Is `shipguard worker` running, and is its web port "
              f"SHIPGUARD_WEB_PORT (default 6066)? Give another with --url.", file=sys.stderr)
        return 1
    if status == 200:
        print(json.dumps(body, ensure_ascii=False, indent=2) if args.json else format_order(body), file=out)
        return 0
    if status == 503:
        print(f"shipguard order: the worker at {url} is still recovering its tables; try again in a few seconds",
              file=sys.stderr)
        return 1
    if status == 404 and "order_id" in body:
        print(f"shipguard order: {body.get('error')}", file=sys.stderr)
        return 1
    print(f"shipguard order: the worker at {url} answered {status}: {body.get('error') or body} "
          f"(is this a shipguard worker?)", file=sys.stderr)
    return 1
