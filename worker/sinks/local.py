"""The embedded warehouse: a Parquet lake, one file per dataset-day, read through DuckDB.

Layout under ``BMRS_DATA_DIR``::

    lake/_format.json                         format version of everything below
    lake/<code>/date=YYYY-MM-DD/part-<generation>.parquet  the day's rows (all versions, no
                                              exact duplicates); the highest generation is current
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
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

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

FORMAT_VERSION = 1
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

    def _check_format(self) -> None:
        marker = self.lake / "_format.json"
        if marker.exists():
            found = json.loads(marker.read_text()).get("format_version")
            if found != FORMAT_VERSION:
                raise FormatVersionError(
                    f"{self.lake} holds lake format {found}, this program reads format "
                    f"{FORMAT_VERSION}; use a matching version or a new BMRS_DATA_DIR"
                )
        else:
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
        """Write the day's next generation (call under the chunk lock), retire old ones."""
        folder = self.day_dir(dataset, day)
        parts = day_parts(folder)
        generation = time.time_ns()
        if parts:
            generation = max(generation, _generation(parts[-1]) + 1)
        atomic_write(folder / f"{PART_PREFIX}{generation:020d}.parquet", table=table)
        retire_superseded(day_parts(folder))

    def vacuum(self) -> int:
        """Delete every superseded day file past its grace time; returns how many."""
        removed = 0
        for dataset in DATASETS:
            for folder in (self.lake / dataset.table).glob("date=*"):
                with self.chunk_lock(dataset, dt.date.fromisoformat(folder.name[5:])):
                    removed += retire_superseded(day_parts(folder))
            for folder in (self.lake / STREAM_DIR / dataset.table).glob("date=*"):
                with self.stream_lock(dataset, dt.date.fromisoformat(folder.name[5:])):
                    removed += retire_stream(folder)
        return removed

    def read_coverage(self, dataset: Dataset, days: Iterable[dt.date]) -> dict[dt.date, Coverage]:
        found: dict[dt.date, Coverage] = {}
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
        for folder in sorted((self.lake / dataset.table).glob("date=*")):
            if day_parts(folder):
                yield dt.date.fromisoformat(folder.name.removeprefix("date="))

    def current_files(self, dataset: Dataset) -> list[Path]:
        """The current generation of every stored day of a dataset."""
        files = []
        for folder in sorted((self.lake / dataset.table).glob("date=*")):
            parts = day_parts(folder)
            if parts:
                files.append(parts[-1])
        return files

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
        con = self.connect()
        try:
            return con.sql(sql).to_arrow_table()
        finally:
            con.close()

    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with every dataset's views over the lake."""
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        for dataset in DATASETS:
            self._create_views(con, dataset)
        return con

    def _create_views(self, con: duckdb.DuckDBPyConnection, dataset: Dataset) -> None:
        table = dataset.table
        files = self.current_files(dataset)
        if files:
            listed = ", ".join(f"'{_sql_str(str(path))}'" for path in files)
            source = f"read_parquet([{listed}], union_by_name=true, hive_partitioning=false)"
        else:
            empty_name = f"_empty_{table}"
            con.register(empty_name, dataset.storage_schema.empty_table())
            source = empty_name
        con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM {source}")
        con.execute(f"CREATE OR REPLACE VIEW {table}_latest AS {DUCKDB.latest_sql(dataset, table)}")
        stream_files = self.current_stream_files(dataset)
        if stream_files:
            listed = ", ".join(f"'{_sql_str(str(path))}'" for path in stream_files)
            stream = f"read_parquet([{listed}], union_by_name=true, hive_partitioning=false)"
            unified = DUCKDB.unified_sql(dataset, table, stream)
        else:
            unified = f"SELECT * FROM {table}"
        con.execute(f"CREATE OR REPLACE VIEW {table}_unified AS {unified}")


def _sql_str(text: str) -> str:
    return text.replace("'", "''")


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
