"""Typed parsing and content hashing: one row hashes the same from the API and from IRIS."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import orjson
import pytest

from worker.elexon import catalog
from worker.elexon.parse import SchemaError, canonical_json, parse_rows

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "elexon" / "samples"

BOALF_API_ROW = {
    "dataset": "BOALF",
    "settlementDate": "2025-10-27",
    "settlementPeriodFrom": 34,
    "settlementPeriodTo": 35,
    "timeFrom": "2025-10-27T16:48:00Z",
    "timeTo": "2025-10-27T16:50:00Z",
    "levelFrom": 120,
    "levelTo": 95,
    "acceptanceNumber": 10262,
    "acceptanceTime": "2025-10-27T16:45:12Z",
    "deemedBoFlag": False,
    "soFlag": True,
    "amendmentFlag": "ORI",
    "storFlag": False,
    "rrFlag": None,
    "nationalGridBmUnit": "DRAXX-1",
    "bmUnit": "T_DRAXX-1",
}


def _hash(code: str, row: dict, source: str = "api") -> str:
    return parse_rows(catalog.get(code), [row], source=source).table.column("_hash_key")[0].as_py()


def test_same_row_from_iris_shape_hashes_the_same() -> None:
    # IRIS rows: other key order, millisecond timestamps with +00:00, no rrFlag key at all,
    # 120.0 for an int, and a different source; none of that changes the content.
    iris_row = {k: BOALF_API_ROW[k] for k in reversed(list(BOALF_API_ROW)) if k != "rrFlag"}
    iris_row["timeFrom"] = "2025-10-27T16:48:00.000+00:00"
    iris_row["acceptanceTime"] = "2025-10-27T16:45:12.000Z"
    iris_row["levelFrom"] = 120.0
    assert _hash("BOALF", iris_row, source="iris") == _hash("BOALF", BOALF_API_ROW)


def test_hash_changes_with_any_catalog_field_and_not_with_dataset_field() -> None:
    base = _hash("BOALF", BOALF_API_ROW)
    assert _hash("BOALF", {**BOALF_API_ROW, "levelTo": 96}) != base
    assert _hash("BOALF", {**BOALF_API_ROW, "amendmentFlag": None}) != base
    assert _hash("BOALF", {**BOALF_API_ROW, "dataset": "SOMETHING"}) == base


def test_hash_is_stable_across_releases() -> None:
    # Changing the canonical form would let every stored row in again as a "new" row.
    assert canonical_json(catalog.get("FREQ"), {"measurementTime": "2025-01-01T00:00:15Z", "frequency": 50}) == (
        b'{"frequency":50.0,"measurementTime":1735689615000000}'
    )
    golden = hashlib.sha256(b'{"frequency":50.0,"measurementTime":1735689615000000}').hexdigest()
    assert _hash("FREQ", {"measurementTime": "2025-01-01T00:00:15Z", "frequency": 50}) == golden


def test_real_system_prices_parse_to_typed_columns() -> None:
    body = json.loads((SAMPLES / "DISEBSP__nikolisan-bmrs_api-2025-10-26.json").read_text())
    parsed = parse_rows(catalog.get("DISEBSP"), body["data"])
    table = parsed.table
    assert table.num_rows == 50 and parsed.schema_drift == ()
    assert table.schema.equals(catalog.get("DISEBSP").storage_schema)
    assert table.column("startTime")[0].as_py() == dt.datetime(2025, 10, 25, 23, tzinfo=dt.UTC)
    assert table.column("_day").to_pylist() == [dt.date(2025, 10, 26)] * 50
    assert len(set(table.column("_hash_key").to_pylist())) == 50
    assert table.column("totalSystemTaggedAdjustmentSellVolume")[0].as_py() is None


def test_new_field_is_kept_in_extra_and_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    row = {**BOALF_API_ROW, "newFlag": "X"}
    parsed = parse_rows(catalog.get("BOALF"), [row, BOALF_API_ROW])
    assert parsed.schema_drift == ("newFlag",)
    assert orjson.loads(parsed.table.column("_extra")[0].as_py()) == {"newFlag": "X"}
    assert parsed.table.column("_extra")[1].as_py() is None
    parse_rows(catalog.get("BOALF"), [row])
    assert sum("newFlag" in r.getMessage() for r in caplog.records) == 1
    # Drift does not change the content hash of the catalog fields.
    assert parsed.table.column("_hash_key")[0] == parsed.table.column("_hash_key")[1]


def test_missing_required_field_is_a_clear_error() -> None:
    row = {k: v for k, v in BOALF_API_ROW.items() if k != "timeFrom"}
    with pytest.raises(SchemaError, match="BOALF: required field 'timeFrom' is missing"):
        parse_rows(catalog.get("BOALF"), [row])
    with pytest.raises(SchemaError, match="BOALF: required field 'settlementDate' is missing"):
        parse_rows(catalog.get("BOALF"), [{**BOALF_API_ROW, "settlementDate": None}])


def test_nullable_key_fields_may_be_null() -> None:
    # The spec marks nationalGridBmUnit nullable: such rows are stored, not refused.
    parsed = parse_rows(catalog.get("BOALF"), [{**BOALF_API_ROW, "nationalGridBmUnit": None}])
    assert parsed.table.column("nationalGridBmUnit").to_pylist() == [None]


@pytest.mark.parametrize(
    ("field", "value"),
    [("levelFrom", 12.5), ("levelFrom", "many"), ("timeFrom", "yesterday"), ("soFlag", "maybe"), ("settlementDate", "2025-13-45")],
)
def test_wrong_types_are_refused_not_coerced(field: str, value: object) -> None:
    with pytest.raises(SchemaError, match=f"BOALF: field '{field}'"):
        parse_rows(catalog.get("BOALF"), [{**BOALF_API_ROW, field: value}])


def test_partition_day_of_utc_timestamped_dataset_is_the_london_date() -> None:
    rows = [
        {"measurementTime": "2025-10-25T22:59:45Z", "frequency": 50.01},  # 23:59:45 BST: the 25th
        {"measurementTime": "2025-10-25T23:00:00Z", "frequency": 50.02},  # 00:00 BST: the 26th
        {"measurementTime": "2025-10-26T23:59:45Z", "frequency": 49.98},  # 23:59:45 GMT: the 26th
    ]
    days = parse_rows(catalog.get("FREQ"), rows).table.column("_day").to_pylist()
    assert days == [dt.date(2025, 10, 25), dt.date(2025, 10, 26), dt.date(2025, 10, 26)]
