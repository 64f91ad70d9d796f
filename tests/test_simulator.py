"""The Elexon simulator over real HTTP: shapes from the real OpenAPI spec, windows, clock
changes, faults, determinism, and an independent schemathesis conformance run."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from click.testing import CliRunner
from openapi_schema_validator import OAS30Validator, oas30_format_checker

from tests.support.env import free_port
from tests.support.local_http import access_lines
from worker.cli import main
from worker.elexon import catalog, settlement
from worker.sim import spec as sim_spec
from worker.sim.calibrated import GENERATOR_CLASSES, generators
from worker.sim.faults import FaultSpec, FaultSpecError, parse_faults
from worker.sim.server import BASE_PATH, RunningSimulator

SHARED = Path(__file__).resolve().parents[2] / "shared" / "elexon"
SPEC_PATH = SHARED / "openapi.json"
DAY = dt.date(2025, 6, 2)
# A fixed "now" well after every day the tests ask for, so answers never depend on the date.
LATER = dt.datetime(2026, 6, 1, tzinfo=settlement.UTC)

Start = Callable[..., RunningSimulator]


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text())


@pytest.fixture
def sim(simulator_factory: Start) -> RunningSimulator:
    """A fault-free simulator whose clock stands still at LATER."""
    return simulator_factory(clock=lambda: LATER)


def get(base: str, path: str, **params: Any) -> requests.Response:
    return requests.get(base + BASE_PATH + path, params=params, timeout=30)


def utc(instant: dt.datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def day_requests(dataset: catalog.Dataset, day: dt.date) -> list[tuple[str, dict[str, str]]]:
    """(path, params) covering one settlement day, in windows the dataset allows."""
    if dataset.param_style == "path_date":
        return [(dataset.endpoint.replace("{settlementDate}", day.isoformat()), {})]
    name_from, name_to = catalog.WINDOW_PARAMS[dataset.param_style]
    if dataset.param_style == "settlement_dates":
        return [(dataset.endpoint, {name_from: day.isoformat(), name_to: day.isoformat()})]
    start, end = settlement.day_window_utc(day)
    windows = []
    while start < end:
        stop = min(start + dataset.max_window, end)
        # Inclusive ends: stop one second short so windows do not overlap.
        windows.append(
            (
                dataset.endpoint,
                {name_from: utc(start), name_to: utc(stop - dt.timedelta(seconds=1))},
            )
        )
        start = stop
    return windows


def fetch_day(base: str, dataset: catalog.Dataset, day: dt.date) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path, params in day_requests(dataset, day):
        response = get(base, path, **params)
        assert response.status_code == 200, response.text
        body = response.json()
        rows.extend(body["data"] if isinstance(body, dict) else body)
    return rows


def first_window(dataset: catalog.Dataset) -> tuple[str, dict[str, str]]:
    """A small request: one hour for time windows, one day otherwise."""
    path, params = day_requests(dataset, DAY)[0]
    if dataset.param_style in ("from_to", "measurement_time", "publish_time"):
        name_from, name_to = catalog.WINDOW_PARAMS[dataset.param_style]
        start = dt.datetime.fromisoformat(params[name_from])
        params = {name_from: utc(start), name_to: utc(start + dt.timedelta(hours=1))}
    return path, params


def response_validator(spec: dict[str, Any], path: str) -> OAS30Validator:
    """Validator of an endpoint's documented 200 JSON body, $refs resolved in the spec."""
    schema = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    return OAS30Validator(
        {**schema, "components": spec["components"]}, format_checker=oas30_format_checker
    )


def sample(rows: list[Any], size: int = 300) -> list[Any]:
    return rows[:: max(1, len(rows) // size)]


# ---------------------------------------------------------------- shapes


# The datasets with a calibrated generator (the 16 core ones); the rest of the catalog is
# answered generically from the spec and tested with it.
CALIBRATED = [d for d in catalog.DATASETS if d.code in GENERATOR_CLASSES]
CORE = (
    "FUELINST FUELHH FREQ MID BOD BOALF DISBSAD NETBSAD INDGEN INDDEM PN QPN MELS MILS REMIT DISEBSP"
    " INDO ITSDO NDF B1610"
)
# Where real answers break the spec (B1610), the simulator follows the spec, so every
# calibrated dataset is schema-validated (worker/sim/calibrated_more.py, SPEC_OVER_SAMPLE).


def test_every_core_dataset_has_one_generator() -> None:
    assert set(GENERATOR_CLASSES) == set(CORE.split()) <= {d.code for d in catalog.DATASETS}


@pytest.mark.parametrize("dataset", CALIBRATED, ids=lambda d: d.code)
def test_rows_validate_against_the_openapi_schema(
    spec: dict[str, Any], sim: RunningSimulator, dataset: catalog.Dataset
) -> None:
    path, params = first_window(dataset)
    body = get(sim.url, path, **params).json()
    rows = body["data"] if isinstance(body, dict) else body
    assert rows, f"{dataset.code}: no rows for {params}"
    checked = sample(rows)
    envelope = {**body, "data": checked} if isinstance(body, dict) else checked
    spec_path = dataset.endpoint
    response_validator(spec, spec_path).validate(envelope)
    # The spec's fields: real rows' extra fields (extra_fields) are not the simulator's to send.
    expected = set(dataset.field_names) - {name for name, _ in dataset.extra_fields}
    expected |= {"dataset"} if dataset.param_style != "path_date" else set()
    if GENERATOR_CLASSES[dataset.code].omits_nulls:
        # The REMIT stream leaves null fields out (real samples).
        assert all(set(row) <= expected and None not in row.values() for row in rows)
    else:
        assert {tuple(sorted(row)) for row in rows} == {tuple(sorted(expected))}
    if dataset.param_style != "path_date":
        assert {row["dataset"] for row in rows} == {dataset.code}


@pytest.mark.parametrize(
    "dataset", [d for d in CALIBRATED if d.endpoint.endswith("/stream")], ids=lambda d: d.code
)
def test_non_stream_variant_wraps_the_same_rows_in_data(
    spec: dict[str, Any], sim: RunningSimulator, dataset: catalog.Dataset
) -> None:
    list_path = dataset.endpoint.removesuffix("/stream")
    path, params = first_window(dataset)
    period_param = sim_spec.endpoint(list_path).by_name.get("settlementPeriod")
    if period_param is not None and period_param.required:
        # One settlement period per call, as the real non-stream PN, QPN, B1610 endpoints.
        params = {"settlementDate": DAY.isoformat(), "settlementPeriod": "3"}
        stream = [row for row in fetch_day(sim.url, dataset, DAY) if row["settlementPeriod"] == 3]
    else:
        stream = get(sim.url, path, **params).json()
    body = get(sim.url, list_path, **params).json()
    assert set(body) == {"data"}
    assert sorted(map(orjson.dumps, body["data"])) == sorted(map(orjson.dumps, stream))
    response_validator(spec, list_path).validate(
        {"data": sample(body["data"])}
    )


def test_system_prices_match_the_real_response_shape(sim: RunningSimulator) -> None:
    real = json.loads(
        (SHARED / "samples" / "DISEBSP__nikolisan-bmrs_api-2025-10-26.json").read_text()
    )
    body = get(sim.url, "/balancing/settlement/system-prices/2025-10-26").json()
    assert body["metadata"] == real["metadata"] == {"datasets": ["DISEBSP"]}
    assert [list(row) for row in body["data"]] == [list(row) for row in real["data"]]
    assert [r["startTime"] for r in body["data"]] == [r["startTime"] for r in real["data"]]
    assert all(row["systemSellPrice"] == row["systemBuyPrice"] for row in body["data"])


@pytest.mark.parametrize(
    ("day", "periods", "first_start"),
    [
        ("2025-10-26", 50, "2025-10-25T23:00:00Z"),
        ("2026-03-29", 46, "2026-03-29T00:00:00Z"),
        ("2025-06-02", 48, "2025-06-01T23:00:00Z"),
        ("2025-12-02", 48, "2025-12-02T00:00:00Z"),
    ],
)
def test_system_prices_have_one_row_per_settlement_period(
    sim: RunningSimulator, day: str, periods: int, first_start: str
) -> None:
    rows = get(sim.url, f"/balancing/settlement/system-prices/{day}").json()["data"]
    assert [row["settlementPeriod"] for row in rows] == list(range(1, periods + 1))
    assert rows[0]["startTime"] == first_start
    assert {row["settlementDate"] for row in rows} == {day}


def test_freq_covers_the_25_hours_of_the_autumn_clock_change(sim: RunningSimulator) -> None:
    rows = fetch_day(sim.url, catalog.get("FREQ"), dt.date(2025, 10, 26))
    times = sorted({row["measurementTime"] for row in rows})
    assert len(times) == len(rows) == 25 * 60 * 4
    assert (times[0], times[-1]) == ("2025-10-25T23:00:00Z", "2025-10-26T23:59:45Z")
    assert all(49.8 <= row["frequency"] <= 50.2 for row in rows)


def test_per_period_datasets_follow_the_clock_change(sim: RunningSimulator) -> None:
    rows = fetch_day(sim.url, catalog.get("MID"), dt.date(2026, 3, 29))
    assert sorted({row["settlementPeriod"] for row in rows}) == list(range(1, 47))
    assert len(rows) == 46 * 2


def test_pn_stream_lists_newest_period_first(sim: RunningSimulator) -> None:
    rows = get(
        sim.url, "/datasets/PN/stream", **{"from": "2025-06-02T10:00Z", "to": "2025-06-02T11:00Z"}
    ).json()
    periods = [row["settlementPeriod"] for row in rows]
    assert periods == sorted(periods, reverse=True) and len(set(periods)) == 3


def test_plausible_values_and_volumes_at_full_scale() -> None:
    """Day sizes within 2x of the real figures in docs/elexon-data.md; the biggest datasets
    are sampled over 4 periods."""
    full = generators(seed=0, scale=1.0)
    start, _ = settlement.day_window_utc(DAY)
    buckets = [start + i * settlement.PERIOD for i in range(48)]

    def day_rows(code: str) -> list[dict[str, Any]]:
        return [row for bucket in buckets for row in full[code].rows(bucket)]

    def per_day(code: str) -> int:
        return sum(len(full[code].rows(bucket)) for bucket in buckets[20:24]) * 12

    fuelinst = day_rows("FUELINST")
    assert len(fuelinst) == 288 * 20
    assert {r["fuelType"] for r in fuelinst if r["fuelType"].startswith("INT")} == {
        "INTELEC",
        "INTEW",
        "INTFR",
        "INTGRNL",
        "INTIFA2",
        "INTIRL",
        "INTNED",
        "INTNEM",
        "INTNSL",
        "INTVKL",
    }
    assert all(
        dt.datetime.fromisoformat(r["publishTime"]) - dt.datetime.fromisoformat(r["startTime"])
        == dt.timedelta(minutes=5)
        for r in fuelinst
    )
    assert all(
        -2000 <= r["generation"] <= 2000 for r in fuelinst if r["fuelType"].startswith("INT")
    )
    mid = day_rows("MID")
    assert len(mid) == 96
    assert (
        sum(r["price"] == 0 and r["volume"] == 0 for r in mid if r["dataProvider"] == "APXMIDP")
        > 24
    )
    assert 20 < sum(r["price"] for r in mid if r["dataProvider"] == "N2EXMIDP") / 48 < 200
    assert 250_000 <= per_day("BOD") <= 340_000
    assert 100_000 <= per_day("PN") <= 230_000
    # A real UTC day of BOALF: ~27,000 rows (samples/SOURCES.md).
    assert 20_000 <= len(day_rows("BOALF")) <= 35_000
    # MELS/MILS: 1,000+ units at every instant, one segment per unit and period at least.
    for code in ("MELS", "MILS"):
        instant = full[code].rows(buckets[22])
        assert 1_000 <= len({r["nationalGridBmUnit"] for r in instant}) <= 2_000
        assert 48_000 <= per_day(code) <= 99_999
    mils = full["MILS"].rows(buckets[22])
    assert sum(r["levelFrom"] == 0 for r in mils) / len(mils) > 0.9
    assert any(r["bmUnit"] is None and r["nationalGridBmUnit"] for r in mils)
    assert 200 <= len(day_rows("DISBSAD")) <= 500
    assert len(day_rows("NETBSAD")) == 48
    assert 80_000 <= per_day("INDGEN") <= 120_000
    boalf = day_rows("BOALF")
    numbers: dict[int, set[str]] = {}
    for row in boalf:
        numbers.setdefault(row["acceptanceNumber"], set()).add(row["bmUnit"])
    assert any(len(units) > 1 for units in numbers.values()), (
        "acceptance numbers repeat across units"
    )
    remit = day_rows("REMIT")
    assert 100 <= len(remit) <= 500
    assert all(50 <= r["unavailableCapacity"] <= 1200 for r in remit if "normalCapacity" in r)
    assert 0 < sum("outageProfile" in r for r in remit) < len(remit) / 4
    assert len({(r["mrid"], r["revisionNumber"]) for r in remit}) == len(remit)
    disbsad = day_rows("DISBSAD")
    assert any(r["cost"] is None for r in disbsad)
    # Placeholders: zero cost and volume, no party or asset; ids 1..n within each period.
    assert any(
        r["cost"] == r["volume"] == 0 and r["partyId"] is r["assetId"] is None for r in disbsad
    )
    ids: dict[int, list[int]] = {}
    for r in disbsad:
        ids.setdefault(r["settlementPeriod"], []).append(r["id"])
    assert all(sorted(n) == list(range(1, len(n) + 1)) for n in ids.values())


def test_indicated_forecasts_have_many_publications_per_period(sim: RunningSimulator) -> None:
    rows = get(
        sim.url,
        "/datasets/INDGEN/stream",
        publishDateTimeFrom="2025-06-02T00:00Z",
        publishDateTimeTo="2025-06-02T06:00Z",
        boundary="N",
    ).json()
    target = [r for r in rows if (r["settlementDate"], r["settlementPeriod"]) == ("2025-06-02", 30)]
    assert len({r["publishTime"] for r in target}) == 13
    assert all(r["publishTime"] < r["startTime"] for r in rows)


# ---------------------------------------------------------------- parameters


def test_both_base_paths_and_any_case_answer_the_same(sim: RunningSimulator) -> None:
    query = "?from=2025-06-02T10:00Z&to=2025-06-02T10:30Z"
    plain = requests.get(f"{sim.url}/datasets/MID/stream{query}", timeout=10)
    prefixed = requests.get(f"{sim.url}{BASE_PATH}/datasets/mid/stream{query}", timeout=10)
    assert plain.status_code == prefixed.status_code == 200
    assert plain.content == prefixed.content and len(plain.json()) == 4


def test_windows_are_inclusive_at_both_ends(sim: RunningSimulator) -> None:
    rows = get(
        sim.url,
        "/datasets/FREQ/stream",
        measurementDateTimeFrom="2025-06-02T10:00:00Z",
        measurementDateTimeTo="2025-06-02T10:01:00Z",
    ).json()
    assert [r["measurementTime"][-9:] for r in rows] == [
        "10:00:00Z",
        "10:00:15Z",
        "10:00:30Z",
        "10:00:45Z",
        "10:01:00Z",
    ]
    rows = get(
        sim.url,
        "/datasets/DISBSAD/stream",
        **{"from": "2025-06-02T10:00Z", "to": "2025-06-02T10:30Z"},
    ).json()
    assert {r["settlementPeriod"] for r in rows} == {23, 24}


def test_settlement_period_parameters_filter_on_settlement_date_and_period(
    sim: RunningSimulator,
) -> None:
    rows = get(
        sim.url,
        "/datasets/BOD/stream",
        **{
            "from": "2025-06-02",
            "to": "2025-06-02",
            "settlementPeriodFrom": "5",
            "settlementPeriodTo": "6",
        },
    ).json()
    assert rows and {(r["settlementDate"], r["settlementPeriod"]) for r in rows} == {
        ("2025-06-02", 5),
        ("2025-06-02", 6),
    }


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        (
            "/datasets/INDGEN/stream",
            {
                "publishDateTimeFrom": "2025-06-01T00:00Z",
                "publishDateTimeTo": "2025-06-02T01:00:01Z",
            },
            "publishDateTimeTo",
        ),
        (
            "/datasets/INDDEM",
            {
                "publishDateTimeFrom": "2025-06-01T00:00Z",
                "publishDateTimeTo": "2025-06-03T00:00Z",
            },
            "publishDateTimeTo",
        ),
    ],
)
def test_window_wider_than_the_spec_states_is_a_400_naming_the_parameter(
    sim: RunningSimulator, path: str, params: dict[str, str], parameter: str
) -> None:
    response = get(sim.url, path, **params)
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == 400 and body["title"] == "One or more validation errors occurred."
    assert list(body["errors"]) == [parameter] and "at most" in body["errors"][parameter][0]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        (
            "/datasets/FUELINST/stream",
            {"settlementDateFrom": "2025-06-01", "settlementDateTo": "2025-06-08"},
        ),
        ("/datasets/BOD/stream", {"from": "2025-06-02T00:00Z", "to": "2025-06-03T01:00:01Z"}),
        ("/datasets/BOALF/stream", {"from": "2025-06-01T00:00Z", "to": "2025-06-03T00:00Z"}),
        (
            "/datasets/REMIT/stream",
            {"publishDateTimeFrom": "2025-06-01T00:00Z", "publishDateTimeTo": "2025-06-03T00:00Z"},
        ),
        ("/datasets/MID", {"from": "2025-06-01T00:00Z", "to": "2025-06-09T00:00Z"}),
    ],
)
def test_windows_the_spec_does_not_limit_are_answered_whole(
    sim: RunningSimulator, path: str, params: dict[str, str]
) -> None:
    """Third-party clients fetch BOD and BOALF a day or more at a time: no invented limits."""
    response = get(sim.url, path, **params)
    assert response.status_code == 200, response.text[:300]
    rows = response.json()
    assert (rows if isinstance(rows, list) else rows["data"])


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("/datasets/MID/stream", {"from": "yesterday", "to": "2025-06-02T00:00Z"}, "from"),
        # Reversed: a model-level error under "", as the real API answers.
        ("/datasets/MID/stream", {"from": "2025-06-02T01:00Z", "to": "2025-06-02T00:00Z"}, ""),
        (
            "/datasets/FUELHH/stream",
            {"settlementDateFrom": "2025/06/02", "settlementDateTo": "2025-06-02"},
            "settlementDateFrom",
        ),
        ("/datasets/MID/stream", {"to": "2025-06-02T00:00Z"}, "from"),
        ("/datasets/PN", {"settlementDate": "2025-06-02"}, "settlementPeriod"),
        (
            "/datasets/BOD/stream",
            {"from": "2025-06-02", "to": "2025-06-02", "settlementPeriodFrom": "0"},
            "settlementPeriodFrom",
        ),
        ("/balancing/settlement/system-prices/2025-6-2", {}, "settlementDate"),
    ],
)
def test_malformed_or_reversed_parameters_are_a_400(
    sim: RunningSimulator, path: str, params: dict[str, str], parameter: str
) -> None:
    response = get(sim.url, path, **params)
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert parameter in response.json()["errors"]


def test_unknown_parameter_names_are_ignored(sim: RunningSimulator) -> None:
    window = {"from": "2025-06-02T10:00Z", "to": "2025-06-02T10:30Z"}
    plain = get(sim.url, "/datasets/MID/stream", **window)
    extra = get(sim.url, "/datasets/MID/stream", **window, colour="blue", settlementDay="x")
    # Names bind case-blind, as in the real (ASP.NET) API.
    shouted = get(sim.url, "/datasets/MID/stream", FROM=window["from"], To=window["to"])
    assert plain.content == extra.content == shouted.content


def test_misspelt_optional_window_returns_todays_data_instead(simulator_factory: Start) -> None:
    """The trap: a 200 with the API's default (today so far), not the day asked for."""
    now = dt.datetime(2025, 6, 2, 12, 0, tzinfo=settlement.UTC)
    sim = simulator_factory(clock=lambda: now)
    rows = get(sim.url, "/datasets/FUELINST/stream", settlementDate="2025-05-01").json()
    assert {r["settlementDate"] for r in rows} == {"2025-06-02"}
    assert max(r["startTime"] for r in rows) == "2025-06-02T12:00:00Z"
    # Required windows (from/to) are a 400 instead, as in the spec.
    assert get(sim.url, "/datasets/BOD/stream", start="2025-05-01").status_code == 400


def test_nothing_after_now_is_served_except_forecasts(simulator_factory: Start) -> None:
    now = dt.datetime(2025, 6, 2, 12, 10, tzinfo=settlement.UTC)
    sim = simulator_factory(clock=lambda: now)
    prices = get(sim.url, "/balancing/settlement/system-prices/2025-06-02").json()["data"]
    assert prices[-1]["startTime"] == "2025-06-02T12:00:00Z" and len(prices) == 27
    freq = get(
        sim.url,
        "/datasets/FREQ/stream",
        measurementDateTimeFrom="2025-06-02T12:00Z",
        measurementDateTimeTo="2025-06-02T13:00Z",
    ).json()
    assert freq[-1]["measurementTime"] == "2025-06-02T12:10:00Z"
    forecasts = get(
        sim.url,
        "/datasets/INDDEM/stream",
        publishDateTimeFrom="2025-06-02T11:00Z",
        publishDateTimeTo="2025-06-02T14:00Z",
    ).json()
    assert max(r["publishTime"] for r in forecasts) == "2025-06-02T12:00:00Z"
    assert max(r["startTime"] for r in forecasts) > "2025-06-03T12:00:00Z"
    assert get(sim.url, "/balancing/settlement/system-prices/2025-06-03").json()["data"] == []


def test_other_methods_are_405_and_unknown_paths_404(sim: RunningSimulator) -> None:
    url = f"{sim.url}{BASE_PATH}/datasets/MID/stream"
    for method in ("POST", "PUT", "DELETE", "PATCH", "QUERY"):
        response = requests.request(method, url, data=b"{}", timeout=10)
        assert response.status_code == 405, method
        assert response.headers["Allow"] == "GET, HEAD"
    assert requests.get(f"{sim.url}/datasets/NOPE/stream", timeout=10).status_code == 404
    assert requests.get(f"{sim.url}/", timeout=10).status_code == 404


def test_head_answers_headers_only(sim: RunningSimulator) -> None:
    url = f"{sim.url}/balancing/settlement/system-prices/2025-06-02"
    head, full = requests.head(url, timeout=10), requests.get(url, timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == str(len(full.content))


# ---------------------------------------------------------------- faults

BOD_HOUR = ("/datasets/BOD/stream", {"from": "2025-06-02T10:00Z", "to": "2025-06-02T11:00Z"})


def faulty(
    simulator_factory: Start, spec: str, seed: int = 0
) -> tuple[RunningSimulator, RunningSimulator]:
    """A simulator with faults and a clean twin with the same seed."""
    return (
        simulator_factory(seed=seed, faults=spec, clock=lambda: LATER),
        simulator_factory(seed=seed, clock=lambda: LATER),
    )


def test_429_carries_retry_after(simulator_factory: Start) -> None:
    bad, _ = faulty(simulator_factory, "429=1")
    response = get(bad.url, *BOD_HOUR[:1], **BOD_HOUR[1])
    assert response.status_code == 429 and response.headers["Retry-After"] == "1"
    assert response.json()["statusCode"] == 429


def test_500(simulator_factory: Start) -> None:
    bad, _ = faulty(simulator_factory, "500=1")
    response = get(bad.url, BOD_HOUR[0], **BOD_HOUR[1])
    assert response.status_code == 500 and response.json()["status"] == 500


def test_slow_answers_late_and_latency_applies_to_all(simulator_factory: Start) -> None:
    slow = simulator_factory(faults="slow=1,slow_seconds=0.4")
    lagging = simulator_factory(latency_ms=200)
    for sim, least in ((slow, 0.4), (lagging, 0.2)):
        started = time.monotonic()
        assert get(sim.url, "/balancing/settlement/system-prices/2025-06-02").status_code == 200
        assert time.monotonic() - started >= least


def test_truncate_cuts_the_body_with_a_matching_content_length(simulator_factory: Start) -> None:
    bad, clean = faulty(simulator_factory, "truncate=1")
    cut = get(bad.url, BOD_HOUR[0], **BOD_HOUR[1])
    whole = get(clean.url, BOD_HOUR[0], **BOD_HOUR[1])
    assert cut.status_code == 200 and int(cut.headers["Content-Length"]) == len(cut.content)
    assert 0 < len(cut.content) < len(whole.content) and whole.content.startswith(cut.content)
    with pytest.raises(ValueError):
        cut.json()


def test_dup_repeats_rows_in_the_same_response(simulator_factory: Start) -> None:
    bad, clean = faulty(simulator_factory, "dup=1")
    doubled = get(bad.url, BOD_HOUR[0], **BOD_HOUR[1]).json()
    rows = get(clean.url, BOD_HOUR[0], **BOD_HOUR[1]).json()
    assert len(doubled) > len(rows)
    assert {orjson.dumps(r) for r in doubled} == {orjson.dumps(r) for r in rows}


@pytest.mark.parametrize("code", ["FUELINST", "MELS", "REMIT", "DISEBSP", "BOD"])
def test_revise_changes_values_and_bumps_the_version(simulator_factory: Start, code: str) -> None:
    dataset = catalog.get(code)
    bad, clean = faulty(simulator_factory, "revise=1")
    path, params = first_window(dataset)

    def rows(sim: RunningSimulator) -> dict[tuple[Any, ...], dict[str, Any]]:
        body = get(sim.url, path, **params).json()
        listed = body["data"] if isinstance(body, dict) else body
        return {
            tuple(
                row[k] for k in dataset.natural_key + ("revisionNumber",) * (code == "REMIT")
            ): row
            for row in listed
        }

    revised, original = rows(bad), rows(clean)
    if code == "REMIT":  # the revision is a new (mrid, revisionNumber) row
        changed = [row for key, row in revised.items() if key not in original]
        assert changed and all(row["revisionNumber"] > 1000 for row in changed)
        return
    assert revised.keys() == original.keys()
    changed = [key for key in original if revised[key] != original[key]]
    assert changed
    for key in changed:
        if dataset.version_field:
            assert revised[key][dataset.version_field] > original[key][dataset.version_field]
        new, old = revised[key], original[key]
        assert any(new[f] != old[f] for f in GENERATOR_CLASSES[code].value_fields)
        if code == "DISEBSP":
            assert new["systemSellPrice"] == new["systemBuyPrice"]


def test_outside_adds_rows_from_before_the_window(simulator_factory: Start) -> None:
    bad, clean = faulty(simulator_factory, "outside=1")
    extra = get(bad.url, BOD_HOUR[0], **BOD_HOUR[1]).json()
    rows = get(clean.url, BOD_HOUR[0], **BOD_HOUR[1]).json()
    strays = [r for r in extra if r["timeFrom"] < "2025-06-02T10:00:00Z"]
    assert strays and len(extra) == len(rows) + len(strays)


def test_poison_fails_every_request_touching_the_dataset_day(simulator_factory: Start) -> None:
    sim = simulator_factory(faults="poison=MID@2025-06-02+DISEBSP@2025-06-02", clock=lambda: LATER)
    for path, params in day_requests(catalog.get("MID"), DAY):
        for attempt in range(3):
            response = get(sim.url, path, **params)
            assert response.status_code == 400
            assert "MID" in response.text and "2025-06-02" in response.text
    assert get(sim.url, "/balancing/settlement/system-prices/2025-06-02").status_code == 400
    assert get(sim.url, "/balancing/settlement/system-prices/2025-06-03").status_code == 200
    assert fetch_day(sim.url, catalog.get("MID"), dt.date(2025, 6, 3))
    assert fetch_day(sim.url, catalog.get("FREQ"), DAY)
    # The day before, asked up to and including the poisoned day's first instant, still works.
    before = {"from": "2025-05-31T23:00Z", "to": "2025-06-01T23:00Z"}
    assert get(sim.url, "/datasets/MID/stream", **before).status_code == 200


def test_fault_draws_are_seeded_and_retries_draw_again(simulator_factory: Start) -> None:
    def statuses(sim: RunningSimulator) -> list[int]:
        return [
            get(sim.url, "/datasets/NETBSAD/stream", **BOD_HOUR[1]).status_code for _ in range(40)
        ]

    first = statuses(simulator_factory(seed=7, faults="429=0.5"))
    again = statuses(simulator_factory(seed=7, faults="429=0.5"))
    other = statuses(simulator_factory(seed=8, faults="429=0.5"))
    assert first == again != other
    assert set(first) == {200, 429}


def test_fault_spec_parser_round_trips_and_rejects_nonsense() -> None:
    text = "429=0.1,500=0.05,slow=0.05,truncate=0.02,dup=0.1,revise=0.05,outside=0.05,poison=BOD@2025-06-01+MID@2025-06-02"
    spec = parse_faults(text)
    assert spec.rate_limited == 0.1 and spec.poison == {
        ("BOD", dt.date(2025, 6, 1)),
        ("MID", dt.date(2025, 6, 2)),
    }
    assert parse_faults(str(spec)) == spec
    assert parse_faults("") == parse_faults(None) == FaultSpec()
    for bad in (
        "429=2",
        "explode=0.1",
        "dup",
        "poison=BOD",
        "poison=XYZ@2025-06-01",
        "poison=BOD@June",
        "slow=x",
    ):
        with pytest.raises(FaultSpecError) as error:
            parse_faults(bad)
        assert "\n" not in str(error.value)


def test_cli_rejects_a_bad_fault_spec_from_the_environment(bmrs_env: pytest.MonkeyPatch) -> None:
    bmrs_env.setenv("BMRS_SIM_FAULTS", "429=lots")
    result = CliRunner().invoke(main, ["sim", "--port", "0"])
    assert result.exit_code == 2
    assert "429=lots" in result.output and "probability" in result.output


# ---------------------------------------------------------------- determinism, logs, CLI


def test_same_seed_same_bytes_other_seed_other_data(simulator_factory: Start) -> None:
    one, two, other = (simulator_factory(seed=s, clock=lambda: LATER) for s in (3, 3, 4))
    for path, params in (
        BOD_HOUR,
        first_window(catalog.get("REMIT")),
        first_window(catalog.get("FUELINST")),
    ):
        assert get(one.url, path, **params).content == get(two.url, path, **params).content
        assert get(one.url, path, **params).content != get(other.url, path, **params).content


def test_access_log_has_one_json_line_per_request(simulator_factory: Start, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    sim = simulator_factory(access_log=log, clock=lambda: LATER)
    get(sim.url, "/datasets/MID/stream", **{"from": "2025-06-02T10:00Z", "to": "2025-06-02T11:00Z"})
    requests.post(f"{sim.url}/datasets/MID/stream", timeout=10)
    lines = access_lines(log, 2)
    assert [(entry["method"], entry["status"]) for entry in lines] == [("GET", 200), ("POST", 405)]
    assert (
        lines[0]["path"] == f"{BASE_PATH}/datasets/MID/stream"
        and "from=2025-06-02" in lines[0]["query"]
    )
    assert set(lines[0]) == {"time", "method", "path", "query", "status", "duration_ms"}
    assert dt.datetime.strptime(lines[0]["time"], "%Y-%m-%dT%H:%M:%S.%fZ")


def test_access_log_time_is_when_the_request_arrived_not_when_it_was_answered(
    simulator_factory: Start, tmp_path: Path
) -> None:
    # Request-rate checks read arrival times from this log: a slow answer must not shift them.
    log = tmp_path / "access.log"
    sim = simulator_factory(access_log=log, clock=lambda: LATER, latency_ms=1000)
    sent = dt.datetime.now(dt.UTC)
    get(sim.url, "/datasets/MID/stream", **{"from": "2025-06-02T10:00Z", "to": "2025-06-02T11:00Z"})
    (entry,) = access_lines(log, 1)
    logged = dt.datetime.fromisoformat(entry["time"])
    assert entry["duration_ms"] >= 1000
    # Logged at completion it would be >= 1 s after sending.
    assert -0.05 < (logged - sent).total_seconds() < 0.8, (sent, logged)


def test_bmrs_sim_command_serves(tmp_path: Path) -> None:
    port = free_port()
    bmrs = Path(sys.executable).with_name("bmrs")
    process = subprocess.Popen(
        [str(bmrs), "sim", "--port", str(port), "--scale", "0.01", "--seed", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = requests.get(
                    f"http://127.0.0.1:{port}/balancing/settlement/system-prices/2025-06-02",
                    timeout=5,
                )
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and process.poll() is None, (
                    "bmrs sim did not start"
                )
                time.sleep(0.1)
        assert response.status_code == 200 and len(response.json()["data"]) == 48
        # Reference data and the settlement family are served too.
        base = f"http://127.0.0.1:{port}"
        units = requests.get(f"{base}/reference/bmunits/all", timeout=5).json()
        assert units and {"nationalGridBmUnit", "fuelType", "bmUnitType"} <= set(units[0])
        stack = requests.get(
            f"{base}/balancing/settlement/stack/all/offer/2025-06-02/20", timeout=5
        ).json()
        assert stack["data"] and {r["settlementPeriod"] for r in stack["data"]} == {20}
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_bod_day_at_full_scale_is_served_in_hourly_windows_quickly(
    simulator_factory: Start,
) -> None:
    sim = simulator_factory(scale=1.0, clock=lambda: LATER)
    dataset = catalog.get("BOD")
    started = time.monotonic()
    keys = set()
    with requests.Session() as session:
        for path, params in day_requests(dataset, DAY):
            rows = session.get(sim.url + path, params=params, timeout=60).json()
            keys.update((r["bmUnit"], r["settlementPeriod"], r["pairId"]) for r in rows)
    elapsed = time.monotonic() - started
    assert 250_000 <= len(keys) <= 340_000
    assert elapsed < 30, f"a full BOD day took {elapsed:.1f} s"


# ---------------------------------------------------------------- independent conformance

# Every catalog endpoint, plus the non-stream twin of each stream endpoint.
CATALOG_PATHS = sorted(
    {d.endpoint for d in CALIBRATED}
    | {
        d.endpoint.removesuffix("/stream")
        for d in CALIBRATED
        if d.endpoint.endswith("/stream")
    }
)


# Every path the simulator serves: all of /datasets/*, the settlement family and reference
# data in the spec (a superset of the catalog's paths, whatever the catalog adds).
SERVED_PATHS = sorted(endpoint.path for endpoint in sim_spec.endpoints())


def test_served_paths_cover_the_catalog() -> None:
    every = {d.endpoint for d in catalog.DATASETS} | {
        d.endpoint.removesuffix("/stream") for d in catalog.DATASETS
    }
    assert every <= set(SERVED_PATHS)


@pytest.mark.parametrize(
    ("paths", "mode", "phases", "examples"),
    # The calibrated datasets' paths deeply: positive cases in every phase; invalid inputs by
    # fuzzing only (the coverage phase's negative cases take a minute and add little beyond
    # what fuzzing finds). Every served path (~180: every catalog dataset's and more)
    # shallowly, a couple of examples each, to keep the run to a minute or so.
    [
        ("calibrated", "positive", "examples,coverage,fuzzing", 5),
        ("calibrated", "negative", "fuzzing", 5),
        ("served", "positive", "examples,fuzzing", 2),
        ("served", "negative", "fuzzing", 2),
    ],
)
def test_schemathesis_finds_no_nonconforming_response(
    sim: RunningSimulator,
    tmp_path_factory: pytest.TempPathFactory,
    paths: str,
    mode: str,
    phases: str,
    examples: int,
) -> None:
    """Schemathesis, driven by Elexon's own spec, against the simulator's paths."""
    # Random windows span years where the spec states no limit: refuse big ones at once.
    sim.app.work_budget = 200_000
    # Hypothesis caches its unicode tables under the working directory; a fresh one costs
    # ~15 s per run, so keep it beside pytest's temp dirs, which outlive one session.
    workdir = tmp_path_factory.getbasetemp().parent / "schemathesis"
    workdir.mkdir(exist_ok=True)
    st = Path(sys.executable).with_name("st")
    selected = CATALOG_PATHS if paths == "calibrated" else SERVED_PATHS
    pattern = "^(" + "|".join(re.escape(path) for path in selected) + ")$"
    checks = "response_schema_conformance,status_code_conformance,content_type_conformance,not_a_server_error"
    result = subprocess.run(
        [
            str(st), "run", str(SPEC_PATH), "--url", sim.url + BASE_PATH,
            "--include-path-regex", pattern, "--checks", checks,
            "--mode", mode, "--phases", phases, "--max-examples", str(examples), "--seed", "1",
            "--workers", "8", "--generation-database", "none", "--no-color",
            "--request-timeout", "30",
        ],
        cwd=workdir, capture_output=True, text=True, timeout=170, check=False,
    )  # fmt: skip
    assert f"{len(selected)} selected" in result.stdout, result.stdout[-3000:]
    assert result.returncode == 0, result.stdout[-6000:]
