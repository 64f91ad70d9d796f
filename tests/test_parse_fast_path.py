"""Column-wise hashing gives exactly the hashes of the value-by-value canonical form.

``parse_rows`` builds every row's canonical JSON column by column in Arrow; that only pays off
if it never differs from the definition (``canonical_json``, one row at a time), since one
differing hash would let a duplicate into every existing warehouse.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import pytest

from worker.elexon import catalog
from worker.elexon.parse import SchemaError, canonical_json, parse_rows
from worker.elexon.settlement import day_window_utc
from worker.sim.calibrated import GENERATOR_CLASSES, generators
from worker.sim.generators import HALF_HOUR

DAY = dt.date(2025, 10, 26)  # the autumn clock change: 50 periods, the odd hour twice

STRINGS = ["plain", 'quote " inside', "back\\slash", "tab\tand\nnewline", "\x00\x1f", "é ü 中文",
           "\u2028\u2029", "\x7f", "", "emoji \U0001F600", "comma, brace } [", None]
FLOATS = [0.0, -0.0, 0.1, 50.0, 1e16, 1e-7, 5e-324, 1.7976931348623157e308, 123456789.125, -3.5, 7, None]


def _hashes_one_by_one(dataset: catalog.Dataset, rows: list[dict[str, Any]]) -> list[str]:
    return [hashlib.sha256(canonical_json(dataset, row)).hexdigest() for row in rows]


def _simulated_rows(dataset: catalog.Dataset, limit: int = 400) -> list[dict[str, Any]]:
    generator = generators(seed=7, scale=0.02)[dataset.code]
    start, end = day_window_utc(DAY)
    rows: list[dict[str, Any]] = []
    while start < end and len(rows) < limit:
        rows.extend(generator.rows(start))
        start += HALF_HOUR
    return rows[:limit]


# Datasets with a calibrated simulator generator; the generic ones join with the generic layer.
@pytest.mark.parametrize(
    "dataset", [d for d in catalog.DATASETS if d.code in GENERATOR_CLASSES], ids=lambda d: d.code
)
def test_every_dataset_hashes_as_its_rows_one_by_one(dataset: catalog.Dataset) -> None:
    rows = _simulated_rows(dataset)
    assert rows, f"the simulator made no {dataset.code} rows"
    table = parse_rows(dataset, rows).table
    assert table.column("_hash_key").to_pylist() == _hashes_one_by_one(dataset, rows)


def test_strings_needing_escapes_and_awkward_floats_hash_as_orjson_spells_them() -> None:
    dataset = catalog.get("MID")
    rows = [
        {
            "startTime": "2025-10-26T00:00:00Z",
            "settlementDate": "2025-10-26",
            "settlementPeriod": 1 + i % 50,
            "dataProvider": STRINGS[i % len(STRINGS)],
            "price": FLOATS[i % len(FLOATS)],
            "volume": FLOATS[(i * 5) % len(FLOATS)],
        }
        for i in range(len(STRINGS) * len(FLOATS))
    ]
    hashes = parse_rows(dataset, rows).table.column("_hash_key").to_pylist()
    assert hashes == _hashes_one_by_one(dataset, rows)
    assert len(set(hashes)) == len({canonical_json(dataset, row) for row in rows})


def test_a_batch_of_only_safe_strings_and_one_of_escapes_agree_on_shared_rows() -> None:
    # Column-wise encoding picks a path per batch; a row must hash the same in either batch.
    dataset = catalog.get("MID")
    row = {"startTime": "2025-10-26T00:00:00Z", "settlementDate": "2025-10-26",
           "settlementPeriod": 3, "dataProvider": "N2EX", "price": 91.5, "volume": None}
    alone = parse_rows(dataset, [row]).table.column("_hash_key")[0]
    mixed = parse_rows(dataset, [{**row, "dataProvider": 'A"B'}, row]).table.column("_hash_key")[1]
    assert alone == mixed


def test_a_json_object_where_a_number_belongs_is_a_schema_error_not_a_crash() -> None:
    row = {"measurementTime": "2025-10-26T00:00:00Z", "frequency": {"value": 50}}
    with pytest.raises(SchemaError, match="FREQ: field 'frequency' expects double"):
        parse_rows(catalog.get("FREQ"), [row])
