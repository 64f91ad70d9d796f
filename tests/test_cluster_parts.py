"""The cluster's parts on their own: jobs, fetch locks, refresh policy, freshness, timings, CLI."""

from __future__ import annotations

import datetime as dt
import http.server
import io
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import orjson
import pytest
from click.testing import CliRunner

from tests.support.redis import RedisServer
from worker.cli import main
from worker.cluster import freshness
from worker.cluster.celery_app import ContextFilter, TimingError, check_timing, log_context
from worker.cluster.fetch_lock import ChunkBusyError, fetch_lock
from worker.cluster.jobs import JobStore, UnknownJobError
from worker.cluster.sweep import refetch_reason, settles_at, sweep, sweep_window
from worker.elexon import catalog
from worker.elexon.coverage import Coverage
from worker.elexon.settlement import day_window_utc
from worker.logs import JsonFormatter
from worker.settings import Settings

UTC = dt.UTC
DAY = dt.date(2025, 10, 20)


def _coverage(
    code: str,
    day: dt.date,
    status: str = "complete",
    fetched: dt.datetime | None = None,
    rows: int = 10,
) -> Coverage:
    return Coverage(
        dataset=code, date=day, status=status, rows=rows, fetched_utc=fetched, reason=None
    )  # type: ignore[arg-type]


# -- jobs -----------------------------------------------------------------------------------


def test_job_progress_counts_each_chunk_once_however_often_it_is_redelivered(
    redis_server: RedisServer,
) -> None:
    store = JobStore(redis_server.client())
    chunks = [("FUELINST", DAY), ("FUELINST", DAY + dt.timedelta(days=1)), ("MID", DAY)]
    job_id = store.create("backfill", chunks, start=DAY, end=DAY + dt.timedelta(days=1))

    done = _coverage("FUELINST", DAY, rows=288)
    store.mark_done(job_id, done)
    store.mark_done(job_id, done)  # a redelivery of the same chunk
    store.mark_failed(job_id, "MID", DAY, "PermanentApiError: HTTP 400")
    progress = store.progress(job_id, detail=True)

    assert progress.datasets["FUELINST"].done == 1 and progress.datasets["FUELINST"].pending == 1
    assert progress.datasets["FUELINST"].rows == 288
    assert progress.datasets["MID"].failed == 1
    assert [(f.dataset, f.date, f.reason) for f in progress.failures] == [
        ("MID", DAY, "PermanentApiError: HTTP 400")
    ]
    assert not progress.finished
    # A chunk that failed and later succeeds (a re-run) moves from failed to done.
    store.mark_done(job_id, _coverage("MID", DAY, rows=48))
    assert store.progress(job_id).datasets["MID"].failed == 0
    assert store.chunks(job_id) == sorted(chunks, key=lambda c: (c[1], c[0]))


def test_cancelling_a_job_skips_its_pending_chunks(redis_server: RedisServer) -> None:
    store = JobStore(redis_server.client())
    job_id = store.create("backfill", [("FREQ", DAY), ("FREQ", DAY + dt.timedelta(days=1))])
    store.mark_done(job_id, _coverage("FREQ", DAY))

    assert store.cancel(job_id) == 1
    progress = store.progress(job_id)
    assert progress.cancelled and progress.finished
    assert (progress.datasets["FREQ"].done, progress.datasets["FREQ"].cancelled) == (1, 1)
    assert store.is_cancelled(job_id)
    with pytest.raises(UnknownJobError, match="never created"):
        store.progress("nope")


# -- fetch lock -------------------------------------------------------------------------------


def test_a_chunk_being_fetched_is_refused_to_a_second_fetcher_until_released(
    redis_server: RedisServer,
) -> None:
    client = redis_server.client()
    with fetch_lock(client, "FREQ", DAY, ttl_s=10):
        with (
            pytest.raises(
                ChunkBusyError, match=r"FREQ 2025-10-20: already being fetched by .+:\d+:"
            ),
            fetch_lock(client, "FREQ", DAY, ttl_s=10),
        ):
            pass
        with fetch_lock(client, "FREQ", DAY + dt.timedelta(days=1), ttl_s=10):
            pass  # another day is another chunk
    with fetch_lock(client, "FREQ", DAY, ttl_s=10):
        pass


def test_the_fetch_lock_of_a_lost_worker_expires_after_its_ttl(redis_server: RedisServer) -> None:
    client = redis_server.client()
    # As a killed worker leaves it: held, and expiring on its own.
    client.set("bmrs:fetch:FREQ:2025-10-20", "dead-host:1:x", px=300)
    with (
        pytest.raises(ChunkBusyError, match="dead-host:1"),
        fetch_lock(client, "FREQ", DAY, ttl_s=10),
    ):
        pass
    time.sleep(0.4)
    with fetch_lock(client, "FREQ", DAY, ttl_s=10):
        pass


# -- refresh policy ----------------------------------------------------------------------------


def test_a_day_is_refetched_until_a_fetch_happens_after_its_revision_window() -> None:
    prices = catalog.get("DISEBSP")  # revised by settlement runs for 28 days
    closes = settles_at(prices, DAY)
    assert closes == day_window_utc(DAY)[1] + dt.timedelta(days=28)

    early = _coverage("DISEBSP", DAY, fetched=closes - dt.timedelta(hours=1))
    late = _coverage("DISEBSP", DAY, fetched=closes + dt.timedelta(minutes=1))
    reason = refetch_reason(prices, early)
    assert reason is not None and reason.startswith("stale")
    assert refetch_reason(prices, late) is None
    for status in ("missing", "partial", "failed"):
        assert refetch_reason(
            prices, _coverage("DISEBSP", DAY, status, late.fetched_utc)
        ).startswith(status)  # type: ignore[union-attr]
    # An empty day is a gap for a dense dataset, and may be the truth for a sparse one.
    assert refetch_reason(prices, _coverage("DISEBSP", DAY, "empty", late.fetched_utc)) == "empty"
    boalf = catalog.get("BOALF")
    settled = settles_at(boalf, DAY) + dt.timedelta(hours=1)
    assert refetch_reason(boalf, _coverage("BOALF", DAY, "empty", settled)) is None


def test_the_sweep_looks_back_far_enough_for_each_datasets_revisions(data_dir: Path) -> None:
    today = dt.date(2025, 11, 30)
    assert sweep_window(catalog.get("FUELINST"), today, 7) == (
        dt.date(2025, 11, 23),
        dt.date(2025, 11, 29),
    )
    assert sweep_window(catalog.get("DISEBSP"), today, 7) == (
        dt.date(2025, 11, 1),
        dt.date(2025, 11, 29),
    )

    from worker.sinks.local import LocalWarehouse

    sink = LocalWarehouse(data_dir)
    fuel = catalog.get("FUELINST")
    for back in range(1, 8):
        day = today - dt.timedelta(days=back)
        sink.write_coverage(
            _coverage("FUELINST", day, fetched=settles_at(fuel, day) + dt.timedelta(hours=1))
        )
    stale_day = today - dt.timedelta(days=1)
    sink.write_coverage(_coverage("FUELINST", stale_day, fetched=day_window_utc(stale_day)[1]))
    failed_day = today - dt.timedelta(days=3)
    sink.write_coverage(_coverage("FUELINST", failed_day, "failed", day_window_utc(failed_day)[1]))

    due = sweep(sink, [fuel], today, 7)
    assert [(c.day, c.reason.split(":")[0]) for c in due] == [
        (failed_day, "failed"),
        (stale_day, "stale"),
    ]


# -- freshness ------------------------------------------------------------------------------


class _Webhook(http.server.BaseHTTPRequestHandler):
    posts: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        self.posts.append(orjson.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict]]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    _Webhook.posts = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Webhook.posts
    server.shutdown()
    server.server_close()


def test_freshness_alerts_once_when_stale_and_once_when_fresh_again(
    redis_server: RedisServer, webhook: tuple[str, list[dict]], caplog: pytest.LogCaptureFixture
) -> None:
    url, posts = webhook
    client = redis_server.client()
    now = dt.datetime(2025, 11, 1, 12, tzinfo=UTC)
    old = freshness.Freshness("FREQ", now - dt.timedelta(minutes=45), dt.timedelta(minutes=10), now)
    new = freshness.Freshness("FREQ", now - dt.timedelta(minutes=2), dt.timedelta(minutes=10), now)

    with caplog.at_level(logging.INFO, logger="worker.cluster.freshness"):
        assert len(freshness.record_and_alert(client, [old], url)) == 1
        assert freshness.record_and_alert(client, [old], url) == []  # still stale: no new alert
        assert len(freshness.record_and_alert(client, [new], url)) == 1
    assert [p["text"].split(":")[0] for p in posts] == ["FREQ is stale", "FREQ is fresh again"]
    assert sum("is stale" in r.getMessage() for r in caplog.records) == 1
    assert freshness.stored_states(client)["FREQ"]["stale"] is False


def test_freshness_reads_the_newest_row_of_the_last_days(simulator: str, data_dir: Path) -> None:
    from worker.elexon.client import ElexonClient
    from worker.elexon.pipeline import ingest_chunk
    from worker.sinks.local import LocalWarehouse

    sink = LocalWarehouse(data_dir)
    ingest_chunk(ElexonClient(simulator), sink, catalog.get("MID"), DAY)
    now = day_window_utc(DAY)[1] + dt.timedelta(minutes=30)
    result = freshness.assess(sink, [catalog.get("MID"), catalog.get("FREQ")], now)

    assert result[0].newest_utc == day_window_utc(DAY)[1] - dt.timedelta(minutes=30)  # last period
    assert not result[0].stale and result[1].stale and result[1].newest_utc is None


# -- timings, logs, CLI -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"visibility_timeout_s": 100, "task_time_limit_s": 100, "task_soft_time_limit_s": 50},
            "must exceed BMRS_TASK_TIME",
        ),
        ({"task_soft_time_limit_s": 200, "task_time_limit_s": 100}, "must be below"),
        ({"visibility_timeout_s": 2000, "retry_backoff_max_s": 2000}, "BMRS_RETRY_BACKOFF_MAX_S"),
    ],
)
def test_timings_that_would_redeliver_a_running_task_are_refused(
    values: dict, message: str
) -> None:
    with pytest.raises(TimingError, match=message):
        check_timing(Settings(**values))
    check_timing(Settings())


def test_log_lines_inside_a_task_carry_its_dataset_day_and_job() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("test.context")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with log_context(dataset="FREQ", day="2025-10-20", job_id="abc123", task_id=None):
            logger.info("loaded")
        logger.info("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert (inside["dataset"], inside["day"], inside["job_id"]) == ("FREQ", "2025-10-20", "abc123")
    assert "task_id" not in inside and "dataset" not in outside


def test_backfill_refuses_bad_input_and_an_unreachable_broker_with_one_clear_line(
    bmrs_env: pytest.MonkeyPatch,
) -> None:
    runner = CliRunner()
    unknown = runner.invoke(
        main, ["backfill", "NOPE", "--start", "2025-10-01", "--end", "2025-10-02"]
    )
    assert unknown.exit_code == 2 and "unknown dataset 'NOPE'" in unknown.output
    future = runner.invoke(
        main, ["backfill", "FREQ", "--start", "2025-10-01", "--end", "2999-01-01"]
    )
    assert future.exit_code == 2 and "in the future" in future.output
    bmrs_env.setenv("BMRS_BROKER_URL", "redis://127.0.0.1:1/0")
    from worker.settings import get_settings

    get_settings.cache_clear()
    down = runner.invoke(main, ["backfill", "FREQ", "--start", "2025-10-01", "--end", "2025-10-02"])
    assert down.exit_code == 2
    assert (
        "cannot reach the broker at redis://127.0.0.1:1/0" in down.output
        and "bmrs up" in down.output
    )


def test_config_shows_effective_settings_with_secrets_masked_and_the_schedule(
    bmrs_env: pytest.MonkeyPatch,
) -> None:
    bmrs_env.setenv("FLOWER_BASIC_AUTH", "admin:hunter2")
    bmrs_env.setenv("BMRS_BROKER_URL", "redis://:brokerpass@redis.internal:6379/0")
    bmrs_env.setenv("BMRS_REALTIME_POLL_S", "60")
    from worker.settings import get_settings

    get_settings.cache_clear()
    result = CliRunner().invoke(main, ["config", "--json"])
    assert result.exit_code == 0, result.output
    shown = orjson.loads(result.stdout)
    assert "hunter2" not in result.stdout and "brokerpass" not in result.stdout
    assert shown["settings"]["FLOWER_BASIC_AUTH"] == "****** (set)"
    assert shown["settings"]["BMRS_BROKER_URL"] == "redis://****@redis.internal:6379/0"
    assert shown["schedule"]["poll-realtime-freq"]["every"] == 60


def test_job_command_names_an_unknown_job(
    bmrs_env: pytest.MonkeyPatch, redis_server: RedisServer
) -> None:
    bmrs_env.setenv("BMRS_BROKER_URL", redis_server.url)
    from worker.settings import get_settings

    get_settings.cache_clear()
    result = CliRunner().invoke(main, ["job", "0123abcd"])
    assert result.exit_code == 2 and "no job '0123abcd'" in result.output


def test_a_worker_killed_holding_the_restore_mutex_stalls_restores_briefly(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kombu's default keeps the unacked-restore mutex of a SIGKILLed holder for 300 s, during
    which no worker re-delivers a lost chunk; the cluster's channel holds it for 30 s at most."""
    from worker.cluster.celery_app import create_app

    monkeypatch.setenv("BMRS_BROKER_URL", redis_server.url)
    app = create_app(Settings())
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        assert channel.unacked_mutex_expire <= 30 < channel.visibility_timeout
