"""The dashboard model, computed from real warehouses: numbers asserted, gaps shown as gaps."""

from __future__ import annotations

import datetime as dt
import shutil
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest

from sheets.model import (
    BALANCING,
    DATA,
    GENERATION,
    HEALTH,
    OUTAGES,
    OVERVIEW,
    Dashboard,
    acceptance_volumes,
    build,
)
from sheets.queries import gather, window_periods
from tests.support.fake_bigquery import DATASET, LOCATION, PROJECT, FakeBigQuery
from worker.elexon import catalog
from worker.elexon.client import ElexonClient
from worker.elexon.coverage import judge
from worker.elexon.parse import parse_rows
from worker.elexon.pipeline import ingest_chunk
from worker.elexon.settlement import UTC, period_of
from worker.sim.server import BASE_PATH
from worker.sinks.base import Sink
from worker.sinks.bigquery import BigQueryWarehouse, Location
from worker.sinks.local import LocalWarehouse

NOW = dt.datetime(2025, 11, 2, 18, 7, tzinfo=UTC)  # GMT: London time equals UTC
TODAY, SETTLED = dt.date(2025, 11, 2), dt.date(2025, 11, 1)


def ts(day: dt.date, hh: int, mm: int = 0) -> str:
    return dt.datetime.combine(day, dt.time(hh, mm), tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def store(sink: Sink, code: str, rows: list[dict[str, Any]],
          ingested: dt.datetime = NOW) -> None:
    """Load rows as the pipeline would: per dataset-day, under its lock, with coverage."""
    dataset = catalog.get(code)
    table = parse_rows(dataset, rows, ingested_utc=ingested).table
    for day in pc.unique(table.column("_day")).to_pylist():
        part = table.filter(pc.equal(table.column("_day"), day))
        with sink.chunk_lock(dataset, day):
            result = sink.load_chunk(dataset, day, part)
            sink.write_coverage(judge(dataset, day, result.stored, duplicates_dropped=0,
                                      requests=1, outside_window=0, fetched_utc=ingested))


def fuel_row(day: dt.date, hh: int, mm: int, fuel: str, mw: int, published: str | None = None
             ) -> dict[str, Any]:
    start = ts(day, hh, mm)
    _, period = period_of(dt.datetime.fromisoformat(start))
    return {"publishTime": published or start, "startTime": start,
            "settlementDate": day.isoformat(), "settlementPeriod": period,
            "fuelType": fuel, "generation": mw}


def remit_row(mrid: str, revision: int, published: str, unavailable: float, *, status="Active",
              start: str, end: str | None, normal: float = 1000.0) -> dict[str, Any]:
    return {"mrid": mrid, "revisionNumber": revision, "publishTime": published,
            "createdTime": published, "messageType": "UnavailabilitiesOfElectricityFacilities",
            "eventType": "Production unavailability", "unavailabilityType": "Planned",
            "assetId": f"T_{mrid}", "affectedUnit": mrid, "fuelType": "Nuclear",
            "normalCapacity": normal, "availableCapacity": normal - unavailable,
            "unavailableCapacity": unavailable, "eventStatus": status, "eventStartTime": start,
            "eventEndTime": end, "cause": "Planned maintenance", "outageProfile": []}


@pytest.fixture
def known_warehouse(data_dir: Path) -> LocalWarehouse:
    """A warehouse holding hand-made rows whose dashboard numbers are known in advance."""
    return fill_known(LocalWarehouse(data_dir))


def fill_known(sink: Sink) -> Sink:
    fuel: list[dict[str, Any]] = []
    # SP 36 (17:30-18:00): six 5-minute samples. WIND's mean is 1250 MW; their sum would be 7500.
    for i, wind in enumerate((1000, 1100, 1200, 1300, 1400, 1500)):
        minute = 30 + 5 * i
        fuel += [fuel_row(TODAY, 17, minute, "WIND", wind, ts(TODAY, 18, 4)),
                 fuel_row(TODAY, 17, minute, "CCGT", 10000),
                 fuel_row(TODAY, 17, minute, "INTFR", 600),
                 fuel_row(TODAY, 17, minute, "INTIRL", -200)]
    # SP 37 is in progress at 18:07: two samples so far.
    for minute, wind in ((0, 2000), (5, 2200)):
        fuel += [fuel_row(TODAY, 18, minute, "WIND", wind),
                 fuel_row(TODAY, 18, minute, "CCGT", 9000),
                 fuel_row(TODAY, 18, minute, "INTFR", 500),
                 fuel_row(TODAY, 18, minute, "INTIRL", -100)]
    # An earlier publication of the 17:30 WIND sample, superseded by the one above.
    store(sink, "FUELINST", [fuel_row(TODAY, 17, 30, "WIND", 4000, ts(TODAY, 17, 35))])
    store(sink, "FUELINST", fuel)

    def mid(period: int, provider: str, price: float, volume: float) -> dict[str, Any]:
        return {"startTime": ts(TODAY, (period - 1) // 2, 30 * ((period - 1) % 2)),
                "dataProvider": provider, "settlementDate": TODAY.isoformat(),
                "settlementPeriod": period, "price": price, "volume": volume}

    store(sink, "MID", [
        mid(34, "N2EXMIDP", 70.0, 900.0),
        mid(35, "APXMIDP", 95.0, 10.0),  # APX only: the index has no N2EX price for SP 35
        mid(36, "N2EXMIDP", 80.5, 1000.0), mid(36, "APXMIDP", 0.0, 0.0),
        # SP 37 (18:00-18:30) has not ended at 18:07: its index is not published yet.
        mid(37, "N2EXMIDP", 90.25, 800.0), mid(37, "APXMIDP", 0.0, 0.0),
    ])

    def price(day: dt.date, period: int, value: float) -> dict[str, Any]:
        start = dt.datetime.fromisoformat(ts(day, (period - 1) // 2, 30 * ((period - 1) % 2)))
        created = start + dt.timedelta(minutes=35)  # published 5 minutes after the period
        return {"settlementDate": day.isoformat(), "settlementPeriod": period,
                "startTime": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "createdDateTime": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "systemSellPrice": value,
                # One single price since P305; NIV: 10 MWh per period number, minus 200.
                "systemBuyPrice": value, "netImbalanceVolume": 10.0 * period - 200,
                "totalAcceptedOfferVolume": 10.0,
                "totalAcceptedBidVolume": -4.0}

    store(sink, "DISEBSP", [price(SETTLED, p, float(p)) for p in range(1, 49)]
          + [price(TODAY, p, 100.0 + p) for p in range(1, 37) if p != 20])

    def segment(unit: str, number: int, start: str, end: str, level_from: int, level_to: int
                ) -> dict[str, Any]:
        return {"settlementDate": SETTLED.isoformat(), "settlementPeriodFrom": 21,
                "settlementPeriodTo": 22, "timeFrom": start, "timeTo": end,
                "levelFrom": level_from, "levelTo": level_to, "acceptanceNumber": number,
                "acceptanceTime": start, "deemedBoFlag": False, "soFlag": False,
                "amendmentFlag": "ORI", "storFlag": False, "rrFlag": False,
                "nationalGridBmUnit": unit, "bmUnit": f"T_{unit}"}

    store(sink, "BOALF", [
        segment("UNITX", 1, ts(SETTLED, 10), ts(SETTLED, 10, 30), 0, 100),  # 25 MWh
        segment("UNITX", 1, ts(SETTLED, 10, 30), ts(SETTLED, 11), 100, 100),  # 50 MWh
        segment("UNITY", 2, ts(SETTLED, 12), ts(SETTLED, 12, 30), -200, -200),  # -100 MWh
        segment("UNITZ", 3, ts(SETTLED, 13), ts(SETTLED, 14), 100, -100),  # +25 and -25 MWh
    ])
    store(sink, "DISBSAD", [
        {"settlementDate": SETTLED.isoformat(), "settlementPeriod": 5, "id": i, "cost": cost,
         "volume": volume, "soFlag": True}
        for i, (cost, volume) in enumerate(((1000.0, 10.0), (None, -5.0), (500.0, 20.0)))
    ])
    store(sink, "REMIT", [
        remit_row("A", 1, ts(SETTLED, 10), 600.0, start=ts(SETTLED, 12), end=ts(TODAY, 23)),
        remit_row("A", 2, ts(TODAY, 9), 300.0, start=ts(SETTLED, 12), end=ts(TODAY, 23)),
        remit_row("B", 1, ts(SETTLED, 10), 700.0, start=ts(SETTLED, 12), end=None),
        remit_row("B", 2, ts(TODAY, 9), 700.0, status="Dismissed", start=ts(SETTLED, 12),
                  end=None),
        remit_row("C", 1, ts(SETTLED, 11), 40.0, start=ts(SETTLED, 12), end=None),
        remit_row("D", 1, ts(SETTLED, 11), 900.0, start=ts(SETTLED, 12), end=ts(TODAY, 12)),
        remit_row("E", 1, ts(TODAY, 11), 800.0, start=ts(TODAY, 23), end=None),
        remit_row("F", 1, ts(TODAY, 11), 55.0, start=ts(TODAY, 12), end=None, normal=400.0),
    ])
    return sink


def row_of(dashboard: Dashboard, tab: str, label: str) -> list[Any]:
    row, _ = dashboard.find(tab, label)
    t = dashboard.tab(tab)
    return [t.cell(row, c) for c in range(t.cols)]


def data_cell(dashboard: Dashboard, period: tuple[dt.date, int], header: str) -> Any:
    tab = dashboard.tab(DATA)
    col = next(c for c in range(tab.cols) if tab.cell(0, c).value == header)
    row = 1 + window_periods(NOW).index(period)
    return tab.cell(row, col)


def test_window_is_the_48_periods_ending_now_across_a_clock_change() -> None:
    window = window_periods(NOW)
    assert len(window) == 48 and window[-1] == (TODAY, 37) and window[0] == (SETTLED, 38)
    # 2025-10-26 has 50 periods: period 2 of the 27th reaches back into its 49th and 50th.
    after_change = window_periods(dt.datetime(2025, 10, 27, 0, 40, tzinfo=UTC))
    assert after_change[-1] == (dt.date(2025, 10, 27), 2)
    assert after_change[-3:-1] == ((dt.date(2025, 10, 26), 50), (dt.date(2025, 10, 27), 1))


def test_fuelinst_samples_are_averaged_per_period_never_summed(known_warehouse) -> None:
    dashboard = build(gather(known_warehouse, NOW))
    sp36, sp37 = (TODAY, 36), (TODAY, 37)
    # Latest revision of the 17:30 WIND sample (1000, not 4000) enters a mean of six samples.
    assert data_cell(dashboard, sp36, "Wind (GW)").value == pytest.approx(1.25)
    assert data_cell(dashboard, sp36, "Total generation (GW)").value == pytest.approx(11.25)
    assert data_cell(dashboard, sp36, "Net interconnector imports (GW)").value == pytest.approx(0.4)
    assert data_cell(dashboard, sp36, "Transmission demand (GW)").value == pytest.approx(11.65)
    assert data_cell(dashboard, sp37, "Total generation (GW)").value == pytest.approx(11.1)
    total = row_of(dashboard, OVERVIEW, "Total generation")
    assert total[1].value == pytest.approx(11.1) and total[3].value == "2025-11-02 SP 37"
    assert total[4].sparkline == "generation"
    demand = row_of(dashboard, OVERVIEW, "Transmission demand")
    assert demand[1].value == pytest.approx(11.5) and "Embedded" in demand[0].note
    # The mix shows the latest period, flags it as partial, and shares sum to one.
    mix = dashboard.tab(GENERATION)
    assert "2 of 6" in (mix.cell(1, 0).note or "")
    wind = row_of(dashboard, GENERATION, "Wind")
    assert wind[1].value == pytest.approx(2.1) and wind[2].value == pytest.approx(2100 / 11100)
    assert wind[4].bar
    ifa = row_of(dashboard, GENERATION, "IFA (France)")
    moyle = row_of(dashboard, GENERATION, "Moyle (N. Ireland)")
    assert (ifa[1].value, ifa[2].value) == (500, "import")
    assert (moyle[1].value, moyle[2].value) == (-100, "export")
    assert row_of(dashboard, GENERATION, "Net imports")[1].value == 400


def test_market_index_is_n2ex_only_and_missing_periods_stay_blank(known_warehouse) -> None:
    dashboard = build(gather(known_warehouse, NOW))
    header = "Market index price (N2EX) (£/MWh)"
    assert data_cell(dashboard, (TODAY, 36), header).value == 80.5
    apx_only = data_cell(dashboard, (TODAY, 35), header)
    assert apx_only.value is None and "N2EXMIDP" in apx_only.note
    # SP 37 is under way at 18:07: its index is not published until the period has ended.
    assert data_cell(dashboard, (TODAY, 37), header).value is None
    kpi = row_of(dashboard, OVERVIEW, "Market index price (N2EX)")
    assert (kpi[1].value, kpi[3].value) == (80.5, "2025-11-02 SP 36")
    assert (kpi[5].value, kpi[6].value) == (70.0, 80.5)  # APX's zeros never reach the range


def test_missing_data_is_blank_with_a_note_never_a_default(known_warehouse) -> None:
    dashboard = build(gather(known_warehouse, NOW))
    gap = data_cell(dashboard, (TODAY, 20), "Imbalance price (SSP = SBP) (£/MWh)")
    assert gap.value is None and gap.note == "no DISEBSP row for 2025-11-02 SP 20"
    assert row_of(dashboard, OVERVIEW, "Imbalance price (SSP = SBP)")[1].value == 136.0
    # No FREQ at all: no 50 Hz, a blank that says why, and a header warning.
    freq = row_of(dashboard, OVERVIEW, "Frequency (latest sample)")
    assert freq[1].value is None and "no FREQ sample" in freq[1].note
    assert freq[4].sparkline is None and freq[4].note
    assert all(data_cell(dashboard, p, "Frequency (period mean) (Hz)").value is None
               for p in window_periods(NOW))
    status = dashboard.tab(OVERVIEW).cell(4, 0)
    assert status.style == "warning" and "No FREQ data" in status.value
    assert "FUELINST" not in status.value  # its newest sample is 2 minutes old
    assert dashboard.tab(OVERVIEW).cell(5, 0).value == "IRIS last message: no IRIS data"
    health = row_of(dashboard, HEALTH, "FREQ")
    assert health[1].value is None and health[3].value == "no data"
    assert health[9].value == "no IRIS data"


def test_balancing_volumes_costs_and_price_range_of_the_settled_day(known_warehouse) -> None:
    dashboard = build(gather(known_warehouse, NOW))
    assert row_of(dashboard, BALANCING, "Accepted offer volume (BOALF)")[1].value == \
        pytest.approx(100.0)
    assert row_of(dashboard, BALANCING, "Accepted bid volume (BOALF)")[1].value == \
        pytest.approx(-125.0)
    assert row_of(dashboard, BALANCING, "Acceptances (BOALF)")[1].value == 3
    assert row_of(dashboard, BALANCING, "BM units accepted")[1].value == 3
    cost = row_of(dashboard, BALANCING, "Balancing services cost (DISBSAD)")
    assert cost[1].value == 1500.0 and cost[3].value == "GBP"
    assert cost[1].note == "1 of 3 actions have no published cost; the sum covers the others"
    assert row_of(dashboard, BALANCING, "Balancing services volume (DISBSAD)")[1].value == 25.0
    assert row_of(dashboard, BALANCING, "Accepted offer volume (settlement)")[1].value == 480.0


def test_acceptance_volume_splits_a_segment_where_it_crosses_zero() -> None:
    t0 = dt.datetime(2025, 11, 1, 13, tzinfo=UTC)
    segment = {"timeFrom": t0, "timeTo": t0 + dt.timedelta(hours=1), "levelFrom": 300,
               "levelTo": -100}
    offers, bids = acceptance_volumes([segment])
    # Crosses zero after 45 minutes: 300 MW x 0.75 h / 2 above, -100 MW x 0.25 h / 2 below.
    assert (offers, bids) == (pytest.approx(112.5), pytest.approx(-12.5))


def test_outages_are_active_latest_revisions_over_50_mw(known_warehouse) -> None:
    dashboard = build(gather(known_warehouse, NOW))
    tab = dashboard.tab(OUTAGES)
    assets = [tab.cell(r, 0).value for r in range(4, tab.rows) if tab.cell(r, 0).value]
    assert assets == ["T_A", "T_F"]  # B dismissed, C under 50 MW, D ended, E not started
    a, f = row_of(dashboard, OUTAGES, "T_A"), row_of(dashboard, OUTAGES, "T_F")
    assert (a[3].value, a[9].value) == (300.0, 2)  # revision 2, not revision 1's 600 MW
    assert f[8].value is None and f[8].note == "no end time published"
    assert tab.cell(1, 0).style == "warning" and "2 of the last 90 days" in tab.cell(1, 0).value


def test_simulated_warehouse_matches_the_raw_rows_and_shows_a_deleted_day_as_a_gap(
    data_dir: Path, simulator_factory
) -> None:
    sim = simulator_factory(clock=lambda: NOW)
    client = ElexonClient(sim.url + BASE_PATH, retries=2)
    sink = LocalWarehouse(data_dir)
    for code in ("FUELINST", "MID", "DISEBSP", "FREQ"):
        for day in (SETTLED, TODAY):
            assert ingest_chunk(client, sink, catalog.get(code), day).rows > 0
    dashboard = build(gather(sink, NOW))

    # Independent arithmetic on the stored rows: mean per (period, fuel), then sum the fuels.
    samples: dict[tuple[tuple[dt.date, int], str], list[int]] = defaultdict(list)
    for day in (SETTLED, TODAY):
        for row in sink.read_day(catalog.get("FUELINST"), day).to_pylist():
            if row["publishTime"] > NOW:
                continue  # published after the dashboard's time: not shown
            samples[((row["settlementDate"], row["settlementPeriod"]), row["fuelType"])].append(
                row["generation"])
    mids = {(r["settlementDate"], r["settlementPeriod"]): r["price"]
            for day in (SETTLED, TODAY)
            for r in sink.read_day(catalog.get("MID"), day).to_pylist()
            if r["dataProvider"] == "N2EXMIDP"
            and r["startTime"] + dt.timedelta(minutes=30) <= NOW}  # published once it ended
    assert any(r["dataProvider"] == "APXMIDP" and r["price"] == 0
               for r in sink.read_day(catalog.get("MID"), TODAY).to_pylist())
    for period in window_periods(NOW):
        plants = [statistics.fmean(v) for (p, fuel), v in samples.items()
                  if p == period and not fuel.startswith("INT")]
        wind = statistics.fmean(samples[(period, "WIND")])
        assert data_cell(dashboard, period, "Total generation (GW)").value == \
            pytest.approx(sum(plants) / 1000)
        assert data_cell(dashboard, period, "Wind (GW)").value == pytest.approx(wind / 1000)
        assert data_cell(dashboard, period, "Market index price (N2EX) (£/MWh)").value == \
            mids.get(period)

    # Delete a stored day: its periods become blanks with notes, and health counts the gap.
    shutil.rmtree(sink.day_dir(catalog.get("FUELINST"), SETTLED))
    gapped = build(gather(sink, NOW))
    cell = data_cell(gapped, (SETTLED, 40), "Total generation (GW)")
    assert cell.value is None and cell.note == "no FUELINST sample for 2025-11-01 SP 40"
    assert data_cell(gapped, (TODAY, 1), "Total generation (GW)").value is not None
    health = row_of(gapped, HEALTH, "FUELINST")
    assert health[6].value == 7 and "2025-11-01: missing" in health[6].note
    assert row_of(dashboard, HEALTH, "FUELINST")[6].value == 6


def test_bigquery_sink_gives_the_same_dashboard(
    known_warehouse: LocalWarehouse, fake_bigquery: FakeBigQuery
) -> None:
    """The same rows in BigQuery (the real client against a local REST API that runs the
    GoogleSQL it receives) give the same dashboard, cell for cell."""
    remote = BigQueryWarehouse(fake_bigquery.client(), Location(PROJECT, DATASET, LOCATION),
                               retry_initial_s=0.05)
    remote.check_dataset()
    fill_known(remote)
    expected, got = build(gather(known_warehouse, NOW)), build(gather(remote, NOW))
    assert [t.name for t in got.tabs] == [t.name for t in expected.tabs]
    for mine, theirs in zip(expected.tabs, got.tabs, strict=True):
        assert theirs.cells.keys() == mine.cells.keys(), mine.name
        for key, cell in mine.cells.items():
            other = theirs.cells[key]
            if isinstance(cell.value, float):
                assert other.value == pytest.approx(cell.value), (mine.name, key)
            else:
                assert other.value == cell.value, (mine.name, key)
            assert (other.note, other.style, other.sparkline) == (cell.note, cell.style,
                                                                  cell.sparkline)
    queries = [r for r in fake_bigquery.requests if "queries" in r.path or "jobs" in r.path]
    assert queries, "the dashboard's SQL went to the BigQuery API"


def test_health_lists_datasets_with_rows_first_and_sums_up_the_never_loaded(
    known_warehouse: LocalWarehouse,
) -> None:
    """With the whole catalog configured, ~80 never-loaded datasets share one line instead of
    a "no data" row each; the tabs' own datasets keep a row (FREQ's explains blanks)."""
    dashboard = build(gather(known_warehouse, NOW, datasets=catalog.DATASETS))
    health = dashboard.tab(HEALTH)
    labels = [health.cell(r, 0).value for r in range(3, health.rows)
              if health.cell(r, 0).value is not None]
    rows, summary = labels[:-1], labels[-1]
    stored = [code for code in rows if row_of(dashboard, HEALTH, code)[1].value is not None]
    assert stored and rows[:len(stored)] == stored  # datasets holding rows come first
    assert {"FUELINST", "DISEBSP", "MID"} <= set(stored)
    assert "FREQ" in rows and row_of(dashboard, HEALTH, "FREQ")[3].value == "no data"
    never = [d.code for d in catalog.DATASETS if d.code not in rows]
    assert len(never) > 50 and len(rows) < 20
    assert summary.startswith(f"Never loaded ({len(never)} more configured datasets")
    assert summary.endswith(", ".join(never))
    with pytest.raises(KeyError):
        dashboard.find(HEALTH, never[0])
