"""IRIS status kept in Redis for ``bmrs status`` and the freshness check.

Per dataset: the time of the last message and a per-minute message count (kept two hours),
from which the rate over the last 15 minutes is read. The listener also keeps a heartbeat
with its source and running totals. Silence longer than :data:`SILENCE_ALERT` while a
listener is alive is a freshness alert: the real feed never pauses that long.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import redis

LAST_KEY = "bmrs:iris:last"
COUNT_PREFIX = "bmrs:iris:count:"
LISTENER_KEY = "bmrs:iris:listener"
SILENCE_ALERT = dt.timedelta(minutes=15)
RATE_WINDOW_MIN = 15
HEARTBEAT_TTL_S = 120


def _minute(now: dt.datetime) -> int:
    return int(now.timestamp() // 60)


def record_received(client: redis.Redis, received: Counter[str], now: dt.datetime) -> None:
    """Count messages received per dataset (one round trip for a whole poll)."""
    if not received:
        return
    pipe = client.pipeline(transaction=False)
    stamp = now.astimezone(dt.UTC).isoformat()
    for code, count in received.items():
        pipe.hset(LAST_KEY, code, stamp)
        key = f"{COUNT_PREFIX}{code}:{_minute(now)}"
        pipe.incrby(key, count)
        pipe.expire(key, 2 * 3600)
    pipe.execute()


def heartbeat(
    client: redis.Redis, source: str, totals: dict[str, int], started: dt.datetime
) -> None:
    """Say the listener is alive (expires if it stops beating), with its running totals."""
    fields: dict[str, Any] = {
        "source": source,
        "started_utc": started.isoformat(),
        "seen_utc": dt.datetime.now(dt.UTC).isoformat(),
        **{name: str(value) for name, value in totals.items()},
    }
    pipe = client.pipeline(transaction=False)
    pipe.hset(LISTENER_KEY, mapping=fields)
    pipe.expire(LISTENER_KEY, HEARTBEAT_TTL_S)
    pipe.execute()


def iris_status(client: redis.Redis, now: dt.datetime | None = None) -> dict[str, Any]:
    """The JSON shape ``bmrs status`` shows: the listener, and per dataset last time and rate."""
    now = now or dt.datetime.now(dt.UTC)
    last = {k.decode(): v.decode() for k, v in client.hgetall(LAST_KEY).items()}
    minutes = [_minute(now) - i for i in range(RATE_WINDOW_MIN)]
    datasets: dict[str, Any] = {}
    for code in sorted(last):
        counts = client.mget([f"{COUNT_PREFIX}{code}:{m}" for m in minutes])
        total = sum(int(c) for c in counts if c is not None)
        last_utc = dt.datetime.fromisoformat(last[code])
        datasets[code] = {
            "last_message_utc": last[code],
            "age_s": round((now - last_utc).total_seconds(), 1),
            "messages_per_min": round(total / RATE_WINDOW_MIN, 2),
        }
    listener = {k.decode(): v.decode() for k, v in client.hgetall(LISTENER_KEY).items()}
    return {"listener": listener or None, "datasets": datasets, "alert": silence_alert(client, now)}


def silence_alert(client: redis.Redis, now: dt.datetime | None = None) -> str | None:
    """An alert line when a live listener has heard nothing for 15 minutes, else None."""
    now = now or dt.datetime.now(dt.UTC)
    listener = client.hgetall(LISTENER_KEY)
    if not listener:
        return None  # no listener running: IRIS is not in use here, or `bmrs status` says so
    stamps = [dt.datetime.fromisoformat(v.decode()) for v in client.hvals(LAST_KEY)]
    started = dt.datetime.fromisoformat(listener[b"started_utc"].decode())
    latest = max([started, *stamps])
    silent = now - latest
    if silent <= SILENCE_ALERT:
        return None
    return (
        f"IRIS silent for {int(silent.total_seconds() // 60)} minutes (last message "
        f"{max(stamps).isoformat() if stamps else 'never'}, listener source "
        f"{listener.get(b'source', b'?').decode()}): check the listener log and IRIS credentials"
    )
