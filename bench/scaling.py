"""Benchmark 3: a 30-day backfill on 1, 2, 4 and 8 worker processes under a request budget.

    python -m bench.scaling [--workers 1,2,4,8] [--days 30] [--latency-ms 200] [--rate 20]
                            [--threads 4] [--thread-workers 1,2] [--check-rate 10]

For each worker count, from scratch: a redis-server (append-only, as in production), the
simulator in its own process answering every request after ``--latency-ms``, N ``bmrs worker
-Q backfill -c 1`` processes sharing one ``BMRS_RATE_PER_S`` budget, and one backfill job of
FUELINST, FREQ, MID and BOALF over ``--days`` days (the same job ``bmrs backfill`` submits).
Figures: dataset-days per minute from the job's submission to its last chunk, and the request
rate the API saw (from the simulator's access log: requests between the first and last
arrival, and the busiest sliding second). At saturation the budget, not our code, should be
the limit: the achieved rate at least 90% of it.

``BMRS_RATE_BURST`` is set equal to the rate: the shared limiter grants ``burst`` requests per
``burst / rate`` seconds plus a 100 ms guard, so a burst of half the rate could use at most
``10 / 0.6 = 16.7`` of 20 requests per second whatever the number of workers.

Each worker is one process with one pool process (``-c 1``). A chunk overlaps its next request
with its parsing (``worker.elexon.pipeline.one_request_ahead``), but these four datasets take one
request per day, so a worker waits out each 200 ms; extra runs (``--threads``, default 4 on
1 and 2 workers) use Celery's thread pool, the concurrency that helps I/O-bound chunks. A last
run (``--check-rate``) gives the most workers a budget this machine's CPU can outrun, to show
how much of a budget the shared limiter itself uses when the budget is the only limit.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench import report
from bench.simulator import simulator_process
from worker.cluster.broker import redis_client
from worker.cluster.celery_app import create_app
from worker.cluster.dispatch import submit_backfill
from worker.cluster.jobs import JobStore
from worker.cluster.local_cluster import Child, bmrs_argv, free_port
from worker.elexon import catalog
from worker.settings import Settings

DATASETS = ("FUELINST", "FREQ", "MID", "BOALF")
FIRST_DAY = dt.date(2025, 10, 1)
TARGET_SHARE = 0.9
READY_TIMEOUT_S = 90.0
JOB_TIMEOUT_S = 1800.0


def _settings(data_dir: Path, broker_url: str, url: str, rate: float) -> dict[str, str]:
    """The environment of every process of one run (settings reach ``bmrs`` through it)."""
    return {
        "BMRS_DATA_DIR": str(data_dir),
        "BMRS_BROKER_URL": broker_url,
        "BMRS_ELEXON_BASE_URL": url,
        "BMRS_RATE_PER_S": str(rate),
        "BMRS_RATE_BURST": str(max(1, round(rate))),
        "BMRS_LOG_LEVEL": "WARNING",
        "BMRS_REALTIME_POLL_S": "0",
        "BMRS_FRESHNESS_CHECK_S": "0",
        "BMRS_DASHBOARD_REFRESH_S": "0",
    }


def _start_redis(folder: Path, port: int, env: dict[str, str]) -> Child:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found on PATH: apt-get install redis-server")
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
    child = Child("redis", argv, folder / "redis.log", essential=True)
    child.start(env)
    return child


def _wait(check: Any, what: str, timeout_s: float, children: list[Child]) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(Exception):  # not up yet
            if check():
                return
        dead = [c.name for c in children if not c.running]
        if dead:
            raise RuntimeError(f"{', '.join(dead)} exited while waiting for {what}; see {children[0].log_path.parent}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout_s:.0f}s")
        time.sleep(0.2)


def _worker_argv(index: int, threads: int) -> list[str]:
    """``bmrs worker`` with one pool process; with ``threads``, the same app on Celery's thread
    pool (``bmrs worker`` has no pool option, so Celery's own command starts it)."""
    name = f"bench{index}@%h"
    if not threads:
        return [*bmrs_argv(), "worker", "-Q", "backfill", "-c", "1", "-n", name]
    return [
        sys.executable, "-m", "celery", "-A", "worker.cluster.celery_app:app", "worker", "-P", "threads",
        "-c", str(threads), "-Q", "backfill", "-n", name, "--without-gossip", "--without-mingle",
        "--loglevel", "WARNING",
    ]


def run_workers(workers: int, days: int, latency_ms: float, rate: float, threads: int = 0) -> dict[str, Any]:
    """One backfill on a fresh cluster of ``workers`` processes (each with ``threads`` threads,
    or one pool process if 0); its figures."""
    folder = Path(tempfile.mkdtemp(prefix=f"bench-scaling-{workers}-"))
    access_log = folder / "access.jsonl"
    children: list[Child] = []
    try:
        with simulator_process(latency_ms=latency_ms, scale=1.0, access_log=access_log) as simulator:
            url = simulator.url
            broker_url = f"redis://127.0.0.1:{free_port()}/0"
            env = {**os.environ, **_settings(folder / "data", broker_url, url, rate)}
            redis_port = int(broker_url.rsplit(":", 1)[1].split("/")[0])
            children.append(_start_redis(folder, redis_port, env))
            settings = Settings(
                data_dir=folder / "data", broker_url=broker_url, elexon_base_url=url, rate_per_s=rate,
                rate_burst=max(1, round(rate)),
            )
            store = redis_client(settings)
            _wait(store.ping, "redis-server", 20, children)
            for i in range(1, workers + 1):
                child = Child(
                    f"worker{i}", _worker_argv(i, threads), folder / f"worker{i}.log", essential=True, stop_timeout_s=30
                )
                child.start(env)
                children.append(child)
            app = create_app(settings)
            _wait(lambda: len(app.control.ping(timeout=1.0)) >= workers, f"{workers} workers", READY_TIMEOUT_S, children)
            jobs = JobStore(store)
            first, last = FIRST_DAY, FIRST_DAY + dt.timedelta(days=days - 1)
            chosen = [catalog.get(code) for code in DATASETS]
            roles = {"simulator": [simulator.pid], "redis": [children[0].process.pid],
                     "workers": [child.process.pid for child in children[1:]]}
            cpu_before = _cpu_seconds(roles)
            submitted = time.time()
            job_id = submit_backfill(app, jobs, chosen, first, last)
            _wait(lambda: jobs.progress(job_id).finished, "the backfill job", JOB_TIMEOUT_S, children)
            finished = time.time()
            cpu_after = _cpu_seconds(roles)
            cpu = {role: cpu_after[role] - cpu_before[role] for role in roles}
            progress = jobs.progress(job_id, detail=True).to_json()
            for child in reversed(children):
                child.stop()
            children.clear()
        figures = _figures(workers, progress, submitted, finished, access_log, rate)
        figures["threads"] = threads
        figures["cpu_cores_used"] = {role: seconds / (finished - submitted) for role, seconds in cpu.items()}
        return figures
    finally:
        for child in reversed(children):
            child.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _cpu_seconds(roles: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds used so far by each role's processes and their (pool) children, ended or not."""
    used = {}
    for role, pids in roles.items():
        total = 0.0
        for pid in pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                process = psutil.Process(pid)
                for member in [process, *process.children(recursive=True)]:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        times = member.cpu_times()
                        total += times.user + times.system
                        if member is process:
                            total += times.children_user + times.children_system
        used[role] = total
    return used


def _arrivals(access_log: Path) -> list[float]:
    """When each data request reached the simulator (epoch seconds), in order."""
    times = []
    for line in access_log.read_text().splitlines():
        record = json.loads(line)
        if not record["path"].lower().startswith(("/bmrs/api/v1/datasets", "/datasets")):
            continue
        # The simulator logs the arrival time (worker.sim.server.AccessLog), not the completion.
        times.append(dt.datetime.fromisoformat(record["time"]).timestamp())
    return sorted(times)


def _figures(
    workers: int, progress: dict[str, Any], submitted: float, finished: float, access_log: Path, rate: float
) -> dict[str, Any]:
    arrivals = _arrivals(access_log)
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float("nan")
    achieved = (len(arrivals) - 1) / span if len(arrivals) > 1 else 0.0
    busiest = max(
        (bisect.bisect_right(arrivals, t + 1.0) - i for i, t in enumerate(arrivals)), default=0
    )
    chunks = sum(d["chunks"] for d in progress["datasets"].values())
    failed = sum(d.get("failed", 0) for d in progress["datasets"].values())
    minutes = (finished - submitted) / 60
    return {
        "workers": workers,
        "chunks": chunks,
        "failed": failed,
        "seconds": finished - submitted,
        "dataset_days_per_minute": chunks / minutes,
        "requests": len(arrivals),
        "achieved_requests_per_s": achieved,
        "busiest_second_requests": busiest,
        "budget_requests_per_s": rate,
        "budget_share": achieved / rate,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__.split("\n")[0])
    parser.add_argument("--workers", default="1,2,4,8", help="comma-separated worker counts")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--latency-ms", type=float, default=200)
    parser.add_argument("--rate", type=float, default=20, help="the shared request budget (req/s)")
    parser.add_argument("--threads", type=int, default=4, help="threads per process in the extra runs (0: none)")
    parser.add_argument("--thread-workers", default="1,2", help="worker counts of the runs with threads")
    parser.add_argument(
        "--check-rate", type=float, default=10,
        help="a budget the CPU can outrun, for one more run with the most workers (0: skip)",
    )
    args = parser.parse_args(argv)
    report.print_machine()
    print(
        f"{args.days}-day backfill of {', '.join(DATASETS)}; simulator latency {args.latency_ms:.0f} ms; "
        f"budget {args.rate:g} req/s (burst {max(1, round(args.rate))})"
    )
    configurations = [(int(n), 0) for n in args.workers.split(",")]
    if args.threads:
        configurations += [(int(n), args.threads) for n in args.thread_workers.split(",")]
    runs = []
    for workers, threads in configurations:
        figures = run_workers(workers, args.days, args.latency_ms, args.rate, threads)
        runs.append(figures)
        shape = f"{workers} worker(s)" + (f" x {threads} threads" if threads else "")
        print(
            f"  {shape}: {figures['chunks']} dataset-days in {figures['seconds']:.1f} s = "
            f"{figures['dataset_days_per_minute']:.0f}/min; {figures['requests']} requests at "
            f"{figures['achieved_requests_per_s']:.1f} req/s ({figures['budget_share']:.0%} of the budget, "
            f"busiest second {figures['busiest_second_requests']}); {figures['failed']} failed; CPU cores used: "
            + ", ".join(f"{role} {cores:.2f}" for role, cores in figures["cpu_cores_used"].items())
        )
    check = None
    if args.check_rate:
        # A budget this machine's CPU can outrun: the share of it used shows what the shared
        # limiter itself leaves unused when it, not the CPU, is the limit.
        most = max(workers for workers, _ in configurations)
        check = run_workers(most, args.days, args.latency_ms, args.check_rate)
        print(
            f"  {most} worker(s) under a {args.check_rate:g} req/s budget: {check['achieved_requests_per_s']:.1f} req/s "
            f"({check['budget_share']:.0%} of it, busiest second {check['busiest_second_requests']})"
        )
    saturated = max(runs, key=lambda run: run["achieved_requests_per_s"])
    met = saturated["budget_share"] >= TARGET_SHARE
    print(
        f"at saturation ({saturated['workers']} workers"
        + (f" x {saturated['threads']} threads" if saturated["threads"] else "")
        + f"): {saturated['budget_share']:.0%} of the budget "
        f"(target >= {TARGET_SHARE:.0%}: {'met' if met else 'NOT met'})"
    )
    report.save(
        "scaling",
        {
            "datasets": list(DATASETS),
            "days": args.days,
            "first_day": FIRST_DAY.isoformat(),
            "latency_ms": args.latency_ms,
            "budget_requests_per_s": args.rate,
            "burst": max(1, round(args.rate)),
            "runs": runs,
            "budget_bound_check": check,
            "saturation_share": saturated["budget_share"],
            "target_share": TARGET_SHARE,
            "target_met": met,
        },
    )
    from bench import charts, summary

    charts.draw_all()
    summary.update_readme()
    return {"runs": runs}


if __name__ == "__main__":
    main()
