"""What the CLI prints: instants with Z (or local time with an offset), naive times without,
DuckDB's hints kept, and gaps as ranges of days."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.test_dashboard_model import store
from worker.cli import main
from worker.cli.output import coverage_ranges, format_time
from worker.elexon.coverage import Coverage
from worker.elexon.settlement import period_start
from worker.sinks.local import LocalWarehouse

CHANGE = dt.date(2025, 10, 26)  # clocks go back: 50 periods, 01:00 local twice
CLOCKS = ("SELECT settlementPeriod AS sp, startTime, "
          "startTime AT TIME ZONE 'Europe/London' AS local_start, "
          "date_trunc('month', settlementDate) AS month "
          "FROM disebsp WHERE settlementDate = DATE '2025-10-26' AND settlementPeriod IN (3, 5) "
          "ORDER BY sp")


@pytest.fixture
def clock_change_warehouse(bmrs_env: pytest.MonkeyPatch, data_dir: Path) -> LocalWarehouse:
    sink = LocalWarehouse(data_dir)
    rows = []
    for period in range(1, 51):
        start = period_start(CHANGE, period)
        rows.append({"settlementDate": CHANGE.isoformat(), "settlementPeriod": period,
                     "startTime": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "createdDateTime": (start + dt.timedelta(hours=1)).strftime(
                         "%Y-%m-%dT%H:%M:%SZ"),
                     "systemSellPrice": 50.0, "systemBuyPrice": 50.0})
    store(sink, "DISEBSP", rows)
    return sink


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_instants_have_z_and_naive_times_have_none(clock_change_warehouse) -> None:
    rows = json.loads(run("query", CLOCKS, "--format", "json"))
    # Periods 3 and 5 both start at 01:00 London time: one instant is BST, the other GMT.
    assert [r["startTime"] for r in rows] == ["2025-10-26T00:00:00Z", "2025-10-26T01:00:00Z"]
    assert [r["local_start"] for r in rows] == ["2025-10-26T01:00:00"] * 2  # no Z: wall clock
    assert [r["month"] for r in rows] == ["2025-10-01T00:00:00"] * 2


def test_local_time_keeps_the_two_one_oclocks_apart(clock_change_warehouse) -> None:
    local = run("query", CLOCKS, "--format", "csv", "--local").splitlines()
    assert local[1].split(",")[1] == "2025-10-26T01:00:00+01:00"
    assert local[2].split(",")[1] == "2025-10-26T01:00:00+00:00"
    assert run("query", CLOCKS, "--format", "csv", "--tz", "Europe/London") == "\n".join(
        local) + "\n"
    table = run("query", CLOCKS)
    assert "2025-10-26T00:00:00Z" in table and "2025-10-26T01:00:00Z" in table  # never cut
    bad = CliRunner().invoke(main, ["query", "SELECT 1", "--tz", "Mars/Olympus"])
    assert bad.exit_code == 2 and "unknown time zone" in bad.output


def test_query_errors_keep_duckdbs_hints(clock_change_warehouse) -> None:
    result = CliRunner().invoke(main, ["query", "SELECT * FROM disebsp_lates"])
    assert result.exit_code != 0
    assert 'Did you mean "disebsp_latest"' in result.output
    result = CliRunner().invoke(main, ["query", "SELECT systemSellPrise FROM disebsp"])
    assert "Candidate bindings" in result.output and "systemSellPrice" in result.output


def test_gaps_print_runs_of_days_and_json_stays_per_day(clock_change_warehouse) -> None:
    text = run("gaps", "--start", "2025-10-01", "--end", "2025-10-31", "--dataset", "DISEBSP")
    assert "DISEBSP 2025-10-01 to 2025-10-25 (25 days): missing (never fetched)" in text
    assert "DISEBSP 2025-10-27 to 2025-10-31 (5 days): missing (never fetched)" in text
    assert "2025-10-26" not in text.split("DISEBSP 2025-10-01")[1].split("\n")[0]
    assert len([line for line in text.splitlines() if line.startswith("DISEBSP 2025")]) == 2
    days = json.loads(run("gaps", "--start", "2025-10-01", "--end", "2025-10-31",
                          "--dataset", "DISEBSP", "--json"))
    assert len(days) == 31 and {d["status"] for d in days} == {"missing", "complete"}


def test_ranges_break_at_a_skipped_day_a_status_change_and_a_dataset() -> None:
    def cov(code: str, day: int, status: str, reason: str | None = None) -> Coverage:
        return Coverage(dataset=code, date=dt.date(2025, 1, day), status=status, reason=reason)

    entries = [cov("MID", 1, "missing"), cov("MID", 2, "missing"), cov("MID", 4, "missing"),
               cov("MID", 5, "failed", "HTTP 500"), cov("FREQ", 1, "missing")]
    assert [(c, a.day, b.day, s, n) for c, a, b, s, _, n in coverage_ranges(entries)] == [
        ("MID", 1, 2, "missing", 2), ("MID", 4, 4, "missing", 1), ("MID", 5, 5, "failed", 1),
        ("FREQ", 1, 1, "missing", 1)]


def test_format_time_naive_aware_and_zoned() -> None:
    from zoneinfo import ZoneInfo

    aware = dt.datetime(2025, 7, 1, 12, 0, 0, 500000, tzinfo=dt.UTC)
    assert format_time(aware) == "2025-07-01T12:00:00.500000Z"
    assert format_time(aware.replace(microsecond=0), ZoneInfo("Europe/London")) == \
        "2025-07-01T13:00:00+01:00"
    assert format_time(dt.datetime(2024, 1, 1)) == "2024-01-01T00:00:00"
