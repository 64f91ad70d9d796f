"""Third-party Elexon clients against the simulator, as a user of the project would run them.

``uk-energy`` (PyPI, typed, only httpx beneath it) is run for real: its own request building,
parameter formats, envelope unwrapping and error handling meet the simulator. The other clients
tried (elexonpy, elexon-bmrs, elexonapi; see docs/third-party-clients.md) pull in pandas or
swagger/pydantic models and are not test dependencies: the exact requests they sent in that
run are replayed below instead, checked for status and envelope.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from uk_energy.core.errors import HttpError
from uk_energy.elexon import ElexonClient

from worker.elexon import spec as elexon_spec
from worker.elexon.client import is_range_refusal
from worker.sim.queries import REVERSED_WINDOW
from worker.sim.server import BASE_PATH, RunningSimulator, start_simulator, view_fields

DAY = "2025-06-10"  # BST: the settlement day is 2025-06-09T23:00Z .. 2025-06-10T23:00Z
DAY_FROM, DAY_TO = "2025-06-09T23:00Z", "2025-06-10T23:00Z"
LATER = dt.datetime(2025, 6, 20, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with start_simulator(seed=3, scale=0.05, clock=lambda: LATER) as running:
        yield running


@pytest.fixture(scope="module")
def client(sim: RunningSimulator) -> Iterator[ElexonClient]:
    with ElexonClient(base_url=sim.url + BASE_PATH) as elexon:
        yield elexon


def test_fuelinst_publish_window_counts_both_ends(client: ElexonClient) -> None:
    # uk-energy's live fixture: 00:00Z-00:30Z gives 7 publish times x 20 fuels.
    rows = client.datasets_fuelinst(
        publish_from="2025-06-10T00:00Z", publish_to="2025-06-10T00:30Z"
    )
    assert len(rows) == 140
    by_day = client.datasets_fuelinst(
        settlement_date_from=DAY,
        settlement_date_to=DAY,
        settlement_period=[1, 2],
        fuel_type=["WIND"],
    )
    assert {(r["settlementPeriod"], r["fuelType"]) for r in by_day} == {(1, "WIND"), (2, "WIND")}


def test_whole_day_windows_in_one_request(client: ElexonClient) -> None:
    """BOD and BOALF for a whole day, as these clients ask, answer 200 with the day's rows."""
    bod = client.datasets_bod(DAY_FROM, DAY_TO)
    assert bod and all(DAY_FROM[:10] <= r["timeFrom"][:10] <= DAY for r in bod)
    boalf = client.datasets_boalf(DAY, DAY, settlement_period_from=1, settlement_period_to=48)
    assert boalf
    assert {r["settlementDate"] for r in boalf} <= {DAY, "2025-06-09"}  # spans midnight
    # A week, to the last period's start ("to" is inclusive: 23:00Z would add the next day).
    pn_week = client.datasets_pn_stream("2025-06-03T23:00Z", "2025-06-10T22:30Z")
    assert {r["settlementDate"] for r in pn_week} == {f"2025-06-{d:02d}" for d in range(4, 11)}


def test_per_period_and_window_views(client: ElexonClient) -> None:
    pn = client.datasets_pn(DAY, 20)
    assert pn and {r["settlementPeriod"] for r in pn} == {20}
    assert client.datasets_mels("2025-06-10T10:00Z", "2025-06-10T11:00Z")
    assert client.datasets_mils("2025-06-10T10:00Z", "2025-06-10T11:00Z")
    prices = client.balancing_system_prices(DAY)
    assert len(prices) == 48 and prices[0]["startTime"] == "2025-06-09T23:00:00Z"
    assert [r["settlementPeriod"] for r in client.balancing_system_prices(DAY, 20)] == [20]
    mid = client.balancing_market_index(
        DAY, DAY, settlement_period_from=1, settlement_period_to=48, data_providers=["APXMIDP"]
    )
    assert mid and {r["dataProvider"] for r in mid} == {"APXMIDP"}
    assert {r["settlementDate"] for r in mid} == {DAY}
    acceptances = client.balancing_acceptances(DAY, 20)
    assert acceptances and all(
        r["settlementPeriodFrom"] <= 20 <= r["settlementPeriodTo"] for r in acceptances
    )
    assert {r["settlementPeriod"] for r in client.balancing_bid_offers(DAY, 20)} == {20}


@pytest.mark.parametrize(
    ("code", "query"),
    [
        ("REMIT", {"publishDateTimeFrom": DAY_FROM, "publishDateTimeTo": DAY_TO}),
        ("INDGEN", {"publishDateTimeFrom": DAY_FROM, "publishDateTimeTo": DAY_TO}),
        ("NDF", {"publishDateTimeFrom": DAY_FROM, "publishDateTimeTo": DAY_TO}),
        ("WINDFOR", {"publishDateTimeFrom": DAY_FROM, "publishDateTimeTo": DAY_TO}),
        ("DISBSAD", {"from": "2025-05-10T00:00Z", "to": "2025-06-10T00:00Z"}),  # a month
        ("B1610", {"from": DAY_FROM, "to": DAY_TO}),
        (
            "FREQ",
            {
                "measurementDateTimeFrom": "2025-06-10T00:00Z",
                "measurementDateTimeTo": "2025-06-10T01:00Z",
            },
        ),
    ],
)
def test_any_stream_with_raw_parameters(
    client: ElexonClient, code: str, query: dict[str, str]
) -> None:
    rows = client.datasets_stream(code, query)
    assert rows and {r.get("dataset", code) for r in rows} == {code}


@pytest.mark.parametrize("code", ["PN", "QPN", "MELS", "MILS"])
def test_physical_all_is_one_period_of_the_dataset(
    client: ElexonClient, sim: RunningSimulator, code: str
) -> None:
    rows = client.balancing_physical(code, DAY, 20)  # type: ignore[arg-type]
    assert rows and {(r["dataset"], r["settlementPeriod"]) for r in rows} == {(code, 20)}
    same = httpx.get(
        f"{sim.url}{BASE_PATH}/datasets/{code}/stream",
        params={"from": DAY, "to": DAY, "settlementPeriodFrom": 20, "settlementPeriodTo": 20},
    ).json()
    assert sorted(map(str, rows)) == sorted(map(str, project(same, "/balancing/physical/all")))


def project(rows: list[dict[str, Any]], path: str) -> list[dict[str, Any]]:
    """Dataset rows cut to the fields a view's schema allows (as the simulator answers)."""
    fields = view_fields(path)
    if fields is None:
        return rows
    return [{name: row[name] for name in fields if name in row} for row in rows]


def test_reference_and_settlement_joins(client: ElexonClient) -> None:
    units = client.reference_bm_units()
    assert units and client.reference_units(fuel_type=["WIND"])
    assert client.reference_fuel_types()
    assert client.balancing_settlement_stack("bid", DAY, 20)
    assert client.balancing_acceptance_volumes("bid", DAY)
    assert client.balancing_cashflows("offer", DAY)


def test_reversed_window_is_the_real_apis_400(client: ElexonClient) -> None:
    with pytest.raises(HttpError) as caught:
        client.datasets_boalf("2025-06-10T01:00Z", "2025-06-10T00:00Z")
    assert caught.value.status == 400
    assert caught.value.body["errors"] == {"": [REVERSED_WINDOW]}
    # About order, not size: the project's client must not halve its window for it.
    assert not is_range_refusal(400, REVERSED_WINDOW)


# Exact requests elexonpy 1.0.16, elexon-bmrs 0.3.0 and elexonapi 0.1.4 sent in the recorded
# run (docs/third-party-clients.md), with the envelope each client unwraps: "list" a bare
# array, "data" an object with a "data" array.
REPLAYED: list[tuple[str, dict[str, Any], str]] = [
    (
        "/datasets/FUELINST",
        {"settlementDateFrom": DAY, "settlementDateTo": DAY, "format": "json"},
        "data",
    ),
    (
        "/datasets/FREQ",
        {
            "measurementDateTimeFrom": "2025-06-10T00:00Z",
            "measurementDateTimeTo": "2025-06-10T01:00Z",
            "format": "json",
        },
        "data",
    ),
    ("/datasets/MID", {"from": DAY_FROM, "to": DAY_TO, "format": "json"}, "data"),
    ("/datasets/BOD", {"from": DAY_FROM, "to": DAY_TO, "format": "json"}, "data"),
    (
        "/datasets/BOALF/stream",
        {
            "from": "2025-06-10T00:00:00Z",
            "to": "2025-06-11T00:00:00Z",
            "settlementPeriodFrom": 1,
            "settlementPeriodTo": 2,
        },
        "list",
    ),
    ("/datasets/PN", {"settlementDate": DAY, "settlementPeriod": 20, "format": "json"}, "data"),
    (
        "/datasets/MILS",
        {"from": "2025-06-10T10:00:00Z", "to": "2025-06-10T11:00:00Z", "format": "json"},
        "data",
    ),
    (
        "/datasets/DISBSAD",
        {"from": "2025-05-10T00:00Z", "to": "2025-06-10T00:00Z", "format": "json"},
        "data",
    ),
    (
        "/datasets/REMIT",
        {"publishDateTimeFrom": DAY_FROM, "publishDateTimeTo": DAY_TO, "format": "json"},
        "data",
    ),
    # elexonapi sends offsets as pandas prints them.
    (
        "/datasets/INDGEN",
        {
            "publishDateTimeFrom": "2025-06-09T23:00:00+00:00",
            "publishDateTimeTo": "2025-06-10T23:00:00+00:00",
        },
        "data",
    ),
    ("/datasets/B1610", {"settlementDate": DAY, "settlementPeriod": 20, "format": "json"}, "data"),
    ("/balancing/settlement/system-prices/" + DAY, {"format": "json"}, "data"),
    ("/balancing/pricing/market-index", {"from": DAY_FROM, "to": DAY_TO, "format": "json"}, "data"),
    ("/balancing/acceptances/all", {"settlementDate": DAY, "settlementPeriod": 20}, "data"),
    (
        "/balancing/physical/all",
        {"dataset": "PN", "settlementDate": DAY, "settlementPeriod": 20, "format": "json"},
        "data",
    ),
    (
        "/balancing/nonbm/disbsad/details",
        {"settlementDate": DAY, "settlementPeriod": 40, "format": "json"},
        "data",
    ),
    ("/balancing/nonbm/disbsad/summary", {"from": "2025-06-09", "to": "2025-06-10"}, "data"),
    ("/reference/bmunits/all", {}, "list"),
]


@pytest.mark.parametrize(("path", "query", "envelope"), REPLAYED, ids=[p for p, _, _ in REPLAYED])
def test_replayed_client_requests(
    sim: RunningSimulator, path: str, query: dict[str, Any], envelope: str
) -> None:
    # The swagger clients send their user agent and JSON accept header; no API key.
    response = httpx.get(
        f"{sim.url}{BASE_PATH}{path}?{urlencode(query)}",
        headers={"Accept": "application/json", "User-Agent": "Swagger-Codegen/1.0.0/python"},
        timeout=60,
    )
    assert response.status_code == 200, response.text[:500]
    body = response.json()
    rows = body if envelope == "list" else body["data"]
    assert isinstance(rows, list) and rows, f"{path}: no rows"


@pytest.mark.parametrize(
    ("path", "code"), [("/balancing/bid-offer", "BOD"), ("/balancing/acceptances", "BOALF")]
)
def test_one_units_view_as_elexonapi_asks(sim: RunningSimulator, path: str, code: str) -> None:
    """elexonapi 0.1.4 resolves "BOD"/"BOALF" to these per-unit paths and sends date-only
    from/to; the answer is that unit's rows of the dataset, in the {metadata, data} envelope."""
    window = {"from": "2025-06-09", "to": "2025-06-10"}
    everyone = httpx.get(f"{sim.url}{BASE_PATH}/datasets/{code}/stream", params=window).json()
    unit = everyone[0]["bmUnit"]
    response = httpx.get(f"{sim.url}{BASE_PATH}{path}", params={"bmUnit": unit, **window})
    assert response.status_code == 200, response.text[:300]
    body = response.json()
    assert body["metadata"] == {"datasets": [code]}
    assert body["data"] == project([row for row in everyone if row["bmUnit"] == unit], path)
    missing = httpx.get(f"{sim.url}{BASE_PATH}{path}", params=window)
    assert missing.status_code == 400 and "bmUnit" in missing.json()["errors"]


def conforms(path: str, body: Any) -> list[str]:
    """Where a body breaks the spec's 200 schema for the path (empty when it conforms)."""
    document = elexon_spec.load()
    schema = document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
    validator = OAS30Validator(
        {**schema["schema"], "components": document["components"]},
        format_checker=oas30_format_checker,
    )
    return [error.message for error in validator.iter_errors(body)][:3]


def test_hand_routed_views_conform_to_the_spec(sim: RunningSimulator) -> None:
    """The paths answered from calibrated rows (not by the generic layer, so not in the
    schemathesis run) against the spec's own response schema."""
    base = f"{sim.url}{BASE_PATH}"
    unit = httpx.get(f"{base}/datasets/BOD/stream", params={"from": DAY, "to": DAY}).json()[0]
    window = {"from": DAY_FROM, "to": DAY_TO, "bmUnit": unit["bmUnit"]}
    for path, params in [
        *(
            (
                "/balancing/physical/all",
                {"dataset": code, "settlementDate": DAY, "settlementPeriod": 20},
            )
            for code in ("PN", "QPN", "MELS", "MILS")
        ),
        ("/balancing/bid-offer", window),
        ("/balancing/acceptances", window),
    ]:
        body = httpx.get(base + path, params=params).json()
        assert body["data"], (path, params)
        assert not conforms(path, body), (path, params, conforms(path, body))
