"""The trading tabs from a warehouse whose prices, frequency and acceptances are known, so
every key number below is worked out by hand."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from sheets.model import (
    BALANCING,
    FREQUENCY,
    OVERVIEW,
    PRICES,
    UNITS_NOT_AVAILABLE,
    Dashboard,
    build,
    frequency_stats,
    is_battery,
    robust_bounds,
    unit_volumes,
)
from sheets.queries import gather
from tests.test_dashboard_model import NOW, SETTLED, TODAY, store, ts
from worker.elexon.settlement import UTC, period_start
from worker.sinks.local import LocalWarehouse

SPIKE_DAY = TODAY - dt.timedelta(days=10)


def iso(instant: dt.datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def price_row(day: dt.date, period: int, price: float, niv: float = 0.0) -> dict[str, Any]:
    start = period_start(day, period)
    return {"settlementDate": day.isoformat(), "settlementPeriod": period,
            "startTime": iso(start), "createdDateTime": iso(start + dt.timedelta(minutes=35)),
            "systemSellPrice": price, "systemBuyPrice": price, "netImbalanceVolume": niv}


def today_price(period: int) -> float:
    return {10: 5.0, 30: 1054.0}.get(period, 60.0 + period)


def yesterday_price(period: int) -> float:
    return -20.0 if period == 4 else 50.0 + period


def history_spread(day: dt.date) -> float:
    return 80.0 + ((TODAY - day).days % 5) * 5


@pytest.fixture
def trading_warehouse(data_dir: Path) -> LocalWarehouse:
    sink = LocalWarehouse(data_dir)
    prices = [price_row(TODAY, p, today_price(p), 10.0 * p - 200) for p in range(1, 37)]
    prices += [price_row(SETTLED, p, yesterday_price(p)) for p in range(1, 49)]
    for back in range(2, 31):
        day = TODAY - dt.timedelta(days=back)
        for p in range(1, 49):
            value = {1: 40.0, 2: 40.0 + history_spread(day)}.get(p, 60.0)
            if day == SPIKE_DAY and p == 3:
                value = 1054.0
            prices.append(price_row(day, p, value))
    store(sink, "DISEBSP", prices)
    store(sink, "MID", [
        {"startTime": iso(period_start(TODAY, p)), "dataProvider": "N2EXMIDP",
         "settlementDate": TODAY.isoformat(), "settlementPeriod": p, "price": 70.0 + p,
         "volume": 500.0} for p in range(1, 37)])

    # 24 hours of 15-second samples at 50 Hz, with four excursions outside 49.8-50.2 Hz.
    special = {
        dt.datetime(2025, 11, 2, 9, 0, 0, tzinfo=UTC): 49.75,
        dt.datetime(2025, 11, 2, 9, 0, 15, tzinfo=UTC): 49.70,
        dt.datetime(2025, 11, 2, 9, 0, 30, tzinfo=UTC): 49.72,
        dt.datetime(2025, 11, 2, 9, 0, 45, tzinfo=UTC): 49.78,
        dt.datetime(2025, 11, 2, 15, 30, 0, tzinfo=UTC): 50.25,
        dt.datetime(2025, 11, 2, 15, 30, 15, tzinfo=UTC): 50.21,
        dt.datetime(2025, 11, 1, 20, 0, 0, tzinfo=UTC): 49.79,
        dt.datetime(2025, 11, 1, 20, 0, 30, tzinfo=UTC): 49.79,  # 20:00:15 is back inside
    }
    first = NOW - dt.timedelta(hours=24) + dt.timedelta(seconds=15)
    samples = [first + dt.timedelta(seconds=15 * i) for i in range(24 * 60 * 4)]
    store(sink, "FREQ", [{"measurementTime": iso(t), "frequency": special.get(t, 50.0)}
                         for t in samples])

    def segment(unit: str, number: int, start: str, end: str, level_from: int, level_to: int
                ) -> dict[str, Any]:
        return {"settlementDate": SETTLED.isoformat(), "settlementPeriodFrom": 21,
                "settlementPeriodTo": 22, "timeFrom": start, "timeTo": end,
                "levelFrom": level_from, "levelTo": level_to, "acceptanceNumber": number,
                "acceptanceTime": ts(SETTLED, 9, 50), "deemedBoFlag": False, "soFlag": False,
                "amendmentFlag": "ORI", "storFlag": False, "rrFlag": False,
                "nationalGridBmUnit": unit, "bmUnit": f"E_{unit}"}

    store(sink, "BOALF", [
        # Acceptance 10 ramps the battery to 50 MW; acceptance 11 replaces it from 10:30 with
        # -50 MW: 12.5 MWh offered (SP 21), then -25 MWh bid (SP 22), not 37.5 offered.
        segment("BATT-1", 10, ts(SETTLED, 10), ts(SETTLED, 10, 30), 0, 50),
        segment("BATT-1", 10, ts(SETTLED, 10, 30), ts(SETTLED, 11), 50, 50),
        segment("BATT-1", 11, ts(SETTLED, 10, 30), ts(SETTLED, 11), -50, -50),
        segment("GAS-1", 5, ts(SETTLED, 12), ts(SETTLED, 13), 100, 100),  # 100 MWh, SP 25-26
    ])

    def bod(unit: str, period: int, pair: int, offer: float, bid: float) -> dict[str, Any]:
        start = period_start(SETTLED, period)
        return {"settlementDate": SETTLED.isoformat(), "settlementPeriod": period,
                "timeFrom": iso(start), "levelFrom": 100, "timeTo": iso(start + dt.timedelta(
                    minutes=30)), "levelTo": 100, "pairId": pair, "offer": offer, "bid": bid,
                "nationalGridBmUnit": unit, "bmUnit": f"E_{unit}"}

    store(sink, "BOD", [
        bod("BATT-1", 21, 1, 80.0, 70.0), bod("BATT-1", 22, -1, 45.0, 40.0),
        bod("BATT-1", 21, 2, 999.0, 900.0),  # a higher band: not the first offer's price
        bod("GAS-1", 25, 1, 90.0, 85.0), bod("GAS-1", 26, 1, 110.0, 100.0),
    ])
    return sink


def row_of(dashboard: Dashboard, tab: str, label: str) -> list[Any]:
    row, _ = dashboard.find(tab, label)
    t = dashboard.tab(tab)
    return [t.cell(row, c).value for c in range(t.cols)]


def test_prices_tab_single_price_n2ex_difference_niv_and_spreads(trading_warehouse) -> None:
    dashboard = build(gather(trading_warehouse, NOW))
    # SP 36 (17:30-18:00) was published at 18:05; SP 37 is still running at 18:07.
    assert row_of(dashboard, PRICES, "Imbalance price (SSP = SBP)")[1:4] == [
        96.0, "£/MWh", "2025-11-02 SP 36"]
    assert row_of(dashboard, PRICES, "Market index price (N2EX)")[1] == 106.0
    assert row_of(dashboard, PRICES, "Imbalance − N2EX")[1] == pytest.approx(-10.0)
    assert row_of(dashboard, PRICES, "Net imbalance volume (NIV)")[1] == 160.0
    today = row_of(dashboard, PRICES, "Today so far (2025-11-02)")
    assert today[1:5] == [pytest.approx(1049.0), "36/48", 5.0, 1054.0]
    assert today[6:8] == ["SP 10 (04:30)", "SP 30 (14:30)"]
    yesterday = row_of(dashboard, PRICES, "Yesterday (2025-11-01)")
    assert yesterday[1:5] == [pytest.approx(118.0), "48/48", -20.0, 98.0]

    tab = dashboard.tab(PRICES)
    first = dashboard.find(PRICES, "Highest #1")[0]
    ranked_today = [(tab.cell(first + i, 2).value, tab.cell(first + i, 1).value)
                    for i in range(10)]
    assert ranked_today == [(30, 1054.0), (36, 96.0), (35, 95.0), (34, 94.0), (33, 93.0),
                            (10, 5.0), (1, 61.0), (2, 62.0), (3, 63.0), (4, 64.0)]
    ranked_yesterday = [(tab.cell(first + i, 8).value, tab.cell(first + i, 7).value)
                        for i in range(10)]
    assert ranked_yesterday[:2] == [(48, 98.0), (47, 97.0)]
    assert ranked_yesterday[5:8] == [(4, -20.0), (1, 51.0), (2, 52.0)]


def test_daily_spread_chart_keeps_its_axis_and_marks_the_spikes(trading_warehouse) -> None:
    dashboard = build(gather(trading_warehouse, NOW))
    tab = dashboard.tab(PRICES)
    (chart,) = tab.charts
    low, high = chart.y_bounds
    # Spreads run 80-118 on ordinary days: the axis stays near them, not at £1,049.
    assert low == 0 and 118 < high <= 140
    spread_col, spike_col = chart.series[0][1].first_col, chart.series[1][1].first_col
    rows = {tab.cell(r, 0).value: r for r in range(chart.categories.first_row,
                                                    chart.categories.last_row + 1)}
    assert len(rows) == 31 and min(rows) == TODAY - dt.timedelta(days=30)
    for day, spread in ((SPIKE_DAY, 1014.0), (TODAY, 1049.0)):
        r = rows[day]
        assert tab.cell(r, 1).value == pytest.approx(spread)  # the real figure in the table
        assert tab.cell(r, spread_col).value is None and tab.cell(r, spike_col).value == high
        assert "spike" in tab.cell(r, 9).value
    ordinary = rows[TODAY - dt.timedelta(days=3)]
    assert tab.cell(ordinary, spread_col).value == history_spread(TODAY - dt.timedelta(days=3))
    assert tab.cell(ordinary, spike_col).value is None

    # The 48-period price chart: £1,054 at SP 30 is off the axis and named under the chart.
    price_chart = dashboard.tab(OVERVIEW).charts[0]
    assert price_chart.y_bounds is not None and price_chart.y_bounds[1] < 300
    overview = dashboard.tab(OVERVIEW)
    notes = [c.value for c in overview.cells.values() if isinstance(c.value, str)
             and c.value.startswith("▲ Off the axis")]
    assert notes and "imbalance £1,054.00 at 2025-11-02 SP 30" in notes[0]


def test_frequency_tab_nadir_zenith_time_outside_and_excursions(trading_warehouse) -> None:
    dashboard = build(gather(trading_warehouse, NOW))
    nadir = row_of(dashboard, FREQUENCY, "Nadir (lowest)")
    assert nadir[1] == 49.70 and nadir[3] == dt.datetime(2025, 11, 2, 9, 0, 15, tzinfo=UTC)
    zenith = row_of(dashboard, FREQUENCY, "Zenith (highest)")
    assert zenith[1] == 50.25 and zenith[3] == dt.datetime(2025, 11, 2, 15, 30, tzinfo=UTC)
    # Eight samples outside, 15 s each: 2 minutes; six below (1.5 min), two above (0.5 min).
    assert row_of(dashboard, FREQUENCY, "Minutes outside 49.8–50.2 Hz")[1] == pytest.approx(2.0)
    assert row_of(dashboard, FREQUENCY, "  below 49.8 Hz")[1] == pytest.approx(1.5)
    assert row_of(dashboard, FREQUENCY, "  above 50.2 Hz")[1] == pytest.approx(0.5)
    assert row_of(dashboard, FREQUENCY, "Excursions outside the band")[1] == 4
    assert row_of(dashboard, FREQUENCY, "Samples")[1] == 5760
    # The per-minute table behind the chart: 1,440 minutes ending at 18:07.
    tab = dashboard.tab(FREQUENCY)
    minute = dashboard.find(FREQUENCY, dt.datetime(2025, 11, 2, 9, 0, tzinfo=UTC))
    row, col = minute
    assert tab.cell(row, col + 1).value == 49.70
    assert tab.cell(row, col + 2).value == pytest.approx((49.75 + 49.70 + 49.72 + 49.78) / 4)
    assert tab.cell(2, col).value == dt.datetime(2025, 11, 1, 18, 8, tzinfo=UTC)
    assert tab.cell(1 + 1440, col).value == dt.datetime(2025, 11, 2, 18, 7, tzinfo=UTC)
    (chart,) = tab.charts
    assert chart.y_bounds[0] < 49.70 and chart.y_bounds[1] > 50.25


def test_frequency_stats_a_gap_ends_an_excursion() -> None:
    t0 = dt.datetime(2025, 1, 1, tzinfo=UTC)
    step = dt.timedelta(seconds=15)
    samples = [(t0, 49.7), (t0 + step, 49.7), (t0 + 10 * step, 49.7), (t0 + 11 * step, 50.0)]
    stats = frequency_stats(samples)
    assert stats.excursions == 2 and stats.below == 3
    assert stats.spacing == step and stats.minutes_outside == pytest.approx(0.75)


def test_balancing_per_unit_volumes_prices_and_batteries(trading_warehouse) -> None:
    snapshot = gather(trading_warehouse, NOW)
    without = build(snapshot)
    assert UNITS_NOT_AVAILABLE in without.tab(BALANCING).cell(1, 0).value
    battery = row_of(without, BALANCING, "BATT-1")
    assert battery[4:9] == [2, pytest.approx(12.5), pytest.approx(-25.0), 80.0, 40.0]
    assert battery[3] is None  # no reference data: not called a battery, nor not one
    gas = row_of(without, BALANCING, "GAS-1")
    # 50 MWh in each of SP 25 (£90) and SP 26 (£110): £100 weighted.
    assert gas[4:9] == [1, pytest.approx(100.0), 0.0, pytest.approx(100.0), None]
    assert row_of(without, BALANCING, "Accepted offer volume (BOALF)")[1] == \
        pytest.approx(112.5)
    assert row_of(without, BALANCING, "Accepted bid volume (BOALF)")[1] == pytest.approx(-25.0)
    assert row_of(without, BALANCING, "Acceptances (BOALF)")[1] == 3

    # BM-unit reference data arrives (dataset BMUNITS): the battery has no fuel type, as
    # Elexon's register gives most batteries, and a name that says what it is.
    store(trading_warehouse, "BMUNITS", [
        {"nationalGridBmUnit": "BATT-1", "elexonBmUnit": "E_BATT-1", "bmUnitName": "Example BESS",
         "fuelType": None, "bmUnitType": "E", "leadPartyName": "Battery Co"},
        {"nationalGridBmUnit": "GAS-1", "elexonBmUnit": "T_GAS-1", "bmUnitName": "Peterhead",
         "fuelType": "CCGT", "bmUnitType": "T", "leadPartyName": "Gas Co"},
        {"nationalGridBmUnit": "PUMP-1", "elexonBmUnit": "T_PUMP-1",
         "bmUnitName": "Pumped Storage 1", "fuelType": "PS", "bmUnitType": "T"},
    ])
    dashboard = build(gather(trading_warehouse, NOW))
    assert row_of(dashboard, BALANCING, "BATT-1")[1:4] == ["Example BESS", "E", "yes"]
    assert row_of(dashboard, BALANCING, "GAS-1")[1:4] == ["Peterhead", "CCGT / T", "no"]
    assert row_of(dashboard, BALANCING, "GAS-1")[10] == "Gas Co"
    assert "bmunits_latest" in dashboard.tab(BALANCING).cell(1, 0).value
    assert row_of(dashboard, BALANCING, "Battery offer volume")[1] == pytest.approx(12.5)
    assert row_of(dashboard, BALANCING, "Battery bid volume")[1] == pytest.approx(-25.0)
    # Ranked by accepted MWh: the gas unit's 100 MWh above the battery's 37.5.
    settled_units = dashboard.find(BALANCING, "GAS-1")[0], dashboard.find(BALANCING, "BATT-1")[0]
    assert settled_units[0] < settled_units[1]


def test_later_acceptance_replaces_an_earlier_one_where_they_overlap() -> None:
    t0 = dt.datetime(2025, 11, 1, 10, tzinfo=UTC)
    half = dt.timedelta(minutes=30)
    segments = [
        {"nationalGridBmUnit": "U", "settlementDate": dt.date(2025, 11, 1),
         "acceptanceNumber": 1, "timeFrom": t0, "timeTo": t0 + 2 * half,
         "levelFrom": 100, "levelTo": 100},
        {"nationalGridBmUnit": "U", "settlementDate": dt.date(2025, 11, 1),
         "acceptanceNumber": 2, "timeFrom": t0 + half, "timeTo": t0 + 2 * half,
         "levelFrom": 0, "levelTo": 0},
    ]
    (volume,) = unit_volumes(segments).values()
    assert volume.offer_mwh == pytest.approx(50.0) and volume.periods == {
        21: (pytest.approx(50.0), 0.0), 22: (0.0, 0.0)}


def test_battery_flag_from_reference_rows() -> None:
    assert is_battery({"fuelType": None, "bmUnitName": "Example BESS"})
    assert is_battery({"fuelType": "OTHER", "bmUnitName": "Big Battery Storage"})
    assert is_battery({"fuelType": "BATTERY", "bmUnitName": "X"})
    assert not is_battery({"fuelType": "PS", "bmUnitName": "Pumped Storage 1"})
    assert not is_battery({"fuelType": "WIND", "bmUnitName": "Battery Hill Wind Farm"})
    assert not is_battery({"fuelType": None, "bmUnitName": "Aberdare Power Station"})


def test_robust_bounds_leave_a_spike_off_the_axis() -> None:
    low, high, spikes = robust_bounds([40.0, 55.0, 80.0, 150.0, 120.0, 95.0, 1054.0])
    assert spikes == [1054.0] and high < 250 and low <= 40
    assert robust_bounds([90.0] * 10 + [91.0])[2] == []  # flat days: nothing is a spike
