"""How the CLI prints values: times that say what they are, errors that keep their hints.

* An *instant* (a timestamp with a time zone, e.g. ``startTime``) is printed in UTC with ``Z``,
  or, with ``--tz Europe/London`` / ``--local``, in that zone with its offset, so the two
  01:00s of an autumn clock change stay apart (``01:00:00+01:00`` and ``01:00:00+00:00``).
* A *naive* time (no time zone, e.g. ``startTime AT TIME ZONE 'Europe/London'`` or
  ``date_trunc('month', settlementDate)``) is a wall-clock reading: printed as it is, without
  ``Z``, because it is not a UTC instant.
"""

from __future__ import annotations

import datetime as dt
import decimal
import difflib
import itertools
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from worker.elexon import catalog
from worker.elexon.coverage import Coverage

LOCAL_ZONE = "Europe/London"
T = TypeVar("T")


def time_zone_options(command: Callable[..., T]) -> Callable[..., T]:
    """``--tz ZONE`` and ``--local`` (= ``--tz Europe/London``) for a command printing times."""
    command = click.option(
        "--local", "local", is_flag=True,
        help=f"Print instants in {LOCAL_ZONE} time (same as --tz {LOCAL_ZONE}).")(command)
    return click.option(
        "--tz", "tz_name", metavar="ZONE",
        help="Print instants in this IANA time zone with their offset (default UTC, with Z).",
    )(command)


def resolve_zone(tz_name: str | None, local: bool) -> ZoneInfo | None:
    """The zone to print instants in; None means UTC with ``Z``."""
    if local and tz_name and tz_name != LOCAL_ZONE:
        raise click.UsageError(f"--local means --tz {LOCAL_ZONE}; it cannot go with --tz {tz_name}")
    name = LOCAL_ZONE if local else tz_name
    if name is None or name.upper() in ("UTC", "Z"):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.UsageError(
            f"--tz {name}: unknown time zone; use an IANA name such as {LOCAL_ZONE} or UTC"
        ) from None


def format_time(value: dt.datetime, zone: ZoneInfo | None = None) -> str:
    """An instant in UTC with ``Z`` (or in ``zone`` with its offset); a naive time as is."""
    if value.tzinfo is None:
        text = value.isoformat(timespec="microseconds")
        return text.removesuffix(".000000")
    if zone is None:
        text = value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(
            timespec="microseconds")
        return (text.removesuffix(".000000")) + "Z"
    local = value.astimezone(zone)
    spec = "seconds" if local.microsecond == 0 else "microseconds"
    return local.isoformat(timespec=spec)


def plain(value: Any, zone: ZoneInfo | None = None) -> Any:
    """A value as JSON or a table cell shows it: times as :func:`format_time`, dates ISO."""
    if isinstance(value, dt.datetime):
        return format_time(value, zone)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, list):
        return [plain(v, zone) for v in value]
    if isinstance(value, dict):
        return {k: plain(v, zone) for k, v in value.items()}
    return value


MISSING_TABLE = re.compile(r"Table with name (\S+) does not exist", re.IGNORECASE)


def view_names() -> list[str]:
    """Every view a query may name: ``<code>``, ``<code>_latest``, ``<code>_unified``."""
    return [f"{d.table}{suffix}" for d in catalog.DATASETS for suffix in ("", "_latest", "_unified")]


def query_error_text(exc: BaseException, views: Iterable[str] | None = None) -> str:
    """The engine's whole message, hints included ("Did you mean ...", "Candidate bindings",
    the LINE marker of a syntax error), with blank lines dropped.

    The warehouse binds only the views a statement names, so for a misspelt view DuckDB can
    only suggest its own tables (``duckdb_tables``): the hint then names the closest view.
    """
    lines = [line.rstrip() for line in str(exc).splitlines() if line.strip()]
    missing = MISSING_TABLE.search(str(exc))
    if missing:
        names = list(views) if views is not None else view_names()
        close = difflib.get_close_matches(missing.group(1).strip('"').lower(), names, n=3,
                                          cutoff=0.6)
        if close:
            lines = [line for line in lines if not line.startswith("Did you mean")]
            lines.append("Did you mean " + " or ".join(f'"{name}"' for name in close) + "?")
    return "\n".join(lines)


def coverage_ranges(entries: Iterable[Coverage]) -> list[tuple[str, dt.date, dt.date, str, str | None, int]]:
    """Runs of consecutive days of one dataset with the same status and reason:
    (dataset, first day, last day, status, reason, days)."""
    entries = list(entries)
    first_seen: dict[str, int] = {}
    for cov in entries:
        first_seen.setdefault(cov.dataset, len(first_seen))
    ordered = sorted(entries, key=lambda c: (first_seen[c.dataset], c.date))
    ranges = []
    for (_, code, status, reason), group in itertools.groupby(
        _consecutive(ordered),
        key=lambda item: (item[0], item[1].dataset, item[1].status, item[1].reason),
    ):
        days = [c.date for _, c in group]
        ranges.append((code, days[0], days[-1], status, reason, len(days)))
    return ranges


def _consecutive(entries: list[Coverage]) -> Iterable[tuple[int, Coverage]]:
    """Tag each entry with a run number that changes wherever a day is skipped."""
    run = 0
    previous: Coverage | None = None
    for cov in entries:
        if previous is not None and (
            cov.dataset != previous.dataset or cov.date - previous.date != dt.timedelta(days=1)
        ):
            run += 1
        previous = cov
        yield run, cov


def range_line(code: str, first: dt.date, last: dt.date, status: str, reason: str | None,
               days: int) -> str:
    """``FUELINST 2025-10-20 to 2025-10-26 (7 days): missing (never fetched)``."""
    span = f"{first}" if first == last else f"{first} to {last} ({days} days)"
    return f"{code} {span}: {status}" + (f" ({reason})" if reason else "")
