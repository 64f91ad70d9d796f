"""The one Celery app: broker, serialisation, delivery guarantees, queues, routes, schedule.

Everything here comes from :class:`worker.settings.Settings`. The delivery guarantees are
DESIGN.md's invariant 3 made concrete:

- ``acks_late`` + ``reject_on_worker_lost``: a message is acknowledged only after its task
  returned, so a chunk whose worker dies is delivered again (invariant 1 makes that harmless);
- prefetch of one: a worker never sits on messages another idle worker could run, and the
  queue length is the true backlog (what an autoscaler reads);
- the Redis visibility timeout (how long an unacknowledged message waits before another
  worker takes it) is longer than the hard time limit and than any retry countdown, or a
  healthy long task would be redelivered while still running; :func:`check_timing` refuses
  settings that break this;
- broker connection retried forever, from startup: a Redis restart pauses the cluster, and
  tasks running at that moment are cancelled and redelivered.

Queues are separate so a three-year backfill never starves realtime polls, IRIS or the
dashboard. Another area adds its tasks with one line in :data:`TASK_MODULES` and, if its
module name does not already match a route, one line in :data:`TASK_ROUTES`.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import logging
import random
import threading
from collections.abc import Iterator
from typing import Any

from celery import Celery, Task, bootsteps, signals
from kombu import Exchange, Queue

from worker import logs
from worker.cluster import shutdown
from worker.cluster.broker import broker_url
from worker.settings import Settings, get_settings

log = logging.getLogger(__name__)

QUEUES = ("realtime", "backfill", "iris", "dashboard")
DEFAULT_QUEUE = "backfill"

# Modules whose tasks the workers load. One line per area; a module not yet installed is
# skipped (and named in the worker's log), so areas can land in any order.
TASK_MODULES = (
    "worker.cluster.tasks",
    "sheets.tasks",
    "iris_listener.tasks",
)

# Exact names first, then glob patterns in order (Celery's MapRoute).
TASK_ROUTES: dict[str, dict[str, str]] = {
    "worker.cluster.tasks.poll_realtime": {"queue": "realtime"},
    "worker.cluster.tasks.check_freshness": {"queue": "realtime"},
    "worker.cluster.tasks.*": {"queue": "backfill"},  # ingest_chunk, backfill, sweep_gaps
    "sheets.tasks.*": {"queue": "dashboard"},
    "iris_listener.*": {"queue": "iris"},
}


class TimingError(ValueError):
    """Settings under which a healthy task could be delivered twice while it runs."""


def check_timing(settings: Settings) -> None:
    """Refuse timings where the visibility timeout does not cover a task's whole life."""
    soft, hard = settings.task_soft_time_limit_s, settings.task_time_limit_s
    visibility = settings.visibility_timeout_s
    if soft >= hard:
        raise TimingError(
            f"BMRS_TASK_SOFT_TIME_LIMIT_S ({soft:g}) must be below BMRS_TASK_TIME_LIMIT_S ({hard:g})"
        )
    if visibility <= hard:
        raise TimingError(
            f"BMRS_VISIBILITY_TIMEOUT_S ({visibility:g}) must exceed BMRS_TASK_TIME_LIMIT_S "
            f"({hard:g}), or a long task is redelivered while it still runs"
        )
    if visibility <= settings.retry_backoff_max_s:
        raise TimingError(
            f"BMRS_VISIBILITY_TIMEOUT_S ({visibility:g}) must exceed BMRS_RETRY_BACKOFF_MAX_S "
            f"({settings.retry_backoff_max_s:g}): a retry waits unacknowledged for its countdown"
        )


def task_modules() -> list[str]:
    """The task modules of :data:`TASK_MODULES` that are installed."""
    return [name for name in TASK_MODULES if _importable(name)]


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def create_app(settings: Settings) -> Celery:
    """A Celery app configured from settings (the module-level :data:`app` uses the process's)."""
    check_timing(settings)
    from beat.schedule import build_schedule  # beat imports this module's constants

    app = Celery("bmrs", include=task_modules(), task_cls=ClusterTask)
    app.conf.update(
        broker_url=broker_url(settings),
        broker_connection_retry=True,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # forever: a worker outlives any Redis restart
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_s,
            "unacked_restore_interval": settings.restore_interval_s,
            "unacked_restore_throttle": 1,  # look every interval, not every tenth
            # A worker killed while it holds the restore mutex (held for milliseconds, every
            # interval) would otherwise stall every restore for kombu's default 300 s.
            "unacked_mutex_expire": 30,
            "socket_connect_timeout": 5,
            "health_check_interval": 10,
        },
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # progress lives in worker.cluster.jobs, not a result backend
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_disable_prefetch=True,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_soft_time_limit=settings.task_soft_time_limit_s,
        task_time_limit=settings.task_time_limit_s,
        worker_max_tasks_per_child=settings.max_tasks_per_child,
        # No sleep in Celery's cold stop: SIGTERM is a warm stop bounded by
        # BMRS_WORKER_SOFT_SHUTDOWN_S (worker.cluster.shutdown), then a cold one requeues.
        worker_soft_shutdown_timeout=0,
        worker_concurrency=settings.worker_concurrency,
        # Each queue its own direct exchange and key, so a message lands in exactly one.
        task_queues=[
            Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES
        ],
        task_default_queue=DEFAULT_QUEUE,
        task_routes=TASK_ROUTES,
        task_send_sent_event=True,
        worker_send_task_events=True,  # Flower shows tasks as they run
        worker_hijack_root_logger=False,
        timezone="Europe/London",  # crontab entries are London times, like the market's day
        enable_utc=True,
        beat_schedule=build_schedule(settings),
        beat_scheduler="beat.scheduler:SingleBeatScheduler",
        beat_schedule_filename=str(settings.data_dir / "beat" / "celerybeat-schedule"),
        # The scheduler renews its lease on every tick, so it must tick often enough.
        beat_max_loop_interval=settings.beat_lock_ttl_s / 3,
    )
    return app


# Log context: the fields of worker.logs.CONTEXT_FIELDS for whatever the task is doing.
_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "bmrs_log_context", default=None
)


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Every log line inside the block carries these fields (dataset, day, job_id...)."""
    merged = {**(_context.get() or {}), **{k: str(v) for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Copies the current log context onto each record, for the formatters of worker.logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (_context.get() or {}).items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


def configure_logging(settings: Settings) -> None:
    """The project's log format (worker.logs) plus task context, for every Celery process."""
    logs.configure(settings)
    for handler in logging.getLogger().handlers:
        handler.addFilter(ContextFilter())


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    # Connected, so Celery leaves logging to us instead of installing its own handlers.
    configure_logging(get_settings())


@signals.worker_shutting_down.connect
def _bound_warm_shutdown(how: str = "", **_: Any) -> None:
    shutdown.bound_warm_shutdown(get_settings().worker_soft_shutdown_s, how)


class ClusterTask(Task):
    """Base of every task: logs carry the task's dataset, day and job id; backoff in one place."""

    CONTEXT_KWARGS = ("dataset", "day", "job_id")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        delivery = self.request.delivery_info or {}
        fields = {k: kwargs.get(k) for k in self.CONTEXT_KWARGS}
        with log_context(task_id=self.request.id, queue=delivery.get("routing_key"), **fields):
            return super().__call__(*args, **kwargs)

    @staticmethod
    def backoff_s(attempt: int, settings: Settings) -> float:
        """Exponential backoff with jitter: between half and all of min(max, base * 2**attempt)."""
        ceiling = min(settings.retry_backoff_max_s, settings.retry_backoff_s * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)


class RecoverLostChunks(bootsteps.StartStopStep):
    """After each (re)connect to the broker, re-send chunks Redis lost while it was down.

    A consumer step's ``start`` runs on every connection, which is exactly when a message can
    have been lost (see :mod:`worker.cluster.recovery`); the pass runs in a thread after a short delay
    so that it never holds up consuming.
    """

    requires = {"celery.worker.consumer.tasks:Tasks"}
    DELAY_S = 5.0

    def start(self, consumer: Any) -> None:
        timer = threading.Timer(self.DELAY_S, self._recover, args=(consumer.app,))
        timer.daemon = True
        timer.start()

    @staticmethod
    def _recover(celery_app: Celery) -> None:
        from worker.cluster.broker import redis_client
        from worker.cluster.recovery import recover_once

        try:
            recover_once(celery_app, redis_client(get_settings()))
        except Exception:  # a failed pass is retried at the next reconnect
            log.exception("lost-chunk recovery failed; the daily gap sweep remains the backstop")


app = create_app(get_settings())
app.steps["consumer"].add(RecoverLostChunks)
