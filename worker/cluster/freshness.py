"""How old each dataset's newest row is, and the alert when it is older than it should be.

The newest row is found however old it is, without scanning history: the sink names its newest
stored day (the local manifest, BigQuery's coverage table) and that day's bounds (local) or rows
(BigQuery, one free partition read) give the newest instant. A
realtime dataset is polled every few minutes, so its catalog ``freshness`` is the threshold; a
dataset only the daily sweep refreshes cannot be fresher than a day, so a day is added to its
threshold. An alert is raised once when a dataset goes stale and once when it recovers (the
state lives in Redis, so it holds across beat restarts and workers), logged and posted to
``BMRS_ALERT_WEBHOOK`` (Slack-compatible JSON) when that is set.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import redis
import requests

from worker.cluster.broker import KEY_PREFIX
from worker.elexon.catalog import Dataset
from worker.elexon.settlement import PERIOD, current_settlement_day, day_window_utc
from worker.sinks.base import Sink

log = logging.getLogger(__name__)

STATE_KEY = KEY_PREFIX + "freshness"
IRIS_SILENCE_KEY = KEY_PREFIX + "iris-silence-alerted"
# Kept for callers that named it; the newest row is no longer searched for in a few days only.
SEARCH_DAYS = 3
SWEEP_CADENCE = dt.timedelta(days=1)


@dataclasses.dataclass
class Freshness:
    """One dataset's age against its threshold; :meth:`to_json` is part of ``bmrs status``."""

    dataset: str
    newest_utc: dt.datetime | None
    threshold: dt.timedelta
    checked_utc: dt.datetime

    @property
    def age(self) -> dt.timedelta | None:
        return None if self.newest_utc is None else self.checked_utc - self.newest_utc

    @property
    def stale(self) -> bool:
        return self.age is None or self.age > self.threshold

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "newest_utc": _iso(self.newest_utc),
            "age_s": None if self.age is None else round(self.age.total_seconds()),
            "threshold_s": round(self.threshold.total_seconds()),
            "stale": self.stale,
        }


def _iso(instant: dt.datetime | None) -> str | None:
    return instant.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if instant else None


def threshold(dataset: Dataset) -> dt.timedelta:
    return dataset.freshness if dataset.realtime else dataset.freshness + SWEEP_CADENCE


def newest_instant(dataset: Dataset, table: pa.Table, day: dt.date) -> dt.datetime | None:
    """The latest instant a day's rows describe: the time field, else the last period's start."""
    if table.num_rows == 0:
        return None
    if dataset.time_field:
        value = pc.max(table.column(dataset.time_field)).as_py()
        return value.astimezone(dt.UTC) if value else None
    if dataset.period_field:
        period = pc.max(table.column(dataset.period_field)).as_py()
        if period:
            return day_window_utc(day)[0] + (int(period) - 1) * PERIOD
    return day_window_utc(day)[0]


def newest_row(sink: Sink, dataset: Dataset, today: dt.date | None = None) -> dt.datetime | None:
    """Newest row instant of the dataset's newest stored day, however old.

    A snapshot (reference) dataset describes no instant: its age is its last fetch's (of
    ``today``'s chunk)."""
    return newest_rows(sink, [dataset], today)[dataset.code]


def newest_rows(
    sink: Sink, datasets: Iterable[Dataset], today: dt.date | None = None
) -> dict[str, dt.datetime | None]:
    """:func:`newest_row` of many datasets, by code, in a fixed number of sink reads (one
    query each on BigQuery) however many datasets there are."""
    chosen = list(datasets)
    today = today or dt.date.today()
    snapshots = [d for d in chosen if d.snapshot]
    dated = [d for d in chosen if not d.snapshot]
    fetches = (
        sink.read_coverage_spans({d: (d.chunk_day(today),) * 2 for d in snapshots})
        if snapshots else {}
    )
    newest_days = sink.newest_days(dated) if dated else {}
    days = {d: day for d in dated if (day := newest_days.get(d.code)) is not None}
    bounds = sink.day_bounds_of(days) if days else {}
    found: dict[str, dt.datetime | None] = {}
    for dataset in chosen:
        if dataset.snapshot:
            fetched = next(iter(fetches.get(dataset.code, {}).values()), None)
            found[dataset.code] = (
                None if fetched is None or fetched.status != "complete" else fetched.fetched_utc
            )
        elif dataset in days:
            found[dataset.code] = _newest_on(
                sink, dataset, days[dataset], bounds.get(dataset.code)
            )
        else:
            found[dataset.code] = None
    return found


def _newest_on(
    sink: Sink, dataset: Dataset, day: dt.date, bounds: dict[str, tuple[object, object]] | None
) -> dt.datetime | None:
    """The newest instant of ``day`` from its bounds, or from its rows where none are kept."""
    if bounds is None:
        table = sink.read_day(dataset, day)
        return None if table is None else newest_instant(dataset, table, day)
    if dataset.time_field and dataset.time_field in bounds:
        newest = bounds[dataset.time_field][1]
        return newest.astimezone(dt.UTC) if isinstance(newest, dt.datetime) else None
    if dataset.period_field and dataset.period_field in bounds:
        period = bounds[dataset.period_field][1]
        if isinstance(period, int) and period:
            return day_window_utc(day)[0] + (period - 1) * PERIOD
    return day_window_utc(day)[0]


def assess(sink: Sink, datasets: list[Dataset], now: dt.datetime | None = None) -> list[Freshness]:
    now = now or dt.datetime.now(dt.UTC)
    today = current_settlement_day(now)
    newest = newest_rows(sink, datasets, today)
    return [Freshness(d.code, newest[d.code], threshold(d), now) for d in datasets]


def record_and_alert(
    client: redis.Redis, results: list[Freshness], webhook: str | None = None
) -> list[str]:
    """Store each dataset's state; alert on every change between fresh and stale.

    Returns the alert messages sent this time (empty when nothing changed).
    """
    previous = {k.decode(): orjson.loads(v) for k, v in client.hgetall(STATE_KEY).items()}
    alerts: list[str] = []
    for result in results:
        was_stale = previous.get(result.dataset, {}).get("stale", False)
        if result.stale and not was_stale:
            age = (
                f"{result.age.total_seconds() / 60:.0f} min old"
                if result.age
                else "no rows stored"
            )
            message = (
                f"{result.dataset} is stale: newest row {age} "
                f"(threshold {result.threshold.total_seconds() / 60:.0f} min); "
                "check `bmrs status` and `bmrs gaps`"
            )
            log.warning(message, extra={"dataset": result.dataset})
            alerts.append(message)
        elif was_stale and not result.stale:
            message = f"{result.dataset} is fresh again: newest row {result.age.total_seconds() / 60:.0f} min old"  # type: ignore[union-attr]
            log.info(message, extra={"dataset": result.dataset})
            alerts.append(message)
    if results:
        client.hset(
            STATE_KEY,
            mapping={
                r.dataset: orjson.dumps({**r.to_json(), "checked_utc": _iso(r.checked_utc)})
                for r in results
            },
        )
    if webhook and alerts:
        post_alert(webhook, alerts)
    return alerts


def record_iris_silence(
    client: redis.Redis, silence: str | None, webhook: str | None = None
) -> list[str]:
    """Alert once when IRIS falls silent (``silence`` is the listener's alert line) and once
    when messages flow again, like the per-dataset alerts."""
    was_silent = client.get(IRIS_SILENCE_KEY) is not None
    alerts: list[str] = []
    if silence and not was_silent:
        log.warning(silence)
        alerts.append(silence)
        client.set(IRIS_SILENCE_KEY, silence)
    elif was_silent and not silence:
        alerts.append("IRIS messages are arriving again")
        log.info(alerts[-1])
        client.delete(IRIS_SILENCE_KEY)
    if webhook and alerts:
        post_alert(webhook, alerts)
    return alerts


def stored_states(client: redis.Redis) -> dict[str, dict[str, Any]]:
    """The last check's state per dataset, as :func:`record_and_alert` stored it."""
    return {k.decode(): orjson.loads(v) for k, v in client.hgetall(STATE_KEY).items()}


def post_alert(webhook: str, messages: list[str]) -> None:
    """One Slack-compatible post; a failure is logged, never raised (the check goes on)."""
    try:
        response = requests.post(webhook, json={"text": "\n".join(messages)}, timeout=10)
        response.raise_for_status()
    except requests.RequestException as exc:
        # The URL carries the webhook's secret: name only the error class and status.
        status = getattr(getattr(exc, "response", None), "status_code", None)
        log.warning(
            "freshness alert not delivered to BMRS_ALERT_WEBHOOK: %s%s",
            type(exc).__name__,
            f" (HTTP {status})" if status else "",
        )
