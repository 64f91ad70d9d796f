"""Accepted energy per BM unit from BOALF segments: shared by the queries (which pick the top
units whose bid-offer prices to read) and the model (which shows them)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import heapq
import itertools
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from worker.elexon.settlement import period_of

Row = dict[str, Any]
# Units listed per day on the Balancing tab (and so whose BOD prices are read).
TOP_UNITS_SETTLED = 20
TOP_UNITS_TODAY = 10


def _energy(a: float, b: float, hours: float) -> tuple[float, float]:
    """(above zero, below zero) MWh of a level ramping linearly from a to b MW over hours."""
    if hours <= 0:
        return 0.0, 0.0
    if a >= 0 and b >= 0:
        return (a + b) / 2 * hours, 0.0
    if a <= 0 and b <= 0:
        return 0.0, (a + b) / 2 * hours
    cross = a / (a - b)  # fraction of the time before the level crosses zero
    first, second = a * cross * hours / 2, b * (1 - cross) * hours / 2
    return max(first, second), min(first, second)


@dataclasses.dataclass
class UnitVolume:
    """One BM unit's accepted energy on one settlement day."""

    unit: str
    day: dt.date
    acceptances: set[int] = dataclasses.field(default_factory=set)
    offer_mwh: float = 0.0
    bid_mwh: float = 0.0
    # Per settlement period: (offer MWh, bid MWh), for BOD-price weighting.
    periods: dict[int, tuple[float, float]] = dataclasses.field(default_factory=dict)

    @property
    def total_mwh(self) -> float:
        return self.offer_mwh - self.bid_mwh


def unit_volumes(segments: Sequence[Row]) -> dict[tuple[dt.date, str], UnitVolume]:
    """Accepted energy per (settlement day, BM unit): the accepted level integrated over time.

    A unit's later acceptance (higher acceptance number) replaces its earlier ones from the
    time it covers, so overlapping acceptances are not counted twice: at every instant the
    level is that of the highest-numbered acceptance covering it, ramping linearly within each
    BOALF segment. Energy above zero MW is offer volume, below zero bid volume (negative),
    split where the level crosses zero and at every settlement-period boundary.
    """
    by_unit: dict[str, list[Row]] = defaultdict(list)
    out: dict[tuple[dt.date, str], UnitVolume] = {}
    for seg in segments:
        unit = str(seg.get("nationalGridBmUnit") or "")
        by_unit[unit].append(seg)
        day = seg.get("settlementDate")
        if isinstance(day, dt.date):
            if (day, unit) not in out:
                out[(day, unit)] = UnitVolume(unit, day)
            out[(day, unit)].acceptances.add(int(seg.get("acceptanceNumber") or 0))
    for unit, segs in by_unit.items():
        segs = [s for s in segs if s["timeTo"] > s["timeFrom"]]
        if not segs:
            continue
        points = {s["timeFrom"] for s in segs} | {s["timeTo"] for s in segs}
        first, last = min(points), max(points)
        boundary = first.replace(minute=30 if first.minute >= 30 else 0, second=0, microsecond=0)
        while boundary < last:
            if boundary > first:
                points.add(boundary)
            boundary += dt.timedelta(minutes=30)
        ordered = sorted(points)
        starts = sorted(range(len(segs)), key=lambda i: segs[i]["timeFrom"])
        active: list[tuple[int, int]] = []  # heap of (-acceptance number, segment index)
        nxt = 0
        for a, b in itertools.pairwise(ordered):
            while nxt < len(starts) and segs[starts[nxt]]["timeFrom"] <= a:
                i = starts[nxt]
                heapq.heappush(active, (-int(segs[i].get("acceptanceNumber") or 0), i))
                nxt += 1
            while active and segs[active[0][1]]["timeTo"] <= a:
                heapq.heappop(active)
            if not active:
                continue
            # Every segment end is a breakpoint: one still running at a runs to b at least.
            seg = segs[active[0][1]]
            level_a, level_b = _level(seg, a), _level(seg, b)
            offer, bid = _energy(level_a, level_b, (b - a).total_seconds() / 3600)
            day, period = _period_of(a)
            volume = out.get((day, unit))
            if volume is None:
                volume = out[(day, unit)] = UnitVolume(unit, day)
            volume.offer_mwh += offer
            volume.bid_mwh += bid
            before = volume.periods.get(period, (0.0, 0.0))
            volume.periods[period] = (before[0] + offer, before[1] + bid)
    return out


@functools.lru_cache(maxsize=4096)
def _period_of(instant: dt.datetime) -> tuple[dt.date, int]:
    return period_of(instant)  # the same few hundred instants recur across units


def _level(seg: Row, at: dt.datetime) -> float:
    start, end = seg["timeFrom"], seg["timeTo"]
    a, b = float(seg["levelFrom"]), float(seg["levelTo"])
    return a + (b - a) * ((at - start) / (end - start))


def top_units(volumes: dict[tuple[dt.date, str], UnitVolume], day: dt.date, count: int
              ) -> list[UnitVolume]:
    """The day's ``count`` units with the most accepted energy (offers + |bids|)."""
    ranked = sorted((v for (d, _), v in volumes.items() if d == day),
                    key=lambda v: (-v.total_mwh, v.unit))
    return ranked[:count]
