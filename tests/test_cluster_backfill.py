"""Backfills on a real cluster: redis-server, the simulator and `bmrs worker` processes."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable

import orjson
from click.testing import CliRunner

from tests.support.cluster import ChunkCluster
from worker.cli import main
from worker.elexon import catalog
from worker.elexon.settlement import current_settlement_day, days_between

CODES = "FUELINST,FREQ,MID,BOALF"


def test_ten_days_of_four_datasets_on_two_workers_leaves_no_gap_and_no_duplicate(
    chunk_cluster: Callable[..., ChunkCluster],
) -> None:
    cluster = chunk_cluster(faults="dup=0.2,500=0.05,truncate=0.02")
    cluster.start_worker("w1")
    cluster.start_worker("w2")
    cluster.wait_workers(2)
    start, end = dt.date(2025, 10, 20), dt.date(2025, 10, 29)  # 26 Oct is the 25-hour day

    job_id = cluster.backfill(CODES, start, end)
    progress = cluster.wait_job(job_id, timeout=90)

    assert progress.total("chunks") == 40
    assert progress.total("done") == 40, progress.failures
    assert progress.statuses == {"complete": 40}
    for dataset in catalog.parse_codes(CODES):
        for coverage in cluster.sink.coverage_range(dataset, start, end):
            assert coverage.status == "complete", coverage
            if dataset.tracks_periods:
                assert coverage.periods_present == (
                    50 if coverage.date == dt.date(2025, 10, 26) else 48
                )
    rows = cluster.assert_no_duplicates(CODES, start, end)
    assert rows == progress.total("rows")
    # Both workers took a share of the chunks.
    logs = {p.name: p.log() for p in cluster.processes}
    assert all("ingest_chunk" in text and "succeeded" in text for text in logs.values()), (
        cluster.logs_text()
    )


def test_the_same_range_enqueued_twice_at_once_is_fetched_once_and_stored_once(
    chunk_cluster: Callable[..., ChunkCluster],
) -> None:
    cluster = chunk_cluster(latency_ms=150)
    cluster.start_worker("w1", concurrency=2)
    cluster.start_worker("w2", concurrency=2)
    cluster.wait_workers(2)
    start, end = dt.date(2025, 11, 3), dt.date(2025, 11, 6)

    first = cluster.backfill(CODES, start, end)
    second = cluster.backfill(CODES, start, end)
    for job_id in (first, second):
        progress = cluster.wait_job(job_id, timeout=60)
        assert progress.total("done") == 16, progress.failures

    cluster.assert_no_duplicates(CODES, start, end)
    by_request: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for entry in cluster.requests():
        by_request[(entry["path"], entry["query"])].append(entry)
    # Every request of every chunk went out exactly once: the second job found each chunk
    # fetched after it was enqueued (or waited for the fetch lock, then found it so).
    assert len(by_request) >= 16
    repeated = {key: len(entries) for key, entries in by_request.items() if len(entries) > 1}
    assert not repeated, repeated


def test_a_poison_day_is_recorded_failed_with_its_reason_and_the_rest_completes(
    chunk_cluster: Callable[..., ChunkCluster],
) -> None:
    end = current_settlement_day() - dt.timedelta(days=1)
    start = end - dt.timedelta(days=3)
    poison = start + dt.timedelta(days=1)
    # DISEBSP asks for one settlement date per request, so only that day's request touches it.
    cluster = chunk_cluster(faults=f"poison=DISEBSP@{poison}")
    cluster.start_worker("w1", concurrency=2)
    cluster.wait_workers(1)

    job_id = cluster.backfill("DISEBSP,FUELINST", start, end)
    progress = cluster.wait_job(job_id, timeout=60)

    assert progress.total("done") == 7
    assert [(f.dataset, f.date) for f in progress.failures] == [("DISEBSP", poison)]
    assert "HTTP 400" in progress.failures[0].reason
    coverage = cluster.sink.read_coverage(catalog.get("DISEBSP"), [poison])[poison]
    assert coverage.status == "failed" and "HTTP 400" in (coverage.reason or "")
    # A permanent error is not retried: one request for the poison day, ever.
    poison_requests = [
        e for e in cluster.requests() if e["path"].endswith(f"/system-prices/{poison}")
    ]
    assert len(poison_requests) == 1, poison_requests
    for day in days_between(start, end):
        if day != poison:
            assert (
                cluster.sink.read_coverage(catalog.get("DISEBSP"), [day])[day].status == "complete"
            )

    # The failure is visible where users look: bmrs job, bmrs gaps and bmrs status.
    runner = CliRunner()
    job = runner.invoke(main, ["job", job_id, "--json"])
    assert job.exit_code == 0, job.output
    assert orjson.loads(job.stdout)["failures"][0]["dataset"] == "DISEBSP"
    gaps = runner.invoke(
        main, ["gaps", "--start", str(start), "--end", str(end), "--dataset", "DISEBSP", "--json"]
    )
    failed = [g for g in orjson.loads(gaps.stdout) if g["status"] == "failed"]
    assert [g["date"] for g in failed] == [str(poison)]
    status = runner.invoke(main, ["status", "--json"])
    assert status.exit_code == 0, status.output
    prices = next(d for d in orjson.loads(status.stdout)["datasets"] if d["dataset"] == "DISEBSP")
    assert (
        prices["last_error"]["date"] == str(poison) and "HTTP 400" in prices["last_error"]["reason"]
    )


def test_a_day_that_keeps_failing_transiently_is_retried_with_backoff_then_recorded_failed(
    chunk_cluster: Callable[..., ChunkCluster],
) -> None:
    # Every request answers 500: each attempt makes 2 requests, the task tries 3 times.
    cluster = chunk_cluster(faults="500=1.0", BMRS_HTTP_RETRIES="1", BMRS_TASK_MAX_RETRIES="2")
    cluster.start_worker("w1")
    cluster.wait_workers(1)
    day = dt.date(2025, 10, 21)

    progress = cluster.wait_job(cluster.backfill("DISEBSP", day, day), timeout=60)

    assert progress.total("failed") == 1
    assert "TransientApiError" in progress.failures[0].reason
    assert "gave up after 3 attempts" in progress.failures[0].reason
    coverage = cluster.sink.read_coverage(catalog.get("DISEBSP"), [day])[day]
    assert coverage.status == "failed" and "HTTP 500" in (coverage.reason or "")
    assert len(cluster.requests()) == 6
    retries = [
        line
        for line in cluster.processes[0].log().splitlines()
        if "; retry " in line and "of 2 in" in line
    ]
    assert len(retries) == 2, cluster.logs_text()
