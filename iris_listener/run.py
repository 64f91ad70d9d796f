"""Building the listener from settings, and running it until SIGTERM/SIGINT.

Service Bus when IRIS credentials or a connection string are set, otherwise the folder
source at ``BMRS_IRIS_DIR`` (default ``<data dir>/iris_inbox``).
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from iris_listener.folder import FolderSource
from iris_listener.handoff import CeleryHandOff
from iris_listener.listener import Listener, Source
from iris_listener.servicebus import ServiceBusSource, client_factory, servicebus_configured
from worker.cluster.broker import broker_url
from worker.settings import Settings
from worker.sinks.quota import LoadBudget

log = logging.getLogger(__name__)


def source_from_settings(settings: Settings, *, folder: bool = False) -> Source:
    """The source the settings select (``folder=True`` forces the folder source)."""
    if servicebus_configured(settings) and not folder:
        make_client, queue = client_factory(settings)
        return ServiceBusSource(make_client, queue)
    return FolderSource(settings.iris_inbox, done_retention_days=settings.iris_retention_days)


def listener_from_settings(
    settings: Settings, source: Source, *, log_every_s: float = 60.0
) -> Listener:
    """A listener handing off to the cluster's ``iris`` queue through the settings' broker."""
    from worker.cluster.celery_app import app  # imported late: it reads the settings at import

    # Fail a hand-off within seconds when Redis is down, so the batch is abandoned (and IRIS
    # redelivers it) rather than held while the worker-side client rides out the outage.
    client = redis.Redis.from_url(
        broker_url(settings),
        socket_connect_timeout=2,
        socket_timeout=10,
        retry=Retry(ExponentialWithJitterBackoff(base=0.2, cap=1.0), 2),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )
    spacing = LoadBudget().iris_interval_s
    if settings.sink == "bigquery" and settings.iris_batch_s < spacing:
        log.warning(
            "BMRS_IRIS_BATCH_S=%g hands off a dataset more often than BigQuery's load budget "
            "allows (one stream load per table every %.0f s); batches will wait in the workers. "
            "Set BMRS_IRIS_BATCH_S=%.0f and BMRS_IRIS_BATCH_MAX=1000 with BMRS_SINK=bigquery.",
            settings.iris_batch_s,
            spacing,
            spacing + 3,
        )
    hand_off = CeleryHandOff(client, app)
    return Listener(
        source,
        hand_off,
        ready=hand_off.ready,
        status_client=client,
        batch_max=settings.iris_batch_max,
        batch_s=settings.iris_batch_s,
        log_every_s=log_every_s,
    )


def run_until_signalled(listener: Listener) -> None:
    """Run in this thread; SIGTERM or SIGINT stops it after settling what it holds."""
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("IRIS listener: %s received, settling held messages", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    listener.run(stop)
