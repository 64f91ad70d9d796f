"""``--as-of T`` shows what was published by T: a dashboard at 12:10, ten minutes into
settlement period 25 of 2025-12-31, against figures worked out by hand."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from sheets.model import (
    BALANCING,
    FREQUENCY,
    GENERATION,
    HEALTH,
    OVERVIEW,
    PRICES,
    Dashboard,
    build,
)
from sheets.queries import gather
from tests.test_dashboard_model import store
from worker.elexon.settlement import UTC, period_of, period_start
from worker.sinks.local import LocalWarehouse

DAY = dt.date(2025, 12, 31)  # GMT: London time is UTC
AS_OF = dt.datetime(2025, 12, 31, 12, 10, tzinfo=UTC)  # SP 25 runs 12:00-12:30
LATE = dt.datetime(2026, 1, 1, 10, 0, tzinfo=UTC)  # when the revisions below were published
SP25_WIND = {0: 1200, 5: 1300, 10: 1400, 15: 1500, 20: 1600, 25: 1700}


def iso(instant: dt.datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def fuel(start: dt.datetime, fuel_type: str, mw: float, published: dt.datetime) -> dict[str, Any]:
    day, period = period_of(start)
    return {"publishTime": iso(published), "startTime": iso(start),
            "settlementDate": day.isoformat(), "settlementPeriod": period,
            "fuelType": fuel_type, "generation": mw}


@pytest.fixture
def day_warehouse(data_dir: Path) -> LocalWarehouse:
    """A whole day of data, published as it would have been: FUELINST 5 minutes after each
    sample starts, system prices 15 minutes after each period ends, MID once it has ended."""
    sink = LocalWarehouse(data_dir)
    start = period_start(DAY, 1)
    rows = []
    for i in range(24 * 12):
        t = start + dt.timedelta(minutes=5 * i)
        wind = SP25_WIND.get(t.minute, 1000) if t.hour == 12 and t.minute < 30 else 1000
        published = t + dt.timedelta(minutes=5)
        rows += [fuel(t, "WIND", wind, published), fuel(t, "CCGT", 10000, published)]
    # A revision of the 12:00 wind sample, published the next morning.
    rows.append(fuel(start + dt.timedelta(hours=12), "WIND", 5000, LATE))
    store(sink, "FUELINST", rows)

    def price(period: int, value: float, created: dt.datetime | None = None) -> dict[str, Any]:
        begins = period_start(DAY, period)
        return {"settlementDate": DAY.isoformat(), "settlementPeriod": period,
                "startTime": iso(begins),
                "createdDateTime": iso(created or begins + dt.timedelta(minutes=45)),
                "systemSellPrice": value, "systemBuyPrice": value,
                "netImbalanceVolume": -10.0 * period}

    store(sink, "DISEBSP", [price(p, 100.0 + p) for p in range(1, 49)]
          + [price(23, 999.0, LATE)])  # a later settlement run of SP 23
    store(sink, "MID", [
        {"startTime": iso(period_start(DAY, p)), "dataProvider": "N2EXMIDP",
         "settlementDate": DAY.isoformat(), "settlementPeriod": p, "price": 80.0 + p,
         "volume": 100.0} for p in range(1, 49)])
    special = {start + dt.timedelta(hours=12, minutes=9, seconds=45): 49.75,
               start + dt.timedelta(hours=12, minutes=10, seconds=15): 49.60}
    store(sink, "FREQ", [
        {"measurementTime": iso(t), "frequency": special.get(t, 50.0)}
        for t in (start + dt.timedelta(seconds=15 * i) for i in range(24 * 60 * 4))])

    def accepted(number: int, at: dt.datetime, begins: dt.datetime, mw: int) -> dict[str, Any]:
        _, period = period_of(begins)
        return {"settlementDate": DAY.isoformat(), "settlementPeriodFrom": period,
                "settlementPeriodTo": period, "timeFrom": iso(begins),
                "timeTo": iso(begins + dt.timedelta(minutes=30)), "levelFrom": mw,
                "levelTo": mw, "acceptanceNumber": number, "acceptanceTime": iso(at),
                "deemedBoFlag": False, "soFlag": False, "amendmentFlag": "ORI",
                "storFlag": False, "rrFlag": False, "nationalGridBmUnit": "UNIT-1",
                "bmUnit": "T_UNIT-1"}

    noon = start + dt.timedelta(hours=12)
    store(sink, "BOALF", [
        accepted(1, noon - dt.timedelta(minutes=10), noon, 100),  # accepted 11:50: 50 MWh
        accepted(2, noon + dt.timedelta(minutes=20), noon + dt.timedelta(minutes=30), 60),
    ])
    return sink


def value(dashboard: Dashboard, tab: str, label: str, col: int = 1) -> Any:
    row, _ = dashboard.find(tab, label)
    return dashboard.tab(tab).cell(row, col).value


def test_mid_period_as_of_shows_only_what_was_published(day_warehouse) -> None:
    dashboard = build(gather(day_warehouse, AS_OF))
    # FUELINST: SP 25's samples at 12:00 (published 12:05) and 12:05 (published 12:10), the
    # 12:00 one as first published: wind (1200 + 1300) / 2 = 1250 MW, not the mean of six
    # (1450) nor with the next morning's 5000.
    assert value(dashboard, OVERVIEW, "Wind") == pytest.approx(1.25)
    assert value(dashboard, OVERVIEW, "Wind", 3) == "2025-12-31 SP 25"
    assert value(dashboard, OVERVIEW, "Total generation") == pytest.approx(11.25)
    assert "2 of 6" in dashboard.tab(GENERATION).cell(1, 0).note
    # Prices: SP 23 was published at 11:45 (first run, 123), SP 24 only at 12:15.
    assert value(dashboard, PRICES, "Imbalance price (SSP = SBP)") == 123.0
    assert value(dashboard, PRICES, "Imbalance price (SSP = SBP)", 3) == "2025-12-31 SP 23"
    assert value(dashboard, PRICES, "Net imbalance volume (NIV)") == -230.0
    # N2EX: SP 24 ended at 12:00, SP 25 has not.
    assert value(dashboard, PRICES, "Market index price (N2EX)") == 104.0
    assert value(dashboard, PRICES, "Imbalance − N2EX") == pytest.approx(123.0 - 103.0)
    assert value(dashboard, PRICES, "Today so far (2025-12-31)", 2) == "23/48"
    # Acceptances: the one made at 11:50 is known; the one made at 12:20 is not.
    assert value(dashboard, BALANCING, "Acceptances (BOALF)", 2) == 1
    assert value(dashboard, BALANCING, "Accepted offer volume (BOALF)", 2) == pytest.approx(50.0)
    # Frequency: samples up to 12:10:00; the 49.60 at 12:10:15 has not been measured yet.
    assert value(dashboard, FREQUENCY, "Nadir (lowest)") == 49.75
    assert value(dashboard, FREQUENCY, "Latest sample", 3) == AS_OF
    assert value(dashboard, FREQUENCY, "Samples") == 12 * 240 + 40 + 1
    # Data health: the newest row published by 12:10 and its age at 12:10, not 23:55 / 0 min.
    health = dashboard.tab(HEALTH)
    row = dashboard.find(HEALTH, "FUELINST")[0]
    assert health.cell(row, 1).value == dt.datetime(2025, 12, 31, 12, 5, tzinfo=UTC)
    assert (health.cell(row, 2).value, health.cell(row, 3).value) == ("5 min", "ok")
    row = dashboard.find(HEALTH, "DISEBSP")[0]
    assert health.cell(row, 1).value == dt.datetime(2025, 12, 31, 11, 0, tzinfo=UTC)
    assert health.cell(row, 2).value == "1 h 10 min"
    assert "current" in dashboard.tab(OVERVIEW).cell(4, 0).value
    # The IRIS listener's last message came after 12:10: it says nothing about then.
    later = build(gather(day_warehouse, AS_OF, iris_last_message={
        "FUELINST": AS_OF + dt.timedelta(hours=1)}))
    assert later.tab(OVERVIEW).cell(5, 0).value == "IRIS last message: no IRIS data"


def test_later_as_of_sees_the_revisions(day_warehouse) -> None:
    late = build(gather(day_warehouse, LATE))
    # The whole of SP 25 with the revised 12:00 sample: (5000 + 1300 + ... + 1700) / 6.
    wind = (5000 + 1300 + 1400 + 1500 + 1600 + 1700) / 6 / 1000
    tab = late.tab("Data")
    col = next(c for c in range(tab.cols) if tab.cell(0, c).value == "Wind (GW)")
    row = next(r for r in range(1, tab.rows) if tab.cell(r, 0).value == DAY
               and tab.cell(r, 1).value == 25)
    assert tab.cell(row, col).value == pytest.approx(wind)
    assert value(late, PRICES, "Yesterday (2025-12-31)", 2) == "48/48"
    assert value(late, PRICES, "Yesterday (2025-12-31)", 4) == 999.0  # SP 23's later run
    # The newest FUELINST row is 23:55 on the 31st: 10 h 05 min before, and the header says so.
    status = late.tab(OVERVIEW).cell(4, 0).value
    assert "FUELINST data is 10 h 05 min old (newest 2025-12-31 23:55)" in status
