"""The window check's string fast path keeps exactly the rows ``inside_window`` keeps.

Rows outside the asked window are how a misspelt parameter shows (the API then answers with
its default data), so the fast path may never keep a row the definition drops, nor drop one
it keeps, whatever the spelling of the row's time or date.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest

from worker.elexon import catalog
from worker.elexon.client import RequestWindow, inside_window, request_windows, rows_inside

DAY = dt.date(2025, 11, 5)

# Edges, neighbours and other spellings of instants around 01:00-02:00 UTC; some valid ISO
# forms that do not sort as text ("2025-11-05T013000.0Z" is 01:30, "2025-11-05 01:30:00Z").
INSTANTS = [
    "2025-11-05T01:00:00Z", "2025-11-05T02:00:00Z", "2025-11-05T00:59:59Z", "2025-11-05T02:00:01Z",
    "2025-11-05T01:30:00Z", "2025-11-04T23:59:59Z", "2025-11-06T00:00:00Z", "2025-11-05T00:00:00Z",
    "2025-11-05T23:59:59Z", "2025-11-05T01:30:00.000Z", "2025-11-05T01:30:00+00:00",
    "2025-11-05T02:30:00+01:00", "2025-11-05T013000.0Z", "2025-11-05T023000.0Z",
    "2025-11-05 01:30:00Z", "2025-11-05 23:30:00Z", "20251105T01:30:00Z", "2025-11-05t01:30:00z",
    "2025-11-05T01:30:00", "2025-11-05T0a:00:00Z", "2025-13-45T01:00:00Z", "yesterday", "", None, 5,
]
DATES = [
    "2025-11-05", "2025-11-04", "2025-11-06", "20251105", "2025-W45-3", "2025-W45-4", "2025-309",
    "2025-11-5", "2025-13-45", "2025-11-05T00:00:00Z", "", None, 20251105,
]


def _check(dataset: catalog.Dataset, field: str, values: list[Any], windows: list[Any]) -> None:
    rows: list[Any] = [{field: value, "n": i} for i, value in enumerate(values)]
    rows.append({"n": len(values)})  # the field missing
    rows.append(["not", "an", "object"])  # kept for the parser to name
    for window in windows:
        kept, outside = rows_inside(dataset, window, rows)
        expected = [row for row in rows if not isinstance(row, dict) or inside_window(dataset, window, row)]
        assert kept == expected, window
        assert outside == len(rows) - len(expected)


@pytest.mark.parametrize("code", ["BOD", "FREQ", "MID", "REMIT"])
def test_time_windows_keep_what_inside_window_keeps(code: str) -> None:
    dataset = catalog.get(code)
    # The client's own windows, and one across UTC midnight (where text and time order part).
    across = RequestWindow(dataset.endpoint, {}, dt.datetime(2025, 11, 4, 23, tzinfo=dt.UTC),
                           dt.datetime(2025, 11, 5, 23, tzinfo=dt.UTC))
    _check(dataset, dataset.time_field or "", INSTANTS, [*request_windows(dataset, DAY)[:3], across])


def test_an_hourly_window_keeps_its_own_instants_and_drops_the_rest() -> None:
    dataset = catalog.get("BOD")
    # A BOD day is one request now; an hour is the window a learned limit may narrow it to.
    start = dt.datetime(2025, 11, 5, 1, tzinfo=dt.UTC)
    window = RequestWindow(dataset.endpoint, {}, start, start + dt.timedelta(hours=1, seconds=-1))
    rows = [{"timeFrom": value} for value in INSTANTS[:8]]
    kept, outside = rows_inside(dataset, window, rows)
    # 01:00:00 up to the window's last instant (01:59:59), whatever the client's margin.
    expected = [v for v in INSTANTS[:8] if "2025-11-05T01:00:00Z" <= v <= window.end.strftime("%Y-%m-%dT%H:%M:%SZ")]
    assert [row["timeFrom"] for row in kept] == expected and "2025-11-05T01:30:00Z" in expected
    assert outside == 8 - len(expected)


@pytest.mark.parametrize("code", ["FUELINST", "DISEBSP"])
def test_settlement_date_windows_keep_what_inside_window_keeps(code: str) -> None:
    dataset = catalog.get(code)
    _check(dataset, "settlementDate", DATES, request_windows(dataset, DAY))


def test_period_datasets_without_a_time_field_use_the_definition() -> None:
    dataset = catalog.get("DISBSAD")
    assert dataset.time_field is None
    rows = [
        {"settlementDate": date, "settlementPeriod": period}
        for date, period in itertools.product(["2025-11-04", "2025-11-05", "2025-11-06"], [1, 2, 48, None])
    ]
    for window in request_windows(dataset, DAY):
        kept, _ = rows_inside(dataset, window, rows)
        assert kept == [row for row in rows if inside_window(dataset, window, row)]
