"""IRIS throughput: messages per second from the folder inbox to rows queryable in DuckDB.

Runs the real path on this machine: a redis-server (append-only, fsync every second, as in
production), ``bmrs worker -Q iris`` and ``bmrs listen`` as processes, the simulator's IRIS
feed writing the inbox. Two runs:

- *backlog*: N messages land in the inbox at once (a listener back from an outage); the
  figure is messages per second until every row is queryable in ``<code>_unified``;
- *peak*: the real feed's peak rate (about 200 messages a minute) for a while; the figure
  is how far behind the last message is queryable when the feed stops.

Usage: ``python -m bench.bench_iris [--messages 3000] [--peak-seconds 30] [--workers 2]``;
results are printed and saved to ``bench/results/iris.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

from bench.report import print_machine, save
from iris_listener.messages import decode_rows
from worker.cluster.local_cluster import free_port
from worker.elexon import catalog
from worker.elexon.parse import parse_rows
from worker.sim.iris import IrisFeed, run_feed
from worker.sinks.local import LocalWarehouse

REAL_PEAK_PER_MIN = 200
BMRS = [str(Path(sys.executable).parent / "bmrs")]


class Processes:
    """Children of this benchmark, stopped by pid when it ends."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.children: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as log:
            child = subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.children.append(child)
        return child

    def stop(self) -> None:
        for child in reversed(self.children):
            if child.poll() is None:
                os.killpg(child.pid, 15)
                try:
                    child.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, 9)
                    child.wait()


def wait_until(predicate: Callable[[], bool], timeout: float, poll: float = 0.2) -> float:
    """Seconds until ``predicate`` held; raises if it never did."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"not done after {timeout:.0f}s")
        time.sleep(poll)
    return time.monotonic() - started


def expected_rows(feed: IrisFeed) -> dict[str, set[str]]:
    """Distinct row hashes per dataset of the good messages the feed wrote."""
    wanted: dict[str, set[str]] = {}
    for message in feed.sent:
        if message.kind in ("message", "redelivery", "duplicate"):
            rows = decode_rows(feed.bodies[message.message_id])
            table = parse_rows(catalog.get(message.dataset), rows).table
            wanted.setdefault(message.dataset, set()).update(table.column("_hash_key").to_pylist())
    return wanted


def landed(sink: LocalWarehouse, wanted: dict[str, set[str]]) -> bool:
    for code, hashes in wanted.items():
        found = sink.query(f"SELECT count(DISTINCT _hash_key) AS n FROM {code.lower()}_unified")
        if found.column("n")[0].as_py() < len(hashes):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000, help="Backlog size")
    parser.add_argument(
        "--peak-seconds", type=float, default=30.0, help="Length of the peak-rate run"
    )
    parser.add_argument("--workers", type=int, default=2, help="Worker processes on the iris queue")
    args = parser.parse_args()
    print_machine()

    root = Path(tempfile.mkdtemp(prefix="bench-iris-"))
    data_dir, logs = root / "data", root / "logs"
    logs.mkdir(parents=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BMRS_")} | {
        "BMRS_DATA_DIR": str(data_dir),
        "BMRS_BROKER_URL": f"redis://127.0.0.1:{port}/0",
        "BMRS_LOG_LEVEL": "WARNING",
    }
    inbox = data_dir / "iris_inbox"
    processes = Processes(logs)
    try:
        processes.start(
            "redis",
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(root),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
            ],
            env,
        )
        client = redis.Redis(port=port)
        wait_until(lambda: _pings(client), 10, 0.05)
        processes.start("worker", [*BMRS, "worker", "-Q", "iris", "-c", str(args.workers)], env)

        # Backlog: write every message into a staging folder, then move it in at once.
        staging = root / "staging"
        start = dt.datetime(2025, 10, 27, tzinfo=dt.UTC)
        feed = IrisFeed(staging, seed=7, start=start, dup=0.05, poison=0.01)
        for _ in range(args.messages):
            feed.next_message()
        wanted = expected_rows(feed)
        files = len(list(staging.glob("*/*")))
        rows = sum(len(h) for h in wanted.values())
        inbox.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(inbox)
        sink = LocalWarehouse(data_dir)
        began = time.monotonic()
        processes.start("listener", [*BMRS, "listen", "--log-every", "10"], env)
        wait_until(lambda: landed(sink, wanted), 1800, 0.5)
        backlog_s = time.monotonic() - began
        backlog = {
            "files": files,
            "distinct_rows": rows,
            "seconds_to_queryable": round(backlog_s, 2),
            "messages_per_s": round(files / backlog_s, 1),
            "rows_per_s": round(rows / backlog_s, 0),
            "vs_real_peak": round(files / backlog_s / (REAL_PEAK_PER_MIN / 60), 1),
        }
        print(
            f"backlog: {files} messages ({rows} distinct rows) queryable in {backlog_s:.1f}s = "
            f"{backlog['messages_per_s']} messages/s, {backlog['vs_real_peak']}x the real peak "
            f"of {REAL_PEAK_PER_MIN}/min"
        )

        # Peak: the real feed's peak rate, into the running listener.
        peak_feed = IrisFeed(inbox, seed=8, start=start + dt.timedelta(days=2), dup=0.05)
        run_feed(peak_feed, rate_per_min=REAL_PEAK_PER_MIN, duration_s=args.peak_seconds)
        peak_wanted = expected_rows(peak_feed)
        lag_s = wait_until(lambda: landed(sink, peak_wanted), 600, 0.2)
        peak = {
            "rate_per_min": REAL_PEAK_PER_MIN,
            "seconds": args.peak_seconds,
            "messages": len(peak_feed.sent),
            "last_message_queryable_after_s": round(lag_s, 2),
        }
        print(
            f"peak: {len(peak_feed.sent)} messages at {REAL_PEAK_PER_MIN}/min; the last one "
            f"queryable {lag_s:.1f}s after it was written"
        )
        save("iris", {"workers": args.workers, "backlog": backlog, "peak": peak})
    finally:
        processes.stop()
        shutil.rmtree(root, ignore_errors=True)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


if __name__ == "__main__":
    main()
