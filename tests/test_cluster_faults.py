"""Losing a worker or the broker mid-run: the chunk comes back, completes, and lands once."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from collections.abc import Callable

from tests.support.cluster import ChunkCluster
from tests.support.iris import wait_for
from worker.elexon import catalog

CODES = "FUELINST,FREQ,MID,BOALF"


def _chunk_in_flight(cluster: ChunkCluster) -> tuple[str, str, int]:
    """(dataset, day, pid) of a chunk some worker process is fetching now (its fetch lock)."""
    found: list[tuple[str, str, int]] = []

    def held() -> bool:
        client = cluster.redis_server.client()
        for key in client.scan_iter("bmrs:fetch:*"):
            holder = client.get(key)
            if holder:
                _, _, dataset, day = key.decode().split(":")  # bmrs:fetch:<CODE>:<day>
                found.append((dataset, day, int(holder.decode().split(":")[1])))  # host:pid:...
                return True
        return False

    wait_for(held, 30, "a chunk in flight", cluster)  # type: ignore[arg-type]
    return found[0]


def test_a_sigkilled_worker_has_its_chunk_redelivered_and_completed_once(
    chunk_cluster: Callable[..., ChunkCluster],
) -> None:
    # Each request takes 1.5 s, so the worker is surely mid-chunk when it is killed.
    cluster = chunk_cluster(latency_ms=1500)
    doomed = cluster.start_worker("doomed")
    cluster.wait_workers(1)
    start, end = dt.date(2025, 10, 1), dt.date(2025, 10, 3)
    job_id = cluster.backfill("FUELINST", start, end)

    dataset, day, _ = _chunk_in_flight(cluster)
    doomed.kill()  # SIGKILL to the worker and its pool process: nothing is acknowledged
    killed_at = time.monotonic()
    survivor = cluster.start_worker("survivor")
    progress = cluster.wait_job(job_id, timeout=60)
    recovered_s = time.monotonic() - killed_at

    assert progress.total("done") == 3, progress.failures
    cluster.assert_no_duplicates("FUELINST", start, end)
    # The killed chunk was redelivered (after the visibility timeout) and done by the survivor.
    assert f"{dataset} {day}: complete" in survivor.log(), cluster.logs_text()
    # Bounded: visibility timeout (14 s) + restore interval (1 s) + the fetch itself.
    assert recovered_s < 14 + 1 + 10, recovered_s


def test_a_sigkilled_pool_process_has_its_chunk_redelivered_at_once(
    chunk_cluster: Callable[..., ChunkCluster],
) -> None:
    cluster = chunk_cluster(latency_ms=1500)
    worker = cluster.start_worker("w1")
    cluster.wait_workers(1)
    start, end = dt.date(2025, 10, 5), dt.date(2025, 10, 6)
    job_id = cluster.backfill("FUELINST", start, end)

    dataset, day, pid = _chunk_in_flight(cluster)
    os.kill(pid, signal.SIGKILL)  # the pool process only: the worker rejects, the broker requeues
    progress = cluster.wait_job(job_id, timeout=60)

    assert progress.total("done") == 2, progress.failures
    cluster.assert_no_duplicates("FUELINST", start, end)
    log = worker.log()
    assert "WorkerLostError" in log or "exited prematurely" in log, log[-3000:]
    assert log.count(f"{dataset} {day}: complete") == 1


def test_a_redis_restart_mid_run_pauses_the_run_which_then_completes(
    chunk_cluster: Callable[..., ChunkCluster],
) -> None:
    cluster = chunk_cluster(latency_ms=150)
    cluster.start_worker("w1")
    cluster.start_worker("w2")
    cluster.wait_workers(2)
    start, end = dt.date(2025, 9, 1), dt.date(2025, 9, 6)
    job_id = cluster.backfill(CODES, start, end)
    wait_for(
        lambda: cluster.store.progress(job_id).total("done") >= 4, 30, "a few chunks done", cluster
    )  # type: ignore[arg-type]

    cluster.redis_server.restart(down_s=2.0)  # append-only file: queues and jobs survive
    progress = cluster.wait_job(job_id, timeout=100)

    assert progress.total("done") == 24, progress.failures
    for dataset in catalog.parse_codes(CODES):
        assert all(c.status == "complete" for c in cluster.sink.coverage_range(dataset, start, end))
    cluster.assert_no_duplicates(CODES, start, end)
    assert all(p.running for p in cluster.processes), "a worker died with the broker"
