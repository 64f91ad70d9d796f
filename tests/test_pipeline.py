"""One dataset-day from the (simulated) API into the local warehouse, faults included."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from worker.cli import main
from worker.elexon import catalog
from worker.elexon.client import ElexonClient, PermanentApiError
from worker.elexon.pipeline import ingest_chunk
from worker.sim.calibrated import GENERATOR_CLASSES
from worker.sim.server import BASE_PATH
from worker.sinks.local import LocalWarehouse

AUTUMN, SPRING, ORDINARY = dt.date(2025, 10, 26), dt.date(2026, 3, 29), dt.date(2025, 11, 5)
PERIODS = {AUTUMN: 50, SPRING: 46, ORDINARY: 48}


def fast_client(url: str, retries: int = 8) -> ElexonClient:
    return ElexonClient(url, retries=retries, backoff_base_s=0.01, backoff_max_s=0.2, timeout_s=10)


@pytest.mark.parametrize("day", [AUTUMN, SPRING, ORDINARY], ids=str)
def test_every_dataset_ingests_complete_with_right_period_counts(
    simulator: str, data_dir: Path, day: dt.date
) -> None:
    warehouse = LocalWarehouse(data_dir)
    client = fast_client(simulator)
    for dataset in [d for d in catalog.DATASETS if d.code in GENERATOR_CLASSES]:
        coverage = ingest_chunk(client, warehouse, dataset, day)
        assert coverage.status == "complete", (dataset.code, coverage.reason)
        assert coverage.rows > 0
        if dataset.tracks_periods:
            assert coverage.periods_expected == PERIODS[day]
            if dataset.dense:
                assert coverage.periods_present == PERIODS[day], dataset.code
        else:
            assert coverage.periods_expected is None and coverage.periods_present is None
        dupes = warehouse.query(
            f"SELECT count(*) - count(DISTINCT _hash_key) AS d FROM {dataset.table}"
        ).to_pylist()
        assert dupes == [{"d": 0}], dataset.code


def test_second_run_leaves_the_same_digest(simulator: str, data_dir: Path) -> None:
    warehouse = LocalWarehouse(data_dir)
    client = fast_client(simulator)
    for code in ("FREQ", "BOALF", "REMIT", "DISEBSP"):
        dataset = catalog.get(code)
        first = ingest_chunk(client, warehouse, dataset, AUTUMN)
        second = ingest_chunk(client, warehouse, dataset, AUTUMN)
        assert (second.digest, second.rows) == (first.digest, first.rows)
        assert second.duplicates_dropped >= first.rows


def test_freq_clock_change_day_spans_25_hours(simulator: str, data_dir: Path) -> None:
    warehouse = LocalWarehouse(data_dir)
    coverage = ingest_chunk(fast_client(simulator), warehouse, catalog.get("FREQ"), AUTUMN)
    assert coverage.requests == 2  # 24 h is the most one request may ask for (stated limit)
    span = warehouse.query(
        'SELECT min("measurementTime") AS lo, max("measurementTime") AS hi, count(*) AS n FROM freq'
    ).to_pylist()[0]
    assert span["lo"] == dt.datetime(2025, 10, 25, 23, tzinfo=dt.UTC)
    assert span["hi"] == dt.datetime(2025, 10, 26, 23, 59, 45, tzinfo=dt.UTC)
    assert span["n"] == 25 * 240


def test_boundary_rows_returned_by_both_inclusive_windows_are_stored_once(
    simulator: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import worker.elexon.client
    from worker.elexon.pipeline import fetch_chunk

    monkeypatch.setattr(worker.elexon.client, "END_MARGIN", dt.timedelta(0))  # windows share an instant
    # 24-hour windows (a learned limit, or the base endpoint's stated one) split the 25-hour day.
    freq = dataclasses.replace(catalog.get("FREQ"), max_window=dt.timedelta(hours=24))
    fetched = fetch_chunk(fast_client(simulator), freq, AUTUMN)
    assert fetched.requests == 2 and fetched.duplicates == 1  # 23:00Z came back twice
    assert fetched.table.num_rows == 25 * 240
    assert fetched.other_days == 1  # next day's first sample, returned by the inclusive end


def test_faulty_api_still_gives_complete_duplicate_free_days(
    simulator_factory: Callable, data_dir: Path, tmp_path: Path
) -> None:
    faults = "429=0.15,500=0.1,truncate=0.1,dup=0.3,outside=0.2,slow=0.02"
    log = tmp_path / "access.jsonl"
    running = simulator_factory(faults=faults, seed=7, access_log=log)
    warehouse = LocalWarehouse(data_dir)
    client = fast_client(running.url + BASE_PATH, retries=12)
    # Whole-day requests are few (one per dataset-day), so three days give the faults a chance.
    for code in ("FREQ", "FUELINST", "MID", "BOALF", "DISEBSP", "BOD"):
        for day in (ORDINARY - dt.timedelta(days=2), ORDINARY - dt.timedelta(days=1), ORDINARY):
            coverage = ingest_chunk(client, warehouse, catalog.get(code), day)
            assert coverage.status == "complete", (code, day, coverage.reason)
        dupes = warehouse.query(
            f"SELECT count(*) - count(DISTINCT _hash_key) AS d FROM {code.lower()}"
        ).to_pylist()
        assert dupes == [{"d": 0}]
    statuses = {json.loads(line)["status"] for line in log.read_text().splitlines()}
    assert {200, 429, 500} <= statuses  # the faults really happened and were ridden out
    clean = LocalWarehouse(data_dir / "clean")
    clean_client = fast_client(simulator_factory(seed=7).url + BASE_PATH)
    for code in ("FREQ", "MID", "DISEBSP"):
        reference = ingest_chunk(clean_client, clean, catalog.get(code), ORDINARY)
        faulty = warehouse.coverage_range(catalog.get(code), ORDINARY, ORDINARY)
        assert next(faulty).digest == reference.digest, code  # nothing extra, nothing lost


def test_revised_rows_are_kept_as_versions(simulator_factory: Callable, data_dir: Path) -> None:
    warehouse = LocalWarehouse(data_dir)
    dataset = catalog.get("DISEBSP")
    ingest_chunk(fast_client(simulator_factory(seed=3).url + BASE_PATH), warehouse, dataset, ORDINARY)
    revising = fast_client(simulator_factory(seed=3, faults="revise=1.0").url + BASE_PATH)
    coverage = ingest_chunk(revising, warehouse, dataset, ORDINARY)
    counts = warehouse.query(
        "SELECT (SELECT count(*) FROM disebsp) AS all_rows, (SELECT count(*) FROM disebsp_latest) AS latest"
    ).to_pylist()[0]
    assert counts["latest"] == 48
    assert counts["all_rows"] > 48 and coverage.rows == counts["all_rows"]


def test_poison_day_is_recorded_failed_with_the_api_message(
    simulator_factory: Callable, data_dir: Path
) -> None:
    running = simulator_factory(faults="poison=BOALF@2025-11-05")
    warehouse = LocalWarehouse(data_dir)
    dataset = catalog.get("BOALF")
    with pytest.raises(PermanentApiError, match="HTTP 400"):
        ingest_chunk(fast_client(running.url + BASE_PATH), warehouse, dataset, ORDINARY)
    [coverage] = list(warehouse.coverage_range(dataset, ORDINARY, ORDINARY))
    assert coverage.status == "failed"
    assert "HTTP 400" in (coverage.reason or "")


def test_unknown_parameter_names_are_caught_by_the_window_check(simulator: str) -> None:
    # The API ignores parameter names it does not know and answers with its default data:
    # every row of such an answer lies outside the asked window and is dropped and counted.
    client = fast_client(simulator)
    dataset = catalog.get("FREQ")
    from worker.elexon.client import RequestWindow

    start = dt.datetime(2025, 11, 5, tzinfo=dt.UTC)
    window = RequestWindow(
        dataset.endpoint, {"measurementFrom": "2025-11-05T00:00:00Z"}, start, start + dt.timedelta(hours=1)
    )
    result = client.fetch_window(dataset, window)
    assert result.rows == [] and result.outside_window > 0


def test_cli_ingest_gaps_and_query_end_to_end(simulator: str, bmrs_env: pytest.MonkeyPatch) -> None:
    bmrs_env.setenv("BMRS_ELEXON_BASE_URL", simulator)
    runner = CliRunner()
    result = runner.invoke(main, ["ingest", "FREQ,DISEBSP", "MID", "--start", "2025-10-25", "--end", "2025-10-26"])
    assert result.exit_code == 0, result.output
    gaps = runner.invoke(main, ["gaps", "--start", "2025-10-24", "--end", "2025-10-26", "--dataset", "FREQ,MID", "--json"])
    entries = json.loads(gaps.output)
    assert [(e["dataset"], e["date"], e["status"]) for e in entries] == [
        ("FREQ", "2025-10-24", "missing"),
        ("FREQ", "2025-10-25", "complete"),
        ("FREQ", "2025-10-26", "complete"),
        ("MID", "2025-10-24", "missing"),
        ("MID", "2025-10-25", "complete"),
        ("MID", "2025-10-26", "complete"),
    ]
    assert entries[2]["periods_present"] == entries[2]["periods_expected"] == 50
    assert {"rows", "duplicates_dropped", "digest", "fetched_utc", "reason"} <= set(entries[0])
    query = runner.invoke(
        main, ["query", 'SELECT "settlementPeriod", "startTime", "replacementPrice" FROM disebsp '
               'WHERE "settlementDate" = DATE \'2025-10-26\' ORDER BY 1 LIMIT 1', "--format", "json"]
    )
    assert query.exit_code == 0, query.output
    [row] = json.loads(query.output)
    assert row["settlementPeriod"] == 1 and row["startTime"] == "2025-10-25T23:00:00Z"
    assert "replacementPrice" in row
    bad = runner.invoke(main, ["query", "SELECT * FROM nowhere"])
    assert bad.exit_code == 2 and "query failed" in bad.output


def test_configuration_problems_are_one_line_not_a_traceback(bmrs_env: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    bmrs_env.setenv("BMRS_RATE_PER_S", "lots")
    result = runner.invoke(main, ["gaps", "--start", "2025-01-01", "--end", "2025-01-01"])
    assert result.exit_code == 2 and "BMRS_RATE_PER_S" in result.output
    assert "Traceback" not in result.output
    bmrs_env.delenv("BMRS_RATE_PER_S")
    bmrs_env.setenv("BMRS_SINK", "bigquery")
    from worker.settings import get_settings

    get_settings.cache_clear()
    result = runner.invoke(main, ["query", "SELECT 1"])
    assert result.exit_code == 2 and "BMRS_BQ_PROJECT is not set" in result.output
