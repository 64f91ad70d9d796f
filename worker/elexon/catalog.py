"""The dataset catalog: everything the pipeline knows about each Elexon dataset, as data.

Adding a dataset means adding one :class:`Dataset` entry here (plus its simulator generator);
the client, parser, sinks, coverage, CLI and the parametrised tests read everything from it.
Field names and types mirror the row schemas of Elexon's OpenAPI spec (a contract test
checks them), with date-times as UTC timestamps.

Request windows (``max_window``): only limits Elexon's spec states are limits
(``spec_limit``): one day for INDGEN/INDDEM ("a maximum data output range of 1 day", stated on
the base endpoint and applied to the stream we call). FREQ's 24 hours is stated for the base
endpoint only, which tells callers to "use the streaming version for larger response sizes",
so the stream we call has none. Every other dataset is fetched a whole settlement day per
request (``WHOLE_DAY``: 25 hours, so a clock-change day is still one request), as public
clients do for BOD and BOALF. Wider-than-allowed answers are learned at run time by the client.

Natural keys use only fields real data always fills: BM-unit datasets key on
``nationalGridBmUnit`` (the spec marks both unit fields nullable, and real MILS leaves
``bmUnit`` null for interconnector and some other units while ``nationalGridBmUnit`` is set).

History starts (``earliest``) come from Elexon's published statements; ``earliest_source``
says which, or that none was found.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Literal

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")
DATE = pa.date32()
I32 = pa.int32()
I64 = pa.int64()
F64 = pa.float64()
BOOL = pa.bool_()
STR = pa.string()
OUTAGE_PROFILE = pa.list_(
    pa.struct([("startTime", TS), ("endTime", TS), ("capacity", F64)])
)

# How a request names its window:
#  settlement_dates: ?settlementDateFrom=D&settlementDateTo=D (whole settlement days)
#  path_date:        /path/{D} (one settlement day per request)
#  from_to:          ?from=T&to=T, UTC instants, inclusive at both ends
#  measurement_time: ?measurementDateTimeFrom=T&measurementDateTimeTo=T, inclusive
#  publish_time:     ?publishDateTimeFrom=T&publishDateTimeTo=T, inclusive
ParamStyle = Literal["settlement_dates", "path_date", "from_to", "measurement_time", "publish_time"]

WINDOW_PARAMS: dict[str, tuple[str, str]] = {
    "settlement_dates": ("settlementDateFrom", "settlementDateTo"),
    "from_to": ("from", "to"),
    "measurement_time": ("measurementDateTimeFrom", "measurementDateTimeTo"),
    "publish_time": ("publishDateTimeFrom", "publishDateTimeTo"),
}

# Columns every stored row carries besides its catalog fields: the settlement day it belongs
# to, the content hash, when and from where it was ingested, and fields the catalog lacks.
METADATA_COLUMNS = ("_day", "_hash_key", "_ingested_utc", "_source", "_extra")
METADATA_SCHEMA = pa.schema(
    [("_day", DATE), ("_hash_key", STR), ("_ingested_utc", TS), ("_source", STR), ("_extra", STR)]
)


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One Elexon dataset and the rules for fetching, partitioning and checking it."""

    code: str
    endpoint: str
    param_style: ParamStyle
    max_window: dt.timedelta
    earliest: dt.date
    fields: tuple[tuple[str, pa.DataType], ...]
    natural_key: tuple[str, ...]
    # Partition date: "settlementDate", or the Europe/London date of this timestamp field.
    partition_field: str = "settlementDate"
    version_field: str | None = None
    dense: bool = False
    # Instant the API filters a time window on; None derives it from the settlement period.
    time_field: str | None = None
    # Field giving the settlement period of a row; None derives it from partition_field.
    period_field: str | None = "settlementPeriod"
    # Days after which a day's data no longer changes (re-fetched until then by the sweep).
    revision_days: int = 1
    # Age of the newest row past which the dataset is stale (alerting).
    freshness: dt.timedelta = dt.timedelta(hours=2)
    # Polled every few minutes for the current and previous day.
    realtime: bool = False
    description: str = ""
    # Where ``earliest`` comes from: a published statement, or why there is none.
    earliest_source: str = ""
    # The request-window limit Elexon's spec states for this dataset, None when it states none
    # (then ``max_window`` is the whole settlement day). A simulator enforces only this.
    spec_limit: dt.timedelta | None = None

    @property
    def schema(self) -> pa.Schema:
        """Arrow schema of the catalog fields (no metadata columns)."""
        return pa.schema(list(self.fields))

    @property
    def storage_schema(self) -> pa.Schema:
        """Arrow schema of stored rows: catalog fields, the partition date, metadata."""
        schema = self.schema
        for field in METADATA_SCHEMA:
            schema = schema.append(field)
        return schema

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.fields)

    @property
    def partition_date_rule(self) -> str:
        if self.partition_field == "settlementDate":
            return "settlementDate"
        return f"Europe/London date of {self.partition_field}"

    @property
    def tracks_periods(self) -> bool:
        """Datasets queried by publish time have no fixed set of periods per day."""
        return self.param_style != "publish_time"

    @property
    def table(self) -> str:
        return self.code.lower()

    def describe(self) -> dict[str, object]:
        """The public JSON shape of ``bmrs datasets --json``."""
        return {
            "code": self.code,
            "endpoint": self.endpoint,
            "max_window": _iso_duration(self.max_window),
            "earliest": self.earliest.isoformat(),
            "partition_date": self.partition_date_rule,
            "natural_key": list(self.natural_key),
            "version_field": self.version_field,
            "dense": self.dense,
            "param_style": self.param_style,
            "revision_days": self.revision_days,
            "realtime": self.realtime,
            "earliest_source": self.earliest_source,
            "spec_limit": None if self.spec_limit is None else _iso_duration(self.spec_limit),
        }


def _iso_duration(delta: dt.timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    return f"P{hours // 24}D" if hours % 24 == 0 else f"PT{hours}H"


DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)
# A settlement day is 23, 24 or 25 hours: one request covers any of them.
WHOLE_DAY = DAY + HOUR

# Elexon Insights FAQ, "What is the earliest data in Insights?"
# (https://www.elexon.co.uk/data/kinnect-insights-solution/): historic data loaded from legacy
# BMRS starts June 2017 for REMIT, January 2016 for physical data, May 2023 for transparency data.
FAQ = "Elexon Insights FAQ (elexon.co.uk/data/kinnect-insights-solution): "
PHYSICAL_START = dt.date(2016, 1, 1)
PHYSICAL_SOURCE = FAQ + "physical data loaded from January 2016"
REMIT_START = dt.date(2017, 6, 1)
REMIT_SOURCE = FAQ + "REMIT loaded from June 2017"
TRANSPARENCY_START = dt.date(2023, 5, 1)
TRANSPARENCY_SOURCE = FAQ + "transparency data loaded from May 2023"
NO_STATEMENT = "no published statement found; legacy BMRS start kept, `bmrs history` checks it"

_GENERATION = (
    ("publishTime", TS),
    ("startTime", TS),
    ("settlementDate", DATE),
    ("settlementPeriod", I32),
    ("fuelType", STR),
    ("generation", I64),
)
_PHYSICAL = (
    ("settlementDate", DATE),
    ("settlementPeriod", I32),
    ("timeFrom", TS),
    ("timeTo", TS),
    ("levelFrom", I32),
    ("levelTo", I32),
    ("nationalGridBmUnit", STR),
    ("bmUnit", STR),
)
_LIMITS = _PHYSICAL[:6] + (("notificationTime", TS), ("notificationSequence", I32)) + _PHYSICAL[6:]


def _indicated(value_field: str) -> tuple[tuple[str, pa.DataType], ...]:
    return (
        (value_field, I64),
        ("publishTime", TS),
        ("startTime", TS),
        ("settlementDate", DATE),
        ("settlementPeriod", I32),
        ("boundary", STR),
    )


DATASETS: tuple[Dataset, ...] = (
    Dataset(
        code="FUELINST",
        time_field="startTime",
        endpoint="/datasets/FUELINST/stream",
        param_style="settlement_dates",
        max_window=WHOLE_DAY,
        earliest=dt.date(2008, 11, 5), earliest_source=NO_STATEMENT,
        fields=_GENERATION,
        natural_key=("startTime", "fuelType"),
        version_field="publishTime",
        dense=True,
        freshness=dt.timedelta(minutes=20),
        realtime=True,
        description="Generation outturn by fuel type, 5-minute average MW",
    ),
    Dataset(
        code="FUELHH",
        time_field="startTime",
        endpoint="/datasets/FUELHH/stream",
        param_style="settlement_dates",
        max_window=WHOLE_DAY,
        earliest=dt.date(2008, 11, 5), earliest_source=NO_STATEMENT,
        fields=_GENERATION,
        natural_key=("settlementDate", "settlementPeriod", "fuelType"),
        version_field="publishTime",
        dense=True,
        freshness=dt.timedelta(hours=1),
        realtime=True,
        description="Generation outturn by fuel type, half-hourly average MW",
    ),
    Dataset(
        code="FREQ",
        time_field="measurementTime",
        endpoint="/datasets/FREQ/stream",
        param_style="measurement_time",
        max_window=WHOLE_DAY,
        earliest=dt.date(2008, 11, 5), earliest_source=NO_STATEMENT,
        fields=(("measurementTime", TS), ("frequency", F64)),
        natural_key=("measurementTime",),
        partition_field="measurementTime",
        period_field=None,
        dense=True,
        freshness=dt.timedelta(minutes=10),
        realtime=True,
        description="System frequency (Hz), every 15 seconds",
    ),
    Dataset(
        code="MID",
        time_field="startTime",
        endpoint="/datasets/MID/stream",
        param_style="from_to",
        max_window=WHOLE_DAY,
        earliest=dt.date(2001, 3, 27), earliest_source=NO_STATEMENT,
        fields=(
            ("startTime", TS),
            ("dataProvider", STR),
            ("settlementDate", DATE),
            ("settlementPeriod", I32),
            ("price", F64),
            ("volume", F64),
        ),
        natural_key=("dataProvider", "settlementDate", "settlementPeriod"),
        partition_field="settlementDate",
        period_field="settlementPeriod",
        dense=True,
        revision_days=2,
        freshness=dt.timedelta(hours=1),
        realtime=True,
        description="Market index price (GBP/MWh) and volume (MWh) per provider",
    ),
    Dataset(
        code="BOD",
        time_field="timeFrom",
        endpoint="/datasets/BOD/stream",
        param_style="from_to",
        max_window=WHOLE_DAY,
        earliest=PHYSICAL_START, earliest_source=PHYSICAL_SOURCE,
        fields=(
            ("settlementDate", DATE),
            ("settlementPeriod", I32),
            ("timeFrom", TS),
            ("levelFrom", I32),
            ("timeTo", TS),
            ("levelTo", I32),
            ("pairId", I32),
            ("offer", F64),
            ("bid", F64),
            ("nationalGridBmUnit", STR),
            ("bmUnit", STR),
        ),
        natural_key=("nationalGridBmUnit", "settlementDate", "settlementPeriod", "pairId", "timeFrom"),
        freshness=dt.timedelta(hours=3),
        description="Bid-offer pairs per BM unit and period (GBP/MWh, MW)",
    ),
    Dataset(
        code="BOALF",
        time_field="timeFrom",
        endpoint="/datasets/BOALF/stream",
        param_style="from_to",
        max_window=WHOLE_DAY,
        earliest=PHYSICAL_START, earliest_source=PHYSICAL_SOURCE,
        fields=(
            ("settlementDate", DATE),
            ("settlementPeriodFrom", I32),
            ("settlementPeriodTo", I32),
            ("timeFrom", TS),
            ("timeTo", TS),
            ("levelFrom", I32),
            ("levelTo", I32),
            ("acceptanceNumber", I32),
            ("acceptanceTime", TS),
            ("deemedBoFlag", BOOL),
            ("soFlag", BOOL),
            ("amendmentFlag", STR),
            ("storFlag", BOOL),
            ("rrFlag", BOOL),
            ("nationalGridBmUnit", STR),
            ("bmUnit", STR),
        ),
        natural_key=("nationalGridBmUnit", "acceptanceNumber", "timeFrom"),
        period_field="settlementPeriodFrom",
        revision_days=3,
        freshness=dt.timedelta(hours=1),
        realtime=True,
        description="Accepted bid-offer levels (MW) per acceptance segment",
    ),
    Dataset(
        code="DISBSAD",
        endpoint="/datasets/DISBSAD/stream",
        param_style="from_to",
        max_window=WHOLE_DAY,
        earliest=dt.date(2001, 3, 27), earliest_source=NO_STATEMENT,
        fields=(
            ("settlementDate", DATE),
            ("settlementPeriod", I32),
            ("id", I32),
            ("cost", F64),
            ("volume", F64),
            ("soFlag", BOOL),
            ("storFlag", BOOL),
            ("partyId", STR),
            ("assetId", STR),
            ("isTendered", BOOL),
            ("service", STR),
        ),
        natural_key=("settlementDate", "settlementPeriod", "id"),
        revision_days=7,
        freshness=dt.timedelta(hours=6),
        description="Balancing services adjustment actions: cost (GBP) and volume (MWh)",
    ),
    Dataset(
        code="NETBSAD",
        endpoint="/datasets/NETBSAD/stream",
        param_style="from_to",
        max_window=WHOLE_DAY,
        earliest=dt.date(2001, 3, 27), earliest_source=NO_STATEMENT,
        fields=(
            ("settlementDate", DATE),
            ("settlementPeriod", I32),
            ("netBuyPriceCostAdjustmentEnergy", F64),
            ("netBuyPriceVolumeAdjustmentEnergy", F64),
            ("netBuyPriceVolumeAdjustmentSystem", F64),
            ("buyPricePriceAdjustment", F64),
            ("netSellPriceCostAdjustmentEnergy", F64),
            ("netSellPriceVolumeAdjustmentEnergy", F64),
            ("netSellPriceVolumeAdjustmentSystem", F64),
            ("sellPricePriceAdjustment", F64),
        ),
        natural_key=("settlementDate", "settlementPeriod"),
        dense=True,
        revision_days=7,
        freshness=dt.timedelta(hours=6),
        description="Net balancing services adjustment per period",
    ),
    Dataset(
        code="INDGEN",
        time_field="publishTime",
        endpoint="/datasets/INDGEN/stream",
        param_style="publish_time",
        max_window=DAY, spec_limit=DAY,
        earliest=dt.date(2015, 1, 1), earliest_source=NO_STATEMENT,
        fields=_indicated("generation"),
        natural_key=("boundary", "settlementDate", "settlementPeriod"),
        partition_field="publishTime",
        version_field="publishTime",
        freshness=dt.timedelta(hours=2),
        description="Indicated generation forecast (MW), republished every half hour",
    ),
    Dataset(
        code="INDDEM",
        time_field="publishTime",
        endpoint="/datasets/INDDEM/stream",
        param_style="publish_time",
        max_window=DAY, spec_limit=DAY,
        earliest=dt.date(2015, 1, 1), earliest_source=NO_STATEMENT,
        fields=_indicated("demand"),
        natural_key=("boundary", "settlementDate", "settlementPeriod"),
        partition_field="publishTime",
        version_field="publishTime",
        freshness=dt.timedelta(hours=2),
        description="Indicated demand forecast (MW), republished every half hour",
    ),
    Dataset(
        code="PN",
        time_field="timeFrom",
        endpoint="/datasets/PN/stream",
        param_style="from_to",
        max_window=WHOLE_DAY,
        earliest=PHYSICAL_START, earliest_source=PHYSICAL_SOURCE,
        fields=_PHYSICAL,
        natural_key=("nationalGridBmUnit", "settlementDate", "settlementPeriod", "timeFrom"),
        freshness=dt.timedelta(hours=3),
        description="Physical notifications: planned MW levels per BM unit",
    ),
    Dataset(
        code="QPN",
        time_field="timeFrom",
        endpoint="/datasets/QPN/stream",
        param_style="from_to",
        max_window=WHOLE_DAY,
        earliest=PHYSICAL_START, earliest_source=PHYSICAL_SOURCE,
        fields=_PHYSICAL,
        natural_key=("nationalGridBmUnit", "settlementDate", "settlementPeriod", "timeFrom"),
        freshness=dt.timedelta(hours=3),
        description="Quiescent physical notifications per BM unit",
    ),
    Dataset(
        code="MELS",
        time_field="timeFrom",
        endpoint="/datasets/MELS/stream",
        param_style="from_to",
        max_window=WHOLE_DAY,
        earliest=PHYSICAL_START, earliest_source=PHYSICAL_SOURCE,
        fields=_LIMITS,
        natural_key=("nationalGridBmUnit", "timeFrom"),
        version_field="notificationSequence",
        freshness=dt.timedelta(hours=3),
        description="Maximum export limits (MW) per BM unit",
    ),
    Dataset(
        code="MILS",
        time_field="timeFrom",
        endpoint="/datasets/MILS/stream",
        param_style="from_to",
        max_window=WHOLE_DAY,
        earliest=PHYSICAL_START, earliest_source=PHYSICAL_SOURCE,
        fields=_LIMITS,
        natural_key=("nationalGridBmUnit", "timeFrom"),
        version_field="notificationSequence",
        freshness=dt.timedelta(hours=3),
        description="Maximum import limits (MW) per BM unit",
    ),
    Dataset(
        code="REMIT",
        time_field="publishTime",
        endpoint="/datasets/REMIT/stream",
        param_style="publish_time",
        max_window=WHOLE_DAY,
        earliest=REMIT_START, earliest_source=REMIT_SOURCE,
        fields=(
            ("mrid", STR),
            ("revisionNumber", I32),
            ("publishTime", TS),
            ("createdTime", TS),
            ("messageType", STR),
            ("messageHeading", STR),
            ("eventType", STR),
            ("unavailabilityType", STR),
            ("participantId", STR),
            ("registrationCode", STR),
            ("assetId", STR),
            ("assetType", STR),
            ("affectedUnit", STR),
            ("affectedUnitEIC", STR),
            ("affectedArea", STR),
            ("biddingZone", STR),
            ("fuelType", STR),
            ("normalCapacity", F64),
            ("availableCapacity", F64),
            ("unavailableCapacity", F64),
            ("eventStatus", STR),
            ("eventStartTime", TS),
            ("eventEndTime", TS),
            ("durationUncertainty", STR),
            ("cause", STR),
            ("relatedInformation", STR),
            ("outageProfile", OUTAGE_PROFILE),
        ),
        natural_key=("mrid",),
        partition_field="publishTime",
        version_field="revisionNumber",
        period_field=None,
        freshness=dt.timedelta(hours=12),
        description="REMIT unavailability notices, one row per (mrid, revision)",
    ),
    Dataset(
        code="DISEBSP",
        time_field="startTime",
        endpoint="/balancing/settlement/system-prices/{settlementDate}",
        param_style="path_date",
        max_window=WHOLE_DAY,
        earliest=dt.date(2001, 3, 27), earliest_source=NO_STATEMENT,
        fields=(
            ("settlementDate", DATE),
            ("settlementPeriod", I32),
            ("startTime", TS),
            ("createdDateTime", TS),
            ("systemSellPrice", F64),
            ("systemBuyPrice", F64),
            ("bsadDefaulted", BOOL),
            ("priceDerivationCode", STR),
            ("reserveScarcityPrice", F64),
            ("netImbalanceVolume", F64),
            ("sellPriceAdjustment", F64),
            ("buyPriceAdjustment", F64),
            ("replacementPrice", F64),
            ("replacementPriceReferenceVolume", F64),
            ("totalAcceptedOfferVolume", F64),
            ("totalAcceptedBidVolume", F64),
            ("totalAdjustmentSellVolume", F64),
            ("totalAdjustmentBuyVolume", F64),
            ("totalSystemTaggedAcceptedOfferVolume", F64),
            ("totalSystemTaggedAcceptedBidVolume", F64),
            ("totalSystemTaggedAdjustmentSellVolume", F64),
            ("totalSystemTaggedAdjustmentBuyVolume", F64),
        ),
        natural_key=("settlementDate", "settlementPeriod"),
        version_field="createdDateTime",
        dense=True,
        # System prices are re-run by settlement (SF, R1...) for weeks after the day.
        revision_days=28,
        freshness=dt.timedelta(hours=2),
        realtime=True,
        description="System sell/buy prices (GBP/MWh), latest settlement run",
    ),
)

BY_CODE: dict[str, Dataset] = {d.code: d for d in DATASETS}


class UnknownDatasetError(ValueError):
    """A dataset code the catalog does not hold."""


def get(code: str) -> Dataset:
    """The catalog entry for a code (case-insensitive), or an error listing valid codes."""
    try:
        return BY_CODE[code.strip().upper()]
    except KeyError:
        raise UnknownDatasetError(
            f"unknown dataset {code!r}; valid datasets: {', '.join(sorted(BY_CODE))}"
        ) from None


def parse_codes(values: str | list[str] | tuple[str, ...]) -> list[Dataset]:
    """Datasets from comma-separated and/or repeated values, in order, without repeats."""
    items = [values] if isinstance(values, str) else list(values)
    seen: dict[str, Dataset] = {}
    for item in items:
        for code in item.split(","):
            if code.strip():
                dataset = get(code)
                seen.setdefault(dataset.code, dataset)
    if not seen:
        raise UnknownDatasetError(f"no dataset given; valid datasets: {', '.join(sorted(BY_CODE))}")
    return list(seen.values())
