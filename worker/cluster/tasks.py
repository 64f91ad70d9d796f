"""The cluster's Celery tasks: thin shells that parse arguments and call plain functions.

Every task takes keyword arguments only (the log context reads ``dataset``, ``day`` and
``job_id`` from them). Retries live in :func:`ingest_chunk`: a busy chunk is tried again in
a few seconds; a transient failure with backoff up to ``BMRS_TASK_MAX_RETRIES`` times, then
recorded as failed; a permanent one is recorded at once and never retried.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import random
from typing import Any

from celery import Task

from iris_listener.status import silence_alert
from worker.cluster import freshness
from worker.cluster.celery_app import ClusterTask, app
from worker.cluster.dispatch import (
    WorkerResources,
    create_backfill_job,
    fan_out,
    give_up,
    publish_chunks,
    run_chunk,
)
from worker.cluster.fetch_lock import ChunkBusyError
from worker.cluster.sweep import configured_datasets, sweep
from worker.elexon import catalog
from worker.elexon.settlement import current_settlement_day, parse_day
from worker.settings import get_settings
from worker.sinks.quota import LoadBudgetExhausted

log = logging.getLogger(__name__)

# A busy chunk is tried again after this many seconds (well inside any visibility timeout).
BUSY_RETRY_S = (1.0, 4.0)


@functools.cache
def resources() -> WorkerResources:
    """Built on first use in each worker process (after the fork), then reused."""
    return WorkerResources.from_settings(get_settings())


@app.task(bind=True, name="worker.cluster.tasks.ingest_chunk", max_retries=None)
def ingest_chunk(
    self: Task,
    dataset: str,
    day: str,
    job_id: str | None = None,
    enqueued_utc: str | None = None,
    replace: bool = False,
    attempt: int = 0,
) -> dict[str, Any]:
    """Fetch, dedup and load one dataset-day."""
    res = resources()
    chosen, the_day = catalog.get(dataset), parse_day(day)
    since = dt.datetime.fromisoformat(enqueued_utc) if enqueued_utc else None
    try:
        result = run_chunk(res, chosen, the_day, job_id=job_id, enqueued_utc=since, replace=replace)
    except ChunkBusyError as exc:
        log.info("%s", exc)
        raise self.retry(countdown=random.uniform(*BUSY_RETRY_S)) from None
    except LoadBudgetExhausted as exc:
        # Not a failure: BigQuery's daily load quota says when to come back; no attempt spent.
        # Capped so the countdown stays inside the broker's visibility timeout.
        log.warning("%s", exc)
        raise self.retry(countdown=min(exc.retry_after_s, res.settings.retry_backoff_max_s)) from None
    # Anything else is treated as transient: API retries ran out, Redis, a time limit, the disk.
    except Exception as exc:  # noqa: BLE001
        settings = res.settings
        if attempt >= settings.task_max_retries:
            return give_up(res, chosen, the_day, job_id, exc, attempt + 1).to_json()
        countdown = ClusterTask.backoff_s(attempt, settings)
        log.warning(
            "%s %s: %s: %s; retry %d of %d in %.0fs",
            dataset,
            day,
            type(exc).__name__,
            exc,
            attempt + 1,
            settings.task_max_retries,
            countdown,
        )
        kwargs = {**(self.request.kwargs or {}), "attempt": attempt + 1}
        raise self.retry(countdown=countdown, kwargs=kwargs) from None
    return result.to_json()


@app.task(bind=True, name="worker.cluster.tasks.backfill")
def backfill(
    self: Task,
    datasets: str | list[str] | None = None,
    start: str | None = None,
    end: str | None = None,
    job_id: str | None = None,
) -> dict[str, Any]:
    """Fan a job out into one ``ingest_chunk`` per dataset-day (creating the job if needed)."""
    store = resources().jobs
    if job_id is None:
        if not (datasets and start and end):
            raise ValueError("backfill needs job_id, or datasets, start and end")
        job_id = create_backfill_job(
            store, catalog.parse_codes(datasets), parse_day(start), parse_day(end)
        )
    sent = fan_out(self.app, store, job_id)
    log.info("job %s: %d chunks enqueued", job_id, sent, extra={"job_id": job_id})
    return {"job_id": job_id, "enqueued": sent}


@app.task(bind=True, name="worker.cluster.tasks.poll_realtime")
def poll_realtime(self: Task, dataset: str) -> dict[str, Any]:
    """Enqueue the current and previous settlement day of a dataset on the realtime queue."""
    code = catalog.get(dataset).code
    today = current_settlement_day()
    days = [today - dt.timedelta(days=1), today]
    publish_chunks(self.app, [(code, day) for day in days], job_id=None, queue="realtime")
    return {"dataset": code, "days": [d.isoformat() for d in days]}


@app.task(bind=True, name="worker.cluster.tasks.sweep_gaps")
def sweep_gaps(self: Task, lookback_days: int | None = None) -> dict[str, Any]:
    """Find missing, partial, failed or stale dataset-days and enqueue them as one job."""
    res = resources()
    settings = res.settings
    lookback = lookback_days or settings.sweep_lookback_days
    removed = res.sink.vacuum()  # the daily sweep is also when superseded files are reclaimed
    if removed:
        log.info("gap sweep: %d superseded day files removed", removed)
    due = sweep(res.sink, configured_datasets(settings), current_settlement_day(), lookback)
    if not due:
        log.info("gap sweep (%d days back): nothing to fetch", lookback)
        return {"job_id": None, "due": 0}
    job_id = res.jobs.create("sweep", [(c.dataset.code, c.day) for c in due])
    kinds: dict[str, int] = {}
    for chunk in due:
        kind = chunk.reason.split(":")[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    sent = fan_out(self.app, res.jobs, job_id)
    log.info(
        "gap sweep (%d days back): %d chunks due (%s), job %s",
        lookback,
        len(due),
        ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())),
        job_id,
        extra={"job_id": job_id},
    )
    return {"job_id": job_id, "due": len(due), "enqueued": sent, "reasons": kinds}


@app.task(bind=True, name="worker.cluster.tasks.check_freshness")
def check_freshness(self: Task) -> dict[str, Any]:
    """Age of each dataset's newest row against its threshold; alert on every change."""
    res = resources()
    settings = res.settings
    results = freshness.assess(res.sink, configured_datasets(settings))
    webhook = settings.alert_webhook.get_secret_value() if settings.alert_webhook else None
    alerts = freshness.record_and_alert(res.redis, results, webhook)
    alerts += freshness.record_iris_silence(res.redis, silence_alert(res.redis), webhook)
    return {"stale": [r.dataset for r in results if r.stale], "alerts": len(alerts)}
