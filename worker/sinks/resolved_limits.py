"""``mels_latest`` / ``mils_latest``: the limit in force for a unit at an instant, resolved.

Elexon builds the MEL/MIL position a unit is held to by laying declarations over each other
(insights-docs ``docs/mil_mel_resolution.md``): a declaration is newer when its
``notificationSequence`` is greater, or equal with a later ``notificationTime``; a newer one
overwrites the older ones over its own time span only, so older segments are truncated or
split ("re-timed"), and their ``levelFrom``/``levelTo`` are kept as declared, never
interpolated. The API serves that resolved view as it stood when asked, and IRIS sends the raw
declarations. Stored rows therefore hold, for one unit, segments from several answers (an
11:00-11:30 segment, then after a re-declaration 11:00-11:20 and 11:20-11:30): keyed on
(unit, timeFrom), a "newest per key" view would keep the stale 11:00-11:30 beside the new
11:20-11:30 segment, two limits for one instant.

So for these datasets ``<code>_latest`` repeats Elexon's resolution over every stored row
(resolved answers and raw declarations alike, since a resolved segment carries its source
declaration's sequence and time): the unit's timeline is cut at every stored segment's
``timeFrom`` and ``timeTo``; each piece takes the newest declaration covering it (sequence,
then notification time, then the newest ingestion); consecutive pieces won by the same stored
row join again. The result has exactly one segment per unit and instant. Done in the view
rather than at load time so that it also holds across sources (API and IRIS), across loads
arriving out of order, and needs no rewrite of stored days.

Resolution runs per unit within a settlement day (the API splits declarations at period
boundaries, and a day's rows are stored together), so a filter on the day prunes as for the
other views. A zero-length segment (``timeFrom == timeTo``) holds no instant; it is kept
only for a unit whose day has nothing else (so no unit of the stored rows goes missing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from worker.elexon.catalog import Dataset

if TYPE_CHECKING:
    from worker.sinks.sql_dialect import Dialect

# Datasets whose ``_latest`` is the resolved position, not the newest row per natural key.
RESOLVED_CODES = frozenset({"MELS", "MILS"})

UNIT = "nationalGridBmUnit"


def is_resolved(dataset: Dataset) -> bool:
    return dataset.code in RESOLVED_CODES


def resolved_latest_sql(dialect: Dialect, dataset: Dataset, source: str) -> str:
    """SELECT of the resolved segments over ``source`` (the dataset's stored rows), with the
    stored rows' columns in their order; ``timeFrom``/``timeTo`` are the resolved times."""
    from worker.sinks.sql_dialect import day_columns  # the dialect module imports this one

    q = dialect.quote
    unit, start, end = q(UNIT), q("timeFrom"), q("timeTo")
    # The day columns lead every window and join, so a filter on any of them reaches the scan.
    days = [q(name) for name in day_columns(dataset) or ["_day"]]
    day_list = ", ".join(days)
    per_unit = f"{day_list}, {unit}"
    same_day = " AND ".join(f"s.{name} = p.{name}" for name in days)

    def newest(alias: str) -> str:
        return (
            f"{alias}.{q('notificationSequence')} DESC NULLS LAST, "
            f"{alias}.{q('notificationTime')} DESC NULLS LAST, "
            f"{alias}._ingested_utc DESC, {alias}._hash_key"
        )

    qualify = dialect.qualify_prefix
    columns = [field.name for field in dataset.storage_schema]
    carried = ", ".join(
        f"island_from AS {start}"
        if name == "timeFrom"
        else f"island_to AS {end}"
        if name == "timeTo"
        else q(name)
        for name in columns
    )
    stored = ", ".join(f"s.{q(name)}" for name in columns)
    instant = ", ".join(f"z.{q(name)}" for name in columns)
    return f"""
WITH edges AS (
  SELECT {day_list}, {unit}, {start} AS edge FROM {source}
  UNION DISTINCT
  SELECT {day_list}, {unit}, {end} AS edge FROM {source}
),
pieces AS (
  SELECT {day_list}, {unit}, edge AS piece_from,
    LEAD(edge) OVER (PARTITION BY {per_unit} ORDER BY edge) AS piece_to
  FROM edges
),
winners AS (
  SELECT p.piece_from, p.piece_to, {stored}
  FROM pieces p JOIN {source} s
    ON {same_day} AND s.{unit} = p.{unit}
    AND s.{start} <= p.piece_from AND s.{end} >= p.piece_to
  WHERE p.piece_to IS NOT NULL
  QUALIFY row_number() OVER (
    PARTITION BY {", ".join(f"s.{name}" for name in days)}, s.{unit}, p.piece_from
    ORDER BY {newest("s")}) = 1
),
marked AS (
  SELECT *, CASE WHEN
      LAG(_hash_key) OVER (PARTITION BY {per_unit} ORDER BY piece_from) = _hash_key
      AND LAG(piece_to) OVER (PARTITION BY {per_unit} ORDER BY piece_from) = piece_from
    THEN 0 ELSE 1 END AS opens
  FROM winners
),
islands AS (
  SELECT *, SUM(opens) OVER (
    PARTITION BY {per_unit} ORDER BY piece_from ROWS UNBOUNDED PRECEDING) AS island
  FROM marked
),
spans AS (
  SELECT *,
    MIN(piece_from) OVER (PARTITION BY {per_unit}, island) AS island_from,
    MAX(piece_to) OVER (PARTITION BY {per_unit}, island) AS island_to
  FROM islands{qualify}
  QUALIFY row_number() OVER (PARTITION BY {per_unit}, island ORDER BY piece_from) = 1
),
instants AS (
  SELECT {instant}, MAX(CASE WHEN z.{end} > z.{start} THEN 1 ELSE 0 END) OVER (
    PARTITION BY {", ".join(f"z.{name}" for name in days)}, z.{unit}) AS spans_time
  FROM {source} z
),
lone_instants AS (
  SELECT {", ".join(f"i.{q(name)}" for name in columns)} FROM instants i
  WHERE i.spans_time = 0
  QUALIFY row_number() OVER (
    PARTITION BY {", ".join(f"i.{name}" for name in days)}, i.{unit}, i.{start}
    ORDER BY {newest("i")}) = 1
)
SELECT {carried} FROM spans
UNION ALL
SELECT * FROM lone_instants""".strip()
