"""Getting chunks to workers and running them once there: the plain functions behind the tasks.

Enqueue side: a job is recorded first (:mod:`worker.cluster.jobs`), then one ``ingest_chunk`` message
per dataset-day is published, stamped with the time it was enqueued. Worker side: a chunk is
run under its fetch lock; if another task fetched the same day after this one was enqueued
(the same range enqueued twice, a redelivery after the work was done), it is not fetched
again. Loads are idempotent anyway (DESIGN.md #1); this only saves the request budget.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any

import redis
from celery import Celery

from worker.cluster.broker import redis_client
from worker.cluster.fetch_lock import fetch_lock
from worker.cluster.jobs import JobStore
from worker.cluster.ratelimit import limiter_from_settings
from worker.elexon import pipeline
from worker.elexon.catalog import Dataset
from worker.elexon.client import ApiError, ElexonClient, client_from_settings
from worker.elexon.coverage import Coverage
from worker.elexon.parse import SchemaError
from worker.elexon.settlement import days_between
from worker.elexon.windows import RedisWindowStore
from worker.settings import Settings
from worker.sinks import Sink, open_sink

log = logging.getLogger(__name__)

INGEST_TASK = "worker.cluster.tasks.ingest_chunk"
BACKFILL_TASK = "worker.cluster.tasks.backfill"
# Progress of a fan-out is saved every this many messages (a redelivered fan-out resumes).
_FANOUT_BATCH = 200


@dataclasses.dataclass
class WorkerResources:
    """What a worker process builds once and every chunk uses."""

    settings: Settings
    sink: Sink
    client: ElexonClient
    redis: redis.Redis
    jobs: JobStore

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerResources:
        store = redis_client(settings)
        # Workers always share learned request windows through the cluster's Redis.
        client = client_from_settings(
            settings, acquire=limiter_from_settings(settings).acquire, windows=RedisWindowStore(store)
        )
        return cls(settings, open_sink(settings), client, store, JobStore(store))


@dataclasses.dataclass
class ChunkResult:
    """How a chunk task ended; shown in Flower as the task's result."""

    dataset: str
    day: dt.date
    state: str  # loaded | already-fetched | failed | cancelled
    status: str | None = None  # the day's coverage status
    rows: int = 0
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "day": self.day.isoformat()}


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def run_chunk(
    res: WorkerResources,
    dataset: Dataset,
    day: dt.date,
    *,
    job_id: str | None = None,
    enqueued_utc: dt.datetime | None = None,
    replace: bool = False,
) -> ChunkResult:
    """Fetch and load one chunk under its fetch lock.

    Raises :class:`~worker.cluster.fetch_lock.ChunkBusyError` when another worker holds the chunk,
    and transient errors (API retries exhausted, Redis, time limits) for the task to retry.
    A permanent error (the API refuses, rows break the schema) is recorded by the pipeline
    as the day's failure and returned, not raised: retrying would not help.
    """
    if job_id and res.jobs.is_cancelled(job_id):
        res.jobs.mark_cancelled(job_id, dataset.code, day)
        log.info("%s %s: job %s was cancelled; not fetched", dataset.code, day, job_id)
        return ChunkResult(dataset.code, day, "cancelled")
    with fetch_lock(res.redis, dataset.code, day, ttl_s=res.settings.task_time_limit_s):
        if not replace and enqueued_utc is not None:
            done = fetched_since(res.sink, dataset, day, enqueued_utc)
            if done is not None:
                log.info(
                    "%s %s: fetched at %s, after this task was enqueued; not fetched again",
                    dataset.code,
                    day,
                    done.fetched_utc,
                )
                if job_id:
                    res.jobs.mark_done(job_id, done)
                return ChunkResult(dataset.code, day, "already-fetched", done.status, done.rows)
        try:
            coverage = pipeline.ingest_chunk(res.client, res.sink, dataset, day, replace=replace)
        except (ApiError, SchemaError) as exc:
            if getattr(exc, "transient", False):
                raise
            # pipeline.ingest_chunk recorded the failure and logged it.
            reason = f"{type(exc).__name__}: {exc}"
            if job_id:
                res.jobs.mark_failed(job_id, dataset.code, day, reason)
            return ChunkResult(dataset.code, day, "failed", "failed", reason=reason)
    if job_id:
        res.jobs.mark_done(job_id, coverage)
    return ChunkResult(dataset.code, day, "loaded", coverage.status, coverage.rows, coverage.reason)


def fetched_since(
    sink: Sink, dataset: Dataset, day: dt.date, since: dt.datetime
) -> Coverage | None:
    """The day's coverage if a fetch after ``since`` loaded it (a failed one does not count)."""
    coverage = sink.read_coverage(dataset, [day]).get(day)
    if (
        coverage
        and coverage.status != "failed"
        and coverage.fetched_utc
        and coverage.fetched_utc >= since
    ):
        return coverage
    return None


def give_up(
    res: WorkerResources,
    dataset: Dataset,
    day: dt.date,
    job_id: str | None,
    exc: BaseException,
    attempts: int,
) -> ChunkResult:
    """Record a chunk failed after its last retry; API errors are already in its coverage."""
    reason = f"{type(exc).__name__}: {exc} (gave up after {attempts} attempts)"
    if not isinstance(exc, ApiError):
        pipeline.record_failure(res.sink, dataset, day, RuntimeError(reason))
    else:
        log.error("%s %s: gave up after %d attempts: %s", dataset.code, day, attempts, exc)
    if job_id:
        res.jobs.mark_failed(job_id, dataset.code, day, reason)
    return ChunkResult(dataset.code, day, "failed", "failed", reason=reason)


def chunk_message(dataset: str, day: dt.date, job_id: str | None) -> dict[str, Any]:
    return {"dataset": dataset, "day": day.isoformat(), "job_id": job_id, "enqueued_utc": now_iso()}


def publish_chunks(
    app: Celery, chunks: Iterable[tuple[str, dt.date]], *, job_id: str | None, queue: str
) -> int:
    """One ``ingest_chunk`` message per chunk on ``queue``; returns how many were sent."""
    sent = 0
    with app.producer_or_acquire() as producer:
        for code, day in chunks:
            app.send_task(
                INGEST_TASK, kwargs=chunk_message(code, day, job_id), queue=queue, producer=producer
            )
            sent += 1
    return sent


def fan_out(app: Celery, store: JobStore, job_id: str, queue: str = "backfill") -> int:
    """Publish a job's chunks, resuming after those an interrupted fan-out already sent."""
    meta = store.meta(job_id)
    chunks = store.chunks(job_id)[int(meta.get("enqueued", 0)) :]
    sent = 0
    for start in range(0, len(chunks), _FANOUT_BATCH):
        if store.is_cancelled(job_id):
            log.info("job %s cancelled; stopped enqueueing after %d chunks", job_id, sent)
            break
        batch = chunks[start : start + _FANOUT_BATCH]
        sent += publish_chunks(app, batch, job_id=job_id, queue=queue)
        store.count_enqueued(job_id, len(batch))
    return sent


def create_backfill_job(
    store: JobStore, datasets: list[Dataset], start: dt.date, end: dt.date
) -> str:
    """Record a backfill job: every dataset-day of the range (from each dataset's earliest day)."""
    chunks = [
        (dataset.code, day)
        for day in days_between(start, end)
        for dataset in datasets
        if day >= dataset.earliest and not dataset.snapshot
    ]
    # A snapshot (reference) dataset is one fetch of the current list, whatever the range.
    chunks += [(d.code, d.chunk_day(start)) for d in datasets if d.snapshot]
    return store.create("backfill", chunks, start=start, end=end)


def submit_backfill(
    app: Celery, store: JobStore, datasets: list[Dataset], start: dt.date, end: dt.date
) -> str:
    """Record the job and enqueue the ``backfill`` task that fans it out; returns the job id."""
    job_id = create_backfill_job(store, datasets, start, end)
    app.send_task(BACKFILL_TASK, kwargs={"job_id": job_id}, queue="backfill")
    return job_id


def submit_chunks(
    app: Celery, store: JobStore, kind: str, chunks: list[tuple[str, dt.date]]
) -> str:
    """Record a job of explicit chunks (a sweep, ``gaps --fill``) and enqueue its fan-out."""
    job_id = store.create(kind, chunks)
    app.send_task(BACKFILL_TASK, kwargs={"job_id": job_id}, queue="backfill")
    return job_id
