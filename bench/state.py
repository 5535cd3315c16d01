"""State cost: bytes per open order, worker RSS against open orders, ready time with 1M open orders.

`python -m bench.state [--sizes 10000,100000] [--stores memory,rocksdb] [--json out.json]` starts
its own embedded broker and prints a table; `measure(broker, workdir, ...)` returns the same
numbers as a JSON-serialisable dict (bench.run calls it with a running broker).

What it does, in order:

1. **Realistic states** (`realistic`): a `shipguard simulate` stream (3,000 orders over 3 days)
   goes through the worker's logic in process (`streams.inprocess.engine`) up to 2/3 of the payment
   period, so that the `orders` table holds orders in every phase (paid, uploaded, scanned,
   warned). Each state is encoded as the changelog carries it (`StateCodec`): bytes per open
   order (mean, p50, p95, max), which fields dominate, waybill states, closed markers, and the
   in-memory (decoded pydantic) size of a state measured with tracemalloc.
2. **Completed orders stay flat** (`completed`): the same stream continues to its end: stored
   keys per table before and after the closing clock tick (31 days after the last event).
3. **Worker RSS and ready time** (`workers`): per size N (plus an empty baseline), a fresh app id
   gets N open order states (clones of the realistic ones, with unique order ids on their
   murmur2 partition) on `<app>-orders-changelog`; a real worker (`SHIPGUARD_STORE` memory or
   rocksdb) recovers them: ready time, orders in its ready line, RSS after ready (VmRSS) and
   peak (VmHWM). RocksDB is started twice on the same data dir (the restart reads its local
   store, not the whole changelog). Then the app's topics are deleted (Tansu keeps ~270
   bytes per stored message until then). The slope of RSS against N is the memory per open order.
4. **Closed markers in a worker** (`closed`): the same with N closed markers instead.

Caution with a shared broker: the worker reads the contract's input topics (shared by every app
id on the broker) from the beginning, so run this on a broker whose input topics are empty.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

TARGET_BYTES_PER_OPEN_ORDER = 2048
PARTITIONS = 8
TABLES = ("orders", "waybills", "shops")
READY_RE = re.compile(r"shipguard worker ready: .*?orders=(\d+) waybills=(\d+)")
LOG_TIME_RE = re.compile(r"ts=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ")


# ---------------------------------------------------------------------------------------------
# 1 + 2: realistic states in process, and what happens to completed orders


def _stats(values: Sequence[int]) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    return {"count": len(ordered), "mean": round(statistics.fmean(ordered), 1),
            "p50": ordered[len(ordered) // 2], "p95": ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))],
            "max": ordered[-1], "total": sum(ordered)}


def _phase(state: Any) -> str:
    phase = "paid" if not state.uploads else ("uploaded" if not state.scans else "scanned")
    if state.facts is None:
        phase = "no-facts"  # a request or upload before its order-paid
    if any(e.stage == "WARNING" for e in state.emitted):
        phase += "+warned"
    if state.cancelled_at is not None:
        phase += "+cancelled"
    return phase


def _field_shares(encoded: list[bytes]) -> list[dict[str, Any]]:
    """Mean bytes per top-level field (key, value, quotes, comma) of the encoded states."""
    totals: Counter = Counter()
    for raw in encoded:
        for name, value in orjson.loads(raw).items():
            totals[name] += len(name) + 4 + len(orjson.dumps(value))
    whole = sum(len(raw) for raw in encoded)
    return [{"field": name, "mean_bytes": round(total / len(encoded), 1), "share": round(total / whole, 3)}
            for name, total in totals.most_common()]


def _python_bytes(encoded: list[bytes], codec: Any, repeat: int = 3) -> float:
    """Bytes of Python heap per decoded state (tracemalloc), as a memory store holds it."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [codec.loads(raw) for _ in range(repeat) for raw in encoded]
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return (after - before) / len(kept)


def _table_counts(engine: Any) -> dict[str, int]:
    return {"orders_open": sum(1 for s in engine.orders.values() if not s.closed),
            "orders_closed": sum(1 for s in engine.orders.values() if s.closed),
            "waybills": len(engine.waybills), "shops": len(engine.shops)}


def realistic(workdir: Path, orders: int = 3000, days: int = 3, seed: int = 5) -> dict[str, Any]:
    """Steps 1 and 2. Returns the report plus (under "_templates") encoded open and closed states."""
    from processors import order as order_rules
    from processors.order import Context
    from schemas.state import OrderState, WaybillState
    from schemas.types import parse_time
    from simulator import output
    from simulator.generator import SimulationConfig, generate
    from streams.cli.replay import parse_line
    from streams.inprocess.engine import InProcessEngine
    from streams.rules_file import load_rules
    from streams.runtime.serde import StateCodec

    config = SimulationConfig(orders=orders, days=days, seed=seed)
    events = workdir / f"state-events-{orders}-{days}-{seed}.jsonl"
    events.write_bytes(output.render_events(generate(config)))
    lines = events.read_text(encoding="utf-8").splitlines()
    cut = config.start + timedelta(days=days * 2 / 3)
    rules = load_rules()
    engine = InProcessEngine(rules)
    order_codec, waybill_codec = StateCodec(OrderState), StateCodec(WaybillState)

    async def publish(numbered: list[tuple[int, str]]) -> None:
        for number, line in numbered:
            await engine.publish_messages(parse_line(number, line, PARTITIONS))

    numbered = list(enumerate(lines, start=1))
    split = next(i for i, (_, line) in enumerate(numbered) if parse_time(orjson.loads(line)["at"]) > cut)
    began = time.perf_counter()
    asyncio.run(publish(numbered[:split]))
    cut_seconds = time.perf_counter() - began

    open_states = [s for s in engine.orders.values() if not s.closed]
    open_encoded = [order_codec.dumps(s) for s in open_states]
    closed_encoded = [order_codec.dumps(s) for s in engine.orders.values() if s.closed]
    waybill_encoded = [waybill_codec.dumps(s) for s in engine.waybills.values()]
    order_bytes = [len(b) for b in open_encoded]
    both = sum(order_bytes) + sum(len(b) for b in waybill_encoded)
    counts = Counter(_phase(s) for s in open_states)
    by_phase = {phase: _stats([len(order_codec.dumps(s)) for s in open_states if _phase(s) == phase])
                for phase in sorted(counts)}
    items = {name: round(statistics.fmean(len(getattr(s, name)) for s in open_states), 2)
             for name in ("seen", "uploads", "scans", "emitted", "others", "forwarded", "requests")}
    python_bytes = _python_bytes(open_encoded, order_codec)
    waybill_python = _python_bytes(waybill_encoded, waybill_codec) if waybill_encoded else 0.0
    decoded = [order_codec.loads(b) for b in open_encoded]
    t0 = time.perf_counter()
    for raw in open_encoded:
        order_codec.loads(raw)
    decode_us = (time.perf_counter() - t0) / len(open_encoded) * 1e6
    ctx = Context(rules=rules, salt="bench")
    t0 = time.perf_counter()
    for state in decoded:
        order_rules.next_deadline(state, ctx)
    deadline_us = (time.perf_counter() - t0) / len(decoded) * 1e6

    at_cut = _table_counts(engine)
    began = time.perf_counter()
    asyncio.run(publish(numbered[split:-1]))
    before_tick = _table_counts(engine)
    closed_final = [order_codec.dumps(s) for s in engine.orders.values() if s.closed]
    closed_markers = [len(b) for b in closed_final]
    done_waybills = [len(waybill_codec.dumps(s)) for s in engine.waybills.values()]
    asyncio.run(publish(numbered[-1:]))
    rest_seconds = time.perf_counter() - began
    after_tick = _table_counts(engine)
    last_tick = orjson.loads(lines[-1])["at"]

    report = {
        "stream": {"orders": orders, "days": days, "seed": seed, "messages": len(lines),
                   "cut_at": cut.isoformat(), "messages_before_cut": split,
                   "in_process_seconds": round(cut_seconds + rest_seconds, 1)},
        "at_cut": at_cut,
        "open_order_bytes": _stats(order_bytes),
        "open_order_bytes_by_phase": by_phase,
        "open_order_phases": dict(counts),
        "open_order_mean_items": items,
        "open_order_fields": _field_shares(open_encoded),
        "waybill_bytes": _stats([len(b) for b in waybill_encoded]),
        "waybill_fields": _field_shares(waybill_encoded) if waybill_encoded else [],
        "orders_plus_waybills_bytes_per_open_order": round(both / len(open_encoded), 1),
        "closed_marker_bytes_at_cut": _stats([len(b) for b in closed_encoded]),
        "closed_marker_fields": _field_shares(closed_encoded) if closed_encoded else [],
        "python_bytes_per_open_order_state": round(python_bytes),
        "python_bytes_per_waybill_state": round(waybill_python),
        "python_over_serialized": round(python_bytes / statistics.fmean(order_bytes), 2),
        "decode_us_per_state": round(decode_us, 1),
        "next_deadline_us_per_state": round(deadline_us, 1),
        "completed": {
            "before_final_tick": before_tick,
            "after_final_tick": after_tick,
            "final_tick_at": last_tick,
            "closed_marker_bytes": _stats(closed_markers),
            "waybill_bytes_before_final_tick": _stats(done_waybills),
        },
        "_templates": {"open": open_encoded, "closed": closed_final or closed_encoded},
    }
    return report


# ---------------------------------------------------------------------------------------------
# 3 + 4: a real worker over N stored states


def _bootstrap(broker: Any) -> list[str]:
    return [broker.bootstrap]


def _admin(broker: Any) -> Any:
    from kafka import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=_bootstrap(broker), client_id="shipguard-bench-state")


def _create_topics(broker: Any, app_id: str) -> None:
    from streams.config import load_settings
    from streams.kafka import compat
    from streams.kafka.admin import ensure_topics

    settings = load_settings({"SHIPGUARD_BROKER": broker.url, "SHIPGUARD_APP_ID": app_id,
                              "SHIPGUARD_PARTITIONS": str(PARTITIONS)})
    compat.create_topics_up_front(settings)
    ensure_topics(settings.bootstrap_servers, [f"{app_id}-{t}-changelog" for t in TABLES], PARTITIONS)


def _delete_topics(broker: Any, app_id: str) -> list[str]:
    """Delete every topic of this app id (its changelogs, feeds, Faust's leader topic)."""
    admin = _admin(broker)
    try:
        names = [t for t in admin.list_topics() if t.startswith(f"{app_id}-")]
        if names:
            admin.delete_topics(names, timeout_ms=30000)
        return names
    finally:
        admin.close()


def _clones(templates: list[bytes], count: int, prefix: str) -> Any:
    """(partition, key, value) of `count` distinct orders cloned round-robin from `templates`."""
    from streams.topics import partition_for

    parsed = [orjson.loads(t) for t in templates]
    for i in range(count):
        data = dict(parsed[i % len(parsed)])
        order_id = f"{prefix}{i:012d}"
        key = order_id.encode("utf-8")
        partition = partition_for(key, PARTITIONS)
        data["order_id"], data["partition"] = order_id, partition
        yield partition, key, orjson.dumps(data)


async def _produce(broker: Any, topic: str, templates: list[bytes], count: int, prefix: str) -> dict[str, Any]:
    from aiokafka import AIOKafkaProducer

    from streams.kafka import compat

    producer = AIOKafkaProducer(bootstrap_servers=_bootstrap(broker), linger_ms=20, max_batch_size=512 * 1024,
                                max_request_size=4 * 1024 * 1024, client_id="shipguard-bench-state",
                                **compat.aiokafka_producer_settings(True))
    await producer.start()
    began, sent, size = time.perf_counter(), 0, 0
    try:
        pending = []
        for partition, key, value in _clones(templates, count, prefix):
            pending.append(await producer.send(topic, value=value, key=key, partition=partition))
            sent += 1
            size += len(value)
            if len(pending) >= 20000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
        await producer.flush()
    finally:
        await producer.stop()
    seconds = time.perf_counter() - began
    return {"records": sent, "value_bytes": size, "seconds": round(seconds, 2),
            "per_second": round(sent / seconds) if seconds > 0 else None}


def _memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process and its children, in bytes."""
    import psutil

    totals = {"rss": 0, "hwm": 0}
    try:
        procs = [psutil.Process(pid)] + psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return totals
    for proc in procs:
        try:
            with open(f"/proc/{proc.pid}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        totals["rss"] += int(line.split()[1]) * 1024
                    elif line.startswith("VmHWM:"):
                        totals["hwm"] += int(line.split()[1]) * 1024
        except FileNotFoundError:
            pass
    return totals


def _log_seconds(text: str, start_mark: str, end_mark: str) -> float | None:
    """Seconds between the first log lines holding each mark (the worker's own timestamps)."""
    from datetime import datetime

    def when(mark: str) -> datetime | None:
        for line in text.splitlines():
            if mark in line:
                found = LOG_TIME_RE.search(line)
                if found:
                    return datetime.strptime(found.group(1), "%Y-%m-%dT%H:%M:%S.%f")
        return None

    start, end = when(start_mark), when(end_mark)
    return round((end - start).total_seconds(), 2) if start and end else None


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def _run_worker(broker: Any, workdir: Path, app_id: str, store: str, data_dir: Path, expected: int,
                label: str, settle: float = 3.0) -> dict[str, Any]:
    """Start a worker, wait until ready, measure, stop it. Failures are reported, not raised."""
    from streams.cli.supervise import WorkerFailed, WorkerProcess
    from streams.kafka.embedded import free_port

    log_path = workdir / f"{app_id}-{store}-{label}.log"
    worker = WorkerProcess(broker.url, log_path, clock="event", app_id=app_id, web_port=free_port(),
                           data_dir=data_dir, extra_env={"SHIPGUARD_STORE": store, "SHIPGUARD_LOG_LEVEL": "info"})
    timeout = 120.0 + expected * 2e-3  # 1M states: 2,120 s
    result: dict[str, Any] = {"store": store, "run": label, "expected_orders": expected}
    try:
        worker.start(timeout=timeout)
        result["ready_seconds"] = round(worker.ready_after or 0.0, 2)
        text = worker.log_text()
        found = READY_RE.search(text)
        result["ready_orders"] = int(found.group(1)) if found else None
        result["ready_waybills"] = int(found.group(2)) if found else None
        result["starting_to_ready_seconds"] = _log_seconds(text, "shipguard worker starting", "shipguard worker ready")
        assert worker.process is not None
        result["rss_at_ready"] = _memory(worker.process.pid)["rss"]
        time.sleep(settle)
        memory = _memory(worker.process.pid)
        result["rss"], result["hwm"] = memory["rss"], memory["hwm"]
        if worker.process.poll() is not None:
            raise WorkerFailed(f"worker exited after ready with {worker.process.returncode}")
        result["ok"] = result["ready_orders"] == expected
        if not result["ok"]:
            result["error"] = f"ready line says orders={result['ready_orders']}, expected {expected}"
            result["log_tail"] = worker.log_tail(40)
    except Exception as exc:  # noqa: BLE001 - a failed run is a result
        result["ok"] = False
        result["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        result["log_tail"] = worker.log_tail(40)
    finally:
        worker.stop()
    result["data_dir_bytes"] = _dir_bytes(data_dir)
    return result


def _fit(points: list[tuple[int, float]], unit: float = 1.0) -> dict[str, Any]:
    """Least squares y = a + b*N over the points, the slope between consecutive sizes, and whether
    it is linear: the slopes of consecutive steps agree within 25% (steps from the empty baseline
    are left out of that comparison when there are two others: they carry one-off costs)."""
    points = sorted(points)
    if len(points) < 2:
        return {}
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
    a = my - b * mx
    steps = [{"from": x0, "to": x1, "per_order": round((y1 - y0) / (x1 - x0) * unit, 1)}
             for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False) if x1 > x0]
    compared = [st for st in steps if st["from"] > 0] if sum(st["from"] > 0 for st in steps) >= 2 else steps
    spread = (max(st["per_order"] for st in compared) / min(st["per_order"] for st in compared) - 1
              if len(compared) >= 2 and min(st["per_order"] for st in compared) > 0 else None)
    residual = max(abs(y - (a + b * x)) / y for x, y in points if y)
    return {"intercept": round(a, 2), "per_order": round(b * unit, 1), "steps": steps,
            "step_spread": round(spread, 3) if spread is not None else None,
            "linear": spread is not None and spread <= 0.25,
            "max_relative_residual": round(residual, 3), "points": points}


def _enough_memory(estimate: float) -> tuple[bool, int]:
    import psutil

    available = psutil.virtual_memory().available
    return estimate < 0.7 * available, available


def _broker_rss(broker: Any) -> int | None:
    pid = getattr(broker, "pid", None)
    return _memory(pid)["rss"] if pid else None


def _size_run(broker: Any, workdir: Path, size: int, templates: list[bytes], stores: Sequence[str],
              kind: str, slopes: dict[str, float], progress: Any) -> dict[str, Any]:
    """One fresh app id with `size` states of `kind`, one worker per store, then delete its topics."""
    app_id = f"sgbench-{kind}-{size}-{uuid.uuid4().hex[:6]}"
    entry: dict[str, Any] = {"size": size, "kind": kind, "app_id": app_id, "stores": {}}
    try:
        _create_topics(broker, app_id)
        if size:
            progress(f"{kind} {size:,}: producing to {app_id}-orders-changelog")
            entry["produce"] = asyncio.run(_produce(broker, f"{app_id}-orders-changelog", templates, size, "9"))
        entry["broker_rss_loaded"] = _broker_rss(broker)
        for store in stores:
            estimate = 400e6 + slopes.get(store, 9000.0) * size
            fits, available = _enough_memory(estimate)
            if not fits:
                entry["stores"][store] = {"store": store, "ok": False, "skipped": True,
                                          "error": f"estimated worker RSS {estimate / 1e9:.1f} GB > 70% of "
                                                   f"available {available / 1e9:.1f} GB"}
                progress(f"{kind} {size:,} {store}: skipped ({entry['stores'][store]['error']})")
                continue
            data_dir = workdir / f"{app_id}-{store}-data"
            progress(f"{kind} {size:,} {store}: starting worker")
            runs = [_run_worker(broker, workdir, app_id, store, data_dir, size, "first")]
            progress(f"  ready {runs[0].get('ready_seconds')} s, rss {runs[0].get('rss', 0) / 1e6:.0f} MB, "
                     f"{runs[0].get('error') or 'ok'}")
            if store == "rocksdb" and runs[0].get("ok"):
                progress(f"{kind} {size:,} {store}: restarting on the same data dir")
                runs.append(_run_worker(broker, workdir, app_id, store, data_dir, size, "restart"))
                progress(f"  ready {runs[1].get('ready_seconds')} s, rss {runs[1].get('rss', 0) / 1e6:.0f} MB, "
                         f"{runs[1].get('error') or 'ok'}")
            entry["stores"][store] = {"first": runs[0], **({"restart": runs[1]} if len(runs) > 1 else {})}
            shutil.rmtree(data_dir, ignore_errors=True)
    finally:
        started = time.perf_counter()
        try:
            entry["deleted_topics"] = len(_delete_topics(broker, app_id))
        except Exception as exc:  # noqa: BLE001 - a topic that will not go is recorded, not fatal
            entry["delete_error"] = f"{type(exc).__name__}: {exc}"
        entry["delete_seconds"] = round(time.perf_counter() - started, 2)
        time.sleep(1.0)
        entry["broker_rss_after_delete"] = _broker_rss(broker)
    return entry


def measure(broker: Any, workdir: Path, sizes: Sequence[int] = (10_000, 100_000, 1_000_000),
            stores: Sequence[str] = ("memory", "rocksdb"), closed_size: int | None = 100_000,
            progress: Any = None) -> dict[str, Any]:
    """Every measurement of this module against a started EmbeddedBroker; see the module docstring."""
    progress = progress or (lambda text: print(text, file=sys.stderr, flush=True))
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    progress("in process: realistic open orders and completed orders")
    states = realistic(workdir)
    templates = states.pop("_templates")
    result: dict[str, Any] = {"realistic": {k: v for k, v in states.items() if k != "completed"},
                              "completed": states["completed"], "workers": [], "closed": None}
    slopes: dict[str, float] = {}
    for size in sorted({0, *sizes}):
        entry = _size_run(broker, workdir, size, templates["open"], stores, "open", slopes, progress)
        result["workers"].append(entry)
        for store in stores:  # refresh the memory estimate for the next size
            fit = _fit(_points(result["workers"], store))
            if fit.get("per_order", 0) > 0:
                slopes[store] = fit["per_order"] * 1.3
    if closed_size:
        result["closed"] = _size_run(broker, workdir, closed_size, templates["closed"], stores[:1], "closed",
                                     slopes, progress)
    result["linearity"] = {store: _fit(_points(result["workers"], store)) for store in stores}
    result["linearity_hwm"] = {store: _fit(_points(result["workers"], store, "hwm")) for store in stores}
    result["ready_time"] = {f"{store}-{label}": _fit(_points(result["workers"], store, "ready_seconds", label), 1e6)
                            for store in stores for label in ("first", "restart")
                            if _points(result["workers"], store, "ready_seconds", label)}
    base = next((e for e in result["workers"] if e["size"] == 0), None)
    if result["closed"] and base:
        store = stores[0]
        closed_run = result["closed"]["stores"].get(store, {}).get("first", {})
        base_run = base["stores"].get(store, {}).get("first", {})
        if closed_run.get("ok") and base_run.get("ok"):
            result["closed"]["rss_bytes_per_closed_marker"] = round(
                (closed_run["rss"] - base_run["rss"]) / closed_size)
    open_bytes = states["open_order_bytes"]
    result["targets"] = {
        "bytes_per_open_order_target": TARGET_BYTES_PER_OPEN_ORDER,
        "serialized_order_state_mean": open_bytes["mean"],
        "serialized_order_state_p95": open_bytes["p95"],
        "serialized_orders_plus_waybills_per_open_order": states["orders_plus_waybills_bytes_per_open_order"],
        "serialized_pass": open_bytes["mean"] <= TARGET_BYTES_PER_OPEN_ORDER,
        "rss_bytes_per_open_order": {s: result["linearity"][s].get("per_order") for s in stores},
        "rss_pass": {s: (result["linearity"][s].get("per_order") or 10 ** 9) <= TARGET_BYTES_PER_OPEN_ORDER
                     for s in stores},
        "linear": {s: result["linearity"][s].get("linear", False) for s in stores},
        "completed_orders_flat": all(v == 0 for k, v in states["completed"]["after_final_tick"].items()
                                     if k != "shops"),
    }
    result["seconds"] = round(time.perf_counter() - began, 1)
    return result


def _points(workers: list[dict[str, Any]], store: str, field: str = "rss",
            label: str = "first") -> list[tuple[int, float]]:
    points = []
    for entry in workers:
        run = entry["stores"].get(store, {}).get(label, {})
        if run.get("ok") and run.get(field) is not None:
            points.append((entry["size"], run[field]))
    return points


# ---------------------------------------------------------------------------------------------
# the table


def _mb(value: int | None) -> str:
    return f"{value / 1e6:,.0f}" if value else "-"


def format_report(result: dict[str, Any]) -> str:
    real, done = result["realistic"], result["completed"]
    ob = real["open_order_bytes"]
    lines = [
        f"open order state (StateCodec bytes, {ob['count']} open orders at {real['stream']['cut_at']}): "
        f"mean {ob['mean']}, p50 {ob['p50']}, p95 {ob['p95']}, max {ob['max']}; phases {real['open_order_phases']}",
        "  largest fields: " + ", ".join(f"{f['field']} {f['mean_bytes']:.0f} B ({f['share']:.0%})"
                                         for f in real["open_order_fields"][:6]),
        f"  mean items per open order: {real['open_order_mean_items']}",
        f"waybill state: mean {real['waybill_bytes'].get('mean')}, p95 {real['waybill_bytes'].get('p95')}, "
        f"max {real['waybill_bytes'].get('max')} ({real['waybill_bytes']['count']} numbers); orders+waybills per "
        f"open order {real['orders_plus_waybills_bytes_per_open_order']} B",
        f"in memory: {real['python_bytes_per_open_order_state']} B of Python heap per decoded open order "
        f"({real['python_over_serialized']}x the encoded size), {real['python_bytes_per_waybill_state']} B per "
        f"waybill; decode {real['decode_us_per_state']} us, next_deadline {real['next_deadline_us_per_state']} us "
        "per state",
        f"completed: before the final tick {done['before_final_tick']}, after it {done['after_final_tick']}; closed "
        f"marker mean {done['closed_marker_bytes'].get('mean')} B",
        "",
        f"{'kind':<6} {'orders':>9} {'store':<8} {'run':<8} {'produce s':>9} {'ready s':>8} {'ready N':>9} "
        f"{'RSS MB':>8} {'HWM MB':>8} {'disk MB':>8}  note",
    ]
    entries = list(result["workers"]) + ([result["closed"]] if result.get("closed") else [])
    for entry in entries:
        produce = entry.get("produce", {}).get("seconds", "-")
        for store, runs in entry["stores"].items():
            for label in ("first", "restart"):
                run = runs.get(label) if "first" in runs else (runs if label == "first" else None)
                if not run:
                    continue
                lines.append(
                    f"{entry['kind']:<6} {entry['size']:>9,} {store:<8} {label:<8} {produce!s:>9} "
                    f"{run.get('ready_seconds', '-')!s:>8} {run.get('ready_orders', '-')!s:>9} "
                    f"{_mb(run.get('rss')):>8} {_mb(run.get('hwm')):>8} {_mb(run.get('data_dir_bytes')):>8}  "
                    f"{run.get('error', '')}")
    lines.append("")
    for store, fit in result["linearity"].items():
        if fit:
            steps = ", ".join(f"{s['from']:,}->{s['to']:,}: {s['per_order']:,.0f}" for s in fit["steps"])
            lines.append(f"RSS slope {store}: {fit['per_order']:,.0f} B per open order (least squares, intercept "
                         f"{fit['intercept'] / 1e6:.0f} MB); between sizes {steps}; linear {fit['linear']}")
    for name, fit in result.get("ready_time", {}).items():
        if fit:
            steps = ", ".join(f"{s['from']:,}->{s['to']:,}: {s['per_order']:,.0f}" for s in fit["steps"])
            lines.append(f"ready time {name}: {fit['per_order']:,.0f} us per stored order (intercept "
                         f"{fit['intercept']:.1f} s); between sizes {steps}")
    if result.get("closed", {}) and result["closed"].get("rss_bytes_per_closed_marker") is not None:
        lines.append(f"RSS per closed marker: {result['closed']['rss_bytes_per_closed_marker']:,} B")
    t = result["targets"]
    lines.append(f"target <= {t['bytes_per_open_order_target']} B per open order: serialized mean "
                 f"{t['serialized_order_state_mean']} -> {'PASS' if t['serialized_pass'] else 'FAIL'}; RSS per open "
                 f"order {t['rss_bytes_per_open_order']} -> {t['rss_pass']}; linear {t['linear']}; completed orders "
                 f"flat {t['completed_orders_flat']}")
    lines.append(f"total {result['seconds']} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.state", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="open orders per run, comma separated")
    parser.add_argument("--stores", default="memory,rocksdb", help="memory, rocksdb or both")
    parser.add_argument("--closed", type=int, default=100_000, help="closed markers for the closed run (0: none)")
    parser.add_argument("--workdir", type=Path, default=None, help="logs and data dirs (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    from streams.kafka.embedded import EmbeddedBroker

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="shipguard-bench-state-"))
    print(f"workdir {workdir}", file=sys.stderr)
    with EmbeddedBroker() as broker:
        result = measure(broker, workdir, sizes=sizes, stores=stores, closed_size=args.closed or None)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    print(format_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
