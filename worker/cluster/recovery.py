"""Re-sending chunk messages that Redis lost while it was down.

kombu's Redis transport takes a message in two steps: ``BRPOP`` removes it from the queue,
then a second command records it in the ``unacked`` hash until the task acknowledges it. If
Redis stops between the two (or the reply to the first is lost in a reconnect), the message
is in neither place and no visibility timeout brings it back (celery/kombu#305). A job would
then wait for that chunk for ever.

So after every broker reconnect a worker looks, once, for chunks that a job still counts as
pending but that are nowhere: not queued, not taken by a worker, not being fetched. It looks
twice, a few seconds apart, so a message caught between the two steps is not mistaken for a
lost one, and re-sends what is missing from both looks. Re-sending is harmless: loads are
idempotent, and a chunk fetched after it was enqueued is not fetched again.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import time
from collections.abc import Callable

import orjson
import redis
from celery import Celery

from worker.cluster.broker import KEY_PREFIX, QUEUE_PRIORITY_SUFFIXES, UNACKED_KEY
from worker.cluster.celery_app import QUEUES
from worker.cluster.dispatch import publish_chunks
from worker.cluster.jobs import JobStore, UnknownJobError

log = logging.getLogger(__name__)

RECOVERY_LOCK = KEY_PREFIX + "recovery-lock"
JOBS_CHECKED = 20

Chunk = tuple[str, dt.date]


def _chunk_of(payload: bytes | str) -> Chunk | None:
    """The (dataset, day) of an ``ingest_chunk`` message as kombu stores it, else None."""
    try:
        message = orjson.loads(payload)
        body = message.get("body")
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        _args, kwargs, _embed = orjson.loads(body)
        return kwargs["dataset"], dt.date.fromisoformat(kwargs["day"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def chunks_in_flight(client: redis.Redis) -> set[Chunk]:
    """Chunks somewhere in the broker: queued, taken by a worker, or being fetched."""
    found: set[Chunk] = set()
    pipe = client.pipeline(transaction=False)
    for queue in QUEUES:
        for suffix in QUEUE_PRIORITY_SUFFIXES:
            pipe.lrange(queue + suffix, 0, -1)
    pipe.hvals(UNACKED_KEY)
    *queued, unacked = pipe.execute()
    for messages in queued:
        found.update(c for c in map(_chunk_of, messages) if c)
    for entry in unacked:
        try:
            raw_message = orjson.loads(entry)[0]
        except (ValueError, IndexError, TypeError):
            continue
        chunk = _chunk_of(orjson.dumps(raw_message))
        if chunk:
            found.add(chunk)
    for key in client.scan_iter(match=f"{KEY_PREFIX}fetch:*", count=500):
        _, _, rest = key.decode().partition(f"{KEY_PREFIX}fetch:")
        code, _, day = rest.rpartition(":")
        found.add((code, dt.date.fromisoformat(day)))
    return found


def requeue_lost_chunks(
    app: Celery,
    store: JobStore,
    *,
    settle_s: float = 3.0,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Re-send the pending chunks of recent jobs that two looks found nowhere; how many."""
    candidates: dict[str, set[Chunk]] = {}
    for job_id in store.recent(JOBS_CHECKED):
        try:
            meta = store.meta(job_id)
        except UnknownJobError:
            continue
        if int(meta.get("enqueued", 0)) < int(meta.get("total", 0)):
            continue  # its fan-out is still sending (or will resume): not lost
        pending = store.pending(job_id)
        if pending:
            candidates[job_id] = pending
    if not candidates:
        return 0
    first_look = chunks_in_flight(store.client)
    sleep(settle_s)
    second_look = chunks_in_flight(store.client)
    resent = 0
    for job_id, chunks in candidates.items():
        lost = sorted(
            (chunks & store.pending(job_id)) - first_look - second_look,
            key=lambda chunk: (chunk[1], chunk[0]),
        )
        if lost:
            log.warning(
                "job %s: %d pending chunks were lost by the broker (e.g. %s %s); re-sent",
                job_id, len(lost), lost[0][0], lost[0][1], extra={"job_id": job_id},
            )
            resent += publish_chunks(app, lost, job_id=job_id, queue="backfill")
    return resent


def recover_once(app: Celery, client: redis.Redis, *, lock_ttl_s: int = 15) -> int:
    """One recovery pass for the whole cluster: the first worker to reconnect does it."""
    if not client.set(RECOVERY_LOCK, "1", nx=True, ex=lock_ttl_s):
        return 0
    return requeue_lost_chunks(app, JobStore(client))
