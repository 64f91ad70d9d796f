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
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Literal

from sheets.queries import HEALTH_DAYS, MID_PROVIDER, OUTAGE_MIN_MW, OUTAGE_ROWS, Snapshot
from worker.elexon import catalog
from worker.cluster.freshness import SEARCH_DAYS
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


STYLES: dict[str, Style] = {
    "text": Style(),
    "title": Style(bold=True, size=16),
    "section": Style(bold=True, size=12, color="#1F3864"),
    "heading": Style(bold=True, fill="#D9E1F2", wrap=True),
    "label": Style(bold=True),
    "muted": Style(italic=True, color="#666666"),
    "warning": Style(bold=True, color="#9C0006", fill="#FFC7CE"),
    "ok": Style(color="#006100", fill="#C6EFCE"),
    "price": Style(number="#,##0.00"),
    "gw": Style(number="0.00"),
    "mw": Style(number="#,##0"),
    "mwh": Style(number="#,##0"),
    "gbp": Style(number="£#,##0"),
    "hz": Style(number="0.000"),
    "share": Style(number="0.0%"),
    "count": Style(number="0"),
    "datetime": Style(number="yyyy-mm-dd hh:mm"),
    "date": Style(number="yyyy-mm-dd"),
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

    return [
        Series("ssp", "System sell price", "£/MWh", "price", "DISEBSP row",
               pick(prices, lambda r: r["systemSellPrice"])),
        Series("sbp", "System buy price", "£/MWh", "price", "DISEBSP row",
               pick(prices, lambda r: r["systemBuyPrice"])),
        Series("mid", "Market index price (N2EX)", "£/MWh", "price",
               f"MID row from {MID_PROVIDER}", pick(mid, lambda price: price)),
        Series("generation", "Total generation", "GW", "gw", "FUELINST sample",
               pick(fuel, lambda f: gw(f.generation_mw))),
        Series("wind", "Wind", "GW", "gw", "FUELINST WIND sample",
               pick(fuel, lambda f: gw(f.mw.get("WIND")))),
        Series("net_imports", "Net interconnector imports", "GW", "gw",
               "FUELINST interconnector sample", pick(fuel, lambda f: gw(f.net_imports_mw))),
        Series("demand", "Demand (generation + net imports)", "GW", "gw",
               "FUELINST generation and interconnector sample",
               pick(fuel, lambda f: gw(f.demand_mw))),
        Series("frequency", "Frequency (period mean)", "Hz", "hz", "FREQ sample",
               pick(hz, lambda v: v)),
    ]


# ---------------------------------------------------------------- building the tabs


def build(snapshot: Snapshot) -> Dashboard:
    """The dashboard for one warehouse snapshot."""
    series = window_series(snapshot)
    data_tab, refs = _data_tab(snapshot, series)
    tabs = [
        _overview_tab(snapshot, series, refs),
        _generation_tab(snapshot),
        _balancing_tab(snapshot),
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
            warnings.append(f"No {code} data in the last {SEARCH_DAYS} days")
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
GENERATION = "Generation"
BALANCING = "Balancing"
OUTAGES = "Outages"
HEALTH = "Data health"
DATA = "Data"
TAB_NAMES = (OVERVIEW, GENERATION, BALANCING, OUTAGES, HEALTH, DATA)


def _overview_tab(snapshot: Snapshot, series: list[Series], refs: dict[str, Range]) -> Tab:
    tab = Tab(OVERVIEW, rows=30, cols=8, col_widths=(36, 14, 9, 22, 30, 12, 12, 2), freeze_rows=1)
    now_local = london(snapshot.now)
    day, period = snapshot.window[-1]
    tab.put(0, 0, Cell("GB power market dashboard", "title"))
    tab.put_row(1, [Cell("Last updated (Europe/London)", "label"), Cell(now_local, "datetime")])
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
    tab.put_row(8, [Cell(h, "heading") for h in (
        "Measure", "Latest", "Unit", "As of", "Last 48 periods", "48-period min",
        "48-period max")])
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
            Cell(s.title, "label"), value, Cell(s.unit, "muted"), as_of,
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
        "Period values are means of the period's samples (FUELINST every 5 min, FREQ every "
        "15 s); prices per settlement period; blank = no data, see the cell's note.", "muted"))
    tab.charts.append(Chart(
        "line", "Prices, last 48 periods", (row + 3, 0), refs["start"],
        tuple((title, refs[key]) for key, title in (
            ("ssp", "System sell price"), ("mid", "Market index (N2EX)"))),
        "£/MWh"))
    tab.charts.append(Chart(
        "line", "Generation, wind and demand, last 48 periods", (row + 19, 0), refs["start"],
        tuple((title, refs[key]) for key, title in (
            ("generation", "Generation"), ("wind", "Wind"), ("demand", "Demand"))),
        "GW"))
    return tab


def _data_tab(snapshot: Snapshot, series: list[Series]) -> tuple[Tab, dict[str, Range]]:
    """One row per window period: the series the sparklines and charts draw."""
    n = len(snapshot.window)
    headers = ["Settlement date", "Period", "Start (Europe/London)"] + [
        f"{s.title} ({s.unit})" for s in series]
    tab = Tab(DATA, rows=n + 1, cols=len(headers),
              col_widths=(14, 7, 18) + (14,) * len(series), freeze_rows=1)
    tab.put_row(0, [Cell(h, "heading") for h in headers])
    refs = {"start": Range(DATA, 1, 2, n, 2)}
    for offset, period in enumerate(snapshot.window):
        row = offset + 1
        tab.put_row(row, [
            Cell(period[0], "date"), Cell(period[1], "count"),
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
    tab.put_row(3, [Cell(h, "heading") for h in ("Fuel", "GW", "Share", "Code", "")])
    ordered = sorted(fuels, key=lambda f: -latest.mw.get(f, float("-inf")))
    row = 4
    for code in ordered:
        mw = latest.mw.get(code)
        if mw is None:
            tab.put_row(row, [Cell(FUEL_NAMES.get(code, code)),
                              missing(f"no FUELINST {code} sample in {period_label(period)}", "gw"),
                              Cell(None), Cell(code, "muted"), Cell(None)])
        else:
            share = mw / total if total else None
            tab.put_row(row, [Cell(FUEL_NAMES.get(code, code)), Cell(mw / 1000, "gw"),
                              Cell(share, "share"), Cell(code, "muted"),
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
    tab.put_row(row, [Cell(h, "heading") for h in ("Interconnector", "MW", "Direction", "Code")])
    row += 1
    for code in sorted(links, key=lambda f: -latest.mw.get(f, float("-inf"))):
        mw = latest.mw.get(code)
        if mw is None:
            cells = [missing(f"no FUELINST {code} sample in {period_label(period)}", "mw"),
                     Cell(None)]
        else:
            direction = "import" if mw > 0 else "export" if mw < 0 else "idle"
            cells = [Cell(mw, "mw"), Cell(direction)]
        tab.put_row(row, [Cell(INTERCONNECTOR_NAMES.get(code, code)), *cells,
                          Cell(code, "muted")])
        row += 1
    net = latest.net_imports_mw
    tab.put_row(row, [Cell("Net imports", "label"),
                      Cell(net, "mw") if net is not None
                      else missing(f"no interconnector rows in {period_label(period)}", "mw")])
    return tab


def acceptance_volumes(segments: Sequence[dict[str, object]]) -> tuple[float, float]:
    """(offer MWh, bid MWh) of BOALF segments: the accepted level integrated over time.

    Each segment ramps linearly from ``levelFrom`` to ``levelTo`` MW between ``timeFrom``
    and ``timeTo``; its energy is the trapezoid's area in MW x hours = MWh. Energy above
    zero counts as offer volume, below zero as bid volume (a negative number), split exactly
    where a segment crosses zero.
    """
    offers = bids = 0.0
    for seg in segments:
        start, end = seg["timeFrom"], seg["timeTo"]
        a, b = float(seg["levelFrom"]), float(seg["levelTo"])  # type: ignore[arg-type]
        hours = (end - start).total_seconds() / 3600  # type: ignore[operator]
        if hours <= 0:
            continue
        if a >= 0 and b >= 0:
            offers += (a + b) / 2 * hours
        elif a <= 0 and b <= 0:
            bids += (a + b) / 2 * hours
        else:
            cross = a / (a - b)  # fraction of the segment before the level crosses zero
            first, second = a * cross * hours / 2, b * (1 - cross) * hours / 2
            offers += max(first, second)
            bids += min(first, second)
    return offers, bids


def _balancing_tab(snapshot: Snapshot) -> Tab:
    tab = Tab(BALANCING, rows=20, cols=5, col_widths=(44, 16, 10, 60, 2))
    day = snapshot.settled_day
    tab.put(0, 0, Cell(f"Balancing, settlement day {day.isoformat()} (latest settled day)",
                       "title"))
    tab.put_row(2, [Cell(h, "heading") for h in ("Measure", "Value", "Unit", "How")])
    rows: list[list[Cell]] = []

    segments = snapshot.acceptances
    if segments:
        offers, bids = acceptance_volumes(segments)
        acceptances = {(s["nationalGridBmUnit"], s["acceptanceNumber"]) for s in segments}
        units = {s["nationalGridBmUnit"] for s in segments}
        how = "BOALF: mean of levelFrom/levelTo (MW) x segment duration (h)"
        rows += [
            [Cell("Accepted offer volume (BOALF)", "label"), Cell(offers, "mwh"),
             Cell("MWh", "muted"), Cell(how + "; level > 0", "muted")],
            [Cell("Accepted bid volume (BOALF)", "label"), Cell(bids, "mwh"),
             Cell("MWh", "muted"), Cell(how + "; level < 0", "muted")],
            [Cell("Acceptances", "label"), Cell(len(acceptances), "count"), Cell("", "muted"),
             Cell(f"distinct (BM unit, acceptance number); {len(units)} BM units", "muted")],
        ]
    else:
        note = f"no BOALF rows for {day}"
        rows += [[Cell(label, "label"), missing(note, "mwh"), Cell(unit, "muted"),
                  Cell("BOALF", "muted")]
                 for label, unit in (("Accepted offer volume (BOALF)", "MWh"),
                                     ("Accepted bid volume (BOALF)", "MWh"),
                                     ("Acceptances", ""))]

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
    rows += [
        [Cell("Balancing services cost (DISBSAD)", "label"), cost, Cell("GBP", "muted"),
         Cell(f"sum over {len(actions)} actions", "muted")],
        [Cell("Balancing services volume (DISBSAD)", "label"), volume, Cell("MWh", "muted"),
         Cell("net sum of action volumes", "muted")],
    ]

    prices = [r for r in snapshot.system_prices if r["settlementDate"] == day]
    expected = periods_in_day(day)
    price_note = None if len(prices) >= expected else (
        f"{len(prices)} of {expected} periods have a DISEBSP row")
    for label, field in (("System sell price", "systemSellPrice"),
                         ("System buy price", "systemBuyPrice")):
        values = [float(r[field]) for r in prices if r[field] is not None]
        for stat, fn in (("min", min), ("mean", statistics.fmean), ("max", max)):
            rows.append([
                Cell(f"{label}, {stat}", "label"),
                Cell(fn(values), "price", note=price_note) if values
                else missing(f"no DISEBSP rows for {day}", "price"),
                Cell("£/MWh", "muted"), Cell(f"over {len(values)} periods", "muted")])
    for label, field in (("Accepted offer volume (settlement)", "totalAcceptedOfferVolume"),
                         ("Accepted bid volume (settlement)", "totalAcceptedBidVolume")):
        values = [float(r[field]) for r in prices if r[field] is not None]
        rows.append([
            Cell(label, "label"),
            Cell(sum(values), "mwh", note=price_note) if values
            else missing(f"no DISEBSP rows for {day}", "mwh"),
            Cell("MWh", "muted"), Cell(f"DISEBSP {field}, summed over periods", "muted")])
    for offset, cells in enumerate(rows):
        tab.put_row(3 + offset, cells)
    return tab


def _outages_tab(snapshot: Snapshot) -> Tab:
    headers = ("Asset", "BM unit", "Fuel", "Unavailable MW", "Normal MW", "Cause", "Type",
               "Start (Europe/London)", "Expected return", "Revision")
    tab = Tab(OUTAGES, rows=OUTAGE_ROWS + 5, cols=len(headers),
              col_widths=(14, 14, 20, 14, 11, 22, 11, 18, 18, 9), freeze_rows=4)
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
    tab.put_row(3, [Cell(h, "heading") for h in headers])
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
            Cell(o["cause"]), Cell(o["unavailabilityType"]),
            Cell(london(o["eventStartTime"]), "datetime"),
            Cell(london(end), "datetime") if end else missing("no end time published", "datetime"),
            Cell(o["revisionNumber"], "count", note=f"mrid {o['mrid']}"),
        ])
    return tab


def _health_tab(snapshot: Snapshot) -> Tab:
    headers = ("Dataset", "Newest row (Europe/London)", "Age", "Freshness",
               f"Complete days (last {HEALTH_DAYS})", "Periods present", "Gaps (days)",
               "Failed chunks", "Duplicates dropped", "IRIS last message", "Description")
    datasets = [catalog.get(code) for code in snapshot.coverage]
    tab = Tab(HEALTH, rows=len(catalog.DATASETS) + 4, cols=len(headers),
              col_widths=(11, 17, 11, 10, 11, 11, 9, 9, 11, 17, 56), freeze_rows=3)
    days = next(iter(snapshot.coverage.values()), [])
    window = f"{days[0].date} to {days[-1].date}" if days else ""
    tab.put(0, 0, Cell("Data health", "title"))
    tab.put(1, 0, Cell(f"Coverage over the settled days {window}; freshness at "
                       f"{london(snapshot.now):%Y-%m-%d %H:%M}", "muted"))
    tab.put_row(2, [Cell(h, "heading") for h in headers])
    for offset, dataset in enumerate(datasets):
        known = snapshot.freshness[dataset.code]
        records = snapshot.coverage.get(dataset.code, [])
        if known.newest_utc is None:
            fresh = [missing(f"no {dataset.code} rows in the last {SEARCH_DAYS} days",
                             "datetime"), Cell(None), Cell("no data", "warning")]
        else:
            fresh = [Cell(london(known.newest_utc), "datetime"),
                     Cell(age_text(snapshot.now - known.newest_utc)),
                     Cell("stale" if known.stale else "ok", "warning" if known.stale else "ok",
                          note=f"stale after {age_text(known.threshold)}")]
        complete = [c for c in records if c.status == "complete"]
        gaps = [c for c in records if c.status in ("missing", "partial", "empty")]
        failed = [c for c in records if c.status == "failed"]
        expected = [c.periods_expected for c in records if c.periods_expected is not None]
        present = sum(c.periods_present or 0 for c in records)
        iris = snapshot.iris_last_message.get(dataset.code)
        tab.put_row(3 + offset, [
            Cell(dataset.code, "label"), *fresh,
            Cell(f"{len(complete)}/{len(records)}", "ok" if len(complete) == len(records)
                 else "warning"),
            Cell(f"{present}/{sum(expected)}") if expected else Cell("n/a", "muted"),
            Cell(len(gaps), "count", note=_list_days(gaps)),
            Cell(len(failed), "count", note=_list_days(failed)),
            Cell(sum(c.duplicates_dropped for c in records), "count"),
            Cell(london(iris), "datetime") if iris else Cell(NO_IRIS, "muted"),
            Cell(dataset.description, "muted"),
        ])
    return tab


def _list_days(records: list) -> str | None:  # type: ignore[type-arg]
    if not records:
        return None
    return "\n".join(
        f"{c.date}: {c.status}" + (f" ({c.reason})" if c.reason else "") for c in records)
