"""Who is fetching which dataset-day: a Redis lock per chunk, across every machine.

The sink's own lock (a file lock locally) already makes concurrent *writes* of a day safe;
this one stops two workers *fetching* the same chunk at once, which would spend the shared
request budget twice for nothing. Its TTL is the task's hard time limit, so the lock of a
worker killed mid-chunk expires before the broker redelivers that chunk (the visibility
timeout is longer than the hard limit).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import socket
import uuid
from collections.abc import Iterator

import redis
from redis.exceptions import LockError

from worker.cluster.broker import KEY_PREFIX

log = logging.getLogger(__name__)


class ChunkBusyError(Exception):
    """Another worker holds this dataset-day's fetch lock; try again shortly."""

    def __init__(self, dataset: str, day: dt.date, holder: str | None) -> None:
        super().__init__(
            f"{dataset} {day}: already being fetched by {holder or 'another worker'}; "
            "this copy of the task will try again when it is done"
        )
        self.dataset = dataset
        self.day = day


def lock_key(dataset: str, day: dt.date) -> str:
    return f"{KEY_PREFIX}fetch:{dataset}:{day.isoformat()}"


@contextlib.contextmanager
def fetch_lock(client: redis.Redis, dataset: str, day: dt.date, ttl_s: float) -> Iterator[None]:
    """Hold the chunk's fetch lock for the block, or raise :class:`ChunkBusyError` at once."""
    key = lock_key(dataset, day)
    # The token names the holder, so a busy chunk's error says who has it.
    token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    lock = client.lock(key, timeout=ttl_s, blocking=False, thread_local=False)
    if not lock.acquire(token=token):
        holder = client.get(key)
        raise ChunkBusyError(dataset, day, holder.decode(errors="replace") if holder else None)
    try:
        yield
    finally:
        try:
            lock.release()
        except LockError:
            # Expired (the chunk outlived its TTL) or Redis lost it: the write was still
            # guarded by the sink's own lock, so nothing is wrong with the data.
            log.warning("%s %s: fetch lock had expired before release", dataset, day)
