"""Deterministic, plausible rows for every catalog dataset, one generator per dataset.

Rows are generated per *bucket*: the UTC half-hour (one settlement period) that a row's time
field falls in (its settlement period start for DISBSAD/NETBSAD, its publish time for the
forecasts and REMIT). A bucket's rows depend only on (seed, dataset, bucket start), so any
request window is answered by generating just the buckets it overlaps and filtering them:
a one-hour BOD request never builds the whole 300k-row day, and every answer is reproducible.

Values follow ``/work/shared/elexon/VOLUMES.md``; field names and order follow the OpenAPI row
schemas (stream rows carry ``dataset`` first, as the real API does; DISEBSP rows have none).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
import random
from typing import Any, ClassVar

from worker.elexon import catalog, settlement
from worker.sim.units import BmUnit, fleet

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


class Generator:
    """Rows of one dataset; subclasses implement :meth:`generate` for one bucket."""

    code: ClassVar[str]
    # Measured values a "revise" fault may change (never keys, periods or version fields).
    value_fields: ClassVar[tuple[str, ...]]
    # The real stream endpoint lists newest first (the PN sample shows SP48, 47, ...).
    descending: ClassVar[bool] = False

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
        return self.generate(Bucket(start, day, period, rng))

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
    """FUELINST/FUELHH: MW per fuel type, shaped by a daily demand cycle and the day's wind."""

    value_fields = ("generation",)
    step: ClassVar[dt.timedelta]
    publish_delay: ClassVar[dt.timedelta]

    def generate(self, bucket: Bucket) -> list[Row]:
        day = self.day_rng(bucket.day)
        wind_level = day.uniform(1000, 20000)
        nuclear = day.uniform(3500, 5000)
        flows = {ic: day.uniform(-1800, 1800) for ic in INTERCONNECTORS}
        rows: list[Row] = []
        instant = bucket.start
        while instant < bucket.end:
            start_iso, publish_iso = iso(instant), iso(instant + self.publish_delay)
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
    """System frequency every 15 s, a slow wander plus noise inside 49.8-50.2 Hz."""

    code = "FREQ"
    value_fields = ("frequency",)

    def generate(self, bucket: Bucket) -> list[Row]:
        rows: list[Row] = []
        for step in range(120):
            instant = bucket.start + dt.timedelta(seconds=15 * step)
            hz = 50 + 0.07 * _wave(instant, 0, 0.37) + bucket.rng.gauss(0, 0.03)
            rows.append(
                {
                    "dataset": self.code,
                    "measurementTime": iso(instant),
                    "frequency": round(min(50.2, max(49.8, hz)), 3),
                }
            )
        return rows


class Mid(Generator):
    """Market index: N2EX carries the price; APX rows are mostly zero price and volume."""

    code = "MID"
    value_fields = ("price", "volume")

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
        offers, bids = round(rng.uniform(200, 2500), 4), round(-rng.uniform(200, 2500), 4)
        adjust_buy = round(rng.choice((0.0, rng.uniform(0, 500))), 3)
        created = bucket.end + dt.timedelta(minutes=rng.randint(14, 50), seconds=rng.randint(0, 59))
        return [
            {
                "settlementDate": bucket.day_iso,
                "settlementPeriod": bucket.period,
                "startTime": bucket.start_iso,
                "createdDateTime": iso(created),
                "systemSellPrice": price,
                "systemBuyPrice": price,
                "bsadDefaulted": False,
                "priceDerivationCode": rng.choice(("N", "P", "P", "P")),
                "reserveScarcityPrice": 0.0,
                "netImbalanceVolume": round(offers + bids + adjust_buy, 4),
                "sellPriceAdjustment": 0.0,
                "buyPriceAdjustment": 0.0,
                "replacementPrice": price if rng.random() < 0.3 else None,
                "replacementPriceReferenceVolume": 0.0 if rng.random() < 0.3 else None,
                "totalAcceptedOfferVolume": offers,
                "totalAcceptedBidVolume": bids,
                "totalAdjustmentSellVolume": 0.0,
                "totalAdjustmentBuyVolume": adjust_buy,
                "totalSystemTaggedAcceptedOfferVolume": offers,
                "totalSystemTaggedAcceptedBidVolume": round(bids + rng.choice((0.0, 1.0)), 4),
                "totalSystemTaggedAdjustmentSellVolume": None,
                "totalSystemTaggedAdjustmentBuyVolume": adjust_buy,
            }
        ]


# ---------------------------------------------------------------- balancing services

_PARTIES = (
    "ElectroRoute Energy Trading Limited",
    "National Grid ESO",
    "Statkraft Markets GmbH",
    "EDF Energy Customers Limited",
    "Centrica Energy Limited",
    "Uniper UK Limited",
)


class Disbsad(Generator):
    """Balancing services adjustment actions, ~7 per period; some have no published cost."""

    code = "DISBSAD"
    value_fields = ("cost", "volume")

    def generate(self, bucket: Bucket) -> list[Row]:
        rng = bucket.rng
        rows: list[Row] = []
        for action in range(rng.randint(3, 11)):
            volume = round(rng.choice((-1, 1)) * rng.uniform(1, 300), 3)
            cost = None if rng.random() < 0.1 else round(abs(volume) * rng.uniform(20, 250), 2)
            party = rng.choice(_PARTIES)
            rows.append(
                {
                    "dataset": self.code,
                    "settlementDate": bucket.day_iso,
                    "settlementPeriod": bucket.period,
                    "id": bucket.index * 16 + action,
                    "cost": cost,
                    "volume": volume,
                    "soFlag": rng.random() < 0.8,
                    "storFlag": rng.random() < 0.05,
                    "partyId": party,
                    "assetId": f"{party.split()[0][:4].upper()}-{rng.randint(1, 9)}",
                    "isTendered": rng.random() < 0.5,
                    "service": rng.choice(("Energy", "Energy", "System")),
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


class _PhysicalGenerator(Generator):
    """PN/QPN: each unit's planned MW as 1-5 point-to-point segments per period."""

    value_fields = ("levelFrom", "levelTo")
    descending = True
    phase: ClassVar[float]

    def generate(self, bucket: Bucket) -> list[Row]:
        rows: list[Row] = []
        for unit in self.units():
            times = _segment_times(bucket, bucket.rng.choice((1, 2, 3, 3, 4, 5)))
            levels = [_unit_level(unit, t, self.phase) for t in times]
            for i in range(len(times) - 1):
                rows.append(
                    {
                        "dataset": self.code,
                        "settlementDate": bucket.day_iso,
                        "settlementPeriod": bucket.period,
                        "timeFrom": iso(times[i]),
                        "timeTo": iso(times[i + 1]),
                        "levelFrom": levels[i],
                        "levelTo": levels[i + 1],
                        "nationalGridBmUnit": unit.national_grid_bm_unit,
                        "bmUnit": unit.bm_unit,
                    }
                )
        return rows


class PhysicalNotifications(_PhysicalGenerator):
    code = "PN"
    phase = 0.0


class QuiescentNotifications(_PhysicalGenerator):
    code = "QPN"
    phase = 6.0


class _LimitGenerator(Generator):
    """MELS/MILS: limits re-declared by about half the units each period, newest sequence wins."""

    value_fields = ("levelFrom", "levelTo")
    sign: ClassVar[int]

    def eligible(self, unit: BmUnit) -> bool:
        return True

    def generate(self, bucket: Bucket) -> list[Row]:
        rng = bucket.rng
        rows: list[Row] = []
        for number, unit in enumerate(self.units()):
            if not self.eligible(unit) or rng.random() < 0.5:
                continue
            limit = self.sign * round(unit.capacity_mw * rng.choice((1.0, 1.0, 1.0, 0.8, 0.5)))
            notified = bucket.start - dt.timedelta(minutes=rng.randint(5, 90))
            minutes = int((notified - EPOCH).total_seconds()) // 60
            rows.append(
                {
                    "dataset": self.code,
                    "settlementDate": bucket.day_iso,
                    "settlementPeriod": bucket.period,
                    "timeFrom": bucket.start_iso,
                    "timeTo": bucket.end_iso,
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
    code = "MELS"
    sign = 1


class ImportLimits(_LimitGenerator):
    code = "MILS"
    sign = -1

    def eligible(self, unit: BmUnit) -> bool:
        return unit.imports


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
    """BOALF: ~50 acceptances per period, each a few segments; numbers are per unit."""

    code = "BOALF"
    value_fields = ("levelFrom", "levelTo")

    def generate(self, bucket: Bucket) -> list[Row]:
        rng = bucket.rng
        units = self.units()
        per_unit: dict[str, int] = {}
        rows: list[Row] = []
        for _ in range(max(1, round(50 * len(units) / 1400))):
            unit = rng.choice(units)
            nth = per_unit.get(unit.bm_unit, 0)
            per_unit[unit.bm_unit] = nth + 1
            accepted = bucket.start - dt.timedelta(minutes=rng.randint(2, 25))
            times = _segment_times(bucket, rng.randint(2, 5))
            target = round(unit.capacity_mw * rng.uniform(0.1, 1))
            levels = [0] + [target] * (len(times) - 2) + [0]
            amended = rng.random() < 0.05
            for i in range(len(times) - 1):
                rows.append(
                    {
                        "dataset": self.code,
                        "settlementDate": bucket.day_iso,
                        "settlementPeriodFrom": bucket.period,
                        "settlementPeriodTo": bucket.period,
                        "timeFrom": iso(times[i]),
                        "timeTo": iso(times[i + 1]),
                        "levelFrom": levels[i],
                        "levelTo": levels[i + 1],
                        # Numbered per unit, so the same number recurs across units.
                        "acceptanceNumber": bucket.index * 8 + nth,
                        "acceptanceTime": iso(accepted),
                        "deemedBoFlag": False,
                        "soFlag": rng.random() < 0.3,
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
    """REMIT outage notices, ~6 per half hour: new notices and revisions of recent ones."""

    code = "REMIT"
    value_fields = ("availableCapacity", "unavailableCapacity")

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
        rows.sort(key=lambda row: row["publishTime"])
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
        return {
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
            "normalCapacity": normal,
            "availableCapacity": round(normal - unavailable, 1),
            "unavailableCapacity": unavailable,
            "eventStatus": "Active" if rng.random() < 0.85 else "Dismissed",
            "eventStartTime": iso(start),
            "eventEndTime": iso(end) if end else None,
            "durationUncertainty": rng.choice((None, "+- 1 day", "+- 2 hours")),
            "cause": rng.choice(("Planned maintenance", "Other", "Failure")),
            "relatedInformation": None if revision == 1 else "Revised outage window",
            "outageProfile": [
                {
                    "startTime": iso(start),
                    "endTime": iso(middle),
                    "capacity": round(normal - unavailable, 1),
                },
                {
                    "startTime": iso(middle),
                    "endTime": iso(profile_end),
                    "capacity": round(normal - unavailable / 2, 1),
                },
            ],
        }


GENERATOR_CLASSES: dict[str, type[Generator]] = {
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


def generators(seed: int, scale: float) -> dict[str, Generator]:
    """One generator per catalog dataset; a catalog entry without one is a startup error."""
    missing = [d.code for d in catalog.DATASETS if d.code not in GENERATOR_CLASSES]
    if missing:
        raise RuntimeError(f"simulator has no generator for catalog datasets: {', '.join(missing)}")
    return {d.code: GENERATOR_CLASSES[d.code](seed, scale) for d in catalog.DATASETS}
