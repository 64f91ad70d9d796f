"""Durable hand-off of a batch to the cluster: bodies into Redis, then a task on ``iris``.

A batch is handed off when both writes have returned: the bodies are in Redis and the task
message is in the ``iris`` queue (a Redis list). Redis runs with append-only persistence
(``appendonly yes``), so what it has acknowledged survives its restart; only then does the
listener settle the messages. Any error raises, and the listener abandons the batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis

from iris_listener.bodies import body_key, put_bodies
from iris_listener.messages import IrisMessage
from worker.elexon.catalog import Dataset

if TYPE_CHECKING:
    import celery

TASK_NAME = "iris_listener.tasks.store_iris_batch"
QUEUE = "iris"
# Publishing retries a few times on a dropped broker connection, then gives up so the
# listener can abandon the batch (IRIS redelivers it) instead of holding locks forever.
PUBLISH_RETRY = {"max_retries": 3, "interval_start": 0.5, "interval_step": 1.0, "interval_max": 3.0}


class CeleryHandOff:
    """Hands batches to the ``iris`` queue of a Celery app."""

    def __init__(self, client: redis.Redis, app: celery.Celery) -> None:
        self.client = client
        self.app = app

    def ready(self) -> bool:
        """Whether Redis answers: the listener asks before receiving again after a failure."""
        return bool(self.client.ping())

    def __call__(self, dataset: Dataset, messages: list[IrisMessage]) -> str:
        """Store the bodies, enqueue the task; returns the task id. Raises on any failure."""
        bodies = {body_key(m.body_sha256): m.body for m in messages}
        put_bodies(self.client, bodies)
        result = self.app.send_task(
            TASK_NAME,
            kwargs={"dataset": dataset.code, "body_keys": list(bodies)},
            queue=QUEUE,
            retry=True,
            retry_policy=PUBLISH_RETRY,
        )
        return str(result.id)
