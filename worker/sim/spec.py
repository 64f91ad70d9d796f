"""Elexon's OpenAPI spec as the simulator reads it: endpoints, parameters and row schemas.

The spec is the copy the catalog reads (:mod:`worker.elexon.spec`). The generic half of the
simulator is driven by this and nothing else: a path in the spec is
served with rows built from its documented response schema, so a dataset the catalog adds is
answered without simulator code. ``$ref``s are resolved here once.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any

from worker.elexon import spec as elexon_spec

Schema = dict[str, Any]

# The families of paths the simulator serves (the catalog's datasets live under these).
SERVED_PREFIXES = (
    "/datasets/",
    "/balancing/settlement/",
    "/reference/",
    # Per-period and window views of the same data that third-party clients call
    # (elexonpy, elexon-bmrs, uk-energy, elexonapi; docs/third-party-clients.md).
    "/balancing/pricing/market-index",
    "/balancing/acceptances/all",
    "/balancing/bid-offer/all",
    "/balancing/nonbm/disbsad/",
)


def load() -> dict[str, Any]:
    """The parsed spec: the copy shipped in the package (:mod:`worker.elexon.spec`)."""
    return elexon_spec.load()


def resolve(schema: Schema) -> Schema:
    """A schema with its ``$ref`` (if any) followed to the component it names."""
    components = load()["components"]["schemas"]
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    return schema


@dataclasses.dataclass(frozen=True)
class Param:
    """One documented request parameter."""

    name: str
    location: str  # "query" or "path"
    required: bool
    schema: Schema

    @property
    def type(self) -> str | None:
        return self.schema.get("type")

    @property
    def format(self) -> str | None:
        return self.schema.get("format")


@dataclasses.dataclass(frozen=True, eq=False)
class Endpoint:
    """One GET path of the spec and the shape of its 200 JSON answer."""

    path: str
    params: tuple[Param, ...]
    # "array" (bare list of rows), "data" ({"data": [...]}) or "object" (one row).
    envelope: str
    # The envelope also carries {"metadata": {"datasets": [...]}}.
    metadata: bool
    row_schema: Schema
    # Summary and description: the family heuristics (forecast or not) read them.
    text: str

    @functools.cached_property
    def pattern(self) -> re.Pattern[str]:
        """Lower-cased path regex, one group per path parameter."""
        parts = re.split(r"(\{[^}]+\})", self.path.lower())
        return re.compile(
            "".join("([^/]+)" if part.startswith("{") else re.escape(part) for part in parts)
        )

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(re.findall(r"\{([^}]+)\}", self.path))

    @functools.cached_property
    def by_name(self) -> dict[str, Param]:
        return {param.name: param for param in self.params}

    @property
    def properties(self) -> dict[str, Schema]:
        """Row fields and their schemas, in the documented order."""
        return dict(self.row_schema.get("properties", {}))

    @property
    def stream(self) -> bool:
        return self.path.endswith("/stream")


def dataset_key(path: str) -> str:
    """What dataset a path serves: ``CODE`` for ``/datasets/CODE[/stream]``, else the path's
    fixed segments (``balancing/settlement/stack/all``), so the per-day and per-period
    variants of a settlement path share one key, and so the same rows."""
    parts = path.strip("/").split("/")
    if parts[0] == "datasets" and len(parts) > 1:
        return parts[1].upper()
    return "/".join(part for part in parts if not part.startswith("{"))


def _response_shape(schema: Schema) -> tuple[str, bool, Schema]:
    schema = resolve(schema)
    if schema.get("type") == "array":
        return "array", False, resolve(schema.get("items", {}))
    properties = schema.get("properties", {})
    data = resolve(properties["data"]) if "data" in properties else None
    if data is not None and data.get("type") == "array":
        return "data", "metadata" in properties, resolve(data.get("items", {}))
    return "object", False, schema


@functools.cache
def endpoints() -> tuple[Endpoint, ...]:
    """Every GET endpoint under :data:`SERVED_PREFIXES` with a JSON 200 answer."""
    found: list[Endpoint] = []
    for path, item in load()["paths"].items():
        get = item.get("get")
        if not path.startswith(SERVED_PREFIXES) or get is None:
            continue
        content = get.get("responses", {}).get("200", {}).get("content", {})
        if "application/json" not in content:
            continue
        envelope, metadata, row_schema = _response_shape(content["application/json"]["schema"])
        params = tuple(
            Param(p["name"], p["in"], bool(p.get("required")), resolve(p.get("schema", {})))
            for p in get.get("parameters", [])
            if p.get("in") in ("query", "path")
        )
        text = f"{get.get('summary') or ''} {get.get('description') or ''}"
        found.append(Endpoint(path, params, envelope, metadata, row_schema, text))
    return tuple(found)


def endpoint(path: str) -> Endpoint:
    """The endpoint of one spec path (exact template spelling)."""
    for candidate in endpoints():
        if candidate.path == path:
            return candidate
    raise KeyError(f"{path} is not a served GET path of Elexon's OpenAPI spec")
