"""Uniting a fetch with what a day already holds: the heart of idempotent loads.

Exact duplicates (equal ``_hash_key``) are one row; the copy already stored wins, so a row
keeps the ``_ingested_utc`` of its first arrival and re-loading changes nothing. Rows that
differ in any catalog field are different versions and are all kept.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from worker.elexon.catalog import Dataset


def conform(dataset: Dataset, table: pa.Table) -> pa.Table:
    """The table in storage-schema column order; columns an older file lacks become null."""
    schema = dataset.storage_schema
    columns = [
        table.column(field.name).cast(field.type)
        if field.name in table.column_names
        else pa.nulls(table.num_rows, field.type)
        for field in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def drop_duplicates(table: pa.Table) -> tuple[pa.Table, int]:
    """First occurrence of each ``_hash_key``, in original order, and how many were dropped."""
    if table.num_rows == 0:
        return table, 0
    positions = pc.indices_nonzero(pa.repeat(pa.scalar(True), table.num_rows))  # 0..n-1
    indexed = pa.table({"h": table.column("_hash_key"), "i": positions})
    firsts = indexed.group_by("h", use_threads=False).aggregate([("i", "min")]).column("i_min")
    if len(firsts) == table.num_rows:
        return table, 0
    dropped = table.num_rows - len(firsts)
    ordered = pc.take(firsts, pc.sort_indices(firsts))
    if pc.max(ordered).as_py() == len(ordered) - 1:
        # The first k rows are the distinct ones (a re-load: everything fetched is already
        # stored): a zero-copy slice instead of a copy of the whole day.
        return table.slice(0, len(ordered)), dropped
    return table.take(ordered), dropped


def unite(dataset: Dataset, existing: pa.Table | None, fetched: pa.Table) -> tuple[pa.Table, int]:
    """Existing rows plus new ones, exact duplicates dropped (existing first, so it wins)."""
    parts = [conform(dataset, existing)] if existing is not None else []
    parts.append(conform(dataset, fetched))
    combined = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    return drop_duplicates(combined)
