"""Elexon's own OpenAPI spec, shipped in the package, and what the catalog reads from it.

The copy is ``openapi.json.gz`` beside this module (the spec is 1.4 MB as JSON, 62 kB
gzipped; it is read once, on first use, in about 30 ms). It is a byte-for-byte copy of
``shared/elexon/openapi.json``; ``tests/test_catalog.py`` fails when the two differ or when
the catalog disagrees with it. Field names and types, endpoints, window parameters,
summaries and the request limits the spec states all come from here, so none of them is
typed twice.
"""

from __future__ import annotations

import functools
import gzip
import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa

SPEC_FILE = Path(__file__).with_name("openapi.json.gz")

TS = pa.timestamp("us", tz="UTC")
DATE = pa.date32()

# The spec's way of stating a request limit in an endpoint's description, e.g. "a maximum data
# output range of 1 day", "a maximum range of 2 years (731 days)", "A maximum limit of 24 hours".
_LIMIT = re.compile(
    r"maximum (?:data output )?(?:range|limit) of (?:[^(.]*\()?(\d+) (day|days|hours)",
    re.IGNORECASE,
)


@functools.cache
def load() -> dict[str, Any]:
    """The whole spec (cached: one parse per process)."""
    with gzip.open(SPEC_FILE, "rt", encoding="utf-8") as handle:
        return json.load(handle)


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    """A schema node with its ``$ref`` chain followed."""
    schemas = load()["components"]["schemas"]
    while "$ref" in node:
        node = schemas[node["$ref"].split("/")[-1]]
    return node


def operation(path: str) -> dict[str, Any]:
    """The GET operation of a path; KeyError names the path when the spec lacks it."""
    try:
        return load()["paths"][path]["get"]
    except KeyError:
        raise KeyError(f"the Elexon spec has no GET {path}") from None


def has_path(path: str) -> bool:
    return path in load()["paths"]


def dataset_codes() -> list[str]:
    """Every code under ``/datasets/{code}`` except ``metadata`` (the spec's own listing)."""
    codes = {p.split("/")[2] for p in load()["paths"] if p.startswith("/datasets/")}
    return sorted(codes - {"metadata"})


def parameters(path: str) -> dict[str, dict[str, Any]]:
    """Name -> parameter object (``in``, ``required``, resolved ``schema``)."""
    found = {}
    for param in operation(path).get("parameters", []):
        param = dict(param)
        param["schema"] = resolve(param.get("schema", {}))
        found[param["name"]] = param
    return found


def body_schema(path: str) -> dict[str, Any]:
    content = operation(path)["responses"]["200"]["content"]
    media = content.get("application/json") or next(iter(content.values()))
    return resolve(media["schema"])


def envelope(path: str) -> str:
    """How a 200 body holds its rows: ``list`` (bare array), ``data`` (``{data: [...]}``) or
    ``object`` (the body is one row)."""
    body = body_schema(path)
    if body.get("type") == "array":
        return "list"
    if "data" in body.get("properties", {}):
        return "data"
    return "object"


def row_schema(path: str) -> dict[str, Any]:
    """The schema of one row of the 200 response, whatever its envelope."""
    body = body_schema(path)
    if body.get("type") == "array":
        return resolve(body["items"])
    data = body.get("properties", {}).get("data")
    if data is None:
        return body
    data = resolve(data)
    return resolve(data["items"]) if data.get("type") == "array" else data


def arrow_type(prop: dict[str, Any]) -> pa.DataType:
    """The stored type of one property: date-times as UTC timestamps, int64 only where the spec
    says so, JSON objects (pair volumes, prices by kind) as their JSON text."""
    prop = resolve(prop)
    kind, fmt = prop.get("type"), prop.get("format")
    if kind == "string":
        return {"date-time": TS, "date": DATE}.get(fmt, pa.string())
    if kind == "integer":
        return pa.int64() if fmt == "int64" else pa.int32()
    if kind == "number":
        return pa.float64()
    if kind == "boolean":
        return pa.bool_()
    if kind == "array":
        item = resolve(prop["items"])
        if item.get("type") == "object" or "properties" in item:
            return pa.list_(pa.struct([(n, arrow_type(p)) for n, p in item["properties"].items()]))
        return pa.string()
    return pa.string()  # "object" and untyped: kept as JSON text


def row_fields(path: str) -> tuple[tuple[str, pa.DataType], ...]:
    """(name, Arrow type) of every row property, in the spec's order, less ``dataset``
    (the table is the dataset)."""
    schema = row_schema(path)
    if schema.get("type") == "string":
        return ()
    return tuple(
        (name, arrow_type(prop))
        for name, prop in schema.get("properties", {}).items()
        if name != "dataset"
    )


def summary(path: str) -> str:
    return str(operation(path).get("summary") or "").strip()


def stated_limit_hours(path: str) -> int | None:
    """The request-window limit the endpoint's own description states, in hours, or None."""
    match = _LIMIT.search(operation(path).get("description") or "")
    if not match:
        return None
    number, unit = int(match.group(1)), match.group(2).lower()
    return number if unit == "hours" else number * 24
