"""Settlement-day arithmetic on the clock-change days, checked against a real response."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from worker.elexon import catalog
from worker.elexon.client import request_windows
from worker.elexon.settlement import day_window_utc, period_of, period_start, periods_in_day

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "elexon" / "samples"
UTC = dt.UTC


@pytest.mark.parametrize(
    ("day", "periods"),
    [("2025-10-26", 50), ("2026-03-29", 46), ("2025-03-30", 46), ("2024-10-27", 50), ("2025-11-03", 48)],
)
def test_periods_in_day(day: str, periods: int) -> None:
    assert periods_in_day(dt.date.fromisoformat(day)) == periods


def test_autumn_clock_change_matches_real_system_prices_response() -> None:
    body = json.loads((SAMPLES / "DISEBSP__nikolisan-bmrs_api-2025-10-26.json").read_text())
    day = dt.date(2025, 10, 26)
    assert len(body["data"]) == periods_in_day(day) == 50
    for row in body["data"]:
        start = dt.datetime.fromisoformat(row["startTime"].replace("Z", "+00:00"))
        assert period_start(day, row["settlementPeriod"]) == start
        assert period_of(start) == (day, row["settlementPeriod"])


def test_spring_clock_change_matches_real_system_prices_response() -> None:
    body = json.loads((SAMPLES / "DISEBSP__nikolisan-bmrs_api-2026-03-29.json").read_text())
    day = dt.date(2026, 3, 29)
    assert [r["settlementPeriod"] for r in body["data"]] == list(range(1, 47))
    for row in body["data"]:
        start = dt.datetime.fromisoformat(row["startTime"].replace("Z", "+00:00"))
        assert period_start(day, row["settlementPeriod"]) == start


def test_day_window_is_local_midnight_to_local_midnight() -> None:
    assert day_window_utc(dt.date(2025, 10, 26)) == (
        dt.datetime(2025, 10, 25, 23, tzinfo=UTC),
        dt.datetime(2025, 10, 27, 0, tzinfo=UTC),
    )
    assert day_window_utc(dt.date(2026, 3, 29)) == (
        dt.datetime(2026, 3, 29, 0, tzinfo=UTC),
        dt.datetime(2026, 3, 29, 23, tzinfo=UTC),
    )


def test_windows_split_to_the_dataset_maximum() -> None:
    # 24 h at most (INDGEN's stated one-day limit): the 25 h autumn day needs two requests.
    indgen = catalog.get("INDGEN")
    windows = request_windows(indgen, dt.date(2025, 10, 26))
    # Windows include their end: each stops a second before the next one starts.
    assert [(w.start, w.end) for w in windows] == [
        (dt.datetime(2025, 10, 25, 23, tzinfo=UTC), dt.datetime(2025, 10, 26, 22, 59, 59, tzinfo=UTC)),
        (dt.datetime(2025, 10, 26, 23, tzinfo=UTC), dt.datetime(2025, 10, 26, 23, 59, 59, tzinfo=UTC)),
    ]
    assert windows[0].params == {
        "publishDateTimeFrom": "2025-10-25T23:00:00Z",
        "publishDateTimeTo": "2025-10-26T22:59:59Z",
    }
    bod = catalog.get("BOD")  # no stated limit: the whole settlement day, whatever its length
    for day in (dt.date(2026, 3, 29), dt.date(2025, 10, 26), dt.date(2025, 11, 3)):
        (window,) = request_windows(bod, day)
        assert (window.start, window.end + dt.timedelta(seconds=1)) == day_window_utc(day)


def test_date_styles_ask_for_exactly_the_day() -> None:
    [window] = request_windows(catalog.get("DISEBSP"), dt.date(2025, 10, 26))
    assert window.path == "/balancing/settlement/system-prices/2025-10-26"
    [window] = request_windows(catalog.get("FUELINST"), dt.date(2025, 10, 26))
    assert window.params == {"settlementDateFrom": "2025-10-26", "settlementDateTo": "2025-10-26"}
