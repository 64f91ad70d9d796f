"""Years of history cost what a query reads (issue 13): day filters skip other days' files, the
manifest replaces listings, views are made for the datasets a query names, internal names stay
hidden, and the Python API (worker.warehouse) is what `bmrs query` runs."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from worker import warehouse
from worker.cli import main
from worker.elexon import catalog
from worker.elexon.coverage import digest
from worker.elexon.parse import parse_rows
from worker.settings import Settings
from worker.sinks import SinkConfigError
from worker.sinks.local import LocalWarehouse, referenced
from worker.sinks.sql_dialect import key_within_day

DISEBSP = catalog.get("DISEBSP")
FREQ = catalog.get("FREQ")
INDGEN = catalog.get("INDGEN")
FIRST = dt.date(2025, 6, 1)
DAYS = [FIRST + dt.timedelta(days=i) for i in range(5)]


def prices(day: dt.date, created: str, price: float) -> list[dict]:
    start = dt.datetime.combine(day, dt.time(), dt.UTC) - dt.timedelta(hours=1)  # BST
    return [
        {
            "settlementDate": day.isoformat(),
            "settlementPeriod": p,
            "startTime": (start + (p - 1) * dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "createdDateTime": created,
            "systemSellPrice": price + p,
            "systemBuyPrice": price + p,
            "netImbalanceVolume": 1.0,
        }
        for p in range(1, 49)
    ]


def load(sink: LocalWarehouse, dataset: catalog.Dataset, day: dt.date, rows: list[dict]) -> None:
    with sink.chunk_lock(dataset, day):
        sink.load_chunk(dataset, day, parse_rows(dataset, rows).table)


@pytest.fixture
def lake(data_dir: Path) -> LocalWarehouse:
    """Five days of system prices, each with a first run and a revision."""
    sink = LocalWarehouse(data_dir)
    for day in DAYS:
        load(sink, DISEBSP, day, prices(day, f"{day}T23:00:00Z", 50))
        load(sink, DISEBSP, day, prices(day, f"{day + dt.timedelta(days=20)}T00:00:00Z", 70))
    return sink


def break_day(sink: LocalWarehouse, dataset: catalog.Dataset, day: dt.date) -> None:
    """Overwrite a day's current file with bytes no reader can parse: a query that opens it
    fails, so a query that succeeds never opened it."""
    (sink.current_files(dataset)[[*sink.stored_days(dataset)].index(day)]).write_bytes(b"not parquet")


def test_a_day_filter_reads_only_that_days_file_on_every_view(lake: LocalWarehouse) -> None:
    iris = parse_rows(DISEBSP, prices(DAYS[3], f"{DAYS[3]}T23:30:00Z", 90)[:2], source="iris").table
    lake.append_stream(DISEBSP, DAYS[3], iris, digest(iris))
    known = parse_rows(DISEBSP, prices(DAYS[3], f"{DAYS[3]}T23:00:00Z", 50)[:3], source="iris")
    lake.append_stream(DISEBSP, DAYS[3], known.table, digest(known.table))  # the API has them
    break_day(lake, DISEBSP, DAYS[0])
    d3 = f"DATE '{DAYS[3]}'"
    for sql, expected in (
        (f"SELECT count(*) AS n FROM disebsp WHERE _day = {d3}", 96),
        (f"SELECT count(*) AS n FROM disebsp WHERE settlementDate = {d3}", 96),
        (f"SELECT count(*) AS n FROM disebsp_latest WHERE _day = {d3}", 48),
        (f"SELECT count(*) AS n FROM disebsp_latest WHERE settlementDate BETWEEN {d3} "
         f"AND DATE '{DAYS[4]}'", 96),
        (f"SELECT count(*) AS n FROM disebsp_unified WHERE _day = {d3}", 98),
        (f"SELECT count(*) AS n FROM disebsp_unified WHERE settlementDate = {d3}", 98),
    ):
        assert lake.query(sql).to_pylist() == [{"n": expected}], sql
    # The latest view still picks the newest run of each period of the day.
    low = lake.query(f'SELECT min("systemSellPrice") AS lo FROM disebsp_latest WHERE _day = {d3}')
    assert low.to_pylist() == [{"lo": 71.0}]
    with pytest.raises(duckdb.Error):  # the unfiltered view does open the broken day
        lake.query("SELECT count(*) FROM disebsp_latest")


def test_a_time_filter_on_the_partition_field_reads_only_those_days(data_dir: Path) -> None:
    sink = LocalWarehouse(data_dir)
    for day in DAYS[:3]:
        start = dt.datetime.combine(day, dt.time(), dt.UTC) - dt.timedelta(hours=1)
        rows = [
            {"measurementTime": (start + dt.timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "frequency": 50.0}
            for i in range(0, 24 * 60, 10)
        ]
        load(sink, FREQ, day, rows)
    break_day(sink, FREQ, DAYS[0])
    noon = dt.datetime.combine(DAYS[1], dt.time(12), dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    sql = (
        "SELECT count(*) AS n FROM freq_latest WHERE measurementTime >= "
        f"TIMESTAMP '{noon}' AND measurementTime < TIMESTAMP '{noon}' + INTERVAL 1 HOUR"
    )
    assert sink.query(sql).to_pylist() == [{"n": 6}]


def test_a_key_spanning_days_keeps_its_newest_version_across_days(data_dir: Path) -> None:
    """INDGEN is stored by publish day; a forecast's versions arrive on different days, so its
    latest view looks across days, and a settlementDate filter still gives the newest."""
    assert not key_within_day(INDGEN) and not key_within_day(catalog.get("REMIT"))
    assert key_within_day(DISEBSP) and key_within_day(FREQ) and key_within_day(catalog.get("BOD"))
    sink = LocalWarehouse(data_dir)
    target = DAYS[2]
    for day, value in ((DAYS[0], 100), (DAYS[1], 200)):
        row = {
            "generation": value, "publishTime": f"{day}T10:00:00Z", "startTime": f"{target}T09:00:00Z",
            "settlementDate": target.isoformat(), "settlementPeriod": 21, "boundary": "N",
        }
        load(sink, INDGEN, day, [row])
    latest = sink.query(
        f"SELECT generation FROM indgen_latest WHERE settlementDate = DATE '{target}'"
    )
    assert latest.to_pylist() == [{"generation": 200}]


def test_views_are_made_for_the_datasets_a_query_names_and_internal_names_stay_hidden(
    lake: LocalWarehouse,
) -> None:
    assert referenced("select 1") == []
    assert [d.code for d in referenced('SELECT * FROM "disebsp_latest" JOIN fuelinst USING (x)')] == [
        "FUELINST", "DISEBSP"
    ]
    assert len(referenced("SHOW TABLES")) == len(catalog.DATASETS)
    iris = parse_rows(DISEBSP, prices(DAYS[0], f"{DAYS[0]}T23:30:00Z", 90)[:1], source="iris").table
    lake.append_stream(DISEBSP, DAYS[0], iris, digest(iris))
    names = {row["name"] for row in lake.query("SHOW TABLES").to_pylist()}
    expected = {f"{d.table}{suffix}" for d in catalog.DATASETS for suffix in ("", "_latest", "_unified")}
    assert names == expected


def test_a_sinks_queries_see_each_load_as_it_lands(lake: LocalWarehouse) -> None:
    count = "SELECT count(*) AS n FROM disebsp_latest"
    assert lake.query(count).to_pylist() == [{"n": 240}]
    later = DAYS[-1] + dt.timedelta(days=1)
    load(lake, DISEBSP, later, prices(later, f"{later}T23:00:00Z", 50))
    assert lake.query(count).to_pylist() == [{"n": 288}]
    low = f"SELECT min(systemSellPrice) AS lo FROM disebsp_latest WHERE _day = DATE '{later}'"
    assert lake.query(low).to_pylist() == [{"lo": 51.0}]
    load(lake, DISEBSP, later, prices(later, f"{later}T23:59:00Z", 60))  # a new generation
    assert lake.query(low).to_pylist() == [{"lo": 61.0}]


def test_a_format_1_lake_gets_its_manifest_from_one_listing(lake: LocalWarehouse) -> None:
    manifest = lake.lake / "disebsp" / "_manifest.json"
    written = json.loads(manifest.read_bytes())
    manifest.unlink()
    (lake.lake / "_format.json").write_text('{"format_version": 1}')
    again = LocalWarehouse(lake.root)
    assert json.loads((lake.lake / "_format.json").read_text()) == {"format_version": 2}
    assert again.query("SELECT count(*) AS n FROM disebsp_latest").to_pylist() == [{"n": 240}]
    assert json.loads(manifest.read_bytes()) == written
    assert again.newest_day(DISEBSP) == DAYS[-1]


def test_python_api_and_cli_run_the_same_query(
    lake: LocalWarehouse, bmrs_env: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=lake.root)
    sql = "SELECT _day, count(*) AS n FROM disebsp_latest GROUP BY _day ORDER BY _day"
    table = warehouse.query(sql, settings)
    assert table.to_pylist() == [{"_day": day, "n": 48} for day in DAYS]
    con = warehouse.connect(settings)
    assert con.sql(sql).fetchall() == [(day, 48) for day in DAYS]
    assert {row[0] for row in con.sql("SHOW TABLES").fetchall()} >= {"fuelinst_latest", "remit"}
    out = CliRunner().invoke(main, ["query", "--format", "json", sql])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == [{"_day": day.isoformat(), "n": 48} for day in DAYS]
    with pytest.raises(SinkConfigError, match="use worker.warehouse.query"):
        warehouse.connect(Settings(data_dir=lake.root, sink="bigquery"))


def test_freshness_reports_the_newest_row_however_old_without_reading_days(
    lake: LocalWarehouse,
) -> None:
    from worker.cluster import freshness
    from worker.elexon.settlement import day_window_utc

    for day in DAYS:
        break_day(lake, DISEBSP, day)  # the manifest alone answers
    now = dt.datetime(2026, 11, 30, 9, tzinfo=dt.UTC)
    found, missing = freshness.assess(lake, [DISEBSP, FREQ], now)
    last_period = day_window_utc(DAYS[-1])[1] - dt.timedelta(minutes=30)
    assert found.newest_utc == last_period and found.stale
    assert found.to_json()["age_s"] == round((now - last_period).total_seconds())
    assert missing.newest_utc is None and missing.to_json()["age_s"] is None


def test_bigquery_newest_day_comes_from_the_coverage_table(fake_bigquery) -> None:  # type: ignore[no-untyped-def]
    from tests.test_bigquery_sink import FUELINST, fuelinst_rows, make_sink
    from tests.test_bigquery_sink import load as bq_load
    from worker.cluster import freshness
    from worker.elexon.coverage import Coverage

    sink = make_sink(fake_bigquery)
    assert sink.newest_day(FUELINST) is None
    for day in DAYS[:2]:
        bq_load(sink, FUELINST, day, fuelinst_rows(day))
        sink.write_coverage(Coverage(dataset="FUELINST", date=day, status="partial", rows=24))
    sink.write_coverage(Coverage(dataset="FUELINST", date=DAYS[2], status="empty", rows=0))
    assert sink.newest_day(FUELINST) == DAYS[1]
    now = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    (result,) = freshness.assess(sink, [FUELINST], now)
    assert result.newest_utc == dt.datetime.combine(DAYS[1], dt.time(0, 55), dt.UTC)


def test_bigquery_views_read_only_the_partitions_a_day_filter_names(fake_bigquery) -> None:  # type: ignore[no-untyped-def]
    from tests.test_bigquery_sink import FUELINST, fuelinst_rows, make_sink
    from tests.test_bigquery_sink import load as bq_load

    sink = make_sink(fake_bigquery)
    for day in DAYS:
        bq_load(sink, FUELINST, day, fuelinst_rows(day, publish_minute=5))
        bq_load(sink, FUELINST, day, fuelinst_rows(day, publish_minute=7))
    iris = fuelinst_rows(DAYS[3], publish_minute=9, count=2, source="iris")
    sink.append_stream(FUELINST, DAYS[3], iris, digest(iris))
    known = fuelinst_rows(DAYS[3], publish_minute=7, count=3, source="iris")  # the API has them
    sink.append_stream(FUELINST, DAYS[3], known, digest(known))
    d3 = f"DATE '{DAYS[3]}'"
    part = DAYS[3].strftime("%Y%m%d")
    for sql, expected, tables in (
        (f"SELECT count(*) AS n FROM fuelinst WHERE _day = {d3}", 48, {"fuelinst_api"}),
        (f"SELECT count(*) AS n FROM fuelinst WHERE settlementDate = {d3}", 48, {"fuelinst_api"}),
        (f"SELECT count(*) AS n FROM fuelinst_latest WHERE _day = {d3}", 24, {"fuelinst_api"}),
        (f"SELECT count(*) AS n FROM fuelinst_latest WHERE settlementDate = {d3}", 24,
         {"fuelinst_api"}),
        (f"SELECT count(*) AS n FROM fuelinst_unified WHERE _day = {d3}", 52,
         {"fuelinst_api", "fuelinst_stream"}),
    ):
        assert sink.query(sql).to_pylist() == [{"n": expected}], sql
        read = fake_bigquery.partitions_read[-1]
        assert read == {table: [part] for table in tables}, sql
    sink.query("SELECT count(*) AS n FROM fuelinst_latest")
    assert len(fake_bigquery.partitions_read[-1]["fuelinst_api"]) == len(DAYS)


def test_vacuum_repairs_a_manifest_a_dead_writer_left_behind(lake: LocalWarehouse) -> None:
    """A writer that died between its day file and its manifest update: readers keep the
    previous generation (whole), and vacuum points the manifest at the newest file."""
    from worker.sinks.local import PART_PREFIX, atomic_write

    folder = lake.day_dir(DISEBSP, DAYS[1])
    newer = parse_rows(DISEBSP, prices(DAYS[1], f"{DAYS[1]}T23:00:00Z", 50)[:5]).table
    atomic_write(folder / f"{PART_PREFIX}{'9' * 20}.parquet", table=newer)  # newest generation
    one_day = f"SELECT count(*) AS n FROM disebsp WHERE _day = DATE '{DAYS[1]}'"
    assert lake.query(one_day).to_pylist() == [{"n": 96}]
    lake.vacuum()
    assert lake.query(one_day).to_pylist() == [{"n": 5}]
    shutil.rmtree(lake.day_dir(DISEBSP, DAYS[2]))  # a day deleted by hand
    assert lake.query("SELECT count(*) AS n FROM disebsp").to_pylist() == [{"n": 3 * 96 + 5}]
