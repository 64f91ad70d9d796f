"""Switchable faults: what can go wrong with a real Elexon response, on demand and reproducibly.

A spec such as ``429=0.1,500=0.05,slow=0.05,truncate=0.02,dup=0.1,revise=0.05,outside=0.05``
gives per-request probabilities; ``poison=BOD@2025-06-01+MID@2025-06-02`` makes every request
touching those dataset-days fail with a 400 (a permanent failure); ``slow_seconds=N`` sets how
long a slow answer stalls (default 3). Draws come from an RNG seeded by (seed, request, how
many times that exact request was made), so a run is reproducible even with concurrent
clients, and a retried request gets a fresh draw, as a retry against the real API would.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import threading
from collections import Counter
from typing import Any

from worker.elexon import catalog
from worker.sim.generators import Generator, Row, iso

# Spec key -> FaultSpec attribute, for the per-request probabilities.
RATE_KEYS: dict[str, str] = {
    "429": "rate_limited",
    "500": "server_error",
    "slow": "slow",
    "truncate": "truncate",
    "dup": "dup",
    "revise": "revise",
    "outside": "outside",
}
# Integer version fields jump far enough that a revision never collides with a real later one.
INT_VERSION_BUMP = 1000


class FaultSpecError(ValueError):
    """A fault spec that cannot be parsed; the message is one line saying what to fix."""


@dataclasses.dataclass(frozen=True)
class FaultSpec:
    """Parsed fault settings: probabilities per request, poisoned dataset-days, slow time."""

    rate_limited: float = 0.0
    server_error: float = 0.0
    slow: float = 0.0
    truncate: float = 0.0
    dup: float = 0.0
    revise: float = 0.0
    outside: float = 0.0
    poison: frozenset[tuple[str, dt.date]] = frozenset()
    slow_seconds: float = 3.0

    def __str__(self) -> str:
        """The spec string that parses back to this spec (for env vars and ``--faults``)."""
        parts = [
            f"{key}={getattr(self, attr):g}"
            for key, attr in RATE_KEYS.items()
            if getattr(self, attr)
        ]
        if self.poison:
            parts.append("poison=" + "+".join(f"{c}@{d}" for c, d in sorted(self.poison)))
        if self.slow_seconds != FaultSpec.slow_seconds:
            parts.append(f"slow_seconds={self.slow_seconds:g}")
        return ",".join(parts)


def parse_faults(spec: str | None) -> FaultSpec:
    """Parse ``key=value[,key=value...]``; empty or None means no faults."""
    values: dict[str, Any] = {}
    for item in (spec or "").split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not value:
            raise FaultSpecError(f"fault {item!r} needs a value, e.g. 429=0.1")
        if key in RATE_KEYS:
            values[RATE_KEYS[key]] = _probability(key, value)
        elif key == "poison":
            values["poison"] = _poisoned_days(value)
        elif key == "slow_seconds":
            values["slow_seconds"] = _seconds(value)
        else:
            valid = ", ".join([*RATE_KEYS, "poison", "slow_seconds"])
            raise FaultSpecError(f"unknown fault {key!r}; valid faults: {valid}")
    return FaultSpec(**values)


def _probability(key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FaultSpecError(f"fault {key}={text}: not a number; give a probability 0..1") from None
    if not 0.0 <= value <= 1.0:
        raise FaultSpecError(f"fault {key}={text}: probability must be between 0 and 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise FaultSpecError(f"fault slow_seconds={text}: give a number of seconds >= 0")
    return value


def _poisoned_days(text: str) -> frozenset[tuple[str, dt.date]]:
    days: set[tuple[str, dt.date]] = set()
    for item in text.split("+"):
        code, sep, day = item.strip().partition("@")
        if not sep:
            raise FaultSpecError(f"poison {item!r}: expected CODE@YYYY-MM-DD, e.g. BOD@2025-06-01")
        try:
            dataset = catalog.get(code)
            days.add((dataset.code, dt.date.fromisoformat(day.strip())))
        except catalog.UnknownDatasetError as exc:
            raise FaultSpecError(f"poison {item!r}: {exc}") from None
        except ValueError:
            raise FaultSpecError(
                f"poison {item!r}: invalid date {day!r}, expected YYYY-MM-DD"
            ) from None
    return frozenset(days)


@dataclasses.dataclass(frozen=True)
class Draw:
    """The faults that hit one request, and the RNG that shapes them."""

    status: int | None
    slow: bool
    truncate: bool
    dup: bool
    revise: bool
    outside: bool
    rng: random.Random


class FaultInjector:
    """Draws each request's faults from a seeded RNG; thread-safe."""

    def __init__(self, spec: FaultSpec, seed: int) -> None:
        self.spec = spec
        self.seed = seed
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()

    def draw(self, request: str) -> Draw:
        """Faults for this request (method, path and query), the n-th time it is made."""
        with self._lock:
            self._seen[request] += 1
            attempt = self._seen[request]
        rng = random.Random(f"{self.seed}:faults:{request}:{attempt}")
        spec = self.spec
        # Draw every fault every time so one fault's setting never shifts another's draws.
        hits = {attr: rng.random() < getattr(spec, attr) for attr in RATE_KEYS.values()}
        status = 429 if hits["rate_limited"] else 500 if hits["server_error"] else None
        return Draw(
            status,
            hits["slow"],
            hits["truncate"],
            hits["dup"],
            hits["revise"],
            hits["outside"],
            rng,
        )

    def poisoned(self, code: str, days: set[dt.date]) -> dt.date | None:
        """The first poisoned day among those a request touches, if any."""
        hit = sorted(day for day in days if (code, day) in self.spec.poison)
        return hit[0] if hit else None


def _few(count: int, rng: random.Random) -> list[int]:
    """About one row in twenty (at least one), as sorted positions."""
    return sorted(rng.sample(range(count), max(1, count // 20))) if count else []


def duplicate_rows(rows: list[Row], rng: random.Random) -> list[Row]:
    """Repeat some rows right after themselves, as the API sometimes does across pages."""
    chosen = set(_few(len(rows), rng))
    doubled: list[Row] = []
    for position, row in enumerate(rows):
        doubled.append(row)
        if position in chosen:
            doubled.append(dict(row))
    return doubled


def revise_rows(rows: list[Row], generator: Generator, rng: random.Random) -> list[Row]:
    """Replace some rows by a revision: changed values and, if the dataset has one, a newer
    version field. Rows are copied: generators may cache and share them."""
    version = generator.dataset.version_field
    version_type = dict(generator.dataset.fields).get(version) if version else None
    revised = list(rows)
    for position in _few(len(rows), rng):
        row = dict(rows[position])
        # One shift for every value keeps related figures consistent (DISEBSP's SSP == SBP).
        shift = rng.randint(1, 50)
        for field in generator.value_fields:
            value = row.get(field)
            if isinstance(value, bool) or value is None:
                continue
            row[field] = value + shift if isinstance(value, int) else round(value + shift * 1.5, 3)
        if version and version_type == catalog.TS:
            newer = dt.datetime.fromisoformat(row[version]) + dt.timedelta(
                minutes=rng.randint(1, 60)
            )
            row[version] = iso(newer)
        elif version:
            row[version] += INT_VERSION_BUMP
        revised[position] = row
    return revised


def truncate_body(body: bytes, rng: random.Random) -> bytes:
    """Cut a body somewhere in its middle half, as a dropped connection would."""
    if len(body) < 2:
        return b""
    return body[: rng.randint(max(1, len(body) // 4), max(1, 3 * len(body) // 4))]
