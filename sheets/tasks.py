"""The dashboard's Celery task, ``sheets.tasks.refresh_dashboard``, on the ``dashboard`` queue.

Beat sends it every ``BMRS_DASHBOARD_REFRESH_S`` (beat/schedule.py). Two refreshes never run
at once: a Redis lock, held at most the task's hard time limit (so a killed worker cannot
keep it), makes a second one skip. A failed refresh is logged once with its reason and not
retried: the next scheduled refresh is the retry, with fresher data.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
from typing import Any

import redis
from celery import Celery

from sheets.refresh import missing_remit_days, refresh
from worker.cluster.broker import KEY_PREFIX, redis_client
from worker.cluster.celery_app import app
from worker.cluster.dispatch import submit_chunks
from worker.cluster.jobs import JobStore
from worker.elexon.settlement import current_settlement_day
from worker.settings import Settings, get_settings

log = logging.getLogger(__name__)

LOCK_KEY = KEY_PREFIX + "dashboard:refresh"
# Set while a REMIT history job is recent: one such job a day at most.
REMIT_JOB_KEY = KEY_PREFIX + "dashboard:remit-history"
REMIT_JOB_EVERY_S = 24 * 3600


@app.task(name="sheets.tasks.refresh_dashboard")
def refresh_dashboard() -> dict[str, Any]:
    """Refresh the dashboard once (skipped if a refresh is already running)."""
    settings = get_settings()
    return run_refresh(settings, redis_client(settings), app)


def run_refresh(
    settings: Settings, client: redis.Redis, celery_app: Celery | None = None,
    *, now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The task's body: lock, make sure REMIT history is coming, refresh, log the outcome."""
    lock = client.lock(LOCK_KEY, timeout=settings.task_time_limit_s, blocking=False)
    if not lock.acquire(blocking=False):
        log.info("dashboard refresh skipped: another refresh is still running")
        return {"status": "skipped", "reason": "another refresh is still running"}
    try:
        if celery_app is not None:
            enqueue_remit_history(settings, client, celery_app, now=now)
        result = refresh(settings, now=now, redis_client=client)
    except Exception as exc:  # noqa: BLE001 - any failure waits for the next scheduled refresh
        reason = f"{type(exc).__name__}: {exc}"
        log.error("dashboard refresh failed: %s; the next scheduled refresh will try again",
                  reason)
        return {"status": "failed", "reason": reason}
    finally:
        with contextlib.suppress(redis.exceptions.LockError):
            lock.release()
    log.info("dashboard refreshed: %s %s", result.target, result.location)
    return {"status": "written", **dataclasses.asdict(result)}


def enqueue_remit_history(
    settings: Settings, client: redis.Redis, celery_app: Celery, *, now: dt.datetime | None = None
) -> str | None:
    """Enqueue the REMIT days the outages table still lacks, as one job, at most once a day.

    On a cluster's first start this backfills the whole span (``BMRS_REMIT_BACKFILL_DAYS``,
    default 90); afterwards it only picks up days that failed or were never fetched.
    """
    days = missing_remit_days(settings, current_settlement_day(now))
    if not days or not client.set(REMIT_JOB_KEY, "1", nx=True, ex=REMIT_JOB_EVERY_S):
        return None
    job_id = submit_chunks(celery_app, JobStore(client), "remit-history",
                           [("REMIT", day) for day in days])
    log.info("outages: REMIT history lacks %d of the last %d days; enqueued them as job %s",
             len(days), settings.remit_backfill_days, job_id)
    return job_id
