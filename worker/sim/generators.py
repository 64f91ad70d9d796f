"""Deterministic, plausible rows for every catalog dataset, one generator per dataset.

Rows are generated per *bucket*: the UTC half-hour (one settlement period) that a row's time
field falls in (its settlement period start for DISBSAD/NETBSAD, its publish time for the
forecasts and REMIT). A bucket's rows depend only on (seed, dataset, bucket start), so any
request window is answered by generating just the buckets it overlaps and filtering them:
a one-hour BOD request never builds the whole 300k-row day, and every answer is reproducible.

Volumes, null patterns, row order, segment shapes and number formats are calibrated on real
API responses (``docs/elexon-data.md`` lists each figure and where it came from); field names
and order follow the OpenAPI row schemas and the real samples (stream rows carry ``dataset``
first, as the real API does; DISEBSP rows have none).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import functools
import math
import random
from typing import Any, ClassVar

import orjson

from worker.elexon import catalog, settlement
from worker.sim.units import BmUnit, fleet, limit_only_units

Row = dict[str, Any]

HALF_HOUR = dt.timedelta(minutes=30)
EPOCH = dt.datetime(2000, 1, 1, tzinfo=settlement.UTC)


def iso(instant: dt.datetime) -> str:
    """The API's timestamp format: UTC, whole seconds, ``Z`` suffix."""
    return instant.astimezone(settlement.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def bucket_floor(instant: dt.datetime) -> dt.datetime:
    """Start of the UTC half-hour holding an instant (settlement periods align with them)."""
    seconds = (instant - EPOCH).total_seconds()
    return EPOCH + dt.timedelta(seconds=seconds - seconds % 1800)


@dataclasses.dataclass(frozen=True)
class Bucket:
    """One settlement period being generated, with its instants pre-formatted."""

    start: dt.datetime
    day: dt.date
    period: int
    rng: random.Random

    @property
    def end(self) -> dt.datetime:
        return self.start + HALF_HOUR

    @property
    def index(self) -> int:
        """Half-hours since 2000: a compact, increasing id for sequence-like fields."""
        return int((self.start - EPOCH).total_seconds()) // 1800

    @functools.cached_property
    def start_iso(self) -> str:
        return iso(self.start)

    @functools.cached_property
    def end_iso(self) -> str:
        return iso(self.end)

    @functools.cached_property
    def day_iso(self) -> str:
        return self.day.isoformat()


def _wave(instant: dt.datetime, peak_hour: float, period_hours: float = 24.0) -> float:
    """A smooth -1..1 cycle peaking at ``peak_hour`` UTC, continuous across buckets."""
    hours = (instant - EPOCH).total_seconds() / 3600
    return math.cos(2 * math.pi * (hours - peak_hour) / period_hours)


@functools.lru_cache(maxsize=4096)
def _knot(seed: int, name: str, index: int) -> float:
    return random.Random(f"{seed}:{name}:knot:{index}").random()


def _drift(seed: int, name: str, instant: dt.datetime, knot_hours: float) -> float:
    """A 0..1 value that wanders smoothly in time (random knots, cosine-interpolated): the
    weather and plant availability, continuous across midnight as real wind output is."""
    position = (instant - EPOCH).total_seconds() / 3600 / knot_hours
    index = math.floor(position)
    weight = (1 - math.cos(math.pi * (position - index))) / 2
    return _knot(seed, name, index) * (1 - weight) + _knot(seed, name, index + 1) * weight


class FixedDecimal(float):
    """A number the API spells with a fixed number of decimals (:attr:`places`).

    Arithmetic on it gives a plain float; :func:`dumps` writes it as the API does.
    """

    places: ClassVar[int]


class LongDecimal(FixedDecimal):
    """System prices: every number with 18 decimals (``344.249492314814801830``)."""

    places = 18


class Decimal2(FixedDecimal):
    """System prices' sell/buy price adjustments: 2 decimals (``0.00``)."""

    places = 2


class Decimal3(FixedDecimal):
    """REMIT capacities and B1610 quantities: 3 decimals (``133.000``, ``179.400``)."""

    places = 3


def _encode(value: Any) -> Any:
    if isinstance(value, FixedDecimal):
        # The shortest repr is the value meant; the API pads it to its places.
        text = f"{decimal.Decimal(repr(float(value))):.{value.places}f}"
        return orjson.Fragment(text.encode())
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(value: Any) -> bytes:
    """JSON of simulated rows as the API writes them (fixed-decimal numbers kept)."""
    return orjson.dumps(value, default=_encode)


class Generator:
    """Rows of one dataset; subclasses implement :meth:`generate` for one bucket."""

    code: ClassVar[str]
    # Measured values a "revise" fault may change (never keys, periods or version fields).
    value_fields: ClassVar[tuple[str, ...]]
    # Real answers list newest first for BOALF, MILS, MELS, PN, MID (samples, uk-energy tests).
    descending: ClassVar[bool] = False
    # Whether null fields are left out of a row rather than sent as null (the REMIT stream).
    omits_nulls: ClassVar[bool] = False

    def __init__(self, seed: int, scale: float) -> None:
        self.seed = seed
        self.scale = scale
        self.dataset = catalog.get(self.code)
        self._cached_rows = functools.lru_cache(maxsize=4)(self._bucket_rows)

    def rows(self, start: dt.datetime) -> list[Row]:
        """Rows whose time key falls in the half-hour bucket starting at ``start``.

        Callers must not modify them: the last few buckets are cached, because adjacent
        inclusive windows (BOD's hourly requests) share their edge bucket.
        """
        return self._cached_rows(start)

    def _bucket_rows(self, start: dt.datetime) -> list[Row]:
        day, period = settlement.period_of(start)
        rng = random.Random(f"{self.seed}:{self.code}:{int(start.timestamp())}")
        rows = self.generate(Bucket(start, day, period, rng))
        if self.descending:
            # Newest first within the bucket too (a stable sort keeps ties in generated order).
            time_field = self.dataset.time_field or "settlementPeriod"
            rows.sort(key=lambda row: row[time_field], reverse=True)
        return rows

    def day_rng(self, day: dt.date) -> random.Random:
        """Randomness fixed for a whole day (weather, plant availability)."""
        return random.Random(f"{self.seed}:{self.code}:{day.isoformat()}")

    def generate(self, bucket: Bucket) -> list[Row]:
        raise NotImplementedError

    def units(self) -> tuple[BmUnit, ...]:
        return fleet(self.seed, self.scale)


# ---------------------------------------------------------------- generation by fuel type

FUEL_TYPES = ("BIOMASS", "CCGT", "COAL", "NPSHYD", "NUCLEAR", "OCGT", "OIL", "OTHER", "PS", "WIND")
INTERCONNECTORS = (
    "INTELEC",
    "INTEW",
    "INTFR",
    "INTGRNL",
    "INTIFA2",
    "INTIRL",
    "INTNED",
    "INTNEM",
    "INTNSL",
    "INTVKL",
)


class _FuelGenerator(Generator):
    """FUELINST/FUELHH: MW per fuel type, shaped by a daily demand cycle and the weather.

    Wind, nuclear availability and interconnector flows drift smoothly in time (no jump at
    midnight: real wind output is continuous across days)."""

    value_fields = ("generation",)
    step: ClassVar[dt.timedelta]
    publish_delay: ClassVar[dt.timedelta]

    def generate(self, bucket: Bucket) -> list[Row]:
        rows: list[Row] = []
        instant = bucket.start
        while instant < bucket.end:
            start_iso, publish_iso = iso(instant), iso(instant + self.publish_delay)
            wind_level = 1000 + 19000 * _drift(self.seed, "wind", instant, 9)
            nuclear = 3500 + 1500 * _drift(self.seed, "nuclear", instant, 72)
            flows = {
                ic: -1800 + 3600 * _drift(self.seed, ic, instant, 12) for ic in INTERCONNECTORS
            }
            demand = 27000 + 7000 * _wave(instant, 17.5)
            wind = max(300.0, wind_level * (1 + 0.15 * _wave(instant, 3, 11)))
            mw = {
                "BIOMASS": 1700 + 900 * _wave(instant, 17),
                "CCGT": min(20000.0, max(2000.0, demand - wind - nuclear - 2500)),
                "COAL": 0.0,
                "NPSHYD": 450 + 250 * _wave(instant, 12, 31),
                "NUCLEAR": nuclear,
                "OCGT": max(0.0, 300 * _wave(instant, 17.5)),
                "OIL": 0.0,
                "OTHER": 900 + 300 * _wave(instant, 13),
                "PS": 1800 * _wave(instant, 18),
                "WIND": wind,
            }
            for ic, flow in flows.items():
                mw[ic] = flow * (1 - 0.1 * _wave(instant, 4))
            for fuel in FUEL_TYPES + INTERCONNECTORS:
                noise = bucket.rng.gauss(0, 25) if mw[fuel] else 0.0
                rows.append(
                    {
                        "dataset": self.code,
                        "publishTime": publish_iso,
                        "startTime": start_iso,
                        "settlementDate": bucket.day_iso,
                        "settlementPeriod": bucket.period,
                        "fuelType": fuel,
                        "generation": round(mw[fuel] + noise),
                    }
                )
            instant += self.step
        return rows


class FuelInst(_FuelGenerator):
    code = "FUELINST"
    step = dt.timedelta(minutes=5)
    publish_delay = dt.timedelta(minutes=5)


class FuelHH(_FuelGenerator):
    code = "FUELHH"
    step = HALF_HOUR
    publish_delay = HALF_HOUR


class Freq(Generator):
    """System frequency every 15 s: a slow wander plus noise, mostly inside 49.8-50.2 Hz,
    with occasional excursions beyond it (a large unit tripping) that recover within minutes.
    Not clamped: real frequency leaves the operational band; the statutory one is 49.5-50.5."""

    code = "FREQ"
    value_fields = ("frequency",)

    def generate(self, bucket: Bucket) -> list[Row]:
        rng = bucket.rng
        # About one excursion a day: a drop of 0.2-0.45 Hz, recovering over ~3 minutes.
        trip_step = rng.randrange(120) if rng.random() < 1 / 48 else None
        depth = rng.uniform(0.2, 0.45)
        rows: list[Row] = []
        for step in range(120):
            instant = bucket.start + dt.timedelta(seconds=15 * step)
            hz = 50 + 0.07 * _wave(instant, 0, 0.37) + rng.gauss(0, 0.03)
            if trip_step is not None and step >= trip_step:
                hz -= depth * math.exp(-(step - trip_step) / 6)
            rows.append(
                {"dataset": self.code, "measurementTime": iso(instant), "frequency": round(hz, 3)}
            )
        return rows


class Mid(Generator):
    """Market index: N2EX carries the price; APX rows are mostly zero price and volume."""

    code = "MID"
    value_fields = ("price", "volume")
    descending = True

    def generate(self, bucket: Bucket) -> list[Row]:
        rng = bucket.rng
        price = 85 + 45 * _wave(bucket.start, 17.5) + rng.gauss(0, 8)
        if rng.random() < 0.02:
            price *= rng.uniform(3, 12)
        apx_trades = rng.random() < 0.2
        quotes = (
            (
                "APXMIDP",
                round(price + rng.gauss(0, 3), 2) if apx_trades else 0.0,
                round(rng.uniform(5, 200), 2) if apx_trades else 0.0,
            ),
            ("N2EXMIDP", round(price, 2), round(rng.uniform(300, 2500), 2)),
        )
        return [
            {
                "dataset": self.code,
                "startTime": bucket.start_iso,
                "dataProvider": provider,
                "settlementDate": bucket.day_iso,
                "settlementPeriod": bucket.period,
                "price": quote_price,
                "volume": volume,
            }
            for provider, quote_price, volume in quotes
        ]


class SystemPrices(Generator):
    """DISEBSP: one price per period, SSP == SBP (single imbalance price since 2015)."""

    code = "DISEBSP"
    value_fields = ("systemSellPrice", "systemBuyPrice", "netImbalanceVolume")

    def generate(self, bucket: Bucket) -> list[Row]:
        rng = bucket.rng
        price = 85 + 50 * _wave(bucket.start, 17.5) + rng.gauss(0, 20)
        spike = rng.random()
        if spike < 0.01:
            price = rng.uniform(800, 2500)
        elif spike < 0.04:
            price = -rng.uniform(0, 60)
        price = round(price, 2)
        # Volumes are quotients (MWh per period), unrounded as the API sends them.
        offers, bids = rng.uniform(200, 2500), -rng.uniform(200, 2500)
        adjust_buy = round(rng.choice((0.0, rng.uniform(0, 500))), 3)
        created = bucket.end + dt.timedelta(minutes=rng.randint(14, 50), seconds=rng.randint(0, 59))
        replaced = rng.random() < 0.3
        row: Row = {
            "settlementDate": bucket.day_iso,
            "settlementPeriod": bucket.period,
            "startTime": bucket.start_iso,
            "createdDateTime": iso(created),
            "systemSellPrice": price,
            "systemBuyPrice": price,
            "bsadDefaulted": False,
            "priceDerivationCode": rng.choice(("N", "P", "P", "P")),
            "reserveScarcityPrice": 0.0,
            "netImbalanceVolume": offers + bids + adjust_buy,
            "sellPriceAdjustment": 0.0,
            "buyPriceAdjustment": 0.0,
            # Set together or null together, as in the real answers.
            "replacementPrice": price if replaced else None,
            "replacementPriceReferenceVolume": 0.0 if replaced else None,
            "totalAcceptedOfferVolume": offers,
            "totalAcceptedBidVolume": bids,
            "totalAdjustmentSellVolume": 0.0,
            "totalAdjustmentBuyVolume": adjust_buy,
            "totalSystemTaggedAcceptedOfferVolume": offers,
            "totalSystemTaggedAcceptedBidVolume": bids + rng.choice((0.0, 1.0)),
            "totalSystemTaggedAdjustmentSellVolume": None,
            "totalSystemTaggedAdjustmentBuyVolume": adjust_buy if rng.random() < 0.5 else None,
        }
        # A real system-prices answer writes its numbers with 18 decimals, except the two
        # price adjustments (0.00).
        return [
            {
                name: (Decimal2 if name in _TWO_PLACES else LongDecimal)(value)
                if isinstance(value, float)
                else value
                for name, value in row.items()
            }
        ]


_TWO_PLACES = frozenset({"sellPriceAdjustment", "buyPriceAdjustment"})


# ---------------------------------------------------------------- balancing services

# Short party ids, as in real rows (``ENWL``, ``UKPR``); assets are ``<kind>-<party>-<n>``.
_PARTIES = ("ENWL", "UKPR", "NGET", "STAT", "EDFE", "CENT", "UNIP", "ELRT")
_SERVICES = ("Non-BM FR", "Energy", "Energy", "System", "Non-BM STOR")


class Disbsad(Generator):
    """Balancing services adjustment actions, ~7 per period, ``id`` numbered 1..n within the
    period (as real rows are). Some periods carry a placeholder row: zero cost and volume,
    no party or asset; a few actions have no published cost yet."""

    code = "DISBSAD"
    value_fields = ("cost", "volume")

    def generate(self, bucket: Bucket) -> list[Row]:
        rng = bucket.rng
        rows: list[Row] = []
        actions = rng.randint(3, 11)
        placeholder = rng.randrange(actions) if rng.random() < 0.15 else None
        for number in range(1, actions + 1):
            if number - 1 == placeholder:
                party = asset = None
                service = rng.choice(_SERVICES)
                volume = cost = 0.0
                so_flag = tendered = False
            else:
                party = rng.choice(_PARTIES)
                service = rng.choice(_SERVICES)
                kind = "OFR" if service == "Non-BM FR" else "BSAD"
                asset = f"{kind}-{party}-{rng.randint(1, 9)}"
                volume = round(rng.choice((-1, 1)) * rng.uniform(1, 300), 3)
                price = rng.uniform(20, 250)
                cost = None if rng.random() < 0.05 else round(abs(volume) * price, 2)
                so_flag, tendered = rng.random() < 0.8, rng.random() < 0.5
            rows.append(
                {
                    "dataset": self.code,
                    "settlementDate": bucket.day_iso,
                    "settlementPeriod": bucket.period,
                    "id": number,
                    "cost": cost,
                    "volume": volume,
                    "soFlag": so_flag,
                    "storFlag": rng.random() < 0.05,
                    "partyId": party,
                    "assetId": asset,
                    "isTendered": tendered,
                    "service": service,
                }
            )
        return rows


class Netbsad(Generator):
    """Net adjustments, one row per period, mostly zero."""

    code = "NETBSAD"
    value_fields = (
        "netBuyPriceCostAdjustmentEnergy",
        "netBuyPriceVolumeAdjustmentEnergy",
        "netSellPriceCostAdjustmentEnergy",
        "netSellPriceVolumeAdjustmentEnergy",
    )

    def generate(self, bucket: Bucket) -> list[Row]:
        rng = bucket.rng

        def sometimes(low: float, high: float) -> float:
            return round(rng.uniform(low, high), 2) if rng.random() < 0.3 else 0.0

        return [
            {
                "dataset": self.code,
                "settlementDate": bucket.day_iso,
                "settlementPeriod": bucket.period,
                "netBuyPriceCostAdjustmentEnergy": sometimes(0, 40000),
                "netBuyPriceVolumeAdjustmentEnergy": sometimes(0, 400),
                "netBuyPriceVolumeAdjustmentSystem": sometimes(-50, 0),
                "buyPricePriceAdjustment": 0.0,
                "netSellPriceCostAdjustmentEnergy": sometimes(-20000, 0),
                "netSellPriceVolumeAdjustmentEnergy": sometimes(-300, 0),
                "netSellPriceVolumeAdjustmentSystem": sometimes(-50, 0),
                "sellPricePriceAdjustment": 0.0,
            }
        ]


# ---------------------------------------------------------------- per BM unit


def _unit_level(unit: BmUnit, instant: dt.datetime, phase: float) -> int:
    """A unit's planned MW at an instant: smooth in time, so PN segments join up."""
    share = 0.55 + 0.45 * _wave(instant, phase + unit.peak_hour)
    level = round(unit.capacity_mw * share)
    return -level if unit.fuel == "DEMAND" else level


def _segment_times(bucket: Bucket, count: int) -> list[dt.datetime]:
    """``count`` contiguous segments covering the period, cut at random whole minutes."""
    cuts = sorted(bucket.rng.sample(range(1, 30), count - 1))
    return [bucket.start] + [bucket.start + dt.timedelta(minutes=m) for m in cuts] + [bucket.end]


@functools.lru_cache(maxsize=65536)
def _unit_draw(seed: int, unit: BmUnit, what: str) -> float:
    """A 0..1 draw fixed per unit (its habits), independent of the bucket."""
    return random.Random(f"{seed}:{unit.national_grid_bm_unit}:{what}").random()


class PhysicalNotifications(Generator):
    """PN: each unit's planned MW per period. Most units send one flat 30-minute segment;
    some send 15-minute segments (wind farms: T_ABRBO-1); ramping units cut the period at
    any minute, with levelFrom != levelTo (the T_DRAXX-1 start-up: a 1-minute segment).
    Many units sit at 0, demand units below it (real PN samples)."""

    code = "PN"
    value_fields = ("levelFrom", "levelTo")
    descending = True

    def generate(self, bucket: Bucket) -> list[Row]:
        rows: list[Row] = []
        for unit in self.units():
            habit = _unit_draw(self.seed, unit, "pn-shape")
            if _unit_draw(self.seed, unit, "pn-off") < 0.3:
                times, levels = [bucket.start, bucket.end], [0, 0]
            elif habit < 0.45:
                level = _unit_level(unit, bucket.start, 0.0)
                times, levels = [bucket.start, bucket.end], [level, level]
            elif habit < 0.75:
                middle = bucket.start + dt.timedelta(minutes=15)
                first, second = (_unit_level(unit, t, 0.0) for t in (bucket.start, middle))
                times = [bucket.start, middle, middle, bucket.end]
                levels = [first, first, second, second]
            else:
                times = _segment_times(bucket, bucket.rng.choice((2, 3, 4, 5)))
                levels = [_unit_level(unit, t, 0.0) for t in times]
            step = 2 if len(times) == 4 and times[1] == times[2] else 1
            for i in range(0, len(times) - 1, step):
                rows.append(
                    self._row(bucket, unit, times[i], times[i + 1], levels[i], levels[i + 1])
                )
        return rows

    def _row(
        self,
        bucket: Bucket,
        unit: BmUnit,
        start: dt.datetime,
        end: dt.datetime,
        low: int,
        high: int,
    ) -> Row:
        return {
            "dataset": self.code,
            "settlementDate": bucket.day_iso,
            "settlementPeriod": bucket.period,
            "timeFrom": iso(start),
            "timeTo": iso(end),
            "levelFrom": low,
            "levelTo": high,
            "nationalGridBmUnit": unit.national_grid_bm_unit,
            "bmUnit": unit.bm_unit,
        }


class QuiescentNotifications(PhysicalNotifications):
    """QPN: one 30-minute segment per unit and period, almost always 0; a few demand units
    hold a constant negative level (T_WILCT-1 at -60 MW). QPN does not copy PN's segments."""

    code = "QPN"

    def generate(self, bucket: Bucket) -> list[Row]:
        rows: list[Row] = []
        for unit in self.units():
            level = 0
            if unit.fuel == "DEMAND" and _unit_draw(self.seed, unit, "qpn") < 0.2:
                level = -max(1, unit.capacity_mw // 10)
            rows.append(self._row(bucket, unit, bucket.start, bucket.end, level, level))
        return rows


class _LimitGenerator(Generator):
    """MELS/MILS, the resolved view the API serves: every registered unit has a limit in
    force at every instant (a real MILS answer: 1,000+ units at one instant), one segment per
    unit and period, mostly from a standing declaration made days before. A few units
    re-declare within the period, so the period is cut: the earlier part keeps the old
    declaration's sequence, the rest carries the new one (Elexon's resolution rules). Units
    without an Elexon id come with ``bmUnit: null``."""

    value_fields = ("levelFrom", "levelTo")
    descending = True

    def limit(self, unit: BmUnit, rng: random.Random) -> int:
        raise NotImplementedError

    def limit_units(self) -> tuple[BmUnit, ...]:
        """The fleet's units registered for limits (~80%) and the National-Grid-only ones,
        interleaved so a small test fleet still shows a null ``bmUnit``."""
        registered = [u for u in self.units() if _unit_draw(self.seed, u, "limits") < 0.8]
        extra = limit_only_units(self.seed, self.scale)
        spacing = len(registered) // len(extra) + 1
        merged = list(registered)
        for position, unit in enumerate(extra):
            merged.insert(min(len(merged), 1 + position * spacing), unit)
        return tuple(merged)

    def generate(self, bucket: Bucket) -> list[Row]:
        rng = bucket.rng
        rows: list[Row] = []
        for number, unit in enumerate(self.limit_units()):
            # The standing declaration: made 1-60 days before this day, the same all day.
            days_before = 1 + int(_unit_draw(self.seed, unit, f"{self.code}:{bucket.day}") * 60)
            standing = dt.datetime.combine(
                bucket.day - dt.timedelta(days=days_before), dt.time(10), settlement.UTC
            ) + dt.timedelta(seconds=int(_unit_draw(self.seed, unit, "second") * 3600))
            unit_day = f"{self.seed}:{self.code}:{unit.national_grid_bm_unit}:{bucket.day}"
            level = self.limit(unit, random.Random(unit_day))
            declarations = [(bucket.start, bucket.end, standing, level)]
            if rng.random() < 0.005:
                # A re-declaration within the period, notified shortly before it applies.
                cut = bucket.start + dt.timedelta(minutes=rng.randint(5, 28))
                ahead = dt.timedelta(minutes=rng.randint(1, 20), seconds=rng.randint(0, 59))
                notified = cut - ahead
                new_level = self.limit(unit, rng)
                declarations = [
                    (bucket.start, cut, standing, level),
                    (cut, bucket.end, notified, new_level),
                ]
            for start, end, notified, limit in declarations:
                minutes = int((notified - EPOCH).total_seconds()) // 60
                rows.append(
                    {
                        "dataset": self.code,
                        "settlementDate": bucket.day_iso,
                        "settlementPeriod": bucket.period,
                        "timeFrom": iso(start),
                        "timeTo": iso(end),
                        "levelFrom": limit,
                        "levelTo": limit,
                        "notificationTime": iso(notified),
                        # Increases with notification time and fits the int32 the API declares.
                        "notificationSequence": minutes * 100 + number % 100,
                        "nationalGridBmUnit": unit.national_grid_bm_unit,
                        "bmUnit": unit.bm_unit,
                    }
                )
        return rows


class ExportLimits(_LimitGenerator):
    """MELS: most units may export their capacity; some are off (0) or derated."""

    code = "MELS"

    def limit(self, unit: BmUnit, rng: random.Random) -> int:
        return round(unit.capacity_mw * rng.choice((1.0, 1.0, 1.0, 1.0, 0.8, 0.5, 0.0)))


class ImportLimits(_LimitGenerator):
    """MILS: 0 for almost every unit (954 of 1,000 in a real answer); storage and demand
    units that can import declare a negative limit."""

    code = "MILS"

    def limit(self, unit: BmUnit, rng: random.Random) -> int:
        if not unit.imports:
            return 0
        return -round(unit.capacity_mw * rng.choice((1.0, 1.0, 0.8, 0.5)))


class BidOffer(Generator):
    """BOD: every unit's bid-offer pairs for the period (~6k rows per period at scale 1)."""

    code = "BOD"
    value_fields = ("levelFrom", "levelTo", "offer", "bid")

    def generate(self, bucket: Bucket) -> list[Row]:
        rng = bucket.rng
        rows: list[Row] = []
        for unit in self.units():
            half = unit.pairs // 2
            step = max(1, unit.capacity_mw // max(1, half))
            unavailable = rng.random() < 0.05
            for pair in range(-half, half + 1):
                if pair == 0:
                    continue
                if unavailable:
                    # The API's convention for "not offering": +/-9999 prices.
                    offer, bid = 9999.0, -9999.0
                else:
                    price = unit.base_price + 6 * pair + rng.gauss(0, 1.5)
                    offer, bid = round(price + 2, 2), round(price - rng.uniform(1, 8), 2)
                level = step * pair
                rows.append(
                    {
                        "dataset": self.code,
                        "settlementDate": bucket.day_iso,
                        "settlementPeriod": bucket.period,
                        "timeFrom": bucket.start_iso,
                        "levelFrom": level,
                        "timeTo": bucket.end_iso,
                        "levelTo": level,
                        "pairId": pair,
                        "offer": offer,
                        "bid": bid,
                        "nationalGridBmUnit": unit.national_grid_bm_unit,
                        "bmUnit": unit.bm_unit,
                    }
                )
        return rows


class Acceptances(Generator):
    """BOALF: ~27,000 rows a day at full scale (a real UTC day; 1,650 in one busy hour).

    An acceptance is 1-3 rows (a 1-minute ramp to the accepted level, a hold of a few
    minutes, a 1-minute ramp back), often a bid (negative level), accepted 1-80 minutes ahead.
    Acceptances start at any minute, so their rows cross periods and midnight; each row's
    ``settlementPeriodFrom``/``To`` are the periods holding its ``timeFrom`` and ``timeTo``
    and its ``settlementDate`` the day of ``timeFrom``. Numbers increase per unit and recur
    across units. Rows are listed newest first.
    """

    code = "BOALF"
    value_fields = ("levelFrom", "levelTo")
    descending = True
    # Acceptances starting in one half-hour (~560 rows/half-hour over 1,400 units).
    PER_BUCKET = 230
    # At most 8 acceptances per unit start in one half-hour: they number bucket.index * 8 + n.
    PER_UNIT = 8

    def generate(self, bucket: Bucket) -> list[Row]:
        # An acceptance lasts under an hour, so those starting in the previous half-hour
        # may still have rows starting in this one.
        rows = [
            row
            for origin in (bucket.start - HALF_HOUR, bucket.start)
            for row in self._acceptances(origin)
            if bucket.start_iso <= row["timeFrom"] < bucket.end_iso
        ]
        rows.sort(key=lambda row: row["acceptanceNumber"])
        rows.sort(key=lambda row: (row["timeFrom"], row["timeTo"]), reverse=True)
        return rows

    @functools.lru_cache(maxsize=8)  # noqa: B019 - per generator, a handful of buckets
    def _acceptances(self, origin: dt.datetime) -> list[Row]:
        """Every row of the acceptances that start in the half-hour from ``origin``."""
        rng = random.Random(f"{self.seed}:{self.code}:origin:{int(origin.timestamp())}")
        index = int((origin - EPOCH).total_seconds()) // 1800
        units = [unit for unit in self.units() if unit.bm_unit is not None]
        per_unit: dict[str, int] = {}
        rows: list[Row] = []
        for _ in range(max(1, round(self.PER_BUCKET * len(units) / 1400))):
            unit = rng.choice(units)
            nth = per_unit.get(unit.national_grid_bm_unit, 0)
            if nth >= self.PER_UNIT:
                continue
            per_unit[unit.national_grid_bm_unit] = nth + 1
            start = origin + dt.timedelta(minutes=rng.randint(0, 29))
            accepted = start - dt.timedelta(minutes=min(80, round(rng.expovariate(1 / 12)) + 1))
            level = max(1, round(unit.capacity_mw * rng.uniform(0.02, 0.5)))
            level = -level if rng.random() < 0.58 else level
            hold = dt.timedelta(minutes=min(28, round(rng.expovariate(1 / 6)) + 1))
            minute = dt.timedelta(minutes=1)
            shape = rng.random()
            if shape < 0.15:  # one row: a level held across a whole half-hour
                segments = [(start, start + HALF_HOUR, level, level)]
            elif shape < 0.45:  # ramp in, hold
                segments = [
                    (start, start + minute, 0, level),
                    (start + minute, start + minute + hold, level, level),
                ]
            else:  # ramp in, hold, ramp out
                end_hold = start + minute + hold
                segments = [
                    (start, start + minute, 0, level),
                    (start + minute, end_hold, level, level),
                    (end_hold, end_hold + minute, level, 0),
                ]
            so_flag, amended = rng.random() < 0.03, rng.random() < 0.01
            for time_from, time_to, level_from, level_to in segments:
                day, period_from = settlement.period_of(time_from)
                rows.append(
                    {
                        "dataset": self.code,
                        "settlementDate": day.isoformat(),
                        "settlementPeriodFrom": period_from,
                        "settlementPeriodTo": settlement.period_of(time_to)[1],
                        "timeFrom": iso(time_from),
                        "timeTo": iso(time_to),
                        "levelFrom": level_from,
                        "levelTo": level_to,
                        "acceptanceNumber": index * self.PER_UNIT + nth,
                        "acceptanceTime": iso(accepted),
                        "deemedBoFlag": False,
                        "soFlag": so_flag,
                        "amendmentFlag": "AMD" if amended else "ORI",
                        "storFlag": False,
                        "rrFlag": False,
                        "nationalGridBmUnit": unit.national_grid_bm_unit,
                        "bmUnit": unit.bm_unit,
                    }
                )
        return rows


# ---------------------------------------------------------------- published forecasts and notices

BOUNDARIES = ("N",) + tuple(f"B{n}" for n in range(1, 18))
# Periods ahead covered by each half-hourly publication (~56 h): ~100k rows per day.
FORECAST_HORIZON = 112


class _IndicatedGenerator(Generator):
    """INDGEN/INDDEM: every half hour a new forecast of the next ~56 h, per boundary.

    The bucket is the publication half-hour, so a day's chunk (by publish time) holds 48
    publications, each revising the periods the previous one covered.
    """

    value_field: ClassVar[str]
    sign: ClassVar[int]

    def generate(self, bucket: Bucket) -> list[Row]:
        rng = bucket.rng
        publish_iso = bucket.start_iso
        rows: list[Row] = []
        for ahead in range(1, FORECAST_HORIZON + 1):
            start = bucket.start + ahead * HALF_HOUR
            day, period = settlement.period_of(start)
            national = 27000 + 7000 * _wave(start, 17.5) + rng.gauss(0, 150 * math.sqrt(ahead))
            day_iso, start_iso = day.isoformat(), iso(start)
            for number, boundary in enumerate(BOUNDARIES):
                share = 1.0 if boundary == "N" else 0.95 - 0.05 * number
                rows.append(
                    {
                        "dataset": self.code,
                        self.value_field: self.sign * round(national * share),
                        "publishTime": publish_iso,
                        "startTime": start_iso,
                        "settlementDate": day_iso,
                        "settlementPeriod": period,
                        "boundary": boundary,
                    }
                )
        return rows


class IndicatedGeneration(_IndicatedGenerator):
    code = "INDGEN"
    value_fields = ("generation",)
    value_field = "generation"
    sign = 1


class IndicatedDemand(_IndicatedGenerator):
    code = "INDDEM"
    value_fields = ("demand",)
    value_field = "demand"
    # Demand is published as a negative MW figure (energy leaving the system).
    sign = -1


_REMIT_FUELS = ("Fossil Gas", "Nuclear", "Wind Offshore", "Biomass", "Hydro Pumped Storage")


class Remit(Generator):
    """REMIT outage notices, ~6 per half hour: new notices and revisions of recent ones.

    As the real stream sends them: fields whose value is null are left out of the row, most
    rows carry no ``outageProfile`` (a few carry a 3-point one), and a few are market
    information messages without unit fields."""

    code = "REMIT"
    value_fields = ("availableCapacity", "unavailableCapacity")
    omits_nulls = True
    # A real stream answer lists the newest publication first.
    descending = True

    def generate(self, bucket: Bucket) -> list[Row]:
        rng = bucket.rng
        rows: list[Row] = []
        revised: set[tuple[int, int]] = set()
        for number in range(rng.randint(3, 9)):
            origin = (bucket.index, number)
            if rng.random() < 0.3:
                origin = (bucket.index - rng.randint(1, 96), rng.randint(0, 2))
            if origin in revised:
                continue
            revised.add(origin)
            published = bucket.start + dt.timedelta(seconds=rng.randint(0, 1799))
            rows.append(self._notice(origin, bucket.index - origin[0] + 1, published, rng))
        return rows

    def _notice(
        self, origin: tuple[int, int], revision: int, published: dt.datetime, rng: random.Random
    ) -> Row:
        """A notice's identity comes from its first publication; its state from this revision."""
        first = random.Random(f"{self.seed}:{self.code}:notice:{origin[0]}:{origin[1]}")
        unit = first.choice(fleet(self.seed, 1.0))
        participant = f"11X{unit.national_grid_bm_unit[:5]}".ljust(15, "-") + "2"
        normal = float(first.choice((100, 250, 400, 660, 850, 1200, 1300)))
        unavailable = round(min(normal, rng.uniform(50, 1200)), 1)
        start = (EPOCH + origin[0] * HALF_HOUR) + dt.timedelta(hours=first.randint(1, 240))
        end = start + dt.timedelta(hours=rng.randint(2, 240)) if rng.random() < 0.9 else None
        profile_end = end or start + dt.timedelta(days=7)
        middle = start + (profile_end - start) / 2
        planned = first.random() < 0.6
        notice: Row = {
            "dataset": self.code,
            "mrid": f"{participant}-NGET-RMT-{origin[0] % 10**6:06d}{origin[1]:02d}",
            "revisionNumber": revision,
            "publishTime": iso(published),
            "createdTime": iso(published - dt.timedelta(seconds=rng.randint(0, 120))),
            "messageType": "UnavailabilitiesOfElectricityFacilities",
            "messageHeading": "Planned Unavailability of Generation Unit"
            if planned
            else "Unplanned Unavailability of Generation Unit",
            "eventType": "Production unavailability",
            "unavailabilityType": "Planned" if planned else "Unplanned",
            "participantId": participant,
            "registrationCode": participant,
            "assetId": unit.bm_unit,
            "assetType": "Production",
            "affectedUnit": unit.national_grid_bm_unit,
            "affectedUnitEIC": f"48W{unit.national_grid_bm_unit.replace('-', '')[:12]}".ljust(
                16, "0"
            ),
            "affectedArea": "N",
            "biddingZone": "10YGB----------A",
            "fuelType": first.choice(_REMIT_FUELS),
            "normalCapacity": Decimal3(normal),
            "availableCapacity": Decimal3(round(normal - unavailable, 1)),
            "unavailableCapacity": Decimal3(unavailable),
            "eventStatus": "Active" if rng.random() < 0.85 else "Dismissed",
            "eventStartTime": iso(start),
            "eventEndTime": iso(end) if end else None,
            "durationUncertainty": rng.choice((None, None, None, "+- 1 day", "+- 2 hours")),
            "cause": rng.choice(("Planned maintenance", "Other", "Failure")),
            "relatedInformation": None if revision == 1 else "Revised outage window",
        }
        if first.random() < 0.05:
            # Other market information: no unit, capacity or event-type fields.
            notice["messageType"] = "OtherMarketInformation"
            notice["messageHeading"] = "Other Market Information"
            for name in _UNIT_FIELDS:
                notice.pop(name)
        elif rng.random() < 0.1:
            notice["outageProfile"] = [
                {"startTime": iso(start), "endTime": iso(start), "capacity": Decimal3(normal)},
                {
                    "startTime": iso(start),
                    "endTime": iso(middle),
                    "capacity": Decimal3(round(normal - unavailable, 1)),
                },
                {
                    "startTime": iso(middle),
                    "endTime": iso(profile_end),
                    "capacity": Decimal3(round(normal - unavailable / 2, 1)),
                },
            ]
        return {name: value for name, value in notice.items() if value is not None}


_UNIT_FIELDS = (
    "eventType",
    "unavailabilityType",
    "assetType",
    "affectedUnit",
    "affectedUnitEIC",
    "affectedArea",
    "biddingZone",
    "fuelType",
    "normalCapacity",
    "availableCapacity",
    "unavailableCapacity",
)


# The core datasets; worker.sim.calibrated adds the rest and is the registry to use.
CORE_GENERATOR_CLASSES: dict[str, type[Generator]] = {
    cls.code: cls
    for cls in (
        FuelInst,
        FuelHH,
        Freq,
        Mid,
        BidOffer,
        Acceptances,
        Disbsad,
        Netbsad,
        IndicatedGeneration,
        IndicatedDemand,
        PhysicalNotifications,
        QuiescentNotifications,
        ExportLimits,
        ImportLimits,
        Remit,
        SystemPrices,
    )
}
