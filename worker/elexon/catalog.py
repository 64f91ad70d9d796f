"""The dataset catalog: everything the pipeline knows about each Elexon dataset, as data.

Two sources, so nothing is typed twice:

- **Elexon's OpenAPI spec** (:mod:`worker.elexon.spec`, a copy shipped in the package) gives
  each dataset's field names and types, its endpoint (the ``/stream`` one where it exists),
  how a request names its window (``param_style``), its one-line ``summary`` and any request
  limit the spec states (``spec_limit``).
- **The reviewed table** ``datasets.csv`` beside this module adds what the spec cannot say, one
  row per dataset, with the evidence in its ``notes``: natural key, version field, partition
  rule, dense or sparse, revision window, realtime polling, freshness, history start, group,
  and fields real rows carry that the spec lacks (``extra_fields``: B1610's settlementRunType).
  Its ``family`` column applies a family's shared rules (:data:`FAMILIES`) to the cells left
  blank. Adding a dataset is adding one row.

``tests/test_catalog.py`` fails when the spec and the catalog disagree (a field, a type, a
parameter, a code of the spec missing from the table).

Rules the rest of the code relies on (attribute names are the interface):

- ``natural_key``: fields real data always fills. BM-unit datasets key on
  ``nationalGridBmUnit``: the spec marks both unit fields nullable, and real MILS leaves
  ``bmUnit`` null for 16 of 1,000 units while ``nationalGridBmUnit`` is set.
- ``version_field``: what orders versions of one key; ``<code>_latest`` keeps the greatest.
  For the forecast family the natural key is the *target* (what is forecast: a period, a
  date, a week) and the version is ``publishTime``, so ``<code>`` keeps every vintage and
  ``<code>_latest`` is the newest forecast per target.
- ``partition_field``: ``settlementDate``, or a timestamp whose Europe/London date is the
  partition. It is always the field the request window filters on, so a day's requests
  return that day's rows: datasets fetched by publish window (forecasts, and the ENTSO-E
  transparency datasets whose streams filter only on ``publishTime``) partition by publish
  day; B1610, fetched by ``from``/``to``, by its own ``settlementDate``.
- ``snapshot``: reference data (``family == "reference"``), fetched whole, stored in one fixed
  partition (:data:`SNAPSHOT_DAY`), so an unchanged row is a content-hash duplicate (a no-op)
  and a changed row is a new version; views ``<code>`` (every version) and ``<code>_latest``
  (newest version per natural key, by ingestion time).
- ``max_window``: the spec's stated limit where there is one (``spec_limit``; stated on the
  base endpoint, applied to its stream too), else the whole settlement day
  (:data:`WHOLE_DAY`, 25 hours, so even a clock-change day is one request). Wider-than-allowed
  answers are learned by the client at run time.
- ``earliest``: from Elexon's published statements, ``earliest_source`` saying which, or that
  none was found.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import re
from pathlib import Path
from typing import Literal

import pyarrow as pa

from worker.elexon import spec

TS = spec.TS
DATE = spec.DATE
I32 = pa.int32()
I64 = pa.int64()
F64 = pa.float64()
BOOL = pa.bool_()
STR = pa.string()
OUTAGE_PROFILE = pa.list_(pa.struct([("startTime", TS), ("endTime", TS), ("capacity", F64)]))

TABLE_FILE = Path(__file__).with_name("datasets.csv")

# How a request names its window (read from the endpoint's parameters in the spec):
#  settlement_dates:   ?settlementDateFrom=D&settlementDateTo=D (whole settlement days)
#  settlement_periods: ?settlementDateFrom=D&settlementPeriodFrom=1&settlementDateTo=D&
#                      settlementPeriodTo=N (TUDM: both are required)
#  path_date:          /path/{settlementDate} (one settlement day per request)
#  path_period:        /path/{settlementDate}/{settlementPeriod} (one request per period)
#  from_to:            ?from=T&to=T, UTC instants, inclusive at both ends
#  measurement_time:   ?measurementDateTimeFrom=T&measurementDateTimeTo=T, inclusive
#  publish_time:       ?publishDateTimeFrom=T&publishDateTimeTo=T, inclusive
#  submission_time:    ?submissionDateTimeFrom=T&submissionDateTimeTo=T, inclusive
#  snapshot:           no window: the whole reference list
# A path with {bidOffer} is requested once per side, each row stamped with the side.
ParamStyle = Literal[
    "settlement_dates",
    "settlement_periods",
    "path_date",
    "path_period",
    "from_to",
    "measurement_time",
    "publish_time",
    "submission_time",
    "snapshot",
]

WINDOW_PARAMS: dict[str, tuple[str, str]] = {
    "settlement_dates": ("settlementDateFrom", "settlementDateTo"),
    "from_to": ("from", "to"),
    "measurement_time": ("measurementDateTimeFrom", "measurementDateTimeTo"),
    "publish_time": ("publishDateTimeFrom", "publishDateTimeTo"),
    "submission_time": ("submissionDateTimeFrom", "submissionDateTimeTo"),
}
PERIOD_PARAMS = ("settlementPeriodFrom", "settlementPeriodTo")
# The path parameter that splits one dataset's requests by side, and its values.
SIDE_PARAM = "bidOffer"
SIDES = ("bid", "offer")

# Columns every stored row carries besides its catalog fields: the settlement day it belongs
# to, the content hash, when and from where it was ingested, and fields the catalog lacks.
METADATA_COLUMNS = ("_day", "_hash_key", "_ingested_utc", "_source", "_extra")
METADATA_SCHEMA = pa.schema(
    [("_day", DATE), ("_hash_key", STR), ("_ingested_utc", TS), ("_source", STR), ("_extra", STR)]
)

DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)
# A settlement day is 23, 24 or 25 hours: one request covers any of them.
WHOLE_DAY = DAY + HOUR
# The one partition (``_day``) every version of a snapshot (reference) dataset is stored in.
SNAPSHOT_DAY = dt.date(2000, 1, 1)

# Elexon Insights FAQ, "What is the earliest data in Insights?"
# (https://www.elexon.co.uk/data/kinnect-insights-solution/): historic data loaded from legacy
# BMRS starts June 2017 for REMIT, January 2016 for physical data, May 2023 for transparency
# data; indicative imbalance settlement data before 1 February 2023 was not there at launch.
FAQ = "Elexon Insights FAQ (elexon.co.uk/data/kinnect-insights-solution): "
PHYSICAL_START = dt.date(2016, 1, 1)
PHYSICAL_SOURCE = FAQ + "physical data loaded from January 2016"
REMIT_START = dt.date(2017, 6, 1)
REMIT_SOURCE = FAQ + "REMIT loaded from June 2017"
TRANSPARENCY_START = dt.date(2023, 5, 1)
TRANSPARENCY_SOURCE = FAQ + "transparency data loaded from May 2023"
SETTLEMENT_START = dt.date(2023, 2, 1)
SETTLEMENT_SOURCE = (
    FAQ + "indicative imbalance settlement data before 1 February 2023 not available at launch "
    "(migration promised, not confirmed)"
)
SNAPSHOT_SOURCE = "reference data: a current snapshot, no history"
NO_STATEMENT = "no published statement found; legacy BMRS start kept, `bmrs history` checks it"
_EARLIEST_TOKENS = {
    "physical": (PHYSICAL_START, PHYSICAL_SOURCE),
    "remit": (REMIT_START, REMIT_SOURCE),
    "transparency": (TRANSPARENCY_START, TRANSPARENCY_SOURCE),
    "settlement": (SETTLEMENT_START, SETTLEMENT_SOURCE),
    "snapshot": (SNAPSHOT_DAY, SNAPSHOT_SOURCE),
}

Group = Literal[
    "balancing",
    "generation",
    "demand",
    "forecast",
    "transparency",
    "remit",
    "settlement",
    "reference",
    "system",
]
GROUPS: tuple[str, ...] = Group.__args__  # type: ignore[attr-defined]

# What a family's rows share, for the table's blank cells (see the module docstring).
FAMILIES: dict[str, dict[str, str]] = {
    "core": {},
    "bm": {"partition_field": "settlementDate"},
    "forecast": {
        "partition_field": "publishTime",
        "version_field": "publishTime",
        "time_field": "publishTime",
    },
    "transparency": {
        "partition_field": "publishTime",
        "version_field": "publishTime",
        "time_field": "publishTime",
    },
    "publication": {"partition_field": "publishTime", "time_field": "publishTime"},
    "settlement": {"partition_field": "settlementDate"},
    "reference": {},
}


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One Elexon dataset and the rules for fetching, partitioning and checking it."""

    code: str
    endpoint: str
    param_style: ParamStyle
    max_window: dt.timedelta
    earliest: dt.date
    fields: tuple[tuple[str, pa.DataType], ...]
    natural_key: tuple[str, ...]
    # Partition date: "settlementDate", or the Europe/London date of this timestamp field.
    partition_field: str = "settlementDate"
    version_field: str | None = None
    dense: bool = False
    # Instant the API filters a time window on; None derives it from the settlement period.
    time_field: str | None = None
    # Field giving the settlement period of a row; None derives it from partition_field.
    period_field: str | None = "settlementPeriod"
    # Days after which a day's data no longer changes (re-fetched until then by the sweep).
    revision_days: int = 1
    # Age of the newest row past which the dataset is stale (alerting).
    freshness: dt.timedelta = dt.timedelta(hours=2)
    # Polled every few minutes for the current and previous day.
    realtime: bool = False
    description: str = ""
    # Where ``earliest`` comes from: a published statement, or why there is none.
    earliest_source: str = ""
    # The request-window limit Elexon's spec states for this dataset, None when it states none
    # (then ``max_window`` is the whole settlement day). A simulator enforces only this.
    spec_limit: dt.timedelta | None = None
    # balancing, generation, demand, forecast, transparency, remit, settlement, reference...
    group: str = "balancing"
    # The spec's one-line summary of the endpoint.
    summary: str = ""
    # The family whose shared rules the row follows (see FAMILIES).
    family: str = "core"
    # How a 200 body holds rows: "list", "data" ({data: [...]}) or "object" (one row).
    envelope: str = "list"
    # Field the client adds to every row: the side of a {bidOffer} path (None: no sides).
    side_field: str | None = None
    # For an endpoint answering a bare list of strings: the one column they are stored in.
    scalar_field: str | None = None
    # Fields real rows carry that the spec lacks (declared in the table, with evidence).
    extra_fields: tuple[tuple[str, pa.DataType], ...] = ()
    # Why the table's values are what they are (the evidence).
    notes: str = ""

    @property
    def schema(self) -> pa.Schema:
        """Arrow schema of the catalog fields (no metadata columns)."""
        return pa.schema(list(self.fields))

    @property
    def storage_schema(self) -> pa.Schema:
        """Arrow schema of stored rows: catalog fields, the partition date, metadata."""
        schema = self.schema
        for field in METADATA_SCHEMA:
            schema = schema.append(field)
        return schema

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.fields)

    @property
    def snapshot(self) -> bool:
        """Reference data: fetched whole, every version in the one SNAPSHOT_DAY partition."""
        return self.param_style == "snapshot"

    @property
    def is_forecast(self) -> bool:
        """Issued many times per target: every vintage kept, _latest = newest per target."""
        return self.family == "forecast"

    @property
    def partition_date_rule(self) -> str:
        if self.snapshot:
            return f"fixed ({SNAPSHOT_DAY.isoformat()}): every version of the snapshot"
        if self.partition_field == "settlementDate":
            return "settlementDate"
        return f"Europe/London date of {self.partition_field}"

    @property
    def tracks_periods(self) -> bool:
        """Datasets queried by publish (or submission) time, and snapshots, have no fixed
        set of periods per day."""
        return self.param_style not in ("publish_time", "submission_time", "snapshot")

    @property
    def table(self) -> str:
        return self.code.lower()

    def chunk_day(self, day: dt.date) -> dt.date:
        """The partition a fetch for ``day`` stores into: the day itself, or SNAPSHOT_DAY."""
        return SNAPSHOT_DAY if self.snapshot else day

    def chunk_range(self, first: dt.date, last: dt.date) -> tuple[dt.date, dt.date]:
        """The stored days a range of days maps to (a snapshot: its one partition), for
        coverage reports that would otherwise list a snapshot as missing on every day."""
        return (SNAPSHOT_DAY, SNAPSHOT_DAY) if self.snapshot else (first, last)

    def describe(self) -> dict[str, object]:
        """The public JSON shape of ``bmrs datasets --json``."""
        return {
            "code": self.code,
            "group": self.group,
            "summary": self.summary,
            "endpoint": self.endpoint,
            "max_window": _iso_duration(self.max_window),
            "earliest": self.earliest.isoformat(),
            "partition_date": self.partition_date_rule,
            "natural_key": list(self.natural_key),
            "version_field": self.version_field,
            "dense": self.dense,
            "param_style": self.param_style,
            "revision_days": self.revision_days,
            "realtime": self.realtime,
            "earliest_source": self.earliest_source,
            "spec_limit": None if self.spec_limit is None else _iso_duration(self.spec_limit),
            "family": self.family,
            "fields": [{"name": name, "type": str(kind)} for name, kind in self.fields],
        }


def _iso_duration(delta: dt.timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    return f"P{hours // 24}D" if hours % 24 == 0 else f"PT{hours}H"


class CatalogError(ValueError):
    """The reviewed table and the spec do not fit together: names the dataset and cell."""


def endpoint_for(code: str) -> str:
    """A /datasets code's endpoint: its /stream where the spec has one, else its base."""
    stream = f"/datasets/{code}/stream"
    return stream if spec.has_path(stream) else f"/datasets/{code}"


def param_style_for(path: str) -> ParamStyle:
    """How the endpoint names its window, from its parameters in the spec."""
    params = spec.parameters(path)
    names = set(params)
    if "settlementPeriod" in names and params["settlementPeriod"]["in"] == "path":
        return "path_period"
    if "settlementDate" in names and params["settlementDate"]["in"] == "path":
        return "path_date"
    if {"settlementDateFrom", *PERIOD_PARAMS} <= names and params["settlementPeriodFrom"].get(
        "required"
    ):
        return "settlement_periods"
    for style in (
        "settlement_dates",
        "from_to",
        "measurement_time",
        "submission_time",
        "publish_time",
    ):
        if set(WINDOW_PARAMS[style]) <= names:
            return style  # type: ignore[return-value]
    return "snapshot"


def stated_limit(code: str, endpoint: str) -> dt.timedelta | None:
    """The limit the spec states for the dataset: on the endpoint called, else on its base."""
    hours = spec.stated_limit_hours(endpoint)
    base = f"/datasets/{code}"
    if hours is None and endpoint != base and spec.has_path(base):
        hours = spec.stated_limit_hours(base)
    return None if hours is None else dt.timedelta(hours=hours)


# Type names the table's ``extra_fields`` cell may use (``name:type``, space-separated).
EXTRA_TYPES: dict[str, pa.DataType] = {
    "string": STR,
    "int32": I32,
    "int64": I64,
    "double": F64,
    "boolean": BOOL,
    "date": DATE,
    "date-time": TS,
}


def _extra_fields(text: str, where: str) -> tuple[tuple[str, pa.DataType], ...]:
    found = []
    for item in text.split():
        name, _, kind = item.partition(":")
        if kind not in EXTRA_TYPES:
            raise CatalogError(f"{where}: extra field {item!r}: type one of {sorted(EXTRA_TYPES)}")
        found.append((name, EXTRA_TYPES[kind]))
    return tuple(found)


def _flag(value: str, where: str) -> bool:
    if value not in ("yes", "no"):
        raise CatalogError(f"{where}: expected yes or no, got {value!r}")
    return value == "yes"


def _build(row: dict[str, str]) -> Dataset:
    code = row["code"].strip()
    where = f"{TABLE_FILE.name} {code}"
    family = row["family"]
    if family not in FAMILIES:
        raise CatalogError(f"{where}: unknown family {family!r}; families: {sorted(FAMILIES)}")
    cell = {k: (v or "").strip() for k, v in row.items()}
    for key, default in FAMILIES[family].items():
        cell[key] = cell.get(key) or default
    endpoint = cell["endpoint"] or endpoint_for(code)
    style = param_style_for(endpoint)
    fields = spec.row_fields(endpoint)
    scalar_field = None
    if not fields:  # a bare list of strings: one column, named by the natural key
        scalar_field = cell["natural_key"]
        fields = ((scalar_field, STR),)
    extra = _extra_fields(cell.get("extra_fields", ""), where)
    fields = fields + extra
    side_field = SIDE_PARAM if "{" + SIDE_PARAM + "}" in endpoint else None
    if side_field:
        fields = fields + ((side_field, STR),)
    names = {name for name, _ in fields}
    natural_key = tuple(cell["natural_key"].split())
    if style == "snapshot":
        partition_field = natural_key[0]
    else:
        partition_field = cell["partition_field"] or "settlementDate"
    period_field = None
    if partition_field == "settlementDate":
        period_field = (
            "settlementPeriodFrom"
            if "settlementPeriodFrom" in names
            else ("settlementPeriod" if "settlementPeriod" in names else None)
        )
    if partition_field == "settlementDate" and period_field is None and style != "snapshot":
        raise CatalogError(f"{where}: partitioned by settlementDate but has no period field")
    earliest_text = cell["earliest"]
    if earliest_text in _EARLIEST_TOKENS:
        earliest, source = _EARLIEST_TOKENS[earliest_text]
    else:
        earliest, source = dt.date.fromisoformat(earliest_text), NO_STATEMENT
    limit = stated_limit(code, endpoint) if style not in ("snapshot",) else None
    group = cell["group"]
    if group not in GROUPS:
        raise CatalogError(f"{where}: unknown group {group!r}; groups: {', '.join(GROUPS)}")
    return Dataset(
        code=code,
        endpoint=endpoint,
        param_style=style,
        max_window=min(limit, WHOLE_DAY) if limit else WHOLE_DAY,
        earliest=earliest,
        fields=fields,
        natural_key=natural_key,
        partition_field=partition_field,
        version_field=cell["version_field"] or None,
        dense=_flag(cell["dense"], where),
        time_field=cell["time_field"] or None,
        period_field=period_field,
        revision_days=int(cell["revision_days"]),
        freshness=dt.timedelta(hours=float(cell["freshness_h"])),
        realtime=_flag(cell["realtime"], where),
        description=spec.summary(endpoint),
        earliest_source=source,
        spec_limit=limit,
        group=group,
        summary=spec.summary(endpoint),
        family=family,
        envelope=spec.envelope(endpoint),
        side_field=side_field,
        scalar_field=scalar_field,
        extra_fields=extra,
        notes=cell["notes"],
    )


def load_table(path: Path = TABLE_FILE) -> tuple[Dataset, ...]:
    """Every dataset of the reviewed table, completed from the spec, in table order."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [
            row for row in csv.DictReader(handle) if row["code"] and not row["code"].startswith("#")
        ]
    seen: set[str] = set()
    for row in rows:
        if row["code"] in seen or not re.fullmatch(r"[A-Z0-9]+", row["code"]):
            raise CatalogError(f"{path.name}: code {row['code']!r} repeated or not upper-case")
        seen.add(row["code"])
    return tuple(_build(row) for row in rows)


DATASETS: tuple[Dataset, ...] = load_table()

BY_CODE: dict[str, Dataset] = {d.code: d for d in DATASETS}


class UnknownDatasetError(ValueError):
    """A dataset code the catalog does not hold."""


def get(code: str) -> Dataset:
    """The catalog entry for a code (case-insensitive), or an error listing valid codes."""
    try:
        return BY_CODE[code.strip().upper()]
    except KeyError:
        raise UnknownDatasetError(
            f"unknown dataset {code!r}; valid datasets: {', '.join(sorted(BY_CODE))}"
        ) from None


def parse_codes(values: str | list[str] | tuple[str, ...]) -> list[Dataset]:
    """Datasets from comma-separated and/or repeated values, in order, without repeats;
    ``all`` means every catalog dataset."""
    items = [values] if isinstance(values, str) else list(values)
    seen: dict[str, Dataset] = {}
    for item in items:
        for code in item.split(","):
            if code.strip().lower() == "all":
                for dataset in DATASETS:
                    seen.setdefault(dataset.code, dataset)
            elif code.strip():
                dataset = get(code)
                seen.setdefault(dataset.code, dataset)
    if not seen:
        raise UnknownDatasetError(f"no dataset given; valid datasets: {', '.join(sorted(BY_CODE))}")
    return list(seen.values())
