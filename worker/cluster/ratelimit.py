"""One Elexon request budget shared by every worker process on every machine (DESIGN.md #6).

A sliding-window log in Redis: each granted request is a member of a sorted set scored by the
Redis server's clock, and a request is granted only while fewer than ``burst`` grants lie in
the last ``burst / rate`` seconds. So ``burst`` requests may go at once, and over any interval
of ``k * burst / rate`` seconds at most ``k * burst`` go: with ``BMRS_RATE_BURST`` equal to
(or dividing) ``BMRS_RATE_PER_S``, no sliding second ever holds more than ``BMRS_RATE_PER_S``.
A token bucket would allow ``burst + rate`` in a second, which is not the budget we promise.

The window is stretched by a guard of 100 ms so that the moment a request *reaches* the API
(its grant plus scheduling and network jitter: tens of milliseconds on a busy machine) still
keeps within the budget the API counts. So the cluster runs a little under its budget.
"""

from __future__ import annotations

import logging
import random
import time
import uuid

import redis

from worker.cluster.broker import KEY_PREFIX, redis_client
from worker.settings import Settings

log = logging.getLogger(__name__)

ELEXON_KEY = KEY_PREFIX + "ratelimit:elexon"
GUARD_S = 0.1

# KEYS[1] grants zset; ARGV window_us, limit, member. Returns 0 when granted, else the
# microseconds until the oldest grant in the window leaves it.
_GRANT = """
local now = redis.call('TIME')
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local window_us = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_us - window_us)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now_us, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window_us / 1000) + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window_us - now_us)
"""


class SharedRateLimiter:
    """``acquire()`` blocks until the shared budget allows one more request."""

    def __init__(
        self,
        client: redis.Redis,
        rate_per_s: float,
        burst: int,
        *,
        key: str = ELEXON_KEY,
        guard_s: float = GUARD_S,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError(
                f"rate must be > 0 and burst >= 1, got rate={rate_per_s} burst={burst}"
            )
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.key = key
        self.window_s = burst / rate_per_s + guard_s
        self._grant = client.register_script(_GRANT)
        self.waited_s = 0.0

    def try_acquire(self) -> float:
        """Take a grant if the budget allows: 0.0, else the seconds to wait before asking again."""
        wait_us = self._grant(
            keys=[self.key], args=[int(self.window_s * 1_000_000), self.burst, uuid.uuid4().hex]
        )
        return int(wait_us) / 1_000_000

    def acquire(self) -> None:
        """Block until a grant is taken (the ``acquire`` hook of :class:`ElexonClient`)."""
        while True:
            wait_s = self.try_acquire()
            if wait_s == 0:
                return
            # A little jitter so that waiting workers do not all ask again at the same instant.
            pause = wait_s + random.uniform(0, 0.01)
            self.waited_s += pause
            time.sleep(pause)


def limiter_from_settings(settings: Settings) -> SharedRateLimiter:
    """The Elexon budget of ``BMRS_RATE_PER_S`` / ``BMRS_RATE_BURST`` in the cluster's Redis."""
    return SharedRateLimiter(redis_client(settings), settings.rate_per_s, settings.rate_burst)
