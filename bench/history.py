"""Benchmark 6: what a query, a check and the dashboard cost as history grows (issue 13).

    python -m bench.history [--sizes 30,365,1461] [--scale 0.05] [--data /work/bench-data/history]
                            [--repeats 3] [--keep]

Builds local warehouses of 30, 365 and 1,461 days ending on the same day, with the 16 core
datasets. Rows come from the simulator's generators: one template day per dataset, shifted day
by day (dates and instants moved, row hashes made unique), written with the sink's own
``write_day`` and ``write_coverage`` (day files, manifest, coverage records: exactly what loads
leave behind) but not through the API, so the 1,461-day warehouse takes minutes. The per-BM-unit
datasets (BOD, BOALF, PN, QPN, MELS, MILS) use the simulator's fleet at ``--scale`` and the
half-hourly forecasts (INDGEN, INDDEM) keep one publication in eight, so the largest warehouse
builds in minutes and fits the disk; the others are full size. A few days are left out of FUELHH
so ``bmrs gaps`` has gaps to report.

Then, per size (and ``select 1`` on an empty warehouse), each command runs ``--repeats`` times
in a fresh process, as a user runs it, in rounds that take turns over every size and command;
the best wall time (other work on a shared machine only ever adds time; the median is kept
too) and the median peak RSS (the child's own ``ru_maxrss`` from ``wait4``) are kept:

- ``bmrs query "select 1"``
- one day of ``fuelinst_latest`` and of ``bod_latest`` (the last day, the same at every size)
- a 30-day aggregate of ``disebsp_latest``
- ``bmrs gaps`` over the whole range, ``bmrs status --json`` (no broker: the warehouse part),
  ``bmrs dashboard --out ... --as-of <last day 18:00Z>``

Targets: one-day queries at 1,461 days within 1.3x of 30 days (time and memory); ``select 1``
within 1.2x of the empty warehouse; the dashboard under 3 s and 400 MB at every size.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from bench import report

CORE = (
    "FUELINST", "FUELHH", "FREQ", "MID", "BOD", "BOALF", "DISBSAD", "NETBSAD", "INDGEN",
    "INDDEM", "PN", "QPN", "MELS", "MILS", "REMIT", "DISEBSP",
)
PER_UNIT = frozenset({"BOD", "BOALF", "PN", "QPN", "MELS", "MILS"})
# Forecasts republished every half hour (~97k rows a day each): one publication in 8 kept.
THINNED = frozenset({"INDGEN", "INDDEM"})
THIN_HOURS = 4
END = dt.date(2025, 12, 31)
TEMPLATE_DAY = dt.date(2025, 11, 5)  # an ordinary 48-period day
GAP_EVERY = 97  # FUELHH days left out, so gaps has something to say
TARGETS = {"one_day_ratio": 1.3, "select_1_ratio": 1.2, "dashboard_s": 3.0, "dashboard_mb": 400}
MB = 1024  # ru_maxrss is KiB on Linux


def template(code: str, scale: float) -> pa.Table:
    """One day of a dataset as the pipeline would store it (parsed, typed, hashed)."""
    from worker.elexon import catalog
    from worker.elexon.dedup import drop_duplicates
    from worker.elexon.parse import parse_rows
    from worker.elexon.settlement import PERIOD, day_window_utc
    from worker.sim.calibrated import GENERATOR_CLASSES

    dataset = catalog.get(code)
    generator = GENERATOR_CLASSES[code](seed=7, scale=scale if code in PER_UNIT else 1.0)
    start, end = day_window_utc(TEMPLATE_DAY)
    rows: list[dict[str, Any]] = []
    bucket = start
    while bucket < end:
        rows.extend(generator.rows(bucket))
        bucket += PERIOD
    if code in THINNED:  # every THIN_HOURS-th hourly publication
        rows = [r for r in rows if r["publishTime"][14:16] == "00"
                and int(r["publishTime"][11:13]) % THIN_HOURS == 0]
    table = parse_rows(dataset, [dict(r) for r in rows]).table
    table = table.filter(pc.equal(table.column("_day"), pa.scalar(TEMPLATE_DAY, pa.date32())))
    return drop_duplicates(table)[0]


def shifted(table: pa.Table, days: int) -> pa.Table:
    """The template moved by ``days``: every date and instant, and hashes made unique."""
    columns = []
    for field, column in zip(table.schema, table.columns, strict=True):
        if pa.types.is_date32(field.type):
            column = pc.add(column.cast(pa.int32()), pa.scalar(days, pa.int32())).cast(pa.date32())
        elif pa.types.is_timestamp(field.type):
            step = days * 86_400 * {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[field.type.unit]
            column = pc.add(column.cast(pa.int64()), step).cast(field.type)
        elif field.name == "_hash_key":
            column = pc.binary_join_element_wise(column, pa.scalar(f"{days:+d}"), "")
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=table.schema)


def build(root: Path, days: int, templates: dict[str, pa.Table]) -> dict[str, Any]:
    """A warehouse of ``days`` days ending on :data:`END`; its size on disk."""
    from worker.elexon import catalog
    from worker.elexon.coverage import judge
    from worker.sinks import local

    if root.exists():
        shutil.rmtree(root)
    sink = local.LocalWarehouse(root)
    real_fsync = os.fsync
    os.fsync = lambda fd: None  # a generated warehouse need not survive a power cut
    started = time.perf_counter()
    rows = 0
    try:
        first = END - dt.timedelta(days=days - 1)
        for index in range(days):
            day = first + dt.timedelta(days=index)
            offset = (day - TEMPLATE_DAY).days
            for code, rows_of_day in templates.items():
                if code == "FUELHH" and index % GAP_EVERY == GAP_EVERY - 1:
                    continue
                dataset = catalog.get(code)
                table = shifted(rows_of_day, offset)
                sink.write_day(dataset, day, table)
                sink.write_coverage(judge(
                    dataset, day, table, duplicates_dropped=0, requests=1, outside_window=0,
                    fetched_utc=dt.datetime.combine(day, dt.time(23), dt.UTC),
                ))
                rows += table.num_rows
    finally:
        os.fsync = real_fsync
    size = sum(p.stat().st_size for p in (root / "lake").rglob("*") if p.is_file())
    return {"days": days, "rows": rows, "bytes": size, "build_s": round(time.perf_counter() - started, 1)}


def measure(
    argv: list[str], env: dict[str, str], repeats: int, ok_codes: tuple[int, ...] = (0,)
) -> dict[str, Any]:
    """Median wall time and peak RSS of a command run ``repeats`` times, each a fresh process."""
    times, peaks = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        error = child.stderr.read().decode() if child.stderr else ""
        if child.returncode not in ok_codes:
            raise RuntimeError(f"{' '.join(argv)} failed ({child.returncode}): {error[-2000:]}")
        times.append(elapsed)
        peaks.append(usage.ru_maxrss / MB)
    return {"s": round(statistics.median(times), 3), "peak_mb": round(statistics.median(peaks), 1),
            "runs_s": [round(t, 3) for t in times]}


def commands(days: int, out: Path) -> dict[str, list[str]]:
    bmrs = str(Path(sys.executable).with_name("bmrs"))
    first = END - dt.timedelta(days=days - 1)
    last = f"DATE '{END}'"
    month = f"DATE '{END - dt.timedelta(days=29)}'"
    return {
        "select_1": [bmrs, "query", "select 1"],
        "fuelinst_latest_1_day": [bmrs, "query", (
            "SELECT fuelType, avg(generation) AS mw, count(*) AS n FROM fuelinst_latest "
            f"WHERE settlementDate = {last} GROUP BY 1")],
        "bod_latest_1_day": [bmrs, "query", (
            "SELECT count(*) AS pairs, avg(offer) AS offer, avg(bid) AS bid FROM bod_latest "
            f"WHERE settlementDate = {last}")],
        "disebsp_latest_30_days": [bmrs, "query", (
            "SELECT settlementDate, avg(systemSellPrice) AS price, "
            "max(systemSellPrice) - min(systemSellPrice) AS spread, sum(netImbalanceVolume) AS niv "
            f"FROM disebsp_latest WHERE settlementDate BETWEEN {month} AND {last} "
            "GROUP BY 1 ORDER BY 1")],
        "gaps": [bmrs, "gaps", "--start", first.isoformat(), "--end", END.isoformat()],
        "status": [bmrs, "status", "--json"],
        "dashboard": [bmrs, "dashboard", "--out", str(out / "dashboard.xlsx"),
                      "--as-of", f"{END}T18:00:00Z"],
    }


def environment(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BMRS_")}
    env["BMRS_DATA_DIR"] = str(root)
    env["BMRS_SINK"] = "local"
    env["BMRS_BROKER_URL"] = "redis://127.0.0.1:1/0"  # nobody listens: status reports the lake
    env["BMRS_DATASETS"] = ",".join(CORE)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="30,365,1461", help="days of history per warehouse")
    parser.add_argument("--scale", type=float, default=0.05, help="fleet scale of per-unit datasets")
    parser.add_argument("--data", type=Path, default=Path("/work/bench-data/history"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="reuse warehouses already built")
    parser.add_argument("--build-only", action="store_true", help="build the warehouses, measure nothing")
    args = parser.parse_args()
    report.print_machine()
    sizes = [int(s) for s in args.sizes.split(",")]
    args.data.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(args.data).free / 2**30
    print(f"data in {args.data} ({free:.0f} GiB free)")

    templates = {code: template(code, args.scale) for code in CORE}
    per_day = {code: t.num_rows for code, t in templates.items()}
    print("rows per day:", ", ".join(f"{c} {n:,}" for c, n in per_day.items()))

    results: dict[str, Any] = {"scale": args.scale, "end": END.isoformat(), "rows_per_day": per_day,
                               "repeats": args.repeats, "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        roots: dict[int, Path] = {}
        for days in sizes:
            root = args.data / f"days-{days}"
            marker = root / "lake" / "_bench.json"
            if args.keep and marker.exists():
                built = {**json.loads(marker.read_text()), "reused": True}
            else:
                built = build(root, days, templates)
                marker.write_text(json.dumps(built))
            print(f"{days} days: {built['rows']:,} rows, {built['bytes'] / 2**20:,.0f} MiB, "
                  f"built in {built['build_s']} s", flush=True)
            roots[days] = root
            results["sizes"][str(days)] = {"warehouse": built}
        if not args.build_only:
            # Runs take turns: each round runs every command on every size once, so a change
            # of the machine's load during the run weighs on all sizes alike.
            runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
            plan = [("empty", "select_1", commands(1, Path(tmp))["select_1"],
                     environment(Path(tmp) / "empty"))]
            for days in sizes:
                for name, argv in commands(days, Path(tmp)).items():
                    plan.append((str(days), name, argv, environment(roots[days])))
            for size, name, argv, env in plan:  # untimed: imports and files in the page cache
                measure(argv, env, 1, (0, 1))
            for round_ in range(args.repeats):
                for size, name, argv, env in plan:
                    # status exits 1 when no broker answers (here: on purpose, none runs)
                    codes = (0, 1) if name == "status" else (0,)
                    runs.setdefault((size, name), []).append(measure(argv, env, 1, codes))
                print(f"round {round_ + 1} of {args.repeats} done", flush=True)
            results["empty"] = {}
            for (size, name), found in runs.items():
                target = results["empty"] if size == "empty" else results["sizes"][size]
                target[name] = {
                    # Best of the runs: on a shared machine other work only ever adds time.
                    "s": round(min(r["s"] for r in found), 3),
                    "median_s": round(statistics.median(r["s"] for r in found), 3),
                    "peak_mb": round(statistics.median(r["peak_mb"] for r in found), 1),
                    "runs_s": [r["s"] for r in found],
                    "runs_peak_mb": [r["peak_mb"] for r in found],
                }
            for size in ["empty", *map(str, sizes)]:
                shown = results["empty"] if size == "empty" else results["sizes"][size]
                for name, figures in shown.items():
                    if name != "warehouse":
                        print(f"{size} {name}: {figures['s']} s, {figures['peak_mb']} MB")
    if args.build_only:
        return
    results["checks"] = checks(results, sizes)
    for line in results["checks"]["lines"]:
        print(line)
    report.save("history", results)
    from bench import charts

    charts.draw_history(report.load("history") or results)


def checks(results: dict[str, Any], sizes: list[int]) -> dict[str, Any]:
    """The targets, each as a ratio or a bound with whether it holds."""
    small, large = results["sizes"][str(min(sizes))], results["sizes"][str(max(sizes))]
    lines, held = [], {}
    for name in ("fuelinst_latest_1_day", "bod_latest_1_day"):
        for unit, key in (("time", "s"), ("memory", "peak_mb")):
            ratio = large[name][key] / small[name][key]
            ok = ratio <= TARGETS["one_day_ratio"]
            held[f"{name}_{unit}"] = {"ratio": round(ratio, 2), "ok": ok}
            lines.append(f"{name} {unit} {max(sizes)}/{min(sizes)} days: {ratio:.2f}x "
                         f"({'ok' if ok else 'MISSED'}, target {TARGETS['one_day_ratio']}x)")
    empty = results["empty"]["select_1"]
    for days in sizes:
        for unit, key in (("time", "s"), ("memory", "peak_mb")):
            ratio = results["sizes"][str(days)]["select_1"][key] / empty[key]
            ok = ratio <= TARGETS["select_1_ratio"]
            held[f"select_1_{days}_{unit}"] = {"ratio": round(ratio, 2), "ok": ok}
            lines.append(f"select 1 {unit} at {days} days / empty: {ratio:.2f}x "
                         f"({'ok' if ok else 'MISSED'}, target {TARGETS['select_1_ratio']}x)")
        dash = results["sizes"][str(days)]["dashboard"]
        ok = dash["s"] < TARGETS["dashboard_s"] and dash["peak_mb"] < TARGETS["dashboard_mb"]
        held[f"dashboard_{days}"] = {"s": dash["s"], "peak_mb": dash["peak_mb"], "ok": ok}
        lines.append(f"dashboard at {days} days: {dash['s']} s, {dash['peak_mb']} MB "
                     f"({'ok' if ok else 'MISSED'}, target < 3 s and < 400 MB)")
    return {"held": held, "lines": lines}


if __name__ == "__main__":
    main()
