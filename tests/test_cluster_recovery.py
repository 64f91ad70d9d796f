"""Chunks the Redis transport lost during an outage are found and re-sent, nothing else."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson

from tests.support.redis import RedisServer
from worker.cluster.broker import UNACKED_KEY
from worker.cluster.celery_app import create_app
from worker.cluster.dispatch import publish_chunks
from worker.cluster.jobs import JobStore
from worker.cluster.recovery import chunks_in_flight, requeue_lost_chunks
from worker.settings import Settings

DAY = dt.date(2025, 9, 3)


def test_only_chunks_that_are_nowhere_are_re_sent(redis_server: RedisServer, tmp_path: Path) -> None:
    app = create_app(Settings(broker_url=redis_server.url, data_dir=tmp_path))
    client = redis_server.client()
    store = JobStore(client)
    chunks = [("FREQ", DAY), ("MID", DAY), ("BOALF", DAY), ("FUELINST", DAY), ("DISEBSP", DAY)]
    job_id = store.create("backfill", chunks)
    store.count_enqueued(job_id, len(chunks))
    publish_chunks(app, chunks[:2], job_id=job_id, queue="backfill")  # FREQ, MID queued
    taken = client.rpop("backfill")  # a worker took FREQ: kombu records it in 'unacked'
    client.hset(UNACKED_KEY, "tag-1", orjson.dumps([orjson.loads(taken), "backfill", "backfill"]))
    client.set("bmrs:fetch:BOALF:2025-09-03", "worker-2")  # BOALF is being fetched
    store.mark_failed(job_id, "DISEBSP", DAY, "HTTP 400")  # DISEBSP ended: not pending
    # FUELINST is pending but nowhere: the message the outage lost.
    assert chunks_in_flight(client) == {("FREQ", DAY), ("MID", DAY), ("BOALF", DAY)}
    assert requeue_lost_chunks(app, store, settle_s=0) == 1
    assert chunks_in_flight(client) == {("FREQ", DAY), ("MID", DAY), ("BOALF", DAY), ("FUELINST", DAY)}
    assert store.pending(job_id) == {("FREQ", DAY), ("MID", DAY), ("BOALF", DAY), ("FUELINST", DAY)}
    assert requeue_lost_chunks(app, store, settle_s=0) == 0  # nothing is re-sent twice


def test_a_job_still_fanning_out_is_left_alone(redis_server: RedisServer, tmp_path: Path) -> None:
    app = create_app(Settings(broker_url=redis_server.url, data_dir=tmp_path))
    store = JobStore(redis_server.client())
    job_id = store.create("backfill", [("FREQ", DAY), ("MID", DAY)])
    store.count_enqueued(job_id, 1)  # the fan-out has sent one of two so far
    assert requeue_lost_chunks(app, store, settle_s=0) == 0


def test_a_chunk_seen_in_either_look_is_not_re_sent(redis_server: RedisServer, tmp_path: Path) -> None:
    app = create_app(Settings(broker_url=redis_server.url, data_dir=tmp_path))
    client = redis_server.client()
    store = JobStore(client)
    job_id = store.create("backfill", [("FREQ", DAY)])
    store.count_enqueued(job_id, 1)

    def worker_takes_it_between_looks(_: float) -> None:
        publish_chunks(app, [("FREQ", DAY)], job_id=job_id, queue="backfill")

    assert requeue_lost_chunks(app, store, settle_s=0, sleep=worker_takes_it_between_looks) == 0


def test_a_worker_that_connects_re_sends_a_lost_chunk_and_the_job_finishes(chunk_cluster) -> None:  # type: ignore[no-untyped-def]
    cluster = chunk_cluster()
    job_id = cluster.store.create("backfill", [("FREQ", DAY)])
    cluster.store.count_enqueued(job_id, 1)  # "sent", but the message is nowhere: lost
    worker = cluster.start_worker("w1")
    progress = cluster.wait_job(job_id, timeout=60)
    assert progress.total("done") == 1
    assert "pending chunks were lost by the broker" in worker.log()
