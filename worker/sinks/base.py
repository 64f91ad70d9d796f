"""The sink interface every warehouse implements, and the load rule they all share.

A sink stores one partition per dataset-day and the coverage record beside it. The load
rule (DESIGN.md invariant 1) lives here once: under the day's lock, read the partition,
unite it with the fetch, drop exact duplicates, swap the day in whole, then record coverage.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import datetime as dt
from collections.abc import Iterable, Iterator, Mapping

import pyarrow as pa

from worker.elexon.catalog import DATASETS, Dataset
from worker.elexon.coverage import Coverage
from worker.elexon.dedup import conform, drop_duplicates, unite


@dataclasses.dataclass(frozen=True)
class LoadResult:
    """What a chunk load did: the rows now stored and the duplicates it refused."""

    stored: pa.Table
    duplicates_dropped: int
    new_rows: int


class SinkConfigError(ValueError):
    """The sink's settings are missing or wrong: names the setting and what to do (start-up)."""


class QueryError(RuntimeError):
    """The warehouse refused a query; carries the engine's own message."""


class Sink(abc.ABC):
    """A warehouse of dataset-day partitions with coverage records."""

    name: str

    @abc.abstractmethod
    def chunk_lock(self, dataset: Dataset, day: dt.date) -> contextlib.AbstractContextManager[None]:
        """Exclusive right to rewrite one dataset-day, across processes."""

    @abc.abstractmethod
    def read_day(self, dataset: Dataset, day: dt.date) -> pa.Table | None:
        """The stored rows of one dataset-day, or None if it was never written."""

    @abc.abstractmethod
    def write_day(self, dataset: Dataset, day: dt.date, table: pa.Table) -> None:
        """Replace one dataset-day atomically: readers see the old or the new day, whole."""

    @abc.abstractmethod
    def read_coverage(self, dataset: Dataset, days: Iterable[dt.date]) -> dict[dt.date, Coverage]:
        """Coverage records of the days that have one (missing days are absent)."""

    @abc.abstractmethod
    def write_coverage(self, coverage: Coverage) -> None:
        """Record one dataset-day's coverage (call under the chunk lock)."""

    @abc.abstractmethod
    def query(self, sql: str) -> pa.Table:
        """Run SQL over the dataset views (``<code>``, ``<code>_latest``...)."""

    # IRIS stream rows (issue 3). Kept apart from the API partitions: the API day is
    # rewritten whole by chunk loads, stream batches are only ever appended.
    def append_stream(self, dataset: Dataset, day: dt.date, table: pa.Table, batch_id: str) -> bool:
        """Store one batch of stream rows of a day, idempotently by ``batch_id`` (a content
        hash): a batch already stored is not stored again. Returns whether it was new."""
        raise NotImplementedError(f"{self.name} sink does not store IRIS stream rows yet")

    def prune_stream(self, dataset: Dataset, *, before: dt.date) -> list[dt.date]:
        """Drop stream rows of days before ``before`` whose API chunk is complete;
        returns the days pruned (retention, ``BMRS_IRIS_RETENTION_DAYS``)."""
        raise NotImplementedError(f"{self.name} sink does not prune IRIS stream rows yet")

    def newest_day(self, dataset: Dataset) -> dt.date | None:
        """The last day that holds rows, however old, without reading the history (freshness
        reports the newest row and its age even when it is years old)."""
        raise NotImplementedError(f"{self.name} sink does not report its newest day")

    def day_bounds(self, dataset: Dataset, day: dt.date) -> dict[str, tuple[object, object]] | None:
        """Per day column (time, period...) the day's (min, max), where the sink keeps them
        without reading the day; None where it does not (the caller reads the day)."""
        return None

    # Reads across many datasets at once (freshness, ``bmrs status``, the dashboard's health
    # tab ask about every configured dataset). The defaults ask one dataset at a time, which
    # costs nothing on the local lake; a sink where each read is a billed query (BigQuery)
    # answers each of these in one query, so the cost does not grow with the catalog.

    def newest_days(self, datasets: Iterable[Dataset]) -> dict[str, dt.date | None]:
        """:meth:`newest_day` of each dataset, by code."""
        return {dataset.code: self.newest_day(dataset) for dataset in datasets}

    def day_bounds_of(
        self, days: Mapping[Dataset, dt.date]
    ) -> dict[str, dict[str, tuple[object, object]] | None]:
        """:meth:`day_bounds` of one day per dataset, by code. A sink may answer here even
        where :meth:`day_bounds` says None (one query for all the days instead of reading
        each day); it covers at least each dataset's time and period fields."""
        return {dataset.code: self.day_bounds(dataset, day) for dataset, day in days.items()}

    def read_coverage_spans(
        self, spans: Mapping[Dataset, tuple[dt.date, dt.date]]
    ) -> dict[str, dict[dt.date, Coverage]]:
        """:meth:`read_coverage` of each dataset over its own (first, last) days, by code."""
        return {
            dataset.code: self.read_coverage(dataset, days_between(first, last))
            for dataset, (first, last) in spans.items()
        }

    def coverage_spans(
        self, spans: Mapping[Dataset, tuple[dt.date, dt.date]]
    ) -> dict[str, list[Coverage]]:
        """:meth:`coverage_range` of each dataset over its own (first, last) days, by code."""
        known = self.read_coverage_spans(spans)
        return {
            dataset.code: [
                known.get(dataset.code, {}).get(day) or Coverage.missing(dataset, day)
                for day in days_between(first, last)
            ]
            for dataset, (first, last) in spans.items()
        }

    def coverage_range_of(
        self, datasets: Iterable[Dataset], start: dt.date, end: dt.date
    ) -> dict[str, list[Coverage]]:
        """:meth:`coverage_range` of many datasets over the same days, by code."""
        return self.coverage_spans({dataset: (start, end) for dataset in datasets})

    def vacuum(self) -> int:
        """Reclaim storage a sink keeps only for readers' sake (superseded files); how many
        items were removed. Sinks that replace partitions in place have nothing to do."""
        return 0

    def load_chunk(
        self, dataset: Dataset, day: dt.date, fetched: pa.Table, *, replace: bool = False
    ) -> LoadResult:
        """Unite a fetch with the stored day and swap it in. Call under :meth:`chunk_lock`.

        ``replace`` rebuilds the day from the fetch alone (still without exact duplicates).
        """
        existing = None if replace else self.read_day(dataset, day)
        if existing is None:
            stored, dropped = drop_duplicates(conform(dataset, fetched))
        else:
            stored, dropped = unite(dataset, existing, fetched)
        before = 0 if existing is None else existing.num_rows
        self.write_day(dataset, day, stored)
        return LoadResult(stored=stored, duplicates_dropped=dropped, new_rows=stored.num_rows - before)

    def coverage_range(
        self, dataset: Dataset, start: dt.date, end: dt.date
    ) -> Iterator[Coverage]:
        """One record per day from start to end, ``missing`` where never attempted."""
        days = days_between(start, end)
        known = self.read_coverage(dataset, days)
        for day in days:
            yield known.get(day) or Coverage.missing(dataset, day)

    @staticmethod
    def datasets() -> tuple[Dataset, ...]:
        return DATASETS


def days_between(first: dt.date, last: dt.date) -> list[dt.date]:
    """Every day from ``first`` to ``last``, both included (empty when last < first)."""
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
