"""The dashboard as a local ``.xlsx`` workbook: the same tabs, with native Excel charts.

Sparklines are Excel's own (``x14`` sparkline groups), the mix's in-cell bars are data bars,
and each missing value is a blank cell carrying a comment that says what is missing.
XlsxWriter writes all of these natively; the file is written beside its destination and
renamed over it, so a reader never opens half a workbook.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
from pathlib import Path

import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from sheets.model import STYLES, Cell, Chart, Dashboard, Range, Tab, london

BAR_COLOUR = "#5B9BD5"
SPARK_COLOUR = "#2F5597"


def write_workbook(dashboard: Dashboard, path: Path) -> Path:
    """Write the dashboard to ``path`` (replacing it whole) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".xlsx")
    os.close(fd)
    try:
        workbook = xlsxwriter.Workbook(tmp_name)
        formats = _Formats(workbook)
        sheets = {tab.name: workbook.add_worksheet(tab.name) for tab in dashboard.tabs}
        for tab in dashboard.tabs:
            _write_tab(workbook, sheets[tab.name], tab, dashboard, formats)
        workbook.close()
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    return path


class _Formats:
    """One XlsxWriter format per (style, bar), made once."""

    def __init__(self, workbook: xlsxwriter.Workbook) -> None:
        self.workbook = workbook
        self.cache: dict[str, Format] = {}

    def get(self, name: str) -> Format:
        if name not in self.cache:
            style = STYLES[name]
            props: dict[str, object] = {"valign": "top"}
            if style.number:
                props["num_format"] = style.number
            if style.bold:
                props["bold"] = True
            if style.italic:
                props["italic"] = True
            if style.size:
                props["font_size"] = style.size
            if style.color:
                props["font_color"] = style.color
            if style.fill:
                props["bg_color"] = style.fill
            if style.wrap:
                props["text_wrap"] = True
            if style.align:
                props["align"] = style.align
            self.cache[name] = self.workbook.add_format(props)
        return self.cache[name]


def _write_tab(
    workbook: xlsxwriter.Workbook, sheet: Worksheet, tab: Tab, dashboard: Dashboard,
    formats: _Formats,
) -> None:
    for col, width in enumerate(tab.col_widths):
        sheet.set_column(col, col, width)
    if tab.freeze_rows:
        sheet.freeze_panes(tab.freeze_rows, 0)
    # Printed (and converted to PDF) on one page, so a tab reads as one sheet.
    sheet.set_landscape()
    sheet.set_paper(9)  # A4
    sheet.fit_to_pages(1, 1)
    if tab.print_area:
        sheet.print_area(0, 0, tab.print_area[0] - 1, tab.print_area[1] - 1)
    sheet.hide_gridlines(2)
    heights: dict[int, float] = {}
    for (row, col), cell in sorted(tab.cells.items()):
        _write_cell(sheet, row, col, cell, dashboard, formats)
        heights[row] = max(heights.get(row, 0), _row_height(tab, col, cell))
    for row, height in heights.items():
        if height:
            sheet.set_row(row, height)  # Excel grows no row for a larger font or wrapped text
    for chart in tab.charts:
        _insert_chart(workbook, sheet, chart)


def _row_height(tab: Tab, col: int, cell: Cell) -> float:
    """Points a row needs for this cell: 0 where the default height will do."""
    style = STYLES[cell.style]
    height = style.size * 1.5 if style.size and style.size > 11 else 0.0
    if style.wrap and isinstance(cell.value, str) and col < len(tab.col_widths):
        # Word wrapping leaves lines part-empty: allow a fifth more than the characters need.
        lines = -(-len(cell.value) * 6 // (5 * max(1, tab.col_widths[col] - 1)))
        height = max(height, 15.0 * lines)
    return height


def _write_cell(
    sheet: Worksheet, row: int, col: int, cell: Cell, dashboard: Dashboard, formats: _Formats
) -> None:
    fmt = formats.get(cell.style)
    value = cell.value
    if cell.sparkline is not None:
        sheet.add_sparkline(row, col, {
            "range": dashboard.series[cell.sparkline].a1(),
            "type": "line", "markers": False, "high_point": True, "low_point": True,
            "series_color": SPARK_COLOUR,
        })
    elif value is None:
        sheet.write_blank(row, col, None, fmt)
    elif isinstance(value, dt.datetime):
        # Excel has no time zones: the dashboard's times are Europe/London wall-clock times.
        sheet.write_datetime(row, col, london(value).replace(tzinfo=None), fmt)
    elif isinstance(value, dt.date):
        sheet.write_datetime(row, col, dt.datetime.combine(value, dt.time()), fmt)
    elif isinstance(value, bool):
        sheet.write_boolean(row, col, value, fmt)
    elif isinstance(value, (int, float)):
        sheet.write_number(row, col, value, fmt)
    else:
        sheet.write_string(row, col, str(value), fmt)
    if cell.bar and value is not None:
        sheet.conditional_format(row, col, row, col, {
            "type": "data_bar", "bar_only": True, "bar_solid": True, "bar_color": BAR_COLOUR,
            "min_type": "num", "min_value": 0, "max_type": "num", "max_value": 1,
        })
    if cell.note:
        sheet.write_comment(row, col, cell.note, {"x_scale": 2, "y_scale": 1.2})


def _insert_chart(workbook: xlsxwriter.Workbook, sheet: Worksheet, chart: Chart) -> None:
    excel_chart = workbook.add_chart({"type": chart.kind})
    for index, (name, values) in enumerate(chart.series):
        colour = chart.colors[index] if index < len(chart.colors) else None
        spec: dict[str, object] = {
            "name": name,
            "categories": _cells(chart.categories),
            "values": _cells(values),
        }
        if chart.kind == "line":
            spec["marker"] = {"type": "none"}
            if colour:
                spec["line"] = {"color": colour, "width": 1.5}
        elif colour:
            spec["fill"] = {"color": colour}
            spec["border"] = {"none": True}
        if chart.kind == "column":
            # Series share each category's slot: a capped spike sits where its day is.
            spec["overlap"] = 100
            spec["gap"] = 40
        excel_chart.add_series(spec)
    excel_chart.set_title({"name": chart.title, "name_font": {"size": 11}})
    if chart.kind != "bar":
        y_axis: dict[str, object] = {"name": chart.y_title, "major_gridlines": {"visible": True}}
        if chart.y_bounds is not None:
            y_axis["min"], y_axis["max"] = chart.y_bounds
        if chart.y_major is not None:
            y_axis["major_unit"] = chart.y_major
        excel_chart.set_y_axis(y_axis)
    if chart.kind in ("line", "column"):
        # A text axis: a date axis would put all of a day's periods on one point. The labels
        # carry the date, so an axis that crosses midnight says which day each time is on.
        x_axis: dict[str, object] = {"text_axis": True, "num_format": chart.x_format,
                                     "label_position": "low", "num_font": {"rotation": -45}}
        if chart.x_interval:
            x_axis["interval_unit"] = chart.x_interval
            x_axis["interval_tick"] = chart.x_interval
        excel_chart.set_x_axis(x_axis)
        excel_chart.set_legend({"position": "bottom"})
    else:
        excel_chart.set_legend({"none": True})
        # In a bar chart the categories run up the y axis: largest fuel on top.
        excel_chart.set_y_axis({"reverse": True})
        excel_chart.set_x_axis({"name": chart.y_title, "major_gridlines": {"visible": True}})
    excel_chart.show_blanks_as("gap")  # a missing period is a gap, not a drop to zero
    width, height = chart.size
    excel_chart.set_size({"width": width, "height": height})
    sheet.insert_chart(chart.anchor[0], chart.anchor[1], excel_chart)


def _cells(cells: Range) -> list[object]:
    return [cells.tab, cells.first_row, cells.first_col, cells.last_row, cells.last_col]
