"""Both writers of one dashboard: the .xlsx opened with openpyxl, and the real gspread client
against a local Sheets API (tests/support/fake_sheets.py) that records what it was sent."""

from __future__ import annotations

import datetime as dt
import json
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sheets.gsheets_writer import SheetsError, backoff, service_account_session, write_dashboard
from sheets.model import (
    DATA,
    FREQUENCY,
    GENERATION,
    OVERVIEW,
    PRICES,
    TAB_NAMES,
    Dashboard,
    build,
    london,
)
from sheets.queries import gather
from sheets.workbook_writer import write_workbook
from tests.support.fake_sheets import ACCESS_TOKEN, FakeSheets, parse_a1, route
from worker.elexon import catalog
from worker.elexon.client import ElexonClient
from worker.elexon.pipeline import ingest_chunk
from worker.elexon.settlement import UTC
from worker.sim.server import BASE_PATH, start_simulator
from worker.sinks.local import LocalWarehouse

NOW = dt.datetime(2025, 11, 2, 18, 7, tzinfo=UTC)
# openpyxl reads sparklines and data-bar extensions by dropping them (we read those as XML).
pytestmark = pytest.mark.filterwarnings("ignore:.*extension is not supported:UserWarning")
FAST = backoff(retries=4, backoff_s=0.05, backoff_max_s=0.5)


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Dashboard:
    """A dashboard over two simulated days of four datasets (no FREQ: a missing feed)."""
    sim = start_simulator(scale=0.02, clock=lambda: NOW)
    try:
        sink = LocalWarehouse(tmp_path_factory.mktemp("warehouse"))
        client = ElexonClient(sim.url + BASE_PATH, retries=2)
        for code in ("FUELINST", "MID", "DISEBSP", "REMIT"):
            for day in (dt.date(2025, 11, 1), dt.date(2025, 11, 2)):
                ingest_chunk(client, sink, catalog.get(code), day)
        return build(gather(sink, NOW))
    finally:
        sim.shutdown()


def kpi_row(dashboard: Dashboard, label: str) -> int:
    return dashboard.find(OVERVIEW, label)[0]


# ---------------------------------------------------------------- the local workbook


@pytest.fixture(scope="module")
def workbook_path(dashboard: Dashboard, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_workbook(dashboard, tmp_path_factory.mktemp("out") / "dashboard.xlsx")


def test_workbook_holds_every_tab_with_the_models_values(
    dashboard: Dashboard, workbook_path: Path
) -> None:
    book = openpyxl.load_workbook(workbook_path)
    assert book.sheetnames == list(TAB_NAMES)
    overview = book[OVERVIEW]
    assert overview["B2"].value == london(NOW).replace(tzinfo=None)
    assert overview["B2"].number_format == "yyyy-mm-dd hh:mm"
    for label in ("Imbalance price (SSP = SBP)", "Market index price (N2EX)", "Total generation"):
        row = kpi_row(dashboard, label)
        expected = dashboard.tab(OVERVIEW).cell(row, 1).value
        assert isinstance(expected, float)
        assert overview.cell(row + 1, 2).value == pytest.approx(expected)
    data = book[DATA]
    for (row, col), cell in dashboard.tab(DATA).cells.items():
        if isinstance(cell.value, float):
            assert data.cell(row + 1, col + 1).value == pytest.approx(cell.value)
    # No FREQ rows: the frequency cells are empty, with a comment saying so.
    row = kpi_row(dashboard, "Frequency (latest sample)")
    freq = overview.cell(row + 1, 2)
    assert freq.value is None and "no FREQ sample" in freq.comment.text


def test_workbook_has_native_charts_sparklines_and_in_cell_bars(workbook_path: Path) -> None:
    book = openpyxl.load_workbook(workbook_path)
    charts = book[OVERVIEW]._charts
    assert [c.tagname for c in charts] == ["lineChart", "lineChart"]
    prices = charts[0]
    refs = [s.val.numRef.f for s in prices.series]
    assert refs == ["Data!$D$2:$D$49", "Data!$E$2:$E$49"]  # imbalance price, N2EX
    assert prices.series[0].cat.numRef.f == "Data!$C$2:$C$49"
    # Category labels carry the date: the 48 periods cross midnight.
    assert prices.x_axis.number_format.formatCode == "d mmm hh:mm"
    (spread,) = book[PRICES]._charts
    assert spread.tagname == "barChart" and len(spread.series) == 2
    assert spread.y_axis.scaling.max is not None  # a fixed axis: spikes do not flatten it
    (freq,) = book[FREQUENCY]._charts
    assert freq.series[0].val.numRef.f == "Frequency!$H$3:$H$1442"
    (mix,) = book[GENERATION]._charts
    assert mix.tagname == "barChart" and mix.series[0].val.numRef.f.startswith("Generation!$B$5")
    bars = [rule for rng in book[GENERATION].conditional_formatting for rule in rng.rules]
    assert bars and all(rule.type == "dataBar" for rule in bars)
    with zipfile.ZipFile(workbook_path) as archive:
        sheet_xml = archive.read("xl/worksheets/sheet1.xml").decode()
    # Nine key figures; frequency has no data, so its cell holds a note, not a sparkline.
    assert sheet_xml.count("<x14:sparkline>") == 8
    assert "<xm:f>'Data'!D2:D49</xm:f>" in sheet_xml


def test_workbook_is_replaced_whole(dashboard: Dashboard, tmp_path: Path) -> None:
    target = tmp_path / "d.xlsx"
    target.write_bytes(b"an older file")
    write_workbook(dashboard, target)
    assert openpyxl.load_workbook(target).sheetnames == list(TAB_NAMES)
    assert [p.name for p in tmp_path.iterdir()] == ["d.xlsx"]  # no temporary file left


# ---------------------------------------------------------------- Google Sheets


@pytest.fixture
def fake_sheets_with_foreign_cells(fake_sheets: FakeSheets) -> Iterator[FakeSheets]:
    """A spreadsheet someone already uses: their own tab, and a cell beside our block."""
    notes = fake_sheets.add_sheet("Analyst notes")
    notes.values[(0, 0)] = "keep me"
    overview = fake_sheets.add_sheet(OVERVIEW, rows=20, cols=30)
    overview.values[(0, 25)] = "their cell in Z1"
    overview.values[(1, 1)] = "stale value in our block"
    yield fake_sheets


def owned_blocks(dashboard: Dashboard) -> dict[str, tuple[int, int]]:
    return {tab.name: (tab.rows, tab.cols) for tab in dashboard.tabs}


def test_refresh_is_one_values_and_one_format_batch_within_owned_ranges(
    dashboard: Dashboard, fake_sheets_with_foreign_cells: FakeSheets
) -> None:
    fake = fake_sheets_with_foreign_cells
    report = write_dashboard(dashboard, fake.spreadsheet_id, fake.session(), retry=FAST)
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in fake.requests] == [
        ("GET", fake.spreadsheet_id), ("POST", f"{fake.spreadsheet_id}:batchUpdate"),
        ("POST", "values:batchUpdate")]
    assert report.tabs_created == tuple(t for t in TAB_NAMES if t != OVERVIEW)

    blocks = owned_blocks(dashboard)
    values_call = fake.calls("POST", "values:batchUpdate")[0].body
    assert values_call["valueInputOption"] == "USER_ENTERED"
    for item in values_call["data"]:
        tab, r0, c0, r1, c1 = parse_a1(item["range"])
        assert (r0, c0) == (0, 0) and (r1 + 1, c1 + 1) == blocks[tab]
    ids = {s.title: s.sheet_id for s in fake.sheets}
    ours = {ids[name] for name in blocks}
    format_call = fake.calls("POST", ":batchUpdate")[0].body["requests"]
    for request in format_call:
        (kind, spec), = request.items()
        if kind == "addSheet":
            assert spec["properties"]["title"] in blocks
            continue
        if kind == "addChart":  # anchored in our tabs, drawing cells of our blocks
            chart = spec["chart"]
            assert chart["position"]["overlayPosition"]["anchorCell"]["sheetId"] in ours
            basic = chart["spec"]["basicChart"]
            for source in [d["domain"] for d in basic["domains"]] + [
                    x["series"] for x in basic["series"]]:
                grid = source["sourceRange"]["sources"][0]
                tab = next(name for name, i in ids.items() if i == grid["sheetId"])
                assert grid["endRowIndex"] <= blocks[tab][0]
                assert grid["endColumnIndex"] <= blocks[tab][1]
            continue
        grid = spec.get("range") or spec["properties"]
        assert grid["sheetId"] in ours
        if kind == "updateCells":
            tab = next(name for name, i in ids.items() if i == grid["sheetId"])
            assert (grid["endRowIndex"], grid["endColumnIndex"]) == blocks[tab]
    # Other people's cells are as they were; our block was rewritten whole.
    assert fake.sheet("Analyst notes").values == {(0, 0): "keep me"}
    overview = fake.sheet(OVERVIEW)
    assert overview.values[(0, 25)] == "their cell in Z1"
    assert overview.rows >= blocks[OVERVIEW][0]  # grown to fit the block, never shrunk
    assert overview.cols == 30

    # Values as the model has them: numbers, date serials, quoted text, formulas, blanks.
    tab = dashboard.tab(OVERVIEW)
    row = kpi_row(dashboard, "Imbalance price (SSP = SBP)")
    assert overview.values[(row, 1)] == pytest.approx(tab.cell(row, 1).value)
    assert overview.values[(row, 0)] == "'Imbalance price (SSP = SBP)"
    assert overview.values[(row, 4)].startswith("=SPARKLINE('Data'!D2:D49,")
    assert overview.values[(1, 1)] == pytest.approx(
        (london(NOW).replace(tzinfo=None) - dt.datetime(1899, 12, 30)) / dt.timedelta(days=1))
    freq_row = kpi_row(dashboard, "Frequency (latest sample)")
    assert (freq_row, 1) not in overview.values
    assert "no FREQ sample" in overview.notes[(freq_row, 1)]
    # The workbook's native charts, as Sheets charts over the same cells, legend from the
    # heading row above each range, the spread chart's fixed axis included.
    prices_chart, = fake.sheet(PRICES).charts.values()
    basic = prices_chart["spec"]["basicChart"]
    (spread_chart,) = dashboard.tab(PRICES).charts
    assert basic["chartType"] == "COLUMN" and basic["headerCount"] == 1
    first_series = basic["series"][0]["series"]["sourceRange"]["sources"][0]
    values = spread_chart.series[0][1]
    assert (first_series["startRowIndex"], first_series["endRowIndex"]) == (
        values.first_row - 1, values.last_row + 1)
    assert basic["axis"][0]["viewWindowOptions"]["viewWindowMax"] == spread_chart.y_bounds[1]
    assert len(fake.sheet(OVERVIEW).charts) == 2 and len(fake.sheet(FREQUENCY).charts) == 1
    generation = fake.sheet(GENERATION)
    wind = dashboard.find(GENERATION, "Wind")[0]
    assert generation.values[(wind, 4)].startswith('=SPARKLINE(0.')
    assert '"charttype","bar"' in generation.values[(wind, 4)]


def test_second_refresh_adds_no_tab_and_clears_notes_of_filled_cells(
    dashboard: Dashboard, fake_sheets: FakeSheets
) -> None:
    write_dashboard(dashboard, fake_sheets.spreadsheet_id, fake_sheets.session(), retry=FAST)
    overview = fake_sheets.sheet(OVERVIEW)
    overview.notes[(2, 1)] = "a note left from an old refresh"
    overview.charts[12345] = {"chartId": 12345}  # an analyst's own chart
    before = len(fake_sheets.sheets)
    fake_sheets.requests.clear()
    write_dashboard(dashboard, fake_sheets.spreadsheet_id, fake_sheets.session(), retry=FAST)
    kinds = [next(iter(r)) for r in fake_sheets.calls("POST", ":batchUpdate")[0].body["requests"]]
    assert "addSheet" not in kinds and kinds.count("updateCells") == len(TAB_NAMES)
    assert len(fake_sheets.sheets) == before
    # Charts are replaced, not piled up; a chart someone else added stays.
    charts = sum(len(t.charts) for t in dashboard.tabs)
    assert kinds.count("deleteEmbeddedObject") == charts == kinds.count("addChart")
    assert sum(len(s.charts) for s in fake_sheets.sheets) == charts + 1
    assert 12345 in fake_sheets.sheet(OVERVIEW).charts
    assert (2, 1) not in fake_sheets.sheet(OVERVIEW).notes


def test_backs_off_on_429_honouring_retry_after(
    dashboard: Dashboard, fake_sheets: FakeSheets
) -> None:
    fake_sheets.fail_next(429, times=2, path_contains="values:batchUpdate", retry_after=1)
    started = time.monotonic()
    write_dashboard(dashboard, fake_sheets.spreadsheet_id, fake_sheets.session(), retry=FAST)
    assert time.monotonic() - started >= 2.0  # two Retry-After: 1 waits
    assert len(fake_sheets.calls("POST", "values:batchUpdate")) == 3
    assert fake_sheets.sheet(DATA).values


def test_quota_exhausted_is_an_error_naming_the_spreadsheet(
    dashboard: Dashboard, fake_sheets: FakeSheets
) -> None:
    fake_sheets.fail_next(429, times=10, path_contains="values:batchUpdate", retry_after=0)
    with pytest.raises(SheetsError) as caught:
        write_dashboard(dashboard, fake_sheets.spreadsheet_id, fake_sheets.session(), retry=FAST)
    assert str(caught.value).startswith(
        f"Google Sheet {fake_sheets.spreadsheet_id}: could not write values: HTTP 429 "
        "RESOURCE_EXHAUSTED")
    assert len(fake_sheets.calls("POST", "values:batchUpdate")) == 5  # first try + 4 retries


def test_service_account_key_authorises_every_request(
    dashboard: Dashboard, fake_sheets: FakeSheets, tmp_path: Path
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    key_file = tmp_path / "service-account.json"
    key_file.write_text(json.dumps({
        "type": "service_account", "project_id": "test", "private_key_id": "k1",
        "private_key": pem, "client_email": "dashboard@test.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": f"{fake_sheets.url}/token",
    }))
    session = route(service_account_session(key_file), fake_sheets.url)
    write_dashboard(dashboard, fake_sheets.spreadsheet_id, session, retry=FAST)
    assert fake_sheets.tokens_issued == 1
    sheets_calls = [r for r in fake_sheets.requests if r.path.startswith("/v4/")]
    assert len(sheets_calls) == 3
    assert all(r.headers["authorization"] == f"Bearer {ACCESS_TOKEN}" for r in sheets_calls)
    token_request = fake_sheets.calls("POST", "/token")[0].body
    assert "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer" in token_request

    fake_sheets.fail_next(403, path_contains="values:batchUpdate")
    with pytest.raises(SheetsError, match="share the spreadsheet with "
                       "dashboard@test.iam.gserviceaccount.com as an editor"):
        write_dashboard(dashboard, fake_sheets.spreadsheet_id, session, retry=FAST)


def test_missing_or_bad_credentials_say_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(SheetsError, match="set BMRS_SHEETS_CREDENTIALS"):
        service_account_session(None)
    with pytest.raises(SheetsError, match="does not exist"):
        service_account_session(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"type": "service_account"}))
    with pytest.raises(SheetsError, match="is not a service-account JSON key"):
        service_account_session(bad)
