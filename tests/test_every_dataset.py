"""Every catalog dataset from the simulator into the warehouse: an ordinary day for all, and
for half-hourly datasets both clock-change days; each ends complete or empty (never failed),
with no duplicate; the BM-unit reference is there and BOALF joins to it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from click.testing import CliRunner

from worker.cli import main
from worker.elexon import catalog
from worker.elexon.client import ElexonClient
from worker.elexon.pipeline import ingest_chunk
from worker.sinks.local import LocalWarehouse

ORDINARY = dt.date(2025, 6, 4)
SPRING = dt.date(2026, 3, 29)
AUTUMN = dt.date(2025, 10, 26)
HALF_HOURLY = [d for d in catalog.DATASETS if d.tracks_periods]


def _no_duplicates(warehouse: LocalWarehouse, dataset: catalog.Dataset) -> None:
    dupes = warehouse.query(
        f"SELECT count(*) - count(DISTINCT _hash_key) AS d FROM {dataset.table}"
    ).to_pylist()
    assert dupes == [{"d": 0}], dataset.code


def test_bmrs_ingest_of_every_dataset_on_the_autumn_clock_change(
    simulator: str, bmrs_env: pytest.MonkeyPatch, data_dir: Path
) -> None:
    bmrs_env.setenv("BMRS_ELEXON_BASE_URL", simulator)
    codes = ",".join(d.code for d in catalog.DATASETS)
    result = CliRunner().invoke(main, ["ingest", codes, "--date", AUTUMN.isoformat()])
    assert result.exit_code == 0, result.output[-2000:]
    assert "FAILED" not in result.output
    lines = [line for line in result.output.splitlines() if ": " in line and " rows" in line]
    assert len(lines) == len(catalog.DATASETS)
    assert all(line.split(": ")[1].split(",")[0] in ("complete", "empty") for line in lines), lines
    warehouse = LocalWarehouse(data_dir)
    for dataset in catalog.DATASETS:
        _no_duplicates(warehouse, dataset)
    units = warehouse.query("SELECT count(*) AS n FROM bmunits_latest").to_pylist()[0]["n"]
    assert units > 0
    joined = warehouse.query(
        "SELECT count(*) AS n FROM boalf b JOIN bmunits_latest u USING (nationalGridBmUnit)"
    ).to_pylist()[0]["n"]
    assert joined > 0


@pytest.mark.parametrize(
    ("day", "datasets"),
    [(ORDINARY, catalog.DATASETS), (SPRING, HALF_HOURLY)],
    ids=["ordinary-all", "spring-half-hourly"],
)
def test_every_dataset_day_ends_complete_or_empty(
    simulator: str, data_dir: Path, day: dt.date, datasets: tuple[catalog.Dataset, ...]
) -> None:
    warehouse = LocalWarehouse(data_dir)
    client = ElexonClient(
        simulator, retries=4, backoff_base_s=0.01, backoff_max_s=0.2, timeout_s=20
    )
    statuses = {}
    for dataset in datasets:
        coverage = ingest_chunk(client, warehouse, dataset, day)
        statuses[dataset.code] = coverage.status
        assert coverage.status in ("complete", "empty"), (dataset.code, coverage.reason)
        _no_duplicates(warehouse, dataset)
    assert sum(s == "complete" for s in statuses.values()) >= len(datasets) // 2, statuses


@pytest.mark.parametrize("code", ["NDF", "WINDFOR", "INDGEN"])
def test_a_forecast_keeps_every_vintage_and_latest_is_the_newest_per_target(
    simulator: str, data_dir: Path, code: str
) -> None:
    dataset = catalog.get(code)
    warehouse = LocalWarehouse(data_dir)
    client = ElexonClient(
        simulator, retries=4, backoff_base_s=0.01, backoff_max_s=0.2, timeout_s=20
    )
    for day in (ORDINARY, ORDINARY + dt.timedelta(days=1)):
        assert ingest_chunk(client, warehouse, dataset, day).status == "complete"
    target = ", ".join(f'"{k}"' for k in dataset.natural_key)
    counts = warehouse.query(
        f"SELECT (SELECT count(*) FROM {dataset.table}) AS vintages, "
        f"(SELECT count(*) FROM (SELECT DISTINCT {target} FROM {dataset.table})) AS targets, "
        f"(SELECT count(*) FROM {dataset.table}_latest) AS latest"
    ).to_pylist()[0]
    assert counts["vintages"] > counts["targets"] == counts["latest"]  # issued many times
    stale = warehouse.query(
        f"SELECT count(*) AS n FROM {dataset.table}_latest l JOIN (SELECT {target}, "
        f'max("publishTime") AS newest FROM {dataset.table} GROUP BY {target}) m USING ({target}) '
        f'WHERE l."publishTime" <> m.newest'
    ).to_pylist()
    assert stale == [{"n": 0}]
