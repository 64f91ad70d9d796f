"""The catalog against Elexon's own OpenAPI spec: names and types, so drift is caught."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from worker.elexon import catalog

SPEC_PATH = Path(__file__).resolve().parents[2] / "shared" / "elexon" / "openapi.json"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text())


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = spec["components"]["schemas"][node["$ref"].split("/")[-1]]
    return node


def row_schema(spec: dict[str, Any], path: str) -> dict[str, Any]:
    """The schema of one row of an endpoint's 200 response, whatever its envelope."""
    response = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
    body = _resolve(spec, response["schema"])
    if body.get("type") == "array":
        return _resolve(spec, body["items"])
    data = body["properties"]["data"]
    return _resolve(spec, data["items"] if data.get("type") == "array" else data)


def expected_arrow_type(spec: dict[str, Any], prop: dict[str, Any]) -> pa.DataType:
    prop = _resolve(spec, prop)
    kind, fmt = prop.get("type"), prop.get("format")
    if kind == "string":
        return {"date-time": catalog.TS, "date": catalog.DATE}.get(fmt, catalog.STR)
    if kind == "integer":
        return catalog.I64 if fmt == "int64" else catalog.I32
    if kind == "number":
        return catalog.F64
    if kind == "boolean":
        return catalog.BOOL
    if kind == "array":
        item = _resolve(spec, prop["items"])
        return pa.list_(pa.struct([(n, expected_arrow_type(spec, p)) for n, p in item["properties"].items()]))
    raise AssertionError(f"unmapped OpenAPI type {prop}")


@pytest.mark.parametrize("dataset", catalog.DATASETS, ids=lambda d: d.code)
def test_schema_matches_openapi_row_schema(spec: dict[str, Any], dataset: catalog.Dataset) -> None:
    properties = row_schema(spec, dataset.endpoint)["properties"]
    spec_fields = {name: expected_arrow_type(spec, p) for name, p in properties.items() if name != "dataset"}
    assert dict(dataset.fields) == spec_fields


@pytest.mark.parametrize("dataset", catalog.DATASETS, ids=lambda d: d.code)
def test_endpoint_parameters_exist_in_spec(spec: dict[str, Any], dataset: catalog.Dataset) -> None:
    operation = spec["paths"][dataset.endpoint]["get"]
    names = {p["name"] for p in operation["parameters"]}
    if dataset.param_style == "path_date":
        assert "settlementDate" in names
    else:
        assert set(catalog.WINDOW_PARAMS[dataset.param_style]) <= names


@pytest.mark.parametrize("dataset", catalog.DATASETS, ids=lambda d: d.code)
def test_keys_and_rule_fields_are_catalog_fields(dataset: catalog.Dataset) -> None:
    names = set(dataset.field_names)
    assert set(dataset.natural_key) <= names
    assert dataset.partition_field in names
    assert dataset.version_field is None or dataset.version_field in names
    assert dataset.time_field is None or dataset.time_field in names
    assert dataset.period_field is None or dataset.period_field in names
    if dataset.partition_field != "settlementDate":
        assert dict(dataset.fields)[dataset.partition_field] == catalog.TS


def test_catalog_holds_every_required_dataset() -> None:
    required = "FUELINST FUELHH FREQ MID BOD BOALF DISBSAD NETBSAD INDGEN INDDEM PN QPN MELS MILS REMIT DISEBSP"
    assert set(required.split()) <= set(catalog.BY_CODE)


def test_stream_endpoints_for_physical_notifications() -> None:
    assert catalog.get("PN").endpoint.endswith("/stream")
    assert catalog.get("qpn").endpoint.endswith("/stream")


def test_parse_codes_accepts_commas_and_repeats_and_rejects_unknown() -> None:
    chosen = catalog.parse_codes(["fuelinst,FREQ", "MID", "FREQ"])
    assert [d.code for d in chosen] == ["FUELINST", "FREQ", "MID"]
    with pytest.raises(catalog.UnknownDatasetError, match="valid datasets: BOALF"):
        catalog.parse_codes("NOPE")


SAMPLES = SPEC_PATH.parent / "samples"


def _sample_rows(path: Path) -> list[dict[str, Any]]:
    body = json.loads(path.read_text())
    if isinstance(body, dict) and "response" in body:  # reconstructed notebook output
        body = body["response"]
    return body if isinstance(body, list) else body["data"]


def _samples() -> list[tuple[catalog.Dataset, Path]]:
    found = []
    for path in sorted(SAMPLES.glob("*.json")):
        code = path.name.split("__")[0]
        if code in catalog.BY_CODE:
            found.append((catalog.BY_CODE[code], path))
    return found


@pytest.mark.parametrize(("dataset", "path"), _samples(), ids=lambda v: getattr(v, "name", ""))
def test_natural_key_fields_are_filled_in_every_real_sample(dataset: catalog.Dataset, path: Path) -> None:
    """A null key field merges distinct rows (real MILS has 16 units with bmUnit null)."""
    rows = _sample_rows(path)
    assert rows
    for row in rows:
        missing = [k for k in dataset.natural_key if row.get(k) is None]
        assert not missing, f"{path.name}: key field(s) {missing} null in {row}"


def test_bm_unit_datasets_key_on_national_grid_unit_not_nullable_bm_unit() -> None:
    for dataset in catalog.DATASETS:
        names = set(dataset.field_names)
        if {"nationalGridBmUnit", "bmUnit"} <= names:
            assert "nationalGridBmUnit" in dataset.natural_key, dataset.code
            assert "bmUnit" not in dataset.natural_key, dataset.code


@pytest.mark.parametrize("dataset", catalog.DATASETS, ids=lambda d: d.code)
def test_window_is_the_spec_limit_or_the_whole_settlement_day(dataset: catalog.Dataset) -> None:
    if dataset.spec_limit is None:
        assert dataset.max_window == catalog.WHOLE_DAY
    else:
        assert dataset.max_window == dataset.spec_limit <= catalog.WHOLE_DAY


@pytest.mark.parametrize("dataset", catalog.DATASETS, ids=lambda d: d.code)
def test_history_start_names_its_source(dataset: catalog.Dataset) -> None:
    assert dataset.earliest_source
    if dataset.code in {"PN", "QPN", "MELS", "MILS", "BOD", "BOALF"}:
        assert dataset.earliest == catalog.PHYSICAL_START
    if dataset.code == "REMIT":
        assert dataset.earliest == catalog.REMIT_START


@pytest.mark.parametrize("day", ["2025-06-01", "2025-03-30", "2025-10-26"])
def test_a_bod_or_boalf_day_is_one_request_even_on_clock_change_days(day: str) -> None:
    import datetime as dt

    from worker.elexon.client import request_windows

    for code in ("BOD", "BOALF", "PN", "MILS"):
        assert len(request_windows(catalog.get(code), dt.date.fromisoformat(day))) == 1
