"""Stream storage in the local lake: idempotent appends, the unified view, retention."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pyarrow.parquet as pq

from worker.elexon import catalog
from worker.elexon.coverage import Coverage, digest
from worker.elexon.parse import parse_rows
from worker.sinks import local
from worker.sinks.local import LocalWarehouse

FUELINST = catalog.get("FUELINST")
PN = catalog.get("PN")
DAY = dt.date(2025, 10, 27)


def fuel_row(minute: int, fuel: str = "CCGT", mw: int = 1000, published: str | None = None) -> dict:
    start = f"2025-10-27T10:{minute:02d}:00Z"
    return {
        "dataset": "FUELINST",
        "publishTime": published or start,
        "startTime": start,
        "settlementDate": "2025-10-27",
        "settlementPeriod": 21,
        "fuelType": fuel,
        "generation": mw,
    }


def table_of(dataset: catalog.Dataset, rows: list[dict], source: str = "iris"):
    return parse_rows(dataset, rows, source=source).table


def unified_rows(sink: LocalWarehouse, code: str) -> list[dict]:
    return sink.query(
        f"SELECT * FROM {code}_unified ORDER BY startTime, fuelType, _source"
    ).to_pylist()


def test_the_same_batch_appended_three_times_is_stored_once(data_dir: Path) -> None:
    sink = LocalWarehouse(data_dir)
    batch = table_of(FUELINST, [fuel_row(0), fuel_row(5)])
    results = [sink.append_stream(FUELINST, DAY, batch, digest(batch)) for _ in range(3)]
    assert results == [True, False, False]
    assert sink.read_stream_day(FUELINST, DAY).num_rows == 2
    assert len(list(sink.stream_dir(FUELINST, DAY).glob("*.parquet"))) == 1


def test_rows_redelivered_inside_another_batch_land_once(data_dir: Path) -> None:
    sink = LocalWarehouse(data_dir)
    first = table_of(FUELINST, [fuel_row(0), fuel_row(5)])
    second = table_of(FUELINST, [fuel_row(5), fuel_row(10), fuel_row(10)])
    assert sink.append_stream(FUELINST, DAY, first, digest(first))
    assert sink.append_stream(FUELINST, DAY, second, digest(second))
    stored = sink.read_stream_day(FUELINST, DAY)
    assert sorted(stored.column("startTime").to_pylist()) == sorted(
        stored.column("startTime").unique().to_pylist()
    )
    on_disk = sum(
        pq.read_metadata(p).num_rows for p in sink.stream_dir(FUELINST, DAY).glob("*.parquet")
    )
    assert on_disk == 3
    assert [r["startTime"].minute for r in unified_rows(sink, "fuelinst")] == [0, 5, 10]


def test_unified_holds_api_rows_and_only_the_iris_rows_the_api_lacks(data_dir: Path) -> None:
    sink = LocalWarehouse(data_dir)
    api = table_of(FUELINST, [fuel_row(0), fuel_row(5)], source="api")
    with sink.chunk_lock(FUELINST, DAY):
        sink.load_chunk(FUELINST, DAY, api)
    # IRIS: the same two rows (same key and version), a newer version of minute 5, and minute 10.
    iris = table_of(
        FUELINST,
        [
            fuel_row(0),
            fuel_row(5),
            fuel_row(5, mw=1200, published="2025-10-27T10:20:00Z"),
            fuel_row(10),
        ],
    )
    sink.append_stream(FUELINST, DAY, iris, digest(iris))
    rows = unified_rows(sink, "fuelinst")
    seen = [(r["startTime"].minute, r["generation"], r["_source"]) for r in rows]
    assert seen == [(0, 1000, "api"), (5, 1000, "api"), (5, 1200, "iris"), (10, 1000, "iris")]
    # the latest view over the raw API table is untouched by the stream
    assert sink.query("SELECT count(*) AS n FROM fuelinst").column("n")[0].as_py() == 2


def test_unversioned_stream_rows_give_way_once_the_api_holds_their_key(data_dir: Path) -> None:
    sink = LocalWarehouse(data_dir)
    row = {
        "dataset": "PN",
        "settlementDate": "2025-10-27",
        "settlementPeriod": 21,
        "timeFrom": "2025-10-27T10:00:00Z",
        "timeTo": "2025-10-27T10:30:00Z",
        "levelFrom": 5,
        "levelTo": 7,
        "nationalGridBmUnit": "ABC-1",
        "bmUnit": "T_ABC-1",
    }
    iris = table_of(PN, [row, {**row, "levelTo": 8}])
    sink.append_stream(PN, DAY, iris, digest(iris))
    assert sink.query("SELECT count(*) AS n FROM pn_unified").column("n")[0].as_py() == 2
    with sink.chunk_lock(PN, DAY):
        sink.load_chunk(PN, DAY, table_of(PN, [{**row, "levelTo": 9}], source="api"))
    assert sink.query("SELECT levelTo, _source FROM pn_unified").to_pylist() == [
        {"levelTo": 9, "_source": "api"}
    ]


def test_many_batches_are_compacted_without_losing_or_doubling_rows(
    data_dir: Path, monkeypatch
) -> None:
    monkeypatch.setattr(local, "STREAM_COMPACT_FILES", 4)
    sink = LocalWarehouse(data_dir)
    reader = None
    for minute in range(0, 50, 5):
        if minute == 15:
            reader = sink.connect()  # resolves the first three batch files, then compaction runs
        batch = table_of(FUELINST, [fuel_row(minute), fuel_row(0)])
        sink.append_stream(FUELINST, DAY, batch, digest(batch))
    folder = sink.stream_dir(FUELINST, DAY)
    assert len(local.stream_current(local.stream_parts(folder))) <= 4
    assert sink.read_stream_day(FUELINST, DAY).num_rows == 10
    assert len(unified_rows(sink, "fuelinst")) == 10
    # superseded files stay while readers may hold them: the earlier reader still reads
    assert reader.execute("SELECT count(*) FROM fuelinst_unified").fetchone() == (3,)
    assert len(local.stream_parts(folder)) > len(local.stream_current(local.stream_parts(folder)))
    local.retire_stream(folder, now=time.time() + local.RETIRE_AFTER_S + 1)
    assert local.stream_parts(folder) == local.stream_current(local.stream_parts(folder))
    assert len(unified_rows(sink, "fuelinst")) == 10


def test_retention_drops_stream_days_only_when_the_api_day_is_complete_and_old(
    data_dir: Path,
) -> None:
    sink = LocalWarehouse(data_dir)
    days = [DAY - dt.timedelta(days=2), DAY - dt.timedelta(days=1), DAY]
    for minute, day in enumerate(days):
        batch = table_of(FUELINST, [fuel_row(minute)])
        sink.append_stream(FUELINST, day, batch, f"b{day}")
    sink.write_coverage(Coverage(dataset="FUELINST", date=days[0], status="complete", rows=1))
    sink.write_coverage(Coverage(dataset="FUELINST", date=days[1], status="partial", rows=1))
    sink.write_coverage(Coverage(dataset="FUELINST", date=days[2], status="complete", rows=1))
    reader = sink.connect()  # resolved the day's files before the prune
    assert sink.prune_stream(FUELINST, before=DAY) == [days[0]]
    assert list(sink.stream_days(FUELINST)) == days[1:]
    assert reader.execute("SELECT count(*) FROM fuelinst_unified").fetchone() == (3,)
    assert sink.query("SELECT count(*) AS n FROM fuelinst_unified").column("n")[0].as_py() == 2
    assert sink.vacuum() == 0  # the pruned day's files wait out the readers' grace time
    local.retire_stream(
        sink.stream_dir(FUELINST, days[0]), now=time.time() + local.RETIRE_AFTER_S + 1
    )
    assert not sink.stream_dir(FUELINST, days[0]).exists()
