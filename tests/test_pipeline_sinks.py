"""The whole pipeline (simulated API -> parse -> dedup -> load -> coverage -> views), once with
each sink: the local lake, and BigQuery (the real client against the fake REST API)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pytest

from sheets.queries import gather
from tests.support.fake_bigquery import DATASET, LOCATION, PROJECT, FakeBigQuery
from worker.elexon import catalog
from worker.elexon.client import ElexonClient
from worker.elexon.pipeline import ingest_chunk
from worker.sinks.base import Sink
from worker.sinks.bigquery import BigQueryWarehouse, Location
from worker.sinks.local import LocalWarehouse

DAYS = [dt.date(2025, 10, 25), dt.date(2025, 10, 26), dt.date(2025, 10, 27)]  # 48, 50, 48 periods
DATASETS = [catalog.get(code) for code in ("FUELINST", "FREQ", "MID", "DISEBSP")]


def fast_client(url: str) -> ElexonClient:
    return ElexonClient(url, retries=8, backoff_base_s=0.01, backoff_max_s=0.2, timeout_s=10)


def bigquery_sink(fake: FakeBigQuery) -> BigQueryWarehouse:
    sink = BigQueryWarehouse(fake.client(), Location(PROJECT, DATASET, LOCATION), retry_initial_s=0.05)
    sink.check_dataset()
    return sink


@pytest.fixture(params=["local", "bigquery"])
def sink(request: pytest.FixtureRequest, data_dir: Path) -> Sink:
    if request.param == "local":
        return LocalWarehouse(data_dir)
    return bigquery_sink(request.getfixturevalue("fake_bigquery"))


def backfill(sink: Sink, url: str) -> dict[tuple[str, dt.date], str]:
    """Ingest every dataset-day; the digest of what each day holds afterwards."""
    client = fast_client(url)
    digests = {}
    for day in DAYS:
        for dataset in DATASETS:
            coverage = ingest_chunk(client, sink, dataset, day)
            assert coverage.status == "complete", (dataset.code, day, coverage.reason)
            assert coverage.digest is not None
            digests[(dataset.code, day)] = coverage.digest
    return digests


def partition_loads(fake: FakeBigQuery) -> Counter[str]:
    return Counter(
        load.destination for load in fake.loads
        if "_api$" in load.destination and load.write_disposition == "WRITE_TRUNCATE"
    )


def test_three_day_backfill_lands_every_row_once_and_reruns_change_nothing(
    sink: Sink, simulator: str, request: pytest.FixtureRequest
) -> None:
    first = backfill(sink, simulator)
    for dataset in DATASETS:
        counts = sink.query(
            f"SELECT count(*) AS n, count(DISTINCT _hash_key) AS distinct_rows FROM {dataset.table}"
        ).to_pylist()[0]
        assert counts["n"] == counts["distinct_rows"] > 0, dataset.code
        days = [c.status for c in sink.coverage_range(dataset, DAYS[0], DAYS[-1])]
        assert days == ["complete"] * 3, dataset.code
    periods = sink.query(
        "SELECT _day, count(DISTINCT settlementPeriod) AS periods FROM disebsp_latest GROUP BY _day"
    ).to_pylist()
    assert sorted((r["_day"], r["periods"]) for r in periods) == list(zip(DAYS, [48, 50, 48]))

    if isinstance(sink, BigQueryWarehouse):
        fake: FakeBigQuery = request.getfixturevalue("fake_bigquery")
        once = partition_loads(fake)
        expected = {
            f"{PROJECT}.{DATASET}.{d.table}_api${day:%Y%m%d}" for d in DATASETS for day in DAYS
        }
        assert set(once) == expected
        assert set(once.values()) == {1}  # exactly one partition-replacing load per dataset-day
        assert all(not load.error for load in fake.loads)

    second = backfill(sink, simulator)
    assert second == first  # the same rows, nothing added
    for dataset in DATASETS:
        counts = sink.query(
            f"SELECT count(*) AS n, count(DISTINCT _hash_key) AS distinct_rows FROM {dataset.table}"
        ).to_pylist()[0]
        assert counts["n"] == counts["distinct_rows"], dataset.code

    if isinstance(sink, BigQueryWarehouse):
        twice = partition_loads(fake)
        assert set(twice) == expected and set(twice.values()) == {2}  # the same loads again


def test_both_sinks_hold_the_same_days_and_answer_the_dashboard_alike(
    simulator: str, data_dir: Path, fake_bigquery: FakeBigQuery
) -> None:
    local = LocalWarehouse(data_dir)
    remote = bigquery_sink(fake_bigquery)
    assert backfill(local, simulator) == backfill(remote, simulator)
    now = dt.datetime(2025, 10, 27, 12, 10, tzinfo=dt.UTC)
    local_view, remote_view = gather(local, now), gather(remote, now)
    for part in ("fuel", "system_prices", "market_index", "frequency"):
        mine, theirs = getattr(local_view, part), getattr(remote_view, part)
        key = (lambda row: sorted(row.items(), key=str)) if isinstance(mine, list) else None
        if key:
            mine, theirs = sorted(mine, key=key), sorted(theirs, key=key)
        assert mine == theirs, part
    assert local_view.fuel  # the comparison compared something
    assert {c: [x.status for x in v] for c, v in local_view.coverage.items()} == {
        c: [x.status for x in v] for c, v in remote_view.coverage.items()
    }
