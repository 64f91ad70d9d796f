"""What a saved API response holds: rows, duplicates, keys, periods, drift (``bmrs inspect``).

The same parsing and hashing the pipeline uses, so the report says exactly what a load of
that response would store.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from worker.elexon.catalog import Dataset
from worker.elexon.client import RequestWindow, inside_window, rows_from_body
from worker.elexon.coverage import expected_periods, present_periods
from worker.elexon.parse import parse_rows


def inspect_response(
    dataset: Dataset,
    body: bytes,
    *,
    window_start: dt.datetime | None = None,
    window_end: dt.datetime | None = None,
    source: str = "file",
) -> dict[str, Any]:
    """Report keys: rows, exact_duplicates, distinct_keys, periods_present, periods_expected,
    outside_window, schema_drift (plus days, the settlement days the rows fall on).

    Periods are summed over the settlement days present; null for publish-time datasets.
    """
    rows = rows_from_body(body, source)
    outside = 0
    if window_start is not None or window_end is not None:
        window = RequestWindow(
            path="",
            params={},
            start=window_start or dt.datetime.min.replace(tzinfo=dt.UTC),
            end=window_end or dt.datetime.max.replace(tzinfo=dt.UTC),
        )
        outside = sum(1 for row in rows if not inside_window(dataset, window, row))
    parsed = parse_rows(dataset, rows, source="api")
    table = parsed.table
    distinct_hashes = len(pc.unique(table.column("_hash_key"))) if table.num_rows else 0
    days = sorted(pc.unique(table.column("_day")).to_pylist()) if table.num_rows else []
    present = expected = None
    if dataset.tracks_periods:
        present = expected = 0
        for day in days:
            one_day = table.filter(pc.equal(table.column("_day"), pa.scalar(day, pa.date32())))
            present += len(present_periods(dataset, day, one_day))
            expected += expected_periods(dataset, day) or 0
    return {
        "dataset": dataset.code,
        "rows": table.num_rows,
        "exact_duplicates": table.num_rows - distinct_hashes,
        "distinct_keys": _distinct_keys(dataset, table),
        "periods_present": present,
        "periods_expected": expected,
        "outside_window": outside,
        "schema_drift": list(parsed.schema_drift),
        "days": [d.isoformat() for d in days],
    }


def _distinct_keys(dataset: Dataset, table: pa.Table) -> int:
    if table.num_rows == 0:
        return 0
    keys = table.select(list(dataset.natural_key))
    return keys.group_by(list(dataset.natural_key)).aggregate([]).num_rows
