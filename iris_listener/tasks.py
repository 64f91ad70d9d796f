"""The ``iris`` queue's tasks: thin shells over :mod:`iris_listener.stream`.

``store_iris_batch`` is what the listener hands off; it runs with the app's ``acks_late``,
so a worker lost mid-task has the batch redelivered, and storage loads it once. Transient
trouble (Redis, a busy day lock, the disk) retries with the app's backoff.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import filelock
import redis

from iris_listener.stream import store_batch
from worker import catalog
from worker.broker import redis_client
from worker.celery_app import app
from worker.settings import get_settings
from worker.sinks import open_sink

log = logging.getLogger(__name__)

TRANSIENT = (redis.RedisError, filelock.Timeout, OSError)


@app.task(bind=True, name="iris_listener.tasks.store_iris_batch", max_retries=None)
def store_iris_batch(self: Any, dataset: str, body_keys: list[str]) -> dict[str, object]:
    """Parse one dataset's batch of IRIS bodies and append its rows per dataset-day."""
    settings = get_settings()
    try:
        sink, client = open_sink(settings), redis_client(settings)
        stored = store_batch(sink, client, catalog.get(dataset), body_keys)
    except TRANSIENT as exc:
        raise self.retry(exc=exc, countdown=self.backoff_s(self.request.retries, settings)) from exc
    return stored.to_json()


@app.task(name="iris_listener.tasks.prune_iris_stream")
def prune_iris_stream() -> dict[str, list[str]]:
    """Drop stream rows of days the API holds completely and that are past the retention."""
    settings = get_settings()
    sink = open_sink(settings)
    before = dt.date.today() - dt.timedelta(days=settings.iris_retention_days)
    pruned: dict[str, list[str]] = {}
    for dataset in catalog.DATASETS:
        days = sink.prune_stream(dataset, before=before)
        if days:
            pruned[dataset.code] = [day.isoformat() for day in days]
    if pruned:
        log.info("pruned IRIS stream days older than %s: %s", before, pruned)
    return pruned
