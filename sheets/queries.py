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
import pyarrow.compute as pc
import redis

from sheets.balancing import (
    TOP_UNITS_SETTLED,
    TOP_UNITS_TODAY,
    UnitVolume,
    top_units,
    unit_volumes,
)
from worker.cluster import freshness
from worker.cluster.freshness import Freshness
from worker.elexon import catalog
from worker.elexon.coverage import Coverage
from worker.elexon.settlement import UTC, local_date, period_of, periods_in_day
from worker.sinks.base import Sink
from worker.sinks.sql_dialect import date_literal, timestamp_literal

# The market index price is N2EX's; APX's rows are mostly zero price and zero volume.
MID_PROVIDER = "N2EXMIDP"
OUTAGE_MIN_MW = 50.0
OUTAGE_ROWS = 15
WINDOW_PERIODS = 48
HEALTH_DAYS = 7
# The Prices tab's daily-spread history.
SPREAD_DAYS = 30
# The Frequency tab looks at the day before the as-of instant.
FREQUENCY_SPAN = dt.timedelta(hours=24)
# Newest rows published by an as-of instant are looked for this far back.
AS_OF_SEARCH_DAYS = 7
Row = dict[str, Any]
# What the outages table shows, and what picks a notice's active latest revision.
REMIT_COLUMNS = ("mrid, revisionNumber, assetId, affectedUnit, fuelType, unavailableCapacity, "
                 "normalCapacity, cause, unavailabilityType, eventStartTime, eventEndTime, "
                 "eventStatus")

# When a row became public, for ``--as-of``: the field that says so, and how long after that
# instant the row was out. Datasets without a publish time are cut by their own time: a market
# index (MID) exists once its period has ended; bid-offer data (BOD) is out at gate closure,
# an hour before its period starts. Any other dataset falls back to the first field of
# PUBLISH_FIELDS it has, else its time field.
PUBLISHED_BY: dict[str, tuple[str, dt.timedelta]] = {
    "FUELINST": ("publishTime", dt.timedelta(0)),
    "FUELHH": ("publishTime", dt.timedelta(0)),
    "FREQ": ("measurementTime", dt.timedelta(0)),
    "MID": ("startTime", dt.timedelta(minutes=30)),
    "DISEBSP": ("createdDateTime", dt.timedelta(0)),
    "BOALF": ("acceptanceTime", dt.timedelta(0)),
    "BOD": ("timeFrom", -dt.timedelta(hours=1)),
    "REMIT": ("publishTime", dt.timedelta(0)),
}
# The datasets the tabs read: each keeps its own Data health row even when never loaded, as
# its "no data" explains blanks elsewhere (PUBLISHED_BY names the rest; BMUNITS types units).
DASHBOARD_DATASETS = (*PUBLISHED_BY, "DISBSAD", "BMUNITS")
PUBLISH_FIELDS = ("publishTime", "createdDateTime", "publicationTime", "acceptanceTime",
                  "measurementTime", "createdTime")


def published_by(dataset: catalog.Dataset) -> tuple[str, dt.timedelta] | None:
    """(field, lag): a row is public from ``field + lag``; None when nothing says when."""
    if dataset.code in PUBLISHED_BY:
        return PUBLISHED_BY[dataset.code]
    names = set(dataset.field_names)
    for name in PUBLISH_FIELDS:
        if name in names:
            return name, dt.timedelta(0)
    if dataset.time_field:
        return dataset.time_field, dt.timedelta(0)
    return None


def cut_condition(dataset: catalog.Dataset, as_of: dt.datetime) -> str:
    """SQL condition: the row was published by ``as_of``."""
    rule = published_by(dataset)
    if rule is None:
        return "TRUE"
    field, lag = rule
    return f"{field} <= {timestamp_literal(as_of - lag)}"


def as_published(
    code: str, columns: str, days: tuple[dt.date, dt.date], as_of: dt.datetime,
    where: str = "",
) -> str:
    """The rows of ``days`` that were public at ``as_of``, newest published version per key.

    Reads the all-versions view, cut by publish time *before* picking the newest version,
    so a revision published after ``as_of`` never replaces what was known then. The ``_day``
    filter bounds the read to those days, however long the history.
    """
    dataset = catalog.get(code)
    keys = ", ".join(dataset.natural_key)
    order = [f"{dataset.version_field} DESC NULLS LAST"] if dataset.version_field else []
    order += ["_ingested_utc DESC", "_hash_key"]
    return (
        f"SELECT {columns} FROM {dataset.table} "
        f"WHERE _day BETWEEN {date_literal(days[0])} AND {date_literal(days[1])} "
        f"AND {cut_condition(dataset, as_of)}{(' AND ' + where) if where else ''} "
        f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {', '.join(order)}) = 1"
    )


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """Everything one refresh read from the warehouse, as plain rows (no further I/O).

    Every row is one that was public at ``now`` (the as-of instant): see :func:`as_published`.
    """

    now: dt.datetime
    # The 48 settlement periods ending with the current one, oldest first.
    window: tuple[tuple[dt.date, int], ...]
    settled_day: dt.date
    fuel: list[Row]  # settlementDate, settlementPeriod, fuelType, mw (period mean), samples
    system_prices: list[Row]  # the window's days: settlementDate, settlementPeriod, prices, NIV
    market_index: list[Row]  # settlementDate, settlementPeriod, price, volume (N2EX only)
    frequency: list[Row]  # measurementTime, frequency (every sample of the window's days)
    acceptances: list[Row]  # BOALF segments of the settled day and of today so far
    adjustments: list[Row]  # DISBSAD actions of the settled day: cost, volume
    outages: list[Row]  # active REMIT notices over 50 MW, latest revision, largest first
    freshness: dict[str, Freshness]  # per dataset code: its newest row published by ``now``
    coverage: dict[str, list[Coverage]]  # per dataset code: the 7 settled days before today
    remit_coverage: list[Coverage]  # REMIT's trust span (outages need its history)
    iris_last_message: dict[str, dt.datetime]  # per dataset code, from the IRIS listener
    # Daily system-price statistics of the last SPREAD_DAYS days (today so far included).
    daily_prices: list[Row] = dataclasses.field(default_factory=list)
    # BOD pair +1/-1 prices per (unit, settlement period) for the listed units and days.
    bid_offer_prices: list[Row] = dataclasses.field(default_factory=list)
    # BM-unit reference rows (bmunits_latest) of the accepted units (battery totals need
    # them all); None: the warehouse has no such view yet.
    bm_units: list[Row] | None = None
    # Accepted energy per (day, unit), computed once from ``acceptances`` (see
    # :func:`sheets.balancing.unit_volumes`); None: the model computes it.
    unit_volumes: dict[tuple[dt.date, str], UnitVolume] | None = None


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

    Every query reads a bounded run of days (at most :data:`SPREAD_DAYS`, REMIT's span for
    outages), so a refresh costs the same after years of history. ``datasets`` are those the
    health tab reports on (the cluster's ``BMRS_DATASETS``).
    """
    now = now.astimezone(UTC)
    window = window_periods(now)
    first, last = window[0][0], window[-1][0]
    today = last
    settled_day = today - dt.timedelta(days=1)
    # Health looks at settled days: today is still filling in and would always look partial.
    health_first, health_last = today - dt.timedelta(days=HEALTH_DAYS), settled_day
    days = (min(first, settled_day), last)
    acceptance_days = (settled_day, today)
    freq_first = local_date(now - FREQUENCY_SPAN)
    acceptances = _rows(sink, as_published(
        "BOALF", "settlementDate, nationalGridBmUnit, acceptanceNumber, timeFrom, timeTo, "
        "levelFrom, levelTo", acceptance_days, now))
    # Bid-offer prices and reference data are read for the units the tab lists, not all.
    volumes = unit_volumes(acceptances)
    listed = sorted({v.unit for day, count in ((settled_day, TOP_UNITS_SETTLED),
                                               (today, TOP_UNITS_TODAY))
                     for v in top_units(volumes, day, count)})
    accepted = sorted({v.unit for v in volumes.values() if v.unit})
    return Snapshot(
        now=now,
        window=window,
        settled_day=settled_day,
        fuel=_rows(sink, f"""
            SELECT settlementDate, settlementPeriod, fuelType,
                   AVG(generation) AS mw, COUNT(*) AS samples
            FROM ({as_published("FUELINST", "settlementDate, settlementPeriod, fuelType, "
                                "generation", days, now)}) AS published
            GROUP BY settlementDate, settlementPeriod, fuelType"""),
        system_prices=_rows(sink, as_published(
            "DISEBSP", "settlementDate, settlementPeriod, systemSellPrice, systemBuyPrice, "
            "netImbalanceVolume, totalAcceptedOfferVolume, totalAcceptedBidVolume, "
            "createdDateTime", days, now)),
        market_index=_rows(sink, as_published(
            "MID", "settlementDate, settlementPeriod, price, volume", days, now,
            f"dataProvider = '{MID_PROVIDER}'")),
        frequency=_rows(sink, as_published(
            "FREQ", "measurementTime, frequency", (min(first, freq_first), last), now)),
        acceptances=acceptances,
        adjustments=_rows(sink, f"""
            SELECT id, cost, volume FROM disbsad_latest
            WHERE _day = {date_literal(settled_day)}"""),
        outages=_rows(sink, f"""
            SELECT mrid, revisionNumber, assetId, affectedUnit, fuelType, unavailableCapacity,
                   normalCapacity, cause, unavailabilityType, eventStartTime, eventEndTime
            FROM ({as_published("REMIT", REMIT_COLUMNS,
                                (today - dt.timedelta(days=remit_span_days - 1), today),
                                now)}) AS published
            WHERE eventStatus = 'Active' AND unavailableCapacity > {OUTAGE_MIN_MW}
              AND eventStartTime <= {timestamp_literal(now)}
              AND (eventEndTime IS NULL OR eventEndTime > {timestamp_literal(now)})
            ORDER BY unavailableCapacity DESC, mrid
            LIMIT {OUTAGE_ROWS}"""),
        freshness=freshness_as_of(sink, list(datasets), now),
        # One read for every dataset (one BigQuery query, however long the catalog).
        coverage=sink.coverage_range_of(datasets, health_first, health_last),
        remit_coverage=list(
            sink.coverage_range(
                catalog.get("REMIT"), today - dt.timedelta(days=remit_span_days - 1), today
            )
        ),
        # The listener keeps only its latest message: one after an as-of time says nothing
        # about then, so it is left out rather than shown with a negative age.
        iris_last_message={code: at for code, at in (iris_last_message or {}).items()
                           if at <= now},
        daily_prices=_rows(sink, f"""
            SELECT settlementDate, MIN(systemSellPrice) AS low, MAX(systemSellPrice) AS high,
                   AVG(systemSellPrice) AS mean, COUNT(systemSellPrice) AS periods
            FROM ({as_published("DISEBSP", "settlementDate, systemSellPrice",
                                (today - dt.timedelta(days=SPREAD_DAYS), today), now)})
                 AS published
            GROUP BY settlementDate"""),
        bid_offer_prices=_bid_offer_prices(sink, listed, acceptance_days, now),
        bm_units=_bm_units(sink, accepted),
        unit_volumes=volumes,
    )


def _bid_offer_prices(
    sink: Sink, units: list[str], days: tuple[dt.date, dt.date], now: dt.datetime
) -> list[Row]:
    """Offer price of pair +1 and bid price of pair -1, per accepted unit and period.

    Pair +1 is the first offer band above a unit's notified level and pair -1 the first bid
    band below it: the prices a small acceptance is paid, and what a battery usually bids.
    """
    if not units:
        return []
    listed = ", ".join("'" + unit.replace("'", "''") + "'" for unit in units)
    return _rows(sink, f"""
        SELECT nationalGridBmUnit, settlementDate, settlementPeriod, pairId,
               AVG(offer) AS offer, AVG(bid) AS bid
        FROM ({as_published("BOD", "nationalGridBmUnit, settlementDate, settlementPeriod, "
                            "pairId, offer, bid", days, now,
                            f"pairId IN (1, -1) AND nationalGridBmUnit IN ({listed})")})
             AS published
        GROUP BY nationalGridBmUnit, settlementDate, settlementPeriod, pairId""")


def _bm_units(sink: Sink, units: list[str]) -> list[Row] | None:
    """Reference rows of the accepted units from ``bmunits_latest`` (the register as last
    fetched); None if the warehouse has no BM-unit reference data (dataset BMUNITS) yet."""
    reference = catalog.BY_CODE.get("BMUNITS")
    if reference is None or sink.newest_day(reference) is None:
        return None  # not in the catalog, or never loaded: unit types are unknown
    if not units:
        return []
    listed = ", ".join("'" + unit.replace("'", "''") + "'" for unit in units)
    return _rows(sink, f"SELECT * FROM bmunits_latest WHERE nationalGridBmUnit IN ({listed})")


def freshness_as_of(
    sink: Sink, datasets: list[catalog.Dataset], now: dt.datetime
) -> dict[str, Freshness]:
    """Each dataset's newest row as ``bmrs status`` sees it (however old), but never one
    published after ``now``: for an as-of time in the past, the newest row public then and
    its age then. The datasets that hold later rows are looked up in one query."""
    assessed = freshness.assess(sink, datasets, now)
    later = [catalog.get(k.dataset) for k in assessed
             if k.newest_utc is not None and k.newest_utc > now]
    published = _newest_published(sink, later, now) if later else {}
    return {
        k.dataset: dataclasses.replace(k, newest_utc=published.get(k.dataset))
        if k.dataset in published else k
        for k in assessed
    }


def _newest_published(
    sink: Sink, datasets: list[catalog.Dataset], now: dt.datetime
) -> dict[str, dt.datetime | None]:
    """Newest instant (each dataset's time field) of a row published by ``now``, per dataset."""
    return {d.code: _newest_published_in(sink, d, now) for d in datasets}


def _newest_published_in(
    sink: Sink, dataset: catalog.Dataset, now: dt.datetime
) -> dt.datetime | None:
    """Walks back day by day from the as-of day, through the sink's own day API (no view is
    bound, so the cost does not grow with history): a day whose kept bounds show every row
    published and timed by ``now`` answers without being read; otherwise the day is read and
    cut. Days are read for :data:`AS_OF_SEARCH_DAYS` days at most; further back only kept
    bounds are consulted (a year), so a long-silent feed still gets its newest row's age.
    """
    field, rule = dataset.time_field, published_by(dataset)
    if field is None or rule is None:
        return None
    cut_field, lag = rule
    # Rows on later days all lie after ``now``: the walk starts on its day. That day holds
    # the rows after ``now`` (why we are here), so it is read, not judged by its bounds.
    day = local_date(now)
    for back in range(AS_OF_SEARCH_DAYS + 366):
        bounds = sink.day_bounds(dataset, day) if back else None
        if bounds and field in bounds and cut_field in bounds:
            last_cut, last_time = bounds[cut_field][1], bounds[field][1]
            if (isinstance(last_cut, dt.datetime) and isinstance(last_time, dt.datetime)
                    and last_cut + lag <= now and last_time <= now):
                return last_time
        if back < AS_OF_SEARCH_DAYS:
            table = sink.read_day(dataset, day)
            if table is not None and table.num_rows:
                public = table.filter(pc.and_(
                    pc.less_equal(table.column(cut_field), pa.scalar(now - lag)),
                    pc.less_equal(table.column(field), pa.scalar(now))))
                newest = pc.max(public.column(field)).as_py() if public.num_rows else None
                if newest is not None:
                    return _aware(newest)
        day -= dt.timedelta(days=1)
    return None


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
