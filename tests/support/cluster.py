"""A chunk-ingesting test cluster: real redis-server, the simulator, real worker processes.

``chunk_cluster(faults=..., latency_ms=..., **settings)`` configures this test's environment
(short time limits and redelivery so a lost chunk comes back in seconds), starts a simulator
with an access log, and returns a :class:`ChunkCluster` whose workers (``bmrs worker``
subprocesses) the test starts and kills at will. Everything is stopped by its own pid when
the test ends.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow.compute as pc
import pytest
import redis
from celery import Celery

from tests.support.iris import BIN, ClusterProcess, wait_for
from tests.support.redis import RedisServer
from worker.cluster.celery_app import create_app
from worker.cluster.dispatch import submit_backfill
from worker.cluster.jobs import JobProgress, JobStore
from worker.elexon import catalog
from worker.settings import get_settings
from worker.sim.server import BASE_PATH, RunningSimulator
from worker.sinks.local import LocalWarehouse

# Redelivery in seconds, not the hour Redis defaults to: hard limit < visibility timeout.
FAST_TIMINGS = {
    "BMRS_TASK_SOFT_TIME_LIMIT_S": "8",
    "BMRS_TASK_TIME_LIMIT_S": "10",
    "BMRS_VISIBILITY_TIMEOUT_S": "14",
    "BMRS_RESTORE_INTERVAL_S": "1",
    "BMRS_RETRY_BACKOFF_S": "0.5",
    "BMRS_RETRY_BACKOFF_MAX_S": "3",
    "BMRS_TASK_MAX_RETRIES": "4",
    "BMRS_RATE_PER_S": "100",
    "BMRS_RATE_BURST": "100",
    "BMRS_LOG_LEVEL": "INFO",
}


class ChunkCluster:
    """Workers, broker and simulator of one test, and ways to look at what they did."""

    def __init__(
        self,
        redis_server: RedisServer,
        sim: RunningSimulator,
        access_log: Path,
        data_dir: Path,
        logs: Path,
    ) -> None:
        self.redis_server = redis_server
        self.sim = sim
        self.access_log = access_log
        self.data_dir = data_dir
        self.logs = logs
        self.processes: list[ClusterProcess] = []

    @functools.cached_property
    def app(self) -> Celery:
        return create_app(get_settings())

    @functools.cached_property
    def store(self) -> JobStore:
        return JobStore(self.redis_server.client())

    @property
    def sink(self) -> LocalWarehouse:
        return LocalWarehouse(self.data_dir)

    def spawn(self, name: str, args: list[str]) -> ClusterProcess:
        process = ClusterProcess(name, args, self.logs / f"{name}-{len(self.processes)}.log")
        process.start()
        self.processes.append(process)
        return process

    def start_worker(
        self, name: str, *, concurrency: int = 1, queues: str = "realtime,backfill"
    ) -> ClusterProcess:
        return self.spawn(
            name,
            [str(BIN / "bmrs"), "worker", "-Q", queues, "-c", str(concurrency), "-n", f"{name}@%h"],
        )

    def workers_alive(self) -> set[str]:
        return {name for reply in self.app.control.ping(timeout=0.5) for name in reply}

    def wait_workers(self, count: int, timeout: float = 40) -> None:
        wait_for(lambda: len(self.workers_alive()) >= count, timeout, f"{count} workers", self)  # type: ignore[arg-type]

    def backfill(self, codes: str, start: dt.date, end: dt.date) -> str:
        return submit_backfill(self.app, self.store, catalog.parse_codes(codes), start, end)

    def wait_job(self, job_id: str, timeout: float = 60) -> JobProgress:
        def finished() -> bool:
            try:
                return self.store.progress(job_id).finished
            except redis.ConnectionError:  # a test restarting Redis
                return False

        try:
            wait_for(finished, timeout, f"job {job_id}", self)  # type: ignore[arg-type]
        except pytest.fail.Exception as exc:
            pytest.fail(f"{exc}\n--- broker\n{self.broker_state(job_id)}")
        return self.store.progress(job_id, detail=True)

    def broker_state(self, job_id: str) -> str:
        """Where a job's pending chunks are: queued, unacknowledged, locked, or nowhere."""
        client = self.redis_server.client()
        pending = [
            chunk.decode()
            for chunk, raw in client.hgetall(self.store._key(job_id, "chunks")).items()
            if orjson.loads(raw)["state"] == "pending"
        ]
        queued = [m for q in ("backfill", "realtime") for m in client.lrange(q, 0, -1)]
        unacked = list(client.hgetall("unacked").values())
        lines = [f"pending chunks: {pending}"]
        for chunk in pending:
            code, day = chunk.split("/")
            needle = f'"dataset": "{code}", "day": "{day}"'.encode()
            lines.append(
                f"  {chunk}: queued {sum(needle in m for m in queued)}, "
                f"unacked {sum(needle in m for m in unacked)}, "
                f"fetch lock {client.get(f'bmrs:fetch:{code}:{day}')!r}"
            )
        lines.append(f"unacked_mutex ttl: {client.pttl('unacked_mutex')} ms")
        lines.append(f"unacked_index: {client.zrange('unacked_index', 0, -1, withscores=True)}")
        return "\n".join(lines)

    def requests(self) -> list[dict[str, Any]]:
        """The simulator's access log, each entry with ``arrived`` (seconds) added."""
        entries = []
        for line in self.access_log.read_bytes().splitlines():
            entry = orjson.loads(line)
            # The simulator logs the arrival time (worker.sim.server.AccessLog).
            entry["arrived"] = dt.datetime.fromisoformat(entry["time"]).timestamp()
            entry["finished"] = entry["arrived"] + entry["duration_ms"] / 1000
            entries.append(entry)
        return entries

    def assert_no_duplicates(self, codes: str, start: dt.date, end: dt.date) -> int:
        """Every stored day of these datasets holds each row hash once; returns the rows."""
        rows = 0
        for dataset in catalog.parse_codes(codes):
            day = start
            while day <= end:
                table = self.sink.read_day(dataset, day)
                assert table is not None, f"{dataset.code} {day} was never stored"
                hashes = table.column("_hash_key")
                assert len(pc.unique(hashes)) == table.num_rows, (
                    f"{dataset.code} {day} holds duplicates"
                )
                rows += table.num_rows
                day += dt.timedelta(days=1)
        return rows

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def logs_text(self) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.log()[-6000:]}" for p in self.processes)


@pytest.fixture
def chunk_cluster(
    bmrs_env: pytest.MonkeyPatch,
    redis_server: RedisServer,
    data_dir: Path,
    tmp_path: Path,
    simulator_factory: Callable[..., RunningSimulator],
) -> Iterator[Callable[..., ChunkCluster]]:
    """A factory: ``chunk_cluster(faults="429=0.3", latency_ms=200, BMRS_RATE_PER_S="5")``."""
    made: list[ChunkCluster] = []

    def make(
        *, faults: str | None = None, latency_ms: float = 0, seed: int = 0, **settings: str
    ) -> ChunkCluster:
        logs = tmp_path / "logs"
        logs.mkdir(exist_ok=True)
        access_log = logs / "access.jsonl"
        sim = simulator_factory(
            faults=faults, latency_ms=latency_ms, seed=seed, access_log=access_log
        )
        for name, value in {**FAST_TIMINGS, **settings}.items():
            bmrs_env.setenv(name, value)
        bmrs_env.setenv("BMRS_BROKER_URL", redis_server.url)
        bmrs_env.setenv("BMRS_ELEXON_BASE_URL", sim.url + BASE_PATH)
        get_settings.cache_clear()
        cluster = ChunkCluster(redis_server, sim, access_log, data_dir, logs)
        made.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.stop_all()
