"""Job progress in Redis: a job is a set of chunks, each pending, done, failed or cancelled.

A backfill, a gap sweep or a ``gaps --fill`` is one job. Its record is written before any
chunk is enqueued, and each chunk's task moves its own entry on when it ends. Moves are
atomic (one Lua script updates the chunk and the per-dataset counters together) and
idempotent (a redelivered chunk moves done -> done and counts once), so progress stays
true with any number of workers, redeliveries and retries. No chords: nothing waits on a
result backend; ``bmrs job`` reads this record.

Keys (expire after :data:`JOB_TTL_S`)::

    bmrs:job:<id>         hash: kind, datasets, start, end, created_utc, total, cancelled, enqueued
    bmrs:job:<id>:chunks  hash: "<CODE>/<YYYY-MM-DD>" -> JSON {state, status, rows, ...}
    bmrs:job:<id>:counts  hash: "<CODE>:<state>" -> number of chunks
    bmrs:jobs             sorted set of job ids by creation time
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterable
from typing import Any, Literal

import orjson
import redis

from worker.cluster.broker import KEY_PREFIX
from worker.elexon.coverage import Coverage

State = Literal["pending", "done", "failed", "cancelled"]
STATES: tuple[State, ...] = ("pending", "done", "failed", "cancelled")
JOB_TTL_S = 30 * 24 * 3600
INDEX_KEY = KEY_PREFIX + "jobs"

# KEYS: chunks, counts. ARGV: chunk, dataset code, new state, entry JSON, only_if_pending.
_MOVE = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return 0 end
local old_state = cjson.decode(old)['state']
if ARGV[5] == '1' and old_state ~= 'pending' then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
if old_state ~= ARGV[3] then
  redis.call('HINCRBY', KEYS[2], ARGV[2] .. ':' .. old_state, -1)
  redis.call('HINCRBY', KEYS[2], ARGV[2] .. ':' .. ARGV[3], 1)
end
return 1
"""


class UnknownJobError(KeyError):
    """No job with this id (never created, or expired after 30 days)."""

    def __str__(self) -> str:
        return (
            f"no job {self.args[0]!r}: it was never created here or has expired (jobs last 30 days)"
        )


def chunk_id(dataset: str, day: dt.date) -> str:
    return f"{dataset}/{day.isoformat()}"


def parse_chunk_id(chunk: str) -> tuple[str, dt.date]:
    code, _, day = chunk.partition("/")
    return code, dt.date.fromisoformat(day)


@dataclasses.dataclass
class DatasetProgress:
    """Chunk counts of one dataset in a job (and, once read in full, its rows)."""

    dataset: str
    chunks: int = 0
    pending: int = 0
    done: int = 0
    failed: int = 0
    cancelled: int = 0
    rows: int = 0
    duplicates_dropped: int = 0

    @property
    def ended(self) -> int:
        return self.done + self.failed + self.cancelled


@dataclasses.dataclass
class Failure:
    dataset: str
    date: dt.date
    reason: str


@dataclasses.dataclass
class JobProgress:
    """Where a job stands; :meth:`to_json` is the public shape of ``bmrs job --json``."""

    job_id: str
    kind: str
    created_utc: str
    start: str | None
    end: str | None
    cancelled: bool
    datasets: dict[str, DatasetProgress]
    failures: list[Failure] = dataclasses.field(default_factory=list)
    statuses: dict[str, int] = dataclasses.field(default_factory=dict)

    def total(self, field: str) -> int:
        return sum(getattr(p, field) for p in self.datasets.values())

    @property
    def finished(self) -> bool:
        return self.total("pending") == 0

    def to_json(self) -> dict[str, Any]:
        fields = ("chunks", "pending", "done", "failed", "cancelled", "rows", "duplicates_dropped")
        return {
            "job_id": self.job_id,
            "kind": self.kind,
            "created_utc": self.created_utc,
            "start": self.start,
            "end": self.end,
            "cancelled": self.cancelled,
            "finished": self.finished,
            "totals": {f: self.total(f) for f in fields},
            "statuses": self.statuses,
            "datasets": {
                code: {f: getattr(p, f) for f in fields} for code, p in self.datasets.items()
            },
            "failures": [
                {"dataset": f.dataset, "date": f.date.isoformat(), "reason": f.reason}
                for f in self.failures
            ],
        }


class JobStore:
    """Create jobs, move their chunks on, read their progress."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._move = client.register_script(_MOVE)

    @staticmethod
    def _key(job_id: str, part: str = "") -> str:
        return f"{KEY_PREFIX}job:{job_id}" + (f":{part}" if part else "")

    def create(
        self,
        kind: str,
        chunks: Iterable[tuple[str, dt.date]],
        *,
        start: dt.date | None = None,
        end: dt.date | None = None,
    ) -> str:
        """Record a new job with every chunk pending; returns its id."""
        job_id = uuid.uuid4().hex[:12]
        entry = orjson.dumps({"state": "pending"})
        chunk_map = {chunk_id(code, day): entry for code, day in chunks}
        counts: dict[str, int] = {}
        for chunk in chunk_map:
            code = chunk.partition("/")[0]
            counts[f"{code}:pending"] = counts.get(f"{code}:pending", 0) + 1
        codes = sorted({chunk.partition("/")[0] for chunk in chunk_map})
        now = dt.datetime.now(dt.UTC)
        meta = {
            "kind": kind,
            "datasets": ",".join(codes),
            "created_utc": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "total": len(chunk_map),
            "cancelled": 0,
            "enqueued": 0,
            "start": start.isoformat() if start else "",
            "end": end.isoformat() if end else "",
        }
        pipe = self.client.pipeline()
        pipe.hset(self._key(job_id), mapping=meta)
        if chunk_map:
            pipe.hset(self._key(job_id, "chunks"), mapping=chunk_map)
            pipe.hset(self._key(job_id, "counts"), mapping=counts)
        for part in ("", "chunks", "counts"):
            pipe.expire(self._key(job_id, part), JOB_TTL_S)
        pipe.zadd(INDEX_KEY, {job_id: now.timestamp()})
        pipe.zremrangebyscore(INDEX_KEY, "-inf", now.timestamp() - JOB_TTL_S)
        pipe.execute()
        return job_id

    def meta(self, job_id: str) -> dict[str, str]:
        raw = self.client.hgetall(self._key(job_id))
        if not raw:
            raise UnknownJobError(job_id)
        return {k.decode(): v.decode() for k, v in raw.items()}

    def chunks(self, job_id: str) -> list[tuple[str, dt.date]]:
        """Every chunk of the job, by day then dataset (the order they are enqueued in)."""
        names = [c.decode() for c in self.client.hkeys(self._key(job_id, "chunks"))]
        return sorted((parse_chunk_id(c) for c in names), key=lambda item: (item[1], item[0]))

    def pending(self, job_id: str) -> set[tuple[str, dt.date]]:
        """Chunks of the job that are neither done, failed nor cancelled."""
        return {
            parse_chunk_id(chunk.decode())
            for chunk, entry in self.client.hgetall(self._key(job_id, "chunks")).items()
            if orjson.loads(entry)["state"] == "pending"
        }

    def count_enqueued(self, job_id: str, n: int) -> None:
        """Note how many chunks a fan-out has published, so a redelivered fan-out resumes."""
        self.client.hincrby(self._key(job_id), "enqueued", n)

    def is_cancelled(self, job_id: str) -> bool:
        return self.client.hget(self._key(job_id), "cancelled") == b"1"

    def _set(
        self,
        job_id: str,
        dataset: str,
        day: dt.date,
        state: State,
        entry: dict[str, Any],
        *,
        only_if_pending: bool = False,
    ) -> bool:
        entry = {"state": state, **entry}
        moved = self._move(
            keys=[self._key(job_id, "chunks"), self._key(job_id, "counts")],
            args=[
                chunk_id(dataset, day),
                dataset,
                state,
                orjson.dumps(entry),
                "1" if only_if_pending else "0",
            ],
        )
        return bool(moved)

    def mark_done(self, job_id: str, coverage: Coverage) -> None:
        entry = {
            "status": coverage.status,
            "rows": coverage.rows,
            "duplicates_dropped": coverage.duplicates_dropped,
            "reason": coverage.reason if coverage.status != "complete" else None,
        }
        self._set(job_id, coverage.dataset, coverage.date, "done", entry)

    def mark_failed(self, job_id: str, dataset: str, day: dt.date, reason: str) -> None:
        self._set(job_id, dataset, day, "failed", {"reason": reason})

    def mark_cancelled(self, job_id: str, dataset: str, day: dt.date) -> bool:
        return self._set(job_id, dataset, day, "cancelled", {}, only_if_pending=True)

    def cancel(self, job_id: str) -> int:
        """Stop a job: its pending chunks become cancelled (running ones still finish)."""
        self.meta(job_id)
        self.client.hset(self._key(job_id), "cancelled", 1)
        moved = 0
        for chunk, raw in self.client.hgetall(self._key(job_id, "chunks")).items():
            if orjson.loads(raw)["state"] == "pending":
                code, day = parse_chunk_id(chunk.decode())
                moved += self.mark_cancelled(job_id, code, day)
        return moved

    def progress(self, job_id: str, *, detail: bool = False) -> JobProgress:
        """Counts per dataset; with ``detail``, rows, duplicates and failures too."""
        meta = self.meta(job_id)
        codes = [c for c in meta["datasets"].split(",") if c]
        datasets = {code: DatasetProgress(code) for code in codes}
        for field, value in self.client.hgetall(self._key(job_id, "counts")).items():
            code, _, state = field.decode().partition(":")
            setattr(datasets.setdefault(code, DatasetProgress(code)), state, int(value))
        for p in datasets.values():
            p.chunks = p.pending + p.done + p.failed + p.cancelled
        job = JobProgress(
            job_id=job_id,
            kind=meta["kind"],
            created_utc=meta["created_utc"],
            start=meta.get("start") or None,
            end=meta.get("end") or None,
            cancelled=meta.get("cancelled") == "1",
            datasets=datasets,
        )
        if detail:
            for chunk, raw in self.client.hgetall(self._key(job_id, "chunks")).items():
                code, day = parse_chunk_id(chunk.decode())
                entry = orjson.loads(raw)
                if entry["state"] == "done":
                    datasets[code].rows += entry.get("rows", 0)
                    datasets[code].duplicates_dropped += entry.get("duplicates_dropped", 0)
                    job.statuses[entry["status"]] = job.statuses.get(entry["status"], 0) + 1
                elif entry["state"] == "failed":
                    job.failures.append(Failure(code, day, entry.get("reason") or "unknown"))
            job.failures.sort(key=lambda f: (f.date, f.dataset))
        return job

    def recent(self, limit: int = 5) -> list[str]:
        """Ids of the newest jobs, newest first."""
        return [j.decode() for j in self.client.zrevrange(INDEX_KEY, 0, limit - 1)]
