"""``mels_latest``/``mils_latest`` answer "the limit in force for unit U at instant T".

The cases are Elexon's own (insights-docs ``docs/mil_mel_resolution.md``): a re-declaration
covering 11:20-11:30 of a period declared 11:00-11:30 "rolls back" the original segment to
11:20, levels kept as declared; a newer sequence wins, and an equal sequence with a later
notification time wins; files may arrive in any order. The rows are what the API and IRIS
store: resolved answers fetched at different times, and raw declarations.
"""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import pytest

from worker.elexon import catalog
from worker.elexon.parse import parse_rows
from worker.sinks.local import LocalWarehouse
from worker.sinks.sql_dialect import BigQueryDialect

DAY = dt.date(2023, 5, 24)
MELS = catalog.get("MELS")


def declaration(
    time_from: str,
    time_to: str,
    level_from: int,
    level_to: int,
    sequence: int,
    notified: str = "2023-05-24T07:00:00Z",
    unit: str = "ABRBO-1",
    period: int = 23,
) -> dict[str, Any]:
    return {
        "dataset": "MELS",
        "settlementDate": DAY.isoformat(),
        "settlementPeriod": period,
        "timeFrom": f"2023-05-24T{time_from}:00Z",
        "timeTo": f"2023-05-24T{time_to}:00Z",
        "levelFrom": level_from,
        "levelTo": level_to,
        "notificationTime": notified,
        "notificationSequence": sequence,
        "nationalGridBmUnit": unit,
        "bmUnit": f"T_{unit}",
    }


def load_fetches(data_dir: Path, *fetches: list[dict[str, Any]]) -> LocalWarehouse:
    """Each fetch loaded as its own ingestion, one second after the previous one."""
    warehouse = LocalWarehouse(data_dir)
    start = dt.datetime(2023, 5, 24, 12, tzinfo=dt.UTC)
    for number, rows in enumerate(fetches):
        stamp = start + dt.timedelta(seconds=number)
        table = parse_rows(MELS, rows, ingested_utc=stamp).table
        with warehouse.chunk_lock(MELS, DAY):
            warehouse.load_chunk(MELS, DAY, table)
    return warehouse


Segment = tuple[str, str, int, int, int]


def resolved(warehouse: LocalWarehouse, unit: str = "ABRBO-1") -> list[Segment]:
    rows = warehouse.query(
        'SELECT "timeFrom", "timeTo", "levelFrom", "levelTo", "notificationSequence" '
        f'FROM mels_latest WHERE "nationalGridBmUnit" = \'{unit}\' ORDER BY "timeFrom"'
    ).to_pylist()
    return [
        (
            r["timeFrom"].strftime("%H:%M"),
            r["timeTo"].strftime("%H:%M"),
            r["levelFrom"],
            r["levelTo"],
            r["notificationSequence"],
        )
        for r in rows
    ]


def test_partial_redeclaration_rolls_the_original_back_keeping_its_levels(data_dir: Path) -> None:
    """The doc's picture: 11:00-11:30 declared 100 -> 40; a valid re-declaration for
    11:20-11:30 only. The original is cut to 11:00-11:20 with its levels unchanged."""
    original = declaration("11:00", "11:30", 100, 40, sequence=1)
    redeclared = declaration("11:20", "11:30", 60, 60, sequence=2, notified="2023-05-24T11:05:00Z")
    # First fetch: the original. Second fetch (the API's resolved view after the change).
    rolled_back = {**original, "timeTo": "2023-05-24T11:20:00Z"}
    warehouse = load_fetches(data_dir, [original], [rolled_back, redeclared])
    assert resolved(warehouse) == [("11:00", "11:20", 100, 40, 1), ("11:20", "11:30", 60, 60, 2)]
    # The same from the raw declarations alone (IRIS), in either order of arrival.
    for order in ([original], [redeclared]), ([redeclared], [original]):
        other = load_fetches(data_dir / f"raw{order[0][0]['notificationSequence']}", *order)
        assert resolved(other) == [("11:00", "11:20", 100, 40, 1), ("11:20", "11:30", 60, 60, 2)]


def test_intra_period_redeclaration_truncates_the_end_of_one_and_start_of_the_next(
    data_dir: Path,
) -> None:
    """The doc's result 1: 0000 and 0001 are consecutive; 0003 spans their boundary."""
    first = declaration("09:00", "09:15", 11, 11, sequence=0)
    second = declaration("09:15", "09:30", 10, 10, sequence=1)
    third = declaration("09:10", "09:20", 5, 5, sequence=3, notified="2023-05-24T09:01:00Z")
    for order in itertools.permutations([[first], [second], [third]]):
        name = "-".join(str(rows[0]["notificationSequence"]) for rows in order)
        warehouse = load_fetches(data_dir / name, *order)
        assert resolved(warehouse) == [
            ("09:00", "09:10", 11, 11, 0),
            ("09:10", "09:20", 5, 5, 3),
            ("09:20", "09:30", 10, 10, 1),
        ], name


def test_equal_sequence_with_a_later_notification_time_wins(data_dir: Path) -> None:
    earlier = declaration("09:00", "09:30", 20, 20, sequence=7, notified="2023-05-24T08:00:00Z")
    later = declaration("09:00", "09:30", 30, 30, sequence=7, notified="2023-05-24T08:10:00Z")
    warehouse = load_fetches(data_dir, [later], [earlier])
    assert resolved(warehouse) == [("09:00", "09:30", 30, 30, 7)]


def test_one_segment_per_unit_and_instant_and_no_unit_lost(data_dir: Path) -> None:
    """Many units, standing declarations split per period, some re-timed: at every minute
    each unit has exactly one segment in force, and every unit is there."""
    fetches = []
    units = [f"UNIT-{n}" for n in range(5)]
    for unit in units:
        fetches.append(
            [
                declaration("09:00", "09:30", 50, 50, sequence=1, unit=unit, period=21),
                declaration("09:30", "10:00", 50, 50, sequence=1, unit=unit, period=22),
            ]
        )
    fetches.append([declaration("09:25", "09:40", 0, 0, sequence=9, unit="UNIT-2", period=21)])
    warehouse = load_fetches(data_dir, *fetches)
    rows = warehouse.query(
        'SELECT "nationalGridBmUnit" AS unit, "timeFrom" AS t0, "timeTo" AS t1 FROM mels_latest'
    ).to_pylist()
    assert {r["unit"] for r in rows} == set(units)
    start = dt.datetime(2023, 5, 24, 9, tzinfo=dt.UTC)
    for minute in range(60):
        instant = start + dt.timedelta(minutes=minute, seconds=30)
        for unit in units:
            holding = [r for r in rows if r["unit"] == unit and r["t0"] <= instant < r["t1"]]
            assert len(holding) == 1, (unit, instant, holding)
    assert resolved(warehouse, "UNIT-2") == [
        ("09:00", "09:25", 50, 50, 1),
        ("09:25", "09:40", 0, 0, 9),
        ("09:40", "10:00", 50, 50, 1),
    ]


def test_other_datasets_keep_the_newest_row_per_key() -> None:
    dialect = BigQueryDialect("project", "dataset")
    assert "LEAD(edge)" in dialect.latest_sql(MELS, "src")
    assert "LEAD(edge)" in dialect.latest_sql(catalog.get("MILS"), "src")
    assert "LEAD(edge)" not in dialect.latest_sql(catalog.get("PN"), "src")
    # GoogleSQL needs a WHERE before each QUALIFY: every QUALIFY follows one.
    sql = dialect.latest_sql(MELS, "src")
    for part in sql.split("QUALIFY")[:-1]:
        assert "WHERE" in part.rsplit("SELECT", 1)[-1], part[-200:]


@pytest.mark.parametrize("code", ["MELS", "MILS"])
def test_the_resolved_view_has_the_stored_columns_in_order(data_dir: Path, code: str) -> None:
    warehouse = LocalWarehouse(data_dir)
    dataset = catalog.get(code)
    stored = warehouse.query(f"SELECT * FROM {dataset.table} LIMIT 0").column_names
    latest = warehouse.query(f"SELECT * FROM {dataset.table}_latest LIMIT 0").column_names
    assert latest == stored


def test_a_day_filter_resolves_only_that_days_rows(data_dir: Path) -> None:
    """The resolution runs per unit within a day, so a day filter reaches the scan: a query
    of one day succeeds even when another day's file cannot be read."""
    warehouse = LocalWarehouse(data_dir)
    days = [DAY, DAY + dt.timedelta(days=1)]
    for day in days:
        rows = [
            {
                **declaration("09:00", "09:30", 50, 50, sequence=1),
                "settlementDate": day.isoformat(),
                "timeFrom": f"{day}T09:00:00Z",
                "timeTo": f"{day}T09:30:00Z",
            }
        ]
        with warehouse.chunk_lock(MELS, day):
            warehouse.load_chunk(MELS, day, parse_rows(MELS, rows).table)
    warehouse.current_files(MELS)[0].write_bytes(b"not parquet")  # the first day, unreadable
    for column in ("_day", "settlementDate"):
        sql = f"SELECT count(*) AS n FROM mels_latest WHERE {column} = DATE '{days[1]}'"
        assert warehouse.query(sql).to_pylist() == [{"n": 1}], sql


def test_bigquery_resolves_the_same_and_reads_only_the_days_partition(
    fake_bigquery,  # type: ignore[no-untyped-def]
) -> None:
    from tests.test_bigquery_sink import load as bq_load
    from tests.test_bigquery_sink import make_sink

    sink = make_sink(fake_bigquery)
    original = declaration("11:00", "11:30", 100, 40, sequence=1)
    redeclared = declaration("11:20", "11:30", 60, 60, sequence=2, notified="2023-05-24T11:05:00Z")
    bq_load(sink, MELS, DAY, parse_rows(MELS, [original]).table)
    bq_load(sink, MELS, DAY, parse_rows(MELS, [redeclared]).table)
    rows = sink.query(
        "SELECT timeFrom, timeTo, levelFrom, levelTo FROM mels_latest "
        f"WHERE _day = DATE '{DAY}' ORDER BY timeFrom"
    ).to_pylist()
    got = [
        (
            r["timeFrom"].strftime("%H:%M"),
            r["timeTo"].strftime("%H:%M"),
            r["levelFrom"],
            r["levelTo"],
        )
        for r in rows
    ]
    assert got == [("11:00", "11:20", 100, 40), ("11:20", "11:30", 60, 60)]
    assert fake_bigquery.partitions_read[-1] == {"mels_api": [DAY.strftime("%Y%m%d")]}


def test_refetched_after_a_redeclaration_the_api_answer_resolves_end_to_end(
    replay_factory,
    bmrs_env: pytest.MonkeyPatch,
    data_dir: Path,  # type: ignore[no-untyped-def]
) -> None:
    """Through the real client: the API's resolved answer before a re-declaration, then the
    re-timed answer after it, each ingested with ``bmrs ingest``; the view holds the latter."""
    from click.testing import CliRunner

    from worker.cli import main
    from worker.settings import get_settings
    from worker.sim.server import BASE_PATH

    other_unit = declaration("11:00", "11:30", 35, 35, sequence=1, unit="ABERU-1")
    before = [declaration("11:00", "11:30", 100, 40, sequence=1), other_unit]
    after = [
        declaration("11:20", "11:30", 60, 60, sequence=2, notified="2023-05-24T11:05:00Z"),
        {**before[0], "timeTo": "2023-05-24T11:20:00Z"},
        other_unit,
    ]
    for answer in (before, after):
        running = replay_factory({"MELS": answer})
        bmrs_env.setenv("BMRS_ELEXON_BASE_URL", running.url + BASE_PATH)
        get_settings.cache_clear()  # settings are read once per process
        result = CliRunner().invoke(main, ["ingest", "MELS", "--date", DAY.isoformat()])
        assert result.exit_code == 0, result.output
    warehouse = LocalWarehouse(data_dir)
    assert resolved(warehouse) == [("11:00", "11:20", 100, 40, 1), ("11:20", "11:30", 60, 60, 2)]
    assert resolved(warehouse, "ABERU-1") == [("11:00", "11:30", 35, 35, 1)]
    # The plain view keeps every stored segment, the stale 11:00-11:30 one included.
    assert warehouse.query("SELECT count(*) AS n FROM mels").to_pylist() == [{"n": 4}]


def test_a_unit_with_only_a_zero_length_segment_is_not_lost(data_dir: Path) -> None:
    point = declaration("09:00", "09:00", 7, 7, sequence=4, unit="POINT-1")
    other = declaration("09:00", "09:30", 50, 50, sequence=1)
    covered = declaration("09:10", "09:10", 9, 9, sequence=5)  # inside ABRBO-1's segment
    warehouse = load_fetches(data_dir, [point, other, covered])
    assert resolved(warehouse, "POINT-1") == [("09:00", "09:00", 7, 7, 4)]
    assert resolved(warehouse) == [("09:00", "09:30", 50, 50, 1)]
