"""Learned request windows: the widest request the live API accepted, per dataset, remembered.

The spec states few window limits, so a chunk starts with the widest request its dataset
plausibly allows (``Dataset.max_window``: the whole settlement day, or the spec's limit). When
the API says a window is too large (a 400 about the range, or repeated timeouts or cut
bodies), the client narrows it and records the narrower width here, so every later chunk, on
every worker, starts there instead of being refused again. A learned width only ever shrinks
(the store keeps the minimum) and never expires: the API does not announce a lifted limit, and
a too-narrow window costs requests, not data. To forget one, ``bmrs datasets --forget-window``.

Where it lives:

- **Redis** (the cluster's, when ``BMRS_BROKER_URL`` is set and answers, and always on
  workers): one hash,
  ``bmrs:learned_windows``, dataset code -> seconds, no TTL. Shrinking is one Lua script, so
  concurrent workers agree and exactly one of them logs the change.
- **A file** (in-process ``bmrs ingest`` with no broker): ``BMRS_DATA_DIR/learned_windows.json``,
  read and rewritten under a file lock (``learned_windows.json.lock``) and swapped in by rename,
  so processes sharing the data dir share what they learn.
- **Memory** (a client built without a store, e.g. in tests): this process only.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import filelock

if TYPE_CHECKING:
    import redis

    from worker.settings import Settings

log = logging.getLogger(__name__)

REDIS_KEY = "bmrs:learned_windows"
FILE_NAME = "learned_windows.json"
LOCK_TIMEOUT_S = 30.0

# Keep the smaller of the stored and the new width; 1 when the stored width changed.
_SHRINK = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if (not current) or tonumber(ARGV[2]) < tonumber(current) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
"""


class WindowStore(Protocol):
    """Where learned windows are kept; shared by every process that uses the same store."""

    def get(self, code: str) -> dt.timedelta | None:
        """The learned window of a dataset, or None when none was learned."""
        ...

    def learn(self, code: str, window: dt.timedelta) -> bool:
        """Record ``window`` if narrower than what is stored; True when the store changed."""
        ...

    def all(self) -> dict[str, dt.timedelta]:
        """Every learned window, by dataset code."""
        ...

    def forget(self, code: str) -> bool:
        """Drop a dataset's learned window (it starts from ``max_window`` again)."""
        ...

    def describe(self) -> str:
        """Where the store is, for logs and docs."""
        ...


def _seconds(window: dt.timedelta) -> int:
    return max(1, int(window.total_seconds()))


class MemoryWindowStore:
    """This process only: what a client uses when it is given no shared store."""

    def __init__(self) -> None:
        self._windows: dict[str, dt.timedelta] = {}
        self._lock = threading.Lock()

    def get(self, code: str) -> dt.timedelta | None:
        return self._windows.get(code)

    def learn(self, code: str, window: dt.timedelta) -> bool:
        with self._lock:
            current = self._windows.get(code)
            if current is not None and current <= window:
                return False
            self._windows[code] = window
            return True

    def all(self) -> dict[str, dt.timedelta]:
        return dict(self._windows)

    def forget(self, code: str) -> bool:
        with self._lock:
            return self._windows.pop(code, None) is not None

    def describe(self) -> str:
        return "this process's memory"


class RedisWindowStore:
    """The cluster's Redis: one hash shared by every worker, surviving restarts (no TTL)."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._shrink = client.register_script(_SHRINK)

    def get(self, code: str) -> dt.timedelta | None:
        value = self._redis.hget(REDIS_KEY, code)
        return None if value is None else dt.timedelta(seconds=int(value))

    def learn(self, code: str, window: dt.timedelta) -> bool:
        return bool(self._shrink(keys=[REDIS_KEY], args=[code, _seconds(window)]))

    def all(self) -> dict[str, dt.timedelta]:
        stored = self._redis.hgetall(REDIS_KEY)
        return {
            (k.decode() if isinstance(k, bytes) else str(k)): dt.timedelta(seconds=int(v))
            for k, v in stored.items()
        }

    def forget(self, code: str) -> bool:
        return bool(self._redis.hdel(REDIS_KEY, code))

    def describe(self) -> str:
        return f"Redis hash {REDIS_KEY}"


class FileWindowStore:
    """A JSON file in the data dir, changed under a file lock: processes sharing it agree."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = filelock.FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_S)

    def _read(self) -> dict[str, int]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        try:
            stored = json.loads(text)
        except json.JSONDecodeError:
            # Writes are swapped in by rename, so this is a hand edit gone wrong: say so once.
            log.warning("%s is not valid JSON; learned windows start afresh", self.path)
            return {}
        return {str(k): int(v) for k, v in stored.items()} if isinstance(stored, dict) else {}

    def _write(self, windows: dict[str, int]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(windows, indent=2, sort_keys=True) + "\n")
        os.replace(temporary, self.path)

    def get(self, code: str) -> dt.timedelta | None:
        value = self._read().get(code)  # renames are atomic: a read needs no lock
        return None if value is None else dt.timedelta(seconds=value)

    def learn(self, code: str, window: dt.timedelta) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            windows = self._read()
            seconds = _seconds(window)
            if code in windows and windows[code] <= seconds:
                return False
            windows[code] = seconds
            self._write(windows)
            return True

    def all(self) -> dict[str, dt.timedelta]:
        return {code: dt.timedelta(seconds=s) for code, s in self._read().items()}

    def forget(self, code: str) -> bool:
        if not self.path.exists():
            return False
        with self._lock:
            windows = self._read()
            if windows.pop(code, None) is None:
                return False
            self._write(windows)
            return True

    def describe(self) -> str:
        return str(self.path)


def store_from_settings(settings: Settings) -> WindowStore:
    """The cluster's Redis when a broker is configured and answers, else the file in the data
    dir (an in-process command must not wait on a cluster that is not running)."""
    files = FileWindowStore(Path(settings.data_dir) / FILE_NAME)
    if not settings.broker_url:
        return files
    import redis as redis_lib

    from worker.cluster.broker import masked_url, redis_client

    try:
        redis_lib.Redis.from_url(
            settings.broker_url, socket_connect_timeout=2, socket_timeout=2
        ).ping()
    except redis_lib.RedisError as exc:
        log.warning(
            "learned windows: the broker at %s does not answer (%s); using %s instead",
            masked_url(settings.broker_url), exc, files.path,
        )
        return files
    return RedisWindowStore(redis_client(settings))


def iso_duration(window: dt.timedelta) -> str:
    """``PT1H``, ``PT30M``, ``P1D``: how ``bmrs datasets --json`` spells a window."""
    seconds = int(window.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = "P" + (f"{days}D" if days else "")
    clock = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + (
        f"{secs}S" if secs else ""
    )
    return text + ("T" + clock if clock else "") if (days or clock) else "PT0S"
