"""What the dashboard reads from the warehouse: a handful of SQL queries, run once per refresh.

Every query reads the ``<code>_latest`` views (newest version per natural key: the latest
REMIT revision per mrid, the latest settlement run of a system price...) and filters on the
``_day`` partition column so that BigQuery prunes partitions and DuckDB skips files.

The SQL keeps to the subset both sinks accept (see :mod:`worker.sinks.sql_dialect`: its
DATE/UTC TIMESTAMP literals, unquoted lower-case view names, plain aggregates). Arithmetic
that differs between dialects, such as timestamp differences and bucketing instants into
settlement periods, is done in Python on the few thousand rows a refresh fetches.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import redis

from worker.elexon import catalog

from worker.cluster import freshness
from worker.elexon.coverage import Coverage
from worker.cluster.freshness import Freshness
from worker.elexon.settlement import UTC, period_of, periods_in_day
from worker.sinks.base import Sink
from worker.sinks.sql_dialect import date_literal, timestamp_literal

# The market index price is N2EX's; APX's rows are mostly zero price and zero volume.
MID_PROVIDER = "N2EXMIDP"
OUTAGE_MIN_MW = 50.0
OUTAGE_ROWS = 15
WINDOW_PERIODS = 48
HEALTH_DAYS = 7
Row = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """Everything one refresh read from the warehouse, as plain rows (no further I/O)."""

    now: dt.datetime
    # The 48 settlement periods ending with the current one, oldest first.
    window: tuple[tuple[dt.date, int], ...]
    settled_day: dt.date
    fuel: list[Row]  # settlementDate, settlementPeriod, fuelType, mw (period mean), samples
    system_prices: list[Row]  # settlementDate, settlementPeriod, systemSellPrice, systemBuyPrice...
    market_index: list[Row]  # settlementDate, settlementPeriod, price, volume (N2EX only)
    frequency: list[Row]  # measurementTime, frequency (every sample of the window's days)
    acceptances: list[Row]  # BOALF segments of the settled day
    adjustments: list[Row]  # DISBSAD actions of the settled day: cost, volume
    outages: list[Row]  # active REMIT notices over 50 MW, latest revision, largest first
    freshness: dict[str, Freshness]  # per dataset code: its newest row, as `bmrs status` sees it
    coverage: dict[str, list[Coverage]]  # per dataset code: the 7 settled days before today
    remit_coverage: list[Coverage]  # REMIT's trust span (outages need its history)
    iris_last_message: dict[str, dt.datetime]  # per dataset code, from the IRIS listener


def window_periods(now: dt.datetime, count: int = WINDOW_PERIODS) -> tuple[tuple[dt.date, int], ...]:
    """The ``count`` settlement periods ending with the one ``now`` is in, oldest first.

    Walks back day by day, so a clock-change day contributes its 46 or 50 periods.
    """
    day, period = period_of(now)
    periods: list[tuple[dt.date, int]] = []
    while len(periods) < count:
        periods.append((day, period))
        period -= 1
        if period == 0:
            day -= dt.timedelta(days=1)
            period = periods_in_day(day)
    return tuple(reversed(periods))


def gather(
    sink: Sink,
    now: dt.datetime,
    *,
    remit_span_days: int = 90,
    iris_last_message: Mapping[str, dt.datetime] | None = None,
    datasets: Sequence[catalog.Dataset] = catalog.DATASETS,
) -> Snapshot:
    """Run the dashboard's queries against a sink, as of ``now`` (an aware instant).

    ``datasets`` are those the health tab reports on (the cluster's ``BMRS_DATASETS``).
    """
    now = now.astimezone(UTC)
    window = window_periods(now)
    first, last = window[0][0], window[-1][0]
    today = last
    settled_day = today - dt.timedelta(days=1)
    # Health looks at settled days: today is still filling in and would always look partial.
    health_first, health_last = today - dt.timedelta(days=HEALTH_DAYS), settled_day
    days = f"_day BETWEEN {date_literal(min(first, settled_day))} AND {date_literal(last)}"
    return Snapshot(
        now=now,
        window=window,
        settled_day=settled_day,
        fuel=_rows(sink, f"""
            SELECT settlementDate, settlementPeriod, fuelType,
                   AVG(generation) AS mw, COUNT(*) AS samples
            FROM fuelinst_latest WHERE {days}
            GROUP BY settlementDate, settlementPeriod, fuelType"""),
        system_prices=_rows(sink, f"""
            SELECT settlementDate, settlementPeriod, systemSellPrice, systemBuyPrice,
                   totalAcceptedOfferVolume, totalAcceptedBidVolume
            FROM disebsp_latest WHERE {days}"""),
        market_index=_rows(sink, f"""
            SELECT settlementDate, settlementPeriod, price, volume
            FROM mid_latest WHERE {days} AND dataProvider = '{MID_PROVIDER}'"""),
        frequency=_rows(sink, f"""
            SELECT measurementTime, frequency FROM freq_latest
            WHERE _day BETWEEN {date_literal(first)} AND {date_literal(last)}
              AND measurementTime <= {timestamp_literal(now)}"""),
        acceptances=_rows(sink, f"""
            SELECT nationalGridBmUnit, acceptanceNumber, timeFrom, timeTo, levelFrom, levelTo
            FROM boalf_latest WHERE _day = {date_literal(settled_day)}"""),
        adjustments=_rows(sink, f"""
            SELECT id, cost, volume FROM disbsad_latest
            WHERE _day = {date_literal(settled_day)}"""),
        outages=_rows(sink, f"""
            SELECT mrid, revisionNumber, assetId, affectedUnit, fuelType, unavailableCapacity,
                   normalCapacity, cause, unavailabilityType, eventStartTime, eventEndTime
            FROM remit_latest
            WHERE eventStatus = 'Active' AND unavailableCapacity > {OUTAGE_MIN_MW}
              AND eventStartTime <= {timestamp_literal(now)}
              AND (eventEndTime IS NULL OR eventEndTime > {timestamp_literal(now)})
            ORDER BY unavailableCapacity DESC, mrid
            LIMIT {OUTAGE_ROWS}"""),
        freshness={f.dataset: f for f in freshness.assess(sink, list(datasets), now)},
        coverage={
            d.code: list(sink.coverage_range(d, health_first, health_last))
            for d in datasets
        },
        remit_coverage=list(
            sink.coverage_range(
                catalog.get("REMIT"), today - dt.timedelta(days=remit_span_days - 1), today
            )
        ),
        iris_last_message=dict(iris_last_message or {}),
    )


def iris_last_messages(client: redis.Redis | None) -> dict[str, dt.datetime]:
    """When each dataset last received an IRIS message, from the listener's status in Redis.

    Empty (the dashboard shows 'no IRIS data') without a Redis to ask, or before any message.
    """
    if client is None:
        return {}
    from iris_listener.status import iris_status

    datasets = iris_status(client)["datasets"]
    return {
        code: _aware(dt.datetime.fromisoformat(status["last_message_utc"]))
        for code, status in datasets.items()
    }


def _rows(sink: Sink, sql: str) -> list[Row]:
    table: pa.Table = sink.query(sql)
    return [{k: _aware(v) for k, v in row.items()} for row in table.to_pylist()]


def _aware(value: Any) -> Any:
    """Timestamps as aware UTC datetimes, whichever way the engine returned them."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value
