"""Generic datasets: deterministic rows for any spec endpoint, by field name and type.

The 16 core datasets have calibrated generators (``generators.py``); every other path the
spec documents under ``/datasets/``, ``/balancing/settlement/`` and ``/reference/`` is answered
from here, with no per-dataset code: the response schema gives the fields, their types,
formats, enums, nullability and examples; the request parameters give the window; field-name
conventions (``settlementDate``, ``settlementPeriod``, ``startTime``, ``publishTime``,
``nationalGridBmUnit``, ``fuelType``, ...) make the values of one row agree with each other and
with the window asked for.

Rows are made per *bucket*, the UTC half hour a row's *anchor* falls in, exactly as the
calibrated generators do: the anchor is the field the API filters the dataset's window on
(``publishTime`` for publish windows, ``timeFrom``/``time``/``startTime`` for from/to windows,
else the settlement period itself). A request generates only the buckets it overlaps and keeps
the rows whose anchor is inside its window, so nothing outside the window is ever served.

Families, read from the schema and the endpoint's own summary:

* rows anchored on a period or an instant describe that period (outturn, BM-unit data);
* rows anchored on ``publishTime`` are publications: a forecast (its summary says forecast,
  ahead, forward view or indicated) publishes a horizon of future targets, other publications
  describe the period just ended, or the day, week, month or year they are published in;
* one *entity* field, when the schema has one (BM unit, boundary, fuel type, PSR type, GSP
  group, ...), gives one row per entity per target, and every other categorical field is a
  function of the entity, so keys of the form (entity, time) are unique.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import random
import re
from collections.abc import Callable, Iterable
from typing import Any

from worker.elexon import catalog, settlement
from worker.elexon import spec as elexon_spec
from worker.sim import queries, reference, spec, window_limits
from worker.sim.generators import EPOCH, HALF_HOUR, Row, bucket_floor, iso
from worker.sim.queries import BadRequest, Params, first
from worker.sim.spec import Endpoint, Param, Schema, resolve
from worker.sim.units import BmUnit, fleet

# Request parameter pairs that bound a window on a row's instant field.
INSTANT_PAIRS: dict[str, tuple[str, str | None]] = {
    # from-name: (to-name, row field the API filters on; None = inferred)
    "from": ("to", None),
    "publishDateTimeFrom": ("publishDateTimeTo", "publishTime"),
    "measurementDateTimeFrom": ("measurementDateTimeTo", "measurementTime"),
    "submissionDateTimeFrom": ("submissionDateTimeTo", "submissionDateTime"),
}
# What from/to filter on when the catalog does not say: the first of these the rows have.
FROM_TO_FIELDS = ("timeFrom", "time", "startTime")
# Anchors that mark a publication (the row describes something else: a target).
PUBLICATION_FIELDS = ("publishTime", "submissionDateTime")
_FORWARD_WORDS = re.compile(r"forecast|ahead|forward view|indicated", re.IGNORECASE)

# Target kinds, by the fields a row has (first match wins).
_PERIOD_FIELDS = ("startTime", "settlementPeriod", "timeFrom", "halfHourEndTime")
_DATE_FIELDS = ("forecastDate", "settlementDate", "measurementDate", "effectiveFrom")
_WEEK_FIELDS = ("week", "forecastWeek", "calendarWeekNumber", "forecastWeekCommencingDate")
_MONTH_FIELDS = ("month", "forecastMonth")
_YEAR_FIELDS = ("year", "forecastYear")
# Publications per forecast and what they cover: (buckets between publications, targets).
_FORWARD_PERIODS = (4, range(1, 49))
_FORWARD_DAYS = range(1, 15)
_FORWARD_WEEKS = range(1, 53)
_FORWARD_MONTHS = range(1, 13)
_FORWARD_YEARS = range(1, 4)
# Daily publications appear in this settlement period of their day (about 10:00 local).
_DAILY_PERIOD = 20
# Work (rows plus window_limits.BUCKET_WORK per half hour) above which a generic answer is
# refused as too large a range: about seven weeks of a per-unit dataset at scale 1, a few
# seconds to generate. Generic rows cost more per row than the calibrated generators' (they
# are built field by field from the schema), so the cap is lower than theirs.
WORK_BUDGET = 400_000
# Share of the BM-unit fleet that has a row in one bucket of a per-unit dataset.
_UNIT_SHARE = 0.05

# Integer fields that identify or date a row rather than measure something.
_NOT_MEASURED = ("period", "year", "week", "number", "sequence", "id", "level")
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
INT32_MAX = 2**31 - 1

# ---------------------------------------------------------------- entities

_BM_UNIT_FIELDS = (
    "nationalGridBmUnit",
    "bmUnit",
    "nationalGridBmUnitId",
    "elexonBmUnit",
    "registeredResourceName",
)
PSR_TYPES = (
    "Biomass",
    "Fossil Gas",
    "Fossil Hard coal",
    "Fossil Oil",
    "Hydro Pumped Storage",
    "Hydro Run-of-river and poundage",
    "Nuclear",
    "Other",
    "Solar",
    "Wind Offshore",
    "Wind Onshore",
)
_BOUNDARIES = ("N", "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9")
_PARTIES = ("INVE", "SMARTEST", "ADELA", "UKPR", "OCTOPUS", "EDFE")
_TRADING_UNITS = ("DEFAULT__A", "DEFAULT__B", "DEFAULT__C", "TU_NORTH", "TU_SOUTH")


def _entity_table(
    properties: dict[str, Schema], units: tuple[BmUnit, ...]
) -> tuple[str, list[Row]]:
    """The entity dimension of a row schema: its name and one field-values dict per entity."""
    names = set(properties)
    bm_id = properties.get("id", {}).get("example")
    if names & set(_BM_UNIT_FIELDS) or (isinstance(bm_id, str) and bm_id[:2] in ("T_", "E_")):
        return "bm_unit", [reference.unit_fields(unit) for unit in units]
    if "boundary" in names:
        return "boundary", [{"boundary": b} for b in _BOUNDARIES]
    if "fuelType" in names:
        return "fuelType", [
            {
                "fuelType": fuel,
                "interconnector": fuel.startswith("INT"),
                "interconnectorName": reference.INTERCONNECTOR_NAMES.get(fuel),
            }
            for fuel in reference.FUEL_TYPES
        ]
    if "psrType" in names:
        return "psrType", [{"psrType": psr} for psr in PSR_TYPES]
    if names & {"gspGroupId", "region"}:
        return "gspGroup", [
            {"gspGroupId": gsp, "region": name, "gspGroupName": name}
            for gsp, name in reference.GSP_GROUPS
        ]
    if "dataProvider" in names:
        return "dataProvider", [{"dataProvider": p} for p in ("APXMIDP", "N2EXMIDP")]
    if "tradingUnitName" in names:
        return "tradingUnit", [{"tradingUnitName": t} for t in _TRADING_UNITS]
    if names & {"bscPartyId", "participantId"}:
        return "party", [{"bscPartyId": p, "participantId": p} for p in _PARTIES]
    if "flowDirection" in names:
        return "flowDirection", [{"flowDirection": d} for d in ("Up", "Down")]
    return "", [{}]


# ---------------------------------------------------------------- targets


@dataclasses.dataclass(frozen=True)
class Target:
    """What a row is about: a settlement period (start, day, number) and a calendar date."""

    start: dt.datetime
    day: dt.date
    period: int
    date: dt.date

    @classmethod
    def of_period(cls, start: dt.datetime) -> Target:
        day, period = settlement.period_of(start)
        return cls(start, day, period, day)

    @classmethod
    def of_date(cls, date: dt.date) -> Target:
        return cls(settlement.day_window_utc(date)[0], date, 1, date)


def _add_months(date: dt.date, months: int) -> dt.date:
    index = date.year * 12 + date.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


@dataclasses.dataclass
class _Context:
    """Everything one row's values are derived from."""

    anchor: dt.datetime
    target: Target
    entity: Row
    rng: random.Random
    seq: int
    n: int


ValueFn = Callable[[_Context], Any]


# ---------------------------------------------------------------- the dataset


class GenericDataset:
    """Rows of one dataset (all spec paths sharing a :func:`spec.dataset_key`), per bucket."""

    descending = False

    def __init__(
        self,
        key: str,
        endpoints: list[Endpoint],
        seed: int,
        scale: float,
        dataset: catalog.Dataset | None = None,
        variant: str = "",
    ) -> None:
        self.key = key
        # A path value that selects different rows of the same family (bidOffer: bid, offer).
        self.variant = variant
        self.endpoints = endpoints
        self.dataset = dataset
        self.code = dataset.code if dataset else key
        self.seed = seed
        self.scale = scale
        # The richest schema of the family (stream and list rows are the same shape).
        shape = max(endpoints, key=lambda e: len(e.properties))
        self.properties = shape.properties
        self.text = " ".join(e.text for e in endpoints)
        names = {p.name for e in endpoints for p in e.params}
        self.anchor = self._anchor(names)
        self.publication = self.anchor in PUBLICATION_FIELDS
        self.forward = self.publication and bool(_FORWARD_WORDS.search(self.text))
        self.target_kind = self._target_kind()
        self.entity_kind, self._entities = _entity_table(self.properties, fleet(seed, scale))
        self.earliest = dataset.earliest if dataset else dt.date(2000, 1, 1)
        self.value_fields = self._measured_fields()
        self._plan = [
            (name, self._value_fn(name, schema)) for name, schema in self.properties.items()
        ]
        self._cached_rows = functools.lru_cache(maxsize=8)(self._bucket_rows)

    # ------------------------------------------------------------ shape decisions

    def _anchor(self, names: set[str]) -> str | None:
        """The row field a window filters on; None when rows are keyed by settlement period."""
        for name, (_, field) in INSTANT_PAIRS.items():
            if name not in names:
                continue
            if field is None:
                field = self.from_to_field()
            if field and field in self.properties:
                return field
        return None

    def from_to_field(self) -> str | None:
        """What ``from``/``to`` bound: the catalog's time field, else the first instant
        field of :data:`FROM_TO_FIELDS` the rows carry, else the settlement period."""
        if self.dataset is not None:
            # The catalog's word, which the client checks rows against.
            return self.dataset.time_field if self.dataset.time_field in self.properties else None
        return next((f for f in FROM_TO_FIELDS if f in self.properties), None)

    def _measured_fields(self) -> tuple[str, ...]:
        """Numbers a "revise" fault may change: never keys, versions, periods or years."""
        fixed = set(self.dataset.natural_key) if self.dataset else set()
        if self.dataset and self.dataset.version_field:
            fixed.add(self.dataset.version_field)
        return tuple(
            name
            for name, schema in self.properties.items()
            if resolve(schema).get("type") in ("number", "integer")
            and name not in fixed
            and not any(word in name.lower() for word in _NOT_MEASURED)
        )

    def _target_kind(self) -> str:
        names = set(self.properties)
        for kind, fields in (
            ("period", _PERIOD_FIELDS),
            ("date", _DATE_FIELDS),
            ("week", _WEEK_FIELDS),
            ("month", _MONTH_FIELDS),
            ("year", _YEAR_FIELDS),
        ):
            if names & set(fields):
                return kind
        return "none"

    # ------------------------------------------------------------ rows

    def rows(self, start: dt.datetime) -> list[Row]:
        """Rows whose anchor falls in the half hour starting at ``start`` (do not modify)."""
        return self._cached_rows(start)

    def _bucket_rows(self, start: dt.datetime) -> list[Row]:
        if self.publication and self.target_kind not in ("period", "none"):
            # Daily publications: most buckets hold none, and are answered without work.
            day, period = settlement.period_of(start)
            if period != min(_DAILY_PERIOD, settlement.periods_in_day(day)):
                return []
        rng = random.Random(f"{self.seed}:{self.key}:{self.variant}:{int(start.timestamp())}")
        index = int((start - EPOCH).total_seconds()) // 1800
        rows: list[Row] = []
        for anchor, targets in self._publications(start, rng):
            entities = self._entities
            if self.entity_kind == "bm_unit":
                count = min(len(entities), max(1, round(len(entities) * _UNIT_SHARE)))
                entities = sorted(rng.sample(entities, count), key=lambda e: e["_order"])
            for target in targets:
                for entity in entities:
                    row_anchor = anchor
                    if self.anchor == "time":
                        # Dynamic data is notified at any minute of the period.
                        row_anchor = anchor + dt.timedelta(minutes=int(rng.random() * 30))
                    context = _Context(
                        row_anchor, target, entity, rng, index * 4096 + len(rows), len(rows)
                    )
                    rows.append({name: fn(context) for name, fn in self._plan})
        return rows

    def _publications(
        self, start: dt.datetime, rng: random.Random
    ) -> Iterable[tuple[dt.datetime, list[Target]]]:
        """(anchor instant, targets) of each publication in the bucket."""
        here = Target.of_period(start)
        if not self.publication:
            return [(start, [here])]
        published = start + dt.timedelta(minutes=rng.randrange(30), seconds=rng.randrange(60))
        kind, forward = self.target_kind, self.forward
        if kind in ("period", "none"):
            if not forward or kind == "none":
                target = here if kind == "none" else Target.of_period(start - HALF_HOUR)
                return [(published, [target])]
            every, ahead = _FORWARD_PERIODS
            if (int((start - EPOCH).total_seconds()) // 1800) % every:
                return []
            return [(published, [Target.of_period(start + k * HALF_HOUR) for k in ahead])]
        # Daily publications: once a day, in a fixed period (or the day's last, if shorter).
        if here.period != min(_DAILY_PERIOD, settlement.periods_in_day(here.day)):
            return []
        day = here.day
        if kind == "date":
            dates = [day + dt.timedelta(days=k) for k in (_FORWARD_DAYS if forward else (0,))]
        elif kind == "week":
            monday = day - dt.timedelta(days=day.weekday())
            dates = [monday + dt.timedelta(weeks=k) for k in (_FORWARD_WEEKS if forward else (0,))]
        elif kind == "month":
            dates = [_add_months(day, k) for k in (_FORWARD_MONTHS if forward else (0,))]
        else:
            dates = [dt.date(day.year + k, 1, 1) for k in (_FORWARD_YEARS if forward else (0,))]
        return [(published, [Target.of_date(date) for date in dates])]

    # ------------------------------------------------------------ values

    def _value_fn(self, name: str, schema: Schema) -> ValueFn:
        """How to fill one field, decided once per dataset from its name and schema."""
        schema = resolve(schema)
        kind, fmt = schema.get("type"), schema.get("format")
        nullable, example = bool(schema.get("nullable")), schema.get("example")
        if name == self.anchor:
            return lambda c: _iso(c.anchor)
        if name in _ENTITY_FIELDS and self.entity_kind:
            fallback = self._value_fn_by_type(name, schema, kind, fmt, nullable, example)
            return lambda c: c.entity[name] if name in c.entity else fallback(c)
        if name == "dataset":
            code = self.code
            return lambda c: code
        return self._value_fn_by_type(name, schema, kind, fmt, nullable, example)

    def _value_fn_by_type(
        self, name: str, schema: Schema, kind: Any, fmt: Any, nullable: bool, example: Any
    ) -> ValueFn:
        if "enum" in schema:
            choices = list(schema["enum"])
            return lambda c: c.rng.choice(choices)
        if kind == "string" and fmt == "date-time":
            if self.publication and name in PUBLICATION_FIELDS:
                # Submitted, then published a few seconds later: one instant per publication.
                return lambda c: _iso(c.anchor + dt.timedelta(seconds=10))
            return _instant_fn(name, self.target_kind)
        if kind == "string" and fmt == "date":
            return _date_fn(name)
        if kind == "integer":
            return _integer_fn(name, fmt, example, self.target_kind)
        if kind == "number":
            return _number_fn(name, nullable, example)
        if kind == "boolean":
            default = example if isinstance(example, bool) else False
            return lambda c: (not default) if c.rng.random() < 0.15 else default
        if kind == "object" and "properties" in schema:
            parts = [
                (key, self._value_fn(key, resolve(sub)))
                for key, sub in schema["properties"].items()
            ]
            return lambda c: {key: fn(c) for key, fn in parts}
        if kind == "array":
            item = resolve(schema.get("items", {}))
            item_fn = self._value_fn(name.rstrip("s") or name, item)
            return lambda c: [item_fn(c) for _ in range(1 + c.n % 2)]
        if kind == "string":
            return _string_fn(name, self.code, example, nullable)
        return lambda c: None


# Fields an entity may set (the union of every entity table's keys).
_ENTITY_FIELDS = frozenset(
    {
        *_BM_UNIT_FIELDS,
        "id",
        "bmUnitType",
        "leadPartyName",
        "fuelType",
        "registeredResourceEicCode",
        "boundary",
        "interconnector",
        "interconnectorName",
        "psrType",
        "gspGroupId",
        "gspGroupName",
        "region",
        "dataProvider",
        "tradingUnitName",
        "bscPartyId",
        "participantId",
        "flowDirection",
    }
)


# Row instants repeat across rows and buckets (targets, publications): format each once.
_iso = functools.lru_cache(maxsize=1 << 14)(iso)


def _instant_fn(name: str, target_kind: str) -> ValueFn:
    lower = name.lower()
    if name in ("startTime", "timeFrom", "time", "publishingPeriodCommencingTime"):
        return lambda c: _iso(c.target.start)
    if name in ("timeTo", "endTime", "halfHourEndTime"):
        return lambda c: _iso(c.target.start + HALF_HOUR)
    if name in ("acceptanceTime", "notificationTime"):
        return lambda c: _iso(c.target.start - dt.timedelta(minutes=c.rng.randint(2, 30)))
    if name == "eventStartTime":
        return lambda c: _iso(c.target.start + dt.timedelta(hours=c.rng.randint(1, 48)))
    if name == "eventEndTime":
        return lambda c: _iso(c.target.start + dt.timedelta(hours=c.rng.randint(49, 240)))
    if "created" in lower or "received" in lower or "submission" in lower or name == "publishTime":
        # Made after the period it reports on.
        return lambda c: _iso(
            c.target.start + HALF_HOUR + dt.timedelta(minutes=c.rng.randint(1, 50))
        )
    return lambda c: _iso(c.target.start)


def _date_fn(name: str) -> ValueFn:
    if name == "settlementDate" or name.endswith("SettlementDate"):
        return lambda c: c.target.day.isoformat()
    if name == "forecastWeekCommencingDate":
        return lambda c: (c.target.date - dt.timedelta(days=c.target.date.weekday())).isoformat()
    return lambda c: c.target.date.isoformat()


def _magnitude(example: Any) -> float:
    return float(example) if isinstance(example, (int, float)) and example else 1000.0


def _integer_fn(name: str, fmt: Any, example: Any, target_kind: str) -> ValueFn:
    lower = name.lower()
    if "settlementperiod" in lower:
        return lambda c: c.target.period
    if name in ("year", "forecastYear"):
        if target_kind == "week":
            return lambda c: c.target.date.isocalendar()[0]
        return lambda c: c.target.date.year
    if name in ("week", "forecastWeek", "calendarWeekNumber"):
        return lambda c: c.target.date.isocalendar()[1]
    if "revisionnumber" in lower:
        return lambda c: 1
    if name in ("pairId", "bidOfferPairId"):
        return lambda c: 1 + c.n % 5
    if "sequence" in lower or name in ("acceptanceNumber", "acceptanceId", "id"):
        return lambda c: c.seq % INT32_MAX
    if name == "creditDefaultLevel":
        return lambda c: c.rng.randint(1, 3)
    base = _magnitude(example)
    limit = INT32_MAX if fmt == "int32" else 2**53
    return lambda c: max(-limit, min(limit, round(base * c.rng.uniform(0.2, 1.8))))


def _number_fn(name: str, nullable: bool, example: Any) -> ValueFn:
    base = _magnitude(example)
    # Fields the spec shows as null in its example are often null in real data.
    null_share = (0.5 if example is None else 0.03) if nullable else 0.0
    keep = 1.0 - null_share

    def number(c: _Context) -> float | None:
        # One draw decides both whether the value is null and what it is (hot path).
        draw = c.rng.random()
        if draw < null_share:
            return None
        return round(base * (0.2 + 1.6 * (draw - null_share) / keep), 3)

    return number


def _string_fn(name: str, code: str, example: Any, nullable: bool) -> ValueFn:
    if name in ("month", "forecastMonth"):
        return lambda c: MONTHS[c.target.date.month - 1]
    if name == "documentId":
        return lambda c: f"NGET-EMFIP-{code}-{c.seq:012d}"
    if name in (
        "timeSeriesId",
        "bidId",
        "mrid",
        "mRID",
        "demandControlId",
        "contractIdentification",
    ):
        return lambda c: f"{code}-{c.seq:012d}"
    if name == "serialNumber":
        return lambda c: f"{c.seq % 10**12:012d}"
    if name == "amendmentFlag":
        return lambda c: "ORI"
    if isinstance(example, str):
        return lambda c: example
    constant = _UNDOCUMENTED_STRINGS.get(name, name.upper())
    return lambda c: constant


# Strings the spec gives no example for, with values of the real data's kind.
_UNDOCUMENTED_STRINGS = {
    "systemZone": "N",
    "biddingZone": "10YGB----------A",
    "forecastDateTimezone": "Europe/London",
}


# ---------------------------------------------------------------- requests


@dataclasses.dataclass
class Selection:
    """What one request asks of a generic dataset: buckets and how to filter their rows."""

    buckets: list[dt.datetime]
    field: str | None = None
    lower: str | None = None
    upper: str | None = None
    # Inclusive (settlementDate, period) bounds.
    period_lower: tuple[str, int] | None = None
    period_upper: tuple[str, int] | None = None
    filters: dict[str, set[str]] = dataclasses.field(default_factory=dict)
    edge: dt.datetime | None = None
    snapshot: bool = False

    @property
    def days(self) -> set[dt.date]:
        """Settlement days the request touches (for the poison fault)."""
        return {
            settlement.local_date(start)
            for start in self.buckets
            if start != self.edge or len(self.buckets) == 1
        }


class RowSource:
    """What :func:`select` needs of a dataset: rows per bucket, anchor, first day."""

    code: str
    anchor: str | None
    earliest: dt.date
    descending: bool

    def rows(self, start: dt.datetime) -> list[Row]:  # pragma: no cover - protocol
        raise NotImplementedError


class CalibratedSource(RowSource):
    """A calibrated generator seen through the generic request handling, for the spec
    paths of a core dataset its own routes do not cover (e.g. system prices per period)."""

    def __init__(self, generator: Any) -> None:
        self.generator = generator
        self.dataset = generator.dataset
        self.code = self.dataset.code
        self.anchor = self.dataset.time_field
        self.earliest = self.dataset.earliest
        self.descending = generator.descending

    def rows(self, start: dt.datetime) -> list[Row]:
        rows: list[Row] = self.generator.rows(start)
        return rows


def select(source: Any, selection: Selection) -> list[Row]:
    """The rows of ``selection``'s buckets that pass its bounds and filters."""
    buckets = reversed(selection.buckets) if source.descending else selection.buckets
    out: list[Row] = []
    for start in buckets:
        rows = source.rows(start)
        if selection.field and (selection.lower or selection.upper):
            field, lower, upper = selection.field, selection.lower, selection.upper
            rows = [
                r
                for r in rows
                if isinstance(r.get(field), str)
                and (lower is None or r[field] >= lower)
                and (upper is None or r[field] <= upper)
            ]
        if selection.period_lower or selection.period_upper:
            rows = [r for r in rows if _in_periods(r, selection)]
        for field, accepted in selection.filters.items():
            rows = [r for r in rows if _as_text(r.get(field)) in accepted]
        out.extend(rows)
    return out


def _in_periods(row: Row, selection: Selection) -> bool:
    period = row.get("settlementPeriod", row.get("settlementPeriodFrom"))
    key = (row.get("settlementDate"), period)
    if key[0] is None or key[1] is None:
        return True
    return (selection.period_lower is None or key >= selection.period_lower) and (
        selection.period_upper is None or key <= selection.period_upper
    )


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def spec_limit(path: str) -> dt.timedelta | None:
    """The widest window the spec states for a path (its own description), else None."""
    hours = elexon_spec.stated_limit_hours(path)
    return None if hours is None else dt.timedelta(hours=hours)


def oversized(source: Any, selection: Selection, budget: int) -> str | None:
    """The 400 message for an answer whose work is estimated above ``budget`` (capped at
    :data:`WORK_BUDGET`), as :func:`window_limits.oversized` does for the calibrated
    datasets, or None."""
    budget = min(budget, WORK_BUDGET)
    buckets = selection.buckets
    if len(buckets) <= 2 * 50:  # two settlement days or less is never refused
        return None
    rows = len(source.rows(buckets[len(buckets) // 2])) * len(buckets)
    if rows + window_limits.BUCKET_WORK * len(buckets) <= budget:
        return None
    days = (buckets[-1] - buckets[0]).total_seconds() / 86400
    return (
        f"The requested date range is too large: {days:.4g} days of {source.code} is about "
        f"{rows:,} rows; request a narrower range."
    )


def build_selection(
    source: Any,
    endpoint: Endpoint,
    path_values: dict[str, str],
    params: Params,
    now: dt.datetime,
    max_window: dt.timedelta | None,
) -> Selection:
    """Validate a request the way the real API does and turn it into a :class:`Selection`.

    Raises :class:`queries.BadRequest` (a 400 naming the parameter) on a missing required
    parameter, a malformed value, a reversed window or one wider than ``max_window``.
    """
    _validate(endpoint, path_values, params)
    names = endpoint.by_name
    day_text = path_values.get("settlementDate") or (
        first(params, "settlementDate") if "settlementDate" in names else None
    )
    period_text = path_values.get("settlementPeriod") or (
        first(params, "settlementPeriod")
        if "settlementPeriod" in names and names["settlementPeriod"].type != "array"
        else None
    )
    filters = _filters(source, endpoint, params)
    if day_text is not None:
        day = queries.parse_date("settlementDate", day_text)
        if period_text is not None:
            period = queries.parse_period("settlementPeriod", period_text)
            buckets = []
            if day >= source.earliest and period <= settlement.periods_in_day(day):
                start = settlement.period_start(day, period)
                buckets = [start] if start <= now else []
            return Selection(buckets, filters=filters)
        return Selection(queries.day_buckets(source.earliest, day, day, now), filters=filters)
    if "settlementDateFrom" in names and (
        "settlementDateFrom" in params or "settlementDateTo" in params
    ):
        return _dates_selection(source, endpoint, params, now, max_window, filters)
    for name_from, (name_to, field) in INSTANT_PAIRS.items():
        if name_from in names and (name_from in params or name_to in params):
            if field is None:
                field = source.anchor if source.anchor in FROM_TO_FIELDS else None
                if field is None and isinstance(source, GenericDataset):
                    field = source.from_to_field()
            return _instant_selection(
                source, params, name_from, name_to, field, now, max_window, filters
            )
    if "publishDate" in names and "publishDate" in params:
        day = queries.parse_date("publishDate", first(params, "publishDate") or "")
        start, end = settlement.day_window_utc(day)
        selection = Selection(
            [],
            field="publishTime",
            lower=iso(start),
            upper=iso(end - dt.timedelta(seconds=1)),
            filters=filters,
        )
        return _cover(source, selection, start, end - dt.timedelta(seconds=1), now)
    if not _has_window(endpoint):
        # Nothing to window on (reference data, notices): today's snapshot.
        today = settlement.day_window_utc(settlement.current_settlement_day(now))[0]
        return Selection([bucket_floor(today)], filters=filters, snapshot=True)
    # No window given: the API's default, today's data so far.
    start, _ = settlement.day_window_utc(settlement.current_settlement_day(now))
    field = source.anchor
    selection = Selection([], field=field, lower=iso(start) if field else None, filters=filters)
    return _cover(source, selection, start, now, now)


def _has_window(endpoint: Endpoint) -> bool:
    names = endpoint.by_name
    return bool(
        endpoint.path_params
        or set(INSTANT_PAIRS) & set(names)
        or {"settlementDate", "settlementDateFrom", "publishDate"} & set(names)
    )


def _validate(endpoint: Endpoint, path_values: dict[str, str], params: Params) -> None:
    """Required parameters present; every documented value parses as its schema says."""
    for param in endpoint.params:
        if param.location == "path":
            values = [path_values.get(param.name, "")]
        else:
            values = [v for v in params.get(param.name, []) if v != "" or param.required]
            if not values:
                if param.required:
                    raise BadRequest(param.name, f"The {param.name} field is required.")
                continue
        for value in values:
            _check_value(param, value)


def _check_value(param: Param, text: str) -> None:
    schema = param.schema
    if schema.get("type") == "array":
        schema = schema.get("items", {})
    kind, fmt = schema.get("type"), schema.get("format")
    name = param.name
    if "enum" in schema and text not in schema["enum"]:
        raise BadRequest(
            name,
            f"The value '{text}' is not valid for {name}: expected one of "
            f"{', '.join(map(str, schema['enum']))}.",
        )
    if kind == "string" and fmt == "date":
        queries.parse_date(name, text)
    elif kind == "string" and fmt == "date-time":
        queries.parse_instant(name, text)
    elif kind == "integer":
        if "settlementperiod" in name.lower():
            queries.parse_period(name, text)
        else:
            try:
                value = int(text)
            except ValueError:
                raise BadRequest(
                    name, f"The value '{text}' is not valid for {name}: expected an integer."
                ) from None
            if not -INT32_MAX <= value <= INT32_MAX:
                raise BadRequest(name, f"{name} {text} is out of range.")
    elif kind == "boolean" and text.lower() not in ("true", "false"):
        raise BadRequest(
            name, f"The value '{text}' is not valid for {name}: expected true or false."
        )


# Query parameters whose names differ from the row field they filter.
_FILTER_ALIASES = {"partyIds": "leadPartyId", "dataProviders": "dataProvider"}


def _filters(source: Any, endpoint: Endpoint, params: Params) -> dict[str, set[str]]:
    """Row filters: documented non-window parameters naming a row field (blank values ignored)."""
    fields = set(getattr(source, "properties", None) or endpoint.properties)
    filters: dict[str, set[str]] = {}
    window_names = {
        "settlementDate",
        "settlementPeriodFrom",
        "settlementPeriodTo",
        "format",
        "publishDate",
    }
    window_names |= set(INSTANT_PAIRS) | {to for to, _ in INSTANT_PAIRS.values()}
    window_names |= {"settlementDateFrom", "settlementDateTo"}
    for param in endpoint.params:
        if param.location != "query" or param.name in window_names:
            continue
        if param.name == "settlementPeriod" and param.type != "array":
            continue
        values = {
            v.lower() if param.type == "boolean" else v for v in params.get(param.name, ()) if v
        }
        if not values:
            continue
        field = _FILTER_ALIASES.get(param.name, param.name)
        if field not in fields and field.rstrip("s") in fields:
            field = field.rstrip("s")
        if field == "bmUnit" and "bmUnit" not in fields and "nationalGridBmUnit" in fields:
            field = "nationalGridBmUnit"
        if field in fields:
            filters[field] = values
    return filters


def _dates_selection(
    source: Any,
    endpoint: Endpoint,
    params: Params,
    now: dt.datetime,
    max_window: dt.timedelta | None,
    filters: dict[str, set[str]],
) -> Selection:
    text_from, text_to = first(params, "settlementDateFrom"), first(params, "settlementDateTo")
    if text_from is None or text_to is None:
        missing = "settlementDateFrom" if text_from is None else "settlementDateTo"
        raise BadRequest(missing, f"The {missing} field is required when the other date is given.")
    day_from = queries.parse_date("settlementDateFrom", text_from)
    day_to = queries.parse_date("settlementDateTo", text_to)
    if day_to < day_from:
        raise BadRequest("", queries.REVERSED_WINDOW)
    days = (day_to - day_from).days + 1
    if max_window is not None and dt.timedelta(days=days) > max_window:
        raise BadRequest(
            "settlementDateTo",
            f"The range settlementDateFrom..settlementDateTo spans {days} days; {source.code} "
            f"allows at most {max_window.days} days per request.",
        )
    buckets = queries.day_buckets(source.earliest, day_from, day_to, now)
    selection = Selection(buckets, filters=filters)
    period_from = first(params, "settlementPeriodFrom")
    period_to = first(params, "settlementPeriodTo")
    if period_from is not None:
        selection.period_lower = (
            day_from.isoformat(),
            queries.parse_period("settlementPeriodFrom", period_from),
        )
    if period_to is not None:
        selection.period_upper = (
            day_to.isoformat(),
            queries.parse_period("settlementPeriodTo", period_to),
        )
    return selection


def _instant_selection(
    source: Any,
    params: Params,
    name_from: str,
    name_to: str,
    field: str | None,
    now: dt.datetime,
    max_window: dt.timedelta | None,
    filters: dict[str, set[str]],
) -> Selection:
    text_from, text_to = first(params, name_from), first(params, name_to)
    for name, text in ((name_from, text_from), (name_to, text_to)):
        if text is None:
            raise BadRequest(name, f"The {name} field is required.")
    assert text_from is not None and text_to is not None
    lower, lower_date = queries.parse_instant(name_from, text_from)
    upper, upper_date = queries.parse_instant(name_to, text_to)
    selection = Selection([], field=field, filters=filters)
    if field is not None:
        selection.lower, selection.upper = queries._ceil_iso(lower), iso(upper)
    if name_from == "from":
        period_from = first(params, "settlementPeriodFrom")
        period_to = first(params, "settlementPeriodTo")
        if period_from is not None:
            period = queries.parse_period("settlementPeriodFrom", period_from)
            selection.lower, selection.period_lower = None, (lower_date.isoformat(), period)
            lower = settlement.period_start(lower_date, period)
        if period_to is not None:
            period = queries.parse_period("settlementPeriodTo", period_to)
            selection.upper, selection.period_upper = None, (upper_date.isoformat(), period)
            upper = settlement.period_start(upper_date, period)
    if upper < lower:
        raise BadRequest("", queries.REVERSED_WINDOW)
    if max_window is not None and upper - lower > max_window:
        raise BadRequest(
            name_to,
            f"The window {name_from}..{name_to} is {queries._duration(upper - lower)}; "
            f"{source.code} allows at most {queries._duration(max_window)} per request.",
        )
    if field is None:
        # Rows keyed by settlement period: a period is in the window when its start is.
        covered = _cover(source, Selection([]), lower, upper, now)
        selection.buckets = [start for start in covered.buckets if start >= lower]
        selection.edge = covered.edge
        return selection
    return _cover(source, selection, lower, upper, now)


def _cover(
    source: Any, selection: Selection, lower: dt.datetime, upper: dt.datetime, now: dt.datetime
) -> Selection:
    """Add the buckets covering [lower, upper], cut at now and at the dataset's first day."""
    if selection.field and (selection.upper is None or upper > now):
        selection.upper = iso(now)
    selection.edge = min(upper, now)
    selection.buckets.extend(queries.window_buckets(source.earliest, lower, selection.edge))
    return selection


class ReferenceSource(RowSource):
    """A reference snapshot (BM units, interconnectors, fuel types, REMIT lists) as of the
    settlement day of the bucket asked for."""

    anchor = None
    earliest = dt.date(2000, 1, 1)
    descending = False

    def __init__(self, key: str, seed: int, scale: float, dataset: catalog.Dataset | None) -> None:
        self.key = key
        self.code = dataset.code if dataset else key
        self.seed = seed
        self.scale = scale

    def rows(self, start: dt.datetime) -> list[Any]:
        rows = reference.snapshot(self.key, self.seed, self.scale, settlement.local_date(start))
        return rows or []


def catalog_source(dataset: catalog.Dataset, seed: int, scale: float) -> GenericDataset:
    """Generic rows of a catalog dataset (the spec paths of its endpoint's family), for
    feeds other than the HTTP face: the IRIS simulator sends them too."""
    key = spec.dataset_key(dataset.endpoint)
    family = [e for e in spec.endpoints() if spec.dataset_key(e.path) == key]
    return GenericDataset(key, family, seed, scale, dataset)


def revisable(source: Any) -> bool:
    """Whether the "revise" fault applies: a catalog dataset of object rows with values to
    change, whose version is not the field its window is on (a later version there would
    move the row out of the window asked for)."""
    dataset = getattr(source, "dataset", None)
    return (
        isinstance(source, GenericDataset)
        and dataset is not None
        and not dataset.snapshot
        and bool(source.value_fields)
        and dataset.version_field != source.anchor
    )
