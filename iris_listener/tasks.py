"""The ``iris`` queue's tasks: thin shells over :mod:`iris_listener.stream`.

``store_iris_batch`` is what the listener hands off; it runs with the app's ``acks_late``,
so a worker lost mid-task has the batch redelivered, and storage loads it once. Transient
trouble (Redis, a busy day lock, the disk) retries with the app's backoff; a BigQuery table
whose daily load budget is spent retries when the budget says it may. Anything else (a
body gone from Redis, rows the listener's check let through but the worker refuses) fails
the task loudly: retrying could never help.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import filelock
import redis

from iris_listener.stream import store_batch
from worker.cluster.celery_app import app
from worker.cluster.tasks import resources
from worker.elexon import catalog
from worker.settings import get_settings
from worker.sinks.quota import LoadBudgetExhausted

log = logging.getLogger(__name__)

TRANSIENT = (redis.RedisError, filelock.Timeout, OSError)


@app.task(bind=True, name="iris_listener.tasks.store_iris_batch", max_retries=None)
def store_iris_batch(self: Any, dataset: str, body_keys: list[str]) -> dict[str, object]:
    """Parse one dataset's batch of IRIS bodies and append its rows per dataset-day."""
    res = resources()
    try:
        stored = store_batch(res.sink, res.redis, catalog.get(dataset), body_keys)
    except LoadBudgetExhausted as exc:
        # never wait unacknowledged longer than the visibility timeout allows (check_timing)
        countdown = min(exc.retry_after_s, res.settings.retry_backoff_max_s)
        raise self.retry(exc=exc, countdown=countdown) from exc
    except TRANSIENT as exc:
        countdown = self.backoff_s(self.request.retries, res.settings)
        raise self.retry(exc=exc, countdown=countdown) from exc
    return stored.to_json()


@app.task(name="iris_listener.tasks.prune_iris_stream")
def prune_iris_stream() -> dict[str, list[str]]:
    """Drop stream rows of days the API holds completely and that are past the retention."""
    settings, sink = get_settings(), resources().sink
    before = dt.date.today() - dt.timedelta(days=settings.iris_retention_days)
    pruned: dict[str, list[str]] = {}
    for dataset in catalog.DATASETS:
        days = sink.prune_stream(dataset, before=before)
        if days:
            pruned[dataset.code] = [day.isoformat() for day in days]
    if pruned:
        log.info("pruned IRIS stream days older than %s: %s", before, pruned)
    return pruned
