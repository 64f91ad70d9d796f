"""Settlement-day arithmetic: the GB market's day is the Europe/London local date.

A settlement day runs from local midnight to the next local midnight, so it lasts 23 hours
on the spring clock change (46 half-hour periods), 25 on the autumn one (50 periods) and 24
otherwise (48). Period 1 starts at local midnight, whatever its UTC offset.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")
UTC = dt.UTC
PERIOD = dt.timedelta(minutes=30)


def day_window_utc(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The UTC instants [start, end) of one settlement day."""
    start = dt.datetime.combine(day, dt.time(0), tzinfo=LONDON).astimezone(UTC)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=LONDON).astimezone(UTC)
    return start, end


def periods_in_day(day: dt.date) -> int:
    """46, 48 or 50: the half-hour periods of a settlement day."""
    start, end = day_window_utc(day)
    return int((end - start) / PERIOD)


def local_date(instant: dt.datetime) -> dt.date:
    """The settlement day an instant falls in."""
    return instant.astimezone(LONDON).date()


def period_of(instant: dt.datetime) -> tuple[dt.date, int]:
    """(settlement day, period number) of an instant."""
    day = local_date(instant)
    start, _ = day_window_utc(day)
    return day, int((instant.astimezone(UTC) - start) / PERIOD) + 1


def period_start(day: dt.date, period: int) -> dt.datetime:
    """UTC start of a settlement period."""
    start, _ = day_window_utc(day)
    return start + (period - 1) * PERIOD


def parse_day(text: str) -> dt.date:
    """A YYYY-MM-DD date, with an error that says what was wrong."""
    try:
        return dt.date.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"invalid date {text!r}: expected YYYY-MM-DD, e.g. 2025-10-26") from None


def days_between(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every day from start to end, inclusive."""
    if end < start:
        raise ValueError(f"end date {end} is before start date {start}")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def current_settlement_day(now: dt.datetime | None = None) -> dt.date:
    """Today in Europe/London."""
    return local_date(now or dt.datetime.now(UTC))
