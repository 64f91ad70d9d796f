"""The one Redis the cluster shares: Celery's broker, and the home of its coordination state.

Besides the task queues, Redis holds what every worker on every machine must agree on: the
Elexon request budget (:mod:`worker.cluster.ratelimit`), who is fetching which dataset-day
(:mod:`worker.cluster.fetch_lock`), job progress (:mod:`worker.cluster.jobs`), the beat lease
(:mod:`beat.scheduler`) and the freshness alert state (:mod:`worker.cluster.freshness`). All keys of
ours start with ``bmrs:``; Celery's own keys are left as Celery names them.
"""

from __future__ import annotations

import functools

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from worker.settings import Settings

# Used when BMRS_BROKER_URL is unset; `bmrs up` starts a redis-server there.
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
KEY_PREFIX = "bmrs:"
# How kombu's Redis transport lays messages out: a queue's priorities 3, 6 and 9 live in
# lists beside it, and messages a worker has taken wait in one hash until acknowledged.
QUEUE_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
UNACKED_KEY = "unacked"

# Commands ride out a Redis restart of up to about half a minute before failing.
_RETRIES = 20
_RETRY_CAP_S = 3.0


def broker_url(settings: Settings) -> str:
    """The Redis URL of the broker: the setting, or the local default."""
    return settings.broker_url or DEFAULT_BROKER_URL


@functools.cache
def _client(url: str) -> redis.Redis:
    # One pool per process and URL; redis-py resets the pool in a forked child by itself.
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=5,
        socket_timeout=30,
        health_check_interval=15,
        retry=Retry(ExponentialWithJitterBackoff(base=0.2, cap=_RETRY_CAP_S), _RETRIES),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )


def redis_client(settings: Settings) -> redis.Redis:
    """The process's client of the cluster's Redis, retrying through short outages."""
    return _client(broker_url(settings))


def masked_url(url: str) -> str:
    """A Redis URL with any password replaced, for logs and `bmrs status`."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    return f"{scheme}{sep}****@{rest.rsplit('@', 1)[1]}"


def broker_problem(settings: Settings) -> str | None:
    """None if the broker answers PING now, else what is wrong (one try, two seconds)."""
    url = broker_url(settings)
    probe = redis.Redis.from_url(
        url,
        socket_connect_timeout=2,
        socket_timeout=2,
        retry=Retry(ExponentialWithJitterBackoff(), 0),
    )
    try:
        probe.ping()
    except redis.RedisError as exc:
        return f"cannot reach the broker at {masked_url(url)}: {exc}"
    finally:
        probe.close()
    return None
