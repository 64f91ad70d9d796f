"""A local stand-in for the Google Sheets v4 REST API, enough for the real ``gspread`` client.

It answers ``GET spreadsheets/{id}``, ``POST spreadsheets/{id}:batchUpdate`` (addSheet,
updateCells, updateDimensionProperties, updateSheetProperties, addChart,
deleteEmbeddedObject) and
``POST spreadsheets/{id}/values:batchUpdate``, plus an OAuth token endpoint for service-account
credentials. It keeps the spreadsheet's tabs and cells, validates ranges the way the real API
does (unknown tab, outside the grid: 400), records every request, and can be told to answer
the next requests with an error (429 with ``Retry-After``, 5xx, 403).

``fake_sheets.session()`` is a ``requests.Session`` whose requests for
``https://sheets.googleapis.com`` go to this server; ``route(session)`` does the same to any
session (an ``AuthorizedSession`` included).
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import re
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import requests
from requests.adapters import HTTPAdapter

GOOGLE_ROOT = "https://sheets.googleapis.com"
ACCESS_TOKEN = "fake-access-token"
A1 = re.compile(r"^(?:'((?:[^']|'')+)'|([^!']+))!([A-Z]+)(\d+)(?::([A-Z]+)(\d+))?$")


def column_index(letters: str) -> int:
    index = 0
    for char in letters:
        index = index * 26 + ord(char) - 64
    return index - 1


def parse_a1(text: str) -> tuple[str, int, int, int, int]:
    """``'Tab'!A1:C3`` -> (tab, first_row, first_col, last_row, last_col), zero-based."""
    match = A1.match(text)
    if not match:
        raise ValueError(f"Unable to parse range: {text}")
    tab = (match.group(1) or "").replace("''", "'") or match.group(2)
    first_col, first_row = column_index(match.group(3)), int(match.group(4)) - 1
    last_col = column_index(match.group(5)) if match.group(5) else first_col
    last_row = int(match.group(6)) - 1 if match.group(6) else first_row
    return tab, first_row, first_col, last_row, last_col


@dataclasses.dataclass
class Sheet:
    sheet_id: int
    title: str
    rows: int = 1000
    cols: int = 26
    frozen_rows: int = 0
    values: dict[tuple[int, int], Any] = dataclasses.field(default_factory=dict)
    formats: dict[tuple[int, int], Any] = dataclasses.field(default_factory=dict)
    notes: dict[tuple[int, int], str] = dataclasses.field(default_factory=dict)
    charts: dict[int, dict[str, Any]] = dataclasses.field(default_factory=dict)  # id -> chart

    def properties(self, index: int) -> dict[str, Any]:
        return {
            "sheetId": self.sheet_id, "title": self.title, "index": index, "sheetType": "GRID",
            "gridProperties": {"rowCount": self.rows, "columnCount": self.cols,
                               "frozenRowCount": self.frozen_rows},
        }


@dataclasses.dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: Any


class ApiFault(Exception):
    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason


class FakeSheets:
    """One spreadsheet, served over HTTP on a free loopback port."""

    def __init__(self, spreadsheet_id: str = "test-spreadsheet") -> None:
        self.spreadsheet_id = spreadsheet_id
        self.sheets: list[Sheet] = [Sheet(0, "Sheet1")]
        self.requests: list[Recorded] = []
        self.tokens_issued = 0
        self._faults: list[tuple[str, int, int | None]] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def shutdown(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- what tests set up and inspect

    def add_sheet(self, title: str, rows: int = 1000, cols: int = 26) -> Sheet:
        sheet = Sheet(max(s.sheet_id for s in self.sheets) + 1, title, rows, cols)
        self.sheets.append(sheet)
        return sheet

    def sheet(self, title: str) -> Sheet:
        return next(s for s in self.sheets if s.title == title)

    def fail_next(self, status: int, times: int = 1, *, path_contains: str = "",
                  retry_after: int | None = None) -> None:
        """Answer the next ``times`` matching requests with ``status``."""
        self._faults += [(path_contains, status, retry_after)] * times

    def calls(self, method: str | None = None, contains: str = "") -> list[Recorded]:
        return [r for r in self.requests
                if (method is None or r.method == method) and contains in r.path]

    def session(self) -> requests.Session:
        return route(requests.Session(), self.url)

    # -- HTTP

    def _handle(self, handler: http.server.BaseHTTPRequestHandler, method: str) -> None:
        split = urlsplit(handler.path)
        path = unquote(split.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        is_token = path == "/token"
        body: Any = raw.decode() if is_token else (json.loads(raw) if raw else None)
        with self._lock:
            headers = {name.lower(): value for name, value in handler.headers.items()}
            self.requests.append(Recorded(method, path, parse_qs(split.query), headers, body))
            fault = next((f for f in self._faults if f[0] in path and not is_token), None)
            if fault:
                self._faults.remove(fault)
            try:
                if fault:
                    _, status, retry_after = fault
                    reason = {429: "RESOURCE_EXHAUSTED", 403: "PERMISSION_DENIED"}.get(
                        status, "INTERNAL")
                    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
                    raise_fault = ApiFault(status, f"injected {status}", reason)
                    raise_fault.headers = headers  # type: ignore[attr-defined]
                    raise raise_fault
                status, answer = self._route(method, path, body)
                headers = {}
            except ApiFault as exc:
                status = exc.status
                answer = {"error": {"code": exc.status, "message": exc.message,
                                    "status": exc.reason}}
                headers = getattr(exc, "headers", {})
        payload = json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=UTF-8")
        handler.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)

    def _route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if path == "/token" and method == "POST":
            self.tokens_issued += 1
            return 200, {"access_token": ACCESS_TOKEN, "expires_in": 3600, "token_type": "Bearer"}
        prefix = f"/v4/spreadsheets/{self.spreadsheet_id}"
        if not path.startswith(prefix):
            raise ApiFault(404, "Requested entity was not found.", "NOT_FOUND")
        rest = path[len(prefix):]
        if method == "GET" and rest == "":
            return 200, {
                "spreadsheetId": self.spreadsheet_id,
                "properties": {"title": "Market dashboard", "locale": "en_GB",
                               "timeZone": "Europe/London"},
                "sheets": [{"properties": s.properties(i),
                            **({"charts": list(s.charts.values())} if s.charts else {})}
                           for i, s in enumerate(self.sheets)],
            }
        if method == "POST" and rest == ":batchUpdate":
            return 200, self._batch_update(body)
        if method == "POST" and rest == "/values:batchUpdate":
            return 200, self._values_batch_update(body)
        raise ApiFault(404, f"no such method {method} {path}", "NOT_FOUND")

    def _by_id(self, sheet_id: int) -> Sheet:
        for sheet in self.sheets:
            if sheet.sheet_id == sheet_id:
                return sheet
        raise ApiFault(400, f"No grid with id: {sheet_id}", "INVALID_ARGUMENT")

    def _check_grid(self, sheet: Sheet, rows: int, cols: int, where: str) -> None:
        if rows > sheet.rows or cols > sheet.cols:
            raise ApiFault(400, f"{where}: range exceeds grid limits of {sheet.title!r} "
                           f"({sheet.rows}x{sheet.cols})", "INVALID_ARGUMENT")

    def _batch_update(self, body: dict[str, Any]) -> dict[str, Any]:
        replies: list[dict[str, Any]] = []
        # Google applies a batch atomically: validate on copies, then swap in.
        import copy

        sheets = copy.deepcopy(self.sheets)
        saved, self.sheets = self.sheets, sheets
        try:
            for number, request in enumerate(body.get("requests", [])):
                (kind, spec), = request.items()
                where = f"Invalid requests[{number}].{kind}"
                if kind == "addSheet":
                    props = spec["properties"]
                    if any(s.title == props["title"] for s in self.sheets):
                        raise ApiFault(400, f"{where}: A sheet with the name "
                                       f"\"{props['title']}\" already exists.", "INVALID_ARGUMENT")
                    grid = props.get("gridProperties", {})
                    sheet = Sheet(props.get("sheetId", max(s.sheet_id for s in self.sheets) + 1),
                                  props["title"], grid.get("rowCount", 1000),
                                  grid.get("columnCount", 26), grid.get("frozenRowCount", 0))
                    self.sheets.append(sheet)
                    replies.append({"addSheet": {"properties": sheet.properties(len(self.sheets) - 1)}})
                elif kind == "updateCells":
                    grid_range = spec["range"]
                    sheet = self._by_id(grid_range["sheetId"])
                    self._check_grid(sheet, grid_range["endRowIndex"],
                                     grid_range["endColumnIndex"], where)
                    fields = spec["fields"]
                    for r, row in enumerate(spec["rows"]):
                        for c, cell in enumerate(row.get("values", [])):
                            key = (grid_range["startRowIndex"] + r,
                                   grid_range["startColumnIndex"] + c)
                            if "userEnteredFormat" in fields:
                                sheet.formats[key] = cell.get("userEnteredFormat")
                            if "note" in fields:
                                if cell.get("note"):
                                    sheet.notes[key] = cell["note"]
                                else:
                                    sheet.notes.pop(key, None)
                    replies.append({})
                elif kind == "updateDimensionProperties":
                    self._by_id(spec["range"]["sheetId"])
                    replies.append({})
                elif kind == "updateSheetProperties":
                    props = spec["properties"]
                    sheet = self._by_id(props["sheetId"])
                    grid = props.get("gridProperties", {})
                    sheet.rows = grid.get("rowCount", sheet.rows)
                    sheet.cols = grid.get("columnCount", sheet.cols)
                    replies.append({})
                elif kind == "addChart":
                    chart = spec["chart"]
                    chart_id = chart["chartId"]
                    if any(chart_id in s.charts for s in self.sheets):
                        raise ApiFault(400, f"{where}: object with id {chart_id} already exists",
                                       "INVALID_ARGUMENT")
                    anchor = chart["position"]["overlayPosition"]["anchorCell"]
                    sheet = self._by_id(anchor["sheetId"])
                    basic = chart["spec"]["basicChart"]
                    sources = [d["domain"]["sourceRange"]["sources"] for d in basic["domains"]]
                    sources += [s["series"]["sourceRange"]["sources"] for s in basic["series"]]
                    for grid_range in (g for group in sources for g in group):
                        self._check_grid(self._by_id(grid_range["sheetId"]),
                                         grid_range["endRowIndex"], grid_range["endColumnIndex"],
                                         where)
                    sheet.charts[chart_id] = chart
                    replies.append({"addChart": {"chart": chart}})
                elif kind == "deleteEmbeddedObject":
                    owner = next((s for s in self.sheets if spec["objectId"] in s.charts), None)
                    if owner is None:
                        raise ApiFault(400, f"{where}: No object with id: {spec['objectId']}",
                                       "INVALID_ARGUMENT")
                    del owner.charts[spec["objectId"]]
                    replies.append({})
                else:
                    raise ApiFault(400, f"{where}: not supported by the fake", "INVALID_ARGUMENT")
        except BaseException:
            self.sheets = saved
            raise
        return {"spreadsheetId": self.spreadsheet_id, "replies": replies}

    def _values_batch_update(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("valueInputOption") not in ("RAW", "USER_ENTERED"):
            raise ApiFault(400, "Invalid valueInputOption", "INVALID_ARGUMENT")
        responses = []
        total = 0
        for item in body.get("data", []):
            try:
                tab, r0, c0, r1, c1 = parse_a1(item["range"])
            except ValueError as exc:
                raise ApiFault(400, str(exc), "INVALID_ARGUMENT") from None
            sheet = next((s for s in self.sheets if s.title == tab), None)
            if sheet is None:
                raise ApiFault(400, f"Unable to parse range: {item['range']}", "INVALID_ARGUMENT")
            self._check_grid(sheet, r1 + 1, c1 + 1, item["range"])
            values = item.get("values", [])
            if len(values) > r1 - r0 + 1 or any(len(row) > c1 - c0 + 1 for row in values):
                raise ApiFault(400, f"Requested writing within range [{item['range']}], but "
                               "tried writing outside it", "INVALID_ARGUMENT")
            for r, row in enumerate(values):
                for c, value in enumerate(row):
                    key = (r0 + r, c0 + c)
                    if value == "":
                        sheet.values.pop(key, None)
                    else:
                        sheet.values[key] = value
                    total += 1
            responses.append({"spreadsheetId": self.spreadsheet_id, "updatedRange": item["range"],
                              "updatedCells": sum(len(row) for row in values)})
        return {"spreadsheetId": self.spreadsheet_id, "totalUpdatedCells": total,
                "responses": responses}


class RoutingAdapter(HTTPAdapter):
    """Sends requests meant for the Sheets API to the fake server instead."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
             ) -> requests.Response:
        request.url = self.target + (request.url or "")[len(GOOGLE_ROOT):]
        return super().send(request, *args, **kwargs)


def route(session: requests.Session, target: str) -> requests.Session:
    session.mount(GOOGLE_ROOT + "/", RoutingAdapter(target))
    return session


@pytest.fixture
def fake_sheets() -> Iterator[FakeSheets]:
    server = FakeSheets()
    try:
        yield server
    finally:
        server.shutdown()
