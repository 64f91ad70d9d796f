"""The Elexon Insights API client: a chunk (dataset, settlement day) into checked rows.

The API's traps, each handled here: windows are inclusive at both ends (boundary rows come
back twice: the caller drops exact duplicates), unknown parameter names are ignored and the
API then answers with its *default* data (so every row is checked against the asked window),
bodies can be cut short (retried), 429s carry ``Retry-After`` (honoured), and three envelopes
exist (bare list, ``{"data"}``, ``{"metadata", "data"}``).

Request windows are learned, not assumed: a chunk starts with the widest window its dataset
plausibly allows (``Dataset.max_window``, narrowed by a limit learned earlier, see
:mod:`worker.elexon.windows`). A 400 saying the range is too large, or a window that times
out or comes back cut :data:`SPLIT_AFTER` times in a row (fewer when another timeout would
not fit in ``split_budget_s``, the task's time limit), halves the window (to a limit the
API's message states, when it states one), remembers it, and goes on, down to one settlement
period; there, or on any other 400, the error is real.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import logging
import random
import re
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import orjson
import requests

from worker.elexon.catalog import PERIOD_PARAMS, SIDE_PARAM, SIDES, WINDOW_PARAMS, Dataset
from worker.elexon.settlement import PERIOD, UTC, day_window_utc, period_start, periods_in_day
from worker.elexon.windows import MemoryWindowStore, WindowStore, store_from_settings

if TYPE_CHECKING:
    from worker.settings import Settings

log = logging.getLogger(__name__)

END_MARGIN = dt.timedelta(seconds=1)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# The narrowest window a chunk is split to: one settlement period.
WINDOW_FLOOR = PERIOD
# Consecutive timeouts or cut bodies of one window after which it is split, not retried whole.
SPLIT_AFTER = 3
USER_AGENT = "bmrs-cluster/0.1 (+https://github.com/; ingestion of public BMRS data)"


class ApiError(Exception):
    """A request that did not give usable rows; says which dataset, day and URL."""

    transient = False

    def __init__(self, message: str, *, url: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class PermanentApiError(ApiError):
    """The API refused the request (4xx other than 429): retrying will not help."""


class TransientApiError(ApiError):
    """Retries ran out on 429/5xx/connection errors/cut bodies: a later run may succeed."""

    transient = True


class MalformedResponseError(PermanentApiError):
    """A well-formed HTTP answer whose body is not one of the API's envelopes."""


class WindowTooLargeError(PermanentApiError):
    """The API refused a window as too wide (a 400 about the range), or the window timed out
    or came back cut :data:`SPLIT_AFTER` times in a row. Permanent for this window; a
    narrower one may succeed, which is what :meth:`ElexonClient.fetch_chunk` does."""

    def __init__(
        self, message: str, *, url: str = "", status: int | None = None,
        stated: dt.timedelta | None = None,
    ) -> None:
        super().__init__(message, url=url, status=status)
        # The limit the API's message states, when it states one.
        self.stated = stated


@dataclasses.dataclass(frozen=True)
class RequestWindow:
    """One API request of a chunk: its path, parameters and the instants it covers."""

    path: str
    params: dict[str, str]
    start: dt.datetime
    end: dt.datetime  # inclusive, as the API treats it
    # Settlement-date styles check rows by settlementDate instead of a time field.
    dates: tuple[dt.date, dt.date] | None = None
    # Values the request itself says and its rows do not carry (the side of a {bidOffer}
    # path), added to each row under these field names.
    stamp: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass
class WindowRows:
    """The rows of one request that fall inside its window, and how many did not."""

    window: RequestWindow
    rows: list[dict[str, Any]]
    outside_window: int
    # Wider requests refused as too large just before this one (counted as requests made).
    refused: int = 0


def _iso(instant: dt.datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def request_windows(
    dataset: Dataset, day: dt.date, width: dt.timedelta | None = None
) -> list[RequestWindow]:
    """The requests that cover one settlement day, none wider than ``width`` (by default the
    dataset's ``max_window``).

    Path styles are one request per day (``path_date``) or per period (``path_period``: 46,
    48 or 50), times two where the path names a side (``{bidOffer}``: bid and offer).
    """
    start, end = day_window_utc(day)
    style = dataset.param_style
    if style == "snapshot":
        return [RequestWindow(dataset.endpoint, {}, start, end)]
    if style in ("path_date", "path_period"):
        sides: tuple[str | None, ...] = SIDES if dataset.side_field else (None,)
        periods: tuple[int | None, ...] = (
            tuple(range(1, periods_in_day(day) + 1)) if style == "path_period" else (None,)
        )
        windows = []
        for side in sides:
            for period in periods:
                path = dataset.endpoint.replace("{settlementDate}", day.isoformat())
                low, high = start, end
                if period is not None:
                    path = path.replace("{settlementPeriod}", str(period))
                    low = period_start(day, period)
                    high = low + PERIOD
                stamp: tuple[tuple[str, str], ...] = ()
                if side is not None:
                    path = path.replace("{" + SIDE_PARAM + "}", side)
                    stamp = ((dataset.side_field or SIDE_PARAM, side),)
                windows.append(RequestWindow(path, {}, low, high, dates=(day, day), stamp=stamp))
        return windows
    if style in ("settlement_dates", "settlement_periods"):
        name_from, name_to = WINDOW_PARAMS["settlement_dates"]
        params = {name_from: day.isoformat(), name_to: day.isoformat()}
        if style == "settlement_periods":
            params[PERIOD_PARAMS[0]] = "1"
            params[PERIOD_PARAMS[1]] = str(periods_in_day(day))
        return [RequestWindow(dataset.endpoint, params, start, end, dates=(day, day))]
    width = width or dataset.max_window
    windows = []
    cursor = start
    while cursor < end:
        windows.append(time_window(dataset, cursor, min(cursor + width, end)))
        cursor = windows[-1].end + END_MARGIN
    return windows


def shape_rows(dataset: Dataset, window: RequestWindow, rows: list[Any]) -> list[Any]:
    """Rows as the catalog stores them: a bare string (reference lists) becomes a one-field
    row, and the request's stamp (the side of a {bidOffer} path) is added to each row."""
    if dataset.scalar_field:
        field = dataset.scalar_field
        rows = [{field: row} if isinstance(row, str) else row for row in rows]
    if window.stamp:
        stamp = dict(window.stamp)
        rows = [{**row, **stamp} if isinstance(row, dict) else row for row in rows]
    return rows


def time_window(dataset: Dataset, start: dt.datetime, stop: dt.datetime) -> RequestWindow:
    """The request for [start, stop) of a dataset queried by a time window."""
    low, high = WINDOW_PARAMS[dataset.param_style]
    # The API's windows include their end, and its times are whole seconds: ending one
    # second early keeps the next window's first instant (a whole period of BOD rows)
    # out of this response instead of downloading it twice.
    last = stop - END_MARGIN
    return RequestWindow(dataset.endpoint, {low: _iso(start), high: _iso(last)}, start, last)


def splits(dataset: Dataset) -> bool:
    """Whether a dataset's requests name a time window the client can narrow (not a path,
    a settlement date or a snapshot)."""
    return dataset.param_style in WINDOW_PARAMS and dataset.param_style != "settlement_dates"


def narrower_window(asked: dt.timedelta, stated: dt.timedelta | None) -> dt.timedelta | None:
    """The next window to try after ``asked`` was too large: the limit the API stated if it is
    narrower, else half; whole settlement periods, never below :data:`WINDOW_FLOOR`. None
    when ``asked`` already is the floor."""
    if asked <= WINDOW_FLOOR:
        return None
    target = stated if stated is not None and stated < asked else asked / 2
    periods = max(1, int(target / WINDOW_FLOOR))
    return WINDOW_FLOOR * periods


_DURATION = re.compile(
    r"(\d+(?:\.\d+)?)\s*(seconds?|secs?|minutes?|mins?|hours?|hrs?|h\b|days?|d\b)", re.IGNORECASE
)
_ISO_DURATION = re.compile(r"\bP(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?\b")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# What a 400 about a too-wide range says: a range word and a limit word. Elexon publishes no
# wording for it (its known validation message is the model-level ``errors[""]`` "From field
# must not be later than To field", which is about order, not size, and does not match).
_RANGE_WORDS = re.compile(r"range|window|span|interval|duration|period|days|hours", re.IGNORECASE)
_LIMIT_WORDS = re.compile(
    r"too (?:large|long|big|wide|many)|exceed|maximum|at most|more than|greater than|"
    r"less than or equal|no (?:more|longer) than|limit",
    re.IGNORECASE,
)


def stated_limit(message: str) -> dt.timedelta | None:
    """The narrowest duration a refusal names ("at most 1 hour", "PT1H"), if any."""
    found: list[dt.timedelta] = []
    for number, unit in _DURATION.findall(message):
        found.append(dt.timedelta(seconds=float(number) * _UNIT_SECONDS[unit[0].lower()]))
    for days, hours, minutes in _ISO_DURATION.findall(message):
        if days or hours or minutes:
            found.append(
                dt.timedelta(days=int(days or 0), hours=int(hours or 0), minutes=int(minutes or 0))
            )
    found = [d for d in found if d > dt.timedelta(0)]
    return min(found) if found else None


def is_range_refusal(status: int, message: str) -> bool:
    """Whether a refusal says the asked window is too wide (not malformed or reversed)."""
    if status == 413:
        return True
    return status == 400 and bool(_RANGE_WORDS.search(message) and _LIMIT_WORDS.search(message))


def row_instant(dataset: Dataset, row: dict[str, Any]) -> dt.datetime | None:
    """The instant the API filters a row's window on (time field or period start)."""
    if dataset.time_field:
        value = row.get(dataset.time_field)
        return _parse_instant(value) if isinstance(value, str) else None
    date, period = row.get("settlementDate"), row.get("settlementPeriod")
    if not isinstance(date, str) or not isinstance(period, int):
        return None
    try:
        return period_start(dt.date.fromisoformat(date), period)
    except ValueError:
        return None


def _parse_instant(text: str) -> dt.datetime | None:
    try:
        instant = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return instant if instant.tzinfo else None


def inside_window(dataset: Dataset, window: RequestWindow, row: dict[str, Any]) -> bool:
    """Whether the API should have returned this row for this request."""
    if window.dates is not None:
        try:
            date = dt.date.fromisoformat(row.get("settlementDate") or "")
        except (TypeError, ValueError):
            return True  # a missing date is the parser's error to report, not a filter miss
        return window.dates[0] <= date <= window.dates[1]
    instant = row_instant(dataset, row)
    if instant is None:
        return True
    return window.start <= instant <= window.end


def rows_inside(dataset: Dataset, window: RequestWindow, rows: list[Any]) -> tuple[list[Any], int]:
    """The rows :func:`inside_window` keeps (non-objects too, for the parser to name), and
    how many it drops.

    The API spells instants ``YYYY-MM-DDTHH:MM:SSZ`` and dates ``YYYY-MM-DD``; strings with
    exactly those separators compare in time order, so most rows are judged by one string
    comparison. Any other row, and every row judged outside, is judged by
    :func:`inside_window` itself (a malformed value of that shape is inside for both).
    """
    # Separators sit at every third character from the fifth: "--" and "--T::Z".
    if window.dates is not None:
        field = "settlementDate"
        low, high = window.dates[0].isoformat(), window.dates[1].isoformat()
        length, separators = 10, "--"
    elif dataset.time_field is not None:
        field, low, high = dataset.time_field, _iso(window.start), _iso(window.end)
        length, separators = 20, "--T::Z"
    else:
        field, low, high, length, separators = "", "", "", -1, ""
    kept = []
    for row in rows:
        if isinstance(row, dict):
            value = row.get(field)
            if (
                type(value) is str
                and len(value) == length
                and value[4::3] == separators
                and low <= value <= high
            ) or inside_window(dataset, window, row):
                kept.append(row)
        else:
            kept.append(row)
    return kept, len(rows) - len(kept)


def rows_from_body(body: bytes, url: str, *, one_row: bool = False) -> list[dict[str, Any]]:
    """The rows of any of the three envelopes; a cut or foreign body is an error.

    ``one_row``: the endpoint answers one object that is itself the row (the settlement
    summary), so an object without ``data`` is that row.
    """
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise TransientApiError(f"body is not complete JSON ({exc}); {len(body)} bytes", url=url)
    if one_row and isinstance(payload, dict) and "data" not in payload:
        return [payload]
    if isinstance(payload, dict):
        if "data" not in payload:
            keys = ", ".join(sorted(payload)[:6])
            raise MalformedResponseError(f"JSON object without 'data' (keys: {keys})", url=url)
        payload = payload["data"]
        if payload is None:
            return []
    if not isinstance(payload, list):
        raise MalformedResponseError(f"expected a list of rows, got {type(payload).__name__}", url=url)
    return payload


def _api_message(response: requests.Response) -> str:
    """The API's own words for a refusal, short enough for one log line."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300].strip() or response.reason
    if isinstance(body, dict):
        parts = [str(body.get(k)) for k in ("title", "detail", "message") if body.get(k)]
        errors = body.get("errors")
        if isinstance(errors, dict):
            for key, value in errors.items():
                text = " ".join(map(str, value if isinstance(value, list) else [value]))
                # Model-level errors (a reversed or too wide window) have the empty key.
                parts.append(f"{key}: {text}" if key else text)
        elif errors:
            parts.append(str(errors))
        if parts:
            return "; ".join(parts)[:500]
    return str(body)[:300]


def _retry_after_seconds(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        if parsed is None:
            return None
        return max(0.0, (parsed - dt.datetime.now(UTC)).total_seconds())


class ElexonClient:
    """Fetches chunks politely: a shared rate limiter before every request, backoff after."""

    def __init__(
        self,
        base_url: str,
        *,
        session: requests.Session | None = None,
        timeout_s: float = 60.0,
        retries: int = 6,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 60.0,
        acquire: Callable[[], None] | None = None,
        windows: WindowStore | None = None,
        split_budget_s: float | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", USER_AGENT)
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        # Blocks until the shared request budget allows one more request.
        self.acquire = acquire or (lambda: None)
        self.requests_made = 0
        # Learned window limits, shared with every process using the same store.
        self.windows: WindowStore = windows if windows is not None else MemoryWindowStore()
        # Seconds a window may spend timing out before it is split even under SPLIT_AFTER
        # times: a worker's task is stopped at its time limit, and a split made before then
        # is remembered, so the retried task starts narrower instead of timing out again.
        self.split_budget_s = split_budget_s
        self._announced: set[tuple[str, dt.timedelta]] = set()

    def start_window(self, dataset: Dataset) -> dt.timedelta:
        """The window a chunk starts with: the dataset's widest, or the learned limit."""
        learned = self.windows.get(dataset.code) if splits(dataset) else None
        if learned is None or learned >= dataset.max_window:
            return dataset.max_window
        if (dataset.code, learned) not in self._announced:
            self._announced.add((dataset.code, learned))
            log.info(
                "%s: requests at most %s wide (learned from the API, %s)",
                dataset.code, _span(learned), self.windows.describe(),
            )
        return learned

    def fetch_chunk(self, dataset: Dataset, day: dt.date) -> Iterator[WindowRows]:
        """Rows of each request window in turn, so memory is bounded by one window.

        Windows start at :meth:`start_window` wide; one the API finds too large is split
        (see :class:`WindowTooLargeError`) and the narrower width learned, then the chunk
        goes on from the same instant.
        """
        if not splits(dataset):
            for window in request_windows(dataset, day):
                yield self.fetch_window(dataset, window)
            return
        cursor, end = day_window_utc(day)
        width = self.start_window(dataset)
        refused = 0
        while cursor < end:
            window = time_window(dataset, cursor, min(cursor + width, end))
            asked = min(width, end - cursor)
            try:
                window_rows = self.fetch_window(dataset, window, splittable=asked > WINDOW_FLOOR)
            except WindowTooLargeError as exc:
                narrower = narrower_window(asked, exc.stated)
                if narrower is None:
                    raise
                self._learn(dataset, asked, narrower, exc)
                # Another worker may have learned narrower still: start there, not above it.
                width = min(narrower, self.windows.get(dataset.code) or narrower)
                refused += 1
                continue
            window_rows.refused, refused = refused, 0
            yield window_rows
            cursor = window.end + END_MARGIN

    def _learn(
        self, dataset: Dataset, asked: dt.timedelta, narrower: dt.timedelta, cause: ApiError
    ) -> None:
        """Remember a narrower window; the process that changed the store says so, once."""
        if self.windows.learn(dataset.code, narrower):
            log.warning(
                "%s: a %s window was too large (%s); requests now at most %s wide, "
                "remembered for every later chunk (%s)",
                dataset.code, _span(asked), cause, _span(narrower), self.windows.describe(),
            )
        else:
            log.info(
                "%s: a %s window was too large; trying %s",
                dataset.code, _span(asked), _span(narrower),
            )

    def fetch_window(
        self, dataset: Dataset, window: RequestWindow, *, splittable: bool = False
    ) -> WindowRows:
        url = self.base_url + window.path
        rows = self.get_rows(
            url, window.params, what=f"{dataset.code} {window.start:%Y-%m-%d %H:%M}Z",
            one_row=dataset.envelope == "object", splittable=splittable,
        )
        rows = shape_rows(dataset, window, rows)
        kept, outside = rows_inside(dataset, window, rows)
        if outside:
            log.warning(
                "%s: %d of %d rows outside the asked window %s..%s dropped (%s)",
                dataset.code, outside, len(rows), _iso(window.start), _iso(window.end), url,
            )
        return WindowRows(window=window, rows=kept, outside_window=outside)

    def get_rows(
        self,
        url: str,
        params: dict[str, str],
        *,
        what: str,
        one_row: bool = False,
        splittable: bool = False,
    ) -> list[dict[str, Any]]:
        """GET with retries on 429/5xx/connection errors/cut bodies; rows of the envelope.

        With ``splittable``, a window that times out or comes back cut :data:`SPLIT_AFTER`
        times in a row, or sooner when another timeout would overrun ``split_budget_s``,
        raises :class:`WindowTooLargeError` instead of being retried whole.
        """
        last_error = ""
        too_big_streak = 0  # consecutive timeouts / cut bodies of this window
        streak_started = time.monotonic()
        for attempt in range(self.retries + 1):
            self.acquire()
            self.requests_made += 1
            wait: float | None = None
            try:
                response = self.session.get(url, params=params, timeout=self.timeout_s)
            except (requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
                too_big_streak += 1
            except requests.ConnectionError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
                too_big_streak, streak_started = 0, time.monotonic()
            else:
                if response.status_code == 200:
                    try:
                        return rows_from_body(response.content, response.url, one_row=one_row)
                    except TransientApiError as exc:
                        last_error = str(exc)
                        too_big_streak += 1
                elif response.status_code in RETRY_STATUSES:
                    last_error = f"HTTP {response.status_code}: {_api_message(response)}"
                    wait = _retry_after_seconds(response)
                    too_big_streak, streak_started = 0, time.monotonic()
                else:
                    message = _api_message(response)
                    text = f"{what}: HTTP {response.status_code} from {response.url}: {message}"
                    if is_range_refusal(response.status_code, message):
                        raise WindowTooLargeError(
                            text, url=response.url, status=response.status_code,
                            stated=stated_limit(message),
                        )
                    raise PermanentApiError(text, url=response.url, status=response.status_code)
            if splittable and too_big_streak and (
                too_big_streak >= SPLIT_AFTER or self._no_time_for_another(streak_started)
            ):
                raise WindowTooLargeError(
                    f"{what}: timed out or cut short {too_big_streak} times in a row on {url}: "
                    f"{last_error}",
                    url=url,
                )
            if attempt == self.retries:
                break
            backoff = random.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2**attempt))
            delay = max(wait or 0.0, backoff)
            log.info("%s: %s; retry %d/%d in %.1fs", what, last_error, attempt + 1, self.retries, delay)
            time.sleep(delay)
        raise TransientApiError(
            f"{what}: gave up after {self.retries + 1} attempts on {url}: {last_error}", url=url
        )

    def _no_time_for_another(self, streak_started: float) -> bool:
        """Whether one more timeout of this window would run past ``split_budget_s``."""
        if self.split_budget_s is None:
            return False
        spent = time.monotonic() - streak_started
        return spent + self.timeout_s > self.split_budget_s


def _span(window: dt.timedelta) -> str:
    """``30 min``, ``1.5 h``, ``24 h``: a window width for logs."""
    minutes = window.total_seconds() / 60
    return f"{minutes:g} min" if minutes < 60 else f"{minutes / 60:g} h"


def client_from_settings(
    settings: Settings,
    acquire: Callable[[], None] | None = None,
    windows: WindowStore | None = None,
) -> ElexonClient:
    """The client every process builds: base URL, timeout and retries from the settings, and
    the learned-window store every process shares (``store_from_settings`` unless given)."""
    return ElexonClient(
        settings.elexon_base_url,
        timeout_s=settings.http_timeout_s,
        retries=settings.http_retries,
        acquire=acquire,
        windows=windows if windows is not None else store_from_settings(settings),
        # Split a timing-out window while a worker's task still has time to remember it.
        split_budget_s=settings.task_soft_time_limit_s / 2,
    )
