"""The embedded warehouse: a Parquet lake, one file per dataset-day, read through DuckDB.

Layout under ``BMRS_DATA_DIR``::

    lake/_format.json                         format version of everything below
    lake/<code>/date=YYYY-MM-DD/part-<generation>.parquet  the day's rows (all versions, no
                                              exact duplicates); the highest generation is current
    lake/<code>/_manifest.json                each stored day's current file, row count and the
                                              bounds of its day columns (maintained at load)
    lake/<code>/date=YYYY-MM-DD/coverage.json the day's coverage record
    lake/_stream/<code>/date=YYYY-MM-DD/<seq>-batch-<batch_id>.parquet  IRIS rows, per new batch
    locks/<code>/YYYY-MM-DD.lock              per dataset-day file locks
    locks/_stream/<code>/YYYY-MM-DD.lock      per dataset-day stream locks

Many processes may write and read at once. A day is rewritten only under its file lock, as a
new file of the next generation (written to a temporary name, then renamed: never torn).
Files are never changed in place: a reader resolves each day to its current generation once,
when its query starts, and reads that immutable file even if a writer moves on meanwhile
(DuckDB reopens files between planning and scanning, so replacing a file in place made a
concurrent reader fail on mismatched metadata). Superseded generations are deleted once they
have been superseded for longer than any query runs (:data:`RETIRE_AFTER_S`).

Years of history cost what a query reads (issue 13). Each dataset keeps a manifest of its days'
current files, rewritten (atomically, under a dataset-wide lock held for milliseconds) by every
day load, so opening the warehouse reads one small file per dataset a query names instead of
listing every day. Each dataset's rows are an Arrow dataset with one fragment per day file whose
guarantee is the bounds the manifest recorded (``_day``, ``settlementDate``, the time and
period fields): a filter on any of them skips the other days' files without opening them.
Views are made only for the datasets a query names (:func:`referenced`), so ``select 1``
costs the same with 16 datasets or 95, and with 30 days or 4 years.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import filelock
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from worker.elexon.catalog import DATASETS, Dataset, get
from worker.elexon.coverage import Coverage
from worker.elexon.dedup import conform, drop_duplicates
from worker.sinks.base import Sink
from worker.sinks.sql_dialect import DUCKDB

FORMAT_VERSION = 2
# Format 1 lakes lack manifests: they are built on first use (one listing), then kept.
READABLE_FORMATS = (1, 2)
MANIFEST_FILE = "_manifest.json"
PART_PREFIX = "part-"
# Superseded day files live this long, so queries that resolved them can still read them.
RETIRE_AFTER_S = 600.0
COVERAGE_FILE = "coverage.json"
LOCK_TIMEOUT_S = 600.0
STREAM_DIR = "_stream"
# Merge a stream day's batch files into one when it holds more, to keep reads fast.
STREAM_COMPACT_FILES = 64


class FormatVersionError(RuntimeError):
    """The lake on disk was written by an incompatible version of this program."""


def atomic_write(path: Path, payload: bytes | None = None, table: pa.Table | None = None) -> None:
    """Write a file whole or not at all: temp file in the same folder, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            if table is not None:
                pq.write_table(table, handle, compression="zstd")
            else:
                handle.write(payload or b"")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


class LocalWarehouse(Sink):
    """Parquet + DuckDB, the default sink."""

    name = "local"

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir)
        self.lake = self.root / "lake"
        self._check_format()
        # query()'s connection, kept between queries: a new DuckDB database costs tens of
        # milliseconds, and a refresh of the dashboard runs a few dozen queries.
        self._con: duckdb.DuckDBPyConnection | None = None
        self._con_lock = threading.Lock()
        self._con_pid = os.getpid()
        self._view_states: dict[str, tuple[object, ...]] = {}
        self._manifests: dict[str, tuple[tuple[int, ...], dict[dt.date, dict[str, Any]]]] = {}

    def _check_format(self) -> None:
        marker = self.lake / "_format.json"
        if marker.exists():
            found = json.loads(marker.read_text()).get("format_version")
            if found not in READABLE_FORMATS:
                raise FormatVersionError(
                    f"{self.lake} holds lake format {found}, this program reads format "
                    f"{FORMAT_VERSION}; use a matching version or a new BMRS_DATA_DIR"
                )
            if found == FORMAT_VERSION:
                return
            # Format 1: every day load from now on keeps the manifests, and a missing one is
            # built from a listing. The new marker keeps older programs (which would not keep
            # manifests) from writing here.
        atomic_write(marker, json.dumps({"format_version": FORMAT_VERSION}).encode())

    def day_dir(self, dataset: Dataset, day: dt.date) -> Path:
        return self.lake / dataset.table / f"date={day.isoformat()}"

    def chunk_lock(self, dataset: Dataset, day: dt.date) -> filelock.FileLock:
        path = self.root / "locks" / dataset.table / f"{day.isoformat()}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(path, timeout=LOCK_TIMEOUT_S)

    def read_day(self, dataset: Dataset, day: dt.date) -> pa.Table | None:
        parts = day_parts(self.day_dir(dataset, day))
        return pq.read_table(parts[-1]) if parts else None

    def write_day(self, dataset: Dataset, day: dt.date, table: pa.Table) -> None:
        """Write the day's next generation (call under the chunk lock), record it in the
        manifest, retire old ones."""
        folder = self.day_dir(dataset, day)
        parts = day_parts(folder)
        generation = time.time_ns()
        if parts:
            generation = max(generation, _generation(parts[-1]) + 1)
        path = folder / f"{PART_PREFIX}{generation:020d}.parquet"
        atomic_write(path, table=table)
        entry = manifest_entry(dataset, path, table)
        with self._manifest_lock(dataset):
            days = self._read_manifest(dataset)
            if days is None:
                days = self._listed_manifest(dataset)
            days[day.isoformat()] = entry
            self._write_manifest(dataset, days)
        retire_superseded(day_parts(folder))

    # -- the manifest: each day's current file, so readers never list the history ----------

    def _manifest_path(self, dataset: Dataset) -> Path:
        return self.lake / dataset.table / MANIFEST_FILE

    def _manifest_lock(self, dataset: Dataset) -> filelock.FileLock:
        path = self.root / "locks" / dataset.table / "_manifest.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(path, timeout=LOCK_TIMEOUT_S)

    def _read_manifest(self, dataset: Dataset) -> dict[str, dict[str, Any]] | None:
        try:
            raw = self._manifest_path(dataset).read_bytes()
        except FileNotFoundError:
            return None
        days: dict[str, dict[str, Any]] = orjson.loads(raw)["days"]
        return days

    def _write_manifest(self, dataset: Dataset, days: dict[str, dict[str, Any]]) -> None:
        ordered = dict(sorted(days.items()))
        atomic_write(self._manifest_path(dataset), orjson.dumps({"days": ordered}))

    def _listed_manifest(
        self, dataset: Dataset, known: dict[str, dict[str, Any]] | None = None
    ) -> dict[str, dict[str, Any]]:
        """The manifest rebuilt from a listing of the day folders (a format 1 lake, or a repair
        after a writer died between its day file and its manifest update); reads the bounds
        from each current file that ``known`` does not already name."""
        days: dict[str, dict[str, Any]] = {}
        for folder in sorted((self.lake / dataset.table).glob("date=*")):
            parts = day_parts(folder)
            name = folder.name.removeprefix("date=")
            entry = (known or {}).get(name)
            if parts and entry and entry["file"] == f"{folder.name}/{parts[-1].name}":
                days[name] = entry
            elif parts:
                held = set(pq.read_schema(parts[-1]).names)
                columns = [c for c in bound_columns(dataset) if c in held]
                table = pq.read_table(parts[-1], columns=columns)
                days[folder.name.removeprefix("date=")] = manifest_entry(
                    dataset, parts[-1], table, rows=pq.ParquetFile(parts[-1]).metadata.num_rows
                )
        return days

    def manifest(self, dataset: Dataset) -> dict[dt.date, dict[str, Any]]:
        """Each stored day's current file (``file``, relative to the dataset folder), ``rows``
        and ``bounds`` (per day column: min, max, nulls); one small file read, none while the
        manifest and the dataset folder are unchanged. Do not modify what it returns."""
        folder = self.lake / dataset.table
        try:
            found = self._manifest_path(dataset).stat()
            held = folder.stat()
        except FileNotFoundError:
            found = None
        if found is not None:
            key = (found.st_ino, found.st_mtime_ns, found.st_size, held.st_mtime_ns)
            cached = self._manifests.get(dataset.code)
            if cached is not None and cached[0] == key:
                return cached[1]
        days = self._read_manifest(dataset)
        if days is None:
            if not folder.is_dir():
                return {}
            with self._manifest_lock(dataset):
                days = self._read_manifest(dataset)
                if days is None:
                    days = self._listed_manifest(dataset)
                    self._write_manifest(dataset, days)
        # A day folder deleted by hand (to drop a day) leaves its entry behind: one listing of
        # the dataset folder keeps readers from failing on it.
        present = set(os.listdir(folder))
        # Kept per day: the file, its rows and only the bounds a view prunes by (the partition
        # field's, where it is a timestamp): four years of full bounds cost tens of MB.
        kept = dataset.partition_field if dataset.partition_field != "settlementDate" else None
        result = {
            dt.date.fromisoformat(day): {
                "file": entry["file"],
                "rows": entry["rows"],
                "bounds": {kept: entry["bounds"][kept]} if kept in entry["bounds"] else {},
            }
            for day, entry in days.items()
            if entry["file"].partition("/")[0] in present
        }
        newest = max((day for day, entry in result.items() if entry["rows"]), default=None)
        if newest is not None:  # what freshness asks for, kept whole
            result[newest]["bounds"] = days[newest.isoformat()]["bounds"]
        del days
        if found is not None:
            self._manifests[dataset.code] = (key, result)
        return result

    def newest_day(self, dataset: Dataset) -> dt.date | None:
        """The last stored day with rows (from the manifest: no scan, however old it is)."""
        days = [day for day, entry in self.manifest(dataset).items() if entry["rows"]]
        return max(days) if days else None

    def day_bounds(self, dataset: Dataset, day: dt.date) -> dict[str, tuple[object, object]] | None:
        entry = self.manifest(dataset).get(day)
        if entry is None:
            return None
        if day != self.newest_day(dataset):  # only the newest day's bounds are kept whole
            entry = (self._read_manifest(dataset) or {}).get(day.isoformat())
            if entry is None:
                return None
        return {
            column: (bound_value(dataset, column, low), bound_value(dataset, column, high))
            for column, (low, high, _) in entry["bounds"].items()
        }

    def vacuum(self) -> int:
        """Repair each manifest from a listing, then delete every superseded day file past its
        grace time; returns how many files went."""
        removed = 0
        for dataset in DATASETS:
            if (self.lake / dataset.table).is_dir():
                with self._manifest_lock(dataset):
                    known = self._read_manifest(dataset)
                    self._write_manifest(dataset, self._listed_manifest(dataset, known))
            for folder in (self.lake / dataset.table).glob("date=*"):
                with self.chunk_lock(dataset, dt.date.fromisoformat(folder.name[5:])):
                    removed += retire_superseded(day_parts(folder))
            for folder in (self.lake / STREAM_DIR / dataset.table).glob("date=*"):
                with self.stream_lock(dataset, dt.date.fromisoformat(folder.name[5:])):
                    removed += retire_stream(folder)
        return removed

    def read_coverage(self, dataset: Dataset, days: Iterable[dt.date]) -> dict[dt.date, Coverage]:
        found: dict[dt.date, Coverage] = {}
        if not (self.lake / dataset.table).is_dir():
            return found  # never loaded: no day to open
        for day in days:
            try:
                raw = (self.day_dir(dataset, day) / COVERAGE_FILE).read_bytes()
            except FileNotFoundError:
                continue
            found[day] = Coverage.from_json(orjson.loads(raw))
        return found

    def write_coverage(self, coverage: Coverage) -> None:
        path = self.day_dir(get(coverage.dataset), coverage.date) / COVERAGE_FILE
        atomic_write(path, orjson.dumps(coverage.to_json(), option=orjson.OPT_INDENT_2))

    def stored_days(self, dataset: Dataset) -> Iterator[dt.date]:
        """Days that have a data file, in order."""
        yield from sorted(self.manifest(dataset))

    def current_files(self, dataset: Dataset) -> list[Path]:
        """The current generation of every stored day of a dataset."""
        folder = self.lake / dataset.table
        return [folder / entry["file"] for _, entry in sorted(self.manifest(dataset).items())]

    def stream_dir(self, dataset: Dataset, day: dt.date) -> Path:
        return self.lake / STREAM_DIR / dataset.table / f"date={day.isoformat()}"

    def stream_lock(self, dataset: Dataset, day: dt.date) -> filelock.FileLock:
        path = self.root / "locks" / STREAM_DIR / dataset.table / f"{day.isoformat()}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(path, timeout=LOCK_TIMEOUT_S)

    def read_stream_day(self, dataset: Dataset, day: dt.date) -> pa.Table | None:
        """Every stream row stored for a day (each distinct row once), or None."""
        files = stream_current(stream_parts(self.stream_dir(dataset, day)))
        if not files:
            return None
        parts = [conform(dataset, pq.read_table(path)) for path in files]
        return drop_duplicates(pa.concat_tables(parts))[0]

    def append_stream(self, dataset: Dataset, day: dt.date, table: pa.Table, batch_id: str) -> bool:
        """Write the batch's rows the day's stream lacks as ``<seq>-batch-<batch_id>.parquet``.

        Idempotent twice over: a batch id already written is skipped, and rows whose hash
        the day already holds are dropped, so a message redelivered inside a different
        batch still lands once. The lock serialises writers of the same day only.
        """
        folder = self.stream_dir(dataset, day)
        with self.stream_lock(dataset, day):
            parts = stream_parts(folder)
            if any(path.name.endswith(f"-batch-{batch_id}.parquet") for path in parts):
                return False
            current = stream_current(parts)
            fresh, _ = drop_duplicates(conform(dataset, table))
            if current:
                held = pa.concat_tables(
                    [pq.read_table(path, columns=["_hash_key"]) for path in current]
                ).column("_hash_key")
                fresh = fresh.filter(pc.invert(pc.is_in(fresh.column("_hash_key"), held)))
            if fresh.num_rows == 0:
                return False
            atomic_write(folder / _stream_name(parts, f"batch-{batch_id}"), table=fresh)
            if len(current) + 1 > STREAM_COMPACT_FILES:
                self._compact_stream(dataset, day)
            retire_stream(folder)
            return True

    def _compact_stream(self, dataset: Dataset, day: dt.date) -> None:
        """Merge a day's current files into one that supersedes them (under the stream lock).

        Nothing is deleted here: readers that resolved the old files keep reading them, and
        :func:`retire_stream` removes them once they have been superseded long enough.
        """
        folder = self.stream_dir(dataset, day)
        merged = self.read_stream_day(dataset, day)
        if merged is not None:
            atomic_write(folder / _stream_name(stream_parts(folder), "compact"), table=merged)

    def stream_days(self, dataset: Dataset) -> Iterator[dt.date]:
        """Days that hold stream rows, in order."""
        for folder in sorted((self.lake / STREAM_DIR / dataset.table).glob("date=*")):
            if stream_current(stream_parts(folder)):
                yield dt.date.fromisoformat(folder.name.removeprefix("date="))

    def current_stream_files(self, dataset: Dataset) -> list[Path]:
        """The files holding a dataset's current stream rows, every day."""
        files: list[Path] = []
        for folder in sorted((self.lake / STREAM_DIR / dataset.table).glob("date=*")):
            files.extend(stream_current(stream_parts(folder)))
        return files

    def prune_stream(self, dataset: Dataset, *, before: dt.date) -> list[dt.date]:
        """Drop the stream rows of days before ``before`` whose API chunk is complete:
        the API history now holds that day, so ``<code>_unified`` no longer needs them.

        A ``pruned`` marker supersedes the day's files; they go once readers are done."""
        candidates = [day for day in self.stream_days(dataset) if day < before]
        coverage = self.read_coverage(dataset, candidates)
        pruned = []
        for day in candidates:
            if day in coverage and coverage[day].status == "complete":
                folder = self.stream_dir(dataset, day)
                with self.stream_lock(dataset, day):
                    marker = folder / _stream_name(stream_parts(folder), PRUNED)
                    atomic_write(marker, table=dataset.storage_schema.empty_table())
                    retire_stream(folder)
                pruned.append(day)
        return pruned

    def query(self, sql: str) -> pa.Table:
        """Run SQL over the views of the datasets it names, each resolved to its current files
        as the query starts.

        One connection serves this sink's queries, one at a time: the views of a dataset are
        made again only when its manifest, its folder or its stream files changed since."""
        with self._con_lock:
            if self._con is None or self._con_pid != os.getpid():  # never share across fork
                self._con_pid = os.getpid()
                self._con = duckdb.connect()
                self._con.execute("SET TimeZone = 'UTC'")
                self._view_states.clear()
            for dataset in referenced(sql):
                state = self._view_state(dataset)
                if self._view_states.get(dataset.code) != state:
                    self._create_views(self._con, dataset)
                    self._view_states[dataset.code] = state
            return self._con.sql(sql).to_arrow_table()

    def _view_state(self, dataset: Dataset) -> tuple[object, ...]:
        """What the views of a dataset were made from: a load rewrites the manifest, a day
        folder deleted by hand changes the dataset folder, IRIS adds stream files."""
        state: list[object] = []
        for path in (self._manifest_path(dataset), self.lake / dataset.table):
            try:
                found = path.stat()
                state.append((found.st_ino, found.st_mtime_ns, found.st_size))
            except FileNotFoundError:
                state.append(None)
        streams = self.current_stream_days(dataset)
        state.append(tuple((day, tuple(files)) for day, files in streams.items()))
        return tuple(state)

    def connect(self, datasets: Sequence[Dataset] | None = None) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with the views of ``datasets`` (default: every one)
        over the lake, each day resolved to its current file now: later loads do not change
        what this connection reads."""
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        for dataset in DATASETS if datasets is None else datasets:
            self._create_views(con, dataset)
        return con

    def _create_views(self, con: duckdb.DuckDBPyConnection, dataset: Dataset) -> None:
        """``<code>``, ``<code>_latest`` and ``<code>_unified``; the Arrow datasets they read
        are owned by the views, so no internal name is left for ``SHOW TABLES`` to list."""
        table = dataset.table
        manifest = self.manifest(dataset)
        folder = self.lake / table
        base = f"{folder}/"  # string joins: a Path per day costs more than the rest here
        api_rows = arrow_rows(  # noqa: F841 - read by name by the SQL below
            dataset, folder, [(day, base + e["file"], e["bounds"]) for day, e in manifest.items()]
        )
        con.sql(day_select(dataset, "api_rows")).create_view(table, replace=True)
        con.execute(f"CREATE OR REPLACE VIEW {table}_latest AS {DUCKDB.latest_sql(dataset, table)}")
        stream_days = self.current_stream_days(dataset)
        if not stream_days:
            con.execute(f"CREATE OR REPLACE VIEW {table}_unified AS SELECT * FROM {table}")
            return
        stream_folder = self.lake / STREAM_DIR / table
        stream_rows = arrow_rows(  # noqa: F841
            dataset, stream_folder,
            [(day, path, None) for day, files in stream_days.items() for path in files],
        )
        # The stream rows are compared with the API rows of the stream's own days only, so a
        # query of any day reads a handful of API files for that, not the whole history.
        api_match = arrow_rows(  # noqa: F841
            dataset, folder,
            [(day, base + manifest[day]["file"], manifest[day]["bounds"])
             for day in stream_days if day in manifest],
        )
        unified = DUCKDB.unified_sql(
            dataset, table, f"({day_select(dataset, 'stream_rows')})",
            api_match=f"({day_select(dataset, 'api_match')})",
        )
        con.sql(unified).create_view(f"{table}_unified", replace=True)

    def current_stream_days(self, dataset: Dataset) -> dict[dt.date, list[Path]]:
        """Each stream day's current files (stream days are few: retention prunes them)."""
        days: dict[dt.date, list[Path]] = {}
        for folder in sorted((self.lake / STREAM_DIR / dataset.table).glob("date=*")):
            files = stream_current(stream_parts(folder))
            if files:
                days[dt.date.fromisoformat(folder.name.removeprefix("date="))] = files
        return days


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Statements that list or describe the catalog get every dataset's views.
_CATALOG_WORDS = frozenset(
    {"show", "describe", "summarize", "information_schema", "duckdb_views", "duckdb_tables",
     "duckdb_columns", "pragma"}
)


def referenced(sql: str) -> list[Dataset]:
    """The datasets whose views a statement may read: any word naming ``<code>``,
    ``<code>_latest`` or ``<code>_unified`` (a stray match only costs a few milliseconds);
    every dataset for a statement that lists the catalog."""
    words = {w.lower() for w in _WORD.findall(sql)}
    if words & _CATALOG_WORDS:
        return list(DATASETS)
    return [
        d for d in DATASETS
        if d.table in words or f"{d.table}_latest" in words or f"{d.table}_unified" in words
    ]


def bound_columns(dataset: Dataset) -> list[str]:
    """Columns fixed or narrowed by the partition day whose bounds the manifest keeps: what
    queries filter days on, and what freshness reads the newest row from."""
    wanted = ["_day", "settlementDate", dataset.partition_field, dataset.time_field,
              dataset.period_field]
    names = set(dataset.storage_schema.names)
    return [c for c in dict.fromkeys(wanted) if c and c in names]


def manifest_entry(
    dataset: Dataset, path: Path, table: pa.Table, rows: int | None = None
) -> dict[str, Any]:
    """A day file's manifest record: its name, rows and each bound column's [min, max, nulls]
    (dates ISO, instants as microseconds since the epoch, JSON-safe)."""
    bounds: dict[str, list[Any]] = {}
    for column in bound_columns(dataset):
        if column not in table.column_names:
            continue
        values = table.column(column)
        if pa.types.is_timestamp(values.type) or pa.types.is_date(values.type):
            values = values.cast(pa.timestamp("us", tz="UTC") if pa.types.is_timestamp(values.type)
                                 else pa.date32())
        extremes = pc.min_max(values)
        low, high = extremes["min"].as_py(), extremes["max"].as_py()
        bounds[column] = [_json_value(low), _json_value(high), values.null_count]
    return {
        "file": f"{path.parent.name}/{path.name}",
        "rows": table.num_rows if rows is None else rows,
        "bounds": bounds,
    }


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return int(value.timestamp() * 1_000_000) if value.tzinfo else None
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def bound_value(dataset: Dataset, column: str, value: Any) -> Any:
    """A manifest bound back as the Python value of the column's type."""
    if value is None:
        return None
    kind = dataset.storage_schema.field(column).type
    if pa.types.is_timestamp(kind):
        return dt.datetime.fromtimestamp(value / 1_000_000, dt.UTC)
    if pa.types.is_date(kind):
        return dt.date.fromisoformat(value)
    return value


# The day folders' key (``date=YYYY-MM-DD``): the Arrow datasets carry it as a column that
# every file is known to hold one value of, and the views read ``_day`` from it.
DAY_KEY = "date"


def day_select(dataset: Dataset, source: str) -> str:
    """The stored rows of an Arrow dataset from :func:`arrow_rows`, with ``_day`` (and
    ``settlementDate`` where it is the partition day, equal by construction) read from the
    folder's day: a filter on either then prunes files by their folder alone."""
    replaced = ['"date" AS _day']
    if dataset.partition_field == "settlementDate" and "settlementDate" in dataset.field_names:
        replaced.append('"date" AS "settlementDate"')
    return f'SELECT * EXCLUDE ("{DAY_KEY}") REPLACE ({", ".join(replaced)}) FROM {source}'


def arrow_rows(
    dataset: Dataset,
    base: Path,
    files: Sequence[tuple[dt.date, Path | str, dict[str, list[Any]] | None]],
) -> Any:
    """An Arrow dataset over day files under ``base``, in the catalog's storage schema (older
    files lacking a newer column read it as null) plus the folder's day (:data:`DAY_KEY`).

    Arrow skips, without opening it, a file that a pushed-down filter excludes by what the
    file is guaranteed to hold: its folder's day (parsed from the paths, in C++), and where the
    day comes from a timestamp (FREQ's ``measurementTime``, publish times) that field's bounds
    from the manifest, so a time filter prunes too."""
    import pyarrow.dataset as pads  # imported by the first query that names a dataset
    import pyarrow.fs as pafs

    schema = dataset.storage_schema.append(pa.field(DAY_KEY, pa.date32()))
    if not files:
        return schema.empty_table()
    paths = [path if isinstance(path, str) else str(path) for _, path, _ in files]
    partition = dataset.partition_field
    if partition == "settlementDate" or partition not in dataset.storage_schema.names:
        return pads.dataset(
            paths, schema=schema, format="parquet", filesystem=pafs.LocalFileSystem(),
            partitioning=pads.partitioning(pa.schema([(DAY_KEY, pa.date32())]), flavor="hive"),
            partition_base_dir=str(base),
        )
    kind = schema.field(partition).type
    guarantees = []
    for day, _, bounds in files:
        guarantee = pc.field(DAY_KEY) == pa.scalar(day, pa.date32())
        low, high, nulls = (bounds or {}).get(partition, (None, None, 1))
        if low is not None:
            term = (pc.field(partition) >= _bound_scalar(kind, low)) & (
                pc.field(partition) <= _bound_scalar(kind, high))
            guarantee = guarantee & (term | pc.field(partition).is_null() if nulls else term)
        guarantees.append(guarantee)
    return pads.FileSystemDataset.from_paths(
        paths, schema=schema, format=pads.ParquetFileFormat(), filesystem=pafs.LocalFileSystem(),
        partitions=guarantees,
    )


def _bound_scalar(kind: pa.DataType, value: Any) -> pa.Scalar:
    """A manifest bound as an Arrow scalar (instants are stored as microseconds)."""
    if pa.types.is_date(kind):
        return pa.scalar(dt.date.fromisoformat(value), kind)
    if pa.types.is_timestamp(kind):
        return pa.scalar(value, pa.timestamp("us", tz=kind.tz)).cast(kind)
    return pa.scalar(value, kind)


def day_parts(folder: Path) -> list[Path]:
    """A day's files, oldest generation first (the names sort by generation)."""
    try:
        return sorted(
            folder / name
            for name in os.listdir(folder)
            if name.startswith(PART_PREFIX) and name.endswith(".parquet")
        )
    except FileNotFoundError:
        return []


def _generation(path: Path) -> int:
    return int(path.name[len(PART_PREFIX) : -len(".parquet")])


def retire_superseded(parts: list[Path], now: float | None = None) -> int:
    """Delete files whose successor has existed for :data:`RETIRE_AFTER_S`; returns how many."""
    now = time.time() if now is None else now
    removed = 0
    for older, newer in zip(parts, parts[1:]):
        try:
            superseded_for = now - newer.stat().st_mtime
        except FileNotFoundError:
            continue
        if superseded_for > RETIRE_AFTER_S:
            older.unlink(missing_ok=True)
            removed += 1
    return removed


# Stream files are named <seq>-<kind>[-<batch id>].parquet, seq increasing under the day's
# stream lock. A "compact" file holds every row of the files before it; a "pruned" marker
# (no rows) drops them. Readers read the files after the last of either (and the compact).
PRUNED = "pruned"


def stream_parts(folder: Path) -> list[Path]:
    """A stream day's files in write order."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return sorted(
        folder / n for n in names if n.endswith(".parquet") and n[:1].isdigit() and "-" in n
    )


def _stream_kind(path: Path) -> str:
    return path.stem.split("-", 2)[1]


def _stream_name(parts: list[Path], kind: str) -> str:
    seq = time.time_ns()
    if parts:
        seq = max(seq, int(parts[-1].stem.split("-", 1)[0]) + 1)
    return f"{seq:020d}-{kind}.parquet"


def _last_boundary(parts: list[Path]) -> int | None:
    for index in range(len(parts) - 1, -1, -1):
        if _stream_kind(parts[index]) in ("compact", PRUNED):
            return index
    return None


def stream_current(parts: list[Path]) -> list[Path]:
    """The files a reader reads: from the last compact file on (after a pruned marker)."""
    boundary = _last_boundary(parts)
    if boundary is None:
        return parts
    skip = 1 if _stream_kind(parts[boundary]) == PRUNED else 0
    return parts[boundary + skip :]


def retire_stream(folder: Path, now: float | None = None) -> int:
    """Delete files superseded for :data:`RETIRE_AFTER_S` (and a day pruned that long);
    returns how many files went."""
    parts = stream_parts(folder)
    boundary = _last_boundary(parts)
    if boundary is None:
        return 0
    now = time.time() if now is None else now
    try:
        superseded_for = now - parts[boundary].stat().st_mtime
    except FileNotFoundError:
        return 0
    if superseded_for <= RETIRE_AFTER_S:
        return 0
    if boundary == len(parts) - 1 and _stream_kind(parts[boundary]) == PRUNED:
        shutil.rmtree(folder, ignore_errors=True)  # no reader has had a file here since
        return len(parts)
    for path in parts[:boundary]:
        path.unlink(missing_ok=True)
    return boundary
