"""Request parameters to the buckets a response needs, validated the way the real API does.

Each catalog ``param_style`` names its window differently (see :data:`catalog.WINDOW_PARAMS`);
all are inclusive at both ends. Malformed values, reversed windows and windows wider than the
limit the spec states (``spec_limit``; no other: ``--window-limit`` adds hidden ones, see
:mod:`worker.sim.window_limits`) are 400s naming the parameter. Unknown parameter names are ignored,
and a request without its (optional) window gets the API's default, today's data so far:
a client that misspells a parameter gets a plausible 200 it must not mistake for its window.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

from worker.elexon import catalog, settlement
from worker.sim.generators import HALF_HOUR, Generator, Row, bucket_floor, iso

Params = dict[str, list[str]]

# Windows the OpenAPI spec marks as required (400 when absent); the others are optional.
_REQUIRED_WINDOW = {"from_to"}
_REQUIRED_WINDOW_CODES = {"REMIT"}
# Optional row filters of the real endpoints: query parameter -> row field.
ROW_FILTERS = {
    "bmUnit": "bmUnit",
    "fuelType": "fuelType",
    "dataProviders": "dataProvider",
    "boundary": "boundary",
    "settlementPeriod": "settlementPeriod",
}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Years the simulator will reason about; outside them the date arithmetic would overflow.
_YEARS = range(1900, 3000)


# The real API's answer to a window whose end is before its start: a model-level error (under
# ``errors[""]``, not the parameter's name), worded exactly so (a 400 recorded from the live API,
# quoted by the tests of public clients; see docs/third-party-clients.md). It is about order,
# not size, so a client must not take it for "range too large".
REVERSED_WINDOW = "The From field must not be later than the To field"


class BadRequest(ValueError):
    """A 400: which parameter was wrong and a message a person can act on."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.message = message


@dataclasses.dataclass
class Query:
    """What one request asks for: the buckets to generate and how to filter their rows."""

    buckets: list[dt.datetime]
    # Inclusive bounds on the row's time key (ISO strings compare in time order).
    lower: str | None = None
    upper: str | None = None
    # Inclusive bounds on (settlementDate, period) when settlementPeriodFrom/To are given.
    period_lower: tuple[str, int] | None = None
    period_upper: tuple[str, int] | None = None
    # Row field -> accepted values (as strings), from filters such as ``bmUnit``.
    row_filters: dict[str, set[str]] = dataclasses.field(default_factory=dict)
    # Where a time window ends: a bucket starting exactly there meets the window in one
    # instant only, e.g. next midnight for a day asked as from=00:00&to=24:00.
    edge: dt.datetime | None = None
    # The row field lower/upper bound, when not the dataset's time field (FUELINST asked by
    # publishDateTimeFrom/To filters on publishTime).
    bound_field: str | None = None

    @property
    def days(self) -> set[dt.date]:
        """Dataset-days the request is about (for poisoning): each bucket's settlement day,
        except a bucket that only touches the window's end instant."""
        return {
            settlement.local_date(start)
            for start in self.buckets
            if start != self.edge or len(self.buckets) == 1
        }

    def select(self, generator: Generator) -> list[Row]:
        """The matching rows, in the real API's order for the dataset."""
        dataset = generator.dataset
        time_field = self.bound_field or dataset.time_field
        period_field = dataset.period_field
        buckets = reversed(self.buckets) if generator.descending else self.buckets
        selected: list[Row] = []
        for start in buckets:
            rows = generator.rows(start)
            if time_field is None:
                # Filtered on the period start, which is the bucket start.
                if not self._in_time(iso(start)):
                    continue
            elif self.lower is not None or self.upper is not None:
                rows = [row for row in rows if self._in_time(row[time_field])]
            if (self.period_lower or self.period_upper) and period_field:
                rows = [
                    row
                    for row in rows
                    if self._in_periods((row["settlementDate"], row[period_field]))
                ]
            for field, accepted in self.row_filters.items():
                rows = [row for row in rows if str(row[field]) in accepted]
            selected.extend(rows)
        return selected

    def outside_rows(self, generator: Generator, limit: int) -> list[Row]:
        """A few rows from the bucket before the window: never part of the answer."""
        if not self.buckets:
            return []
        before = min(self.buckets) - HALF_HOUR
        if before < settlement.day_window_utc(generator.dataset.earliest)[0]:
            return []
        return generator.rows(before)[:limit]

    def _in_time(self, value: str) -> bool:
        return (self.lower is None or value >= self.lower) and (
            self.upper is None or value <= self.upper
        )

    def _in_periods(self, key: tuple[str, int]) -> bool:
        return (self.period_lower is None or key >= self.period_lower) and (
            self.period_upper is None or key <= self.period_upper
        )


# Every parameter name the simulator reads, to match names case-blind as ASP.NET binding does.
KNOWN_PARAMS = {
    name.lower(): name
    for name in (
        *(n for pair in catalog.WINDOW_PARAMS.values() for n in pair),
        *ROW_FILTERS,
        "settlementPeriodFrom",
        "settlementPeriodTo",
        "settlementDate",
    )
}


def canonical(params: Params) -> Params:
    """Parameters under their documented names; unknown names are kept (and so ignored)."""
    named: Params = {}
    for name, values in params.items():
        named.setdefault(KNOWN_PARAMS.get(name.lower(), name), []).extend(values)
    return named


def first(params: Params, name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def window_query(dataset: catalog.Dataset, params: Params, now: dt.datetime) -> Query:
    """The query of a ``/datasets/X[/stream]`` request, by the dataset's param style."""
    if dataset.param_style == "settlement_dates":
        query = _settlement_dates_query(dataset, params, now)
    else:
        query = _time_query(dataset, params, now)
    query.row_filters = _row_filters(dataset, params)
    return query


def path_date_query(dataset: catalog.Dataset, text: str, now: dt.datetime) -> Query:
    """``/balancing/settlement/system-prices/{settlementDate}``: one settlement day."""
    day = parse_date("settlementDate", text)
    return Query(day_buckets(dataset.earliest, day, day, now), upper=iso(now))


def period_query(dataset: catalog.Dataset, params: Params, now: dt.datetime) -> Query:
    """Non-stream PN/QPN: ``?settlementDate=D&settlementPeriod=N``, one period per call."""
    text_day, text_period = first(params, "settlementDate"), first(params, "settlementPeriod")
    if text_day is None:
        raise BadRequest("settlementDate", "The settlementDate field is required.")
    if text_period is None:
        raise BadRequest("settlementPeriod", "The settlementPeriod field is required.")
    day = parse_date("settlementDate", text_day)
    period = parse_period("settlementPeriod", text_period)
    buckets = []
    if day >= dataset.earliest and period <= settlement.periods_in_day(day):
        start = settlement.period_start(day, period)
        buckets = [start] if start <= now else []
    return Query(
        buckets,
        upper=iso(now),
        row_filters=_row_filters(dataset, params, skip=frozenset({"settlementPeriod"})),
    )


def _settlement_dates_query(dataset: catalog.Dataset, params: Params, now: dt.datetime) -> Query:
    name_from, name_to = catalog.WINDOW_PARAMS["settlement_dates"]
    text_from, text_to = first(params, name_from), first(params, name_to)
    if text_from is None and text_to is None and dataset.code in _PUBLISH_WINDOW_CODES:
        publish_from, publish_to = catalog.WINDOW_PARAMS["publish_time"]
        if publish_from in params or publish_to in params:
            return _publish_window_query(dataset, params, now)
    if text_from is None and text_to is None:
        today = settlement.current_settlement_day(now)
        return Query(day_buckets(dataset.earliest, today, today, now), upper=iso(now))
    for conflicting in catalog.WINDOW_PARAMS["publish_time"]:
        if conflicting in params:
            raise BadRequest(
                conflicting, f"The settlement date fields cannot be set when {conflicting} is set."
            )
    if text_from is None or text_to is None:
        missing = name_from if text_from is None else name_to
        raise BadRequest(missing, f"The {missing} field is required when the other date is given.")
    day_from, day_to = parse_date(name_from, text_from), parse_date(name_to, text_to)
    if day_to < day_from:
        raise BadRequest("", REVERSED_WINDOW)
    days = (day_to - day_from).days + 1
    if dataset.spec_limit is not None and dt.timedelta(days=days) > dataset.spec_limit:
        raise BadRequest(
            name_to,
            f"The range {name_from}..{name_to} spans {days} days; {dataset.code} allows at most "
            f"{dataset.spec_limit.days} days per request.",
        )
    return Query(day_buckets(dataset.earliest, day_from, day_to, now), upper=iso(now))


# Settlement-date endpoints that also take a publish window (FUELINST/FUELHH in the spec),
# with how long after its startTime a row is published.
_PUBLISH_WINDOW_CODES = {"FUELINST": dt.timedelta(minutes=5), "FUELHH": HALF_HOUR}


def _publish_window_query(dataset: catalog.Dataset, params: Params, now: dt.datetime) -> Query:
    """``?publishDateTimeFrom=T&publishDateTimeTo=T`` on a settlement-date endpoint: rows
    published in the window, both ends inclusive (00:00-00:30 gives FUELINST 7 x 20 rows)."""
    name_from, name_to = catalog.WINDOW_PARAMS["publish_time"]
    text_from, text_to = first(params, name_from), first(params, name_to)
    for name, text in ((name_from, text_from), (name_to, text_to)):
        if text is None:
            raise BadRequest(name, f"The {name} field is required when the other is given.")
    assert text_from is not None and text_to is not None
    lower, _ = parse_instant(name_from, text_from)
    upper, _ = parse_instant(name_to, text_to)
    if upper < lower:
        raise BadRequest("", REVERSED_WINDOW)
    query = Query([], lower=_ceil_iso(lower), upper=iso(upper), bound_field="publishTime")
    delay = _PUBLISH_WINDOW_CODES[dataset.code]
    # A row is published after its start: cover the starts from ``delay`` before the window.
    return _covering(dataset, query, lower - delay, upper, now)


def _time_query(dataset: catalog.Dataset, params: Params, now: dt.datetime) -> Query:
    name_from, name_to = catalog.WINDOW_PARAMS[dataset.param_style]
    text_from, text_to = first(params, name_from), first(params, name_to)
    required = dataset.param_style in _REQUIRED_WINDOW or dataset.code in _REQUIRED_WINDOW_CODES
    if text_from is None and text_to is None and not required:
        start, _ = settlement.day_window_utc(settlement.current_settlement_day(now))
        return _covering(dataset, Query([], lower=iso(start)), start, now, now)
    for name, text in ((name_from, text_from), (name_to, text_to)):
        if text is None:
            raise BadRequest(name, f"The {name} field is required.")
    assert text_from is not None and text_to is not None
    lower, lower_date = parse_instant(name_from, text_from)
    upper, upper_date = parse_instant(name_to, text_to)
    query = Query([], lower=_ceil_iso(lower), upper=iso(upper))
    if dataset.param_style == "from_to":
        # As the real API: a settlement period turns its from/to into a settlement date.
        period_from = _optional_period(params, "settlementPeriodFrom")
        period_to = _optional_period(params, "settlementPeriodTo")
        if period_from is not None:
            query.lower, query.period_lower = None, (lower_date.isoformat(), period_from)
            lower = settlement.period_start(lower_date, period_from)
        if period_to is not None:
            query.upper, query.period_upper = None, (upper_date.isoformat(), period_to)
            upper = settlement.period_start(upper_date, period_to)
    if upper < lower:
        raise BadRequest("", REVERSED_WINDOW)
    if dataset.spec_limit is not None and upper - lower > dataset.spec_limit:
        raise BadRequest(
            name_to,
            f"The window {name_from}..{name_to} is {_duration(upper - lower)}; {dataset.code} "
            f"allows at most {_duration(dataset.spec_limit)} per request.",
        )
    return _covering(dataset, query, lower, upper, now)


def _covering(
    dataset: catalog.Dataset, query: Query, lower: dt.datetime, upper: dt.datetime, now: dt.datetime
) -> Query:
    """Add the buckets covering [lower, upper], cut at now and at the dataset's first day."""
    if query.upper is None or upper > now:
        query.upper = iso(now)
    query.edge = min(upper, now)
    query.buckets.extend(window_buckets(dataset.earliest, lower, query.edge))
    return query


def window_buckets(earliest: dt.date, lower: dt.datetime, upper: dt.datetime) -> list[dt.datetime]:
    """The half-hour bucket starts covering [lower, upper], from the first day served."""
    start = bucket_floor(max(lower, settlement.day_window_utc(earliest)[0]))
    buckets: list[dt.datetime] = []
    while start <= upper:
        buckets.append(start)
        start += HALF_HOUR
    return buckets


def day_buckets(
    earliest: dt.date, first_day: dt.date, last_day: dt.date, now: dt.datetime
) -> list[dt.datetime]:
    """Every period start of the settlement days, up to now, from the first day served."""
    buckets: list[dt.datetime] = []
    first_day = max(first_day, earliest)
    if last_day < first_day:
        return buckets
    for day in settlement.days_between(first_day, last_day):
        start, end = settlement.day_window_utc(day)
        while start < end and start <= now:
            buckets.append(start)
            start += HALF_HOUR
    return buckets


def _row_filters(
    dataset: catalog.Dataset, params: Params, skip: frozenset[str] = frozenset()
) -> dict[str, set[str]]:
    """Filters the endpoint documents and the dataset has a field for; blank values ignored."""
    filters: dict[str, set[str]] = {}
    for param, field in ROW_FILTERS.items():
        values = {value for value in params.get(param, ()) if value}
        if values and field in dataset.field_names and param not in skip:
            filters[field] = values
    for value in filters.get("settlementPeriod", ()):
        parse_period("settlementPeriod", value)
    return filters


def _optional_period(params: Params, name: str) -> int | None:
    text = first(params, name)
    return None if text is None else parse_period(name, text)


def parse_period(name: str, text: str) -> int:
    """A settlement period number, 1..50."""
    try:
        period = int(text)
    except ValueError:
        raise BadRequest(
            name, f"The value '{text}' is not valid for {name}: expected an integer 1..50."
        ) from None
    if not 1 <= period <= 50:
        raise BadRequest(name, f"{name} must be between 1 and 50, not {period}.")
    return period


def parse_date(name: str, text: str) -> dt.date:
    """A date in the exact ``yyyy-MM-dd`` format the API demands for settlement dates."""
    try:
        if not _DATE.fullmatch(text):
            raise ValueError
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise BadRequest(
            name, f"The value '{text}' is not valid for {name}: expected yyyy-MM-dd."
        ) from None
    if day.year not in _YEARS:
        raise BadRequest(name, f"{name} {text} is out of range.")
    return day


def parse_instant(name: str, text: str) -> tuple[dt.datetime, dt.date]:
    """An RFC 3339 date-time (or date, or the spec's ``2023/04/13 07:00`` form) as a UTC
    instant, with the literal date (what from/to mean once a settlement period is given).
    Values without an offset are UTC."""
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("/", "-").replace(" ", "T"))
    except ValueError:
        raise BadRequest(
            name, f"The value '{text}' is not valid for {name}: expected an RFC 3339 date-time."
        ) from None
    if value.year not in _YEARS:
        raise BadRequest(name, f"{name} {text} is out of range.")
    literal_date = value.date()
    if value.tzinfo is None:
        value = value.replace(tzinfo=settlement.UTC)
    return value.astimezone(settlement.UTC), literal_date


def _duration(delta: dt.timedelta) -> str:
    hours = delta.total_seconds() / 3600
    if hours >= 48:
        return f"{hours / 24:.4g} days"
    return "1 hour" if hours == 1 else f"{hours:.4g} hours"


def _ceil_iso(instant: dt.datetime) -> str:
    """A lower bound at whole seconds that keeps the window inclusive and exact."""
    if instant.microsecond:
        instant = instant.replace(microsecond=0) + dt.timedelta(seconds=1)
    return iso(instant)
