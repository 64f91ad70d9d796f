"""A Celery beat scheduler that only schedules while it holds the cluster's one beat lease.

Two beats would send every periodic task twice. So a beat first takes a lease in Redis (a
lock with a TTL, naming its host and pid); a second beat started by mistake waits, checking
now and then, and takes over only when the first is gone and its lease has expired. The
holder renews the lease on every tick (beat ticks at least every third of the TTL) and, if it
ever finds the lease lost (a long stall, Redis restarted without it), exits rather than risk
scheduling beside another beat; its supervisor restarts it and it waits its turn.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import redis
from celery.beat import PersistentScheduler
from redis.exceptions import LockError

from worker.cluster.broker import KEY_PREFIX, redis_client
from worker.settings import get_settings

log = logging.getLogger(__name__)

LEASE_KEY = KEY_PREFIX + "beat:lease"


class BeatLease:
    """The single-beat lease: wait for it, renew it, give it back."""

    def __init__(self, client: redis.Redis, ttl_s: float) -> None:
        self.client = client
        self.ttl_s = ttl_s
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._lock = client.lock(LEASE_KEY, timeout=ttl_s, blocking=False, thread_local=False)

    def wait(self, poll_s: float | None = None) -> None:
        """Block until this process holds the lease."""
        poll_s = poll_s or max(0.5, self.ttl_s / 6)
        announced = False
        while not self._lock.acquire(token=self.holder):
            if not announced:
                other = current_holder(self.client)
                log.warning(
                    "another beat (%s) holds the schedule; waiting to take over if it stops", other
                )
                announced = True
            time.sleep(poll_s)
        log.info("beat lease taken by %s (ttl %.0fs)", self.holder, self.ttl_s)

    def renew(self) -> None:
        """Extend the lease to a full TTL; raises SystemExit if another beat has it now."""
        try:
            self._lock.reacquire()
        except LockError:
            raise SystemExit(
                f"beat {self.holder} lost its lease to {current_holder(self.client)}; "
                "stopping so that only one beat schedules"
            ) from None
        except redis.ConnectionError:
            # Redis is down: nothing can be scheduled anyway. Keep going; the next renewal
            # either succeeds or finds the lease taken and stops.
            log.warning("beat lease not renewed: Redis unreachable")

    def release(self) -> None:
        try:
            self._lock.release()
        except (LockError, redis.ConnectionError):
            pass


def current_holder(client: redis.Redis) -> str | None:
    """Host:pid of the beat holding the lease, if any (for `bmrs status`)."""
    value = client.get(LEASE_KEY)
    return value.decode(errors="replace") if value else None


class SingleBeatScheduler(PersistentScheduler):
    """PersistentScheduler that holds the beat lease while it runs.

    The lease is taken before the schedule file is opened, so two beats sharing a data dir
    never open it at once. Celery also builds a *lazy* scheduler just to print its banner;
    that one takes no lease.
    """

    _waiting = False  # this process is waiting for the lease

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.lease: BeatLease | None = None
        if not kwargs.get("lazy"):
            if SingleBeatScheduler._waiting:
                # Celery's SIGTERM handler asks for the scheduler while we still wait.
                raise SystemExit("beat stopped while waiting for the schedule lease")
            settings = get_settings()
            lease = BeatLease(redis_client(settings), settings.beat_lock_ttl_s)
            SingleBeatScheduler._waiting = True
            try:
                lease.wait()
            finally:
                SingleBeatScheduler._waiting = False
            self.lease = lease
            filename = kwargs.get("schedule_filename")
            if filename:
                Path(filename).parent.mkdir(parents=True, exist_ok=True)
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if self.lease is None:
            return super().tick(*args, **kwargs)
        self.lease.renew()
        return min(super().tick(*args, **kwargs), self.lease.ttl_s / 3)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.lease is not None:
                self.lease.release()
