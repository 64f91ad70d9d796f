"""The schedule (from settings and a file) and the one-beat guarantee."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from celery.schedules import crontab

from beat.schedule import ScheduleError, apply_file, build_schedule, default_entries, plain_entries
from beat.scheduler import BeatLease, current_holder
from tests.support.cluster import ChunkCluster
from tests.support.iris import BIN, wait_for
from tests.support.redis import RedisServer
from worker.settings import Settings


def test_default_schedule_polls_realtime_datasets_sweeps_daily_and_checks_freshness() -> None:
    entries = default_entries(Settings(datasets="FUELINST,BOD,DISEBSP"))

    polls = {name: e for name, e in entries.items() if name.startswith("poll-realtime-")}
    assert set(polls) == {"poll-realtime-fuelinst", "poll-realtime-disebsp"}  # BOD is not realtime
    assert all(e["every"] == 300 and e["queue"] == "realtime" for e in polls.values())
    assert entries["sweep-gaps"]["cron"] == "30 4 * * *"
    assert entries["sweep-gaps"]["kwargs"] == {"lookback_days": 7}
    assert entries["check-freshness"]["every"] == 300
    schedule = build_schedule(Settings(datasets="FUELINST"))
    assert schedule["poll-realtime-fuelinst"]["schedule"] == dt.timedelta(seconds=300)
    assert isinstance(schedule["sweep-gaps"]["schedule"], crontab)
    assert schedule["sweep-gaps"]["options"] == {"queue": "backfill"}


def test_intervals_of_zero_turn_entries_off() -> None:
    entries = default_entries(
        Settings(realtime_poll_s=0, freshness_check_s=0, dashboard_refresh_s=0)
    )
    assert not any(name.startswith(("poll-", "check-", "refresh-")) for name in entries)


def test_a_schedule_file_changes_removes_and_adds_entries(tmp_path: Path) -> None:
    path = tmp_path / "schedule.toml"
    path.write_text(
        """
[sweep-gaps]
cron = "0 5 * * *"
kwargs = { lookback_days = 14 }

[check-freshness]
enabled = false

[poll-bod]
task = "worker.cluster.tasks.poll_realtime"
every = 900
kwargs = { dataset = "BOD" }
queue = "realtime"
"""
    )
    entries = plain_entries(Settings(datasets="FUELINST", beat_schedule_file=path))

    assert entries["sweep-gaps"] == {
        "task": "worker.cluster.tasks.sweep_gaps",
        "cron": "0 5 * * *",
        "kwargs": {"lookback_days": 14},
        "queue": "backfill",
    }
    assert "check-freshness" not in entries
    assert entries["poll-bod"]["every"] == 900
    assert "poll-realtime-fuelinst" in entries


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[sweep-gaps]\ncron = "30 4 * *"\n', "5-field crontab"),
        ("[new]\nevery = 5\n", "needs 'task'"),
        ("[sweep-gaps]\nevery_s = 5\n", "unknown keys"),
        ("[sweep-gaps\n", "not valid TOML"),
    ],
)
def test_a_bad_schedule_file_is_refused_naming_the_entry(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "schedule.toml"
    path.write_text(text)
    with pytest.raises(ScheduleError, match=message):
        build_schedule(Settings(beat_schedule_file=path))


def test_a_missing_schedule_file_is_refused() -> None:
    with pytest.raises(ScheduleError, match="No such file"):
        apply_file({}, Path("/nonexistent/schedule.toml"))


def test_the_beat_lease_admits_one_holder_until_it_is_released(redis_server: RedisServer) -> None:
    first = BeatLease(redis_server.client(), ttl_s=3)
    second = BeatLease(redis_server.client(), ttl_s=3)
    first.wait()
    took_over = threading.Event()
    waiter = threading.Thread(
        target=lambda: (second.wait(poll_s=0.1), took_over.set()), daemon=True
    )
    waiter.start()

    time.sleep(1.0)
    first.renew()
    assert not took_over.is_set()
    assert current_holder(redis_server.client()) == first.holder
    first.release()
    assert took_over.wait(5)
    assert current_holder(redis_server.client()) == second.holder
    # The first, had it stalled past its TTL, finds its lease gone and stops.
    with pytest.raises(SystemExit, match="lost its lease"):
        first.renew()


def _origins(cluster: ChunkCluster) -> list[str]:
    """The sender of each message waiting on the realtime queue (beat's process), oldest first."""
    raw = cluster.redis_server.client().lrange("realtime", 0, -1)  # kombu pushes on the left
    return [orjson.loads(item)["headers"]["origin"] for item in reversed(raw)]


def test_two_beats_started_by_mistake_schedule_once_and_the_second_takes_over(
    chunk_cluster: Callable[..., ChunkCluster],
) -> None:
    # Only the freshness check, every second, on a queue no worker consumes here.
    cluster = chunk_cluster(
        BMRS_REALTIME_POLL_S="0",
        BMRS_FRESHNESS_CHECK_S="1",
        BMRS_DASHBOARD_REFRESH_S="0",
        BMRS_BEAT_LOCK_TTL_S="3",
        BMRS_SWEEP_CRON="0 0 1 1 *",
    )
    first = cluster.spawn("beat-a", [str(BIN / "bmrs"), "beat"])
    wait_for(lambda: len(_origins(cluster)) >= 2, 30, "the first beat to schedule", cluster)  # type: ignore[arg-type]
    second = cluster.spawn("beat-b", [str(BIN / "bmrs"), "beat"])
    wait_for(lambda: "waiting to take over" in second.log(), 30, "the second beat to wait", cluster)  # type: ignore[arg-type]
    time.sleep(4)

    assert len(set(_origins(cluster))) == 1, "two beats scheduled at once"
    sent_by_first = len(_origins(cluster))
    first.kill()  # SIGKILL: no goodbye, its lease must expire
    wait_for(lambda: len(set(_origins(cluster))) == 2, 30, "the second beat to take over", cluster)  # type: ignore[arg-type]
    # One schedule, then the other: no second in which both sent.
    origins = _origins(cluster)
    assert origins[:sent_by_first] == [origins[0]] * sent_by_first
    assert all(o != origins[0] for o in origins[sent_by_first + 1 :])
    assert second.running
