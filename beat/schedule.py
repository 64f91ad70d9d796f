"""The periodic schedule, built from settings and changeable without code.

Default entries:

- ``poll-realtime-<code>``: every ``BMRS_REALTIME_POLL_S`` for each realtime dataset the
  cluster keeps (today and yesterday, on the ``realtime`` queue);
- ``sweep-gaps``: at ``BMRS_SWEEP_CRON`` (London time), the gap sweep over
  ``BMRS_SWEEP_LOOKBACK_DAYS`` (or further back for datasets still being revised);
- ``check-freshness``: every ``BMRS_FRESHNESS_CHECK_S``;
- ``refresh-dashboard``: every ``BMRS_DASHBOARD_REFRESH_S`` (``sheets.tasks.refresh_dashboard``
  on the ``dashboard`` queue, once that module is installed);
- ``prune-iris-stream``: daily at 05:00, dropping IRIS rows the API has since delivered.

An interval of 0 turns its entries off. ``BMRS_BEAT_SCHEDULE_FILE`` names a TOML file whose
tables change, remove or add entries by name::

    [sweep-gaps]            # change: only the keys given are replaced
    cron = "0 5 * * *"
    kwargs = { lookback_days = 14 }

    [refresh-dashboard]     # remove
    enabled = false

    [poll-bod]              # add: task and one of every/cron are required
    task = "worker.cluster.tasks.poll_realtime"
    every = 900
    kwargs = { dataset = "BOD" }
    queue = "realtime"
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import tomllib
from pathlib import Path
from typing import Any

from celery.schedules import crontab

from worker.cluster.sweep import configured_datasets
from worker.settings import Settings

DASHBOARD_TASK = "sheets.tasks.refresh_dashboard"
IRIS_PRUNE_TASK = "iris_listener.tasks.prune_iris_stream"
_ENTRY_KEYS = {"task", "every", "cron", "args", "kwargs", "queue", "enabled"}


class ScheduleError(ValueError):
    """A schedule setting or file entry that cannot be used; says which and why."""


def parse_cron(text: str, where: str) -> crontab:
    """A five-field crontab (minute hour day-of-month month day-of-week), London time."""
    fields = text.split()
    if len(fields) != 5:
        raise ScheduleError(f"{where}: {text!r} is not a 5-field crontab like '30 4 * * *'")
    minute, hour, day_of_month, month, day_of_week = fields
    try:
        return crontab(minute, hour, day_of_week, day_of_month, month)
    except ValueError as exc:
        raise ScheduleError(f"{where}: {text!r}: {exc}") from None


def default_entries(settings: Settings) -> dict[str, dict[str, Any]]:
    """The schedule before the file: plain data, one dict per entry."""
    entries: dict[str, dict[str, Any]] = {}
    if settings.realtime_poll_s:
        for dataset in configured_datasets(settings):
            if dataset.realtime:
                entries[f"poll-realtime-{dataset.table}"] = {
                    "task": "worker.cluster.tasks.poll_realtime",
                    "every": settings.realtime_poll_s,
                    "kwargs": {"dataset": dataset.code},
                    "queue": "realtime",
                }
    entries["sweep-gaps"] = {
        "task": "worker.cluster.tasks.sweep_gaps",
        "cron": settings.sweep_cron,
        "kwargs": {"lookback_days": settings.sweep_lookback_days},
        "queue": "backfill",
    }
    if settings.freshness_check_s:
        entries["check-freshness"] = {
            "task": "worker.cluster.tasks.check_freshness",
            "every": settings.freshness_check_s,
            "queue": "realtime",
        }
    if settings.dashboard_refresh_s and _installed(DASHBOARD_TASK.rsplit(".", 1)[0]):
        entries["refresh-dashboard"] = {
            "task": DASHBOARD_TASK,
            "every": settings.dashboard_refresh_s,
            "queue": "dashboard",
        }
    if _installed(IRIS_PRUNE_TASK.rsplit(".", 1)[0]):
        entries["prune-iris-stream"] = {
            "task": IRIS_PRUNE_TASK,
            "cron": "0 5 * * *",
            "queue": "iris",
        }
    return entries


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def apply_file(entries: dict[str, dict[str, Any]], path: Path) -> dict[str, dict[str, Any]]:
    """Entries changed, removed or added by a TOML schedule file."""
    try:
        document = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ScheduleError(f"BMRS_BEAT_SCHEDULE_FILE {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScheduleError(f"BMRS_BEAT_SCHEDULE_FILE {path}: not valid TOML: {exc}") from None
    merged = {name: dict(entry) for name, entry in entries.items()}
    for name, table in document.items():
        where = f"{path} [{name}]"
        if not isinstance(table, dict):
            raise ScheduleError(f"{where}: expected a table of entry settings")
        unknown = set(table) - _ENTRY_KEYS
        if unknown:
            raise ScheduleError(
                f"{where}: unknown keys {sorted(unknown)}; use {sorted(_ENTRY_KEYS)}"
            )
        if table.get("enabled", True) is False:
            merged.pop(name, None)
            continue
        entry = merged.get(name, {})
        if "every" in table or "cron" in table:
            entry.pop("every", None)
            entry.pop("cron", None)
        entry.update({k: v for k, v in table.items() if k != "enabled"})
        if "task" not in entry or not ("every" in entry or "cron" in entry):
            raise ScheduleError(
                f"{where}: a new entry needs 'task' and one of 'every' (seconds) or 'cron'"
            )
        merged[name] = entry
    return merged


def to_celery(entries: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Celery's ``beat_schedule`` form of the plain entries."""
    schedule: dict[str, dict[str, Any]] = {}
    for name, entry in entries.items():
        if "cron" in entry:
            when: Any = parse_cron(str(entry["cron"]), f"schedule entry {name}")
        else:
            seconds = float(entry["every"])
            if seconds <= 0:
                raise ScheduleError(f"schedule entry {name}: 'every' must be > 0 seconds")
            when = dt.timedelta(seconds=seconds)
        schedule[name] = {
            "task": entry["task"],
            "schedule": when,
            "args": tuple(entry.get("args", ())),
            "kwargs": dict(entry.get("kwargs", {})),
            "options": {"queue": entry["queue"]} if entry.get("queue") else {},
        }
    return schedule


def plain_entries(settings: Settings) -> dict[str, dict[str, Any]]:
    """The effective schedule as plain data (what ``bmrs config`` shows)."""
    entries = default_entries(settings)
    if settings.beat_schedule_file:
        entries = apply_file(entries, settings.beat_schedule_file)
    return entries


def build_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Celery's ``beat_schedule`` for these settings."""
    return to_celery(plain_entries(settings))
