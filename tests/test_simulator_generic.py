"""The simulator's generic half: every spec path under /datasets/, /balancing/settlement/ and
/reference/ answered from the spec's own schemas, inside the window asked for, on ordinary and
clock-change days, deterministically, and fast; reference data that joins to the fleet."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from openapi_schema_validator import OAS30Validator, oas30_format_checker

from worker.elexon import catalog, client, settlement
from worker.sim import generic, reference, spec
from worker.sim.iris import IrisFeed
from worker.sim.server import GenericRoute, SimulatorApp
from worker.sim.units import fleet, limit_only_units

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "elexon" / "samples"
DAY = dt.date(2025, 6, 2)
CLOCK_CHANGES = {dt.date(2025, 10, 26): 50, dt.date(2026, 3, 29): 46, DAY: 48}
LATER = dt.datetime(2026, 6, 1, tzinfo=settlement.UTC)
SCALE = 0.02


@pytest.fixture(scope="module")
def app() -> SimulatorApp:
    return SimulatorApp(seed=0, scale=SCALE, clock=lambda: LATER)


def generic_endpoints() -> list[spec.Endpoint]:
    """Served spec paths that the generic layer answers (not a calibrated route)."""
    probe = SimulatorApp(seed=0, scale=SCALE, clock=lambda: LATER)
    return [
        e for e in spec.endpoints() if isinstance(probe.route(concrete(e.path, DAY)), GenericRoute)
    ]


def concrete(path: str, day: dt.date, side: str = "bid") -> str:
    values = {"settlementDate": day.isoformat(), "settlementPeriod": "3", "bidOffer": side}
    for name in spec.Endpoint(path, (), "", False, {}, "").path_params:
        path = path.replace("{" + name + "}", values.get(name, "x"))
    return path


def utc(instant: dt.datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


INSTANT_PAIRS = [(a, b) for a, (b, _) in generic.INSTANT_PAIRS.items()]


def day_targets(
    endpoint: spec.Endpoint, day: dt.date
) -> Iterator[tuple[str, tuple[dt.datetime, dt.datetime] | None]]:
    """Request targets covering one settlement day, in windows the endpoint allows, each with
    the instants it asks for (None for date/period requests)."""
    path = concrete(endpoint.path, day)
    names = endpoint.by_name
    start, end = settlement.day_window_utc(day)
    for low, high in INSTANT_PAIRS:
        if low in names:
            dataset = catalog.BY_CODE.get(spec.dataset_key(endpoint.path))
            limit = dataset.spec_limit if dataset else generic.spec_limit(endpoint.path)
            step = min(limit or dt.timedelta(hours=12), dt.timedelta(hours=12))
            cursor = start
            while cursor < end:
                last = min(cursor + step, end) - dt.timedelta(seconds=1)
                yield f"{path}?{urlencode({low: utc(cursor), high: utc(last)})}", (cursor, last)
                cursor = last + dt.timedelta(seconds=1)
            return
    if "settlementDateFrom" in names:
        query = {"settlementDateFrom": day.isoformat(), "settlementDateTo": day.isoformat()}
        if names["settlementPeriodFrom"].required:
            query |= {"settlementPeriodFrom": "1", "settlementPeriodTo": "50"}
        yield f"{path}?{urlencode(query)}", None
    elif "settlementDate" in names and names["settlementDate"].location == "query":
        for period in range(1, settlement.periods_in_day(day) + 1):
            yield f"{path}?settlementDate={day}&settlementPeriod={period}", None
    else:
        yield path, None


def rows_of(body: Any) -> list[Any]:
    if isinstance(body, list):
        return body
    if isinstance(body, dict) and "data" in body:
        return list(body["data"])
    return [body]


def validator(endpoint: spec.Endpoint) -> OAS30Validator:
    document = spec.load()
    schema = document["paths"][endpoint.path]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]
    return OAS30Validator(
        {**schema, "components": document["components"]}, format_checker=oas30_format_checker
    )


def fetch(app: SimulatorApp, target: str) -> Any:
    response = app.handle("GET", target)
    assert response.status == 200, f"{target}: {response.status} {response.body[-300:]!r}"
    return orjson.loads(response.body)


GENERIC = generic_endpoints()


# ---------------------------------------------------------------- coverage and shapes


def test_every_served_path_is_answered_and_generic_ones_need_no_code(app: SimulatorApp) -> None:
    paths = {e.path for e in spec.endpoints()}
    # Every /datasets/{code} (82 codes + metadata), the settlement family, reference data.
    codes = {spec.dataset_key(p) for p in paths if p.startswith("/datasets/")} - {"METADATA"}
    assert len(codes) == 82
    assert len(GENERIC) > 120
    for path in paths:
        assert app.route(concrete(path, DAY)) is not None, path
    # Every catalog dataset is answered: by its calibrated generator or generically.
    for dataset in catalog.DATASETS:
        assert app.route(concrete(dataset.endpoint, DAY)) is not None, dataset.code


@pytest.mark.parametrize("endpoint", GENERIC, ids=lambda e: e.path)
def test_a_day_of_every_generic_path_conforms_to_its_schema(
    app: SimulatorApp, endpoint: spec.Endpoint
) -> None:
    check = validator(endpoint)
    total = 0
    for target, _ in day_targets(endpoint, DAY):
        body = fetch(app, target)
        rows = rows_of(body)
        total += len(rows)
        if isinstance(body, dict) and "data" in body:
            body = {**body, "data": rows[:: max(1, len(rows) // 50)]}
        elif isinstance(body, list):
            body = rows[:: max(1, len(rows) // 50)]
        errors = [error.message for error in check.iter_errors(body)]
        assert not errors, f"{target}: {errors[:3]}"
        if endpoint.envelope == "data" and endpoint.metadata:
            assert body["metadata"] == {"datasets": [app.route(target.split("?")[0]).source.code]}
    assert total > 0, f"{endpoint.path}: no rows for {DAY}"


def _period_keyed(endpoint: spec.Endpoint) -> bool:
    properties = endpoint.properties
    return (
        "settlementPeriod" in properties
        and not endpoint.path.startswith("/reference/")
        and not any(
            name in endpoint.by_name for name in ("publishDateTimeFrom", "submissionDateTimeFrom")
        )
    )


@pytest.mark.parametrize("day", sorted(CLOCK_CHANGES), ids=str)
@pytest.mark.parametrize("endpoint", [e for e in GENERIC if _period_keyed(e)], ids=lambda e: e.path)
def test_period_keyed_days_have_the_days_own_periods(
    app: SimulatorApp, endpoint: spec.Endpoint, day: dt.date
) -> None:
    """46 periods on the spring clock change, 50 on the autumn one, 48 otherwise."""
    rows = [row for target, _ in day_targets(endpoint, day) for row in rows_of(fetch(app, target))]
    if endpoint.path.endswith("{settlementPeriod}"):
        assert {row["settlementPeriod"] for row in rows} == {3}
        return
    assert {row["settlementDate"] for row in rows} == {day.isoformat()}
    assert sorted({row["settlementPeriod"] for row in rows}) == list(
        range(1, CLOCK_CHANGES[day] + 1)
    )
    start = settlement.day_window_utc(day)[0]
    for row in rows:
        if "startTime" in row:
            assert row["startTime"] == utc(
                start + (row["settlementPeriod"] - 1) * settlement.PERIOD
            )


@pytest.mark.parametrize(
    "endpoint",
    [e for e in GENERIC if any(low in e.by_name for low, _ in INSTANT_PAIRS)],
    ids=lambda e: e.path,
)
def test_rows_never_fall_outside_an_odd_window(app: SimulatorApp, endpoint: spec.Endpoint) -> None:
    """The client drops and counts rows outside its window: a generic dataset sends none."""
    low, high = next((a, b) for a, b in INSTANT_PAIRS if a in endpoint.by_name)
    lower = dt.datetime(2025, 6, 2, 7, 7, 13, tzinfo=settlement.UTC)
    upper = dt.datetime(2025, 6, 2, 19, 41, 0, tzinfo=settlement.UTC)
    target = f"{concrete(endpoint.path, DAY)}?{urlencode({low: utc(lower), high: utc(upper)})}"
    rows = rows_of(fetch(app, target))
    source = app.route(target.split("?")[0]).source
    field = generic.INSTANT_PAIRS[low][1] or source.from_to_field()
    daily = source.publication and source.target_kind not in ("period", "none")
    if not daily:
        assert rows, target
    for row in rows:
        if field is None:
            instant = settlement.period_start(
                dt.date.fromisoformat(row["settlementDate"]), row["settlementPeriod"]
            )
        else:
            instant = dt.datetime.fromisoformat(row[field])
        assert lower <= instant <= upper, (target, row)


def test_forecasts_publish_future_targets_and_outturn_the_past(app: SimulatorApp) -> None:
    window = {"publishDateTimeFrom": "2025-06-02T08:00Z", "publishDateTimeTo": "2025-06-02T16:00Z"}
    for code in ("MELNGC", "TSDF", "WINDFOR", "DATL"):
        rows = fetch(app, f"/datasets/{code}/stream?{urlencode(window)}")
        assert rows and all(row["startTime"] > row["publishTime"] for row in rows), code
        assert len({row["publishTime"] for row in rows}) > 1
    for code in ("AGPT", "ATL"):
        rows = fetch(app, f"/datasets/{code}/stream?{urlencode(window)}")
        assert rows and all(row["startTime"] < row["publishTime"] for row in rows), code
    daily = fetch(app, f"/datasets/NDFD/stream?{urlencode(window)}")
    assert [row["forecastDate"] for row in daily] == [
        (DAY + dt.timedelta(days=k)).isoformat() for k in range(1, 15)
    ]


def test_entity_rows_are_unique_per_entity_and_time(app: SimulatorApp) -> None:
    """One row per entity and target, so keys like (unit, time) or (boundary, period) hold."""
    checks = {
        "/datasets/SEL/stream?from=2025-06-02T00:00Z&to=2025-06-02T12:00Z": ("nationalGridBmUnit", "time"),
        "/datasets/TSDF/stream?publishDateTimeFrom=2025-06-02T00:00Z&publishDateTimeTo=2025-06-02T12:00Z": (
            "boundary", "publishTime", "startTime"),
        "/datasets/AGPT/stream?publishDateTimeFrom=2025-06-02T00:00Z&publishDateTimeTo=2025-06-02T12:00Z": (
            "psrType", "startTime"),
        "/datasets/FOU2T14D?publishDateTimeFrom=2025-06-02T00:00Z&publishDateTimeTo=2025-06-02T23:00Z": (
            "fuelType", "forecastDate"),
        "/balancing/settlement/acceptance/volumes/all/bid/2025-06-02": ("nationalGridBmUnit", "settlementPeriod"),
    }  # fmt: skip
    for target, key in checks.items():
        rows = rows_of(fetch(app, target))
        keys = [tuple(row[field] for field in key) for row in rows]
        assert len(rows) > 1 and len(set(keys)) == len(keys), target


# ---------------------------------------------------------------- as the client fetches them


@pytest.mark.parametrize("day", sorted(CLOCK_CHANGES), ids=str)
@pytest.mark.parametrize("dataset", catalog.DATASETS, ids=lambda d: d.code)
def test_every_catalog_dataset_day_as_the_client_asks_for_it(
    app: SimulatorApp, dataset: catalog.Dataset, day: dt.date
) -> None:
    """The client's own requests for a day (ordinary and both clock changes): every answer
    200, no row outside its window (the client would drop and count it), and for the
    generically answered datasets no two rows with the same natural key and version."""
    rows: list[dict[str, Any]] = []
    for window in client.request_windows(dataset, day):
        target = window.path + (f"?{urlencode(window.params)}" if window.params else "")
        body = fetch(app, target)
        answered = rows_of(body) if dataset.envelope != "object" else [body]
        kept, outside = client.rows_inside(dataset, window, answered)
        assert outside == 0, f"{dataset.code} {target}: {outside} rows outside the window"
        rows.extend(client.shape_rows(dataset, window, kept))
    generic_route = isinstance(app.route(concrete(dataset.endpoint, day)), GenericRoute)
    if not generic_route:
        return
    assert rows, f"{dataset.code}: no rows for {day}"
    key = dataset.natural_key + ((dataset.version_field,) if dataset.version_field else ())
    keys = [tuple(row.get(field) for field in key) for row in rows if row]
    repeated = len(keys) - len(set(keys))
    assert not repeated, f"{dataset.code}: {repeated} rows repeat a natural key and version {key}"


# ---------------------------------------------------------------- parameters


def test_generic_parameters_are_validated_like_the_api(app: SimulatorApp) -> None:
    cases = {
        "/datasets/CDN/stream": "publishDateTimeFrom",  # required and missing
        "/datasets/SEL/stream?from=2025-06-02T10:00Z&to=2025-06-02T09:00Z": "",  # reversed
        "/datasets/SOSO?publishDateTimeFrom=2025-06-01T00:00Z&publishDateTimeTo=2025-06-02T01:00Z": "publishDateTimeTo",  # spec: 24 h
        # No stated limit, but ten years is refused as too large (the work budget).
        "/datasets/SEL/stream?from=2015-05-01T00:00Z&to=2025-06-02T00:00Z": "",
        "/balancing/settlement/stack/all/both/2025-06-02/3": "bidOffer",  # not in the enum
        "/balancing/settlement/market-depth/2025-6-2": "settlementDate",
        "/balancing/settlement/summary/2025-06-02/51": "settlementPeriod",
        "/datasets/FOU2T14D?interconnector=maybe": "interconnector",
        "/datasets/TUDM?settlementDate=2025-06-02": "settlementPeriod",
    }  # fmt: skip
    for target, parameter in cases.items():
        response = app.handle("GET", target)
        assert response.status == 400, target
        assert parameter in orjson.loads(response.body)["errors"], target


def test_filters_and_case_blind_names(app: SimulatorApp) -> None:
    window = "from=2025-06-02T00:00Z&to=2025-06-02T12:00Z"
    everyone = fetch(app, f"/datasets/SEL/stream?{window}")
    unit = everyone[0]["bmUnit"]
    mine = fetch(app, f"/datasets/SEL/stream?{window}&bmUnit={unit}")
    assert mine and {row["bmUnit"] for row in mine} == {unit}
    shouted = fetch(app, "/datasets/SEL/stream?FROM=2025-06-02T00:00Z&To=2025-06-02T12:00Z")
    assert shouted == everyone
    ics = fetch(
        app,
        "/datasets/FOU2T14D?publishDateTimeFrom=2025-06-02T00:00Z&publishDateTimeTo=2025-06-02T23:00Z&interconnector=true",
    )
    assert ics and all(
        row["interconnector"] and row["fuelType"].startswith("INT") for row in ics["data"]
    )


def test_settlement_paths_per_period_agree_with_the_day_and_sides_differ(app: SimulatorApp) -> None:
    for family in ("acceptance/volumes/all", "indicative/volumes/all", "indicative/cashflows/all"):
        day = fetch(app, f"/balancing/settlement/{family}/offer/2025-06-02")["data"]
        period = fetch(app, f"/balancing/settlement/{family}/offer/2025-06-02/7")["data"]
        assert period == [row for row in day if row["settlementPeriod"] == 7]
        bids = fetch(app, f"/balancing/settlement/{family}/bid/2025-06-02")["data"]
        assert bids != day
    prices = fetch(app, "/balancing/settlement/system-prices/2025-06-02")["data"]
    assert fetch(app, "/balancing/settlement/system-prices/2025-06-02/7")["data"] == [prices[6]]
    summary = fetch(app, "/balancing/settlement/summary/2025-10-26/50")
    assert summary["settlementPeriod"] == 50 and summary["startTime"] == "2025-10-26T23:30:00Z"


def test_nothing_is_served_after_now_or_before_the_catalog_start(app: SimulatorApp) -> None:
    now = dt.datetime(2025, 6, 2, 12, 10, tzinfo=settlement.UTC)
    early = SimulatorApp(seed=0, scale=SCALE, clock=lambda: now)
    rows = fetch(early, "/datasets/SEL/stream?from=2025-06-02T00:00Z&to=2025-06-02T23:59Z")
    assert rows and max(row["time"] for row in rows) <= "2025-06-02T12:10:00Z"
    assert fetch(early, "/balancing/settlement/market-depth/2025-06-03")["data"] == []
    for dataset in catalog.DATASETS:
        route = early.route(concrete(dataset.endpoint, DAY))
        if isinstance(route, GenericRoute) and not dataset.snapshot:
            assert route.source.earliest == dataset.earliest


def test_same_request_same_bytes_and_seed_changes_data() -> None:
    one, two, other = (SimulatorApp(seed=s, scale=SCALE, clock=lambda: LATER) for s in (3, 3, 4))
    for target in (
        "/datasets/TSDF/stream?publishDateTimeFrom=2025-06-02T00:00Z&publishDateTimeTo=2025-06-02T06:00Z",
        "/datasets/QAS/stream?from=2025-06-02T00:00Z&to=2025-06-02T06:00Z",
        "/balancing/settlement/stack/all/offer/2025-06-02/20",
        "/reference/bmunits/all",
    ):
        assert one.handle("GET", target).body == two.handle("GET", target).body, target
        assert one.handle("GET", target).body != other.handle("GET", target).body, target


def test_dup_fault_reaches_generic_datasets() -> None:
    target = "/datasets/SEL/stream?from=2025-06-02T00:00Z&to=2025-06-02T12:00Z"
    clean = orjson.loads(SimulatorApp(scale=SCALE, clock=lambda: LATER).handle("GET", target).body)
    doubled = orjson.loads(
        SimulatorApp(scale=SCALE, faults="dup=1", clock=lambda: LATER).handle("GET", target).body
    )
    assert len(doubled) > len(clean) and {orjson.dumps(r) for r in doubled} == {
        orjson.dumps(r) for r in clean
    }


def test_a_day_of_each_generic_dataset_is_generated_quickly() -> None:
    """Full scale: the slowest generic dataset-day, over every family, stays well under 1 s."""
    app = SimulatorApp(seed=0, scale=1.0, clock=lambda: LATER)
    timings = {}
    seen: set[str] = set()
    for endpoint in GENERIC:
        key = spec.dataset_key(endpoint.path)
        if key in seen or endpoint.path.endswith("{settlementPeriod}"):
            continue
        seen.add(key)
        started = time.perf_counter()
        for target, _ in day_targets(endpoint, DAY):
            app.handle("GET", target)
        timings[key] = time.perf_counter() - started
    slowest = max(timings, key=timings.__getitem__)
    assert timings[slowest] < 1.5, f"{slowest} took {timings[slowest]:.2f} s for a day"


# ---------------------------------------------------------------- reference data


def test_bm_unit_reference_covers_the_fleet_in_the_real_shape(app: SimulatorApp) -> None:
    rows = fetch(app, "/reference/bmunits/all")
    real = json.loads((SAMPLES / "REFERENCE-BMUNITS__gridskew-bmunits_truncated.json").read_text())
    assert [list(row) for row in rows[:3]] == [list(row) for row in real[:3]]
    assert [r["nationalGridBmUnit"] for r in rows] == sorted(r["nationalGridBmUnit"] for r in rows)
    by_id = {row["nationalGridBmUnit"]: row for row in rows}
    units = fleet(0, SCALE)
    # Every unit BOD/BOALF/PN talk about is in the register, under both its ids.
    for unit in units:
        row = by_id[unit.national_grid_bm_unit]
        assert row["elexonBmUnit"] == unit.bm_unit
        assert float(row["generationCapacity"]) >= 0 >= float(row["demandCapacity"])
    # ... and the units MELS/MILS name by National Grid id only, registered without the rest.
    for unit in limit_only_units(0, SCALE):
        row = by_id[unit.national_grid_bm_unit]
        assert row["elexonBmUnit"] is None and row["bmUnitType"] is None
    capacities = [r["generationCapacity"] for r in rows if r["generationCapacity"] is not None]
    assert all(
        isinstance(c, str) and c.count(".") == 1 and len(c.split(".")[1]) == 3 for c in capacities
    )
    assert any(r["fuelType"] is None for r in rows) and any(r["eic"] is None for r in rows)
    assert any(r["eic"] for r in rows)
    assert {r["bmUnitType"] for r in rows} - {None} <= {"T", "E", "S", "V", "I"}
    fuels = {r["fuelType"] for r in rows} - {None}
    assert fuels <= set(reference.FUEL_TYPES)
    # A bigger fleet has interconnector units: on their link, and only they name one.
    register = reference.bmunits(0, 0.2, DAY)
    links = [r for r in register if r["bmUnitType"] == "I"]
    assert links and all(r["interconnectorId"] and r["fuelType"].startswith("INT") for r in links)
    assert all(r["interconnectorId"] is None for r in register if r["bmUnitType"] != "I")
    batteries = [r for r in rows if r["bmUnitName"] and "Battery" in r["bmUnitName"]]
    for battery in batteries:
        assert battery["fuelType"] in (None, "OTHER")
        assert float(battery["demandCapacity"]) == -float(battery["generationCapacity"])


def test_bm_unit_register_grows_over_time_and_has_id_only_units() -> None:
    rows_then = reference.bmunits(0, 0.2, dt.date(2024, 12, 31))
    rows_later = reference.bmunits(0, 0.2, dt.date(2027, 1, 1))
    assert len(rows_later) > len(rows_then) == len(fleet(0, 0.2)) + len(limit_only_units(0, 0.2))
    bare = [r for r in rows_later if r["elexonBmUnit"] is None]
    assert bare and all(r["bmUnitType"] is None and r["generationCapacity"] is None for r in bare)


def test_reference_lists(app: SimulatorApp) -> None:
    assert fetch(app, "/reference/fueltypes/all") == list(reference.FUEL_TYPES)
    interconnectors = fetch(app, "/reference/interconnectors/all")
    assert {row["interconnectorId"] for row in interconnectors} >= {"IFA", "IFA2", "BritNed", "NSL"}
    assets = fetch(app, "/reference/remit/assets/all")
    assert {unit.bm_unit for unit in fleet(0, 1.0) if unit.bm_unit} == set(assets)
    participants = fetch(app, "/reference/remit/participants/all")
    assert participants == sorted(set(participants)) and all(len(p) == 16 for p in participants)


def test_iris_feed_sends_generic_datasets_as_the_api_serves_them(tmp_path: Path) -> None:
    """IRIS carries every /datasets code: the feed sends generic rows, the API's own rows."""
    start = dt.datetime(2025, 6, 2, 10, 0, tzinfo=settlement.UTC)
    feed = IrisFeed(tmp_path, seed=0, datasets=("SEL", "AGPT"), start=start, scale=SCALE)
    for _ in range(20):
        feed.next_message()
    sent: dict[str, list[Any]] = {"SEL": [], "AGPT": []}
    for message in feed.sent:
        body = orjson.loads(feed.bodies[message.message_id])
        sent[message.dataset].extend(orjson.loads(body) if isinstance(body, str) else body)
    app = SimulatorApp(seed=0, scale=SCALE, clock=lambda: LATER)
    window = "from=2025-06-02T10:00Z&to=2025-06-02T23:59:59Z"
    api = fetch(app, f"/datasets/SEL/stream?{window}")
    assert sent["SEL"] and all(row in api for row in sent["SEL"])
    published = "publishDateTimeFrom=2025-06-02T10:00Z&publishDateTimeTo=2025-06-02T23:59:59Z"
    api = fetch(app, f"/datasets/AGPT/stream?{published}")
    assert sent["AGPT"] and all(row in api for row in sent["AGPT"])


def test_revise_fault_gives_generic_rows_new_values_and_a_newer_version() -> None:
    target = "/balancing/settlement/indicative/cashflows/all/bid/2025-06-02"
    clean = fetch(SimulatorApp(scale=SCALE, clock=lambda: LATER), target)["data"]
    faulty = SimulatorApp(scale=SCALE, faults="revise=1", clock=lambda: LATER)
    revised = fetch(faulty, target)["data"]
    dataset = catalog.get("EBOCF")
    assert dataset.version_field == "createdDateTime"
    changed = [(old, new) for old, new in zip(clean, revised, strict=True) if old != new]
    assert changed
    for old, new in changed:
        assert new["createdDateTime"] > old["createdDateTime"]
        assert new["totalCashflow"] != old["totalCashflow"]
        assert all(new[field] == old[field] for field in dataset.natural_key if field in old)


def test_hidden_window_limits_apply_to_generic_catalog_datasets() -> None:
    """``bmrs sim --window-limit SEL=1h`` refuses wider SEL windows as the API's range 400."""
    app = SimulatorApp(scale=SCALE, window_limit="SEL=1h,BOAV=1h", clock=lambda: LATER)
    wide = app.handle("GET", "/datasets/SEL/stream?from=2025-06-02T10:00Z&to=2025-06-02T12:00Z")
    assert wide.status == 400 and "1 hour" in orjson.loads(wide.body)["errors"][""][0]
    assert client.is_range_refusal(400, orjson.loads(wide.body)["errors"][""][0])
    narrow = "/datasets/SEL/stream?from=2025-06-02T10:00Z&to=2025-06-02T10:59:59Z"
    assert app.handle("GET", narrow).status == 200
    # A path-dated dataset asks for a whole day: refused too.
    assert (
        app.handle("GET", "/balancing/settlement/acceptance/volumes/all/bid/2025-06-02").status
        == 400
    )
