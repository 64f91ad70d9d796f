"""Reference data the simulator serves: BM units, interconnectors, fuel types, REMIT lists.

``/reference/bmunits/all`` lists every unit of the simulated fleet (``units.fleet``, and the
units MELS/MILS name by National Grid id only), the same units BOD, BOALF, PN and the other
per-unit datasets talk about, so a warehouse can join them;
its shape follows the real capture ``REFERENCE-BMUNITS__gridskew-bmunits_truncated.json``:
capacities and loss factors are strings (``"15.400"``), ``eic`` is mostly null outside
transmission units, supplier (``2__``) and virtual (``V__``) units have a null ``fuelType``,
and a few units are registered with a National Grid id only (every other field null).
Batteries carry what real ones do: no battery fuel type (``OTHER`` or null), a name that says
so and a demand capacity mirroring their generation capacity. A few extra units register on
dated days, so daily snapshots change now and then, as the real register does.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import random
from typing import Any

from worker.sim.units import BmUnit, fleet, limit_only_units

Row = dict[str, Any]

FUEL_TYPES = (
    "BIOMASS", "CCGT", "COAL", "INTELEC", "INTEW", "INTFR", "INTGRNL", "INTIFA2", "INTIRL",
    "INTNED", "INTNEM", "INTNSL", "INTVKL", "NPSHYD", "NUCLEAR", "OCGT", "OIL", "OTHER", "PS",
    "WIND",
)  # fmt: skip
REMIT_FUEL_TYPES = (
    "Biomass", "Fossil Gas", "Fossil Hard coal", "Fossil Oil", "Hydro Pumped Storage",
    "Hydro Run-of-river and poundage", "Nuclear", "Other", "Solar", "Wind Offshore",
    "Wind Onshore",
)  # fmt: skip
# (interconnectorId, name, bidding zone EIC, FUELINST fuel type)
INTERCONNECTORS = (
    ("IFA", "IFA (Interconnexion France-Angleterre)", "10YFR-RTE------C", "INTFR"),
    ("IFA2", "IFA2 (Interconnexion France-Angleterre 2)", "10YFR-RTE------C", "INTIFA2"),
    ("ElecLink", "ElecLink", "10YFR-RTE------C", "INTELEC"),
    ("BritNed", "BritNed", "10YNL----------L", "INTNED"),
    ("Nemo", "Nemo Link", "10YBE----------2", "INTNEM"),
    ("NSL", "North Sea Link", "10YNO-2--------T", "INTNSL"),
    ("Viking", "Viking Link", "10YDK-1--------W", "INTVKL"),
    ("Moyle", "Moyle", "10Y1001A1001A59C", "INTIRL"),
    ("EWIC", "East West Interconnector", "10Y1001A1001A59C", "INTEW"),
    ("Greenlink", "Greenlink", "10Y1001A1001A59C", "INTGRNL"),
)
INTERCONNECTOR_NAMES = {fuel: name for _, name, _, fuel in INTERCONNECTORS}
GSP_GROUPS = (
    ("_A", "Eastern"), ("_B", "East Midlands"), ("_C", "London"), ("_D", "Merseyside and North Wales"),
    ("_E", "West Midlands"), ("_F", "North Eastern"), ("_G", "North Western"), ("_H", "Southern"),
    ("_J", "South Eastern"), ("_K", "South Wales"), ("_L", "South Western"), ("_M", "Yorkshire"),
    ("_N", "South Scotland"), ("_P", "North Scotland"),
)  # fmt: skip
# (leadPartyId, leadPartyName)
PARTIES = (
    ("ABERDEEN", "Aberdeen Offshore Wind Farm"), ("ADELA", "Adela Energy Ltd"),
    ("CENTRICA", "Centrica Energy Limited"), ("DRAX", "Drax Power Limited"),
    ("EDFE", "EDF Energy Customers Limited"), ("FLEXTRCY", "Flexitricity Limited"),
    ("OCTOPUS", "Octopus Energy Trading Limited"), ("RWE", "RWE Generation UK plc"),
    ("SMARTEST", "Smartestenergy Limited"), ("STATKRAF", "Statkraft Markets GmbH"),
    ("UKPR", "UK Power Reserve Limited"), ("UNIPER", "Uniper UK Limited"),
)  # fmt: skip
# Fleet fuel -> the reference register's fuelType (None: the register leaves it empty).
_REGISTER_FUEL = {
    "CCGT": "CCGT", "WIND": "WIND", "NUCLEAR": "NUCLEAR", "BIOMASS": "BIOMASS", "PS": "PS",
    "OCGT": "OCGT", "NPSHYD": "NPSHYD", "BATTERY": "OTHER", "DEMAND": None,
}  # fmt: skip
_NAME_SUFFIX = {
    "CCGT": "Power Station", "OCGT": "Peaking Plant", "WIND": "Wind Farm",
    "NUCLEAR": "Nuclear Power Station", "BIOMASS": "Biomass Plant", "PS": "Pumped Storage",
    "NPSHYD": "Hydro Scheme", "BATTERY": "Battery Storage", "DEMAND": "Demand Site",
}  # fmt: skip
# Units of the register that are not in the simulated fleet (no market activity).
_REGISTER_ONLY_SHARE = 0.03
_FIRST_NEW_UNIT_DAY = dt.date(2025, 1, 1)


def _prefix(unit_id: str) -> str:
    for prefix in ("T_", "E_", "2__", "V__", "I_", "C__"):
        if unit_id.startswith(prefix):
            return prefix
    return ""


_UNIT_TYPE = {"T_": "T", "E_": "E", "2__": "S", "V__": "V", "I_": "I", "C__": "S", "": "T"}


def _capacity(value: float) -> str:
    return f"{value:.3f}"


def _party(unit_id: str) -> tuple[str, str]:
    return PARTIES[sum(map(ord, unit_id)) % len(PARTIES)]


def _interconnector_of(unit_id: str) -> tuple[str, str]:
    """(interconnectorId, FUELINST fuel type) of an ``I_`` unit, fixed by its id."""
    ident, _, _, fuel = INTERCONNECTORS[sum(map(ord, unit_id)) % len(INTERCONNECTORS)]
    return ident, fuel


def unit_fields(unit: BmUnit) -> Row:
    """The fields a per-unit dataset row takes from its unit (never null where a settlement
    schema requires a value: ``bmUnitType``, ``fuelType``)."""
    ident = unit.bm_unit or unit.national_grid_bm_unit
    _, party_name = _party(ident)
    return {
        "_order": unit.national_grid_bm_unit,
        "nationalGridBmUnit": unit.national_grid_bm_unit,
        "nationalGridBmUnitId": unit.national_grid_bm_unit,
        "registeredResourceName": unit.national_grid_bm_unit,
        "bmUnit": unit.bm_unit,
        "elexonBmUnit": unit.bm_unit,
        "id": ident,
        "bmUnitType": _UNIT_TYPE[_prefix(ident)],
        "leadPartyName": party_name,
        "fuelType": _interconnector_of(ident)[1]
        if _prefix(ident) == "I_"
        else _REGISTER_FUEL.get(unit.fuel) or "OTHER",
        "registeredResourceEicCode": _eic(unit.national_grid_bm_unit),
    }


def _eic(national_grid_id: str) -> str:
    """A 16-character EIC in the ``48W00000ABRBO-19`` pattern of the real register, one per
    unit (longer ids are hashed into the 12 free characters)."""
    body = national_grid_id.replace("_", "")
    if len(body) <= 7:
        body = "00000" + body.ljust(7, "-")
    else:
        digest = int(hashlib.sha1(national_grid_id.encode()).hexdigest(), 16)
        body = "".join(_EIC_ALPHABET[(digest >> (5 * i)) % 36] for i in range(12))
    return "48W" + body + _EIC_ALPHABET[sum(map(ord, body)) % 36]


_EIC_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _register_row(unit: BmUnit, rng: random.Random) -> Row:
    ident = unit.bm_unit or unit.national_grid_bm_unit
    prefix = _prefix(ident)
    party_id, party_name = _party(ident)
    fuel = _REGISTER_FUEL.get(unit.fuel)
    if prefix in ("2__", "V__") and unit.fuel != "WIND":
        fuel = None
    storage = unit.fuel in ("BATTERY", "PS")
    demand_only = unit.fuel == "DEMAND"
    generation = 0.0 if demand_only else float(unit.capacity_mw)
    demand = (
        -float(unit.capacity_mw)
        if (storage or demand_only)
        else -round(rng.choice((0, 0, 2, 10)), 3)
    )
    stem = unit.national_grid_bm_unit.split("-")[0].title()
    if prefix == "V__":
        name = f"{party_id}_SBMU_{unit.national_grid_bm_unit[-1]}"
    elif prefix in ("T_", "E_"):
        name = f"{stem} {_NAME_SUFFIX.get(unit.fuel, 'Site')}"
    else:
        name = f"{ident}-{_NAME_SUFFIX.get(unit.fuel, 'Site')}"
    gsp = None if prefix == "T_" else rng.choice(GSP_GROUPS)
    interconnector = None
    if prefix == "I_":
        # An interconnector unit runs on its link, whatever the fleet drew for it.
        interconnector, fuel = _interconnector_of(ident)
        gsp = None
    share = rng.choice((0.4, 0.4, 0.35, 0.0))
    return {
        "nationalGridBmUnit": unit.national_grid_bm_unit,
        "elexonBmUnit": unit.bm_unit,
        "eic": _eic(unit.national_grid_bm_unit)
        if prefix == "T_" and rng.random() < 0.8 or prefix == "E_" and rng.random() < 0.4
        else None,
        "fuelType": fuel,
        "leadPartyName": party_name,
        "bmUnitType": _UNIT_TYPE[prefix],
        "fpnFlag": prefix in ("T_", "E_", "I_") or rng.random() < 0.9,
        "bmUnitName": name,
        "leadPartyId": party_id,
        "demandCapacity": _capacity(demand),
        "generationCapacity": _capacity(generation),
        "productionOrConsumptionFlag": "C" if demand_only or prefix in ("E_", "2__") else "P",
        "transmissionLossFactor": f"{rng.uniform(-0.03, 0.03):.7f}",
        "workingDayCreditAssessmentImportCapability": _capacity(demand * share),
        "nonWorkingDayCreditAssessmentImportCapability": _capacity(demand * share),
        "workingDayCreditAssessmentExportCapability": _capacity(generation * share),
        "nonWorkingDayCreditAssessmentExportCapability": _capacity(generation * share),
        "creditQualifyingStatus": rng.random() < 0.8,
        "demandInProductionFlag": False,
        "gspGroupId": gsp[0] if gsp else None,
        "gspGroupName": gsp[1] if gsp else None,
        "interconnectorId": interconnector,
    }


def _national_grid_only(national_grid_id: str, fuel: str | None = "WIND") -> Row:
    """A unit registered with a National Grid id and nothing else (ACHYW-1 in the capture)."""
    row: Row = {field: None for field in _REGISTER_FIELDS}
    row.update(
        nationalGridBmUnit=national_grid_id,
        fuelType=fuel,
        creditQualifyingStatus=False,
        demandInProductionFlag=False,
    )
    return row


_REGISTER_FIELDS = (
    "nationalGridBmUnit", "elexonBmUnit", "eic", "fuelType", "leadPartyName", "bmUnitType",
    "fpnFlag", "bmUnitName", "leadPartyId", "demandCapacity", "generationCapacity",
    "productionOrConsumptionFlag", "transmissionLossFactor",
    "workingDayCreditAssessmentImportCapability", "nonWorkingDayCreditAssessmentImportCapability",
    "workingDayCreditAssessmentExportCapability", "nonWorkingDayCreditAssessmentExportCapability",
    "creditQualifyingStatus", "demandInProductionFlag", "gspGroupId", "gspGroupName",
    "interconnectorId",
)  # fmt: skip


@functools.cache
def _register(seed: int, scale: float) -> tuple[tuple[dt.date, Row], ...]:
    """Every register row with the day it appears: fleet units always, extras on a date."""
    rng = random.Random(f"{seed}:reference:bmunits")
    dated: list[tuple[dt.date, Row]] = []
    units = fleet(seed, scale)
    for unit in units:
        dated.append((dt.date(2000, 1, 1), _register_row(unit, rng)))
    # Units MELS/MILS name without an Elexon id are registered that way too.
    for unit in limit_only_units(seed, scale):
        fuel = _REGISTER_FUEL.get(unit.fuel)
        dated.append((dt.date(2000, 1, 1), _national_grid_only(unit.national_grid_bm_unit, fuel)))
    taken = {row["nationalGridBmUnit"] for _, row in dated}
    extras = max(2, round(len(units) * _REGISTER_ONLY_SHARE))
    for number in range(extras):
        stem = "".join(rng.choices("ABCDEFGHIJKLMNOPRSTUVWY", k=4))
        national_grid_id = f"{stem}{'W' if number % 2 else 'B'}-{rng.randint(1, 3)}"
        if national_grid_id in taken:
            continue
        taken.add(national_grid_id)
        appears = _FIRST_NEW_UNIT_DAY + dt.timedelta(days=rng.randint(0, 730))
        if number % 3 == 0:
            dated.append((appears, _national_grid_only(national_grid_id)))
            continue
        fuel = "WIND" if number % 2 else "BATTERY"
        extra = BmUnit(
            bm_unit=f"E_{national_grid_id}",
            national_grid_bm_unit=national_grid_id,
            fuel=fuel,
            capacity_mw=rng.choice((20, 49, 50, 99)),
            imports=fuel == "BATTERY",
            pairs=2,
            base_price=80.0,
            peak_hour=12.0,
        )
        dated.append((appears, _register_row(extra, rng)))
    dated.sort(key=lambda item: item[1]["nationalGridBmUnit"])
    return tuple(dated)


def bmunits(seed: int, scale: float, day: dt.date) -> list[Row]:
    """``/reference/bmunits/all`` as of a day, sorted by National Grid id like the real one."""
    return [row for appears, row in _register(seed, scale) if appears <= day]


def interconnectors() -> list[Row]:
    return [
        {"interconnectorId": ident, "interconnectorName": name, "interconnectorBiddingZone": zone}
        for ident, name, zone, _ in INTERCONNECTORS
    ]


def remit_participants(seed: int) -> list[str]:
    """Market participant codes, as the REMIT generator forms them from the fleet."""
    return sorted(
        {f"11X{u.national_grid_bm_unit[:5]}".ljust(15, "-") + "2" for u in fleet(seed, 1.0)}
    )


def remit_assets(seed: int) -> list[str]:
    """Asset ids REMIT notices name (the fleet's BM unit ids)."""
    return sorted({u.bm_unit for u in fleet(seed, 1.0) if u.bm_unit})


# Reference paths (by ``spec.dataset_key``) answered from here.
SNAPSHOT_KEYS = frozenset(
    {
        "reference/bmunits/all",
        "reference/bmunits",
        "reference/interconnectors/all",
        "reference/fueltypes/all",
        "reference/remit/fueltypes/all",
        "reference/remit/participants/all",
        "reference/remit/assets/all",
    }
)


def snapshot(key: str, seed: int, scale: float, day: dt.date) -> list[Any] | None:
    """Rows of a reference path (by ``spec.dataset_key``), or None if not one of ours."""
    if key in ("reference/bmunits/all", "reference/bmunits"):
        return bmunits(seed, scale, day)
    if key == "reference/interconnectors/all":
        return interconnectors()
    if key == "reference/fueltypes/all":
        return list(FUEL_TYPES)
    if key == "reference/remit/fueltypes/all":
        return list(REMIT_FUEL_TYPES)
    if key == "reference/remit/participants/all":
        return remit_participants(seed)
    if key == "reference/remit/assets/all":
        return remit_assets(seed)
    return None
