"""The one place where the SQL of the two warehouses differs: DuckDB (local) and BigQuery.

Every view both sinks create (``<code>``, ``<code>_latest``, ``<code>_unified``) is written
here once per dialect, so the views mean the same thing on both. The differences handled:

- identifiers: ``"name"`` in DuckDB, ```name``` in BigQuery;
- relations: a view name in DuckDB, ```project.dataset.name``` in BigQuery (a BigQuery view
  must name its tables in full; it has no default dataset);
- ``QUALIFY``: BigQuery accepts it only after a ``WHERE``, ``GROUP BY`` or ``HAVING``;
- unions: DuckDB unites Parquet files of several format versions by column name
  (``UNION ALL BY NAME``); BigQuery tables have one schema, so columns are listed by name.

History costs what a query reads (issue 13): a natural key that never spans settlement days
(:func:`key_within_day`) has its windows partitioned by ``_day`` (and ``settlementDate``) too.
That changes no answer, and lets a filter on those columns (or on a key column such as a
partition time field) pass below the window to the scan, where it prunes day files (DuckDB) or
partitions (BigQuery). On BigQuery ``<code>`` also takes ``settlementDate`` from ``_day`` (equal
by construction where the day is the settlement date), so a filter on either prunes.

Queries that other parts run on either sink (the dashboard's, freshness, gap detection)
keep to the common subset: lower-case unquoted view names, ``DATE 'YYYY-MM-DD'`` and UTC
``TIMESTAMP '...'`` literals (:func:`date_literal`, :func:`timestamp_literal`), plain
aggregates. On BigQuery, unqualified view names resolve in the sink's dataset.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Sequence

from worker.elexon.catalog import Dataset
from worker.sinks.resolved_limits import is_resolved, resolved_latest_sql


class Dialect(abc.ABC):
    """How one warehouse spells identifiers, relations and the views' SQL."""

    name: str
    # What must precede QUALIFY when a query has no other filter.
    qualify_prefix: str = ""

    @abc.abstractmethod
    def quote(self, identifier: str) -> str:
        """An identifier quoted so that case and odd characters survive."""

    @abc.abstractmethod
    def relation(self, name: str) -> str:
        """How a view's SQL names another table or view of the warehouse."""

    @abc.abstractmethod
    def union_all(self, dataset: Dataset, first: str, second: str) -> str:
        """Two SELECTs over the dataset's storage columns, united without dropping rows."""

    def latest_sql(self, dataset: Dataset, source: str) -> str:
        """Newest version per natural key: the version field, then the newest ingestion.

        The per-dataset hook for ``<code>_latest``: a dataset whose newest rows follow another
        rule overrides it here, and both sinks (views, and anything materialised) follow.
        """
        if is_resolved(dataset):
            # MELS/MILS: the limit in force per unit and instant (worker.sinks.resolved_limits).
            return resolved_latest_sql(self, dataset, source)
        keys = ", ".join(self.quote(k) for k in window_keys(dataset, dataset.natural_key))
        order = (
            [f"{self.quote(dataset.version_field)} DESC NULLS LAST"] if dataset.version_field else []
        )
        order.append("_ingested_utc DESC")
        order.append("_hash_key")  # a total order, so the pick is deterministic
        return (
            f"SELECT * FROM {source}{self.qualify_prefix} QUALIFY row_number() OVER "
            f"(PARTITION BY {keys} ORDER BY {', '.join(order)}) = 1"
        )

    def unified_sql(
        self, dataset: Dataset, api: str, stream: str, api_match: str | None = None
    ) -> str:
        """API rows, plus the stream rows whose natural key and version the API lacks.

        ``api_match`` is what the stream rows are compared with, where the engine cannot prune
        that side by itself: the local lake passes the API rows of the stream's days only.

        One stream row per natural key and version (its first arrival), so IRIS redeliveries
        and the API's later copy of the same row never show twice. Without a version field a
        stream row stands only until the API holds any row for its key.
        """
        keys = list(dataset.natural_key)
        if dataset.version_field:
            keys.append(dataset.version_field)
        q = self.quote
        match = " AND ".join(f"a.{q(k)} IS NOT DISTINCT FROM s.{q(k)}" for k in keys)
        if key_within_day(dataset) or dataset.version_field:
            # A key (with its version) lives in one day: compare within the day only.
            match = f"a._day = s._day AND {match}"
        identity = ", ".join(f"s.{q(k)}" for k in window_keys(dataset, keys))
        if not dataset.version_field:
            identity += ", s._hash_key"
        fresh_stream_rows = (
            f"SELECT {self.columns(dataset, 's')} FROM {stream} s "
            f"WHERE NOT EXISTS (SELECT 1 FROM {api_match or api} a WHERE {match}) "
            f"QUALIFY row_number() OVER (PARTITION BY {identity} "
            "ORDER BY s._ingested_utc, s._hash_key) = 1"
        )
        return self.union_all(dataset, f"SELECT {self.columns(dataset)} FROM {api}", fresh_stream_rows)

    def columns(self, dataset: Dataset, alias: str | None = None) -> str:
        """The select list of a dataset's stored rows (``*`` where the engine unites by name)."""
        return f"{alias}.*" if alias else "*"

    def base_sql(self, dataset: Dataset, api: str) -> str:
        """``<code>``: every stored row of the API table."""
        return f"SELECT * FROM {api}"

    def views(self, dataset: Dataset, *, api: str, stream: str | None) -> dict[str, str]:
        """Name -> SQL of the dataset's three views, over its API and stream tables."""
        table = dataset.table
        return {
            table: self.base_sql(dataset, api),
            f"{table}_latest": self.latest_sql(dataset, self.relation(table)),
            f"{table}_unified": (
                self.unified_sql(dataset, self.relation(table), stream)
                if stream is not None
                else f"SELECT * FROM {self.relation(table)}"
            ),
        }


class DuckDBDialect(Dialect):
    """The local warehouse's engine: views live in one in-memory DuckDB connection."""

    name = "duckdb"

    def quote(self, identifier: str) -> str:
        return '"' + identifier.replace('"', '""') + '"'

    def relation(self, name: str) -> str:
        return name

    def union_all(self, dataset: Dataset, first: str, second: str) -> str:
        # Parquet files written before a catalog field was added lack its column.
        return f"{first} UNION ALL BY NAME {second}"


class BigQueryDialect(Dialect):
    """GoogleSQL, with every relation qualified by the sink's project and dataset."""

    name = "bigquery"
    qualify_prefix = " WHERE TRUE"

    def __init__(self, project: str, dataset: str) -> None:
        self.project = project
        self.dataset = dataset

    def quote(self, identifier: str) -> str:
        return "`" + identifier.replace("\\", "\\\\").replace("`", "\\`") + "`"

    def relation(self, name: str) -> str:
        return self.quote(f"{self.project}.{self.dataset}.{name}")

    def columns(self, dataset: Dataset, alias: str | None = None) -> str:
        prefix = f"{alias}." if alias else ""
        return ", ".join(prefix + self.quote(field.name) for field in dataset.storage_schema)

    def union_all(self, dataset: Dataset, first: str, second: str) -> str:
        return f"({first}) UNION ALL ({second})"

    def unified_sql(
        self, dataset: Dataset, api: str, stream: str, api_match: str | None = None
    ) -> str:
        """The same rows as :meth:`Dialect.unified_sql`, written as windows over the union of
        both tables: BigQuery prunes partitions only by filters it can push down, and an
        anti-join's inner side takes none, so ``NOT EXISTS`` would bill the whole API table.
        Every window here is partitioned by ``_day`` where a key and version live in one day,
        so a day filter reaches both tables' partitions."""
        keys = list(dataset.natural_key)
        if dataset.version_field:
            keys.append(dataset.version_field)
        day = ["_day"] if key_within_day(dataset) or dataset.version_field else []
        q = self.quote
        match = ", ".join(q(k) for k in dict.fromkeys([*day, *window_keys(dataset, keys)]))
        identity_keys = [*day, *window_keys(dataset, keys), "_from_stream"]
        if not dataset.version_field:
            identity_keys.append("_hash_key")
        identity = ", ".join(q(k) for k in dict.fromkeys(identity_keys))
        columns = self.columns(dataset)
        return (
            f"SELECT * EXCEPT (_from_stream) FROM (SELECT {columns}, 0 AS _from_stream FROM {api} "
            f"UNION ALL SELECT {columns}, 1 AS _from_stream FROM {stream}) WHERE TRUE "
            f"QUALIFY _from_stream = 0 OR (COUNTIF(_from_stream = 0) OVER (PARTITION BY {match}) = 0 "
            f"AND row_number() OVER (PARTITION BY {identity} ORDER BY _ingested_utc, _hash_key) = 1)"
        )

    def base_sql(self, dataset: Dataset, api: str) -> str:
        # BigQuery prunes partitions only on the partitioning column: where the settlement
        # date is the partition day, the view reads it from _day, so filters on it prune too.
        if dataset.partition_field == "settlementDate" and "settlementDate" in dataset.field_names:
            return f"SELECT * REPLACE (_day AS {self.quote('settlementDate')}) FROM {api}"
        return super().base_sql(dataset, api)


DUCKDB = DuckDBDialect()


def key_within_day(dataset: Dataset) -> bool:
    """Whether every row of a natural key lies in one partition day.

    True where the day comes from a key column (``settlementDate``, or the partition time field
    such as FREQ's ``measurementTime``), or where the day is the settlement date and the key
    holds the row's time field (an instant belongs to one settlement day). False for datasets
    partitioned by publish time whose key is what was published about (INDGEN, REMIT...):
    their versions arrive on different days, so their windows span days.
    """
    key = set(dataset.natural_key)
    if dataset.partition_field in key:
        return True
    return dataset.partition_field == "settlementDate" and dataset.time_field in key


def day_columns(dataset: Dataset) -> list[str]:
    """Columns fixed by the partition day, to lead a window's PARTITION BY (empty if the key
    spans days). A filter on any of them then reaches the scan below the window."""
    if not key_within_day(dataset):
        return []
    columns = ["_day"]
    if dataset.partition_field == "settlementDate" and "settlementDate" in dataset.field_names:
        columns.append("settlementDate")
    return columns


def window_keys(dataset: Dataset, keys: Sequence[str]) -> list[str]:
    """A window's PARTITION BY: the day columns, then the given keys (no repeats)."""
    return list(dict.fromkeys([*day_columns(dataset), *keys]))


def date_literal(day: dt.date) -> str:
    """A DATE literal both DuckDB and BigQuery read the same way."""
    return f"DATE '{day.isoformat()}'"


def timestamp_literal(instant: dt.datetime) -> str:
    """A UTC TIMESTAMP literal without offset: DuckDB ignores offsets, BigQuery assumes UTC."""
    return f"TIMESTAMP '{instant.astimezone(dt.UTC).strftime('%Y-%m-%d %H:%M:%S.%f')}'"
