"""How a worker stops on SIGTERM (`docker stop`, a rolling update): finish, bounded, then requeue.

Celery offers two stops. The warm one (SIGTERM) waits for running tasks however long they
take; the container engine then kills the worker at its grace period and the chunk waits out
the visibility timeout. Celery 5.5's "soft shutdown" (SIGTERM remapped to SIGQUIT) bounds the
wait but sleeps the whole ``worker_soft_shutdown_timeout`` in the signal handler, even when
the chunk finished a second later (celery/celery#9505): every stop of a busy worker took the
full bound, and the finished chunk's acknowledgement could not be sent while it slept.

So the worker keeps Celery's warm stop, which exits as soon as the running chunks are done and
acknowledged, and this module bounds it: ``BMRS_WORKER_SOFT_SHUTDOWN_S`` after the SIGTERM the
worker sends itself SIGQUIT, Celery's cold stop, which cancels what still runs and hands it
back to its queue (acks_late). Nothing is lost either way, and loads are idempotent
(DESIGN.md invariant 1), so a chunk cut short is simply run again by another worker.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

log = logging.getLogger(__name__)

# The switch armed by this process's first warm stop: a second SIGTERM must not arm another,
# whose SIGQUIT would reach Celery mid-cold-stop, where a further one kills the worker at once.
_armed: threading.Timer | None = None


def bound_warm_shutdown(bound_s: float, how: str) -> threading.Timer | None:
    """On a warm stop, arm the switch to a cold stop after ``bound_s`` (0: at once)."""
    global _armed
    if how != "Warm":
        return None  # a cold stop (SIGQUIT, Ctrl-C twice) already requeues what runs
    if _armed is not None:
        return _armed
    log.warning(
        "stopping: running chunks get %gs to finish, then are requeued for another worker", bound_s
    )
    timer = threading.Timer(bound_s, _requeue_what_still_runs, args=(bound_s,))
    timer.daemon = True  # a worker that stopped in time exits without waiting for it
    timer.start()
    _armed = timer
    return timer


def _requeue_what_still_runs(bound_s: float) -> None:
    log.warning("chunks still running %gs after the stop: requeueing them", bound_s)
    os.kill(os.getpid(), signal.SIGQUIT)

