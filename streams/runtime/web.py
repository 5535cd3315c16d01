"""The worker's HTTP views on Faust's web server (SHIPGUARD_WEB_HOST:SHIPGUARD_WEB_PORT, 127.0.0.1:6066):

| path | answers |
|---|---|
| `GET /metrics` | Prometheus text: consumed, outputs, dead letters, late, duplicates, latency, state, timers, lag |
| `GET /health` | 200 `{"status": "ok", ...}` once tables are recovered, else 503 `{"status": "recovering"}` |
| `GET /order/{order_id}` | one order's state and timeline (`shipguard order`); 404 names the partition it would be in |

Faust starts its web server before table recovery, so `/health` answers 503 while the worker
recovers. A view runs on the worker's event loop between batches: it reads the shell's state
and counters and never changes them. The pure parts (`order_view`, `take_snapshot`) are
testable without Faust. The recipient's hash is left out of `/order`: the masked forms and the
region are enough to read an order, and a hash of a small space (phone numbers) is guessable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from schemas.state import OrderState
from schemas.types import format_time
from streams import topics as T
from streams.kafka.overrides import RocksDBTableData
from streams.topics import partition_for
from streams.worker.metrics import CONTENT_TYPE, Snapshot, consumer_lag, render

log = logging.getLogger("shipguard")

# the order of entries that share an instant: inputs first, then what they caused; emitted
# stages keep the order in which they were emitted (the sort is stable)
_KIND_ORDER = {"PAID": 0, "UPLOAD": 1, "OTHER_ORDER_UPLOAD": 2, "SCAN": 3, "CANCELLATION_REQUESTED": 4,
               "CANCELLED": 5, "WARNING": 6, "VIOLATION": 6, "RESOLVED": 6, "CLOSED": 7}


def install_web(app: Any, shell: Any, is_ready: Callable[[], bool]) -> None:
    """Register /metrics, /health and /order/{order_id} on the Faust app's web server."""

    def highwater(tp: tuple[str, int]) -> int | None:
        # Faust's consumer keeps the high-water mark of each fetch response; None before the
        # first fetch of a partition, or while the consumer is (re)starting
        from faust.types import TP

        try:
            return app.consumer.highwater(TP(*tp))
        except Exception:  # noqa: BLE001 - not assigned any more, consumer not started
            return None

    @app.page("/metrics", name="shipguard.metrics")
    async def metrics(view: Any, request: Any) -> Any:
        text = render(take_snapshot(shell, is_ready(), highwater))
        return view.bytes(text.encode("utf-8"), headers={"Content-Type": CONTENT_TYPE})

    @app.page("/health", name="shipguard.health")
    async def health(view: Any, request: Any) -> Any:
        if not is_ready():
            return view.json({"status": "recovering"}, status=503)
        return view.json({"status": "ok", "clock": shell.clock_mode,
                          "assigned_partitions": len(_held_partitions(shell)), "partitions": shell.partitions,
                          "orders": state_count(shell.stores.orders), "waybills": state_count(shell.stores.waybills)})

    @app.page("/order/{order_id:.+}", name="shipguard.order")
    async def order(view: Any, request: Any, order_id: str) -> Any:
        if not is_ready():
            return view.json({"status": "recovering",
                              "error": "the worker is still recovering its tables; ask again in a few seconds"},
                             status=503)
        partition = partition_for(order_id.encode("utf-8"), shell.partitions)
        held = _held_partitions(shell)
        state = shell.stores.orders.get(order_id)
        if state is None:
            return view.json(not_held(order_id, partition, shell.partitions, held), status=404)
        # the partition the shell stamped is where it lives, whatever partitioner its producer used
        return view.json(order_view(state, state.partition if state.partition >= 0 else partition, shell.partitions))


def _held_partitions(shell: Any) -> list[int]:
    """The partitions this worker holds (every topic is co-partitioned: those of order-paid)."""
    return sorted(shell.owned_partitions())


def take_snapshot(shell: Any, ready: bool, highwater: Callable[[tuple[str, int]], int | None]) -> Snapshot:
    """Copy the shell's counters and sizes; lag from its end offsets (event clock) or `highwater`."""
    metrics = shell.metrics
    time = shell.time
    external = [(tp[0], tp[1]) for tp in shell.broker.assigned() if tp[0] in time.external]
    if shell.clock_mode == "event" and time.ends:
        # refreshed from the broker on every tick (0.2 s) for the event clock
        ends: dict[tuple[str, int], int | None] = dict(time.ends)
    else:
        ends = {tp: highwater(tp) for tp in external}
    latency = getattr(metrics, "latency", None)
    return Snapshot(
        consumed=dict(metrics.consumed), outputs=dict(metrics.outputs), dead_letters=metrics.dead_letters,
        late_events=metrics.late_events, duplicates=metrics.duplicates,
        offset_gaps=metrics.offset_gaps, replayed=metrics.replayed, refetched=metrics.refetched,
        deferred=metrics.deferred, forwarded=dict(metrics.forwarded),
        latency=latency.copy() if latency is not None else None,
        open_orders=state_count(shell.stores.orders), open_waybills=state_count(shell.stores.waybills),
        pending_deadlines=shell.pending_deadlines(),
        lag=consumer_lag(external, ends, dict(time.processed), shell.reading.first_offset, T.INPUT_TOPICS),
        ready=ready)


def state_count(store: Any) -> int:
    """Keys in a state store. RocksDB: its own estimate, since Faust's len() reads every key of
    every partition's database (seconds for a million orders, on the worker's event loop)."""
    data = getattr(store, "data", None)
    if isinstance(data, RocksDBTableData):
        try:
            return data.estimate_keys()
        except Exception:  # noqa: BLE001 - another RocksDB binding, or no assignment yet
            log.debug("no RocksDB key estimate; counting keys", exc_info=True)
    return len(store)


def not_held(order_id: str, partition: int, partitions: int, held: Iterable[int]) -> dict[str, Any]:
    """The 404 body: which partition the order would be in, and whether this worker holds it."""
    held = list(held)
    if partition in held:
        error = (f"order {order_id!r} is not in this worker's state, although it holds its partition "
                 f"{partition}: no order-paid or other event of it was read, or it closed and its "
                 f"state was deleted")
    else:
        error = (f"order {order_id!r} would be in partition {partition} of {partitions} (Kafka's default "
                 f"partitioner of its key), which this worker does not hold (it holds {_ranges(held) or 'none'}): "
                 f"ask the worker that holds it")
    return {"error": error, "order_id": order_id, "partition": partition, "partitions": partitions,
            "held_partitions": held}


def _ranges(numbers: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    runs: list[tuple[int, int]] = []
    for n in sorted(numbers):
        if runs and runs[-1][1] == n - 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in runs)


def order_view(state: OrderState, partition: int, partitions: int) -> dict[str, Any]:
    """What /order answers: status, wake_at, the stored state (no recipient hash) and a timeline."""
    data = state.model_dump(mode="json")
    if data.get("facts"):
        data["facts"].pop("recipient_hash", None)
    if state.cancelled_at is not None:
        status = "cancelled"
    elif state.closed:
        status = "closed"
    else:
        status = "open"
    return {
        "order_id": state.order_id,
        "partition": partition,
        "partitions": partitions,
        "status": status,
        "wake_at": format_time(state.wake_at) if state.wake_at else None,
        "state": data,
        "timeline": timeline(state),
    }


def timeline(state: OrderState) -> list[dict[str, str]]:
    """The order's events and emitted stages by time: `{at, event, detail}` each."""
    entries: list[tuple[datetime, str, str]] = []
    facts = state.facts
    if facts is not None:
        notes = [f"{facts.platform} {facts.amount} {facts.currency}", f"ship by {format_time(facts.ship_by)}",
                 facts.delivery_mode]
        if facts.presale:
            notes.append("presale")
        if facts.stop_remark:
            notes.append("buyer remark asks not to ship by courier")
        notes.append(f"to {facts.province} {facts.city}")
        entries.append((facts.paid_at, "PAID", ", ".join(notes)))
    for upload in state.uploads:
        detail = f"{upload.carrier} {upload.waybill_no or '(no number)'}"
        if not upload.valid:
            detail += " (fails the carrier's number format)"
        entries.append((upload.uploaded_at, "UPLOAD", detail))
    for other in state.others:
        same = "same" if other.same_recipient else "another"
        entries.append((other.uploaded_at, "OTHER_ORDER_UPLOAD",
                        f"order {other.order_id} uploaded {other.carrier} {other.waybill_no} too ({same} recipient)"))
    for scan in state.scans:
        where = " ".join(p for p in (scan.province, scan.city) if p)
        entries.append((scan.scan_at, "SCAN", f"{scan.status} {where} ({scan.carrier} {scan.waybill_no})"))
    for request in state.requests:
        detail = f"{request.reason}" + (f": {request.detail}" if request.detail else "")
        entries.append((request.requested_at, "CANCELLATION_REQUESTED", detail + " (not decided yet)"))
    if state.cancelled_at is not None:
        entries.append((state.cancelled_at, "CANCELLED", "a cancellation was approved"))
    if state.closed and state.last_activity is not None:
        entries.append((state.last_activity, "CLOSED", "last activity; every rule has settled since, so the "
                                                       "order's history was dropped and only a marker is kept"))
    for emitted in state.emitted:
        detail = f"{emitted.rule} {emitted.warning_id}"
        if emitted.waybill_no:
            detail += f" ({emitted.waybill_no})"
        entries.append((emitted.occurred_at, emitted.stage, detail))
    entries.sort(key=lambda e: (e[0], _KIND_ORDER.get(e[1], 99)))
    return [{"at": format_time(at), "event": kind, "detail": detail} for at, kind, detail in entries]
