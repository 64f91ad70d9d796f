"""Rows (JSON objects from the API or IRIS) into typed Arrow tables with content hashes.

The hash is what makes "exact duplicates never land" hold across sources: it is taken over
the *typed* catalog fields, so the same row hashes the same whether it came from the API or
IRIS, whatever the key order, timestamp spelling (``Z`` or ``+00:00``, with or without
milliseconds) or number spelling (``0`` or ``0.0``) of the source.

Canonical form, fixed for the life of the warehouse (changing it would let duplicates in):
a JSON object with the catalog field names in sorted order; timestamps as integer
microseconds since the Unix epoch; dates as ``YYYY-MM-DD``; floats and ints as JSON numbers
(floats always with a fraction, e.g. ``0.0``); null for missing; nested lists as JSON.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import itertools
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from worker.elexon.catalog import DATE, SNAPSHOT_DAY, STR, TS, Dataset
from worker.elexon.settlement import LONDON

log = logging.getLogger(__name__)

# Fields rows carry that are not data: the dataset code is the table itself.
IGNORED_FIELDS = frozenset({"dataset"})

_drift_reported: set[tuple[str, str]] = set()
# What Arrow raises for a value of the wrong type (a JSON object where a number belongs raises
# "not implemented"): each becomes a SchemaError naming the value.
_CONVERSION_ERRORS = (
    pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError
)


class SchemaError(ValueError):
    """Rows that do not fit the catalog schema: names the dataset, field and a bad value."""


@dataclasses.dataclass(frozen=True)
class ParsedRows:
    """A typed table of one batch of rows, and what parsing noticed."""

    table: pa.Table
    schema_drift: tuple[str, ...]


def _typed_column(dataset: Dataset, name: str, arrow_type: pa.DataType, values: list[Any]) -> pa.Array:
    """One column converted strictly: no silent truncation, errors name a bad value."""
    try:
        if arrow_type == TS:
            return _utc_strings(pa.array(values, pa.string())).cast(arrow_type)
        if arrow_type == DATE:
            return pa.array(values, pa.string()).cast(arrow_type)
        if pa.types.is_integer(arrow_type):
            raw = pa.array(values)
            if pa.types.is_boolean(raw.type):
                raise pa.ArrowInvalid("booleans are not integers")
            return raw.cast(arrow_type, safe=True)
        if pa.types.is_floating(arrow_type):
            raw = pa.array(values)
            if pa.types.is_boolean(raw.type) or pa.types.is_string(raw.type):
                raise pa.ArrowInvalid("not a number")
            return raw.cast(arrow_type)
        if pa.types.is_list(arrow_type):
            return _nested_column(arrow_type, values)
        if arrow_type == STR and any(isinstance(v, (dict, list)) for v in values):
            # JSON objects the catalog stores as text (settlement pair volumes, price kinds):
            # sorted keys, so the same object always hashes the same.
            values = [
                orjson.dumps(v, option=orjson.OPT_SORT_KEYS).decode()
                if isinstance(v, (dict, list)) else v
                for v in values
            ]
        return pa.array(values, arrow_type)
    except _CONVERSION_ERRORS as exc:
        bad = _first_bad(values, arrow_type)
        raise SchemaError(
            f"{dataset.code}: field {name!r} expects {arrow_type}, got {bad!r} ({exc})"
        ) from None


_ZONE = r"([zZ]|[+-]\d\d(:?\d\d)?)$"


def _utc_strings(strings: pa.Array) -> pa.Array:
    """Date-time strings with their zone; a string without one is UTC.

    The API writes a few date-times without a zone (B1610's ``halfHourEndTime``); they are UTC:
    settlement period 1 of a BST day ends at 23:30 on the previous date, period 2 at 00:00.
    """
    has_zone = pc.match_substring_regex(strings, _ZONE)
    if pc.all(pc.fill_null(has_zone, True)).as_py():
        return strings
    return pc.if_else(has_zone, strings, pc.binary_join_element_wise(strings, "Z", ""))


def _nested_column(arrow_type: pa.DataType, values: list[Any]) -> pa.Array:
    """Lists of structs (REMIT outage profiles): timestamps inside are parsed too."""
    struct_type = arrow_type.value_type
    converted = []
    for value in values:
        if value is None:
            converted.append(None)
            continue
        items = []
        for item in value:
            row = {}
            for field in struct_type:
                v = item.get(field.name)
                if field.type == TS and isinstance(v, str):
                    v = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
                row[field.name] = v
            items.append(row)
        converted.append(items)
    return pa.array(converted, arrow_type)


def _first_bad(values: list[Any], arrow_type: pa.DataType) -> Any:
    for value in values:
        if value is None:
            continue
        try:
            _typed_scalar_ok(value, arrow_type)
        except _CONVERSION_ERRORS:
            return value
    return values[0] if values else None


def _typed_scalar_ok(value: Any, arrow_type: pa.DataType) -> None:
    if arrow_type == TS:
        _utc_strings(pa.array([value], pa.string())).cast(arrow_type)
    elif arrow_type == DATE:
        pa.array([value], pa.string()).cast(arrow_type)
    elif pa.types.is_integer(arrow_type):
        if isinstance(value, bool):
            raise TypeError
        pa.array([value]).cast(arrow_type, safe=True)
    elif pa.types.is_floating(arrow_type):
        if isinstance(value, (bool, str)):
            raise TypeError
    else:
        pa.array([value], arrow_type)


def parse_rows(
    dataset: Dataset,
    rows: Sequence[dict[str, Any]],
    *,
    source: str = "api",
    ingested_utc: dt.datetime | None = None,
) -> ParsedRows:
    """Typed table of catalog fields plus ``_hash_key``, ``_day``, metadata and ``_extra``.

    Fields the catalog does not know are kept per row as JSON in ``_extra`` and reported
    once per process as schema drift; a row lacking its partition or time field is an error.
    """
    if not all(map(isinstance, rows, itertools.repeat(dict))):
        bad = next(row for row in rows if not isinstance(row, dict))
        raise SchemaError(f"{dataset.code}: expected JSON objects as rows, got {bad!r:.80}")
    present: set[str] = set().union(*rows)
    drift = tuple(sorted(present - set(dataset.field_names) - IGNORED_FIELDS))
    _report_drift(dataset, drift)
    table = typed_table(dataset, rows)
    n = table.num_rows
    if drift:
        extra = pa.array(
            [
                orjson.dumps(
                    {k: row[k] for k in drift if k in row}, option=orjson.OPT_SORT_KEYS
                ).decode()
                if any(k in row for k in drift)
                else None
                for row in rows
            ],
            pa.string(),
        )
    else:
        extra = pa.nulls(n, pa.string())
    stamp = ingested_utc or dt.datetime.now(dt.UTC)
    table = table.append_column("_day", partition_days(dataset, table))
    table = table.append_column("_hash_key", hash_rows(dataset, table))
    table = table.append_column("_ingested_utc", pa.repeat(pa.scalar(stamp, TS), n))
    table = table.append_column("_source", pa.repeat(pa.scalar(source, pa.string()), n))
    table = table.append_column("_extra", extra)
    return ParsedRows(table=table, schema_drift=drift)


def typed_table(dataset: Dataset, rows: Sequence[dict[str, Any]]) -> pa.Table:
    """The catalog fields of the rows as a typed table, converted strictly, field by field."""
    if not rows:
        return dataset.schema.empty_table()
    # Only the fields that decide where a row is stored must be present; natural-key fields
    # the spec marks nullable (a BM unit's national grid id...) may be null in real data.
    required = {dataset.partition_field} | ({dataset.time_field} - {None})
    columns: dict[str, pa.Array] = {}
    for name, arrow_type in dataset.fields:
        values = [row.get(name) for row in rows]
        if name in required and None in values:
            index = values.index(None)
            raise SchemaError(
                f"{dataset.code}: required field {name!r} is missing or null in row {index}: "
                f"{orjson.dumps(rows[index]).decode()[:200]}"
            )
        columns[name] = _typed_column(dataset, name, arrow_type, values)
    return pa.table(columns, schema=dataset.schema)


def _report_drift(dataset: Dataset, drift: Iterable[str]) -> None:
    for name in drift:
        if (dataset.code, name) not in _drift_reported:
            _drift_reported.add((dataset.code, name))
            log.warning(
                "schema drift: %s rows carry new field %r; kept in _extra", dataset.code, name
            )


def partition_days(dataset: Dataset, table: pa.Table) -> pa.Array:
    """The settlement day each row belongs to (the chunk it is stored in)."""
    if dataset.snapshot:
        return pa.array([SNAPSHOT_DAY] * table.num_rows, DATE)
    column = table.column(dataset.partition_field)
    if column.type == DATE:
        return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    local = pc.local_timestamp(column.cast(pa.timestamp("us", str(LONDON))))
    result = local.cast(DATE)
    return result.combine_chunks() if isinstance(result, pa.ChunkedArray) else result


def _canonical_column(column: pa.ChunkedArray | pa.Array) -> list[Any]:
    if column.type == TS:
        return column.cast(pa.int64()).to_pylist()
    if column.type == DATE:
        return column.cast(pa.string()).to_pylist()
    if pa.types.is_floating(column.type):
        return column.to_pylist()
    if pa.types.is_list(column.type):
        return [_canonical_nested(v) for v in column.to_pylist()]
    return column.to_pylist()


def _canonical_nested(value: Any) -> Any:
    if isinstance(value, list):
        return [_canonical_nested(v) for v in value]
    if isinstance(value, dict):
        return {k: _canonical_nested(v) for k, v in value.items()}
    if isinstance(value, dt.datetime):
        delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return value


def hash_rows(dataset: Dataset, table: pa.Table) -> pa.StringArray:
    """SHA-256 (hex) of each row's canonical JSON (see the module docstring)."""
    sha = hashlib.sha256
    rows = canonical_rows(dataset, table).to_pylist()
    return pa.array([sha(row).hexdigest() for row in rows], pa.string())


def canonical_rows(dataset: Dataset, table: pa.Table) -> pa.BinaryArray:
    """Every row's canonical JSON, built column-wise: the same bytes as :func:`canonical_json`
    gives row by row (a test holds the two equal), without a Python object per value."""
    if table.num_rows == 0:
        return pa.array([], pa.binary())
    parts: list[pa.Array | pa.Scalar] = []
    for position, name in enumerate(sorted(dataset.field_names)):
        key = orjson.dumps(name) + b":"
        parts.append(pa.scalar((b"{" if position == 0 else b",") + key, pa.binary()))
        parts.append(_canonical_json_column(table.column(name).combine_chunks()))
    parts.append(pa.scalar(b"}", pa.binary()))
    return pc.binary_join_element_wise(*parts, pa.scalar(b"", pa.binary()))


def _canonical_json_column(column: pa.Array) -> pa.BinaryArray:
    """Each value of one column as its canonical JSON text (``null`` for missing)."""
    kind = column.type
    if kind == TS or pa.types.is_integer(kind):
        text = (column.cast(pa.int64()) if kind == TS else column).cast(pa.string())
    elif kind == DATE:
        text = pc.binary_join_element_wise('"', column.cast(pa.string()), '"', "")
    elif pa.types.is_boolean(kind):
        text = column.cast(pa.string())
    elif pa.types.is_floating(kind):
        # orjson's own spelling of every float: one call for the column, then split
        # (a JSON number never holds a comma).
        values = column.to_pylist()
        text = pa.array(orjson.dumps(values)[1:-1].split(b",") if values else [], pa.binary())
    elif pa.types.is_string(kind) and not _needs_escapes(column):
        # Nothing to escape: the JSON string is the text in quotes.
        text = pc.binary_join_element_wise('"', column, '"', "")
    else:
        # Strings that need escaping, nested lists: orjson value by value.
        dumps = orjson.dumps
        text = pa.array(
            [dumps(_canonical_nested(value)) for value in column.to_pylist()], pa.binary()
        )
    return pc.fill_null(text.cast(pa.binary()), pa.scalar(b"null", pa.binary()))


def _needs_escapes(column: pa.Array) -> bool:
    """Whether any string holds what JSON escapes: a quote, a backslash, a control character."""
    return bool(pc.any(pc.match_substring_regex(column, r'["\\\x00-\x1f]')).as_py())


def canonical_json(dataset: Dataset, row: dict[str, Any]) -> bytes:
    """The exact bytes hashed for one row, spelled out value by value: the definition
    that :func:`canonical_rows` must reproduce (kept for documentation and tests)."""
    table = typed_table(dataset, [row])
    names = sorted(dataset.field_names)
    return orjson.dumps({name: _canonical_column(table.column(name))[0] for name in names})
