"""The dashboard into a Google Sheet, with the real ``gspread`` client.

A refresh is three HTTP calls: read the spreadsheet's tab list, one ``spreadsheets:batchUpdate``
(create missing tabs, then formats and notes of the owned blocks, then the native charts,
replacing the previous refresh's), and one
``values:batchUpdate`` (every owned block's values). Each tab of the dashboard owns the block
from A1 that :class:`~sheets.model.Tab` declares; the writer never sends a range outside one,
so other tabs, and cells beside a block, stay as their owners left them. A whole block is
written each time (blanks included), so a shorter table leaves no stale rows behind.

429s and 5xx are retried with exponential backoff and jitter, honouring ``Retry-After``,
by urllib3's ``Retry`` on every transport of the session.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import zlib
from pathlib import Path
from typing import Any

import requests
from urllib3.util.retry import Retry

from sheets.model import STYLES, Cell, Chart, Dashboard, Range, Tab, london

log = logging.getLogger(__name__)

SCOPES = ("https://www.googleapis.com/auth/spreadsheets",)
EXCEL_EPOCH = dt.datetime(1899, 12, 30)  # day 0 of Sheets' (and Excel's) date serials
BAR_COLOUR = "#5B9BD5"
SPARK_COLOUR = "#2F5597"
RETRY_STATUSES = (429, 500, 502, 503, 504)


class SheetsError(RuntimeError):
    """A refresh of the Google Sheet failed; the message says which call and what to do."""


@dataclasses.dataclass(frozen=True)
class WriteReport:
    """What one refresh sent, for the log line and the task's result."""

    spreadsheet_id: str
    tabs_created: tuple[str, ...]
    ranges: tuple[str, ...]
    cells: int


def backoff(retries: int = 6, backoff_s: float = 1.0, backoff_max_s: float = 64.0) -> Retry:
    """Retry policy for the Sheets API: 429 and 5xx, every method, Retry-After honoured."""
    return Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=None,  # POSTs too: a batch update rejected with 429 was not applied
        backoff_factor=backoff_s,
        backoff_max=backoff_max_s,
        backoff_jitter=backoff_s,
        respect_retry_after_header=True,
        raise_on_status=False,  # the last answer reaches gspread, which reports Google's message
    )


def apply_backoff(session: requests.Session, retry: Retry) -> requests.Session:
    """Give every transport adapter of the session the retry policy."""
    for adapter in session.adapters.values():
        if isinstance(adapter, requests.adapters.HTTPAdapter):
            adapter.max_retries = retry
    return session


def service_account_session(credentials_file: Path | None) -> requests.Session:
    """An authorised session from a service-account JSON key file (a mounted secret)."""
    if credentials_file is None:
        raise SheetsError(
            "BMRS_SHEETS_ID is set but no service-account key is: set BMRS_SHEETS_CREDENTIALS "
            "(or GOOGLE_APPLICATION_CREDENTIALS) to the JSON key file, or unset BMRS_SHEETS_ID "
            "to write the local workbook instead"
        )
    # Google's libraries load in half a second: only when a Sheet is written, not per command.
    from google.auth.transport.requests import AuthorizedSession
    from google.oauth2 import service_account

    try:
        credentials = service_account.Credentials.from_service_account_file(
            str(credentials_file), scopes=SCOPES
        )
    except FileNotFoundError:
        raise SheetsError(
            f"service-account key file {credentials_file} does not exist: check "
            "BMRS_SHEETS_CREDENTIALS or the mounted secret"
        ) from None
    except ValueError as exc:
        # google-auth's message names the missing field; it never echoes the key itself.
        raise SheetsError(
            f"{credentials_file} is not a service-account JSON key: {exc}"
        ) from None
    return AuthorizedSession(credentials)


def write_dashboard(
    dashboard: Dashboard, spreadsheet_id: str, session: requests.Session, *,
    retry: Retry | None = None,
) -> WriteReport:
    """Write every tab's owned block; create the tabs the spreadsheet lacks."""
    apply_backoff(session, retry or backoff())
    import gspread

    http = gspread.Client(auth=None, session=session).http_client  # type: ignore[arg-type]
    who = _account(session)
    metadata = _call(http.fetch_sheet_metadata, "read the tab list", spreadsheet_id, who,
                     spreadsheet_id, params={
                         "includeGridData": "false",
                         "fields": "spreadsheetId,sheets.properties,sheets.charts.chartId"})
    existing = {s["properties"]["title"]: s["properties"] for s in metadata.get("sheets", [])}
    used_ids = {p["sheetId"] for p in existing.values()}
    requests_: list[dict[str, Any]] = []
    sheet_ids: dict[str, int] = {}
    created: list[str] = []
    for tab in dashboard.tabs:
        if tab.name in existing:
            props = existing[tab.name]
            sheet_ids[tab.name] = props["sheetId"]
            requests_ += _grow_grid(tab, props)
        else:
            sheet_id = _new_sheet_id(tab.name, used_ids)
            used_ids.add(sheet_id)
            sheet_ids[tab.name] = sheet_id
            created.append(tab.name)
            requests_ += _add_sheet(tab, sheet_id)
    for tab in dashboard.tabs:
        requests_.append(_formats_and_notes(tab, sheet_ids[tab.name]))
    # Our charts are replaced whole each refresh (their ids are stable per tab and position);
    # charts someone else added keep their own ids and are left alone.
    ours = {chart_id(tab.name, index) for tab in dashboard.tabs for index in range(len(tab.charts))}
    present = {c["chartId"] for s in metadata.get("sheets", []) for c in s.get("charts", [])}
    requests_ += [{"deleteEmbeddedObject": {"objectId": i}} for i in sorted(ours & present)]
    for tab in dashboard.tabs:
        requests_ += [_add_chart(tab.name, index, chart, sheet_ids)
                      for index, chart in enumerate(tab.charts)]
    _call(http.batch_update, "update formats and notes", spreadsheet_id, who,
          spreadsheet_id, {"requests": requests_})
    data = [
        {"range": tab.owned.a1(), "majorDimension": "ROWS", "values": _values(tab, dashboard)}
        for tab in dashboard.tabs
    ]
    _call(http.values_batch_update, "write values", spreadsheet_id, who,
          spreadsheet_id, {"valueInputOption": "USER_ENTERED", "data": data})
    report = WriteReport(
        spreadsheet_id=spreadsheet_id,
        tabs_created=tuple(created),
        ranges=tuple(d["range"] for d in data),
        cells=sum(tab.rows * tab.cols for tab in dashboard.tabs),
    )
    log.info("dashboard written to Google Sheet %s: %d ranges, %d cells, tabs created: %s",
             spreadsheet_id, len(report.ranges), report.cells, ", ".join(created) or "none")
    return report


def _call(method: Any, what: str, spreadsheet_id: str, who: str | None, *args: Any,
          **kwargs: Any) -> Any:
    """One Sheets API call, its failure turned into an error that says what to do."""
    import gspread

    try:
        return method(*args, **kwargs)
    except gspread.exceptions.APIError as exc:
        status = exc.response.status_code
        hint = {
            403: f"share the spreadsheet with {who or 'the service account'} as an editor",
            404: "check BMRS_SHEETS_ID (the key in the spreadsheet's URL)",
            429: "the Sheets API quota is exhausted; the next refresh will try again",
        }.get(status, "the next refresh will try again")
        raise SheetsError(
            f"Google Sheet {spreadsheet_id}: could not {what}: HTTP {status} "
            f"{exc.error.get('status', '')} {exc.error.get('message', '')}".rstrip()
            + f"; {hint}"
        ) from None
    except requests.RequestException as exc:
        raise SheetsError(
            f"Google Sheet {spreadsheet_id}: could not {what}: {type(exc).__name__}: {exc}; "
            "the next refresh will try again"
        ) from None


def _account(session: requests.Session) -> str | None:
    credentials = getattr(session, "credentials", None)
    return getattr(credentials, "service_account_email", None)


def _new_sheet_id(title: str, used: set[int]) -> int:
    """A stable id per title (so the same tab gets the same id in every spreadsheet)."""
    sheet_id = zlib.crc32(title.encode()) % 2_000_000_000 + 1
    while sheet_id in used:
        sheet_id += 1
    return sheet_id


def _add_sheet(tab: Tab, sheet_id: int) -> list[dict[str, Any]]:
    """Create a tab big enough for its block, with frozen header rows and column widths."""
    add = {"addSheet": {"properties": {
        "sheetId": sheet_id,
        "title": tab.name,
        "gridProperties": {
            "rowCount": max(tab.rows, 100), "columnCount": max(tab.cols, 26),
            "frozenRowCount": tab.freeze_rows,
        },
    }}}
    widths = [
        {"updateDimensionProperties": {
            "range": {"sheetId": sheet_id, "dimension": "COLUMNS",
                      "startIndex": col, "endIndex": col + 1},
            "properties": {"pixelSize": width * 7 + 10},
            "fields": "pixelSize",
        }}
        for col, width in enumerate(tab.col_widths[: tab.cols])
    ]
    return [add, *widths]


def chart_id(tab: str, index: int) -> int:
    """A stable id for the tab's n-th chart, so the next refresh finds and replaces it."""
    return zlib.crc32(f"chart:{tab}:{index}".encode()) % 2_000_000_000 + 1


CHART_TYPES = {"line": "LINE", "column": "COLUMN", "bar": "BAR"}


def _grid(cells: Range, sheet_ids: dict[str, int], *, header: bool = True) -> dict[str, Any]:
    """A GridRange; with ``header``, one row more above: the title row names the series."""
    return {"sheetId": sheet_ids[cells.tab],
            "startRowIndex": cells.first_row - (1 if header else 0),
            "endRowIndex": cells.last_row + 1,
            "startColumnIndex": cells.first_col, "endColumnIndex": cells.last_col + 1}


def _add_chart(tab: str, index: int, chart: Chart, sheet_ids: dict[str, int]) -> dict[str, Any]:
    """The Sheets twin of the workbook's chart: same type, ranges, axis bounds and colours.

    Every chart's ranges have their heading in the row above, so ``headerCount: 1`` names
    the series in the legend as the workbook's series names do.
    """
    value_axis: dict[str, Any] = {"position": "LEFT_AXIS" if chart.kind != "bar"
                                  else "BOTTOM_AXIS", "title": chart.y_title}
    if chart.y_bounds is not None:
        value_axis["viewWindowOptions"] = {"viewWindowMode": "EXPLICIT",
                                           "viewWindowMin": chart.y_bounds[0],
                                           "viewWindowMax": chart.y_bounds[1]}
    series = []
    for number, (_, values) in enumerate(chart.series):
        item: dict[str, Any] = {
            "series": {"sourceRange": {"sources": [_grid(values, sheet_ids)]}},
            "targetAxis": value_axis["position"],
        }
        colour = chart.colors[number] if number < len(chart.colors) else None
        if colour:
            item["colorStyle"] = {"rgbColor": _rgb(colour)}
        series.append(item)
    basic: dict[str, Any] = {
        "chartType": CHART_TYPES[chart.kind],
        "legendPosition": "BOTTOM_LEGEND" if chart.kind != "bar" else "NO_LEGEND",
        "axis": [value_axis],
        "domains": [{"domain": {"sourceRange": {"sources": [_grid(chart.categories, sheet_ids)]}},
                     **({"reversed": True} if chart.kind == "bar" else {})}],
        "series": series,
        "headerCount": 1,
    }
    if chart.kind == "column":
        basic["stackedType"] = "STACKED"  # a capped spike and its day share one column
    width, height = chart.size
    return {"addChart": {"chart": {
        "chartId": chart_id(tab, index),
        "spec": {"title": chart.title, "basicChart": basic,
                 "fontName": "Arial", "hiddenDimensionStrategy": "SHOW_ALL"},
        "position": {"overlayPosition": {
            "anchorCell": {"sheetId": sheet_ids[tab], "rowIndex": chart.anchor[0],
                           "columnIndex": chart.anchor[1]},
            "widthPixels": width, "heightPixels": height}},
    }}}


def _grow_grid(tab: Tab, props: dict[str, Any]) -> list[dict[str, Any]]:
    """An existing tab smaller than its block is enlarged (never shrunk: others may use it)."""
    grid = props.get("gridProperties", {})
    rows, cols = grid.get("rowCount", 0), grid.get("columnCount", 0)
    if rows >= tab.rows and cols >= tab.cols:
        return []
    return [{"updateSheetProperties": {
        "properties": {"sheetId": props["sheetId"], "gridProperties": {
            "rowCount": max(rows, tab.rows), "columnCount": max(cols, tab.cols)}},
        "fields": "gridProperties.rowCount,gridProperties.columnCount",
    }}]


def _formats_and_notes(tab: Tab, sheet_id: int) -> dict[str, Any]:
    """One updateCells over the owned block: every cell's format and note (absent = cleared)."""
    rows = []
    for row in range(tab.rows):
        values = []
        for col in range(tab.cols):
            cell = tab.cell(row, col)
            data: dict[str, Any] = {"userEnteredFormat": _cell_format(cell)}
            if cell.note:
                data["note"] = cell.note
            values.append(data)
        rows.append({"values": values})
    return {"updateCells": {
        "range": {"sheetId": sheet_id, "startRowIndex": 0, "endRowIndex": tab.rows,
                  "startColumnIndex": 0, "endColumnIndex": tab.cols},
        "rows": rows,
        "fields": "userEnteredFormat,note",
    }}


def _cell_format(cell: Cell) -> dict[str, Any]:
    style = STYLES[cell.style]
    fmt: dict[str, Any] = {"verticalAlignment": "TOP"}
    if style.number and not cell.sparkline and not cell.bar:
        fmt["numberFormat"] = {"type": _number_type(style.number), "pattern": style.number}
    text: dict[str, Any] = {}
    if style.bold:
        text["bold"] = True
    if style.italic:
        text["italic"] = True
    if style.size:
        text["fontSize"] = style.size
    if style.color:
        text["foregroundColor"] = _rgb(style.color)
    if text:
        fmt["textFormat"] = text
    if style.fill:
        fmt["backgroundColor"] = _rgb(style.fill)
    if style.wrap:
        fmt["wrapStrategy"] = "WRAP"
    if style.align:
        fmt["horizontalAlignment"] = style.align.upper()
    return fmt


def _number_type(pattern: str) -> str:
    if "%" in pattern:
        return "PERCENT"
    if "h" in pattern:
        return "DATE_TIME"
    if "y" in pattern:
        return "DATE"
    return "NUMBER"


def _rgb(colour: str) -> dict[str, float]:
    value = colour.lstrip("#")
    return {name: int(value[i:i + 2], 16) / 255 for name, i in (("red", 0), ("green", 2), ("blue", 4))}


def _values(tab: Tab, dashboard: Dashboard) -> list[list[Any]]:
    return [[_value(tab.cell(r, c), dashboard) for c in range(tab.cols)] for r in range(tab.rows)]


def _value(cell: Cell, dashboard: Dashboard) -> Any:
    """What USER_ENTERED input gives the cell: numbers, date serials, formulas, quoted text."""
    if cell.sparkline is not None:
        series = dashboard.series[cell.sparkline].a1()
        return f'=SPARKLINE({series},{{"charttype","line";"color","{SPARK_COLOUR}"}})'
    value = cell.value
    if value is None:
        return ""  # clears what an earlier refresh wrote: missing stays blank
    if cell.bar:
        share = min(1.0, max(0.0, float(value)))  # type: ignore[arg-type]
        return f'=SPARKLINE({share:.4f},{{"charttype","bar";"max",1;"color1","{BAR_COLOUR}"}})'
    if isinstance(value, dt.datetime):
        return (london(value).replace(tzinfo=None) - EXCEL_EPOCH) / dt.timedelta(days=1)
    if isinstance(value, dt.date):
        return (value - EXCEL_EPOCH.date()).days
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value if math.isfinite(value) else ""
    # A leading apostrophe keeps text as text: "2025-11-02 SP 7" is not a date, "=x" no formula.
    return "'" + str(value)
