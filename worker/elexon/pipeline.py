"""One dataset-day from the API into a sink: fetch, parse, dedup, load, record coverage.

These plain functions are what the Celery tasks wrap; they run the same in-process
(``bmrs ingest``) and on a worker.

A day not yet published is not a failure: inside a dataset's revision window (the day itself
and ``revision_days`` after it) the API may answer 404 or no rows because Elexon has not
published the day yet. Such a day is recorded ``empty`` with a reason saying so, and the sweep
fetches it again until the window closes; an older day that errors is ``failed``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import logging
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from worker.elexon.catalog import Dataset
from worker.elexon.client import ApiError, ElexonClient, WindowRows
from worker.elexon.coverage import Coverage, expected_periods, judge
from worker.elexon.dedup import conform, drop_duplicates
from worker.elexon.parse import SchemaError, parse_rows
from worker.elexon.settlement import day_window_utc
from worker.sinks.base import Sink

log = logging.getLogger(__name__)

# How the reason of a day recorded empty because Elexon has not published it yet begins.
UNPUBLISHED = "not yet published"


@dataclasses.dataclass(frozen=True)
class FetchedChunk:
    """A chunk's rows as fetched, before they meet the stored day."""

    table: pa.Table
    requests: int
    outside_window: int
    other_days: int  # rows of neighbouring days returned by inclusive edges (expected)
    duplicates: int  # exact duplicates within the fetch (repeated rows, window boundaries)
    schema_drift: tuple[str, ...]


def fetch_chunk(client: ElexonClient, dataset: Dataset, day: dt.date) -> FetchedChunk:
    """Every request of the day, parsed window by window so memory stays one window deep.

    A snapshot (reference) dataset has one partition whatever the day asked for."""
    day = dataset.chunk_day(day)
    tables: list[pa.Table] = []
    requests = outside = other_days = 0
    drift: set[str] = set()
    stamp = dt.datetime.now(dt.UTC)
    for window_rows in one_request_ahead(client.fetch_chunk(dataset, day)):
        requests += 1 + window_rows.refused
        outside += window_rows.outside_window
        parsed = parse_rows(dataset, window_rows.rows, source="api", ingested_utc=stamp)
        drift.update(parsed.schema_drift)
        table = parsed.table
        mine = table.filter(pc.equal(table.column("_day"), pa.scalar(day, pa.date32())))
        other_days += table.num_rows - mine.num_rows
        tables.append(conform(dataset, mine))
    combined = pa.concat_tables(tables) if tables else conform(dataset, dataset.schema.empty_table())
    deduped, duplicates = drop_duplicates(combined)
    return FetchedChunk(
        table=deduped,
        requests=requests,
        outside_window=outside,
        other_days=other_days,
        duplicates=duplicates,
        schema_drift=tuple(sorted(drift)),
    )


def one_request_ahead(windows: Iterator[WindowRows]) -> Iterator[WindowRows]:
    """The windows in order, each next one downloading (in a thread) while this is parsed.

    A chunk still makes one request at a time, each after the shared limiter's grant, and
    holds at most two windows; what it gains is the API's response time, hidden behind ours.
    """
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="bmrs-fetch")
    try:
        ahead = pool.submit(next, windows, None)
        while (window_rows := ahead.result()) is not None:
            ahead = pool.submit(next, windows, None)
            yield window_rows
    finally:
        # On an early exit (a parse error, a time limit) do not wait for a request in flight.
        pool.shutdown(wait=False, cancel_futures=True)


def ingest_chunk(
    client: ElexonClient, sink: Sink, dataset: Dataset, day: dt.date, *, replace: bool = False
) -> Coverage:
    """Fetch one dataset-day and load it; a failure is recorded as such, then raised.

    Idempotent: loading unites with the stored day, so any number of runs, in any order,
    on any number of processes, store each distinct row once.
    """
    day = dataset.chunk_day(day)
    requests_before = client.requests_made
    try:
        fetched = fetch_chunk(client, dataset, day)
    except (ApiError, SchemaError) as exc:
        if isinstance(exc, ApiError) and exc.status == 404 and not_settled(dataset, day):
            unpublished = record_unpublished(
                sink, dataset, day, f"the API answered 404 ({exc})",
                requests=client.requests_made - requests_before,
            )
            if unpublished is not None:
                return unpublished
        record_failure(sink, dataset, day, exc)
        raise
    with sink.chunk_lock(dataset, day):
        result = sink.load_chunk(dataset, day, fetched.table, replace=replace)
        coverage = judge(
            dataset,
            day,
            result.stored,
            duplicates_dropped=fetched.duplicates + result.duplicates_dropped,
            requests=fetched.requests,
            outside_window=fetched.outside_window,
            fetched_utc=dt.datetime.now(dt.UTC),
        )
        if coverage.status == "empty" and not_settled(dataset, day):
            coverage.reason = unpublished_reason(dataset, day, "the API returned no rows")
        sink.write_coverage(coverage)
    log.info(
        "%s %s: %s, %d rows (%d new, %d duplicates dropped, %d outside window) in %d requests",
        dataset.code, day, coverage.status, coverage.rows, result.new_rows,
        coverage.duplicates_dropped, fetched.outside_window, fetched.requests,
    )
    return coverage


def record_failure(sink: Sink, dataset: Dataset, day: dt.date, error: Exception) -> Coverage:
    """Mark a day failed with its reason; rows already stored stay as they are."""
    with sink.chunk_lock(dataset, day):
        stored = sink.read_day(dataset, day)
        previous = sink.read_coverage(dataset, [day]).get(day)
        coverage = Coverage(
            dataset=dataset.code,
            date=day,
            status="failed",
            rows=0 if stored is None else stored.num_rows,
            periods_present=previous.periods_present if previous else None,
            periods_expected=expected_periods(dataset, day),
            digest=previous.digest if previous else None,
            fetched_utc=dt.datetime.now(dt.UTC),
            reason=f"{type(error).__name__}: {error}",
        )
        sink.write_coverage(coverage)
    log.error("%s %s: failed: %s", dataset.code, day, error)
    return coverage


def settles_at(dataset: Dataset, day: dt.date) -> dt.datetime:
    """The instant after which a day's data no longer changes: its end plus the revision days."""
    return day_window_utc(day)[1] + dt.timedelta(days=dataset.revision_days)


def not_settled(dataset: Dataset, day: dt.date, now: dt.datetime | None = None) -> bool:
    """Whether the day is still inside its revision window, so it may not be published yet."""
    return (now or dt.datetime.now(dt.UTC)) < settles_at(dataset, day)


def unpublished_reason(dataset: Dataset, day: dt.date, what: str) -> str:
    settles = settles_at(dataset, day)
    return (
        f"{UNPUBLISHED}: {what}; {dataset.code} {day} is inside its "
        f"{dataset.revision_days}-day revision window (until {settles:%Y-%m-%d %H:%MZ}), "
        "so the sweep fetches it again"
    )


def record_unpublished(
    sink: Sink, dataset: Dataset, day: dt.date, what: str, *, requests: int = 0
) -> Coverage | None:
    """Record a recent day the API does not have yet as ``empty``, with the reason.

    None when the day already holds rows: data that was there and is now refused is not
    "not yet published", and the caller records it as a failure.
    """
    with sink.chunk_lock(dataset, day):
        stored = sink.read_day(dataset, day)
        if stored is not None and stored.num_rows:
            return None
        coverage = Coverage(
            dataset=dataset.code,
            date=day,
            status="empty",
            periods_present=0 if expected_periods(dataset, day) is not None else None,
            periods_expected=expected_periods(dataset, day),
            fetched_utc=dt.datetime.now(dt.UTC),
            reason=unpublished_reason(dataset, day, what),
            requests=requests,
        )
        sink.write_coverage(coverage)
    log.info("%s %s: empty, %s", dataset.code, day, coverage.reason)
    return coverage
