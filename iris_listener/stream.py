"""What an ``iris`` task does, as a plain function: bodies to rows to stream storage.

Rows are parsed with the same catalog schemas and hashing as API rows (``source="iris"``),
split by settlement day and appended per dataset-day under a batch id derived from the
rows' content, so a redelivered task, or the same message in another batch, lands once.
"""

from __future__ import annotations

import dataclasses
import logging

import pyarrow as pa
import pyarrow.compute as pc
import redis

from iris_listener.bodies import get_bodies, release_bodies
from iris_listener.messages import decode_rows
from worker.elexon.catalog import Dataset
from worker.elexon.coverage import digest
from worker.elexon.dedup import conform, drop_duplicates
from worker.elexon.parse import parse_rows
from worker.sinks.base import Sink

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class StoredBatch:
    """What one batch did: rows parsed, and per day whether its batch file was new."""

    dataset: str
    messages: int
    rows: int
    days: dict[str, bool]
    schema_drift: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def store_batch(
    sink: Sink, client: redis.Redis, dataset: Dataset, body_keys: list[str]
) -> StoredBatch:
    """Load one hand-off batch of a dataset's IRIS bodies into stream storage."""
    bodies = get_bodies(client, body_keys, context=f"{dataset.code} IRIS batch")
    rows = [row for body in bodies for row in decode_rows(body)]
    parsed = parse_rows(dataset, rows, source="iris")
    table, _ = drop_duplicates(conform(dataset, parsed.table))
    days: dict[str, bool] = {}
    for day in sorted(set(table.column("_day").to_pylist())):
        rows_of_day = table.filter(pc.equal(table.column("_day"), pa.scalar(day, pa.date32())))
        days[day.isoformat()] = sink.append_stream(dataset, day, rows_of_day, digest(rows_of_day))
    release_bodies(client, body_keys)
    log.info(
        "%s IRIS batch: %d messages, %d rows over %d days (%d new batch files)",
        dataset.code,
        len(body_keys),
        table.num_rows,
        len(days),
        sum(days.values()),
        extra={"dataset": dataset.code},
    )
    return StoredBatch(
        dataset=dataset.code,
        messages=len(body_keys),
        rows=table.num_rows,
        days=days,
        schema_drift=parsed.schema_drift,
    )
