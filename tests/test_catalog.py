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
    if "data" not in body["properties"]:
        return body  # the body is the row (the settlement summary)
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
        return pa.list_(
            pa.struct([(n, expected_arrow_type(spec, p)) for n, p in item["properties"].items()])
        )
    raise AssertionError(f"unmapped OpenAPI type {prop}")


@pytest.mark.parametrize("dataset", catalog.DATASETS, ids=lambda d: d.code)
def test_schema_matches_openapi_row_schema(spec: dict[str, Any], dataset: catalog.Dataset) -> None:
    """Checked against the shared spec itself, not the package's copy of it."""
    schema = row_schema(spec, dataset.endpoint)
    if schema.get("type") == "string":  # a bare list of names: one column
        spec_fields = {dataset.natural_key[0]: catalog.STR}
    else:
        spec_fields = {
            name: (
                catalog.STR
                if _resolve(spec, p).get("type") == "object"
                else expected_arrow_type(spec, p)
            )
            for name, p in schema["properties"].items()
            if name != "dataset"
        }
    if "{bidOffer}" in dataset.endpoint:
        spec_fields["bidOffer"] = catalog.STR  # the side, stamped by the client
    spec_fields.update(dataset.extra_fields)  # what real rows carry beyond the spec
    assert dict(dataset.fields) == spec_fields


@pytest.mark.parametrize("dataset", catalog.DATASETS, ids=lambda d: d.code)
def test_endpoint_parameters_exist_in_spec(spec: dict[str, Any], dataset: catalog.Dataset) -> None:
    operation = spec["paths"][dataset.endpoint]["get"]
    names = {p["name"] for p in operation.get("parameters", [])}
    if dataset.param_style.startswith("path_"):
        assert "{settlementDate}" in dataset.endpoint and "settlementDate" in names
        assert ("{settlementPeriod}" in dataset.endpoint) == (dataset.param_style == "path_period")
    elif dataset.param_style == "settlement_periods":
        assert {"settlementDateFrom", "settlementDateTo", *catalog.PERIOD_PARAMS} <= names
    elif dataset.param_style == "snapshot":
        assert not {p["name"] for p in operation.get("parameters", []) if p.get("required")}
    else:
        assert set(catalog.WINDOW_PARAMS[dataset.param_style]) <= names


def test_the_package_ships_the_spec_unchanged(spec: dict[str, Any]) -> None:
    from worker.elexon import spec as shipped

    assert shipped.load() == spec


def test_every_spec_dataset_code_is_in_the_catalog(spec: dict[str, Any]) -> None:
    codes = {p.split("/")[2] for p in spec["paths"] if p.startswith("/datasets/")} - {"metadata"}
    assert len(codes) == 82
    missing = codes - set(catalog.BY_CODE)
    assert not missing, f"spec datasets missing from {catalog.TABLE_FILE.name}: {sorted(missing)}"
    for code in codes:
        dataset = catalog.BY_CODE[code]
        stream = f"/datasets/{code}/stream"
        assert dataset.endpoint == (stream if stream in spec["paths"] else f"/datasets/{code}")


SETTLEMENT_PATHS = {
    "BOAV": "/balancing/settlement/acceptance/volumes/all/{bidOffer}/{settlementDate}",
    "DISPTAV": "/balancing/settlement/indicative/volumes/all/{bidOffer}/{settlementDate}",
    "EBOCF": "/balancing/settlement/indicative/cashflows/all/{bidOffer}/{settlementDate}",
    "ISPSTACK": "/balancing/settlement/stack/all/{bidOffer}/{settlementDate}/{settlementPeriod}",
    "MKTDEPTH": "/balancing/settlement/market-depth/{settlementDate}",
    "SETTSUM": "/balancing/settlement/summary/{settlementDate}/{settlementPeriod}",
    "SMSG": "/balancing/settlement/messages/{settlementDate}",
    "DISEBSP": "/balancing/settlement/system-prices/{settlementDate}",
    "BMUNITS": "/reference/bmunits/all",
    "INTERCONNECTORS": "/reference/interconnectors/all",
    "FUELTYPES": "/reference/fueltypes/all",
    "REMITASSETS": "/reference/remit/assets/all",
    "REMITPARTICIPANTS": "/reference/remit/participants/all",
}


@pytest.mark.parametrize(("code", "path"), SETTLEMENT_PATHS.items())
def test_settlement_and_reference_datasets_use_their_paths(code: str, path: str) -> None:
    dataset = catalog.get(code)
    assert dataset.endpoint == path
    assert dataset.group == ("reference" if path.startswith("/reference") else "settlement")
    assert dataset.snapshot == path.startswith("/reference")


def test_groups_summaries_and_fields_in_the_public_json() -> None:
    for dataset in catalog.DATASETS:
        described = dataset.describe()
        assert described["group"] in catalog.GROUPS
        assert described["summary"], dataset.code
        assert described["fields"] == [{"name": n, "type": str(t)} for n, t in dataset.fields]
    assert catalog.get("EBOCF").summary.startswith("Indicative period BMU cashflows")


FORECASTS = (
    "NDF NDFD NDFW TSDF TSDFD TSDFW WINDFOR FOU2T14D FOU2T3YW OCNMFD OCNMFD2 OCNMF3Y OCNMF3Y2"
)
BM_DYNAMIC = "SEL SIL MDV MDP NTB NTO NDZ RURE RURI RDRE RDRI MZT MNZT"


@pytest.mark.parametrize("code", FORECASTS.split())
def test_forecasts_keep_every_vintage_by_publish_day(code: str) -> None:
    dataset = catalog.get(code)
    assert dataset.is_forecast and dataset.group == "forecast"
    assert dataset.partition_field == "publishTime" and dataset.version_field == "publishTime"
    # The key is the target, so _latest is the newest forecast per target time.
    assert "publishTime" not in dataset.natural_key


@pytest.mark.parametrize("code", BM_DYNAMIC.split())
def test_bm_unit_dynamic_data_keys_on_unit_and_time(code: str) -> None:
    assert catalog.get(code).natural_key == ("nationalGridBmUnit", "time")


def test_transparency_datasets_partition_by_the_field_their_window_filters_on() -> None:
    for dataset in catalog.DATASETS:
        if dataset.family == "transparency":
            assert dataset.param_style == "publish_time"
            assert dataset.partition_field == dataset.time_field == "publishTime"
    b1610 = catalog.get("B1610")
    assert (b1610.param_style, b1610.partition_field) == ("from_to", "settlementDate")


def test_adding_a_dataset_is_one_row(tmp_path: Path) -> None:
    table = tmp_path / "datasets.csv"
    table.write_text(
        catalog.TABLE_FILE.read_text()
        + "REMITFUELTYPES,reference,/reference/remit/fueltypes/all,reference,fuelType,,,,no,1,no,48,"
        'snapshot,,"REMIT fuel types, a list of names"\n'
    )
    datasets = {d.code: d for d in catalog.load_table(table)}
    added = datasets["REMITFUELTYPES"]
    assert added.snapshot and added.fields == (("fuelType", catalog.STR),)
    assert added.summary == "REMIT fuel types"
    assert len(datasets) == len(catalog.DATASETS) + 1


def test_a_bad_table_cell_names_the_dataset(tmp_path: Path) -> None:
    table = tmp_path / "datasets.csv"
    lines = catalog.TABLE_FILE.read_text().splitlines()
    table.write_text(
        "\n".join([lines[0], lines[1].replace(",generation,", ",generatoin,", 1)]) + "\n"
    )
    with pytest.raises(catalog.CatalogError, match="FUELINST: unknown group 'generatoin'"):
        catalog.load_table(table)


def test_catalog_holds_every_required_dataset() -> None:
    required = "FUELINST FUELHH FREQ MID BOD BOALF DISBSAD NETBSAD INDGEN INDDEM PN QPN MELS MILS REMIT DISEBSP"
    assert set(required.split()) <= set(catalog.BY_CODE)


def test_stream_endpoints_for_physical_notifications() -> None:
    assert catalog.get("PN").endpoint.endswith("/stream")
    assert catalog.get("qpn").endpoint.endswith("/stream")


def test_all_means_every_dataset() -> None:
    assert catalog.parse_codes("all") == list(catalog.DATASETS)
    assert [d.code for d in catalog.parse_codes(["MID", "ALL"])][:2] == ["MID", "FUELINST"]


def test_parse_codes_accepts_commas_and_repeats_and_rejects_unknown() -> None:
    chosen = catalog.parse_codes(["fuelinst,FREQ", "MID", "FREQ"])
    assert [d.code for d in chosen] == ["FUELINST", "FREQ", "MID"]
    with pytest.raises(catalog.UnknownDatasetError, match="valid datasets: ABUC, AGPT"):
        catalog.parse_codes("NOPE")


SAMPLES = SPEC_PATH.parent / "samples"


def _sample_rows(path: Path) -> list[dict[str, Any]]:
    body = json.loads(path.read_text())
    if isinstance(body, dict) and "response" in body:  # reconstructed notebook output
        body = body["response"]
    return body if isinstance(body, list) else body["data"]


# Samples named after a catalog code but recorded from another endpoint (SOURCES.md): the
# AGPT one is /generation/actual/per-type, rows nesting {businessType, psrType, quantity}.
OTHER_ENDPOINT_SAMPLES = {"AGPT__advanced-computing-elexon_energy.json"}


def _samples() -> list[tuple[catalog.Dataset, Path]]:
    found = []
    for path in sorted(SAMPLES.glob("*.json")):
        code = path.name.split("__")[0].replace("REFERENCE-", "")
        if code in catalog.BY_CODE and path.name not in OTHER_ENDPOINT_SAMPLES:
            found.append((catalog.BY_CODE[code], path))
    return found


@pytest.mark.parametrize(("dataset", "path"), _samples(), ids=lambda v: getattr(v, "name", ""))
def test_natural_key_fields_are_filled_in_every_real_sample(
    dataset: catalog.Dataset, path: Path
) -> None:
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
        assert dataset.max_window == min(dataset.spec_limit, catalog.WHOLE_DAY)


def test_stated_limits_are_read_from_the_spec() -> None:
    assert catalog.get("FREQ").spec_limit == catalog.DAY  # "A maximum limit of 24 hours"
    assert catalog.get("INDGEN").spec_limit == catalog.DAY  # "maximum data output range of 1 day"
    assert catalog.get("AGPT").spec_limit == 4 * catalog.DAY
    assert (
        catalog.get("BOD").spec_limit is None and catalog.get("BOD").max_window == catalog.WHOLE_DAY
    )


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


@pytest.mark.parametrize(
    ("day", "periods"), [("2025-06-01", 48), ("2025-03-30", 46), ("2025-10-26", 50)]
)
def test_settlement_family_requests(day: str, periods: int) -> None:
    import datetime as dt

    from worker.elexon.client import request_windows

    date = dt.date.fromisoformat(day)
    stack = request_windows(catalog.get("ISPSTACK"), date)
    assert len(stack) == 2 * periods  # both sides, every period
    assert stack[0].path == f"/balancing/settlement/stack/all/bid/{day}/1"
    assert stack[-1].path == f"/balancing/settlement/stack/all/offer/{day}/{periods}"
    assert dict(stack[-1].stamp) == {"bidOffer": "offer"}
    assert [w.path for w in request_windows(catalog.get("EBOCF"), date)] == [
        f"/balancing/settlement/indicative/cashflows/all/{side}/{day}" for side in ("bid", "offer")
    ]
    assert len(request_windows(catalog.get("SETTSUM"), date)) == periods
    (tudm,) = request_windows(catalog.get("TUDM"), date)
    assert tudm.params == {
        "settlementDateFrom": day,
        "settlementDateTo": day,
        "settlementPeriodFrom": "1",
        "settlementPeriodTo": str(periods),
    }
    (units,) = request_windows(catalog.get("BMUNITS"), date)
    assert (units.path, units.params) == ("/reference/bmunits/all", {})


def test_fields_real_rows_carry_beyond_the_spec_are_declared_and_kept() -> None:
    b1610 = catalog.get("B1610")
    assert ("settlementRunType", catalog.STR) in b1610.fields
    rows = _sample_rows(SAMPLES / "B1610__gridskew-b1610_stream.json")
    names = {name for row in rows for name in row} - {"dataset"}
    assert names == set(b1610.field_names)  # nothing left for _extra


def test_bmrs_datasets_setting_names_catalog_codes_or_all() -> None:
    from pydantic import ValidationError

    from worker.cluster.sweep import configured_datasets
    from worker.settings import Settings

    assert configured_datasets(Settings(datasets="all")) == list(catalog.DATASETS)
    assert [d.code for d in configured_datasets(Settings(datasets="ndf, bmunits"))] == [
        "NDF",
        "BMUNITS",
    ]
    with pytest.raises(ValidationError, match="unknown dataset 'NOPE'"):
        Settings(datasets="FUELINST,NOPE")
