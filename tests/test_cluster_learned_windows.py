"""Workers share what they learn about request windows through the cluster's Redis."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from tests.support.cluster import ChunkCluster
from worker.elexon.windows import RedisWindowStore

HOUR = dt.timedelta(hours=1)


def test_workers_learn_a_hidden_limit_once_and_every_later_chunk_starts_there(
    chunk_cluster: Callable[..., ChunkCluster],
) -> None:
    cluster = chunk_cluster()
    cluster.sim.app.window_limits = {"BOD": HOUR}  # as `bmrs sim --window-limit BOD=1h`
    workers = [cluster.start_worker("w1"), cluster.start_worker("w2")]
    cluster.wait_workers(2)
    start, end = dt.date(2025, 10, 1), dt.date(2025, 10, 6)
    progress = cluster.wait_job(cluster.backfill("BOD", start, end), timeout=120)

    assert progress.total("done") == 6, progress.failures
    cluster.assert_no_duplicates("BOD", start, end)
    assert RedisWindowStore(cluster.redis_server.client()).get("BOD") == HOUR
    # The access log is written just after each answer: give the last line a moment.
    deadline = time.monotonic() + 5
    while len(requests := cluster.requests()) < 6 * 24 + 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    refused = [r for r in requests if r["status"] == 400]
    # At most the two chunks that started before either worker learned were refused.
    assert 1 <= len(refused) <= len(workers), refused
    assert len(requests) == len(refused) + 6 * 24
    logs = "".join(w.log() for w in workers)
    assert logs.count("remembered for every later chunk") == 1, cluster.logs_text()
