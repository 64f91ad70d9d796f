"""Benchmark 4: peak memory of a worker-like process on the BOD day, and over 100 chunks.

    python -m bench.memory [--chunks 100] [--day 2025-11-05] [--datasets FREQ,FUELINST,MID,BOALF,BOD]

A child process does what a worker's task does (``ingest_chunk`` with an Elexon client and
the local warehouse): first the BOD day, the largest the API serves (~300k rows), then the
same day again (a retry or the gap sweep: the stored day is read and united with the fetch),
then ``--chunks`` consecutive chunks, cycling through the datasets day after day. Its peak
RSS is the kernel's high-water mark (``ru_maxrss``); the parent also samples RSS with psutil
every 20 ms for the chart. "Not growing" means both the least-squares trend of the RSS left
after each chunk, over all the chunks, and the rise of the peak after the BOD day's two loads stay within
25 MB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import multiprocessing.queues
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench import report
from bench.simulator import simulator_process

DAY = dt.date(2025, 11, 5)
DATASETS = ("FREQ", "FUELINST", "MID", "BOALF", "BOD")
TARGET_PEAK_MB = 600
# RSS left after a chunk may wander with the allocator; more than this is growth.
GROWTH_TOLERANCE_MB = 25
SAMPLE_S = 0.02
MB = 2**20


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / MB


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _worker(url: str, day: dt.date, codes: list[str], chunks: int, events: multiprocessing.queues.Queue) -> None:
    """The worker-like child: the BOD day, then ``chunks`` more; reports after each."""
    from worker.elexon import catalog
    from worker.elexon.client import ElexonClient
    from worker.elexon.pipeline import ingest_chunk
    from worker.sinks.local import LocalWarehouse

    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        client, sink = ElexonClient(url), LocalWarehouse(Path(tmp))
        events.put(("ready", _rss_mb(), _peak_mb(), None))
        coverage = ingest_chunk(client, sink, catalog.get("BOD"), day)
        events.put(("bod", _rss_mb(), _peak_mb(), coverage.rows))
        # Again, as a retry or the gap sweep would: the stored day and the fetch meet.
        coverage = ingest_chunk(client, sink, catalog.get("BOD"), day)
        events.put(("bod_reload", _rss_mb(), _peak_mb(), coverage.rows))
        for index in range(chunks):
            code = codes[index % len(codes)]
            chunk_day = day + dt.timedelta(days=1 + index // len(codes))
            coverage = ingest_chunk(client, sink, catalog.get(code), chunk_day)
            events.put((f"{code} {chunk_day}", _rss_mb(), _peak_mb(), coverage.rows))
    events.put(("done", _rss_mb(), _peak_mb(), None))


def run(url: str, day: dt.date, codes: list[str], chunks: int) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    child = context.Process(target=_worker, args=(url, day, codes, chunks, events), name="bench-worker")
    started = time.perf_counter()
    child.start()
    watched = psutil.Process(child.pid)
    samples: list[tuple[float, float]] = []
    records: list[dict[str, Any]] = []
    try:
        while True:
            while not events.empty():
                label, rss, peak, rows = events.get()
                records.append({"chunk": label, "rss_mb": rss, "peak_mb": peak, "rows": rows,
                                "t_s": time.perf_counter() - started})
                if label in ("bod", "bod_reload", "done"):
                    print(f"  {label}: RSS {rss:.0f} MB, peak so far {peak:.0f} MB")
            if records and records[-1]["chunk"] == "done":
                break
            if not child.is_alive():
                raise RuntimeError(f"the worker-like process died (exit code {child.exitcode})")
            try:
                samples.append((time.perf_counter() - started, watched.memory_info().rss / MB))
            except psutil.NoSuchProcess:
                pass
            time.sleep(SAMPLE_S)
    finally:
        child.join(30)
        if child.is_alive():
            child.kill()
            child.join()
    return _figures(records, samples)


def _figures(records: list[dict[str, Any]], samples: list[tuple[float, float]]) -> dict[str, Any]:
    ready = next(r for r in records if r["chunk"] == "ready")
    bod = next(r for r in records if r["chunk"] == "bod")
    reload = next(r for r in records if r["chunk"] == "bod_reload")
    after = [r for r in records if r["chunk"] not in ("ready", "bod", "bod_reload", "done")]
    # RSS after a chunk swings by 150 MB as the allocator returns memory or keeps it, so
    # growth is the least-squares trend over all chunks, not two single readings.
    slope = (
        statistics.linear_regression(range(len(after)), [r["rss_mb"] for r in after]).slope
        if len(after) > 1
        else 0.0
    )
    trend = slope * len(after)
    final_peak = records[-1]["peak_mb"]
    return {
        "baseline_rss_mb": ready["rss_mb"],
        "bod_day": {
            "rows_stored": bod["rows"],
            "peak_rss_mb": bod["peak_mb"],
            "reload_peak_rss_mb": reload["peak_mb"],
            "rss_after_mb": bod["rss_mb"],
        },
        "target_peak_mb": TARGET_PEAK_MB,
        "peak_target_met": reload["peak_mb"] < TARGET_PEAK_MB,
        "chunks": len(after),
        "peak_rss_all_chunks_mb": final_peak,
        "peak_growth_after_bod_day_mb": final_peak - reload["peak_mb"],
        "rss_after_chunk_min_mb": min((r["rss_mb"] for r in after), default=None),
        "rss_after_chunk_max_mb": max((r["rss_mb"] for r in after), default=None),
        "rss_trend_over_chunks_mb": trend,
        "growth_tolerance_mb": GROWTH_TOLERANCE_MB,
        "not_growing": trend <= GROWTH_TOLERANCE_MB and final_peak - reload["peak_mb"] <= GROWTH_TOLERANCE_MB,
        "per_chunk": after,
        "samples": [[round(t, 3), round(rss, 1)] for t, rss in samples],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n")[0])
    parser.add_argument("--day", type=dt.date.fromisoformat, default=DAY)
    parser.add_argument("--chunks", type=int, default=100)
    parser.add_argument("--datasets", default=",".join(DATASETS), help="cycled through, day after day")
    args = parser.parse_args(argv)
    report.print_machine()
    codes = [code.strip().upper() for code in args.datasets.split(",")]
    with simulator_process(latency_ms=0, scale=1.0) as simulator:
        url = simulator.url
        figures = run(url, args.day, codes, args.chunks)
    print(
        f"BOD day ({figures['bod_day']['rows_stored']:,} rows stored): peak RSS "
        f"{figures['bod_day']['peak_rss_mb']:.0f} MB, {figures['bod_day']['reload_peak_rss_mb']:.0f} MB loading it "
        f"again (baseline {figures['baseline_rss_mb']:.0f} MB; "
        f"target < {TARGET_PEAK_MB} MB: {'met' if figures['peak_target_met'] else 'NOT met'})"
    )
    print(
        f"{figures['chunks']} chunks after it: RSS after a chunk between {figures['rss_after_chunk_min_mb']:.0f} and "
        f"{figures['rss_after_chunk_max_mb']:.0f} MB, trend {figures['rss_trend_over_chunks_mb']:+.0f} MB over them; "
        f"peak {figures['peak_rss_all_chunks_mb']:.0f} MB ({figures['peak_growth_after_bod_day_mb']:+.0f} MB after the BOD day twice) "
        f"(tolerance {GROWTH_TOLERANCE_MB} MB: {'not growing' if figures['not_growing'] else 'GROWING'})"
    )
    report.save("memory", {"day": args.day.isoformat(), "datasets": codes, **figures})
    from bench import charts, summary

    charts.draw_all()
    summary.update_readme()
    return figures


if __name__ == "__main__":
    main()
