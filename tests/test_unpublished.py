"""A day Elexon has not published yet is ``empty`` with a reason, and fetched again later."""

from __future__ import annotations

import datetime as dt
import http.server
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from tests.support.local_http import QuietHandler, serving
from worker.cluster.sweep import due_chunks, refetch_reason
from worker.elexon import catalog
from worker.elexon.client import ElexonClient, PermanentApiError
from worker.elexon.pipeline import UNPUBLISHED, ingest_chunk
from worker.elexon.settlement import current_settlement_day, day_window_utc
from worker.sim.server import BASE_PATH
from worker.sinks.local import LocalWarehouse

OLD = dt.date(2024, 3, 5)


def client(url: str) -> ElexonClient:
    return ElexonClient(url, retries=2, backoff_base_s=0.01, backoff_max_s=0.1, timeout_s=10)


class _NotFound(http.server.ThreadingHTTPServer):
    """Answers every request 404 with the problem body ASP.NET gives (a day not there)."""

    daemon_threads = True

    def __init__(self) -> None:
        body = orjson.dumps(
            {
                "type": "https://tools.ietf.org/html/rfc7231#section-6.5.4",
                "title": "Not Found",
                "status": 404,
            }
        )

        class Handler(QuietHandler):
            def do_GET(handler) -> None:
                handler.reply(404, body, "application/problem+json; charset=utf-8")

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def not_found() -> Iterator[str]:
    with serving(_NotFound()) as url:
        yield url


def test_a_recent_day_answered_404_is_empty_not_yet_published_and_swept_again(
    not_found: str, data_dir: Path
) -> None:
    warehouse, bod, today = LocalWarehouse(data_dir), catalog.get("BOD"), current_settlement_day()
    coverage = ingest_chunk(client(not_found), warehouse, bod, today)
    assert coverage.status == "empty" and coverage.rows == 0
    assert (coverage.reason or "").startswith(f"{UNPUBLISHED}: the API answered 404")
    assert "1-day revision window" in (coverage.reason or "") and coverage.requests == 1
    [stored] = warehouse.coverage_range(bod, today, today)
    assert stored.status == "empty" and stored.reason == coverage.reason
    # Fetched again by the sweep and by gaps --fill (which skips merely stale days).
    [due] = due_chunks(warehouse, [bod], today, today, include_stale=False)
    assert due.day == today and due.reason.startswith(f"empty: {UNPUBLISHED}")


def test_an_old_day_answered_404_is_failed_as_before(not_found: str, data_dir: Path) -> None:
    warehouse, bod = LocalWarehouse(data_dir), catalog.get("BOD")
    with pytest.raises(PermanentApiError, match="HTTP 404"):
        ingest_chunk(client(not_found), warehouse, bod, OLD)
    [stored] = warehouse.coverage_range(bod, OLD, OLD)
    assert stored.status == "failed" and "404" in (stored.reason or "")


def test_a_recent_day_with_rows_that_now_answers_404_is_failed(
    simulator: str, not_found: str, data_dir: Path
) -> None:
    warehouse, mid = LocalWarehouse(data_dir), catalog.get("MID")
    yesterday = current_settlement_day() - dt.timedelta(days=1)
    loaded = ingest_chunk(client(simulator), warehouse, mid, yesterday)
    assert loaded.rows > 0
    with pytest.raises(PermanentApiError):
        ingest_chunk(client(not_found), warehouse, mid, yesterday)
    [stored] = warehouse.coverage_range(mid, yesterday, yesterday)
    assert stored.status == "failed" and stored.rows == loaded.rows


def test_a_recent_day_with_no_rows_yet_is_empty_with_the_reason(
    simulator_factory: Callable, data_dir: Path
) -> None:
    today = current_settlement_day()
    # The simulated API's "now" is the start of today: nothing of today is published yet.
    start = day_window_utc(today)[0] - dt.timedelta(hours=1)
    running = simulator_factory(clock=lambda: start)
    warehouse = LocalWarehouse(data_dir)
    for code in ("BOD", "DISEBSP", "FUELINST"):
        dataset = catalog.get(code)
        coverage = ingest_chunk(client(running.url + BASE_PATH), warehouse, dataset, today)
        assert coverage.status == "empty", code
        assert (coverage.reason or "").startswith(f"{UNPUBLISHED}: the API returned no rows"), code


def test_an_old_day_with_no_rows_keeps_the_plain_reason(simulator: str, data_dir: Path) -> None:
    bod = catalog.get("BOD")
    before_history = bod.earliest - dt.timedelta(days=1)
    coverage = ingest_chunk(client(simulator), LocalWarehouse(data_dir), bod, before_history)
    assert coverage.status == "empty" and coverage.reason == "the API returned no rows for this day"
    assert refetch_reason(bod, coverage) is None  # settled long ago: not fetched again
