"""Where a dataset's history really starts: a binary search over the API (``bmrs history``).

The catalog's ``earliest`` comes from Elexon's published statements; this asks the API itself.
It assumes what the published history loads imply: before the first day with data, no day has
any; from it on, days have data. So a binary search between :data:`SEARCH_FROM` and yesterday
finds the first day in about 14 probes. A probe asks for one settlement period at local noon
first (a small answer for the big per-unit datasets), and only when that is empty for the
whole day, stopping at the first window with a row; days before the history answer empty (or
404) at once, so a search costs a few dozen small requests.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from worker.elexon.catalog import Dataset
from worker.elexon.client import (
    ElexonClient,
    PermanentApiError,
    request_windows,
    splits,
    time_window,
)
from worker.elexon.settlement import PERIOD, current_settlement_day, day_window_utc, period_start

# Before any Elexon dataset: BMRS data under NETA starts on 2001-03-27.
SEARCH_FROM = dt.date(2001, 1, 1)
_NOON = dt.timedelta(hours=12)


@dataclasses.dataclass(frozen=True)
class HistoryStart:
    """What the search found; :meth:`to_json` is the public shape of ``bmrs history --json``."""

    dataset: str
    catalog_earliest: dt.date
    first_day_with_data: dt.date | None
    requests: int

    def to_json(self) -> dict[str, object]:
        return {
            "dataset": self.dataset,
            "catalog_earliest": self.catalog_earliest.isoformat(),
            "first_day_with_data": (
                None if self.first_day_with_data is None else self.first_day_with_data.isoformat()
            ),
            "requests": self.requests,
        }

    def verdict(self) -> str:
        """One sentence comparing the API with the catalog, and what it means for backfills."""
        first, earliest = self.first_day_with_data, self.catalog_earliest
        if first is None:
            return (
                f"{self.dataset}: the API has no data up to yesterday; the catalog starts it on "
                f"{earliest}."
            )
        if first == earliest:
            return f"{self.dataset}: data from {first}, as the catalog says."
        gap = abs((first - earliest).days)
        if first < earliest:
            at_floor = " (or earlier: the search starts there)" if first == SEARCH_FROM else ""
            return (
                f"{self.dataset}: data from {first}{at_floor}, {gap} days before the catalog's "
                f"{earliest}: backfills refuse days the API has."
            )
        return (
            f"{self.dataset}: data from {first}, {gap} days after the catalog's {earliest}: "
            f"a backfill from {earliest} asks for {gap} days that come back empty."
        )


def has_data(client: ElexonClient, dataset: Dataset, day: dt.date) -> bool:
    """Whether the API returns at least one row of the dataset for this settlement day."""
    try:
        if not splits(dataset):
            windows = request_windows(dataset, day)
            if dataset.param_style == "path_period":
                # One request per period (and side): ask for the first and noon periods only.
                probes = {period_start(day, 1), period_start(day, 25)}
                windows = [w for w in windows if w.start in probes] or windows[:1]
            return any(client.fetch_window(dataset, w).rows for w in windows)
        start, _ = day_window_utc(day)
        noon = start + _NOON
        if client.fetch_window(dataset, time_window(dataset, noon, noon + PERIOD)).rows:
            return True
        return any(window_rows.rows for window_rows in client.fetch_chunk(dataset, day))
    except PermanentApiError as exc:
        if exc.status == 404:
            return False
        raise


def first_day_with_data(
    client: ElexonClient,
    dataset: Dataset,
    *,
    search_from: dt.date = SEARCH_FROM,
    until: dt.date | None = None,
) -> HistoryStart:
    """Binary search for the first settlement day with data, from ``search_from`` to
    ``until`` (default yesterday). Reference snapshots have no history to search."""
    if dataset.param_style == "snapshot":
        raise ValueError(
            f"{dataset.code} is a reference snapshot: the API serves it whole, with no days"
        )
    before = client.requests_made
    low, high = search_from, until or current_settlement_day() - dt.timedelta(days=1)
    found: dt.date | None
    if not has_data(client, dataset, high):
        found = None
    elif has_data(client, dataset, low):
        found = low
    else:
        # Invariant: no data on ``low``, data on ``high``.
        while (high - low).days > 1:
            middle = low + dt.timedelta(days=(high - low).days // 2)
            if has_data(client, dataset, middle):
                high = middle
            else:
                low = middle
        found = high
    return HistoryStart(dataset.code, dataset.earliest, found, client.requests_made - before)
