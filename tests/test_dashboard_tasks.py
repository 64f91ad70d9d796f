"""The refresh task on a real worker process and Redis; the lock, failures, REMIT history, CLI."""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner

from sheets.model import OVERVIEW
from sheets.refresh import default_workbook
from sheets.tasks import LOCK_KEY, enqueue_remit_history, run_refresh
from tests.support.iris import wait_for
from worker.cli import main
from worker.cluster.celery_app import create_app
from worker.cluster.jobs import JobStore
from worker.elexon import catalog
from worker.elexon.client import ElexonClient
from worker.elexon.coverage import Coverage
from worker.elexon.pipeline import ingest_chunk
from worker.elexon.settlement import UTC, current_settlement_day
from worker.settings import get_settings
from worker.sim.server import BASE_PATH
from worker.sinks.local import LocalWarehouse

pytestmark = pytest.mark.filterwarnings("ignore:.*extension is not supported:UserWarning")


def test_worker_refreshes_the_workbook_and_skips_while_another_refresh_runs(chunk_cluster) -> None:
    cluster = chunk_cluster()
    today = current_settlement_day()
    client = ElexonClient(cluster.sim.url + BASE_PATH, retries=2)
    for code in ("FUELINST", "FREQ"):
        ingest_chunk(client, cluster.sink, catalog.get(code), today)
    settings = get_settings()
    workbook = default_workbook(settings)
    worker = cluster.start_worker("dash", queues="dashboard")
    cluster.wait_workers(1)

    cluster.app.send_task("sheets.tasks.refresh_dashboard")
    wait_for(workbook.exists, 60, "the dashboard workbook", cluster)
    book = openpyxl.load_workbook(workbook)
    generation = next(row for row in book[OVERVIEW].iter_rows(values_only=True)
                      if row[0] == "Total generation")
    assert isinstance(generation[1], float) and 10 < generation[1] < 60  # GW, not MW or a sum
    assert "enqueued them as job" in worker.log()  # REMIT history for the outages table

    lock = cluster.redis_server.client().lock(LOCK_KEY, timeout=60)
    assert lock.acquire(blocking=False)
    workbook.unlink()
    cluster.app.send_task("sheets.tasks.refresh_dashboard")
    wait_for(lambda: "dashboard refresh skipped: another refresh is still running"
             in worker.log(), 30, "the skip", cluster)
    assert not workbook.exists()
    lock.release()
    cluster.app.send_task("sheets.tasks.refresh_dashboard")
    wait_for(workbook.exists, 60, "the next refresh", cluster)


def test_failed_refresh_is_logged_with_its_reason_and_the_next_one_runs(
    bmrs_env: pytest.MonkeyPatch, redis_server, caplog: pytest.LogCaptureFixture
) -> None:
    bmrs_env.setenv("BMRS_SHEETS_ID", "a-spreadsheet-key")
    get_settings.cache_clear()
    with caplog.at_level(logging.ERROR, logger="sheets.tasks"):
        result = run_refresh(get_settings(), redis_server.client())
    assert result["status"] == "failed"
    assert result["reason"].startswith("SheetsError: BMRS_SHEETS_ID is set but no service-account")
    (record,) = caplog.records
    assert record.getMessage() == (
        f"dashboard refresh failed: {result['reason']}; the next scheduled refresh will try again")
    assert redis_server.client().get(LOCK_KEY) is None  # released: the next one is not blocked

    bmrs_env.delenv("BMRS_SHEETS_ID")
    get_settings.cache_clear()
    assert run_refresh(get_settings(), redis_server.client())["status"] == "written"
    assert default_workbook(get_settings()).exists()


def test_remit_history_is_enqueued_once_a_day_for_the_days_it_lacks(
    bmrs_env: pytest.MonkeyPatch, redis_server, data_dir: Path
) -> None:
    bmrs_env.setenv("BMRS_BROKER_URL", redis_server.url)
    bmrs_env.setenv("BMRS_REMIT_BACKFILL_DAYS", "30")
    get_settings.cache_clear()
    settings = get_settings()
    now = dt.datetime(2025, 11, 2, 18, 7, tzinfo=UTC)
    # Two days already loaded (one of them empty): 28 of the 30 days are missing.
    sink = LocalWarehouse(data_dir)
    for day, status in ((dt.date(2025, 11, 2), "complete"), (dt.date(2025, 10, 20), "empty")):
        sink.write_coverage(Coverage("REMIT", day, status))  # type: ignore[arg-type]
    app = create_app(settings)
    client = redis_server.client()
    job_id = enqueue_remit_history(settings, client, app, now=now)
    assert job_id is not None
    progress = JobStore(client).progress(job_id)
    assert progress.kind == "remit-history" and progress.datasets["REMIT"].pending == 28
    assert enqueue_remit_history(settings, client, app, now=now) is None  # not again today


def test_cli_writes_the_workbook_as_of_an_instant(
    bmrs_env: pytest.MonkeyPatch, data_dir: Path, simulator_factory, tmp_path: Path
) -> None:
    now = dt.datetime(2025, 11, 2, 18, 7, tzinfo=UTC)
    sim = simulator_factory(clock=lambda: now)
    client = ElexonClient(sim.url + BASE_PATH, retries=2)
    ingest_chunk(client, LocalWarehouse(data_dir), catalog.get("MID"), now.date())
    out = tmp_path / "d.xlsx"
    started = time.monotonic()
    result = CliRunner().invoke(main, ["dashboard", "--out", str(out),
                                       "--as-of", "2025-11-02T18:07:00Z"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"dashboard written to {out} (as of 2025-11-02 18:07 ")
    assert time.monotonic() - started < 30
    overview = openpyxl.load_workbook(out)[OVERVIEW]
    assert overview["B3"].value == dt.datetime(2025, 11, 2)  # the settlement date shown
    bad = CliRunner().invoke(main, ["dashboard", "--as-of", "yesterday"])
    assert bad.exit_code == 2 and "--as-of: invalid time 'yesterday'" in bad.output
