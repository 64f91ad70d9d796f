"""The simulated fleet of Balancing Mechanism units that the per-unit datasets describe.

BOD, BOALF, PN, QPN, MELS and MILS all talk about the same units, so one deterministic pool
(from the seed) feeds them all; ``--scale`` shrinks the pool, which is what keeps those
datasets' day sizes small in tests while keeping their shapes.
"""

from __future__ import annotations

import dataclasses
import functools
import random
import string

# Units in the pool at scale 1: with ~4.4 bid-offer pairs each this gives BOD's ~300k rows/day.
FULL_FLEET = 1400

# Elexon BM unit id prefixes and how common each is: transmission-connected (T_), embedded
# (E_), supplier base units (2__), secondary/virtual (V__), interconnector (I_), CFD (C__).
_PREFIXES = (("T_", 0.4), ("E_", 0.2), ("2__", 0.25), ("V__", 0.1), ("I_", 0.05))
_FUELS = ("CCGT", "WIND", "NUCLEAR", "BIOMASS", "PS", "OCGT", "BATTERY", "NPSHYD", "DEMAND")


@dataclasses.dataclass(frozen=True)
class BmUnit:
    """One BM unit: its two ids, what it runs on and how big it is."""

    # None for units known to National Grid only (see :func:`limit_only_units`).
    bm_unit: str | None
    national_grid_bm_unit: str
    fuel: str
    capacity_mw: int
    # The few storage and demand units whose import limit (MILS) is not zero: ~5% of units,
    # as in a real MILS answer (954 of 1,000 units at level 0).
    imports: bool
    # Bid-offer pairs submitted per period, half as bids (pairId < 0), half as offers.
    pairs: int
    base_price: float
    # Hour of day (UTC) at which the unit's planned output peaks.
    peak_hour: float


@functools.cache
def fleet(seed: int, scale: float) -> tuple[BmUnit, ...]:
    """The unit pool for a seed, ``max(2, FULL_FLEET * scale)`` units long."""
    rng = random.Random(f"{seed}:fleet")
    size = max(2, round(FULL_FLEET * scale))
    names: set[str] = set()
    units: list[BmUnit] = []
    while len(units) < size:
        prefix = rng.choices([p for p, _ in _PREFIXES], [w for _, w in _PREFIXES])[0]
        stem = "".join(rng.choices(string.ascii_uppercase, k=5))
        # T_DRAXX-1 is known to National Grid as DRAXX-1; other prefixes keep the full id.
        if prefix in ("T_", "E_"):
            national_grid_id = f"{stem}-{rng.randint(1, 4)}"
            name = prefix + national_grid_id
        else:
            name = national_grid_id = f"{prefix}{stem}{rng.randint(1, 9):03d}"
        if name in names:
            continue
        names.add(name)
        fuel = rng.choice(_FUELS)
        units.append(
            BmUnit(
                bm_unit=name,
                national_grid_bm_unit=national_grid_id,
                fuel=fuel,
                capacity_mw=rng.choice((10, 25, 50, 100, 150, 300, 450, 600, 850, 1200)),
                # Drawn from the name, not the pool's stream, so the pool is unchanged.
                imports=fuel in ("PS", "BATTERY", "DEMAND")
                and random.Random(f"{seed}:{name}:imports").random() < 0.15,
                pairs=rng.choice((2, 4, 4, 6, 6)),
                base_price=round(rng.uniform(30, 120), 2),
                peak_hour=rng.uniform(0, 24),
            )
        )
    return tuple(units)


# Units National Grid knows that have no Elexon BM unit id: a real MILS answer had 16 of 1,000
# rows with ``bmUnit: null`` and ``nationalGridBmUnit`` set (names like these).
_LIMIT_ONLY_SHARE = 0.016
_LIMIT_ONLY_STEMS = ("RUSHB-", "TYLNB-", "UNPKD-", "IMD-CAPT", "IMG-EGEN", "IBG-ENGI", "WNCHB-")


@functools.cache
def limit_only_units(seed: int, scale: float) -> tuple[BmUnit, ...]:
    """Units that appear only in MELS/MILS, with ``bm_unit`` None: at least one at any scale,
    so the null pattern of the real data shows even in small test days."""
    size = max(1, round(FULL_FLEET * scale * _LIMIT_ONLY_SHARE))
    rng = random.Random(f"{seed}:limit-only")
    units = []
    for number in range(size):
        stem = _LIMIT_ONLY_STEMS[number % len(_LIMIT_ONLY_STEMS)]
        units.append(
            BmUnit(
                bm_unit=None,
                national_grid_bm_unit=f"{stem}{number // len(_LIMIT_ONLY_STEMS) + 1}",
                fuel="BATTERY",
                capacity_mw=rng.choice((10, 25, 50, 100)),
                imports=rng.random() < 0.3,
                pairs=0,
                base_price=0.0,
                peak_hour=rng.uniform(0, 24),
            )
        )
    return tuple(units)
