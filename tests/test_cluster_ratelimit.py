"""One Elexon request budget for every worker: a sliding-window limiter in Redis."""

from __future__ import annotations

import bisect
import datetime as dt
import threading
import time
from collections.abc import Callable

from tests.support.cluster import ChunkCluster
from tests.support.redis import RedisServer
from worker.cluster.ratelimit import SharedRateLimiter


def max_in_any_window(instants: list[float], window_s: float = 1.0) -> int:
    """The most instants found in any half-open window [t, t + window_s)."""
    ordered = sorted(instants)
    return max(
        (bisect.bisect_left(ordered, t + window_s) - i for i, t in enumerate(ordered)), default=0
    )


def test_limiter_grants_at_most_the_budget_in_any_sliding_second_across_threads(
    redis_server: RedisServer,
) -> None:
    # Grant times as the limiter records them (Redis server clock, in its sorted set): a
    # thread's own clock reading after acquire() can lag its grant by a loaded machine's
    # scheduling delay, which would measure the test machine rather than the limiter.
    granted: dict[bytes, float] = {}
    lock = threading.Lock()

    def take(n: int) -> None:
        client = redis_server.client()
        limiter = SharedRateLimiter(client, rate_per_s=10, burst=10, key="test:budget")
        for _ in range(n):
            limiter.acquire()
            seen = client.zrange("test:budget", 0, -1, withscores=True)
            with lock:
                granted.update({member: score / 1e6 for member, score in seen})

    threads = [threading.Thread(target=take, args=(10,)) for _ in range(3)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    elapsed = time.monotonic() - started

    grants = sorted(granted.values())
    assert len(grants) == 30
    assert max_in_any_window(grants) <= 10
    # 30 grants at 10 per (1 s + guard): the first 10 at once, then two more windows.
    assert 2.0 <= elapsed < 5.0, elapsed


def test_limiter_says_how_long_to_wait_once_the_burst_is_spent(redis_server: RedisServer) -> None:
    limiter = SharedRateLimiter(redis_server.client(), rate_per_s=2, burst=4, key="test:wait")
    assert [limiter.try_acquire() for _ in range(4)] == [0.0] * 4
    wait = limiter.try_acquire()
    assert 1.5 < wait <= 2.1  # the window is burst / rate = 2 s (plus the 100 ms guard)


def test_a_429_storm_on_four_workers_completes_within_the_shared_budget(
    chunk_cluster: Callable[..., ChunkCluster],
) -> None:
    cluster = chunk_cluster(
        faults="429=0.3",
        BMRS_RATE_PER_S="5",
        BMRS_RATE_BURST="5",
        BMRS_TASK_SOFT_TIME_LIMIT_S="40",
        BMRS_TASK_TIME_LIMIT_S="45",
        BMRS_VISIBILITY_TIMEOUT_S="60",
    )
    for i in range(4):
        cluster.start_worker(f"w{i}")
    cluster.wait_workers(4)
    # Light datasets, so the in-process simulator's own CPU use does not blur arrival times.
    codes, start, end = "MID,DISEBSP,BOALF,NETBSAD", dt.date(2025, 8, 1), dt.date(2025, 8, 6)

    progress = cluster.wait_job(cluster.backfill(codes, start, end), timeout=100)

    assert progress.total("done") == 24, progress.failures
    cluster.assert_no_duplicates(codes, start, end)
    requests = cluster.requests()
    assert sum(1 for r in requests if r["status"] == 429) >= 5, "the storm did not happen"
    # What the API saw, by arrival time, across all four workers: never over 5 in a second.
    assert max_in_any_window([r["arrived"] for r in requests]) <= 5
    span = max(r["arrived"] for r in requests) - min(r["arrived"] for r in requests)
    assert span >= (len(requests) - 5) / 5 * 0.95  # the budget, not the workers, set the pace
