"""The simulator's IRIS mode: messages written into a folder the way Elexon's client does.

Each message is a file ``<out>/<DATASET>/<message_id>`` (ids like
``BOALF_202510271648_10262.json``) holding a JSON array of stream rows from the simulator's
own generators, so IRIS rows and API rows of the same instant are the same rows. Like the
real feed, some bodies are JSON-encoded twice, and with the given probabilities a message
is sent again (half as a *redelivery*: same id and body; half as a *duplicate*: same body
under a new id) or is *poison* (body not JSON, a dataset IRIS has but the catalog lacks,
or rows that fail the schema). Files are written to a temporary name and renamed, so a
reader never sees half a message.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson

from worker.elexon import catalog
from worker.sim.calibrated import generators
from worker.sim.generators import Generator, bucket_floor, dumps
from worker.sim.generic import GenericDataset, catalog_source

LIVE_WINDOW = dt.timedelta(hours=2)
DEFAULT_DATASETS = ("FUELINST", "FREQ", "BOALF", "PN", "MELS", "MID")
ROWS_PER_MESSAGE = 60
DOUBLE_ENCODED = 0.3  # share of bodies JSON-encoded twice, as IRIS often sends them
# Every IRIS dataset is in the catalog now (each /datasets code); a code IRIS might add later.
UNKNOWN_DATASET = "NOTADATASET"
POISON_KINDS = ("not-json", "unknown-dataset", "schema")


@dataclasses.dataclass(frozen=True)
class SentMessage:
    """One file written: what it is, for tests and the benchmark to check against."""

    message_id: str
    dataset: str
    kind: str  # "message", "redelivery", "duplicate" or a POISON_KINDS value
    rows: int
    path: Path


@dataclasses.dataclass
class _Cursor:
    """Where a dataset's feed has got to: a half-hour bucket and the rows sent from it."""

    bucket: dt.datetime
    offset: int = 0


class IrisFeed:
    """Deterministic IRIS messages from the simulator's generators (same seed, same feed)."""

    def __init__(
        self,
        out: Path,
        *,
        seed: int = 1,
        datasets: tuple[str, ...] = DEFAULT_DATASETS,
        poison: float = 0.0,
        dup: float = 0.0,
        start: dt.datetime | None = None,
        scale: float = 1.0,
    ) -> None:
        self.out = Path(out)
        self.rng = random.Random(f"iris:{seed}")
        self.poison = poison
        self.dup = dup
        all_generators = generators(seed, scale)
        # Datasets without a calibrated generator send the generic layer's rows.
        self.generators: dict[str, Generator | GenericDataset] = {
            code: all_generators.get(code) or catalog_source(catalog.get(code), seed, scale)
            for code in datasets
        }
        # Live (no start given): the feed replays the last two hours and never runs ahead of
        # the clock; a dataset that catches up starts over, which resends rows as IRIS can.
        self.live = start is None
        first = bucket_floor(start or dt.datetime.now(dt.UTC) - LIVE_WINDOW)
        self.cursors = {code: _Cursor(first) for code in datasets}
        self.sequence = 0
        self.sent: list[SentMessage] = []
        self.bodies: dict[str, bytes] = {}  # message id -> body, to check what landed
        self._resend: list[tuple[SentMessage, bytes]] = []

    def next_message(self) -> list[SentMessage]:
        """Write the next file (and, by chance, a resend of an earlier one)."""
        written: list[SentMessage] = []
        if self._resend and self.rng.random() < 0.5:
            written.append(self._write_resend(*self._resend.pop(0)))
        roll = self.rng.random()
        if roll < self.poison:
            written.append(self._write_poison(self.rng.choice(POISON_KINDS)))
        else:
            message, body = self._write_rows()
            if self.rng.random() < self.dup:
                self._resend.append((message, body))
            written.append(message)
        self.sent.extend(written)
        return written

    def _next_rows(self, code: str) -> tuple[list[dict], dt.datetime]:
        cursor = self.cursors[code]
        while True:
            rows = self.generators[code].rows(cursor.bucket)
            if cursor.offset < len(rows):
                chunk = rows[cursor.offset : cursor.offset + ROWS_PER_MESSAGE]
                cursor.offset += len(chunk)
                return chunk, cursor.bucket
            cursor.bucket += dt.timedelta(minutes=30)
            cursor.offset = 0
            if self.live and cursor.bucket > dt.datetime.now(dt.UTC):
                cursor.bucket = bucket_floor(dt.datetime.now(dt.UTC) - LIVE_WINDOW)

    def _message_id(self, code: str, instant: dt.datetime) -> str:
        self.sequence += 1
        return f"{code}_{instant:%Y%m%d%H%M}_{self.sequence}.json"

    def _encode(self, rows: list[dict]) -> bytes:
        body = dumps(rows)
        if self.rng.random() < DOUBLE_ENCODED:
            body = orjson.dumps(body.decode())
        return body

    def _write_rows(self) -> tuple[SentMessage, bytes]:
        code = self.rng.choice(sorted(self.generators))
        rows, bucket = self._next_rows(code)
        message_id = self._message_id(code, bucket)
        body = self._encode(rows)
        path = self._write(code, message_id, body)
        return SentMessage(message_id, code, "message", len(rows), path), body

    def _write_resend(self, original: SentMessage, body: bytes) -> SentMessage:
        if self.rng.random() < 0.5:
            path = self._write(original.dataset, original.message_id, body)
            return SentMessage(
                original.message_id, original.dataset, "redelivery", original.rows, path
            )
        message_id = self._message_id(original.dataset, dt.datetime.now(dt.UTC))
        path = self._write(original.dataset, message_id, body)
        return SentMessage(message_id, original.dataset, "duplicate", original.rows, path)

    def _write_poison(self, kind: str) -> SentMessage:
        code = self.rng.choice(sorted(self.generators))
        if kind == "not-json":
            body = b'[{"dataset": "' + code.encode() + b'", "truncated'
        elif kind == "unknown-dataset":
            code = UNKNOWN_DATASET
            body = orjson.dumps([{"dataset": code, "message": "simulated system warning"}])
        else:
            rows, _ = self._next_rows(code)
            field = self.generators[code].dataset.partition_field
            # a row whose day cannot be told can never be stored
            body = self._encode([dict(rows[0], **{field: "not-a-date"})])
        message_id = self._message_id(code, dt.datetime.now(dt.UTC))
        path = self._write(code, message_id, body)
        return SentMessage(message_id, code, kind, 0, path)

    def _write(self, code: str, message_id: str, body: bytes) -> Path:
        folder = self.out / code
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(body)
        target = folder / message_id
        os.replace(tmp, target)
        self.bodies[message_id] = body
        return target

    def summary(self) -> dict[str, object]:
        kinds = Counter(m.kind for m in self.sent)
        return {"files": len(self.sent), "kinds": dict(sorted(kinds.items())), "out": str(self.out)}


def run_feed(
    feed: IrisFeed,
    *,
    rate_per_min: float,
    duration_s: float | None = None,
    count: int | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> dict[str, object]:
    """Emit messages at a steady rate until the duration or count is reached (or stopped)."""
    interval = 60.0 / rate_per_min
    started = time.monotonic()
    emitted = 0
    while not should_stop():
        if duration_s is not None and time.monotonic() - started >= duration_s:
            break
        if count is not None and emitted >= count:
            break
        feed.next_message()
        emitted += 1
        due = started + emitted * interval
        time.sleep(max(0.0, due - time.monotonic()))
    return feed.summary()
