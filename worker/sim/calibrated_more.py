"""Generators for the datasets whose real samples arrived with the spec-driven catalog:
INDO, ITSDO, NDF and B1610, shaped as the recorded answers (``docs/elexon-data.md``).

- INDO/ITSDO: one outturn per settlement period, published at the period's end
  (``publishTime`` 11:00 for the period starting 10:30), newest first, in ``{data}``.
- NDF: a national demand forecast republished twice an hour (real: 10:16, 10:49), each
  publication covering the periods from the next one to the end of tomorrow; newest
  publication first, its periods in time order; ``boundary`` "N".
- B1610: metered volume per BM unit and period, ``halfHourEndTime`` in UTC (SP1 of a BST
  day ends on the previous date), three-decimal quantities; ``nationalGridBmUnitId`` null
  for supplier units (``2__...``); oldest first. Where the real answer breaks the spec (no
  zone suffix, an extra ``settlementRunType``) the simulator keeps to the spec: see
  ``SPEC_OVER_SAMPLE``.
"""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

from worker.elexon import settlement
from worker.sim.generators import HALF_HOUR, Bucket, Decimal3, Generator, Row, _wave, iso


class _Outturn(Generator):
    """INDO/ITSDO: the period that ended at this bucket's start, published then."""

    value_fields = ("demand",)
    descending = True
    base_mw: ClassVar[float]

    def generate(self, bucket: Bucket) -> list[Row]:
        start = bucket.start - HALF_HOUR
        day, period = settlement.period_of(start)
        demand = self.base_mw + 6000 * _wave(start, 17.5) + bucket.rng.gauss(0, 200)
        return [
            {
                "dataset": self.code,
                "publishTime": bucket.start_iso,
                "startTime": iso(start),
                "settlementDate": day.isoformat(),
                "settlementPeriod": period,
                "demand": round(demand),
            }
        ]


class InitialDemandOutturn(_Outturn):
    code = "INDO"
    base_mw = 24000


class TransmissionDemandOutturn(_Outturn):
    code = "ITSDO"
    base_mw = 25500


class NationalDemandForecast(Generator):
    """NDF: one publication per half hour at a random minute, to the end of tomorrow."""

    code = "NDF"
    value_fields = ("demand",)
    descending = True

    def generate(self, bucket: Bucket) -> list[Row]:
        rng = bucket.rng
        # Real publications came at 10:16 and 10:49: a quarter-hour or so into each half-hour.
        published = bucket.start + dt.timedelta(minutes=rng.randint(16, 19))
        _, last = settlement.day_window_utc(bucket.day + dt.timedelta(days=1))
        rows: list[Row] = []
        start = bucket.start + HALF_HOUR
        while start < last:
            day, period = settlement.period_of(start)
            demand = 24000 + 6000 * _wave(start, 17.5) + rng.gauss(0, 300)
            rows.append(
                {
                    "dataset": self.code,
                    "demand": round(demand / 100) * 100,
                    "publishTime": iso(published),
                    "startTime": iso(start),
                    "settlementDate": day.isoformat(),
                    "settlementPeriod": period,
                    "boundary": "N",
                }
            )
            start += HALF_HOUR
        return rows


# Fields where real answers break Elexon's own spec; the simulator answers as the spec says,
# so that schemathesis with the spec passes over every catalog path. The parser still reads
# the real shape: the recorded answers are replayed through the pipeline in the tests.
SPEC_OVER_SAMPLE: dict[str, dict[str, str]] = {
    "B1610": {
        "halfHourEndTime": "real answers have no zone suffix (2026-08-09T00:00:00); spec: date-time",
        "settlementRunType": "real answers send it (II); the spec's row has no such field",
    },
}


class MeteredVolumes(Generator):
    """B1610: each unit's metered MWh for the period (units as the rest of the simulator)."""

    code = "B1610"
    value_fields = ("quantity",)

    def generate(self, bucket: Bucket) -> list[Row]:
        rng = bucket.rng
        # The real API sends this without a zone and adds settlementRunType, both against its
        # own spec (additionalProperties: false); the simulator follows the spec so that a
        # conformance check over every catalog path passes, and the real quirks are covered by
        # replaying the recorded answer (tests/test_real_samples.py).
        end = bucket.end.strftime("%Y-%m-%dT%H:%M:%SZ")
        rows: list[Row] = []
        for unit in self.units():
            share = max(0.0, 0.5 + 0.5 * _wave(bucket.start, unit.peak_hour))
            quantity = 0.0 if rng.random() < 0.3 else unit.capacity_mw * share / 2
            supplier = unit.bm_unit is not None and unit.bm_unit.startswith("2__")
            rows.append(
                {
                    "dataset": self.code,
                    "psrType": "Generation",
                    "bmUnit": unit.bm_unit,
                    "nationalGridBmUnitId": None if supplier else unit.national_grid_bm_unit,
                    "settlementDate": bucket.day_iso,
                    "settlementPeriod": bucket.period,
                    "halfHourEndTime": end,
                    "quantity": Decimal3(round(quantity, 3)),
                }
            )
        return rows
