"""The IRIS path end to end: folder inbox -> listener process -> Redis -> worker process -> lake.

Real redis-server (append-only), real Celery worker, real `bmrs listen`; the simulator's IRIS
mode writes the inbox. Each test checks the guarantees of issue 3: nothing lost, nothing
twice, poison set aside with its reason, nothing completed before the cluster holds it.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import duckdb
import orjson
import pytest

from iris_listener.messages import decode_rows
from tests.support.iris import IrisCluster, wait_for
from worker.elexon import catalog
from worker.elexon.parse import parse_rows
from worker.sim.iris import IrisFeed, SentMessage, run_feed
from worker.sinks.local import LocalWarehouse

START = dt.datetime(2025, 10, 27, 10, tzinfo=dt.UTC)
GOOD = ("message", "redelivery", "duplicate")


def expected_hashes(sent: list[SentMessage], bodies: dict[str, bytes]) -> dict[str, set[str]]:
    """Distinct row hashes per dataset of every good message written."""
    wanted: dict[str, set[str]] = {}
    for message in sent:
        if message.kind in GOOD:
            rows = decode_rows(bodies[message.message_id])
            table = parse_rows(catalog.get(message.dataset), rows).table
            wanted.setdefault(message.dataset, set()).update(table.column("_hash_key").to_pylist())
    return wanted


def emit(feed: IrisFeed, count: int) -> dict[str, bytes]:
    """Write ``count`` messages; returns the body of every message the feed wrote so far."""
    for _ in range(count):
        feed.next_message()
    return dict(feed.bodies)


def stored_hashes(data_dir: Path, codes) -> dict[str, Counter[str]]:
    """Row hashes per dataset as the unified view returns them, with multiplicity."""
    sink = LocalWarehouse(data_dir)
    found = {}
    for code in codes:
        rows = sink.query(f"SELECT _hash_key FROM {code.lower()}_unified").column("_hash_key")
        found[code] = Counter(rows.to_pylist())
    return found


def stream_rows_on_disk(data_dir: Path, dataset: str) -> Counter[str]:
    """Every IRIS row physically stored for a dataset, across its days, with multiplicity."""
    sink = LocalWarehouse(data_dir)
    import pyarrow.parquet as pq

    counts: Counter[str] = Counter()
    for path in (sink.lake / "_stream" / dataset.lower()).glob("date=*/*.parquet"):
        counts.update(pq.read_table(path, columns=["_hash_key"]).column("_hash_key").to_pylist())
    return counts


def all_landed(cluster: IrisCluster, wanted: dict[str, set[str]]) -> bool:
    try:
        found = stored_hashes(cluster.data_dir, wanted)
    except duckdb.Error:  # a file being renamed into place between glob and read
        return False
    return all(set(found[code]) >= hashes for code, hashes in wanted.items())


def inbox_files(cluster: IrisCluster) -> list[Path]:
    return [
        p
        for p in cluster.inbox.glob("*/*")
        if p.is_file() and not p.parent.name.startswith("_") and not p.name.startswith(".")
    ]


def done_files(cluster: IrisCluster) -> list[Path]:
    return list((cluster.inbox / "_done").glob("*/*/*"))


def assert_each_row_once(cluster: IrisCluster, wanted: dict[str, set[str]]) -> None:
    found = stored_hashes(cluster.data_dir, wanted)
    for code, hashes in wanted.items():
        assert set(found[code]) == hashes, f"{code}: rows lost or extra"
        assert max(found[code].values()) == 1, (
            f"{code}: a row shows twice in {code.lower()}_unified"
        )
        on_disk = stream_rows_on_disk(cluster.data_dir, code)
        assert set(on_disk) == hashes and max(on_disk.values()) == 1, f"{code}: stored twice"


def test_poison_is_dead_lettered_with_its_reason_and_the_next_messages_still_flow(
    iris_cluster: IrisCluster,
) -> None:
    cluster = iris_cluster
    cluster.start_worker()
    cluster.start_listener()
    feed = IrisFeed(cluster.inbox, seed=11, start=START, datasets=("FUELINST", "FREQ"))
    bodies = emit(feed, 4)
    for kind in ("not-json", "unknown-dataset", "schema"):
        feed.sent.append(feed._write_poison(kind))
    bodies = emit(feed, 4)
    wanted = expected_hashes(feed.sent, bodies)

    wait_for(lambda: all_landed(cluster, wanted), 40, "the good messages' rows", cluster)
    wait_for(lambda: not inbox_files(cluster), 10, "the inbox to empty", cluster)
    assert_each_row_once(cluster, wanted)

    reasons = {}
    for note in (cluster.inbox / "_deadletter").glob("*/*.reason.json"):
        record = json.loads(note.read_text())
        reasons[record["message_id"]] = record["reason"]
        # the poison body is kept beside its reason, unread bytes intact
        body = note.with_name(note.name.removesuffix(".reason.json")).read_bytes()
        assert body == bodies[record["message_id"]]
    poison = {m.message_id: m.kind for m in feed.sent if m.kind not in GOOD}
    assert reasons == {
        mid: {
            "not-json": "body-not-json",
            "unknown-dataset": "unknown-dataset",
            "schema": "rows-fail-schema",
        }[kind]
        for mid, kind in poison.items()
    }
    assert "dead-lettered" in "".join(p.log() for p in cluster.processes)


def test_the_same_message_delivered_three_times_lands_once(iris_cluster: IrisCluster) -> None:
    cluster = iris_cluster
    cluster.start_worker()
    cluster.start_listener()
    feed = IrisFeed(cluster.inbox, seed=12, start=START, datasets=("BOALF",))
    first = feed.next_message()[0]
    body = feed.bodies[first.message_id]
    wanted = expected_hashes([first], {first.message_id: body})
    for delivery in range(2, 4):
        wait_for(
            lambda: not inbox_files(cluster), 20, f"delivery {delivery - 1} to be taken", cluster
        )
        (cluster.inbox / "BOALF" / first.message_id).write_bytes(body)  # IRIS redelivers it
    wait_for(lambda: not inbox_files(cluster), 20, "the third delivery to be taken", cluster)
    # and once more under another id, as IRIS sometimes duplicates a message
    (cluster.inbox / "BOALF" / "BOALF_202510271000_99999.json").write_bytes(
        orjson.dumps(body.decode())
    )
    wait_for(lambda: len(done_files(cluster)) == 2, 20, "the duplicate to be taken", cluster)
    wait_for(lambda: cluster.queue_length() == 0, 20, "the workers to drain the queue", cluster)
    wait_for(lambda: all_landed(cluster, wanted), 20, "the rows", cluster)
    wait_for(
        lambda: cluster.redis().hget("bmrs:iris:listener", "handed_off") == b"4",
        5,
        "the listener to count 4 hand-offs",
        cluster,
    )
    assert_each_row_once(cluster, wanted)


def test_listener_killed_mid_batch_then_restarted_loses_nothing_and_doubles_nothing(
    iris_cluster: IrisCluster,
) -> None:
    cluster = iris_cluster
    cluster.start_worker()
    listener = cluster.start_listener()
    feed = IrisFeed(cluster.inbox, seed=13, start=START, dup=0.2)
    bodies = emit(feed, 25)
    # kill -9 once some batches were handed off and completed, while others are held
    wait_for(lambda: len(done_files(cluster)) >= 5, 30, "the first hand-offs", cluster)
    listener.kill()
    assert inbox_files(cluster), "the listener finished before it could be killed mid-stream"
    bodies.update(emit(feed, 25))
    cluster.start_listener()
    wanted = expected_hashes(feed.sent, bodies)
    wait_for(
        lambda: not inbox_files(cluster), 40, "the restarted listener to take every file", cluster
    )
    wait_for(
        lambda: cluster.queue_length() == 0 and all_landed(cluster, wanted), 40, "the rows", cluster
    )
    assert_each_row_once(cluster, wanted)


def test_with_workers_down_messages_wait_in_the_queue_and_nothing_is_completed_early(
    iris_cluster: IrisCluster,
) -> None:
    cluster = iris_cluster
    cluster.start_listener()
    feed = IrisFeed(cluster.inbox, seed=14, start=START, datasets=("FUELINST", "MID"))
    bodies = emit(feed, 12)
    wanted = expected_hashes(feed.sent, bodies)
    wait_for(lambda: not inbox_files(cluster), 20, "the listener to hand off", cluster)
    # every file completed is held by the cluster: its task is queued and its body stored
    assert cluster.queue_length() >= 2
    assert len(cluster.redis().keys("bmrs:iris:body:*")) == len(set(bodies.values()))
    assert not (cluster.data_dir / "lake" / "_stream").exists()

    # Redis down: hand-offs fail, so files stay in the inbox (abandoned), none completed
    cluster.redis_server.stop()
    more = emit(feed, 6)
    done_before = len(done_files(cluster))
    listener_log = cluster.processes[0]
    wait_for(
        lambda: "abandoning them for redelivery" in listener_log.log(),
        40,
        "a failed hand-off",
        cluster,
    )
    time.sleep(4)  # the listener must pause, not receive and abandon the same files in a loop
    assert listener_log.log().count("abandoning them for redelivery") == 1
    assert "still unreachable" in listener_log.log()
    assert len(done_files(cluster)) == done_before
    assert len(inbox_files(cluster)) == 6

    cluster.redis_server.start()  # same port and append-only file: the queue survived
    assert cluster.queue_length() >= 2
    bodies.update(more)
    wanted = expected_hashes(feed.sent, bodies)
    wait_for(lambda: not inbox_files(cluster), 60, "the abandoned files to be handed off", cluster)
    cluster.start_worker()
    wait_for(
        lambda: cluster.queue_length() == 0 and all_landed(cluster, wanted), 40, "the rows", cluster
    )
    assert_each_row_once(cluster, wanted)


def test_sigterm_hands_off_what_the_listener_holds_before_it_exits(
    iris_cluster: IrisCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = iris_cluster
    monkeypatch.setenv("BMRS_IRIS_BATCH_S", "60")  # hold batches until told to stop
    monkeypatch.setenv("BMRS_IRIS_BATCH_MAX", "1000")
    listener = cluster.start_listener()
    feed = IrisFeed(cluster.inbox, seed=15, start=START, datasets=("FREQ",))
    emit(feed, 5)
    wait_for(
        lambda: cluster.redis().hget("bmrs:iris:listener", "received") == b"5",
        20,
        "the listener to hold the messages",
        cluster,
    )
    assert len(done_files(cluster)) == 0 and cluster.queue_length() == 0
    listener.signal(signal.SIGTERM)
    assert listener.wait(20) == 0
    assert len(done_files(cluster)) == 5 and not inbox_files(cluster)
    assert cluster.queue_length() == 1
    assert "every message held was settled" in listener.log()


def test_listener_and_worker_killed_mid_stream_then_restarted_lose_nothing(
    iris_cluster: IrisCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = iris_cluster
    # a task a killed worker held comes back after the visibility timeout: keep it short
    monkeypatch.setenv("BMRS_TASK_SOFT_TIME_LIMIT_S", "8")
    monkeypatch.setenv("BMRS_TASK_TIME_LIMIT_S", "10")
    monkeypatch.setenv("BMRS_VISIBILITY_TIMEOUT_S", "12")
    worker = cluster.start_worker()
    listener = cluster.start_listener()
    feed = IrisFeed(cluster.inbox, seed=16, start=START, dup=0.2)
    stop = threading.Event()
    writer = threading.Thread(
        target=run_feed, kwargs={"feed": feed, "rate_per_min": 1200, "should_stop": stop.is_set}
    )
    writer.start()
    try:
        wait_for(lambda: len(done_files(cluster)) >= 10, 30, "the first hand-offs", cluster)
        worker.kill()
        listener.kill()
        time.sleep(1)  # the feed keeps writing while both are down
        cluster.start_worker()
        cluster.start_listener()
        time.sleep(2)
    finally:
        stop.set()
        writer.join(10)
    wanted = expected_hashes(feed.sent, dict(feed.bodies))
    wait_for(lambda: not inbox_files(cluster), 40, "every file to be taken", cluster)
    wait_for(
        lambda: cluster.queue_length() == 0 and all_landed(cluster, wanted), 60, "the rows", cluster
    )
    assert_each_row_once(cluster, wanted)
