"""What ``bmrs status`` reports: workers, queues, the beat, per-dataset freshness and errors, jobs.

Gathered from the broker (workers answer a broadcast; queue depths are Redis list lengths),
the warehouse (freshness and the last failed day, from coverage, the one source of truth)
and the job store. The JSON keys of :func:`gather` are public (``bmrs status --json``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import redis
from celery import Celery

from beat.scheduler import current_holder
from iris_listener.status import iris_status
from worker.cluster import freshness
from worker.cluster.broker import (
    QUEUE_PRIORITY_SUFFIXES,
    UNACKED_KEY,
    broker_problem,
    broker_url,
    masked_url,
    redis_client,
)
from worker.cluster.celery_app import QUEUES
from worker.cluster.jobs import JobStore, UnknownJobError
from worker.cluster.sweep import configured_datasets, sweep_window
from worker.elexon.catalog import Dataset
from worker.elexon.settlement import current_settlement_day
from worker.settings import Settings
from worker.sinks import Sink
from worker.sinks.base import days_between


def queue_depths(client: redis.Redis) -> dict[str, int]:
    """Messages waiting in each queue (not those already taken by a worker)."""
    pipe = client.pipeline()
    for queue in QUEUES:
        for suffix in QUEUE_PRIORITY_SUFFIXES:
            pipe.llen(queue + suffix)
    counts = pipe.execute()
    step = len(QUEUE_PRIORITY_SUFFIXES)
    return {queue: sum(counts[i * step : (i + 1) * step]) for i, queue in enumerate(QUEUES)}


def workers(app: Celery, timeout_s: float = 1.0) -> list[dict[str, Any]]:
    """Workers that answered, with the queues they consume and the tasks they are running."""
    inspect = app.control.inspect(timeout=timeout_s)
    queues = inspect.active_queues() or {}
    active = inspect.active() or {}
    return [
        {
            "name": name,
            "queues": sorted(q["name"] for q in queues[name]),
            "active": len(active.get(name, [])),
        }
        for name in sorted(queues)
    ]


def last_errors(
    sink: Sink, datasets: list[Dataset], today: dt.date, lookback_days: int
) -> dict[str, dict[str, Any]]:
    """The most recent failed day of each dataset within the sweep's window, with its reason.

    Every dataset's window is read at once (one query on BigQuery, whatever the catalog)."""
    windows = {
        dataset: window for dataset in datasets
        if (window := sweep_window(dataset, today + dt.timedelta(days=1), lookback_days))
    }
    coverage = sink.read_coverage_spans(windows) if windows else {}
    found: dict[str, dict[str, Any]] = {}
    for dataset, window in windows.items():
        known = coverage.get(dataset.code, {})
        failed = [known[day] for day in days_between(*window)
                  if day in known and known[day].status == "failed"]
        if failed:
            last = failed[-1]
            found[dataset.code] = {
                "date": last.date.isoformat(),
                "reason": last.reason,
                "failed_days": len(failed),
            }
    return found


def gather(settings: Settings, app: Celery, sink: Sink, *, jobs_shown: int = 5) -> dict[str, Any]:
    """The whole status as plain data; works (with what it can see) when the broker is down."""
    datasets = configured_datasets(settings)
    today = current_settlement_day()
    problem = broker_problem(settings)
    status: dict[str, Any] = {
        "broker": {
            "url": masked_url(broker_url(settings)),
            "reachable": problem is None,
            "error": problem,
        },
        "workers": [],
        "queues": {},
        "unacked": None,
        "beat": None,
        "datasets": [],
        "jobs": [],
        "iris": None,
    }
    alerted: dict[str, dict[str, Any]] = {}
    if problem is None:
        client = redis_client(settings)
        status["workers"] = workers(app)
        status["queues"] = queue_depths(client)
        status["unacked"] = client.hlen(UNACKED_KEY)
        status["beat"] = current_holder(client)
        alerted = freshness.stored_states(client)
        status["iris"] = iris_status(client)
        store = JobStore(client)
        for job_id in store.recent(jobs_shown):
            try:
                progress = store.progress(job_id)
            except UnknownJobError:
                continue
            totals = progress.to_json()["totals"]
            status["jobs"].append(
                {
                    "job_id": job_id,
                    "kind": progress.kind,
                    "created_utc": progress.created_utc,
                    "finished": progress.finished,
                    **totals,
                }
            )
    errors = last_errors(sink, datasets, today, settings.sweep_lookback_days)
    for result in freshness.assess(sink, datasets):
        entry = result.to_json()
        entry["alerted"] = alerted.get(result.dataset, {}).get("stale")
        entry["last_error"] = errors.get(result.dataset)
        status["datasets"].append(entry)
    return status
