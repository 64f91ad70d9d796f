"""Which dataset-days need (re)fetching: the refresh policy behind the sweep and ``gaps --fill``.

A day needs a fetch when it is missing, partial, failed, empty where the dataset is dense, or
*stale*: complete, but last fetched before its revision window closed. Elexon keeps revising
some data after the day (settlement re-runs system prices for weeks; late BOALF rows arrive),
so each catalog entry says for how many days (``revision_days``); until a fetch happens after
that window, the day is fetched again on every sweep, and then it has settled.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from worker.elexon import catalog
from worker.elexon.catalog import Dataset
from worker.elexon.coverage import Coverage
from worker.elexon.pipeline import UNPUBLISHED, settles_at
from worker.elexon.settlement import current_settlement_day, day_window_utc
from worker.settings import Settings
from worker.sinks.base import Sink


@dataclasses.dataclass(frozen=True)
class DueChunk:
    """A dataset-day to fetch, and why."""

    dataset: Dataset
    day: dt.date
    reason: str


def configured_datasets(settings: Settings) -> list[Dataset]:
    """The datasets this cluster keeps (``BMRS_DATASETS``: a comma list, or ``all``, the
    default: every catalog dataset)."""
    if not settings.datasets.strip() or settings.datasets.strip().lower() == "all":
        return list(catalog.DATASETS)
    return catalog.parse_codes(settings.datasets)


def refetch_reason(dataset: Dataset, coverage: Coverage) -> str | None:
    """Why this day should be fetched again, or None if it holds what it will ever hold."""
    if coverage.status in ("missing", "partial", "failed"):
        return f"{coverage.status}" + (f": {coverage.reason}" if coverage.reason else "")
    if coverage.status == "empty" and (coverage.reason or "").startswith(UNPUBLISHED):
        return f"empty: {coverage.reason}"
    if coverage.status == "empty" and dataset.dense:
        return "empty"
    if dataset.snapshot:
        # Reference data has no settled day: it is refreshed once a (London) day.
        today_start = day_window_utc(current_settlement_day())[0]
        if coverage.fetched_utc is None or coverage.fetched_utc < today_start:
            return "stale: reference snapshot, refreshed daily"
        return None
    settled = settles_at(dataset, coverage.date)
    if coverage.fetched_utc is None or coverage.fetched_utc < settled:
        fetched = (
            coverage.fetched_utc.strftime("%Y-%m-%d %H:%MZ") if coverage.fetched_utc else "never"
        )
        return f"stale: fetched {fetched}, before revisions end {settled:%Y-%m-%d %H:%MZ}"
    return None


def sweep_window(
    dataset: Dataset, today: dt.date, lookback_days: int
) -> tuple[dt.date, dt.date] | None:
    """Days the sweep checks: back far enough to see every unsettled day, up to yesterday.

    Today belongs to the realtime poll (it is partial until it ends). A snapshot (reference)
    dataset has only its one partition.
    """
    if dataset.snapshot:
        day = dataset.chunk_day(today)
        return (day, day)
    lookback = max(lookback_days, dataset.revision_days + 1)
    first = max(dataset.earliest, today - dt.timedelta(days=lookback))
    last = today - dt.timedelta(days=1)
    return (first, last) if first <= last else None


def due_chunks(
    sink: Sink,
    datasets: list[Dataset],
    start: dt.date,
    end: dt.date,
    *,
    include_stale: bool = True,
) -> list[DueChunk]:
    """Every dataset-day from start to end that needs a fetch, oldest first."""
    spans = {d: span for d in datasets if (span := _span(d, start, end))}
    return _due(sink, spans, include_stale)


def sweep(
    sink: Sink, datasets: list[Dataset], today: dt.date, lookback_days: int
) -> list[DueChunk]:
    """What the daily sweep enqueues: each dataset's due days within its sweep window."""
    spans = {
        d: span for d in datasets
        if (window := sweep_window(d, today, lookback_days)) and (span := _span(d, *window))
    }
    return _due(sink, spans, include_stale=True)


def _span(dataset: Dataset, start: dt.date, end: dt.date) -> tuple[dt.date, dt.date] | None:
    """The days of start..end the dataset has (its history's start; a snapshot's one day)."""
    first, last = max(start, dataset.earliest), end
    if dataset.snapshot:
        first = last = dataset.chunk_day(start)
    return (first, last) if first <= last else None


def _due(
    sink: Sink, spans: dict[Dataset, tuple[dt.date, dt.date]], include_stale: bool
) -> list[DueChunk]:
    """Due days of each dataset's span, the coverage of all read at once (one query on
    BigQuery however many datasets), oldest first."""
    known = sink.coverage_spans(spans) if spans else {}
    due: list[DueChunk] = []
    for dataset in spans:
        for coverage in known[dataset.code]:
            reason = refetch_reason(dataset, coverage)
            if reason and (include_stale or not reason.startswith("stale")):
                due.append(DueChunk(dataset, coverage.date, reason))
    due.sort(key=lambda chunk: (chunk.day, chunk.dataset.code))
    return due
