"""The production warehouse: BigQuery, one day-partitioned table per dataset, idempotent by
partition.

Objects in the dataset ``BMRS_BQ_PROJECT.BMRS_BQ_DATASET`` (created from the catalog):

    <code>_api        API rows; partitioned by day on ``_day`` (the settlement day), clustered
                      on the natural key; rewritten one partition at a time
    <code>_stream     IRIS rows, same schema and partitioning; only ever appended
    <code>_coverage   one coverage record per day, partitioned on ``date``
    <code>, <code>_latest, <code>_unified   views, the same names and meaning as locally

A chunk load is the base class's rule (read the day, unite, drop exact duplicates) ending in
ONE load job: Parquet made in memory from the Arrow table, into ``<code>_api$YYYYMMDD`` with
WRITE_TRUNCATE. BigQuery swaps the partition in atomically, there is no DML and no scan
cost (the day is read back with ``tabledata.list`` on the same partition, which is free),
and running it again writes the same partition again. Every load is paid for from the
per-table budget in :mod:`worker.sinks.quota` first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import io
import itertools
import logging
import re
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import filelock
import pyarrow as pa
import pyarrow.parquet as pq
import redis
import requests
from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.api_core.retry import exponential_sleep_generator
from google.cloud import bigquery

from worker.cluster.broker import KEY_PREFIX, redis_client
from worker.elexon.catalog import DATASETS, Dataset, get
from worker.elexon.coverage import Coverage
from worker.elexon.dedup import conform
from worker.elexon.settlement import current_settlement_day
from worker.settings import Settings
from worker.sinks.base import QueryError, Sink, SinkConfigError
from worker.sinks.quota import LoadClass, LoadLedger, load_class_of
from worker.sinks.resolved_limits import is_resolved
from worker.sinks.sql_dialect import BigQueryDialect, date_literal

log = logging.getLogger(__name__)

SCOPES = ("https://www.googleapis.com/auth/bigquery",)
LOCK_TTL_S = 900.0  # longer than a load job may take (JOB_TIMEOUT_S), so a live holder keeps it
LOCK_WAIT_S = 900.0
JOB_TIMEOUT_S = 600.0
LOAD_ATTEMPTS = 6
BACKFILL_MAX_WAIT_S = 120.0  # longer waits go back to the caller (a task retries later)
CLUSTER_LIMIT = 4  # BigQuery clusters on at most four columns

# Job errors worth another job: BigQuery's transient reasons (its docs say retry these).
TRANSIENT_REASONS = frozenset(
    {"backendError", "internalError", "rateLimitExceeded", "badGateway", "jobBackendError",
     "jobInternalError"}
)
_TRANSIENT_TYPES = (
    gexc.ServerError,
    gexc.TooManyRequests,
    requests.ConnectionError,
    requests.Timeout,
    ConnectionError,
)

METADATA_DESCRIPTIONS = {
    "_day": "Settlement day (Europe/London) the row belongs to; the partition column",
    "_hash_key": "SHA-256 of the row's catalog fields; equal hashes are one row",
    "_ingested_utc": "When the row was first stored",
    "_source": "Where the row came from: api or iris",
    "_extra": "Fields the catalog does not know yet, as JSON (schema drift)",
}

COVERAGE_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("date", pa.date32()),
        ("status", pa.string()),
        ("rows", pa.int64()),
        ("duplicates_dropped", pa.int64()),
        ("periods_present", pa.int64()),
        ("periods_expected", pa.int64()),
        ("digest", pa.string()),
        ("fetched_utc", pa.timestamp("us", tz="UTC")),
        ("reason", pa.string()),
        ("requests", pa.int64()),
        ("outside_window", pa.int64()),
    ]
)

_PROJECT_RE = re.compile(r"^(?:[a-z][a-z0-9.-]*[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_DATASET_RE = re.compile(r"^[A-Za-z0-9_]{1,1024}$")


class BigQueryLoadError(RuntimeError):
    """A load job BigQuery refused or failed; carries BigQuery's own message."""


def is_transient(exc: BaseException) -> bool:
    """Whether BigQuery asks for the same work to be tried again (5xx, rate limits)."""
    errors = getattr(exc, "errors", None) or []
    reasons = {e.get("reason") for e in errors if isinstance(e, dict)}
    if reasons & TRANSIENT_REASONS:
        return True
    if reasons:
        return False
    return isinstance(exc, _TRANSIENT_TYPES)


def bq_field(field: pa.Field, description: str | None = None) -> bigquery.SchemaField:
    """The BigQuery column of an Arrow field: all NULLABLE, lists of structs REPEATED RECORD."""
    arrow_type = field.type
    if pa.types.is_list(arrow_type):
        inner = arrow_type.value_type
        return bigquery.SchemaField(
            field.name, "RECORD", mode="REPEATED", description=description,
            fields=[bq_field(f) for f in inner],
        )
    if pa.types.is_struct(arrow_type):
        return bigquery.SchemaField(
            field.name, "RECORD", description=description, fields=[bq_field(f) for f in arrow_type]
        )
    if pa.types.is_timestamp(arrow_type):
        kind = "TIMESTAMP"
    elif pa.types.is_date(arrow_type):
        kind = "DATE"
    elif pa.types.is_integer(arrow_type):
        kind = "INTEGER"
    elif pa.types.is_floating(arrow_type):
        kind = "FLOAT"
    elif pa.types.is_boolean(arrow_type):
        kind = "BOOLEAN"
    elif pa.types.is_string(arrow_type):
        kind = "STRING"
    else:
        raise TypeError(f"no BigQuery type for Arrow {arrow_type} (column {field.name})")
    return bigquery.SchemaField(field.name, kind, mode="NULLABLE", description=description)


def cluster_columns(dataset: Dataset) -> list[str]:
    """Natural-key columns to cluster on, at most four.

    ``settlementDate`` is left out where the table is partitioned on it (``_day`` equals it),
    so BOD's five-column key still fits.
    """
    keys = [
        k for k in dataset.natural_key
        if not (k == "settlementDate" and dataset.partition_field == "settlementDate")
    ]
    return keys[:CLUSTER_LIMIT]


def parquet_bytes(table: pa.Table) -> bytes:
    """The table as one Parquet file in memory (what a load job uploads)."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="snappy")
    return sink.getvalue()


def partition_id(day: dt.date) -> str:
    return day.strftime("%Y%m%d")


def coverage_row(coverage: Coverage) -> pa.Table:
    record = dataclasses.asdict(coverage)
    return pa.Table.from_pylist([record], schema=COVERAGE_SCHEMA)


def coverage_from_row(row: dict[str, object]) -> Coverage:
    names = {f.name for f in dataclasses.fields(Coverage)}
    values = {k: v for k, v in row.items() if k in names}
    for name in ("rows", "duplicates_dropped", "requests", "outside_window"):
        values[name] = values.get(name) or 0
    return Coverage(**values)  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class Location:
    """Where the sink lives: project, dataset, location."""

    project: str
    dataset: str
    location: str

    def table_id(self, name: str) -> str:
        return f"{self.project}.{self.dataset}.{name}"


def check_settings(settings: Settings) -> Location:
    """The BigQuery settings, or one error naming every setting that is missing or malformed."""
    problems = []
    for env, value, hint in (
        ("BMRS_BQ_PROJECT", settings.bq_project, "the Google Cloud project id, e.g. my-project"),
        ("BMRS_BQ_DATASET", settings.bq_dataset, "the dataset to hold the tables, e.g. bmrs"),
        ("BMRS_BQ_LOCATION", settings.bq_location, "the dataset's location, e.g. EU or europe-west2"),
    ):
        if not value:
            problems.append(f"{env} is not set ({hint})")
    if settings.bq_project and not _PROJECT_RE.match(settings.bq_project):
        problems.append(
            f"BMRS_BQ_PROJECT={settings.bq_project!r} is not a project id (6-30 lower-case "
            "letters, digits and hyphens; the id, not the display name)"
        )
    if settings.bq_dataset and not _DATASET_RE.match(settings.bq_dataset):
        problems.append(
            f"BMRS_BQ_DATASET={settings.bq_dataset!r} is not a dataset id (letters, digits, "
            "underscores)"
        )
    if problems:
        raise SinkConfigError("BMRS_SINK=bigquery: " + "; ".join(problems))
    assert settings.bq_project and settings.bq_dataset and settings.bq_location
    return Location(settings.bq_project, settings.bq_dataset, settings.bq_location)


def client_from_settings(settings: Settings, where: Location) -> bigquery.Client:
    """A BigQuery client: Application Default Credentials, or anonymous for an emulator."""
    if settings.bq_api_endpoint:
        from google.auth.credentials import AnonymousCredentials

        return bigquery.Client(
            project=where.project,
            location=where.location,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options=ClientOptions(api_endpoint=settings.bq_api_endpoint),
        )
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        credentials, _ = google.auth.default(scopes=SCOPES)  # type: ignore[no-untyped-call]
    except DefaultCredentialsError as exc:
        raise SinkConfigError(
            f"BMRS_SINK=bigquery: no Google credentials ({exc}); set GOOGLE_APPLICATION_CREDENTIALS "
            "to a service-account key file, or run `gcloud auth application-default login`"
        ) from None
    return bigquery.Client(project=where.project, location=where.location, credentials=credentials)


def open_bigquery(settings: Settings) -> BigQueryWarehouse:
    """The sink the settings describe, checked against BigQuery before any work starts."""
    where = check_settings(settings)
    client = client_from_settings(settings, where)
    ledger = None
    lock_client = None
    if settings.broker_url:
        lock_client = redis_client(settings)
        ledger = LoadLedger(lock_client)
    else:
        log.warning(
            "BMRS_BROKER_URL is unset: BigQuery loads are budgeted by nobody and chunk locks "
            "are file locks, which is only safe for one machine"
        )
    sink = BigQueryWarehouse(
        client, where, redis_client=lock_client, ledger=ledger, lock_dir=settings.data_dir / "locks"
    )
    sink.check_dataset()
    return sink


class BigQueryWarehouse(Sink):
    """Day-partitioned BigQuery tables behind the same interface as the local lake."""

    name = "bigquery"

    def __init__(
        self,
        client: bigquery.Client,
        where: Location,
        *,
        redis_client: redis.Redis | None = None,
        ledger: LoadLedger | None = None,
        lock_dir: Path | None = None,
        backfill_max_wait_s: float = BACKFILL_MAX_WAIT_S,
        retry_initial_s: float = 1.0,
    ) -> None:
        self.client = client
        self.where = where
        self.dialect = BigQueryDialect(where.project, where.dataset)
        self.redis = redis_client
        self.ledger = ledger
        self.lock_dir = lock_dir or Path("./data/locks")
        self.backfill_max_wait_s = backfill_max_wait_s
        self.retry_initial_s = retry_initial_s
        self._ready: set[str] = set()
        # Tables and views listed once a process (:meth:`ensure_views`), and the datasets
        # whose views were then found whole.
        self._present: set[str] | None = None
        self._views_seen: set[str] = set()

    # -- set-up ---------------------------------------------------------------------------

    def check_dataset(self) -> None:
        """Create the dataset if it is missing; refuse one in another location."""
        dataset_id = f"{self.where.project}.{self.where.dataset}"
        try:
            found = self.client.get_dataset(dataset_id)
        except gexc.NotFound:
            wanted = bigquery.Dataset(dataset_id)
            wanted.location = self.where.location
            wanted.description = "Elexon BMRS data kept by bmrs-cluster"
            try:
                found = self.client.create_dataset(wanted, exists_ok=True)
            except gexc.GoogleAPICallError as exc:
                raise SinkConfigError(
                    f"cannot create BigQuery dataset {dataset_id} in BMRS_BQ_LOCATION="
                    f"{self.where.location}: {exc.message}"
                ) from None
        except gexc.Forbidden as exc:
            raise SinkConfigError(
                f"the credentials may not read BigQuery dataset {dataset_id} ({exc.message}); "
                "check BMRS_BQ_PROJECT and grant the account BigQuery Data Editor and Job User"
            ) from None
        if found.location and found.location.lower() != self.where.location.lower():
            raise SinkConfigError(
                f"BigQuery dataset {dataset_id} is in {found.location}, but BMRS_BQ_LOCATION="
                f"{self.where.location}; set BMRS_BQ_LOCATION={found.location}"
            )

    def tables_of(self, dataset: Dataset) -> list[bigquery.Table]:
        """The dataset's tables and views as they should be (before its views)."""
        t = dataset.table
        key = set(dataset.natural_key)
        tables = []
        for suffix, what in (("api", "API rows"), ("stream", "IRIS stream rows")):
            schema = []
            for field in dataset.storage_schema:
                note = METADATA_DESCRIPTIONS.get(field.name)
                if field.name in key:
                    note = "Natural key"
                if field.name == dataset.version_field:
                    note = (note + "; " if note else "") + "Version: newest wins in _latest"
                schema.append(bq_field(field, note))
            table = bigquery.Table(self.where.table_id(f"{t}_{suffix}"), schema=schema)
            table.time_partitioning = bigquery.TimePartitioning(
                type_=bigquery.TimePartitioningType.DAY, field="_day"
            )
            table.clustering_fields = cluster_columns(dataset)
            table.description = (
                f"{dataset.code}: {dataset.description}. {what} from {dataset.endpoint}, one "
                f"partition per settlement day ({dataset.partition_date_rule}); natural key "
                f"{', '.join(dataset.natural_key)}. Written by bmrs-cluster; query the views "
                f"{t}, {t}_latest, {t}_unified."
            )
            tables.append(table)
        coverage = bigquery.Table(
            self.where.table_id(f"{t}_coverage"), schema=[bq_field(f) for f in COVERAGE_SCHEMA]
        )
        coverage.time_partitioning = bigquery.TimePartitioning(
            type_=bigquery.TimePartitioningType.DAY, field="date"
        )
        coverage.description = (
            f"{dataset.code}: what each settlement day holds (status, rows, periods), one row "
            "per day, rewritten with the day's data; read by bmrs gaps and the gap sweep"
        )
        tables.append(coverage)
        views = self.dialect.views(
            dataset,
            api=self.dialect.relation(f"{t}_api"),
            stream=self.dialect.relation(f"{t}_stream"),
        )
        view_notes = {
            t: f"{dataset.code}: every stored version of every row (API history)",
            f"{t}_latest": f"{dataset.code}: "
            + ("the resolved limit per unit and instant" if is_resolved(dataset)
               else "newest version per natural key"),
            f"{t}_unified": f"{dataset.code}: API rows plus IRIS rows the API has not delivered yet",
        }
        for name, sql in views.items():
            view = bigquery.Table(self.where.table_id(name))
            view.view_query = sql
            view.description = view_notes[name]
            tables.append(view)
        return tables

    def ensure(self, dataset: Dataset) -> None:
        """Create the dataset's tables and views, or bring them up to date (once a process)."""
        if dataset.code in self._ready:
            return
        for table in self.tables_of(dataset):
            self._ensure_table(table)
        self._ready.add(dataset.code)

    def _ensure_table(self, wanted: bigquery.Table) -> None:
        try:
            found = self.client.get_table(wanted.reference)
        except gexc.NotFound:
            try:
                self.client.create_table(wanted)
                log.info("created BigQuery %s %s", "view" if wanted.view_query else "table",
                         wanted.full_table_id or wanted.table_id)
                return
            except gexc.Conflict:  # another worker created it first
                found = self.client.get_table(wanted.reference)
        if wanted.view_query is not None:
            if found.view_query != wanted.view_query or found.description != wanted.description:
                found.view_query = wanted.view_query
                found.description = wanted.description
                self.client.update_table(found, ["view_query", "description"])
            return
        partitioning = found.time_partitioning
        want_field = wanted.time_partitioning.field
        if partitioning is None or partitioning.field != want_field:
            raise SinkConfigError(
                f"BigQuery table {wanted.table_id} exists but is not partitioned by day on "
                f"{want_field}; rename or drop it so bmrs-cluster can create it"
            )
        have = {field.name.lower() for field in found.schema}
        missing = [field for field in wanted.schema if field.name.lower() not in have]
        if missing:
            # Schema drift: a catalog field newer than the table becomes a NULLABLE column.
            found.schema = [*found.schema, *missing]
            self.client.update_table(found, ["schema"])
            log.warning(
                "schema drift: BigQuery table %s gains nullable column(s) %s",
                wanted.table_id, ", ".join(f.name for f in missing),
            )

    def ensure_views(self, sql: str | None = None) -> None:
        """Make sure the views a query names exist (every dataset's when ``sql`` is None).

        One listing a process: a dataset found whole then, or ensured since, is not looked
        at again, so a dashboard refresh of a dozen queries costs no table requests.
        """
        if self._present is None:
            self._present = self._table_names()
        for dataset in DATASETS:
            if dataset.code in self._ready or dataset.code in self._views_seen:
                continue
            if sql is not None and not re.search(rf"\b{re.escape(dataset.table)}(?:_latest|_unified)?\b", sql):
                continue
            names = {t.table_id for t in self.tables_of(dataset)}
            if not names <= self._present:
                self.ensure(dataset)
            self._views_seen.add(dataset.code)

    def _table_names(self) -> set[str]:
        """Every table and view in the sink's dataset: one listing, no query (free)."""
        return {item.table_id for item in self.client.list_tables(
            f"{self.where.project}.{self.where.dataset}", page_size=1000)}

    # -- the Sink interface ---------------------------------------------------------------

    def chunk_lock(self, dataset: Dataset, day: dt.date) -> contextlib.AbstractContextManager[None]:
        """A Redis lock across machines (with a TTL), or a file lock without a broker."""
        name = f"{self.where.table_id(dataset.table)}:{day.isoformat()}"
        if self.redis is not None:
            return self.redis.lock(  # type: ignore[return-value]
                f"{KEY_PREFIX}sink-lock:{name}", timeout=LOCK_TTL_S, blocking_timeout=LOCK_WAIT_S,
                thread_local=False,
            )
        path = self.lock_dir / "bigquery" / f"{name.replace(':', '_')}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(path, timeout=LOCK_WAIT_S)  # type: ignore[return-value]

    def read_day(self, dataset: Dataset, day: dt.date) -> pa.Table | None:
        """Only that partition, through tabledata.list (no query, no scan cost)."""
        self.ensure(dataset)  # a column added since the table was made is readable
        source = f"{self.where.table_id(dataset.table + '_api')}${partition_id(day)}"
        fields = [bq_field(f) for f in dataset.storage_schema]
        try:
            rows = self.client.list_rows(source, selected_fields=fields)
            table = rows.to_arrow(create_bqstorage_client=False)
        except gexc.NotFound:
            return None
        if table.num_rows == 0:
            return None
        return conform(dataset, table)

    def write_day(self, dataset: Dataset, day: dt.date, table: pa.Table) -> None:
        self.ensure(dataset)
        self._load(
            dataset, f"{dataset.table}_api", day, table,
            disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
            load_class=load_class_of(day, current_settlement_day()),
            job_ids=self._random_job_ids(dataset, "api", day),
        )

    def read_coverage(self, dataset: Dataset, days: Iterable[dt.date]) -> dict[dt.date, Coverage]:
        wanted = set(days)
        if not wanted:
            return {}
        sql = (
            f"SELECT * FROM {self.dialect.relation(dataset.table + '_coverage')} "
            f"WHERE date BETWEEN {date_literal(min(wanted))} AND {date_literal(max(wanted))}"
        )
        try:
            found = self._query(sql)
        except QueryError:
            if not self._exists(f"{dataset.table}_coverage"):
                return {}
            raise
        records = (coverage_from_row(row) for row in found.to_pylist())
        return {c.date: c for c in records if c.date in wanted}

    def newest_day(self, dataset: Dataset) -> dt.date | None:
        """From the coverage table (one row per day, a few KB), never the data tables."""
        if not self._exists(f"{dataset.table}_coverage"):
            return None
        found = self._query(
            f"SELECT MAX(date) AS newest FROM {self.dialect.relation(dataset.table + '_coverage')} "
            "WHERE `rows` > 0"
        )
        newest = found.column("newest")[0].as_py() if found.num_rows else None
        return newest if isinstance(newest, dt.date) else None

    # -- reads across datasets: one query each, however many datasets (see Sink) -----------

    def newest_days(self, datasets: Iterable[Dataset]) -> dict[str, dt.date | None]:
        """Each dataset's newest day with rows, from the coverage tables, in one query."""
        chosen = list(datasets)
        present = self._table_names() if chosen else set()
        branches = [
            f"SELECT '{d.code}' AS code, MAX(date) AS newest "
            f"FROM {self.dialect.relation(d.table + '_coverage')} WHERE `rows` > 0"
            for d in chosen if f"{d.table}_coverage" in present
        ]
        found = self._union(branches)
        newest = {row["code"]: row["newest"] for row in found}
        return {
            d.code: newest[d.code] if isinstance(newest.get(d.code), dt.date) else None
            for d in chosen
        }

    def day_bounds_of(
        self, days: Mapping[Dataset, dt.date]
    ) -> dict[str, dict[str, tuple[object, object]] | None]:
        """(min, max) of each dataset's time and period fields on its day, in one query over
        those partitions only (the two columns of one day each: a few KB scanned)."""
        present = self._table_names() if days else set()
        branches = []
        for dataset, day in days.items():
            if f"{dataset.table}_api" not in present:
                continue
            time, period = dataset.time_field, dataset.period_field
            branches.append(
                f"SELECT '{dataset.code}' AS code, COUNT(*) AS row_count, "
                + (f"MIN({time}) AS time_low, MAX({time}) AS time_high, " if time else
                   "CAST(NULL AS TIMESTAMP) AS time_low, CAST(NULL AS TIMESTAMP) AS time_high, ")
                + (f"CAST(MIN({period}) AS INT64) AS period_low, "
                   f"CAST(MAX({period}) AS INT64) AS period_high " if period else
                   "CAST(NULL AS INT64) AS period_low, CAST(NULL AS INT64) AS period_high ")
                + f"FROM {self.dialect.relation(dataset.table + '_api')} "
                f"WHERE _day = {date_literal(day)}"
            )
        found = {row["code"]: row for row in self._union(branches)}
        bounds: dict[str, dict[str, tuple[object, object]] | None] = {}
        for dataset in days:
            row = found.get(dataset.code)
            if row is None or not row["row_count"]:
                bounds[dataset.code] = None  # the caller reads the day (and finds it empty)
                continue
            kept: dict[str, tuple[object, object]] = {}
            if dataset.time_field:
                kept[dataset.time_field] = (row["time_low"], row["time_high"])
            if dataset.period_field:
                kept[dataset.period_field] = (row["period_low"], row["period_high"])
            bounds[dataset.code] = kept
        return bounds

    def read_coverage_spans(
        self, spans: Mapping[Dataset, tuple[dt.date, dt.date]]
    ) -> dict[str, dict[dt.date, Coverage]]:
        """Coverage of each dataset over its own days, from all coverage tables in one query."""
        present = self._table_names() if spans else set()
        columns = ", ".join(f"`{name}`" for name in COVERAGE_SCHEMA.names)
        branches = [
            f"SELECT {columns} FROM {self.dialect.relation(d.table + '_coverage')} "
            f"WHERE date BETWEEN {date_literal(first)} AND {date_literal(last)}"
            for d, (first, last) in spans.items()
            if f"{d.table}_coverage" in present and first <= last
        ]
        found: dict[str, dict[dt.date, Coverage]] = {d.code: {} for d in spans}
        try:
            rows = self._union(branches)
        except QueryError as exc:
            # A coverage table older than a column of COVERAGE_SCHEMA (not written since the
            # column came) cannot join the union: ask per dataset, as before, and say so.
            log.warning("coverage of %d datasets in one query refused (%s); reading them one "
                        "by one", len(branches), exc)
            return super().read_coverage_spans(spans)
        for row in rows:
            record = coverage_from_row(row)
            if record.dataset in found:
                found[record.dataset][record.date] = record
        return found

    def _union(self, branches: list[str]) -> list[dict[str, object]]:
        """Rows of the branches' UNION ALL, as one query (none when there is no branch)."""
        if not branches:
            return []
        return self._query(" UNION ALL ".join(f"({b})" for b in branches)).to_pylist()

    def write_coverage(self, coverage: Coverage) -> None:
        dataset = get(coverage.dataset)
        self.ensure(dataset)
        self._load(
            dataset, f"{dataset.table}_coverage", coverage.date, coverage_row(coverage),
            disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
            load_class=load_class_of(coverage.date, current_settlement_day()),
            job_ids=self._random_job_ids(dataset, "coverage", coverage.date),
        )

    def query(self, sql: str) -> pa.Table:
        """SQL over the views; unqualified names resolve in ``BMRS_BQ_DATASET``."""
        self.ensure_views(sql)
        return self._query(sql)

    def append_stream(self, dataset: Dataset, day: dt.date, table: pa.Table, batch_id: str) -> bool:
        """Append one IRIS batch to ``<code>_stream$YYYYMMDD``, once.

        The job id is derived from the batch's content, so a redelivered batch finds its own
        earlier job and is not loaded again: BigQuery refuses a second job of the same id.
        """
        self.ensure(dataset)
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", batch_id)[:200]
        base = f"bmrs_{self.where.dataset}_{dataset.table}_stream_{partition_id(day)}_{safe}"
        return self._load(
            dataset, f"{dataset.table}_stream", day, conform(dataset, table),
            disposition=bigquery.WriteDisposition.WRITE_APPEND,
            load_class=LoadClass.IRIS,
            job_ids=(f"{base}_{attempt}" for attempt in itertools.count()),
            deterministic=True,
        )

    def prune_stream(self, dataset: Dataset, *, before: dt.date) -> list[dt.date]:
        """Drop stream partitions before ``before`` whose API day is complete (partition
        deletes: no DML, no load budget)."""
        if not self._exists(f"{dataset.table}_stream"):
            return []
        found = self._query(
            f"SELECT DISTINCT _day FROM {self.dialect.relation(dataset.table + '_stream')} "
            f"WHERE _day < {date_literal(before)}"
        )
        days = sorted(found.column("_day").to_pylist())
        coverage = self.read_coverage(dataset, days)
        pruned = []
        for day in days:
            if day in coverage and coverage[day].status == "complete":
                self.client.delete_table(
                    f"{self.where.table_id(dataset.table + '_stream')}${partition_id(day)}",
                    not_found_ok=True,
                )
                pruned.append(day)
        return pruned

    # -- jobs -----------------------------------------------------------------------------

    def _random_job_ids(self, dataset: Dataset, kind: str, day: dt.date) -> Iterator[str]:
        prefix = f"bmrs_{self.where.dataset}_{dataset.table}_{kind}_{partition_id(day)}"
        while True:
            yield f"{prefix}_{uuid.uuid4().hex}"

    def _load(
        self,
        dataset: Dataset,
        table_name: str,
        day: dt.date,
        rows: pa.Table,
        *,
        disposition: str,
        load_class: LoadClass,
        job_ids: Iterator[str],
        deterministic: bool = False,
    ) -> bool:
        """Run one load job into ``table_name$YYYYMMDD``, retrying BigQuery's transient errors.

        Returns False only for a deterministic job id that an earlier delivery already ran
        successfully (nothing loaded now).
        """
        destination = f"{self.where.table_id(table_name)}${partition_id(day)}"
        what = f"{dataset.code} {day} into {destination}"
        payload = parquet_bytes(rows)
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=disposition,
            create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
        )
        options = bigquery.ParquetOptions()
        options.enable_list_inference = True  # REMIT's outage profiles: REPEATED RECORD
        config.parquet_options = options
        delays = exponential_sleep_generator(self.retry_initial_s, 32.0, 2.0)
        last_error: BaseException | None = None
        for job_id in itertools.islice(job_ids, LOAD_ATTEMPTS):
            if deterministic:
                earlier = self._find_job(job_id)
                if earlier is not None:
                    if self._succeeded(earlier):
                        log.info("%s: batch already loaded by job %s", what, job_id)
                        return False
                    continue  # that delivery's job failed: the next id is this one's
            self._spend(dataset, table_name, load_class)
            try:
                job = self._start_load(payload, destination, config, job_id)
                job.result(timeout=JOB_TIMEOUT_S)
                return True
            except gexc.GoogleAPICallError as exc:
                if not is_transient(exc):
                    raise BigQueryLoadError(_job_message(what, job_id, exc)) from None
                last_error = exc
            except (requests.ConnectionError, requests.Timeout, ConnectionError) as exc:
                last_error = exc
            delay = next(delays)
            log.warning("%s: transient BigQuery error, new job in %.1f s: %s", what, delay, last_error)
            time.sleep(delay)
        raise BigQueryLoadError(
            f"BigQuery load of {what} still failing after {LOAD_ATTEMPTS} jobs: {last_error}; "
            "BigQuery's service status may explain it; the chunk can simply be run again"
        )

    def _start_load(
        self, payload: bytes, destination: str, config: bigquery.LoadJobConfig, job_id: str
    ) -> bigquery.LoadJob:
        try:
            return self.client.load_table_from_file(
                io.BytesIO(payload), destination, size=len(payload), job_id=job_id,
                job_config=config, location=self.where.location,
            )
        except gexc.Conflict:
            # Our own job: the upload's response was lost and the client sent it again.
            return self.client.get_job(job_id, location=self.where.location)  # type: ignore[return-value]

    def _find_job(self, job_id: str) -> bigquery.LoadJob | None:
        try:
            return self.client.get_job(job_id, location=self.where.location)  # type: ignore[return-value]
        except gexc.NotFound:
            return None

    @staticmethod
    def _succeeded(job: bigquery.LoadJob) -> bool:
        try:
            job.result(timeout=JOB_TIMEOUT_S)
        except gexc.GoogleAPICallError:
            return False
        return True

    def _spend(self, dataset: Dataset, table_name: str, load_class: LoadClass) -> None:
        if self.ledger is None:
            return
        max_wait = {
            LoadClass.REALTIME: 0.0,
            LoadClass.BACKFILL: self.backfill_max_wait_s,
            LoadClass.IRIS: self.ledger.budget.iris_interval_s * 1.5,
        }[load_class]
        self.ledger.acquire(
            self.where.table_id(table_name), load_class, polled=dataset.realtime, max_wait_s=max_wait
        )

    def _query(self, sql: str) -> pa.Table:
        config = bigquery.QueryJobConfig(
            default_dataset=f"{self.where.project}.{self.where.dataset}"
        )
        try:
            rows = self.client.query_and_wait(sql, job_config=config, location=self.where.location)
            return rows.to_arrow(create_bqstorage_client=False)
        except gexc.GoogleAPICallError as exc:
            raise QueryError(f"BigQuery refused the query: {exc.message}") from None

    def _exists(self, name: str) -> bool:
        try:
            self.client.get_table(self.where.table_id(name))
        except gexc.NotFound:
            return False
        return True


def _job_message(what: str, job_id: str, exc: gexc.GoogleAPICallError) -> str:
    details = [e.get("message") for e in (exc.errors or []) if isinstance(e, dict)]
    details = [d for d in dict.fromkeys(details) if d and d != exc.message]
    extra = f" ({'; '.join(details[:3])})" if details else ""
    return f"BigQuery load of {what} failed: {exc.message}{extra} [job {job_id}]"
