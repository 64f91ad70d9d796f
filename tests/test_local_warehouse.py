"""The local lake: idempotent loads, kept versions, atomic swaps under many writers."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from worker.elexon import catalog
from worker.elexon.parse import parse_rows
from worker.sinks.local import FormatVersionError, LocalWarehouse

DAY = dt.date(2025, 10, 26)
DISEBSP = catalog.get("DISEBSP")
FREQ = catalog.get("FREQ")


def price_rows(periods: range, created: str = "2025-10-27T00:00:00Z", price: float = 50.0) -> list[dict]:
    start = dt.datetime(2025, 10, 25, 23, tzinfo=dt.UTC)
    return [
        {
            "settlementDate": DAY.isoformat(),
            "settlementPeriod": p,
            "startTime": (start + (p - 1) * dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "createdDateTime": created,
            "systemSellPrice": price + p,
            "systemBuyPrice": price + p,
            "bsadDefaulted": False,
            "netImbalanceVolume": 1.5,
        }
        for p in periods
    ]


def load(warehouse: LocalWarehouse, dataset: catalog.Dataset, rows: list[dict], replace: bool = False):
    table = parse_rows(dataset, rows).table
    with warehouse.chunk_lock(dataset, DAY):
        return warehouse.load_chunk(dataset, DAY, table, replace=replace)


def test_loading_the_same_chunk_three_times_stores_it_once(data_dir: Path) -> None:
    warehouse = LocalWarehouse(data_dir)
    results = [load(warehouse, DISEBSP, price_rows(range(1, 51))) for _ in range(3)]
    assert [r.stored.num_rows for r in results] == [50, 50, 50]
    assert [r.new_rows for r in results] == [50, 0, 0]
    assert [r.duplicates_dropped for r in results] == [0, 50, 50]
    count = warehouse.query("SELECT count(*) AS n, count(DISTINCT _hash_key) AS h FROM disebsp").to_pylist()
    assert count == [{"n": 50, "h": 50}]


def test_first_arrival_is_kept_so_reloads_change_nothing(data_dir: Path) -> None:
    warehouse = LocalWarehouse(data_dir)
    load(warehouse, DISEBSP, price_rows(range(1, 3)))
    before = warehouse.read_day(DISEBSP, DAY)
    time.sleep(0.01)
    load(warehouse, DISEBSP, price_rows(range(1, 3)))
    assert warehouse.read_day(DISEBSP, DAY).equals(before)


def test_revisions_are_kept_and_latest_view_picks_newest_version(data_dir: Path) -> None:
    warehouse = LocalWarehouse(data_dir)
    load(warehouse, DISEBSP, price_rows(range(1, 51), created="2025-10-27T00:00:00Z", price=50))
    load(warehouse, DISEBSP, price_rows(range(1, 51), created="2025-11-20T00:00:00Z", price=70))
    all_rows = warehouse.query("SELECT count(*) AS n FROM disebsp").to_pylist()
    latest = warehouse.query(
        'SELECT min("systemSellPrice") AS lo, count(*) AS n FROM disebsp_latest'
    ).to_pylist()
    assert all_rows == [{"n": 100}]
    assert latest == [{"lo": 71.0, "n": 50}]


def test_replace_rebuilds_the_day_from_the_fetch_alone(data_dir: Path) -> None:
    warehouse = LocalWarehouse(data_dir)
    load(warehouse, DISEBSP, price_rows(range(1, 51), price=50))
    load(warehouse, DISEBSP, price_rows(range(1, 51), price=70, created="2025-11-20T00:00:00Z"))
    result = load(warehouse, DISEBSP, price_rows(range(1, 11), price=90), replace=True)
    assert result.stored.num_rows == 10
    assert warehouse.query("SELECT count(*) AS n FROM disebsp").to_pylist() == [{"n": 10}]


def test_views_exist_for_datasets_never_loaded(data_dir: Path) -> None:
    warehouse = LocalWarehouse(data_dir)
    for dataset in catalog.DATASETS:
        assert warehouse.query(f"SELECT count(*) AS n FROM {dataset.table}_latest").to_pylist() == [{"n": 0}]


def test_lake_of_another_format_version_is_refused(data_dir: Path) -> None:
    LocalWarehouse(data_dir)
    (data_dir / "lake" / "_format.json").write_text('{"format_version": 99}')
    with pytest.raises(FormatVersionError, match="format 99"):
        LocalWarehouse(data_dir)


def _writer(data_dir: str, seed: int, rounds: int) -> None:
    """One of many processes loading overlapping slices of the same FREQ days."""
    warehouse = LocalWarehouse(Path(data_dir))
    start = dt.datetime(2025, 10, 25, 23, tzinfo=dt.UTC)
    for round_ in range(rounds):
        offset = (seed * 37 + round_ * 11) % 400
        rows = [
            {
                "measurementTime": (start + dt.timedelta(seconds=15 * i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "frequency": 50 + (i % 20) / 100,
            }
            for i in range(offset, offset + 300)
        ]
        table = parse_rows(FREQ, rows).table
        with warehouse.chunk_lock(FREQ, DAY):
            warehouse.load_chunk(FREQ, DAY, table)


def _reader(data_dir: str, stop_at: float, failures) -> None:  # type: ignore[no-untyped-def]
    warehouse = LocalWarehouse(Path(data_dir))
    while time.monotonic() < stop_at:
        try:
            warehouse.query("SELECT count(*), count(DISTINCT _hash_key) FROM freq")
        except Exception as exc:  # any failure of a reader is what this test looks for
            failures.put(repr(exc))


def test_eight_processes_loading_overlapping_chunks_lose_and_duplicate_nothing(data_dir: Path) -> None:
    LocalWarehouse(data_dir)
    ctx = multiprocessing.get_context("spawn")
    failures = ctx.Queue()
    writers = [ctx.Process(target=_writer, args=(str(data_dir), seed, 4)) for seed in range(8)]
    reader = ctx.Process(target=_reader, args=(str(data_dir), time.monotonic() + 8, failures))
    reader.start()
    for process in writers:
        process.start()
    for process in writers + [reader]:
        process.join(120)
        assert process.exitcode == 0
    expected = set()
    for seed in range(8):
        for round_ in range(4):
            offset = (seed * 37 + round_ * 11) % 400
            expected.update(range(offset, offset + 300))
    counts = LocalWarehouse(data_dir).query(
        "SELECT count(*) AS n, count(DISTINCT _hash_key) AS h, count(DISTINCT \"measurementTime\") AS t FROM freq"
    ).to_pylist()
    assert counts == [{"n": len(expected), "h": len(expected), "t": len(expected)}]
    assert failures.empty(), failures.get()
    leftovers = [p.name for p in (data_dir / "lake" / "freq").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_rewrites_add_generations_and_only_the_current_one_is_read(data_dir: Path) -> None:
    from worker.sinks.local import RETIRE_AFTER_S, day_parts, retire_superseded

    warehouse = LocalWarehouse(data_dir)
    for price in (50, 60, 70):
        load(warehouse, DISEBSP, price_rows(range(1, 5), price=price, created=f"2025-11-{price - 40}T00:00:00Z"))
    parts = day_parts(warehouse.day_dir(DISEBSP, DAY))
    assert len(parts) == 3  # superseded files stay while a running query may still read them
    assert warehouse.query("SELECT count(*) AS n FROM disebsp").to_pylist() == [{"n": 12}]
    assert warehouse.read_day(DISEBSP, DAY).num_rows == 12
    now = time.time()
    os.utime(parts[1], (now - RETIRE_AFTER_S - 5, now - RETIRE_AFTER_S - 5))  # superseded parts[0] long ago
    assert retire_superseded(parts, now=now) == 1  # parts[1] was superseded just now: kept
    assert retire_superseded(day_parts(warehouse.day_dir(DISEBSP, DAY)), now=now + RETIRE_AFTER_S + 1) == 1
    assert day_parts(warehouse.day_dir(DISEBSP, DAY)) == [parts[-1]]
    assert warehouse.query("SELECT count(*) AS n FROM disebsp").to_pylist() == [{"n": 12}]
