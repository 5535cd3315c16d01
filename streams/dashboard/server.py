"""The dashboard's web server: the page, its assets, server-sent events and the JSON snapshot.

`/` the page, `/static/*` its assets (package data, no CDN, no build step), `/events`
server-sent events (`state` on connect and about once a second while things change, `feed`
with the new records), `/api/state` the same snapshot as JSON, `/healthz`. With a token
(`--token` or SHIPGUARD_DASHBOARD_TOKEN), `/`, `/events` and `/api/state` need
`Authorization: Bearer TOKEN` or `?token=TOKEN` (compared in constant time); `/static/*` and
`/healthz` carry no data and stay open. Each browser gets a bounded queue and is dropped when
it falls behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streams.dashboard.reader import OutputReader, sleep_unless_stopped
from streams.dashboard.state import DashboardState

if TYPE_CHECKING:  # the server's imports are paid only by `shipguard dashboard` itself
    from aiohttp import web

log = logging.getLogger("shipguard.dashboard")

STATIC_DIR = Path(__file__).resolve().parent / "static"
DEFAULT_PORT = 8080
#: Read by `dashboard_env`; to move into streams/config.py (ENV_VARS and Settings).
DASHBOARD_ENV_VARS = ("SHIPGUARD_DASHBOARD_TOKEN", "SHIPGUARD_DASHBOARD_PORT")


def dashboard_env(env: Mapping[str, str] | None = None) -> tuple[str | None, int]:
    """(token, port) from SHIPGUARD_DASHBOARD_TOKEN and SHIPGUARD_DASHBOARD_PORT (default 8080)."""
    from streams.config import ConfigError

    env = os.environ if env is None else env
    token = (env.get("SHIPGUARD_DASHBOARD_TOKEN") or "").strip() or None
    raw = (env.get("SHIPGUARD_DASHBOARD_PORT") or "").strip()
    if not raw:
        return token, DEFAULT_PORT
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise ConfigError(f"SHIPGUARD_DASHBOARD_PORT={raw!r}: expected a port 1..65535")
    return token, int(raw)


# -- browsers on /events -----------------------------------------------------------------------


class Hub:
    """The browsers listening on /events: one bounded queue each; one that falls behind is dropped."""

    def __init__(self, max_clients: int = 100, queue_size: int = 64) -> None:
        self.max_clients = max_clients
        self.queue_size = queue_size
        self.clients: set[asyncio.Queue] = set()
        self.dropped_slow = 0

    def join(self) -> asyncio.Queue | None:
        """A queue for a new browser, or None when there are too many."""
        if len(self.clients) >= self.max_clients:
            return None
        queue: asyncio.Queue = asyncio.Queue(self.queue_size)
        self.clients.add(queue)
        return queue

    def leave(self, queue: asyncio.Queue) -> None:
        """Forget a browser that went away."""
        self.clients.discard(queue)

    def send(self, message: bytes | None) -> None:
        """Queue `message` for every browser (None ends their streams)."""
        for queue in list(self.clients):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:  # too slow: drop it, its EventSource reconnects and resyncs
                self.dropped_slow += 1
                self.clients.discard(queue)
                log.warning("dashboard dropped a slow client queued=%d dropped_total=%d", queue.qsize(),
                            self.dropped_slow)
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(None)


def sse(event: str, data: Any) -> bytes:
    """One server-sent event (orjson writes no newline, so one data line)."""
    from schemas import codec

    return b"event: " + event.encode() + b"\ndata: " + codec.dumps(data) + b"\n\n"


# -- the web server ----------------------------------------------------------------------------


@dataclass
class Dashboard:
    """The state, the reader and the browsers of one `shipguard dashboard` process."""

    state: DashboardState
    token: str | None = None
    hub: Hub = field(default_factory=Hub)
    reader: OutputReader | None = None
    pending: deque = field(default_factory=lambda: deque(maxlen=200))
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def on_item(self, item: dict[str, Any]) -> None:
        """Keep a new feed item for the next broadcast, while any browser listens."""
        if self.hub.clients:
            self.pending.append(item)

    def snapshot(self, feed: bool = True) -> dict[str, Any]:
        """The state's snapshot at the wall clock, with the reader's status."""
        data = self.state.snapshot(self.now(), feed=feed)
        data["status"] = self.reader.status if self.reader else "idle"
        return data

    def authorized(self, request: web.Request) -> bool:
        """No token configured, or the request carries it (header or query), compared in constant time."""
        if not self.token:
            return True
        header = request.headers.get("Authorization", "")
        given = header[7:].strip() if header[:7].lower() == "bearer " else request.query.get("token", "")
        # Digests first: equal lengths, so the comparison's time tells nothing, not even the length.
        return hmac.compare_digest(hashlib.sha256(given.encode("utf-8")).digest(),
                                   hashlib.sha256(self.token.encode("utf-8")).digest())

    async def broadcast(self, stop: asyncio.Event, every: float = 0.5, refresh: float = 5.0) -> None:
        """Send new feed items every `every` s, and the state when it changed (at least every `refresh` s)."""
        sent_version, sent_at = -1, 0.0
        while not stop.is_set():
            await sleep_unless_stopped(stop, every)
            if not self.hub.clients:
                self.pending.clear()
                continue
            if self.pending:
                items = list(self.pending)
                self.pending.clear()
                self.hub.send(sse("feed", items))
            clock = time.monotonic()
            if self.state.version != sent_version or clock - sent_at >= refresh:
                sent_version, sent_at = self.state.version, clock
                self.hub.send(sse("state", self.snapshot(feed=False)))
        self.hub.send(None)

    def app(self) -> web.Application:
        """The aiohttp application: routes and the auth check."""
        from aiohttp import web

        @web.middleware
        async def auth(request: web.Request, handler: Callable) -> web.StreamResponse:
            resource = request.match_info.route.resource  # decided by what will answer, not by the path text
            if (resource is not None and resource.name in PUBLIC_RESOURCES) or self.authorized(request):
                return await handler(request)
            log.warning("dashboard unauthorized path=%s", request.path)
            return web.Response(status=401, text="401 Unauthorized: this dashboard needs its token, as "
                                "`Authorization: Bearer TOKEN` or `?token=TOKEN`.\n",
                                headers={"WWW-Authenticate": 'Bearer realm="shipguard dashboard"'})

        async def index(request: web.Request) -> web.StreamResponse:
            return web.FileResponse(STATIC_DIR / "index.html", headers=_NO_STORE)

        async def state(request: web.Request) -> web.Response:
            return web.json_response(self.snapshot(), dumps=_json_text, headers=_NO_STORE)

        async def healthz(request: web.Request) -> web.Response:
            status = self.reader.status if self.reader else "idle"
            return web.json_response({"status": "ok", "reader": status, "records": self.state.records})

        async def events(request: web.Request) -> web.StreamResponse:
            queue = self.hub.join()
            if queue is None:
                return web.Response(status=503, text="too many dashboard clients\n", headers={"Retry-After": "10"})
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                                   "X-Accel-Buffering": "no"})
            log.info("dashboard client connected clients=%d", len(self.hub.clients))
            try:
                await response.prepare(request)
                await response.write(b"retry: 3000\n\n" + sse("state", self.snapshot()))
                while True:
                    message = await queue.get()
                    if message is None:
                        break
                    await response.write(message)
            except ConnectionResetError:  # the browser went away
                pass
            finally:
                self.hub.leave(queue)
                log.info("dashboard client left clients=%d", len(self.hub.clients))
            return response

        app = web.Application(middlewares=[auth])
        app.router.add_get("/", index)
        app.router.add_get("/api/state", state)
        app.router.add_get("/events", events)
        app.router.add_get("/healthz", healthz, name="healthz")
        app.router.add_static("/static/", STATIC_DIR, show_index=False, name="static")
        return app


_NO_STORE = {"Cache-Control": "no-store"}
PUBLIC_RESOURCES = ("static", "healthz")  # no data: the page's code and a liveness answer


def _json_text(data: Any) -> str:
    from schemas import codec

    return codec.dumps(data).decode("utf-8")


async def serve(bootstrap: list[str], host: str, port: int, hours: float, token: str | None,
                clock: str, app_id: str, client_kwargs: dict[str, Any] | None = None) -> int:
    """Run the reader and the web server until SIGINT or SIGTERM; returns an exit code."""
    from aiohttp import web

    window = timedelta(hours=hours)
    started = datetime.now(UTC)
    dashboard = Dashboard(DashboardState(window, clock=clock), token=token)
    dashboard.reader = OutputReader(bootstrap, f"{app_id}-dashboard", started - window, dashboard.state,
                                    dashboard.on_item, client_kwargs)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(dashboard.app(), access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(f"shipguard dashboard: cannot listen on {host}:{port}: {exc.strerror or exc}. "
              f"Pick another port with --port.", file=sys.stderr)
        return 2
    bound = runner.addresses[0][1] if runner.addresses else port  # the port the OS gave for --port 0
    log.info("dashboard listening url=http://%s:%d/ auth=%s hours=%g clock=%s broker=%s", host, bound,
             "token" if token else "none", hours, clock, ",".join(bootstrap))
    if not token and host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("dashboard has no token and listens on %s: anyone who reaches the port sees it; "
                    "set SHIPGUARD_DASHBOARD_TOKEN", host)
    tasks = [asyncio.create_task(dashboard.reader.run(stop)), asyncio.create_task(dashboard.broadcast(stop))]
    try:
        await stop.wait()
    finally:
        stop.set()
        dashboard.hub.send(None)
        await asyncio.wait(tasks, timeout=5)
        for task in tasks:
            task.cancel()
        await runner.cleanup()
        log.info("dashboard stopped records=%d", dashboard.state.records)
    return 0
