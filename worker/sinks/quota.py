"""BigQuery's per-table load budget, shared by every worker through Redis.

BigQuery allows 1,500 table modifications (load, copy and query jobs writing the table,
failed ones included) per table per rolling 24 hours, and 30,000 partition modifications.
The limit is fixed and a refused load fails with ``quotaExceeded``, so the cluster keeps its
own ledger of the loads it started, per table, and spends it in priority order:

``realtime``
    Loads of the current or previous settlement day (the 5-minute polls: a poll of two days
    is 576 loads a day). May use the whole usable budget, ``limit - margin`` (1,400).
``backfill``
    Older days. Stops ``realtime_reserve`` short of the usable budget (600 for realtime
    datasets, 100 for the others), so a long backfill never starves the polls: once its
    share is spent it waits for the oldest loads to leave the 24-hour window (it *paces
    itself*, and logs that it waits), or, past ``max_wait_s``, raises
    :class:`LoadBudgetExhausted` with the time to try again.
``iris``
    IRIS stream batches, which go to their own ``<code>_stream`` table. **The batching
    rule**: at most one stream load per table every ``iris_interval_s`` (72 s, so at most
    1,200 loads and, one partition per load, 1,200 partition modifications per table per
    day), and never more than the usable budget. A batch that comes sooner waits for its
    turn, so the listener should hand off a dataset's messages at least that far apart
    (``BMRS_IRIS_BATCH_S``); rows arriving meanwhile simply make the next batch bigger.

Every load job touches one partition (``table$YYYYMMDD``), so partition modifications equal
loads and stay far inside 30,000. The ledger is a Redis sorted set per table (member: a
unique load id, score: its start time), trimmed to the last 24 hours and checked-and-added
atomically in one Lua script, so workers on many machines never overspend together.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import logging
import time
import uuid
from collections.abc import Callable

import redis

from worker.cluster.broker import KEY_PREFIX

log = logging.getLogger(__name__)

WINDOW_S = 24 * 3600
LEDGER_PREFIX = f"{KEY_PREFIX}bq-loads:"


class LoadClass(enum.StrEnum):
    """Why a load runs; decides how much of a table's budget it may use."""

    REALTIME = "realtime"
    BACKFILL = "backfill"
    IRIS = "iris"


class LoadBudgetExhausted(RuntimeError):
    """A load must wait longer than it may for the table's daily BigQuery budget."""

    def __init__(self, table: str, load_class: LoadClass, retry_after_s: float, detail: str) -> None:
        super().__init__(
            f"BigQuery load budget of table {table} for {load_class} loads is spent ({detail}); "
            f"try again in {retry_after_s:.0f} s — BigQuery allows 1,500 loads per table per "
            "24 hours, and realtime polls keep their share"
        )
        self.table = table
        self.load_class = load_class
        self.retry_after_s = retry_after_s


@dataclasses.dataclass(frozen=True)
class LoadBudget:
    """The numbers of the rule in this module's docstring."""

    limit: int = 1500
    margin: int = 100
    realtime_reserve: int = 600
    quiet_reserve: int = 100  # held back from backfill of datasets that are not polled
    iris_interval_s: float = 72.0
    window_s: float = WINDOW_S

    @property
    def usable(self) -> int:
        return self.limit - self.margin

    def ceiling(self, load_class: LoadClass, *, polled: bool) -> int:
        """Loads in the window after which a load of this class must wait."""
        if load_class is LoadClass.BACKFILL:
            return self.usable - (self.realtime_reserve if polled else self.quiet_reserve)
        return self.usable

    def spacing_s(self, load_class: LoadClass) -> float:
        """Least time between two loads of the table (the IRIS batching rule)."""
        return self.iris_interval_s if load_class is LoadClass.IRIS else 0.0


def load_class_of(day: dt.date, today: dt.date) -> LoadClass:
    """A chunk of today or yesterday (settlement days) is realtime; anything older is backfill."""
    return LoadClass.REALTIME if day >= today - dt.timedelta(days=1) else LoadClass.BACKFILL


# Atomically: drop entries older than the window; refuse if the table holds `ceiling` loads
# or its newest load is closer than `spacing`; else record this load. Returns 0 when
# granted, else milliseconds until the refusal could lift, and the count in the window.
_ACQUIRE = """
local key, now, window, ceiling, spacing, member =
    KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
local wait = 0
if count >= ceiling then
    local oldest = redis.call('ZRANGE', key, count - ceiling, count - ceiling, 'WITHSCORES')
    wait = tonumber(oldest[2]) + window - now
end
if spacing > 0 and count > 0 then
    local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
    local gap = tonumber(newest[2]) + spacing - now
    if gap > wait then wait = gap end
end
if wait > 0 then return {math.ceil(wait), count} end
redis.call('ZADD', key, now, member)
redis.call('PEXPIRE', key, window)
return {0, count + 1}
"""


class LoadLedger:
    """Loads started per table in the last 24 hours, in Redis, spent by :class:`LoadBudget`."""

    def __init__(
        self,
        client: redis.Redis,
        budget: LoadBudget | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.budget = budget or LoadBudget()
        self.clock = clock
        self.sleep = sleep
        self._script = client.register_script(_ACQUIRE)

    def try_acquire(self, table: str, load_class: LoadClass, *, polled: bool) -> float:
        """Record one load of ``table`` if the budget allows: 0.0, else seconds to wait."""
        now_ms = int(self.clock() * 1000)
        wait_ms, _ = self._script(
            keys=[LEDGER_PREFIX + table],
            args=[
                now_ms,
                int(self.budget.window_s * 1000),
                self.budget.ceiling(load_class, polled=polled),
                int(self.budget.spacing_s(load_class) * 1000),
                f"{now_ms}:{load_class}:{uuid.uuid4().hex}",
            ],
        )
        return int(wait_ms) / 1000.0

    def acquire(
        self, table: str, load_class: LoadClass, *, polled: bool, max_wait_s: float
    ) -> float:
        """Wait (up to ``max_wait_s``) for a load slot of ``table``; returns the seconds waited.

        Raises :class:`LoadBudgetExhausted` when the slot is further away than that.
        """
        waited = 0.0
        announced = False
        while True:
            wait_s = self.try_acquire(table, load_class, polled=polled)
            if wait_s <= 0:
                return waited
            if waited + wait_s > max_wait_s:
                raise LoadBudgetExhausted(table, load_class, wait_s, self._detail(table, load_class, polled))
            if not announced:
                log.info(
                    "%s load of BigQuery table %s waits %.0f s for its budget (%s)",
                    load_class, table, wait_s, self._detail(table, load_class, polled),
                )
                announced = True
            self.sleep(wait_s)
            waited += wait_s

    def used(self, table: str) -> int:
        """Loads of the table recorded in the current window (for status and tests)."""
        key = LEDGER_PREFIX + table
        now_ms = int(self.clock() * 1000)
        return int(self.client.zcount(key, now_ms - int(self.budget.window_s * 1000) + 1, "+inf"))

    def _detail(self, table: str, load_class: LoadClass, polled: bool) -> str:
        ceiling = self.budget.ceiling(load_class, polled=polled)
        spacing = self.budget.spacing_s(load_class)
        rule = f"{self.used(table)} loads in 24 h, {load_class} may start {ceiling}"
        return rule + (f", one per {spacing:.0f} s" if spacing else "")
