"""One dashboard refresh as a plain function: query the warehouse, build, write.

The Celery task (:mod:`sheets.tasks`) and ``bmrs dashboard`` both call :func:`refresh`; it
writes to Google Sheets when ``BMRS_SHEETS_ID`` is set and to a local workbook otherwise.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from pathlib import Path

import redis
import requests

from sheets.gsheets_writer import service_account_session, write_dashboard
from sheets.model import build
from sheets.queries import gather, iris_last_messages
from sheets.workbook_writer import write_workbook
from worker.cluster.sweep import configured_datasets
from worker.elexon import catalog
from worker.settings import Settings
from worker.sinks import open_sink

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RefreshResult:
    """Where the dashboard went; the task's result and the CLI's message."""

    target: str  # "sheets" or "workbook"
    location: str  # spreadsheet key or file path
    as_of_utc: str
    tabs_created: tuple[str, ...] = ()


def default_workbook(settings: Settings) -> Path:
    return settings.data_dir / "dashboard" / "dashboard.xlsx"


def refresh(
    settings: Settings,
    *,
    now: dt.datetime | None = None,
    out: Path | None = None,
    redis_client: redis.Redis | None = None,
    session: requests.Session | None = None,
) -> RefreshResult:
    """Build the dashboard as of ``now`` and write it where the settings say.

    ``out`` forces a local workbook even when a spreadsheet is configured; ``redis_client``
    is where the IRIS listener keeps its status (without one, 'no IRIS data' is shown).
    """
    now = now or dt.datetime.now(dt.UTC)
    datasets = configured_datasets(settings)
    snapshot = gather(
        open_sink(settings),
        now,
        remit_span_days=settings.remit_backfill_days,
        iris_last_message=iris_last_messages(redis_client),
        datasets=datasets,
    )
    dashboard = build(snapshot)
    as_of = now.astimezone(dt.UTC).isoformat()
    if settings.sheets_id and out is None:
        report = write_dashboard(
            dashboard, settings.sheets_id,
            session or service_account_session(settings.sheets_credentials),
        )
        return RefreshResult("sheets", settings.sheets_id, as_of, report.tabs_created)
    path = write_workbook(dashboard, out or default_workbook(settings))
    log.info("dashboard written to %s", path)
    return RefreshResult("workbook", str(path), as_of)


def missing_remit_days(settings: Settings, today: dt.date) -> list[dt.date]:
    """REMIT days of the outages table's span not yet loaded (never fetched or failed).

    Outages are announced long before they start, so the table is trusted only once the
    whole span (``BMRS_REMIT_BACKFILL_DAYS``) is in; the refresh task enqueues what lacks.
    """
    remit = catalog.get("REMIT")
    if remit not in configured_datasets(settings):
        return []
    first = today - dt.timedelta(days=settings.remit_backfill_days - 1)
    sink = open_sink(settings)
    return [c.date for c in sink.coverage_range(remit, first, today)
            if c.status not in ("complete", "empty", "partial")]
