"""The real API is the judge: recorded responses parsed, loaded and compared with the simulator.

Every file in ``../shared/elexon/samples`` whose name starts with a catalog code (see
``SOURCES.md`` there for what each is) is parsed, its keys checked, replayed as the API into
``bmrs ingest`` through the real client without losing a row, and set beside the simulator's
answer to the same request: field set and order, value types, null pattern, row order.
New catalog codes are picked up by the catalog lookup; a sample whose code the catalog does
not hold must be listed in ``NOT_YET_IN_CATALOG``, and leaves that list when its code lands.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import pyarrow as pa
import pyarrow.compute
import pytest
from click.testing import CliRunner

from tests.support.simulator import TEST_SCALE
from worker.cli import main
from worker.elexon import catalog, settlement
from worker.elexon.parse import parse_rows
from worker.sim.calibrated import GENERATOR_CLASSES, generators
from worker.sim.calibrated_more import SPEC_OVER_SAMPLE
from worker.sim.server import BASE_PATH, RunningSimulator, SimulatorApp
from worker.sinks.local import LocalWarehouse

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "elexon" / "samples"
SPEC_PATH = SAMPLES.parent / "openapi.json"

# File-name prefixes that are not the catalog code itself.
PREFIX_CODES = {"REFERENCE-BMUNITS": "BMUNITS", "DISBSAD-details": "DISBSAD", "PN_stream": "PN"}
# Codes of samples the catalog does not hold yet (the "every dataset" work adds them). Shrink
# this as codes land: a code listed here that the catalog holds fails the first test below.
NOT_YET_IN_CATALOG: set[str] = set()
# Files that are no JSON response (SOURCES.md: a Swagger-UI copy-paste cut after 10 records).
NOT_JSON = {"PN_stream__pgrach-ElexonDataFetcher-FRAGMENT.txt"}
# Samples named after a catalog code whose rows are another endpoint's and cannot be that
# dataset's rows at all (SOURCES.md): left out, with the reason.
NOT_THIS_DATASET = {
    "AGPT__advanced-computing-elexon_energy.json": "/generation/actual/per-type: each row nests {businessType, psrType, quantity} under a "
    "period and has no publishTime; the AGPT stream's rows are flat",
}
# Catalog datasets with samples that the simulator does not answer yet (no calibrated
# generator; the generic layer answers every catalog path from the spec once it lands). Their
# samples are parsed and key-checked; the shape comparison, and the replay of the snapshot,
# wait for it. A code leaves this set when the simulator answers it (the test below fails).
AWAITING_GENERIC_SIMULATOR: set[str] = set()
# Samples of another endpoint than the catalog's: parsed and loaded, not compared for shape.
OTHER_ENDPOINT = {
    "DISBSAD-details__elexonpy-notebook-RECONSTRUCTED.json": "/balancing/nonbm/disbsad/details: adds startTime and price to the stream's fields",
}
# Real rows that share natural key and version yet differ (both must be kept): file -> count.
KEY_REPEATS = {
    # One publication repeated: same mrid, revision and publishTime, another createdTime.
    "REMIT__gridskew-remit_publications.json": 1,
}
# The fraction of a JSON number padded to fixed places (it ends in 0): "133.000" -> "000".
FIXED_DECIMALS = re.compile(rb":\s*-?\d+\.(\d*0)(?=[,\s}\]])")
# A "now" after every recorded day.
LATER = dt.datetime(2027, 6, 1, tzinfo=settlement.UTC)


@dataclasses.dataclass(frozen=True)
class Sample:
    """One recorded response: its file, dataset code, rows and envelope."""

    path: Path
    code: str
    rows: list[dict[str, Any]]
    envelope: str  # "stream" (bare list), "list" ({data}), "path" ({metadata, data})

    @property
    def dataset(self) -> catalog.Dataset:
        return catalog.BY_CODE[self.code]

    def __str__(self) -> str:
        return self.path.name


def sample_code(path: Path) -> str:
    prefix = path.name.split("__")[0]
    return PREFIX_CODES.get(prefix, prefix)


def sample_files() -> list[Path]:
    return sorted(p for p in SAMPLES.iterdir() if p.name != "SOURCES.md")


def read_sample(path: Path) -> Sample:
    body = orjson.loads(path.read_bytes())
    if isinstance(body, dict) and "response" in body:  # reconstructed notebook output
        body = body["response"]
    if isinstance(body, list):
        return Sample(path, sample_code(path), body, "stream")
    envelope = "path" if "metadata" in body else "list"
    return Sample(path, sample_code(path), body["data"], envelope)


def catalog_samples() -> list[Sample]:
    return [
        read_sample(path)
        for path in sample_files()
        if path.name not in NOT_JSON
        and path.name not in NOT_THIS_DATASET
        and sample_code(path) in catalog.BY_CODE
    ]


CATALOG_SAMPLES = catalog_samples()


def key_of(dataset: catalog.Dataset, row: dict[str, Any]) -> tuple[Any, ...]:
    fields = dataset.natural_key + ((dataset.version_field,) if dataset.version_field else ())
    return tuple(row.get(field) for field in fields)


# ---------------------------------------------------------------- which samples are tested


def test_every_sample_names_a_catalog_dataset_or_is_listed_as_pending() -> None:
    unknown = [
        f"{path.name} ({sample_code(path)})"
        for path in sample_files()
        if sample_code(path) not in catalog.BY_CODE and sample_code(path) not in NOT_YET_IN_CATALOG
    ]
    assert not unknown, f"samples naming no catalog dataset: {unknown}"
    landed = sorted(NOT_YET_IN_CATALOG & set(catalog.BY_CODE))
    assert not landed, (
        f"{landed} are now in the catalog: remove them from NOT_YET_IN_CATALOG in "
        f"{Path(__file__).name} so their samples are parsed, replayed and compared"
    )
    assert len(CATALOG_SAMPLES) >= 14


def test_files_listed_as_another_datasets_rows_really_nest_their_values() -> None:
    for name in NOT_THIS_DATASET:
        rows = read_sample(SAMPLES / name).rows
        assert rows and all(isinstance(row.get("data"), list) for row in rows), name


def test_files_listed_as_not_json_really_are_not() -> None:
    for name in NOT_JSON:
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads((SAMPLES / name).read_bytes())


# ---------------------------------------------------------------- parse and keys


@pytest.mark.parametrize("sample", CATALOG_SAMPLES, ids=str)
def test_sample_parses_with_unique_keys(sample: Sample) -> None:
    dataset = sample.dataset
    table = parse_rows(dataset, sample.rows).table
    assert table.num_rows == len(sample.rows)
    keys = Counter(key_of(dataset, row) for row in sample.rows)
    repeats = sum(count - 1 for count in keys.values())
    assert repeats == KEY_REPEATS.get(sample.path.name, 0), (
        f"{sample}: {repeats} rows repeat a natural key {dataset.natural_key} + version"
    )
    # Numbers keep their value as floats, whatever their spelling (18 decimals included).
    for name, arrow_type in dataset.fields:
        if pa.types.is_floating(arrow_type):
            stored = table.column(name).to_pylist()
            sent = [row.get(name) for row in sample.rows]
            assert stored == [None if v is None else float(v) for v in sent], name


def test_system_prices_with_18_decimals_parse_as_floats() -> None:
    path = SAMPLES / "DISEBSP__gridskew-system_prices.json"
    assert b"344.249492314814801830" in path.read_bytes()
    table = parse_rows(catalog.get("DISEBSP"), read_sample(path).rows).table
    assert table.column("netImbalanceVolume").type == pa.float64()
    assert table.column("netImbalanceVolume")[0].as_py() == pytest.approx(344.2494923148148)


def _row_schema(spec: dict[str, Any], dataset: catalog.Dataset) -> dict[str, Any]:
    components = spec["components"]["schemas"]

    def resolve(schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = components[schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    ok = spec["paths"][dataset.endpoint]["get"]["responses"]["200"]
    schema = resolve(ok["content"]["application/json"]["schema"])
    if schema.get("type") == "array":
        return resolve(schema["items"])
    if "data" not in schema.get("properties", {}):
        return schema  # the body is the row (the settlement summary)
    return resolve(schema["properties"]["data"]["items"])


# Key fields the spec marks nullable and no real sample shows: why we key on them anyway.
FILLED_WITHOUT_SAMPLE = {
    ("FUELINST", "startTime"): "the instant the API filters and orders rows on",
    ("FUELINST", "fuelType"): "the series a row belongs to; VOLUMES lists 20, never blank",
    ("FUELHH", "settlementDate"): "the day the API filters on (settlementDateFrom/To)",
    ("FUELHH", "settlementPeriod"): "half-hourly rows are indexed by it",
    ("FUELHH", "fuelType"): "as FUELINST",
    ("MID", "dataProvider"): "two providers (APXMIDP, N2EXMIDP) the endpoint filters on",
    ("BOD", "nationalGridBmUnit"): "filled in every PN, QPN, BOALF, MELS and MILS sample",
    ("INDGEN", "boundary"): "the endpoint filters on it; 'N' for national",
    ("INDDEM", "boundary"): "as INDGEN",
}


# The same, by field name, for the datasets the catalog gained with every /datasets code: the
# spec marks every string nullable, so these say why each key field is what a row is about.
KEY_FIELD_REASONS = {
    "nationalGridBmUnit": "filled in every row of every BM-unit sample (PN, QPN, MELS, MILS, "
    "BOALF), also where bmUnit is null; the unit a row is about",
    "boundary": "the endpoint filters on it; 'N' national or a B-boundary",
    "fuelType": "the series a row reports (FUELINST's 20 fuels); interconnector rows of "
    "FOU2T* also carry interconnectorName and biddingZone, which tell them apart",
    "biddingZone": "with interconnectorName, tells interconnector rows apart",
    "interconnectorName": "null only on fuel rows, which fuelType tells apart",
    "businessType": "an ENTSO-E time-series attribute every series of a document carries",
    "psrType": "the production type a transparency series reports",
    "marketAgreementType": "an ENTSO-E time-series attribute every series carries",
    "flowDirection": "up or down: every balancing series has one",
    "timeSeriesId": "the series id of the ENTSO-E document row",
    "bidId": "the bid a BEB row reports",
    "processType": "day-ahead or intraday: every DGWS series has one",
    "month": "the month a monthly transparency figure is for",
    "status": "FEIB's figure status (every row has one)",
    "priceDirection": "FEIB's direction (every row has one)",
    "registeredResourceEicCode": "the unit an IGCPU row is about",
    "mRID": "the instruction id (DCI), as REMIT's mrid",
    "publishTime": "SYSWARN's only time: a warning is its publication",
    "warningType": "the warning a row is",
    "bscPartyId": "the party a credit default notice is about",
    "contractIdentification": "the SO-SO trade's contract",
    "tradeDirection": "the SO-SO trade's direction",
    "tradingUnitName": "the trading unit a TUDM row is about",
    "settlementRunType": "the run a TUDM row belongs to (II, SF, R1...): every run kept",
    "year": "the year a weekly forecast row targets",
    "week": "the week a weekly forecast row targets",
    "calendarWeekNumber": "the week a weekly forecast row targets",
    "systemZone": "the zone a national availability row reports",
    "region": "the demand-control region a row is about",
    "gspGroupId": "the GSP group a row is about",
    "dataType": "DISPTAV's volume type: a unit has one row per type and period",
    "messageTypeCode": "the settlement message's type",
    "interconnectorId": "the interconnector a reference row is about",
}


@pytest.mark.parametrize("dataset", catalog.DATASETS, ids=lambda d: d.code)
def test_every_natural_key_field_is_filled_by_spec_or_by_every_real_sample(
    dataset: catalog.Dataset,
) -> None:
    """A key field the spec lets be null must be filled in every real sample of the dataset
    (null keys merge distinct rows, as bmUnit did for MILS), or say why it is safe."""
    spec = json.loads(SPEC_PATH.read_text())
    properties = _row_schema(spec, dataset).get("properties", {})
    samples = [s for s in CATALOG_SAMPLES if s.code == dataset.code]
    for field in dataset.natural_key:
        if field in (dataset.side_field, dataset.scalar_field):
            continue  # the client's own column: the side it asked for, or the listed name
        assert field in properties, f"{dataset.code}: key field {field!r} not in the spec's row"
        for sample in samples:
            nulls = sum(row.get(field) is None for row in sample.rows)
            assert not nulls, f"{dataset.code}: key {field!r} null in {nulls} rows of {sample}"
        if properties[field].get("nullable") and not samples:
            assert (dataset.code, field) in FILLED_WITHOUT_SAMPLE or field in KEY_FIELD_REASONS, (
                f"{dataset.code}: key field {field!r} is nullable in the spec and no real sample "
                "shows it filled; key on a field the data always fills, or document why"
            )


# ---------------------------------------------------------------- replayed into bmrs ingest


def _days(sample: Sample) -> list[dt.date]:
    table = parse_rows(sample.dataset, sample.rows).table
    return sorted(set(table.column("_day").to_pylist()))


def test_datasets_awaiting_the_generic_simulator_are_still_unanswered() -> None:
    app = SimulatorApp(seed=0, scale=TEST_SCALE, clock=lambda: LATER)
    for code in sorted(AWAITING_GENERIC_SIMULATOR):
        dataset = catalog.get(code)
        path = dataset.endpoint.replace("{settlementDate}", "2026-08-19")
        answered = app.handle("GET", path).status != 404
        assert not answered and code not in GENERATOR_CLASSES, (
            f"the simulator answers {code} now: remove it from AWAITING_GENERIC_SIMULATOR"
        )


REPLAY_SAMPLES = [
    s for s in CATALOG_SAMPLES if not (s.dataset.snapshot and s.code in AWAITING_GENERIC_SIMULATOR)
]


@pytest.mark.parametrize("sample", REPLAY_SAMPLES, ids=str)
def test_sample_replayed_as_the_api_is_ingested_without_losing_a_row(
    sample: Sample,
    replay_factory: Callable[..., RunningSimulator],
    bmrs_env: pytest.MonkeyPatch,
    data_dir: Path,
) -> None:
    dataset = sample.dataset
    running = replay_factory({dataset.code: sample.rows})
    bmrs_env.setenv("BMRS_ELEXON_BASE_URL", running.url + BASE_PATH)
    days = _days(sample)
    result = CliRunner().invoke(
        main, ["ingest", dataset.code, "--start", str(days[0]), "--end", str(days[-1])]
    )
    assert result.exit_code == 0, result.output
    warehouse = LocalWarehouse(data_dir)
    expected = parse_rows(dataset, sample.rows).table
    for day in days:
        stored = warehouse.read_day(dataset, day)
        assert stored is not None, f"{sample}: nothing stored for {day}"
        sent = {
            h
            for h, d in zip(
                expected.column("_hash_key").to_pylist(), expected.column("_day").to_pylist()
            )
            if d == day
        }
        stored_hashes = set(stored.column("_hash_key").to_pylist())
        assert stored_hashes == sent, f"{sample}: rows of {day} differ"
    # Every natural key of the sample (every unit, every acceptance) is in each view.
    want = {key_of(dataset, row)[: len(dataset.natural_key)] for row in sample.rows}
    keys = ", ".join(f'"{k}"' for k in dataset.natural_key)
    for view in (f"{dataset.table}_latest", f"{dataset.table}_unified"):
        table = warehouse.query(f"SELECT DISTINCT {keys} FROM {view}")
        got = {tuple(_json_value(v) for v in row.values()) for row in table.to_pylist()}
        lost = want - got
        example = sorted(map(str, lost))[:3]
        assert not lost, f"{sample}: {len(lost)} natural keys lost in {view}, e.g. {example}"


def _json_value(value: Any) -> Any:
    """A stored value as the API spells it, to compare keys with the sample's."""
    if isinstance(value, dt.datetime):
        return value.astimezone(settlement.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


@pytest.mark.parametrize("sample", REPLAY_SAMPLES, ids=str)
def test_sample_arriving_by_iris_keeps_every_key_in_unified(sample: Sample, data_dir: Path) -> None:
    """The same rows as IRIS stream rows (no API copy yet): ``_unified`` holds every key."""
    dataset = sample.dataset
    warehouse = LocalWarehouse(data_dir)
    table = parse_rows(dataset, sample.rows, source="iris").table
    for day in _days(sample):
        rows = table.filter(pa.compute.equal(table.column("_day"), pa.scalar(day, pa.date32())))
        warehouse.append_stream(dataset, day, rows, f"{sample.path.stem}-{day}")
    want = {key_of(dataset, row)[: len(dataset.natural_key)] for row in sample.rows}
    keys = ", ".join(f'"{k}"' for k in dataset.natural_key)
    got = {
        tuple(_json_value(v) for v in row.values())
        for row in warehouse.query(
            f"SELECT DISTINCT {keys} FROM {dataset.table}_unified"
        ).to_pylist()
    }
    assert want <= got, f"{sample}: {len(want - got)} keys lost in {dataset.table}_unified"


# ---------------------------------------------------------------- the simulator's answer


def _simulator_target(sample: Sample) -> str:
    """The request the sample answered, as far as its rows tell: same endpoint form, same
    window on the dataset's time field (or the same settlement day)."""
    dataset = sample.dataset
    if sample.envelope == "path":
        day = sample.rows[0]["settlementDate"]
        return dataset.endpoint.replace("{settlementDate}", day)
    path = dataset.endpoint
    if sample.envelope != "stream":
        path = path.removesuffix("/stream")
    if dataset.param_style not in catalog.WINDOW_PARAMS:  # a snapshot: no window
        return path
    name_from, name_to = catalog.WINDOW_PARAMS[dataset.param_style]
    if dataset.param_style == "settlement_dates":
        days = sorted(row["settlementDate"] for row in sample.rows)
        return f"{path}?{urlencode({name_from: days[0], name_to: days[-1]})}"
    if dataset.time_field is None:  # windowed on the settlement period's start (B1610)
        starts = sorted(
            settlement.period_start(
                dt.date.fromisoformat(row["settlementDate"]),
                int(row[dataset.period_field or "settlementPeriod"]),
            ).strftime("%Y-%m-%dT%H:%M:%SZ")
            for row in sample.rows
        )
        return f"{path}?{urlencode({name_from: starts[0], name_to: starts[-1]})}"
    times = sorted(row[dataset.time_field] for row in sample.rows)
    return f"{path}?{urlencode({name_from: times[0], name_to: times[-1]})}"


def _kind(dataset: catalog.Dataset, field: str, value: Any) -> str:
    arrow_type = dict(dataset.fields).get(field)
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        # A float field may be spelt 0 or 0.0; an integer field never has a fraction.
        if arrow_type is not None and pa.types.is_floating(arrow_type):
            return "number"
        return "integer" if isinstance(value, int) else "float"
    return type(value).__name__


def _direction(dataset: catalog.Dataset, rows: list[dict[str, Any]]) -> str | None:
    if dataset.snapshot:
        times = [row[dataset.natural_key[0]] for row in rows]  # a list sorted by its key
    elif dataset.time_field:
        times = [row[dataset.time_field] for row in rows]
    else:
        period = dataset.period_field or "settlementPeriod"
        times = [(row["settlementDate"], row[period]) for row in rows]
    if len(set(times)) < 2:
        return None
    if times == sorted(times, reverse=True):
        return "newest first"
    if times == sorted(times):
        return "oldest first"
    return None  # a selection or composite: its order says nothing


@pytest.fixture(scope="module")
def simulator_app() -> SimulatorApp:
    return SimulatorApp(seed=0, scale=TEST_SCALE, clock=lambda: LATER)


SHAPE_SAMPLES = [
    s
    for s in CATALOG_SAMPLES
    if s.path.name not in OTHER_ENDPOINT and s.code not in AWAITING_GENERIC_SIMULATOR
]


def _spec_row_fields(dataset: catalog.Dataset) -> list[str]:
    """Field names of the dataset's row schema in Elexon's spec."""
    from worker.elexon import spec

    return [name for name, _ in spec.row_fields(dataset.endpoint)]


@pytest.mark.parametrize("sample", SHAPE_SAMPLES, ids=str)
def test_simulator_answers_with_the_real_sample_shape(
    sample: Sample, simulator_app: SimulatorApp
) -> None:
    dataset, real = sample.dataset, sample.rows
    target = _simulator_target(sample)
    response = simulator_app.handle("GET", target)
    assert response.status == 200, response.body[:300]
    body = orjson.loads(response.body)
    assert isinstance(body, list) == (sample.envelope == "stream"), target
    if sample.envelope == "path":
        assert set(body) == {"metadata", "data"}
    simulated = body if isinstance(body, list) else body["data"]
    assert simulated, f"{sample}: the simulator has no rows for {target}"
    # Generically answered datasets (reference data) send every field, nulls included.
    omits_nulls = getattr(GENERATOR_CLASSES.get(dataset.code), "omits_nulls", False)

    # Field set and order: the sample's, exactly; where the API leaves nulls out, each row's
    # fields are catalog fields, in the order every real row has them.
    # Where the real answer breaks the spec, the simulator keeps to the spec (SPEC_OVER_SAMPLE):
    # those fields are compared with the spec, not the sample.
    spec_wins = SPEC_OVER_SAMPLE.get(dataset.code, {})
    spec_fields = set(_spec_row_fields(dataset))
    for name in spec_wins:
        sent = [row[name] for row in simulated if name in row]
        if name in spec_fields:  # a spec field in a spec format (date-time with its zone)
            assert sent and all(str(v).endswith("Z") for v in sent), f"{sample}: {name} {sent[:1]}"
        else:  # a field the spec's row does not allow
            assert not sent, f"{sample}: {name} is not in the spec's row, yet sent"
    outside_spec = set(spec_wins) - spec_fields
    real = [{k: v for k, v in row.items() if k not in outside_spec} for row in real]
    order = list(dict.fromkeys(name for row in real for name in row))
    for row in simulated:
        names = list(row)
        if omits_nulls:
            assert None not in row.values(), f"{sample}: the API omits null fields"
            assert set(names) <= {"dataset", *dataset.field_names}, names
            for real_row in real:
                common = [n for n in names if n in real_row]
                assert common == [n for n in real_row if n in row], f"{sample}: order {names}"
        else:
            assert names == list(real[0]), f"{sample}: fields {names} != {list(real[0])}"

    # Types of the values, field by field.
    def kinds(rows: list[dict[str, Any]]) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for row in rows:
            for name, value in row.items():
                if value is not None:
                    found.setdefault(name, set()).add(_kind(dataset, name, value))
        return found

    real_kinds, sim_kinds = kinds(real), kinds(simulated)
    for name in real_kinds.keys() & sim_kinds.keys():
        assert sim_kinds[name] == real_kinds[name], f"{sample}: {name} is {sim_kinds[name]}"

    # Null pattern: what is null (or left out) in the real rows is so in some simulated rows;
    # what a large real answer always fills, the simulator always fills.
    for name in order:
        real_missing = sum(row.get(name) is None for row in real)
        sim_missing = sum(row.get(name) is None for row in simulated)
        if real_missing and name in dataset.field_names:
            assert sim_missing, f"{sample}: {name} is null in {real_missing} real rows, never here"
        if not real_missing and len(real) >= 50:
            assert not sim_missing, f"{sample}: {name} is never null in {len(real)} real rows"

    # Row order: a real answer's direction (a selection or composite has none).
    direction = _direction(dataset, real)
    if direction is not None:
        assert _direction(dataset, simulated) == direction, f"{sample}: rows not {direction}"

    # Number format: where the API pads numbers to fixed decimals (a fraction ending in 0:
    # 160.000000000000000000 in system prices, 133.000 in REMIT), the simulator does too.
    fixed = {len(m) for m in FIXED_DECIMALS.findall(sample.path.read_bytes())}
    simulated_fixed = {len(m) for m in FIXED_DECIMALS.findall(response.body)}
    assert fixed <= simulated_fixed, f"{sample}: numbers with {fixed} fixed decimals expected"


# ---------------------------------------------------------------- calibrated figures


@pytest.fixture(scope="module")
def full_scale() -> dict[str, Any]:
    return generators(seed=0, scale=1.0)


def _day_rows(generator: Any, day: dt.date) -> list[dict[str, Any]]:
    start, end = settlement.day_window_utc(day)
    rows = []
    while start < end:
        rows.extend(generator.rows(start))
        start += settlement.PERIOD
    return rows


def test_boalf_day_and_hour_are_within_2x_of_a_real_capture(full_scale: dict[str, Any]) -> None:
    """Real: ~27,000 rows for UTC day 2026-10-05; 1,650 rows in one hour (uk-energy)."""
    generator = full_scale["BOALF"]
    start = dt.datetime(2025, 6, 2, tzinfo=settlement.UTC)
    day = [r for i in range(48) for r in generator.rows(start + i * settlement.PERIOD)]
    assert 27_000 / 2 <= len(day) <= 27_000 * 2
    busiest = max(
        len(generator.rows(start + i * settlement.PERIOD))
        + len(generator.rows(start + (i + 1) * settlement.PERIOD))
        for i in range(0, 48, 2)
    )
    assert 1_650 / 2 <= busiest <= 1_650 * 2
    # Acceptances cross period boundaries and midnight, as in the real capture.
    assert any(r["settlementPeriodTo"] != r["settlementPeriodFrom"] for r in day)
    midnight = settlement.day_window_utc(dt.date(2025, 6, 3))[0]
    crossing = [
        r
        for r in generator.rows(midnight - settlement.PERIOD)
        if r["timeTo"] > midnight.strftime("%Y-%m-%dT%H:%M:%SZ")
    ]
    assert crossing and all(r["settlementPeriodTo"] == 1 for r in crossing)


def test_fuelinst_publish_window_is_inclusive_at_both_ends(simulator_app: SimulatorApp) -> None:
    """uk-energy's recorded answer: 00:00Z-00:30Z by publish time is 140 rows (7 x 20)."""
    response = simulator_app.handle(
        "GET",
        "/datasets/FUELINST/stream?publishDateTimeFrom=2025-06-02T00:00:00Z"
        "&publishDateTimeTo=2025-06-02T00:30:00Z",
    )
    rows = orjson.loads(response.body)
    assert len(rows) == 140
    assert {r["publishTime"] for r in rows} == {
        f"2025-06-02T00:{m:02d}:00Z" for m in range(0, 31, 5)
    }


def test_fuelhh_publish_window_is_inclusive_at_both_ends(simulator_app: SimulatorApp) -> None:
    """FUELHH is published at each period's end: 00:00Z-00:30Z holds two publications."""
    response = simulator_app.handle(
        "GET",
        "/datasets/FUELHH/stream?publishDateTimeFrom=2025-06-02T00:00:00Z"
        "&publishDateTimeTo=2025-06-02T00:30:00Z",
    )
    rows = orjson.loads(response.body)
    assert len(rows) == 2 * 20
    assert {r["publishTime"] for r in rows} == {"2025-06-02T00:00:00Z", "2025-06-02T00:30:00Z"}


def test_frequency_leaves_the_operational_band_but_not_the_statutory_one(
    full_scale: dict[str, Any],
) -> None:
    generator = full_scale["FREQ"]
    days = [dt.date(2025, 6, 1) + dt.timedelta(days=d) for d in range(10)]
    rows = [r for day in days for r in _day_rows(generator, day)]
    values = [r["frequency"] for r in rows]
    assert any(v < 49.8 or v > 50.2 for v in values)
    assert all(49.5 <= v <= 50.5 for v in values)


def test_wind_is_continuous_across_midnight(full_scale: dict[str, Any]) -> None:
    """Five-minute steps at midnight are no bigger than steps elsewhere in the day."""
    generator = full_scale["FUELINST"]

    def wind(day: dt.date) -> list[int]:
        return [r["generation"] for r in _day_rows(generator, day) if r["fuelType"] == "WIND"]

    for day in (dt.date(2025, 6, 2), dt.date(2025, 1, 14)):
        today, tomorrow = wind(day), wind(day + dt.timedelta(days=1))
        steps = [abs(b - a) for a, b in itertools.pairwise(today)]
        assert abs(tomorrow[0] - today[-1]) <= max(steps)


def test_qpn_is_half_hour_segments_almost_all_zero(full_scale: dict[str, Any]) -> None:
    rows = full_scale["QPN"].rows(dt.datetime(2025, 6, 2, 10, tzinfo=settlement.UTC))
    assert all(
        r["timeFrom"].endswith(("00:00Z", "30:00Z")) and r["timeTo"] > r["timeFrom"] for r in rows
    )
    assert {r["timeFrom"] for r in rows} == {"2025-06-02T10:00:00Z"}
    assert sum(r["levelFrom"] == 0 for r in rows) / len(rows) > 0.9


def test_pn_has_sub_period_segments_and_ramps(full_scale: dict[str, Any]) -> None:
    rows = full_scale["PN"].rows(dt.datetime(2025, 6, 2, 10, tzinfo=settlement.UTC))
    assert any(r["timeFrom"].endswith(":15:00Z") for r in rows)
    assert any(r["levelFrom"] != r["levelTo"] for r in rows)
    assert (
        sum(
            r["timeFrom"] == "2025-06-02T10:00:00Z" and r["timeTo"] == "2025-06-02T10:30:00Z"
            for r in rows
        )
        > len(rows) / 4
    )
