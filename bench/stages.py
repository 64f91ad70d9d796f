"""Benchmark 1: per-stage throughput of one dataset-day, with the bare minimum beside it.

    python -m bench.stages [--datasets FREQ,FUELINST,BOD] [--day 2025-11-05] [--repeats 5]

End to end is the real path: ``ingest_chunk`` into a fresh local warehouse, where the next
request downloads while the current one is parsed. Stages are measured in a second run of
the same code with that overlap switched off, attributed by wrapping the functions the
pipeline calls (nothing is re-implemented here):

* fetch+decode: ``ElexonClient.fetch_window`` (HTTP, JSON, the window check)
* parse: ``parse_rows`` minus its hashing (rows to typed Arrow, partition day, metadata)
* hash: ``hash_rows`` (canonical form and SHA-256 of every row)
* dedup: the rest of ``fetch_chunk`` (the day's rows, one schema, exact duplicates dropped)
* write: the rest of ``ingest_chunk`` (lock, unite with the stored day, Parquet, coverage)

The bare minimum downloads the same responses and does ``json`` -> Arrow -> Parquet with no
checks at all. All runs read from one simulator process (no latency, scale 1.0), in turn,
so all pay its serving time; the ratio is of rows received per second, end to end.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import requests

from bench import report
from bench.simulator import simulator_process
from worker.elexon import catalog, parse, pipeline
from worker.elexon.catalog import Dataset
from worker.elexon.client import ElexonClient, request_windows
from worker.sinks.local import LocalWarehouse

DAY = dt.date(2025, 11, 5)  # an ordinary Wednesday: 48 periods
DATASETS = ("FREQ", "FUELINST", "BOD")
TARGET_RATIO = 0.5
STAGES = ("fetch+decode", "parse", "hash", "dedup", "write")


@contextlib.contextmanager
def _timed(owner: Any, attribute: str, clock: dict[str, float], stage: str) -> Iterator[None]:
    """Add the time spent in ``owner.attribute`` to ``clock[stage]`` while inside."""
    original: Callable[..., Any] = getattr(owner, attribute)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            clock[stage] += time.perf_counter() - started

    setattr(owner, attribute, wrapper)
    try:
        yield
    finally:
        setattr(owner, attribute, original)


def pipeline_run(url: str, dataset: Dataset, day: dt.date, *, staged: bool = False) -> dict[str, Any]:
    """One ``ingest_chunk`` into a fresh warehouse; ``staged`` runs it without the request
    overlap and splits its time by stage."""
    clock: dict[str, float] = collections.defaultdict(float)
    client = ElexonClient(url)
    received = 0
    fetch_window = client.fetch_window

    def counted_fetch(*args: Any, **kwargs: Any) -> Any:
        nonlocal received
        window_rows = fetch_window(*args, **kwargs)
        received += len(window_rows.rows) + window_rows.outside_window
        return window_rows

    client.fetch_window = counted_fetch  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as tmp:
        sink = LocalWarehouse(Path(tmp))
        with contextlib.ExitStack() as stack:
            if staged:
                stack.enter_context(_replaced(pipeline, "one_request_ahead", iter))
                stack.enter_context(_timed(client, "fetch_window", clock, "fetch"))
                stack.enter_context(_timed(pipeline, "parse_rows", clock, "parse_rows"))
                stack.enter_context(_timed(parse, "hash_rows", clock, "hash"))
                stack.enter_context(_timed(pipeline, "fetch_chunk", clock, "fetch_chunk"))
            started = time.perf_counter()
            coverage = pipeline.ingest_chunk(client, sink, dataset, day)
            total = time.perf_counter() - started
    if coverage.status != "complete":
        raise RuntimeError(f"{dataset.code} {day}: {coverage.status} ({coverage.reason})")
    run: dict[str, Any] = {
        "seconds": total,
        "rows_received": received,
        "rows_stored": coverage.rows,
        "requests": coverage.requests,
    }
    if staged:
        run["stages"] = {
            "fetch+decode": clock["fetch"],
            "parse": clock["parse_rows"] - clock["hash"],
            "hash": clock["hash"],
            "dedup": clock["fetch_chunk"] - clock["fetch"] - clock["parse_rows"],
            "write": total - clock["fetch_chunk"],
        }
    return run


@contextlib.contextmanager
def _replaced(owner: Any, attribute: str, replacement: Any) -> Iterator[None]:
    original = getattr(owner, attribute)
    setattr(owner, attribute, replacement)
    try:
        yield
    finally:
        setattr(owner, attribute, original)


def bare_minimum_run(url: str, dataset: Dataset, day: dt.date) -> dict[str, Any]:
    """The same requests, ``json`` -> Arrow -> Parquet, no checks: the floor to compare with."""
    session = requests.Session()
    with tempfile.TemporaryDirectory(prefix="bench-bare-") as tmp:
        started = time.perf_counter()
        tables = []
        for window in request_windows(dataset, day):
            response = session.get(url + window.path, params=window.params)
            response.raise_for_status()
            rows = orjson.loads(response.content)
            if isinstance(rows, dict):
                rows = rows["data"]
            tables.append(pa.Table.from_pylist(rows))
        table = pa.concat_tables(tables, promote_options="default")
        pq.write_table(table, Path(tmp) / "day.parquet")
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows_received": table.num_rows}


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(runs, key=lambda run: run["seconds"])
    return ordered[len(ordered) // 2]


def bench_dataset(url: str, dataset: Dataset, day: dt.date, repeats: int) -> dict[str, Any]:
    """Take turns: pipeline, bare minimum, staged pipeline; report medians and the ratio."""
    bare_minimum_run(url, dataset, day)  # warm-up: connections, imports, simulator caches
    pipeline_runs, bare_runs, staged_runs = [], [], []
    for _ in range(repeats):
        pipeline_runs.append(pipeline_run(url, dataset, day))
        bare_runs.append(bare_minimum_run(url, dataset, day))
        staged_runs.append(pipeline_run(url, dataset, day, staged=True))
    ours, bare, staged = _median_run(pipeline_runs), _median_run(bare_runs), _median_run(staged_runs)
    if ours["rows_received"] != bare["rows_received"]:
        raise RuntimeError(
            f"{dataset.code} {day}: pipeline received {ours['rows_received']} rows, "
            f"bare minimum {bare['rows_received']}: not the same responses"
        )
    rows = ours["rows_received"]
    ratio = bare["seconds"] / ours["seconds"]
    return {
        "rows_received": rows,
        "rows_stored": ours["rows_stored"],
        "requests": ours["requests"],
        "pipeline": {
            "seconds": ours["seconds"],
            "rows_per_s": rows / ours["seconds"],
            "all_seconds": [run["seconds"] for run in pipeline_runs],
        },
        "stages": {
            stage: {"seconds": seconds, "rows_per_s": rows / seconds if seconds > 0 else None}
            for stage, seconds in staged["stages"].items()
        },
        "stages_sequential_seconds": staged["seconds"],
        "bare_minimum": {
            "seconds": bare["seconds"],
            "rows_per_s": rows / bare["seconds"],
            "all_seconds": [run["seconds"] for run in bare_runs],
        },
        "ratio_pipeline_to_bare": ratio,
        "target_ratio": TARGET_RATIO,
        "target_met": ratio >= TARGET_RATIO,
    }


def print_dataset(code: str, figures: dict[str, Any]) -> None:
    rows = figures["rows_received"]
    print(
        f"\n{code}: {rows:,} rows received in {figures['requests']} requests, "
        f"{figures['rows_stored']:,} stored"
    )
    for stage, stage_figures in figures["stages"].items():
        rate = stage_figures["rows_per_s"]
        print(f"  {stage:<13} {stage_figures['seconds']:7.3f} s  {rate or 0:>12,.0f} rows/s")
    print(f"  {'(sum, no overlap)':<13} {figures['stages_sequential_seconds']:7.3f} s")
    ours, bare = figures["pipeline"], figures["bare_minimum"]
    print(f"  {'end to end':<13} {ours['seconds']:7.3f} s  {ours['rows_per_s']:>12,.0f} rows/s")
    print(f"  {'bare minimum':<13} {bare['seconds']:7.3f} s  {bare['rows_per_s']:>12,.0f} rows/s")
    verdict = "met" if figures["target_met"] else "NOT met"
    print(
        f"  pipeline / bare minimum = {figures['ratio_pipeline_to_bare']:.2f} "
        f"(target >= {TARGET_RATIO}: {verdict})"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.stages", description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated codes")
    parser.add_argument("--day", type=dt.date.fromisoformat, default=DAY)
    parser.add_argument("--repeats", type=int, default=5, help="runs of each side (median kept)")
    args = parser.parse_args(argv)
    report.print_machine()
    results: dict[str, Any] = {}
    with simulator_process(latency_ms=0, scale=1.0) as simulator:
        url = simulator.url
        for code in args.datasets.split(","):
            dataset = catalog.get(code.strip().upper())
            results[dataset.code] = bench_dataset(url, dataset, args.day, args.repeats)
            print_dataset(dataset.code, results[dataset.code])
    report.save("stages", {"day": args.day.isoformat(), "repeats": args.repeats, "datasets": results})
    from bench import charts, summary

    charts.draw_all()
    summary.update_readme()
    return results


if __name__ == "__main__":
    main()
