"""Hidden request-window limits: ``bmrs sim --window-limit BOD=1h`` (or ``BMRS_SIM_WINDOW_LIMITS``).

The live API may refuse windows its spec does not limit; the client then learns a narrower
window (:mod:`worker.elexon.windows`). This makes the simulator do the same on demand, so
tests prove the adaptation: a request for a listed dataset whose window is wider than the
limit gets a 400 in the problem-details shape the real API uses for its window validation (a
model-level error under ``errors[""]``, as its "From field must not be later..." is). Without
any limit given, the simulator enforces only the limits the spec states.

One more refusal keeps the simulator bounded where the spec states no limit (a BOD request
for ten years would otherwise generate for hours): an answer whose work is estimated above
:data:`WORK_BUDGET` (rows, plus :data:`BUCKET_WORK` per half hour generated: per-bucket cost
dominates the sparse generators) is refused the same way, as too large a range. The budget is
above what real clients ask for in one request at full scale: a whole BOD day is ~290,000
rows, a week of PN ~1.4 million, a year of MID ~35,000 rows in 17,520 half hours. Requests of
two settlement days or less are never refused. ``SimulatorApp.work_budget`` changes it (the
schemathesis test uses a small one, so random multi-year windows are refused in milliseconds).
"""

from __future__ import annotations

import datetime as dt
import re

from worker.elexon import catalog, settlement
from worker.sim import queries
from worker.sim.generators import Generator

Limits = dict[str, dt.timedelta]

# Work above which an answer is refused as too large a range (see the module docstring).
WORK_BUDGET = 2_500_000
BUCKET_WORK = 100

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|min|h|d)", re.IGNORECASE)
_UNIT = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


class WindowLimitError(ValueError):
    """A window-limit spec that cannot be parsed; one line saying what to fix."""


def parse_duration(text: str) -> dt.timedelta:
    """``1h``, ``30m``, ``90min``, ``2d``, ``45s``."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise WindowLimitError(f"duration {text!r} not understood; use e.g. 1h, 30m, 2d")
    value = dt.timedelta(seconds=float(match.group(1)) * _UNIT[match.group(2).lower()])
    if value <= dt.timedelta(0):
        raise WindowLimitError(f"duration {text!r} must be positive")
    return value


def parse_window_limits(specs: str | list[str] | tuple[str, ...] | None) -> Limits:
    """``CODE=DURATION`` items, comma-separated and/or repeated, e.g. ``BOD=1h,MILS=6h``."""
    items = [specs] if isinstance(specs, str) else list(specs or ())
    limits: Limits = {}
    for item in (part.strip() for spec in items for part in spec.split(",")):
        if not item:
            continue
        code, sep, duration = item.partition("=")
        if not sep:
            raise WindowLimitError(f"window limit {item!r} needs CODE=DURATION, e.g. BOD=1h")
        try:
            dataset = catalog.get(code)
        except catalog.UnknownDatasetError as exc:
            raise WindowLimitError(str(exc)) from None
        limits[dataset.code] = parse_duration(duration)
    return limits


def format_limits(limits: Limits) -> str:
    """The spec string that parses back to these limits."""
    return ",".join(f"{code}={_short(limit)}" for code, limit in sorted(limits.items()))


def _short(limit: dt.timedelta) -> str:
    seconds = int(limit.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _human(span: dt.timedelta) -> str:
    hours = span.total_seconds() / 3600
    if hours >= 48 and hours % 24 == 0:
        return f"{hours / 24:g} days"
    if hours >= 1:
        return "1 hour" if hours == 1 else f"{hours:.4g} hours"
    return f"{span.total_seconds() / 60:.4g} minutes"


def requested_span(dataset: catalog.Dataset, kind: str, params: queries.Params) -> dt.timedelta:
    """How wide a window one request asks for (a validated request: the query parsed)."""
    if kind == "path":
        return dt.timedelta(days=1)
    if kind == "period":
        return settlement.PERIOD
    if dataset.param_style == "settlement_dates":
        name_from, name_to = catalog.WINDOW_PARAMS["settlement_dates"]
        text_from, text_to = queries.first(params, name_from), queries.first(params, name_to)
        if text_from is None or text_to is None:
            return dt.timedelta(days=1)
        days = queries.parse_date(name_to, text_to) - queries.parse_date(name_from, text_from)
        return days + dt.timedelta(days=1)
    name_from, name_to = catalog.WINDOW_PARAMS[dataset.param_style]
    text_from, text_to = queries.first(params, name_from), queries.first(params, name_to)
    if text_from is None or text_to is None:
        return dt.timedelta(0)  # the API's default window: today so far
    lower, lower_date = queries.parse_instant(name_from, text_from)
    upper, upper_date = queries.parse_instant(name_to, text_to)
    if dataset.param_style == "from_to":
        # A settlement period turns from/to into a settlement date, as the query does.
        period_from = queries.first(params, "settlementPeriodFrom")
        period_to = queries.first(params, "settlementPeriodTo")
        if period_from is not None:
            lower = settlement.period_start(lower_date, int(period_from))
        if period_to is not None:
            upper = settlement.period_start(upper_date, int(period_to)) + settlement.PERIOD
    return upper - lower


def refusal(
    dataset: catalog.Dataset, kind: str, params: queries.Params, limits: Limits
) -> str | None:
    """The 400 message for a window wider than the dataset's hidden limit, or None."""
    limit = limits.get(dataset.code)
    if limit is None:
        return None
    span = requested_span(dataset, kind, params)
    # Windows are inclusive and in whole seconds: [t, t + 1h - 1s] is one hour.
    if span <= limit:
        return None
    return (
        f"The requested date range must not be more than {_human(limit)}; "
        f"{_human(span)} was requested for {dataset.code}."
    )


def oversized(query: queries.Query, generator: Generator, budget: int = WORK_BUDGET) -> str | None:
    """The 400 message for an answer whose work is estimated above ``budget``, or None.

    The estimate is (the middle bucket's rows + :data:`BUCKET_WORK`) times the buckets: one
    bucket generated, so a refusal costs little however wide the window.
    """
    buckets = query.buckets
    if len(buckets) <= 2 * 50:  # two settlement days or less is never refused
        return None
    rows = len(generator.rows(buckets[len(buckets) // 2])) * len(buckets)
    if rows + BUCKET_WORK * len(buckets) <= budget:
        return None
    span = _human(buckets[-1] - buckets[0] + settlement.PERIOD)
    return (
        f"The requested date range is too large: {span} of {generator.dataset.code} is about "
        f"{rows:,} rows; request a narrower range."
    )
