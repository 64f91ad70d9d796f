"""Benchmark 2: our pipeline against dlt, loading the same responses into DuckDB.

    python -m bench.vs_dlt [--datasets FREQ,FUELINST,BOD] [--day 2025-11-05] [--repeats 3]

Three loaders read the same requests from one simulator process (no latency, scale 1.0):

* ours: ``ingest_chunk`` into the local warehouse (typed columns, content hashes, exact
  duplicates dropped, the day swapped in atomically, coverage recorded; queried by DuckDB);
* dlt: a ``dlt.resource`` yielding each response's rows (the way dlt is usually fed) with
  ``write_disposition="merge"`` and ``primary_key`` = the dataset's natural key, into DuckDB;
* dlt (Arrow): the same resource yielding ``pyarrow`` tables, dlt's fast path.

Each loader runs in a fresh process of its own (so neither inherits the other's heap, and
its peak RSS is its own), warmed up by an untimed load of a small day elsewhere (as in a
process that has been running): it loads the day into an empty destination, then loads it
again (the idempotent re-run a retry or sweep makes). Rows per second count the rows received,
the same for all three; the median of ``--repeats`` runs is kept, except that a loader taking
over a minute for a day runs once. dlt's telemetry is off and its files go to a temporary folder:
nothing leaves 127.0.0.1. The target ratio is against dlt as usually fed (rows as dicts).
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import multiprocessing.queues
import os
import resource
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import requests

from bench import report
from bench.simulator import simulator_process
from worker.elexon import catalog
from worker.elexon.catalog import Dataset
from worker.elexon.client import ElexonClient, request_windows
from worker.elexon.pipeline import ingest_chunk
from worker.sinks.local import LocalWarehouse

DAY = dt.date(2025, 11, 5)
DATASETS = ("FREQ", "FUELINST", "BOD")
TARGET_RATIO = 3.0
LOADERS = ("ours", "dlt", "dlt_arrow")
LOADS = ("first_load", "reload")
# A loader slower than this on a day runs once, whatever --repeats says.
SLOW_S = 60.0


def _responses(url: str, dataset: Dataset, day: dt.date) -> Iterator[list[dict[str, Any]]]:
    """The rows of each request of the day, as the API sends them."""
    session = requests.Session()
    for window in request_windows(dataset, day):
        response = session.get(url + window.path, params=window.params)
        response.raise_for_status()
        rows = orjson.loads(response.content)
        yield rows["data"] if isinstance(rows, dict) else rows


def run_ours(url: str, dataset: Dataset, day: dt.date, folder: Path) -> list[dict[str, Any]]:
    sink, client = LocalWarehouse(folder), ElexonClient(url)
    loads = []
    for _ in LOADS:
        started = time.perf_counter()
        coverage = ingest_chunk(client, sink, dataset, day)
        seconds = time.perf_counter() - started
        if coverage.status != "complete":
            raise RuntimeError(f"{dataset.code} {day}: {coverage.status} ({coverage.reason})")
        stored = sink.query(f"SELECT count(*) AS n FROM {dataset.table}").column("n")[0].as_py()
        loads.append({"seconds": seconds, "rows_stored": stored})
    return loads


def run_dlt(url: str, dataset: Dataset, day: dt.date, folder: Path, *, arrow: bool) -> list[dict[str, Any]]:
    import dlt  # configured by _loader_process before its first import

    folder.mkdir(parents=True, exist_ok=True)

    def rows() -> Iterator[Any]:
        for batch in _responses(url, dataset, day):
            yield pa.Table.from_pylist(batch) if arrow else batch

    source = dlt.resource(
        rows, name=dataset.table, write_disposition="merge", primary_key=list(dataset.natural_key)
    )
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{dataset.table}",
        destination=dlt.destinations.duckdb(str(folder / "dlt.duckdb")),
        dataset_name="bmrs",
        pipelines_dir=str(folder / "pipelines"),
    )
    loads = []
    for _ in LOADS:
        started = time.perf_counter()
        pipeline.run(source())
        seconds = time.perf_counter() - started
        with pipeline.sql_client() as client:
            stored = client.execute_sql(f"SELECT count(*) FROM {dataset.table}")[0][0]
        loads.append({"seconds": seconds, "rows_stored": stored})
    return loads


def _loader_process(
    name: str, url: str, code: str, day: dt.date, results: multiprocessing.queues.Queue
) -> None:
    def run(dataset: Dataset, on: dt.date, folder: Path) -> list[dict[str, Any]]:
        if name == "ours":
            return run_ours(url, dataset, on, folder)
        return run_dlt(url, dataset, on, folder, arrow=name == "dlt_arrow")

    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        # Before dlt reads its configuration: no telemetry to dlthub, nothing in ~/.dlt.
        os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
        os.environ["RUNTIME__LOG_LEVEL"] = "ERROR"
        os.environ["DLT_DATA_DIR"] = str(Path(tmp) / "dlt-home")
        # Warm up first (imports, first calls, caches), as in a process that has been
        # running: a small day elsewhere, not timed.
        run(catalog.get("FREQ"), day - dt.timedelta(days=1), Path(tmp) / "warmup")
        loads = run(catalog.get(code), day, Path(tmp) / "timed")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    results.put({"loads": loads, "peak_rss_mb": peak_mb})


def run_loader(name: str, url: str, dataset: Dataset, day: dt.date) -> dict[str, Any]:
    """One loader, first load and reload, in a fresh process of its own."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_loader_process, args=(name, url, dataset.code, day, results))
    process.start()
    try:
        while process.is_alive() and results.empty():
            time.sleep(0.1)
        if results.empty():
            raise RuntimeError(f"the {name} loader of {dataset.code} {day} exited with code {process.exitcode}")
        return results.get()
    finally:
        process.join(60)
        if process.is_alive():
            process.kill()
            process.join()


def bench_dataset(url: str, dataset: Dataset, day: dt.date, repeats: int) -> dict[str, Any]:
    received = sum(len(batch) for batch in _responses(url, dataset, day))  # also warms up
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in LOADERS}
    for _ in range(repeats):
        for name in LOADERS:
            if runs[name] and runs[name][0]["loads"][0]["seconds"] > SLOW_S:
                continue  # minutes per load: its one run is far enough from any line
            runs[name].append(run_loader(name, url, dataset, day))
    figures: dict[str, Any] = {"rows_received": received}
    for name in LOADERS:
        figures[name] = {"peak_rss_mb": max(run["peak_rss_mb"] for run in runs[name])}
        for index, load in enumerate(LOADS):
            seconds = sorted(run["loads"][index]["seconds"] for run in runs[name])
            median = seconds[len(seconds) // 2]
            figures[name][load] = {
                "seconds": median,
                "rows_per_s": received / median,
                "all_seconds": seconds,
                "rows_stored": runs[name][0]["loads"][index]["rows_stored"],
            }
    figures["ratios"] = {
        load: {
            "ours_to_dlt": figures["ours"][load]["rows_per_s"] / figures["dlt"][load]["rows_per_s"],
            "ours_to_dlt_arrow": figures["ours"][load]["rows_per_s"] / figures["dlt_arrow"][load]["rows_per_s"],
        }
        for load in LOADS
    }
    figures["target_ratio"] = TARGET_RATIO
    figures["target_met"] = all(figures["ratios"][load]["ours_to_dlt"] >= TARGET_RATIO for load in LOADS)
    return figures


def print_dataset(code: str, figures: dict[str, Any]) -> None:
    print(f"\n{code}: {figures['rows_received']:,} rows received")
    for name, label in (("ours", "ours"), ("dlt", "dlt"), ("dlt_arrow", "dlt (Arrow)")):
        first, again = figures[name]["first_load"], figures[name]["reload"]
        print(
            f"  {label:<12} first load {first['seconds']:8.2f} s {first['rows_per_s']:>10,.0f} rows/s"
            f" ({first['rows_stored']:,} rows); reload {again['seconds']:8.2f} s "
            f"{again['rows_per_s']:>10,.0f} rows/s; peak RSS {figures[name]['peak_rss_mb']:,.0f} MB"
        )
    for load in LOADS:
        ratios = figures["ratios"][load]
        print(
            f"  {load.replace('_', ' ')}: ours / dlt = {ratios['ours_to_dlt']:.1f}x, "
            f"ours / dlt (Arrow) = {ratios['ours_to_dlt_arrow']:.1f}x"
        )
    print(f"  target ours >= {TARGET_RATIO:.0f}x dlt: {'met' if figures['target_met'] else 'NOT met'}")


def _dlt_version() -> str | None:
    import importlib.metadata

    return importlib.metadata.version("dlt")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.vs_dlt", description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated codes")
    parser.add_argument("--day", type=dt.date.fromisoformat, default=DAY)
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of each loader (median kept; a loader over a minute runs once)"
    )
    args = parser.parse_args(argv)
    report.print_machine()
    results: dict[str, Any] = {}
    with simulator_process(latency_ms=0, scale=1.0) as simulator:
        url = simulator.url
        for code in args.datasets.split(","):
            dataset = catalog.get(code.strip().upper())
            results[dataset.code] = bench_dataset(url, dataset, args.day, args.repeats)
            print_dataset(dataset.code, results[dataset.code])
    report.save(
        "vs_dlt",
        {"day": args.day.isoformat(), "repeats": args.repeats, "dlt_version": _dlt_version(), "datasets": results},
    )
    from bench import charts, summary

    charts.draw_all()
    summary.update_readme()
    return results


if __name__ == "__main__":
    main()
