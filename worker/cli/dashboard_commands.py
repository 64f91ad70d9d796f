"""``bmrs dashboard``: refresh the market dashboard once, in this process."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click
import redis

from sheets.gsheets_writer import SheetsError
from sheets.model import london
from sheets.refresh import refresh
from worker.cli.app import UserError, main
from worker.logs import configure as configure_logs
from worker.settings import get_settings


@main.command("dashboard")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path),
    help="Write this .xlsx workbook (even when BMRS_SHEETS_ID is set).",
)
@click.option(
    "--as-of", "as_of",
    help="Show the market as it was published by this instant (UTC, e.g. "
    "2025-11-02T18:00:00Z): every dataset cut by its publish or measurement time; default now.",
)
def dashboard_command(out: Path | None, as_of: str | None) -> None:
    """Refresh the dashboard: the Google Sheet when BMRS_SHEETS_ID is set, else a workbook.

    The workbook goes to --out, or BMRS_DATA_DIR/dashboard/dashboard.xlsx.
    """
    settings = get_settings()
    configure_logs(settings)
    if out is not None and out.suffix.lower() != ".xlsx":
        raise UserError(f"--out {out}: the workbook must be an .xlsx file")
    now = _instant(as_of) if as_of else dt.datetime.now(dt.UTC)
    try:
        result = refresh(settings, now=now, out=out, redis_client=_iris_status_client(settings))
    except SheetsError as exc:
        raise click.ClickException(str(exc)) from None
    where = (f"Google Sheet {result.location}" if result.target == "sheets" else result.location)
    click.echo(f"dashboard written to {where} (as of {london(now):%Y-%m-%d %H:%M} Europe/London)")


def _instant(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"--as-of: invalid time {text!r}; expected e.g. 2025-11-02T18:00:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _iris_status_client(settings) -> redis.Redis | None:  # type: ignore[no-untyped-def]
    """The broker's Redis, where the IRIS listener keeps its status, if one is configured
    and answering; without it the dashboard says 'no IRIS data'."""
    if not settings.broker_url:
        return None
    client = redis.Redis.from_url(settings.broker_url, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        click.echo(f"IRIS status unavailable (Redis: {type(exc).__name__}); "
                   "the dashboard shows no IRIS data", err=True)
        return None
    return client
