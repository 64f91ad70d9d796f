"""The registry of calibrated generators: the core datasets (``generators.py``) and those whose
real samples arrived with the spec-driven catalog (``calibrated_more.py``).

It lives apart from both so that ``calibrated_more`` can build on the core classes without the
core module importing it back; every other dataset is answered generically from the spec.
"""

from __future__ import annotations

from worker.elexon import catalog
from worker.sim.calibrated_more import (
    InitialDemandOutturn,
    MeteredVolumes,
    NationalDemandForecast,
    TransmissionDemandOutturn,
)
from worker.sim.generators import CORE_GENERATOR_CLASSES, Generator

GENERATOR_CLASSES: dict[str, type[Generator]] = {
    **CORE_GENERATOR_CLASSES,
    **{
        cls.code: cls
        for cls in (
            InitialDemandOutturn,
            TransmissionDemandOutturn,
            NationalDemandForecast,
            MeteredVolumes,
        )
    },
}


def generators(seed: int, scale: float) -> dict[str, Generator]:
    """One generator per catalog dataset that has a calibrated one."""
    return {
        d.code: GENERATOR_CLASSES[d.code](seed, scale)
        for d in catalog.DATASETS
        if d.code in GENERATOR_CLASSES
    }
