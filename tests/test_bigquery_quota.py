"""The per-table BigQuery load budget in Redis: realtime first, backfill paced, the IRIS
batching rule, and no overspending when many workers spend at once."""

from __future__ import annotations

import datetime as dt
import logging
import threading

import pytest

from tests.support.fake_bigquery import FakeBigQuery
from tests.support.redis import RedisServer
from tests.test_bigquery_sink import DAY, FUELINST, fuelinst_rows, load, make_sink
from worker.elexon.coverage import Coverage
from worker.elexon.settlement import current_settlement_day
from worker.sinks.quota import (
    LoadBudget,
    LoadBudgetExhausted,
    LoadClass,
    LoadLedger,
    load_class_of,
)

TABLE = "bmrs-test.bmrs.fuelinst_api"


class FakeClock:
    """Time that moves only when the ledger sleeps (or the test says so)."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def ledger(redis_server: RedisServer, clock: FakeClock, budget: LoadBudget | None = None) -> LoadLedger:
    return LoadLedger(redis_server.client(), budget, clock=clock, sleep=clock.sleep)


def spend_until_refused(book: LoadLedger, load_class: LoadClass, *, polled: bool) -> int:
    granted = 0
    while book.try_acquire(TABLE, load_class, polled=polled) == 0:
        granted += 1
    return granted


def test_the_budget_numbers_keep_inside_bigquerys_limits() -> None:
    budget = LoadBudget()
    assert budget.limit == 1500  # BigQuery: table modifications per table per 24 hours
    assert budget.ceiling(LoadClass.REALTIME, polled=True) == 1400
    assert budget.ceiling(LoadClass.BACKFILL, polled=True) == 800
    assert budget.ceiling(LoadClass.BACKFILL, polled=False) == 1300
    # A 5-minute poll of two days is 576 loads a day: inside what backfill leaves to realtime.
    assert 2 * 24 * 60 // 5 <= budget.ceiling(LoadClass.REALTIME, polled=True) - budget.ceiling(
        LoadClass.BACKFILL, polled=True)
    # The IRIS rule: one stream load per 72 s is 1,200 a day, one partition each.
    assert budget.window_s / budget.spacing_s(LoadClass.IRIS) == 1200 <= budget.usable
    assert 1200 < 30_000  # partition modifications per table per day


def test_backfill_stops_short_so_realtime_polls_keep_their_share(redis_server: RedisServer) -> None:
    book = ledger(redis_server, FakeClock(), LoadBudget(limit=150, margin=10, realtime_reserve=60, quiet_reserve=10))
    assert spend_until_refused(book, LoadClass.BACKFILL, polled=True) == 80
    # Realtime goes on: 60 more, up to 140 of the 150 (10 kept as margin).
    assert spend_until_refused(book, LoadClass.REALTIME, polled=True) == 60
    assert book.used(TABLE) == 140
    assert book.try_acquire(TABLE, LoadClass.REALTIME, polled=True) > 0


def test_backfill_of_a_dataset_nobody_polls_may_use_more(redis_server: RedisServer) -> None:
    book = ledger(redis_server, FakeClock(), LoadBudget(limit=150, margin=10, realtime_reserve=60, quiet_reserve=10))
    assert spend_until_refused(book, LoadClass.BACKFILL, polled=False) == 130


def test_the_window_rolls_over_24_hours(redis_server: RedisServer) -> None:
    clock = FakeClock()
    book = ledger(redis_server, clock, LoadBudget(limit=12, margin=2, realtime_reserve=4))
    for _ in range(3):
        assert book.try_acquire(TABLE, LoadClass.BACKFILL, polled=True) == 0
        clock.now += 3600
    assert spend_until_refused(book, LoadClass.BACKFILL, polled=True) == 3  # ceiling 6
    wait = book.try_acquire(TABLE, LoadClass.BACKFILL, polled=True)
    assert wait == pytest.approx(24 * 3600 - 3 * 3600)  # the oldest load leaves the window
    clock.now += wait
    assert book.try_acquire(TABLE, LoadClass.BACKFILL, polled=True) == 0


def test_backfill_waits_for_its_budget_and_says_so(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    book = ledger(redis_server, clock, LoadBudget(limit=12, margin=2, realtime_reserve=4))
    spend_until_refused(book, LoadClass.BACKFILL, polled=True)
    with caplog.at_level(logging.INFO, logger="worker.sinks.quota"):
        waited = book.acquire(TABLE, LoadClass.BACKFILL, polled=True, max_wait_s=2 * 86400)
    assert waited == pytest.approx(86400)
    assert any(
        "backfill load of BigQuery table bmrs-test.bmrs.fuelinst_api waits 86400 s" in r.message
        and "6 loads in 24 h, backfill may start 6" in r.message
        for r in caplog.records
    )


def test_a_wait_longer_than_allowed_is_an_error_with_the_time_to_retry(redis_server: RedisServer) -> None:
    clock = FakeClock()
    book = ledger(redis_server, clock, LoadBudget(limit=12, margin=2, realtime_reserve=4))
    spend_until_refused(book, LoadClass.BACKFILL, polled=True)
    with pytest.raises(LoadBudgetExhausted) as raised:
        book.acquire(TABLE, LoadClass.BACKFILL, polled=True, max_wait_s=60)
    assert raised.value.retry_after_s == pytest.approx(86400)
    assert "fuelinst_api" in str(raised.value) and "try again in 86400 s" in str(raised.value)
    assert book.used(TABLE) == 6  # a refused load is not recorded


def test_iris_batching_rule_keeps_a_stream_table_inside_its_window(redis_server: RedisServer) -> None:
    """Batches handed off every 5 s through a (shortened) window: one stream load per 72 s at
    most, so the window holds at most window / 72 loads (1,200 in BigQuery's 24 hours)."""
    clock = FakeClock()
    budget = LoadBudget(window_s=4 * 3600)
    book = ledger(redis_server, clock, budget)
    grants: list[float] = []
    for _ in range(int(budget.window_s) // 5):
        if book.try_acquire(TABLE, LoadClass.IRIS, polled=True) == 0:
            grants.append(clock.now)
        clock.now += 5
    gaps = [b - a for a, b in zip(grants, grants[1:])]
    assert 72 <= min(gaps) and max(gaps) < 72 + 5  # as often as the rule allows, never more
    assert len(grants) <= budget.window_s / 72 == 200
    assert book.used(TABLE) == sum(1 for g in grants if g > clock.now - budget.window_s)


def test_a_stream_batch_that_comes_too_soon_waits_for_its_turn(redis_server: RedisServer) -> None:
    clock = FakeClock()
    book = ledger(redis_server, clock)
    assert book.acquire(TABLE, LoadClass.IRIS, polled=True, max_wait_s=100) == 0
    clock.now += 30
    assert book.acquire(TABLE, LoadClass.IRIS, polled=True, max_wait_s=100) == pytest.approx(42)


def test_many_workers_spending_at_once_never_overspend(redis_server: RedisServer) -> None:
    book = ledger(redis_server, FakeClock(), LoadBudget(limit=500, margin=100, realtime_reserve=100))
    granted: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = 0
        for _ in range(100):
            if book.try_acquire(TABLE, LoadClass.BACKFILL, polled=True) == 0:
                mine += 1
        with lock:
            granted.append(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 300
    assert book.used(TABLE) == 300


def test_today_and_yesterday_are_realtime_older_days_backfill() -> None:
    today = dt.date(2025, 10, 27)
    assert load_class_of(today, today) is LoadClass.REALTIME
    assert load_class_of(today - dt.timedelta(days=1), today) is LoadClass.REALTIME
    assert load_class_of(today - dt.timedelta(days=2), today) is LoadClass.BACKFILL


def test_sink_refuses_a_backfill_load_without_sending_a_job_when_the_budget_is_spent(
    redis_server: RedisServer, fake_bigquery: FakeBigQuery
) -> None:
    clock = FakeClock()
    book = ledger(redis_server, clock, LoadBudget(limit=4, margin=1, realtime_reserve=1))
    sink = make_sink(fake_bigquery, ledger=book, backfill_max_wait_s=0)
    load(sink, FUELINST, DAY, fuelinst_rows(DAY))  # api partition
    sink.write_coverage(Coverage(dataset="FUELINST", date=DAY, status="complete", rows=24))
    assert book.used(TABLE) == 1
    load(sink, FUELINST, DAY, fuelinst_rows(DAY, publish_minute=6))  # second load: 2 of 2
    sent = len(fake_bigquery.loads)
    with pytest.raises(LoadBudgetExhausted, match="fuelinst_api"):
        load(sink, FUELINST, DAY, fuelinst_rows(DAY, publish_minute=7))
    assert len(fake_bigquery.loads) == sent
    # Realtime (today's chunk) still has its share.
    today = current_settlement_day()
    load(sink, FUELINST, today, fuelinst_rows(today))
    assert len(fake_bigquery.loads) == sent + 1
