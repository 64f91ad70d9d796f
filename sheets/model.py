"""What the dashboard shows: a pure function from a warehouse :class:`Snapshot` to tabs of cells.

Nothing here does I/O, so the same :class:`Dashboard` goes to Google Sheets or to a local
workbook, and tests can assert its numbers directly. Domain rules that the old scripts got
wrong live here, once:

* FUELINST rows are 5-minute MW samples: a settlement period's value is their *mean*
  (the query averages them per fuel), never their sum; GW = MW / 1000.
* Interconnector fuel types start with ``INT``: positive is import, negative export;
  demand = generation (non-interconnector fuels) + net interconnector imports.
* MW (a rate) and MWh (an amount) are never added together: BOALF acceptance volumes are the
  integral of the accepted level over each segment, MWh.
* Missing data is a blank cell with a note saying what is missing, never 0, 50 Hz or £0.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import math
import re
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

from sheets.balancing import (
    TOP_UNITS_SETTLED,
    TOP_UNITS_TODAY,
    UnitVolume,
    top_units,
    unit_volumes,
)
from sheets.queries import (
    DASHBOARD_DATASETS,
    FREQUENCY_SPAN,
    HEALTH_DAYS,
    MID_PROVIDER,
    OUTAGE_MIN_MW,
    OUTAGE_ROWS,
    SPREAD_DAYS,
    Row,
    Snapshot,
)
from worker.elexon import catalog
from worker.elexon.settlement import LONDON, period_of, period_start, periods_in_day

Value = float | int | str | dt.datetime | dt.date | None
Period = tuple[dt.date, int]

STALE_AFTER = dt.timedelta(minutes=15)
# Feeds that update every few minutes; if they are older than STALE_AFTER the header warns.
REALTIME_FEEDS = ("FUELINST", "FREQ")
SAMPLES_PER_PERIOD = 6  # FUELINST: one sample every 5 minutes
NO_IRIS = "no IRIS data"

FUEL_NAMES = {
    "BIOMASS": "Biomass", "CCGT": "Gas (CCGT)", "COAL": "Coal", "NPSHYD": "Hydro",
    "NUCLEAR": "Nuclear", "OCGT": "Gas (OCGT)", "OIL": "Oil", "OTHER": "Other",
    "PS": "Pumped storage", "WIND": "Wind",
}
INTERCONNECTOR_NAMES = {
    "INTELEC": "ElecLink (France)", "INTEW": "East-West (Ireland)", "INTFR": "IFA (France)",
    "INTGRNL": "Greenlink (Ireland)", "INTIFA2": "IFA2 (France)", "INTIRL": "Moyle (N. Ireland)",
    "INTNED": "BritNed (Netherlands)", "INTNEM": "Nemo Link (Belgium)",
    "INTNSL": "North Sea Link (Norway)", "INTVKL": "Viking Link (Denmark)",
}


# ---------------------------------------------------------------- the dashboard's shape


@dataclasses.dataclass(frozen=True)
class Style:
    """How a cell looks; number patterns use the syntax Sheets and Excel share."""

    number: str | None = None
    bold: bool = False
    italic: bool = False
    size: int | None = None
    color: str | None = None  # font, #RRGGBB
    fill: str | None = None  # background, #RRGGBB
    wrap: bool = False
    align: Literal["left", "right", "center"] | None = None


STYLES: dict[str, Style] = {
    "text": Style(),
    "title": Style(bold=True, size=16),
    "section": Style(bold=True, size=12, color="#1F3864"),
    "heading": Style(bold=True, fill="#D9E1F2", wrap=True),
    # Over a column of numbers: the header sits where the numbers do.
    "heading_num": Style(bold=True, fill="#D9E1F2", wrap=True, align="right"),
    "text_num": Style(align="right"),
    "text_center": Style(align="center"),
    "ok_num": Style(color="#006100", fill="#C6EFCE", align="right"),
    "warning_num": Style(bold=True, color="#9C0006", fill="#FFC7CE", align="right"),
    "muted_num": Style(italic=True, color="#666666", align="right"),
    "heading_center": Style(bold=True, fill="#D9E1F2", wrap=True, align="center"),
    "ok_center": Style(color="#006100", fill="#C6EFCE", align="center"),
    "warning_center": Style(bold=True, color="#9C0006", fill="#FFC7CE", align="center"),
    "muted_center": Style(italic=True, color="#666666", align="center"),
    "datetime_center": Style(number="yyyy-mm-dd hh:mm", align="center"),
    "spike": Style(bold=True, color="#9C0006"),
    "label": Style(bold=True),
    "muted": Style(italic=True, color="#666666"),
    "warning": Style(bold=True, color="#9C0006", fill="#FFC7CE"),
    "ok": Style(color="#006100", fill="#C6EFCE"),
    "price": Style(number="#,##0.00"),
    "gw": Style(number="0.00"),
    "mw": Style(number="#,##0"),
    "mwh": Style(number="#,##0.0"),
    "gbp": Style(number="£#,##0"),
    "hz": Style(number="0.000"),
    "share": Style(number="0.0%"),
    "count": Style(number="0"),
    "datetime": Style(number="yyyy-mm-dd hh:mm"),
    "datetime_s": Style(number="yyyy-mm-dd hh:mm:ss"),
    "time": Style(number="d mmm hh:mm"),
    "date": Style(number="yyyy-mm-dd"),
    "date_left": Style(number="yyyy-mm-dd", align="left"),
    "spike_price": Style(number="#,##0.00", bold=True, color="#9C0006"),
}


@dataclasses.dataclass(frozen=True)
class Cell:
    """One cell: a value (or blank), a named style, and a note shown on hover.

    ``sparkline`` names a series of the Data tab that the cell draws as a sparkline;
    ``bar`` draws the value (a share, 0..1) as an in-cell bar.
    """

    value: Value = None
    style: str = "text"
    note: str | None = None
    sparkline: str | None = None
    bar: bool = False


@dataclasses.dataclass(frozen=True)
class Range:
    """A rectangle of one tab, zero-based and inclusive."""

    tab: str
    first_row: int
    first_col: int
    last_row: int
    last_col: int

    def a1(self) -> str:
        """``'Tab'!A1:B2``, the notation both Sheets and Excel formulas accept."""
        quoted = "'" + self.tab.replace("'", "''") + "'"
        return (
            f"{quoted}!{column_letter(self.first_col)}{self.first_row + 1}:"
            f"{column_letter(self.last_col)}{self.last_row + 1}"
        )


@dataclasses.dataclass(frozen=True)
class Chart:
    """A native chart (drawn by the workbook writer) of ranges of the dashboard."""

    kind: Literal["line", "column", "bar"]
    title: str
    anchor: tuple[int, int]  # (row, col) of its top-left corner
    categories: Range
    series: tuple[tuple[str, Range], ...]  # (legend name, values)
    y_title: str
    size: tuple[int, int] = (620, 300)  # pixels
    # Fixed value-axis bounds (so one spike does not flatten the rest), else automatic.
    y_bounds: tuple[float, float] | None = None
    y_major: float | None = None  # gridline spacing with fixed bounds (whole steps from min)
    colors: tuple[str | None, ...] = ()  # per series, #RRGGBB; None = the theme's
    # Category labels: dates with times, so an axis that crosses midnight says which day.
    x_format: str = "d mmm hh:mm"
    x_interval: int | None = None  # label every n-th category; None = automatic


@dataclasses.dataclass
class Tab:
    """One tab and the block ``rows`` x ``cols`` from A1 it owns: writers touch nothing else."""

    name: str
    rows: int
    cols: int
    col_widths: tuple[int, ...]  # characters
    cells: dict[tuple[int, int], Cell] = dataclasses.field(default_factory=dict)
    freeze_rows: int = 0
    charts: list[Chart] = dataclasses.field(default_factory=list)
    # (rows, cols) from A1 that a printout shows; None prints the whole block.
    print_area: tuple[int, int] | None = None

    def put(self, row: int, col: int, cell: Cell) -> None:
        if not (0 <= row < self.rows and 0 <= col < self.cols):
            raise ValueError(f"cell ({row}, {col}) is outside tab {self.name!r}'s owned block")
        self.cells[(row, col)] = cell

    def put_row(self, row: int, cells: Iterable[Cell], first_col: int = 0) -> None:
        for offset, cell in enumerate(cells):
            self.put(row, first_col + offset, cell)

    def cell(self, row: int, col: int) -> Cell:
        return self.cells.get((row, col), Cell())

    @property
    def owned(self) -> Range:
        return Range(self.name, 0, 0, self.rows - 1, self.cols - 1)


@dataclasses.dataclass
class Dashboard:
    """Every tab of one refresh, and where each sparkline series lives."""

    generated: dt.datetime
    tabs: list[Tab]
    series: dict[str, Range]

    def tab(self, name: str) -> Tab:
        return next(t for t in self.tabs if t.name == name)

    def find(self, tab: str, label: str) -> tuple[int, int]:
        """(row, col) of the first cell whose value is ``label`` (for readers and tests)."""
        for (row, col), cell in sorted(self.tab(tab).cells.items()):
            if cell.value == label:
                return row, col
        raise KeyError(f"no cell {label!r} in tab {tab!r}")


def column_letter(col: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    letters = ""
    col += 1
    while col:
        col, rem = divmod(col - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


# ---------------------------------------------------------------- per-period series


@dataclasses.dataclass(frozen=True)
class Series:
    """One value per window period (None where the warehouse has none), and its description."""

    key: str
    title: str
    unit: str
    style: str
    source: str  # what a missing value lacks, e.g. "DISEBSP row"
    values: dict[Period, float | None]

    def latest(self) -> tuple[Period, float] | None:
        present = [(p, v) for p, v in self.values.items() if v is not None]
        return max(present) if present else None

    def present(self) -> list[float]:
        return [v for v in self.values.values() if v is not None]


@dataclasses.dataclass(frozen=True)
class FuelPeriod:
    """FUELINST for one settlement period: each fuel's mean MW and the samples behind it."""

    mw: dict[str, float]
    samples: int

    @property
    def generation_mw(self) -> float | None:
        plants = [v for fuel, v in self.mw.items() if not is_interconnector(fuel)]
        return sum(plants) if plants else None

    @property
    def net_imports_mw(self) -> float | None:
        links = [v for fuel, v in self.mw.items() if is_interconnector(fuel)]
        return sum(links) if links else None

    @property
    def demand_mw(self) -> float | None:
        if self.generation_mw is None or self.net_imports_mw is None:
            return None
        return self.generation_mw + self.net_imports_mw


def is_interconnector(fuel: str) -> bool:
    return fuel.upper().startswith("INT")


def fuel_periods(snapshot: Snapshot) -> dict[Period, FuelPeriod]:
    """Per period, each fuel's mean MW (the query averaged the 5-minute samples)."""
    mw: dict[Period, dict[str, float]] = defaultdict(dict)
    samples: dict[Period, int] = defaultdict(int)
    for row in snapshot.fuel:
        key = (row["settlementDate"], row["settlementPeriod"])
        if row["mw"] is not None:
            mw[key][row["fuelType"]] = float(row["mw"])
        samples[key] = max(samples[key], int(row["samples"]))
    return {key: FuelPeriod(mw[key], samples[key]) for key in mw}


def frequency_means(snapshot: Snapshot) -> dict[Period, float]:
    """Mean of the FREQ samples that fall in each settlement period."""
    buckets: dict[Period, list[float]] = defaultdict(list)
    for row in snapshot.frequency:
        if row["frequency"] is not None:
            buckets[period_of(row["measurementTime"])].append(float(row["frequency"]))
    return {key: statistics.fmean(values) for key, values in buckets.items()}


def window_series(snapshot: Snapshot) -> list[Series]:
    """The KPI series over the 48-period window, in display order."""
    window = snapshot.window
    prices = {(r["settlementDate"], r["settlementPeriod"]): r for r in snapshot.system_prices}
    mid = {(r["settlementDate"], r["settlementPeriod"]): r["price"] for r in snapshot.market_index}
    fuel = fuel_periods(snapshot)
    hz = frequency_means(snapshot)

    def pick(source: dict[Period, object], get) -> dict[Period, float | None]:  # type: ignore[no-untyped-def]
        out: dict[Period, float | None] = {}
        for period in window:
            found = source.get(period)
            value = None if found is None else get(found)
            out[period] = None if value is None else float(value)
        return out

    def gw(value: float | None) -> float | None:
        return None if value is None else value / 1000

    imbalance = pick(prices, single_price)
    n2ex = pick(mid, lambda price: price)
    difference = {p: None if imbalance[p] is None or n2ex[p] is None else imbalance[p] - n2ex[p]
                  for p in window}  # type: ignore[operator]
    return [
        Series("imbalance", IMBALANCE, "£/MWh", "price", "DISEBSP row", imbalance),
        Series("mid", N2EX, "£/MWh", "price", f"MID row from {MID_PROVIDER}", n2ex),
        Series("imbalance_vs_n2ex", SPREAD_VS_N2EX, "£/MWh", "price",
               f"DISEBSP and {MID_PROVIDER} MID row", difference),
        Series("niv", NIV, "MWh", "mwh", "DISEBSP row",
               pick(prices, lambda r: r["netImbalanceVolume"])),
        Series("generation", "Total generation", "GW", "gw", "FUELINST sample",
               pick(fuel, lambda f: gw(f.generation_mw))),
        Series("wind", "Wind", "GW", "gw", "FUELINST WIND sample",
               pick(fuel, lambda f: gw(f.mw.get("WIND")))),
        Series("net_imports", "Net interconnector imports", "GW", "gw",
               "FUELINST interconnector sample", pick(fuel, lambda f: gw(f.net_imports_mw))),
        Series("demand", DEMAND, "GW", "gw",
               "FUELINST generation and interconnector sample",
               pick(fuel, lambda f: gw(f.demand_mw))),
        Series("frequency", "Frequency (period mean)", "Hz", "hz", "FREQ sample",
               pick(hz, lambda v: v)),
    ]


IMBALANCE = "Imbalance price (SSP = SBP)"
N2EX = "Market index price (N2EX)"
SPREAD_VS_N2EX = "Imbalance − N2EX"
NIV = "Net imbalance volume (NIV)"
DEMAND = "Transmission demand"
DEMAND_NOTE = ("Transmission demand = transmission-connected generation + net interconnector "
               "imports. Embedded (distribution-connected) solar and wind are not in FUELINST: "
               "they lower what the transmission system sees, so national demand is higher.")


def single_price(row: Row) -> float | None:
    """The imbalance price of a DISEBSP row.

    Since BSC P305 (November 2015) the system sell and buy prices are one single price; the
    sell price is shown, and older rows where they differ are flagged by :func:`price_note`.
    """
    value = row["systemSellPrice"]
    if value is None:
        value = row["systemBuyPrice"]
    return None if value is None else float(value)


def price_note(row: Row) -> str | None:
    sell, buy = row.get("systemSellPrice"), row.get("systemBuyPrice")
    if sell is not None and buy is not None and abs(float(sell) - float(buy)) > 1e-9:
        return f"before single pricing: sell {float(sell):.2f}, buy {float(buy):.2f} £/MWh"
    return None


def robust_bounds(values: Sequence[float], pad: float = 0.1) -> tuple[float, float, list[float]]:
    """Axis bounds that the bulk of the values fill, and the values outside them (spikes).

    Tukey's far-out fences (3 x IQR beyond the quartiles, and at least the median's size
    beyond them) decide what is a spike; the axis spans the rest, padded, so a £1,000 period
    does not flatten a £40-150 day.
    """
    if not values:
        return 0.0, 1.0, []
    ordered = sorted(values)
    if len(ordered) >= 4:
        q1, median, q3 = statistics.quantiles(ordered, n=4)
        # At least the median's size too: on flat days (IQR ~ 0) a £1 rise is no spike.
        reach = max(3 * (q3 - q1), abs(median))
        low_fence, high_fence = q1 - reach, q3 + reach
    else:
        low_fence, high_fence = ordered[0], ordered[-1]
    inside = [v for v in ordered if low_fence <= v <= high_fence] or ordered
    spikes = [v for v in values if v < inside[0] or v > inside[-1]]
    low, high = inside[0], inside[-1]
    margin = max((high - low) * pad, 1.0)
    low, high = low - margin, high + margin
    step = _nice_step((high - low) / 6)
    # Bounds on whole steps, so the axis' gridlines fall on round numbers (0, 20, 40...).
    return math.floor(low / step) * step, math.ceil(high / step) * step, spikes


def _nice_step(raw: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at least ``raw``."""
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


# ---------------------------------------------------------------- building the tabs


def build(snapshot: Snapshot) -> Dashboard:
    """The dashboard for one warehouse snapshot."""
    series = window_series(snapshot)
    data_tab, refs = _data_tab(snapshot, series)
    tabs = [
        _overview_tab(snapshot, series, refs),
        _prices_tab(snapshot, series),
        _balancing_tab(snapshot),
        _frequency_tab(snapshot),
        _generation_tab(snapshot),
        _outages_tab(snapshot),
        _health_tab(snapshot),
        data_tab,
    ]
    return Dashboard(generated=snapshot.now, tabs=tabs, series=refs)


def london(instant: dt.datetime) -> dt.datetime:
    return instant.astimezone(LONDON)


def period_label(period: Period) -> str:
    return f"{period[0].isoformat()} SP {period[1]}"


def age_text(age: dt.timedelta) -> str:
    """'3 min', '2 h 05 min', '3 d 4 h': what an analyst reads at a glance."""
    minutes = max(0, int(age.total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def missing(note: str, style: str = "text") -> Cell:
    """A blank that says why it is blank."""
    return Cell(None, style, note=note)


def staleness_warnings(snapshot: Snapshot) -> list[str]:
    """Why the realtime or IRIS data behind the dashboard cannot be trusted as current."""
    warnings: list[str] = []
    for code in REALTIME_FEEDS:
        known = snapshot.freshness.get(code)
        newest = known.newest_utc if known else None
        if newest is None:
            warnings.append(f"No {code} data published by "
                            f"{london(snapshot.now):%Y-%m-%d %H:%M}")
        elif snapshot.now - newest > STALE_AFTER:
            warnings.append(
                f"{code} data is {age_text(snapshot.now - newest)} old "
                f"(newest {london(newest):%Y-%m-%d %H:%M})"
            )
    if snapshot.iris_last_message:
        newest_iris = max(snapshot.iris_last_message.values())
        if snapshot.now - newest_iris > STALE_AFTER:
            warnings.append(
                f"IRIS: last message {age_text(snapshot.now - newest_iris)} ago "
                f"({london(newest_iris):%Y-%m-%d %H:%M})"
            )
    return warnings


OVERVIEW = "Overview"
PRICES = "Prices"
BALANCING = "Balancing"
FREQUENCY = "Frequency"
GENERATION = "Generation"
OUTAGES = "Outages"
HEALTH = "Data health"
DATA = "Data"
TAB_NAMES = (OVERVIEW, PRICES, BALANCING, FREQUENCY, GENERATION, OUTAGES, HEALTH, DATA)


def _overview_tab(snapshot: Snapshot, series: list[Series], refs: dict[str, Range]) -> Tab:
    tab = Tab(OVERVIEW, rows=56, cols=8, col_widths=(40, 14, 9, 22, 30, 12, 12, 2), freeze_rows=1)
    now_local = london(snapshot.now)
    day, period = snapshot.window[-1]
    tab.put(0, 0, Cell("GB power market dashboard", "title"))
    tab.put_row(1, [Cell("As of (Europe/London)", "label"), Cell(now_local, "datetime"),
                     Cell("only data published by then", "muted")])
    tab.put_row(2, [Cell("Settlement date", "label"), Cell(day, "date")])
    tab.put_row(3, [Cell("Settlement period", "label"), Cell(period, "count"),
                    Cell(f"of {periods_in_day(day)}", "muted")])
    warnings = staleness_warnings(snapshot)
    if warnings:
        tab.put(4, 0, Cell("⚠ " + "; ".join(warnings), "warning"))
    else:
        feeds = ", ".join(REALTIME_FEEDS)
        tab.put(4, 0, Cell(f"Realtime data is current ({feeds} under 15 min old)", "ok"))
    iris = snapshot.iris_last_message
    tab.put(5, 0, Cell(
        f"IRIS last message: {london(max(iris.values())):%Y-%m-%d %H:%M}" if iris else
        f"IRIS last message: {NO_IRIS}", "muted"))

    tab.put(7, 0, Cell("Key figures", "section"))
    tab.put_row(8, [Cell("Measure", "heading"), Cell("Latest", "heading_num"),
                    Cell("Unit", "heading"), Cell("Period", "heading"),
                    Cell("Last 48 periods", "heading"), Cell("48-period min", "heading_num"),
                    Cell("48-period max", "heading_num")])
    first, last = snapshot.window[0], snapshot.window[-1]
    span = f"{period_label(first)} to {period_label(last)}"
    row = 9
    for s in series:
        if s.key == "frequency":
            continue  # shown below from its latest sample, not a period mean
        latest = s.latest()
        if latest is None:
            value = missing(f"no {s.source} in the 48 periods {span}", s.style)
            as_of = Cell(None)
        else:
            value, as_of = Cell(latest[1], s.style), Cell(period_label(latest[0]))
        values = s.present()
        tab.put_row(row, [
            Cell(s.title, "label", note=DEMAND_NOTE if s.key == "demand" else None), value,
            Cell(s.unit, "muted"), as_of,
            Cell(sparkline=s.key) if values else missing(f"no {s.source} in {span}"),
            Cell(min(values), s.style) if values else Cell(None),
            Cell(max(values), s.style) if values else Cell(None),
        ])
        row += 1
    freq = [r for r in snapshot.frequency if r["frequency"] is not None]
    hz = next(s for s in series if s.key == "frequency")
    newest = max(freq, key=lambda r: r["measurementTime"]) if freq else None
    tab.put_row(row, [
        Cell("Frequency (latest sample)", "label"),
        Cell(float(newest["frequency"]), "hz") if newest
        else missing(f"no FREQ sample in {span}", "hz"),
        Cell("Hz", "muted"),
        Cell(f"{london(newest['measurementTime']):%Y-%m-%d %H:%M:%S}") if newest else Cell(None),
        Cell(sparkline="frequency") if hz.present() else missing(f"no FREQ sample in {span}"),
        Cell(min(hz.present()), "hz") if hz.present() else Cell(None),
        Cell(max(hz.present()), "hz") if hz.present() else Cell(None),
    ])
    tab.put(row + 1, 0, Cell(
        "Period values are means of the samples published by the as-of time (FUELINST every "
        "5 min, FREQ every 15 s); prices per settlement period; demand is transmission demand "
        "(no embedded solar or wind); blank = no data, see the cell's note.", "muted"))
    prices = [v for key in ("imbalance", "mid") for v in
              next(s for s in series if s.key == key).present()]
    low, high, spikes = robust_bounds(prices)
    tab.charts.append(Chart(
        "line", "Imbalance price and N2EX, last 48 periods (£/MWh)", (row + 3, 0),
        refs["start"], ((IMBALANCE, refs["imbalance"]), ("N2EX", refs["mid"])),
        "£/MWh", y_bounds=(low, high) if spikes else None,
        y_major=_nice_step((high - low) / 6) if spikes else None, x_interval=6))
    tab.put(row + 19, 0, _spike_note(series, spikes, low, high))
    tab.charts.append(Chart(
        "line", "Generation, wind and transmission demand, last 48 periods (GW)",
        (row + 21, 0), refs["start"],
        tuple((title, refs[key]) for key, title in (
            ("generation", "Generation"), ("wind", "Wind"), ("demand", DEMAND))),
        "GW", x_interval=6))
    return tab


def _spike_note(series: list[Series], spikes: list[float], low: float, high: float) -> Cell:
    """Which prices the chart's axis leaves out, so a spike is never silently clipped."""
    if not spikes:
        return Cell("No price spikes: the axis shows every period.", "muted")
    where = []
    for s in series:
        if s.key in ("imbalance", "mid"):
            where += [f"{'N2EX' if s.key == 'mid' else 'imbalance'} £{v:,.2f} "
                      f"at {period_label(p)}" for p, v in s.values.items()
                      if v is not None and (v > high or v < low)]
    return Cell(f"▲ Off the axis ({low:,.0f} to {high:,.0f} £/MWh): " + "; ".join(where),
                "spike")


def _data_tab(snapshot: Snapshot, series: list[Series]) -> tuple[Tab, dict[str, Range]]:
    """One row per window period: the series the sparklines and charts draw."""
    n = len(snapshot.window)
    headers = ["Settlement date", "Period", "Start (Europe/London)"] + [
        f"{s.title} ({s.unit})" for s in series]
    tab = Tab(DATA, rows=n + 1, cols=len(headers),
              col_widths=(14, 7, 18) + (14,) * len(series), freeze_rows=1)
    tab.put_row(0, [Cell(h, "heading" if i == 0 else "heading_num")
                    for i, h in enumerate(headers)])
    refs = {"start": Range(DATA, 1, 2, n, 2)}
    for offset, period in enumerate(snapshot.window):
        row = offset + 1
        tab.put_row(row, [
            Cell(period[0], "date_left"), Cell(period[1], "count"),
            Cell(london(period_start(*period)), "datetime"),
        ])
        for col, s in enumerate(series, start=3):
            value = s.values[period]
            tab.put(row, col, Cell(value, s.style) if value is not None
                    else missing(f"no {s.source} for {period_label(period)}", s.style))
    for col, s in enumerate(series, start=3):
        refs[s.key] = Range(DATA, 1, col, n, col)
    return tab, refs


def _generation_tab(snapshot: Snapshot) -> Tab:
    tab = Tab(GENERATION, rows=50, cols=6, col_widths=(26, 11, 11, 10, 24, 2), freeze_rows=1)
    fuel = fuel_periods(snapshot)
    in_window = [p for p in snapshot.window if p in fuel]
    tab.put(0, 0, Cell("Generation mix", "title"))
    if not in_window:
        tab.put(1, 0, missing(
            f"no FUELINST data in the 48 periods to {period_label(snapshot.window[-1])}"))
        tab.put(1, 1, Cell("No FUELINST data for the last 48 periods", "warning"))
        return tab
    period = in_window[-1]
    latest = fuel[period]
    partial = latest.samples < SAMPLES_PER_PERIOD
    tab.put(1, 0, Cell(
        f"{period_label(period)}, starting {london(period_start(*period)):%H:%M} "
        "Europe/London: mean of the period's 5-minute FUELINST samples", "muted",
        note=(f"period in progress: mean of {latest.samples} of {SAMPLES_PER_PERIOD} "
              "five-minute samples so far") if partial else None))
    fuels = sorted({f for p in in_window for f in fuel[p].mw if not is_interconnector(f)})
    links = sorted({f for p in in_window for f in fuel[p].mw if is_interconnector(f)})
    total = latest.generation_mw
    tab.put_row(3, [Cell("Fuel", "heading"), Cell("GW", "heading_num"),
                    Cell("Share", "heading_num"), Cell("Code", "heading_center"),
                    Cell(None, "heading")])
    ordered = sorted(fuels, key=lambda f: -latest.mw.get(f, float("-inf")))
    row = 4
    for code in ordered:
        mw = latest.mw.get(code)
        if mw is None:
            tab.put_row(row, [Cell(FUEL_NAMES.get(code, code)),
                              missing(f"no FUELINST {code} sample in {period_label(period)}", "gw"),
                              Cell(None), Cell(code, "muted_center"), Cell(None)])
        else:
            share = mw / total if total else None
            tab.put_row(row, [Cell(FUEL_NAMES.get(code, code)), Cell(mw / 1000, "gw"),
                              Cell(share, "share"), Cell(code, "muted_center"),
                              Cell(share, "share", bar=True)])
        row += 1
    tab.put_row(row, [Cell("Total generation", "label"),
                      Cell(None if total is None else total / 1000, "gw"),
                      Cell(1.0 if total else None, "share")])
    mix = Range(GENERATION, 4, 1, row - 1, 1)
    tab.charts.append(Chart("bar", f"Generation by fuel, {period_label(period)} (GW)",
                            (3, 6), Range(GENERATION, 4, 0, row - 1, 0),
                            (("GW", mix),), "GW", size=(520, 360)))
    row += 2
    tab.put(row, 0, Cell("Interconnectors (+ import, − export)", "section"))
    row += 1
    tab.put_row(row, [Cell("Interconnector", "heading"), Cell("MW", "heading_num"),
                      Cell("Direction", "heading_center"), Cell("Code", "heading_center")])
    row += 1
    for code in sorted(links, key=lambda f: -latest.mw.get(f, float("-inf"))):
        mw = latest.mw.get(code)
        if mw is None:
            cells = [missing(f"no FUELINST {code} sample in {period_label(period)}", "mw"),
                     Cell(None)]
        else:
            direction = "import" if mw > 0 else "export" if mw < 0 else "idle"
            cells = [Cell(mw, "mw"), Cell(direction, "text_center")]
        tab.put_row(row, [Cell(INTERCONNECTOR_NAMES.get(code, code)), *cells,
                          Cell(code, "muted_center")])
        row += 1
    net = latest.net_imports_mw
    tab.put_row(row, [Cell("Net imports", "label"),
                      Cell(net, "mw") if net is not None
                      else missing(f"no interconnector rows in {period_label(period)}", "mw")])
    return tab


def acceptance_volumes(segments: Sequence[Row]) -> tuple[float, float]:
    """(offer MWh, bid MWh) of BOALF segments, summed over units (see :func:`unit_volumes`)."""
    volumes = unit_volumes(segments).values()
    return sum(v.offer_mwh for v in volumes), sum(v.bid_mwh for v in volumes)


# Battery units: Elexon's reference data gives no battery fuel type today, so a unit is a
# battery when its fuel type says so or, lacking one (or OTHER), when its name does.
BATTERY_FUEL_TYPES = frozenset({"BATTERY", "BESS", "STORAGE", "ELECTRICITY STORAGE"})
BATTERY_NAME = re.compile(r"\b(BESS|BATTERY|BATTERIES|BATT|ENERGY STORAGE|STORAGE)\b",
                          re.IGNORECASE)
NOT_BATTERY_FUEL_TYPES = frozenset({"PS"})  # pumped storage is storage, not a battery


def is_battery(unit: Row) -> bool:
    fuel = str(unit.get("fuelType") or "").upper()
    if fuel in BATTERY_FUEL_TYPES:
        return True
    if fuel and fuel not in ("OTHER",) or fuel in NOT_BATTERY_FUEL_TYPES:
        return False
    return bool(BATTERY_NAME.search(str(unit.get("bmUnitName") or "")))


UNIT_HEADERS = ("BM unit", "Name", "Fuel / type", "Battery", "Acceptances", "Offer MWh",
                "Bid MWh", "Offer £/MWh (BOD +1)", "Bid £/MWh (BOD −1)", "", "Lead party")
UNITS_NOT_AVAILABLE = ("BM unit types are not available yet: the warehouse holds no BM-unit "
                       "reference data (dataset BMUNITS, view bmunits_latest), so batteries "
                       "cannot be flagged.")


def _balancing_tab(snapshot: Snapshot) -> Tab:
    settled = snapshot.settled_day
    today = settled + dt.timedelta(days=1)
    first_units = 17
    rows = first_units + TOP_UNITS_SETTLED + 3 + TOP_UNITS_TODAY + 2
    tab = Tab(BALANCING, rows=rows, cols=len(UNIT_HEADERS),
              col_widths=(38, 26, 12, 8, 12, 11, 11, 13, 13, 2, 30), freeze_rows=1)
    tab.put(0, 0, Cell(f"Balancing: acceptances per BM unit, {settled.isoformat()} and today so "
                       "far", "title"))
    references = None if snapshot.bm_units is None else {
        str(r.get("nationalGridBmUnit")): r for r in snapshot.bm_units}
    if references is None:
        tab.put(1, 0, Cell("⚠ " + UNITS_NOT_AVAILABLE, "warning"))
    else:
        tab.put(1, 0, Cell(
            "Unit types from bmunits_latest; battery = fuel type BATTERY, or a unit without a "
            "fuel type (or OTHER) named BESS / battery / storage.", "muted"))

    volumes = (snapshot.unit_volumes if snapshot.unit_volumes is not None
               else unit_volumes(snapshot.acceptances))
    per_day = {day: [v for (d, _), v in volumes.items() if d == day] for day in (settled, today)}
    batteries = {u for u, r in (references or {}).items() if is_battery(r)}

    tab.put_row(3, [Cell("Measure", "heading"), Cell(f"{settled.isoformat()}", "heading_num"),
                    Cell("Today so far", "heading_num"), Cell("Unit", "heading"),
                    Cell("How", "heading")])
    summary: list[tuple[str, str, str, str, Callable[[list[UnitVolume]], float]]] = [
        ("Acceptances (BOALF)", "count", "", "distinct (BM unit, acceptance number)",
         lambda vs: sum(len(v.acceptances) for v in vs)),
        ("BM units accepted", "count", "", "units with an acceptance",
         lambda vs: len({v.unit for v in vs})),
        ("Accepted offer volume (BOALF)", "mwh", "MWh",
         "accepted level integrated over time, > 0 MW", lambda vs: sum(v.offer_mwh for v in vs)),
        ("Accepted bid volume (BOALF)", "mwh", "MWh",
         "accepted level integrated over time, < 0 MW", lambda vs: sum(v.bid_mwh for v in vs)),
    ]
    if references is not None:
        summary += [
            ("Battery offer volume", "mwh", "MWh", "units flagged as batteries",
             lambda vs: sum(v.offer_mwh for v in vs if v.unit in batteries)),
            ("Battery bid volume", "mwh", "MWh", "units flagged as batteries",
             lambda vs: sum(v.bid_mwh for v in vs if v.unit in batteries)),
        ]
    row = 4
    for label, style, unit, how, fn in summary:
        cells = []
        for day in (settled, today):
            if per_day[day]:
                cells.append(Cell(fn(per_day[day]), style))
            else:
                cells.append(missing(f"no BOALF acceptances for {day} published by the as-of "
                                     "time", style))
        tab.put_row(row, [Cell(label, "label"), *cells, Cell(unit, "muted"), Cell(how, "muted")])
        row += 1
    if references is None:
        tab.put_row(row, [Cell("Battery volumes", "label"), missing(UNITS_NOT_AVAILABLE),
                          missing(UNITS_NOT_AVAILABLE), Cell(None),
                          Cell("needs BM-unit reference data", "muted")])
        row += 1
    row = _settlement_rows(tab, snapshot, row)

    prices = defaultdict(dict)  # (day, unit) -> {period: (offer +1, bid -1)}
    for r in snapshot.bid_offer_prices:
        key = (r["settlementDate"], str(r["nationalGridBmUnit"]))
        offer, bid = prices[key].get(r["settlementPeriod"], (None, None))
        if int(r["pairId"]) == 1:
            offer = r["offer"]
        else:
            bid = r["bid"]
        prices[key][r["settlementPeriod"]] = (offer, bid)
    row = first_units
    for day, label, count in ((settled, f"Top units, {settled.isoformat()}", TOP_UNITS_SETTLED),
                              (today, "Top units, today so far", TOP_UNITS_TODAY)):
        tab.put(row - 2, 0, Cell(f"{label} (by accepted MWh, offers + |bids|)", "section"))
        tab.put_row(row - 1, [Cell(h or None, "heading_num" if 4 <= i <= 8 else "heading")
                              for i, h in enumerate(UNIT_HEADERS)])
        ranked = top_units(volumes, day, count)
        if not ranked:
            tab.put(row, 0, missing(f"no BOALF acceptances for {day} published by the as-of time"))
        for offset, volume in enumerate(ranked):
            ref = (references or {}).get(volume.unit)
            tab.put_row(row + offset, _unit_row(volume, ref, references is not None,
                                                prices.get((day, volume.unit), {})))
        row += count + 3
    return tab


def _unit_row(volume: UnitVolume, ref: Row | None, have_references: bool,
              prices: dict[int, tuple[float | None, float | None]]) -> list[Cell]:
    if ref is not None:
        fuel = str(ref.get("fuelType") or "")
        kind = " / ".join(x for x in (fuel, str(ref.get("bmUnitType") or "")) if x)
        who = [Cell(ref.get("bmUnitName")), Cell(kind or None), Cell(
            "yes" if is_battery(ref) else "no", "ok" if is_battery(ref) else "muted")]
        party = Cell(ref.get("leadPartyName"))
    elif have_references:
        note = f"{volume.unit} is not in bmunits_latest"
        who = [missing(note), Cell(None), missing(note)]
        party = Cell(None)
    else:
        who = [Cell(None), Cell(None), missing(UNITS_NOT_AVAILABLE)]
        party = Cell(None)
    return [Cell(volume.unit, "label"), *who, Cell(len(volume.acceptances), "count"),
            Cell(volume.offer_mwh, "mwh"), Cell(volume.bid_mwh, "mwh"),
            _weighted_price(volume, prices, 0), _weighted_price(volume, prices, 1), Cell(None),
            party]


def _weighted_price(volume: UnitVolume, prices: dict[int, tuple[float | None, float | None]],
                    side: int) -> Cell:
    """The BOD price of the unit's first band, weighted by its accepted MWh per period."""
    name = ("offer", "bid")[side]
    periods = {p: abs(v[side]) for p, v in volume.periods.items() if abs(v[side]) > 1e-9}
    if not periods:
        return Cell(None)
    priced = {p: w for p, w in periods.items()
              if prices.get(p, (None, None))[side] is not None}
    if not priced:
        return missing(f"no BOD pair {'+1' if side == 0 else '-1'} {name} price for "
                       f"{volume.unit} in the periods it was accepted", "price")
    value = sum(float(prices[p][side]) * w for p, w in priced.items()) / sum(priced.values())
    note = None if len(priced) == len(periods) else (
        f"{len(priced)} of {len(periods)} periods with accepted {name}s have a BOD price")
    return Cell(value, "price", note=note)


def _settlement_rows(tab: Tab, snapshot: Snapshot, row: int) -> int:
    """DISBSAD cost and volume, and settlement's own accepted volumes, of the settled day."""
    day = snapshot.settled_day
    actions = snapshot.adjustments
    costed = [a["cost"] for a in actions if a["cost"] is not None]
    if not actions:
        cost = missing(f"no DISBSAD rows for {day}", "gbp")
        volume = missing(f"no DISBSAD rows for {day}", "mwh")
    else:
        cost_note = (f"{len(actions) - len(costed)} of {len(actions)} actions have no published "
                     "cost; the sum covers the others") if len(costed) < len(actions) else None
        cost = (Cell(sum(costed), "gbp", note=cost_note) if costed
                else missing(f"none of {len(actions)} DISBSAD actions on {day} has a cost", "gbp"))
        volume = Cell(sum(float(a["volume"]) for a in actions if a["volume"] is not None), "mwh")
    tab.put_row(row, [Cell("Balancing services cost (DISBSAD)", "label"), cost, Cell(None),
                      Cell("GBP", "muted"), Cell(f"sum over {len(actions)} actions", "muted")])
    tab.put_row(row + 1, [Cell("Balancing services volume (DISBSAD)", "label"), volume,
                          Cell(None), Cell("MWh", "muted"),
                          Cell("net sum of action volumes", "muted")])
    prices = [r for r in snapshot.system_prices if r["settlementDate"] == day]
    expected = periods_in_day(day)
    note = None if len(prices) >= expected else (
        f"{len(prices)} of {expected} periods have a DISEBSP row")
    for offset, (label, field) in enumerate((
            ("Accepted offer volume (settlement)", "totalAcceptedOfferVolume"),
            ("Accepted bid volume (settlement)", "totalAcceptedBidVolume"))):
        values = [float(r[field]) for r in prices if r[field] is not None]
        tab.put_row(row + 2 + offset, [
            Cell(label, "label"),
            Cell(sum(values), "mwh", note=note) if values
            else missing(f"no DISEBSP rows for {day}", "mwh"),
            Cell(None), Cell("MWh", "muted"), Cell(f"DISEBSP {field}, summed", "muted")])
    return row + 4


# The statutory band: National Grid ESO must keep frequency within 50 Hz ± 1%.
BAND_LOW, BAND_HIGH = 49.8, 50.2
# A gap in the samples longer than this ends an excursion (the data cannot say it went on).
EXCURSION_GAP = dt.timedelta(minutes=1)
MINUTES = 24 * 60


@dataclasses.dataclass(frozen=True)
class FrequencyStats:
    """The last day of FREQ samples: extremes, time outside the band, excursions."""

    samples: int
    spacing: dt.timedelta  # the typical time between samples (15 s)
    nadir: tuple[dt.datetime, float] | None
    zenith: tuple[dt.datetime, float] | None
    below: int  # samples under BAND_LOW
    above: int  # samples over BAND_HIGH
    excursions: int  # runs of consecutive samples outside the band

    @property
    def minutes_outside(self) -> float:
        return (self.below + self.above) * self.spacing.total_seconds() / 60


def frequency_stats(samples: Sequence[tuple[dt.datetime, float]]) -> FrequencyStats:
    """Statistics of time-ordered (instant, Hz) samples.

    Each sample stands for the typical spacing (the median gap between samples: 15 s for
    FREQ), so minutes outside the band = samples outside x spacing. An excursion is a run of
    consecutive samples outside the band; a gap over :data:`EXCURSION_GAP` ends a run.
    """
    ordered = sorted(samples)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(ordered)]
    spacing = statistics.median(gaps) if gaps else dt.timedelta(seconds=15)
    excursions = below = above = 0
    previous_out: dt.datetime | None = None
    for instant, hz in ordered:
        outside = hz < BAND_LOW or hz > BAND_HIGH
        below += hz < BAND_LOW
        above += hz > BAND_HIGH
        if outside:
            if previous_out is None or instant - previous_out > EXCURSION_GAP:
                excursions += 1
            previous_out = instant
        else:
            previous_out = None
    return FrequencyStats(
        samples=len(ordered), spacing=spacing,
        nadir=min(ordered, key=lambda s: (s[1], s[0])) if ordered else None,
        zenith=max(ordered, key=lambda s: (s[1], -s[0].timestamp())) if ordered else None,
        below=below, above=above, excursions=excursions)


def _frequency_tab(snapshot: Snapshot) -> Tab:
    end = snapshot.now
    start = end - FREQUENCY_SPAN
    samples = [(r["measurementTime"], float(r["frequency"])) for r in snapshot.frequency
               if r["frequency"] is not None and start < r["measurementTime"] <= end]
    stats = frequency_stats(samples)
    first_minute = (end - dt.timedelta(minutes=MINUTES - 1)).replace(second=0, microsecond=0)
    data_col = 6
    tab = Tab(FREQUENCY, rows=MINUTES + 2, cols=data_col + 6,
              col_widths=(40, 12, 8, 22, 3, 3, 15, 9, 9, 9, 7, 7), freeze_rows=2,
              print_area=(42, data_col - 1))  # the figures and the chart, not 1,440 minutes
    tab.put(0, 0, Cell(f"System frequency, 24 hours to {london(end):%Y-%m-%d %H:%M}", "title"))
    tab.put(1, 0, Cell(f"Statutory band {BAND_LOW}–{BAND_HIGH} Hz (50 Hz ± 1%); FREQ samples "
                       "every 15 s, measured by the as-of time.", "muted"))
    tab.put_row(3, [Cell("Measure", "heading"), Cell("Value", "heading_num"),
                    Cell("Unit", "heading"), Cell("When (Europe/London)", "heading")])
    span = f"the 24 hours to {london(end):%Y-%m-%d %H:%M}"
    none = f"no FREQ sample in {span}"
    expected = int(FREQUENCY_SPAN / dt.timedelta(seconds=15))
    latest = max(samples) if samples else None
    rows = [
        ("Latest sample", Cell(latest[1], "hz") if latest else missing(none, "hz"), "Hz",
         latest[0] if latest else None),
        ("Nadir (lowest)", Cell(stats.nadir[1], "hz") if stats.nadir else missing(none, "hz"),
         "Hz", stats.nadir[0] if stats.nadir else None),
        ("Zenith (highest)", Cell(stats.zenith[1], "hz") if stats.zenith else
         missing(none, "hz"), "Hz", stats.zenith[0] if stats.zenith else None),
        (f"Minutes outside {BAND_LOW}–{BAND_HIGH} Hz",
         Cell(stats.minutes_outside, "gw") if samples else missing(none, "gw"), "min", None),
        (f"  below {BAND_LOW} Hz", Cell(stats.below * stats.spacing.total_seconds() / 60, "gw")
         if samples else missing(none, "gw"), "min", None),
        (f"  above {BAND_HIGH} Hz", Cell(stats.above * stats.spacing.total_seconds() / 60, "gw")
         if samples else missing(none, "gw"), "min", None),
        ("Excursions outside the band", Cell(stats.excursions, "count") if samples
         else missing(none, "count"), "", None),
        ("Samples", Cell(stats.samples, "count",
                         note=None if stats.samples >= expected else
                         f"{stats.samples} of {expected} 15-second samples: the rest are "
                         "missing, so time outside may be undercounted"), f"of {expected}", None),
    ]
    for offset, (label, value, unit, when) in enumerate(rows):
        tab.put_row(4 + offset, [Cell(label, "label"), value, Cell(unit, "muted"),
                                 Cell(when, "datetime_s") if when else Cell(None)])
    tab.put(13, 0, Cell("An excursion is a run of consecutive samples outside the band (a "
                        "gap over 1 minute ends it);", "muted"))
    tab.put(14, 0, Cell("each sample outside counts for its 15 s.", "muted"))

    # Per-minute min / mean / max beside the band, for the chart.
    buckets: dict[dt.datetime, list[float]] = defaultdict(list)
    for instant, hz in samples:
        buckets[instant.replace(second=0, microsecond=0)].append(hz)
    tab.put_row(1, [Cell(h, "heading" if i == 0 else "heading_num") for i, h in enumerate(
        ("Minute", "Min Hz", "Mean Hz", "Max Hz", str(BAND_LOW), str(BAND_HIGH)))],
        first_col=data_col)
    for offset in range(MINUTES):
        minute = first_minute + dt.timedelta(minutes=offset)
        values = buckets.get(minute)
        tab.put_row(2 + offset, [
            Cell(minute, "time"),
            *((Cell(min(values), "hz"), Cell(statistics.fmean(values), "hz"),
               Cell(max(values), "hz")) if values else (Cell(None), Cell(None), Cell(None))),
            Cell(BAND_LOW, "hz"), Cell(BAND_HIGH, "hz")], first_col=data_col)
    last = 1 + MINUTES
    ref = lambda col: Range(FREQUENCY, 2, data_col + col, last, data_col + col)
    present = [hz for _, hz in samples]
    # Whole 0.05 Hz steps around the band and every sample, so gridlines fall on 49.80...
    low = math.floor((min([BAND_LOW, *present]) - 0.01) * 20) / 20
    high = math.ceil((max([BAND_HIGH, *present]) + 0.01) * 20) / 20
    tab.charts.append(Chart(
        "line", "Frequency per minute, last 24 hours (Hz)", (16, 0), ref(0),
        (("Min", ref(1)), ("Mean", ref(2)), ("Max", ref(3)),
         (f"{BAND_LOW} Hz", ref(4)), (f"{BAND_HIGH} Hz", ref(5))),
        "Hz", size=(600, 360), y_bounds=(round(low, 2), round(high, 2)), y_major=0.05,
        colors=("#9DC3E6", "#1F3864", "#9DC3E6", "#C00000", "#C00000"), x_interval=120))
    return tab


TOP_PERIODS = 5


def _prices_tab(snapshot: Snapshot, series: list[Series]) -> Tab:
    """Single imbalance price, N2EX, their difference, NIV, spreads and the 30-day spread."""
    n_days = SPREAD_DAYS + 1
    history_row = 31
    tab = Tab(PRICES, rows=history_row + n_days + 2, cols=10,
              col_widths=(30, 12, 9, 16, 12, 3, 24, 12, 9, 16), freeze_rows=1)
    today, yesterday = snapshot.window[-1][0], snapshot.window[-1][0] - dt.timedelta(days=1)
    tab.put(0, 0, Cell(f"Prices, settlement day {today.isoformat()}", "title"))
    tab.put(1, 0, Cell(
        f"As of {london(snapshot.now):%Y-%m-%d %H:%M} Europe/London. Imbalance price: one "
        "single price since BSC P305 (Nov 2015), DISEBSP's latest run published by then. "
        f"N2EX: MID {MID_PROVIDER}. NIV: DISEBSP netImbalanceVolume (+ short, − long).",
        "muted"))

    # Latest period of each measure.
    tab.put(3, 0, Cell("Latest", "section"))
    tab.put_row(4, [Cell("Measure", "heading"), Cell("Value", "heading_num"),
                    Cell("Unit", "heading"), Cell("Period", "heading")])
    by_key = {s.key: s for s in series}
    span = f"the 48 periods to {period_label(snapshot.window[-1])}"
    for offset, key in enumerate(("imbalance", "mid", "imbalance_vs_n2ex", "niv")):
        s = by_key[key]
        latest = s.latest()
        tab.put_row(5 + offset, [
            Cell(s.title, "label"),
            Cell(latest[1], s.style) if latest else missing(f"no {s.source} in {span}", s.style),
            Cell(s.unit, "muted"), Cell(period_label(latest[0])) if latest else Cell(None)])

    # Today's and yesterday's spread.
    prices = {(r["settlementDate"], r["settlementPeriod"]): r for r in snapshot.system_prices}
    per_day = {day: sorted(((p, single_price(r)) for (d, p), r in prices.items()
                            if d == day and single_price(r) is not None), key=lambda x: x[0])
               for day in (today, yesterday)}
    tab.put(10, 0, Cell("Daily spread (max − min of the imbalance price)", "section"))
    tab.put_row(11, [Cell(h, "heading") for h in ("Day",)] + [
        Cell(h, "heading_num") for h in ("Spread", "Periods", "Min", "Max")] + [
        Cell(None), Cell("Min at", "heading"), Cell("Max at", "heading")])
    for offset, (label, day) in enumerate((("Today so far", today), ("Yesterday", yesterday))):
        values = per_day[day]
        expected = periods_in_day(day)
        if not values:
            tab.put_row(12 + offset, [Cell(f"{label} ({day.isoformat()})", "label"),
                                      missing(f"no DISEBSP rows for {day} published by the "
                                              "as-of time", "price")])
            continue
        low = min(values, key=lambda x: (x[1], x[0]))
        high = max(values, key=lambda x: (x[1], -x[0]))
        tab.put_row(12 + offset, [
            Cell(f"{label} ({day.isoformat()})", "label"),
            Cell(high[1] - low[1], "price",
                 note=None if len(values) >= expected or day == today else
                 f"only {len(values)} of {expected} periods have a price"),
            Cell(f"{len(values)}/{expected}", "text_num"),
            Cell(low[1], "price"), Cell(high[1], "price"), Cell(None),
            Cell(f"SP {low[0]} ({london(period_start(day, low[0])):%H:%M})"),
            Cell(f"SP {high[0]} ({london(period_start(day, high[0])):%H:%M})")])

    # Top and bottom periods, today and yesterday side by side.
    tab.put(15, 0, Cell("Highest and lowest periods (imbalance price, £/MWh)", "section"))
    tab.put_row(16, [Cell(f"Today so far ({today.isoformat()})", "heading"),
                     Cell("£/MWh", "heading_num"), Cell("SP", "heading_num"),
                     Cell("Start", "heading"), Cell(None), Cell(None),
                     Cell(f"Yesterday ({yesterday.isoformat()})", "heading"),
                     Cell("£/MWh", "heading_num"), Cell("SP", "heading_num"),
                     Cell("Start", "heading")])
    for block, day in ((0, today), (6, yesterday)):
        values = per_day[day]
        ranked_high = sorted(values, key=lambda x: (-x[1], x[0]))[:TOP_PERIODS]
        ranked_low = sorted(values, key=lambda x: (x[1], x[0]))[:TOP_PERIODS]
        rows = [("Highest", i + 1, v) for i, v in enumerate(ranked_high)] + \
               [("Lowest", i + 1, v) for i, v in enumerate(ranked_low)]
        if not values:
            tab.put(17, block, missing(f"no DISEBSP rows for {day}"))
        for offset, (kind, rank, (period, price)) in enumerate(rows):
            tab.put_row(17 + offset, [
                Cell(f"{kind} #{rank}", "label"), Cell(price, "price"),
                Cell(period, "count"),
                Cell(london(period_start(day, period)), "datetime")], first_col=block)

    # The daily spread of the last SPREAD_DAYS days, with a capped axis and spikes marked.
    daily = {r["settlementDate"]: r for r in snapshot.daily_prices}
    days = [today - dt.timedelta(days=n_days - 1 - i) for i in range(n_days)]
    spreads = {d: float(daily[d]["high"]) - float(daily[d]["low"]) for d in days
               if d in daily and daily[d]["high"] is not None}
    low, high, _ = robust_bounds(list(spreads.values()))
    low = min(0.0, low)
    spikes = [d for d, v in spreads.items() if v > high]
    tab.put(history_row - 2, 0, Cell(
        f"Daily spread, last {n_days} days (imbalance price max − min, £/MWh)", "section"))
    tab.put_row(history_row - 1, [Cell("Day", "heading")] + [
        Cell(h, "heading_num") for h in ("Spread", "Periods", "Min", "Max", "")] + [
        Cell("Mean", "heading_num"), Cell("Chart: spread", "heading_num"),
        Cell("Chart: spike", "heading_num"), Cell("Note", "heading")])
    for offset, day in enumerate(days):
        row = history_row + offset
        stats = daily.get(day)
        if day not in spreads or stats is None:
            tab.put_row(row, [Cell(day, "date_left"),
                              missing(f"no DISEBSP rows for {day} published by the as-of time",
                                      "price")])
            continue
        spread = spreads[day]
        spike = spread > high
        partial = int(stats["periods"]) < periods_in_day(day)
        tab.put_row(row, [
            Cell(day, "date_left"), Cell(spread, "spike_price" if spike else "price"),
            Cell(f"{int(stats['periods'])}/{periods_in_day(day)}", "text_num"),
            Cell(float(stats["low"]), "price"), Cell(float(stats["high"]), "price"), Cell(None),
            Cell(float(stats["mean"]), "price"),
            Cell(None if spike else spread, "price"), Cell(high if spike else None, "price"),
            Cell(("▲ spike: off the chart's axis" if spike else "")
                 + ("; " if spike and partial else "")
                 + ("partial day" if partial else ""), "spike" if spike else "muted"),
        ])
    last = history_row + n_days - 1
    categories = Range(PRICES, history_row, 0, last, 0)
    tab.charts.append(Chart(
        "column", f"Daily imbalance-price spread, last {n_days} days (£/MWh)", (3, 11),
        categories, (("Spread", Range(PRICES, history_row, 7, last, 7)),
                     ("Spike (off the axis, see the table)", Range(PRICES, history_row, 8, last, 8))),
        "£/MWh", size=(720, 340), y_bounds=(low, high), y_major=_nice_step((high - low) / 6),
        colors=("#5B9BD5", "#C00000"),
        x_format="d mmm", x_interval=3))
    tab.put(history_row + n_days, 0, Cell(
        f"Spikes: days whose spread is far above the rest (3 x IQR and the median beyond the "
        f"upper quartile) are drawn in red "
        f"at the axis top ({high:,.0f}); their real spread is in column B." if spikes else
        "No spikes: every day's spread is on the chart's scale.", "muted"))
    return tab


def _outages_tab(snapshot: Snapshot) -> Tab:
    headers = ("Asset", "BM unit", "Fuel", "Unavailable MW", "Normal MW", "Type", "Cause",
               "Start (Europe/London)", "Expected return", "Revision")
    tab = Tab(OUTAGES, rows=OUTAGE_ROWS + 5, cols=len(headers),
              col_widths=(14, 14, 20, 14, 11, 12, 22, 18, 18, 9), freeze_rows=4)
    tab.put(0, 0, Cell(
        f"Largest active outages over {OUTAGE_MIN_MW:.0f} MW at "
        f"{london(snapshot.now):%Y-%m-%d %H:%M} (REMIT, latest revision per notice)", "title"))
    span = len(snapshot.remit_coverage)
    loaded = [c for c in snapshot.remit_coverage if c.status in ("complete", "empty")]
    if len(loaded) < span:
        tab.put(1, 0, Cell(
            f"⚠ REMIT history covers {len(loaded)} of the last {span} days: outages announced "
            "before then are missing until the REMIT backfill completes", "warning"))
    else:
        tab.put(1, 0, Cell(f"REMIT history complete for the last {span} days", "ok"))
    # Numbers and times right-aligned under right-aligned headings; Type, centred, keeps the
    # normal MW apart from the cause's text.
    tab.put_row(3, [Cell(h, "heading_num" if i in (3, 4, 7, 8, 9) else
                         "heading_center" if i == 5 else "heading")
                    for i, h in enumerate(headers)])
    if not snapshot.outages:
        if loaded:
            tab.put(4, 0, Cell(f"No active outage over {OUTAGE_MIN_MW:.0f} MW", "muted"))
        else:
            tab.put(4, 0, missing("no REMIT data loaded: outages unknown"))
    for offset, o in enumerate(snapshot.outages):
        end = o["eventEndTime"]
        tab.put_row(4 + offset, [
            Cell(o["assetId"]), Cell(o["affectedUnit"]), Cell(o["fuelType"]),
            Cell(o["unavailableCapacity"], "mw"),
            Cell(o["normalCapacity"], "mw") if o["normalCapacity"] is not None
            else missing("notice gives no normal capacity", "mw"),
            Cell(o["unavailabilityType"], "text_center"), Cell(o["cause"]),
            Cell(london(o["eventStartTime"]), "datetime"),
            Cell(london(end), "datetime") if end else missing("no end time published", "datetime"),
            Cell(o["revisionNumber"], "count", note=f"mrid {o['mrid']}"),
        ])
    return tab


def _health_tab(snapshot: Snapshot) -> Tab:
    headers = ("Dataset", "Newest row (Europe/London)", "Age", "Freshness",
               f"Complete days (last {HEALTH_DAYS})", "Periods present", "Gaps (days)",
               "Failed chunks", "Duplicates dropped", "IRIS last message", "Description")
    datasets, never = health_rows(snapshot)
    tab = Tab(HEALTH, rows=len(catalog.DATASETS) + 4, cols=len(headers),
              col_widths=(18, 17, 11, 10, 11, 11, 9, 9, 11, 17, 56), freeze_rows=3)
    days = next(iter(snapshot.coverage.values()), [])
    window = f"{days[0].date} to {days[-1].date}" if days else ""
    tab.put(0, 0, Cell("Data health", "title"))
    tab.put(1, 0, Cell(f"Coverage over the settled days {window}; freshness at "
                       f"{london(snapshot.now):%Y-%m-%d %H:%M}", "muted"))
    numeric = {2, 4, 5, 6, 7, 8}  # right-aligned, under right-aligned headers
    centred = {3, 9}  # between a number and text: centred, so neither runs into the other
    tab.put_row(2, [Cell(h, "heading_num" if i in numeric else
                         "heading_center" if i in centred else "heading")
                    for i, h in enumerate(headers)])
    for offset, dataset in enumerate(datasets):
        known = snapshot.freshness[dataset.code]
        records = snapshot.coverage.get(dataset.code, [])
        if known.newest_utc is None:
            fresh = [missing(f"no {dataset.code} rows published by "
                             f"{london(snapshot.now):%Y-%m-%d %H:%M}", "datetime"), Cell(None), Cell("no data", "warning_center")]
        else:
            fresh = [Cell(london(known.newest_utc), "datetime"),
                     Cell(age_text(snapshot.now - known.newest_utc), "text_num"),
                     Cell("stale" if known.stale else "ok",
                          "warning_center" if known.stale else "ok_center",
                          note=f"stale after {age_text(known.threshold)}")]
        complete = [c for c in records if c.status == "complete"]
        gaps = [c for c in records if c.status in ("missing", "partial", "empty")]
        failed = [c for c in records if c.status == "failed"]
        expected = [c.periods_expected for c in records if c.periods_expected is not None]
        present = sum(c.periods_present or 0 for c in records)
        iris = snapshot.iris_last_message.get(dataset.code)
        tab.put_row(3 + offset, [
            Cell(dataset.code, "label"), *fresh,
            Cell(f"{len(complete)}/{len(records)}", "ok_num" if len(complete) == len(records)
                 else "warning_num"),
            Cell(f"{present}/{sum(expected)}", "text_num") if expected
            else Cell("n/a", "muted_num"),
            Cell(len(gaps), "count", note=_list_days(gaps)),
            Cell(len(failed), "count", note=_list_days(failed)),
            Cell(sum(c.duplicates_dropped for c in records), "count"),
            Cell(london(iris), "datetime_center") if iris else Cell(NO_IRIS, "muted_center"),
            Cell(dataset.description, "muted"),
        ])
    if never:
        tab.put(3 + len(datasets), 0, Cell(
            f"Never loaded ({len(never)} more configured datasets: no rows, no fetch over "
            f"these days): {', '.join(d.code for d in never)}", "muted",
            note="\n".join(f"{d.code}: {d.description}" for d in never)))
    return tab


def health_rows(snapshot: Snapshot) -> tuple[list[catalog.Dataset], list[catalog.Dataset]]:
    """(datasets shown one per row, datasets summed up in one line) of the health tab.

    With the whole catalog configured most datasets may never have been loaded; a row of
    "no data" each would bury the few that matter. Datasets holding rows come first, then
    those fetched (failed, empty) or read by the tabs; the never-loaded rest share a line.
    """
    shown: list[catalog.Dataset] = []
    never: list[catalog.Dataset] = []
    for code, records in snapshot.coverage.items():
        known = snapshot.freshness.get(code)
        attempted = any(c.status != "missing" for c in records)
        if known is None or (known.newest_utc is None and not attempted
                             and code not in DASHBOARD_DATASETS):
            never.append(catalog.get(code))
        else:
            shown.append(catalog.get(code))
    with_rows = [d for d in shown if snapshot.freshness[d.code].newest_utc is not None]
    return with_rows + [d for d in shown if d not in with_rows], never


def _list_days(records: list) -> str | None:  # type: ignore[type-arg]
    if not records:
        return None
    return "\n".join(
        f"{c.date}: {c.status}" + (f" ({c.reason})" if c.reason else "") for c in records)
