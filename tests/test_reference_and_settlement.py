"""Reference snapshots and the settlement family through the real client, end to end.

A small local HTTP endpoint stands in for Elexon (the boundary): it serves the real
``/reference/bmunits/all`` sample, real BOALF rows, and settlement answers shaped as the spec
says (``{data}`` per side of a ``{bidOffer}`` path, one object per summary period). Everything
after the socket is the production code: client, parser, pipeline, local warehouse and views.
"""

from __future__ import annotations

import copy
import datetime as dt
import http.server
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.local_http import QuietHandler, serving
from worker.elexon import catalog
from worker.elexon.client import ElexonClient
from worker.elexon.pipeline import ingest_chunk
from worker.sinks.local import LocalWarehouse

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "elexon" / "samples"
BMUNITS_SAMPLE = SAMPLES / "REFERENCE-BMUNITS__gridskew-bmunits_truncated.json"
BOALF_SAMPLE = SAMPLES / "BOALF__gridskew-boalf_stream.json"
DAY = dt.date(2026, 10, 5)


class Elexon:
    """Path -> JSON body; what the handler serves, changeable between fetches."""

    def __init__(self) -> None:
        self.bodies: dict[str, Any] = {}
        self.requests: list[str] = []


def _handler(elexon: Elexon) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            elexon.requests.append(self.path)
            if path not in elexon.bodies:
                self.reply(404)
                return
            self.reply(200, json.dumps(elexon.bodies[path]).encode(), "application/json")

    return Handler


@pytest.fixture
def elexon() -> Iterator[tuple[Elexon, ElexonClient]]:
    state = Elexon()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    with serving(server) as url:
        yield state, ElexonClient(url, retries=0, timeout_s=10)


def _bmunits_with(units: list[str]) -> list[dict[str, Any]]:
    """The real sample, plus one unit per BOALF unit (copies of a real row, renamed)."""
    rows = json.loads(BMUNITS_SAMPLE.read_text())
    battery = next(r for r in rows if r["nationalGridBmUnit"] == "ABERU-1")
    for unit in units:
        extra = copy.deepcopy(battery)
        extra.update(nationalGridBmUnit=unit, elexonBmUnit=f"T_{unit}", fuelType="PS")
        rows.append(extra)
    return rows


def test_bm_unit_reference_is_a_snapshot_that_boalf_joins(
    elexon: tuple[Elexon, ElexonClient], data_dir: Path
) -> None:
    state, client = elexon
    warehouse = LocalWarehouse(data_dir)
    boalf_rows = json.loads(BOALF_SAMPLE.read_text())
    units = sorted({r["nationalGridBmUnit"] for r in boalf_rows})
    state.bodies["/reference/bmunits/all"] = _bmunits_with(units)
    state.bodies["/datasets/BOALF/stream"] = boalf_rows
    bmunits = catalog.get("BMUNITS")

    first = ingest_chunk(client, warehouse, bmunits, DAY)  # any day: one snapshot partition
    assert (first.status, first.date, first.requests) == ("complete", catalog.SNAPSHOT_DAY, 1)
    total = len(state.bodies["/reference/bmunits/all"])
    assert warehouse.query("SELECT count(*) AS n FROM bmunits_latest").to_pylist() == [{"n": total}]

    boalf = ingest_chunk(client, warehouse, catalog.get("BOALF"), DAY)
    assert boalf.status == "complete" and boalf.rows > 0
    joined = warehouse.query(
        "SELECT b.nationalGridBmUnit AS unit, u.fuelType AS fuel, u.leadPartyName AS party "
        "FROM boalf b JOIN bmunits_latest u USING (nationalGridBmUnit)"
    ).to_pylist()
    assert len(joined) == boalf.rows and {r["fuel"] for r in joined} == {"PS"}

    # Fetched again unchanged: a no-op. One unit changes: one new version, the latest wins.
    again = ingest_chunk(client, warehouse, bmunits, DAY + dt.timedelta(days=1))
    assert again.rows == total and again.duplicates_dropped >= total
    changed = _bmunits_with(units)
    changed[0]["leadPartyName"] = "A New Owner Ltd"
    state.bodies["/reference/bmunits/all"] = changed
    ingest_chunk(client, warehouse, bmunits, DAY + dt.timedelta(days=2))
    assert warehouse.query("SELECT count(*) AS n FROM bmunits").to_pylist() == [{"n": total + 1}]
    latest = warehouse.query(
        "SELECT leadPartyName AS party FROM bmunits_latest WHERE nationalGridBmUnit = 'ABERU-1'"
    ).to_pylist()
    assert latest == [{"party": "A New Owner Ltd"}]


def test_a_list_of_names_is_one_column(elexon: tuple[Elexon, ElexonClient], data_dir: Path) -> None:
    state, client = elexon
    state.bodies["/reference/fueltypes/all"] = ["BIOMASS", "CCGT", "WIND"]
    warehouse = LocalWarehouse(data_dir)
    coverage = ingest_chunk(client, warehouse, catalog.get("FUELTYPES"), DAY)
    assert coverage.status == "complete"
    rows = warehouse.query('SELECT "fuelType" FROM fueltypes_latest ORDER BY 1').to_pylist()
    assert rows == [{"fuelType": "BIOMASS"}, {"fuelType": "CCGT"}, {"fuelType": "WIND"}]


def _cashflow(period: int, unit: str, total: float) -> dict[str, Any]:
    return {
        "settlementDate": DAY.isoformat(),
        "settlementPeriod": period,
        "startTime": "2026-10-04T23:00:00Z",
        "createdDateTime": "2026-10-06T09:00:00Z",
        "bmUnit": f"T_{unit}",
        "bmUnitType": "T",
        "leadPartyName": "Party",
        "nationalGridBmUnit": unit,
        "bidOfferPairCashflows": {"negative1": total, "positive1": None},
        "totalCashflow": total,
    }


def test_both_sides_of_a_bid_offer_path_are_one_dataset(
    elexon: tuple[Elexon, ElexonClient], data_dir: Path
) -> None:
    state, client = elexon
    base = "/balancing/settlement/indicative/cashflows/all"
    state.bodies[f"{base}/bid/{DAY}"] = {"data": [_cashflow(1, "LIONB-2", -120.5)]}
    state.bodies[f"{base}/offer/{DAY}"] = {"data": [_cashflow(1, "LIONB-2", 300.0)]}
    warehouse = LocalWarehouse(data_dir)
    coverage = ingest_chunk(client, warehouse, catalog.get("EBOCF"), DAY)
    assert (coverage.status, coverage.requests, coverage.rows) == ("complete", 2, 2)
    rows = warehouse.query(
        'SELECT "bidOffer", "totalCashflow", "bidOfferPairCashflows" FROM ebocf_latest ORDER BY 1'
    ).to_pylist()
    assert [(r["bidOffer"], r["totalCashflow"]) for r in rows] == [
        ("bid", -120.5),
        ("offer", 300.0),
    ]
    # A JSON object in a row is kept as its JSON text, keys sorted.
    assert json.loads(rows[0]["bidOfferPairCashflows"]) == {"negative1": -120.5, "positive1": None}


def test_a_summary_answer_is_one_row_per_period(
    elexon: tuple[Elexon, ElexonClient], data_dir: Path
) -> None:
    state, client = elexon
    day = dt.date(2026, 3, 29)  # 46 periods
    for period in range(1, 47):
        state.bodies[f"/balancing/settlement/summary/{day}/{period}"] = {
            "createdDateTime": "2026-03-30T09:00:00Z",
            "settlementDate": day.isoformat(),
            "settlementPeriod": period,
            "startTime": "2026-03-29T00:00:00Z",
            "adjuster": 0.0,
            "priceDerivationCode": "N",
            "systemSellPrice": 80.0,
            "systemBuyPrice": 80.0,
            "mainPrice": {"value": 80.0},
            "marketPrice": None,
        }
    warehouse = LocalWarehouse(data_dir)
    coverage = ingest_chunk(client, warehouse, catalog.get("SETTSUM"), day)
    assert (coverage.status, coverage.requests, coverage.rows) == ("complete", 46, 46)
    assert coverage.periods_present == coverage.periods_expected == 46


def test_a_snapshot_is_as_fresh_as_its_last_fetch(
    elexon: tuple[Elexon, ElexonClient], data_dir: Path
) -> None:
    from worker.cluster.freshness import newest_row

    state, client = elexon
    state.bodies["/reference/interconnectors/all"] = [
        {
            "interconnectorId": "I_IFA",
            "interconnectorName": "IFA",
            "interconnectorBiddingZone": "FR",
        }
    ]
    warehouse = LocalWarehouse(data_dir)
    dataset = catalog.get("INTERCONNECTORS")
    assert newest_row(warehouse, dataset) is None
    before = dt.datetime.now(dt.UTC)
    ingest_chunk(client, warehouse, dataset, DAY)
    newest = newest_row(warehouse, dataset)
    assert newest is not None and before <= newest <= dt.datetime.now(dt.UTC)


def test_gaps_and_the_sweep_see_a_snapshot_as_its_one_partition(
    elexon: tuple[Elexon, ElexonClient], bmrs_env: pytest.MonkeyPatch, data_dir: Path
) -> None:
    from click.testing import CliRunner

    from worker.cli import main
    from worker.cluster.sweep import due_chunks, refetch_reason, sweep

    def gaps() -> list[dict[str, Any]]:
        result = CliRunner().invoke(
            main,
            [
                "gaps",
                "--dataset",
                "BMUNITS",
                "--start",
                "2026-10-01",
                "--end",
                "2026-10-07",
                "--json",
            ],
        )
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    assert [(g["date"], g["status"]) for g in gaps()] == [("2000-01-01", "missing")]
    warehouse = LocalWarehouse(data_dir)
    bmunits = catalog.get("BMUNITS")
    assert [c.day for c in due_chunks(warehouse, [bmunits], DAY, DAY)] == [catalog.SNAPSHOT_DAY]
    state, client = elexon
    state.bodies["/reference/bmunits/all"] = _bmunits_with([])
    ingest_chunk(client, warehouse, bmunits, DAY)
    assert [(g["date"], g["status"]) for g in gaps()] == [("2000-01-01", "complete")]
    assert sweep(warehouse, [bmunits], dt.date.today(), 7) == []  # fetched today: nothing due
    # Fetched before today's start: the sweep refreshes it (reference data is daily).
    stored = warehouse.read_coverage(bmunits, [catalog.SNAPSHOT_DAY])[catalog.SNAPSHOT_DAY]
    stored.fetched_utc = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    assert refetch_reason(bmunits, stored) == "stale: reference snapshot, refreshed daily"
