"""Coverage: what one dataset-day holds, judged against what it should hold.

Written by the sink beside the data, under the chunk's lock, from the rows actually stored
(not from what one fetch returned), so it is true whichever worker wrote last.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from worker.elexon.catalog import Dataset
from worker.elexon.settlement import PERIOD, day_window_utc, periods_in_day

Status = Literal["complete", "partial", "empty", "failed", "missing"]
STATUSES: tuple[Status, ...] = ("complete", "partial", "empty", "failed", "missing")


@dataclasses.dataclass
class Coverage:
    """One dataset-day's record; the JSON keys are public (``bmrs gaps --json``)."""

    dataset: str
    date: dt.date
    status: Status
    rows: int = 0
    duplicates_dropped: int = 0
    periods_present: int | None = None
    periods_expected: int | None = None
    digest: str | None = None
    fetched_utc: dt.datetime | None = None
    reason: str | None = None
    requests: int = 0
    outside_window: int = 0

    def to_json(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record["date"] = self.date.isoformat()
        if self.fetched_utc is not None:
            record["fetched_utc"] = self.fetched_utc.astimezone(dt.UTC).strftime(
                "%Y-%m-%dT%H:%M:%S.%fZ"
            )
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Coverage:
        values = {f.name: record.get(f.name) for f in dataclasses.fields(cls) if f.name in record}
        values["date"] = dt.date.fromisoformat(record["date"])
        if values.get("fetched_utc"):
            values["fetched_utc"] = dt.datetime.fromisoformat(
                str(values["fetched_utc"]).replace("Z", "+00:00")
            )
        return cls(**values)

    @classmethod
    def missing(cls, dataset: Dataset, day: dt.date) -> Coverage:
        """A day never attempted."""
        return cls(
            dataset=dataset.code,
            date=day,
            status="missing",
            periods_expected=expected_periods(dataset, day),
            reason="never fetched",
        )


def expected_periods(dataset: Dataset, day: dt.date) -> int | None:
    """46, 48 or 50; None where periods do not apply (publish-time datasets)."""
    return periods_in_day(day) if dataset.tracks_periods else None


def present_periods(dataset: Dataset, day: dt.date, table: pa.Table) -> set[int]:
    """Distinct settlement periods of the day found in the rows."""
    if not dataset.tracks_periods or table.num_rows == 0:
        return set()
    if dataset.period_field:
        values = table.column(dataset.period_field)
    else:
        # FREQ has no period field: a period is present when a sample falls inside it.
        start, _ = day_window_utc(day)
        micros = table.column(dataset.partition_field).cast(pa.int64())
        offset = pc.subtract(micros, int(start.timestamp() * 1_000_000))
        values = pc.add(pc.divide(offset, int(PERIOD.total_seconds() * 1_000_000)), 1)
    expected = periods_in_day(day)
    return {p for p in pc.unique(values).to_pylist() if p is not None and 1 <= p <= expected}


def digest(table: pa.Table) -> str:
    """Order-independent digest of a day's content: SHA-256 over its sorted row hashes."""
    hashes = pc.sort_indices(table, sort_keys=[("_hash_key", "ascending")])
    ordered = table.column("_hash_key").take(hashes).to_pylist()
    return hashlib.sha256("\n".join(ordered).encode()).hexdigest()


def judge(
    dataset: Dataset,
    day: dt.date,
    stored: pa.Table,
    *,
    duplicates_dropped: int,
    requests: int,
    outside_window: int,
    fetched_utc: dt.datetime,
) -> Coverage:
    """Coverage of a day whose every request succeeded, from the rows now stored.

    Dense datasets are complete only with every period present; sparse ones (BOD, BOALF...)
    are complete when every request succeeded, since a quiet period legitimately has no rows.
    """
    expected = expected_periods(dataset, day)
    present = present_periods(dataset, day, stored)
    reason = None
    if stored.num_rows == 0:
        status: Status = "empty"
        reason = "the API returned no rows for this day"
    elif dataset.dense and expected is not None and len(present) < expected:
        status = "partial"
        absent = sorted(set(range(1, expected + 1)) - present)
        reason = f"{len(absent)} of {expected} periods absent: {_ranges(absent)}"
    else:
        status = "complete"
    return Coverage(
        dataset=dataset.code,
        date=day,
        status=status,
        rows=stored.num_rows,
        duplicates_dropped=duplicates_dropped,
        periods_present=len(present) if expected is not None else None,
        periods_expected=expected,
        digest=digest(stored),
        fetched_utc=fetched_utc,
        reason=reason,
        requests=requests,
        outside_window=outside_window,
    )


def _ranges(numbers: list[int]) -> str:
    """[1,2,3,7] -> '1-3, 7' for short, readable reasons."""
    spans: list[str] = []
    for n in numbers:
        if spans and spans[-1].split("-")[-1] == str(n - 1):
            spans[-1] = f"{spans[-1].split('-')[0]}-{n}"
        else:
            spans.append(str(n))
    return ", ".join(spans)
