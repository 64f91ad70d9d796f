"""IRIS messages as files: ``<dir>/<DATASET>/<message_id>``, the layout Elexon's client writes.

A file is a message: its folder is the subject, its name the message id, its content the
body. Settling moves it, never deletes it unread:
- complete: to ``_done/<YYYY-MM-DD>/<DATASET>/`` (day folders older than the retention go);
- dead-letter: to ``_deadletter/<DATASET>/`` beside ``<name>.reason.json`` saying why;
- abandon: the file stays where it is and is read again on a later poll.
Files younger than ``settle_s`` are left alone: a writer that does not rename into place
(Elexon's client writes in place) may still be writing them.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import time
from pathlib import Path

import orjson

from iris_listener.listener import Delivery
from iris_listener.messages import IrisMessage

log = logging.getLogger(__name__)

DONE_DIR = "_done"
DEADLETTER_DIR = "_deadletter"
REASON_SUFFIX = ".reason.json"


def _is_message_file(name: str) -> bool:
    return not name.startswith((".", "_")) and not name.endswith((".tmp", ".part", REASON_SUFFIX))


class FolderSource:
    """Polls a folder for message files."""

    def __init__(
        self,
        root: Path,
        *,
        settle_s: float = 0.5,
        poll_s: float = 0.2,
        done_retention_days: int = 7,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.name = f"folder {self.root}"
        self.settle_s = settle_s
        self.poll_s = poll_s
        self.done_retention_days = done_retention_days
        self._in_flight: set[Path] = set()
        self._last_prune = 0.0

    def receive(self, max_count: int, max_wait_s: float) -> list[Delivery]:
        """Up to ``max_count`` files not already held, oldest first; waits up to ``max_wait_s``."""
        deadline = time.monotonic() + max_wait_s
        while True:
            found = self._scan(max_count)
            if found or time.monotonic() >= deadline:
                return found
            time.sleep(min(self.poll_s, max(0.0, deadline - time.monotonic())))

    def _scan(self, max_count: int) -> list[Delivery]:
        now = time.time()
        candidates: list[tuple[float, str, Path]] = []
        with os.scandir(self.root) as folders:
            for folder in folders:
                if not folder.is_dir() or folder.name.startswith(("_", ".")):
                    continue
                with os.scandir(folder.path) as files:
                    for entry in files:
                        if not entry.is_file() or not _is_message_file(entry.name):
                            continue
                        path = Path(entry.path)
                        mtime = entry.stat().st_mtime
                        if path not in self._in_flight and now - mtime >= self.settle_s:
                            candidates.append((mtime, entry.name, path))
        candidates.sort()
        deliveries = []
        for mtime, _, path in candidates[:max_count]:
            try:
                body = path.read_bytes()
            except FileNotFoundError:  # moved by another reader between scan and read
                continue
            message = IrisMessage(
                message_id=path.name,
                subject=path.parent.name,
                body=body,
                enqueued_utc=dt.datetime.fromtimestamp(mtime, dt.UTC),
            )
            self._in_flight.add(path)
            deliveries.append(Delivery(message=message, handle=path))
        return deliveries

    def complete(self, delivery: Delivery) -> None:
        path: Path = delivery.handle
        today = dt.datetime.now(dt.UTC).date().isoformat()
        target = self.root / DONE_DIR / today / path.parent.name / path.name
        self._move(path, target)
        self._prune_done()

    def abandon(self, delivery: Delivery) -> None:
        self._in_flight.discard(delivery.handle)

    def dead_letter(self, delivery: Delivery, reason: str, description: str) -> None:
        path: Path = delivery.handle
        target = self.root / DEADLETTER_DIR / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        note = {
            "message_id": delivery.message.message_id,
            "dataset": delivery.message.subject,
            "reason": reason,
            "description": description,
            "dead_lettered_utc": dt.datetime.now(dt.UTC).isoformat(),
        }
        target.with_name(target.name + REASON_SUFFIX).write_bytes(
            orjson.dumps(note, option=orjson.OPT_INDENT_2)
        )
        self._move(path, target)

    def close(self) -> None:
        self._in_flight.clear()

    def _move(self, path: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(path, target)
        finally:
            self._in_flight.discard(path)

    def _prune_done(self) -> None:
        """Remove day folders of handed-off files past the retention, once an hour."""
        if time.monotonic() - self._last_prune < 3600:
            return
        self._last_prune = time.monotonic()
        cutoff = dt.date.today() - dt.timedelta(days=self.done_retention_days)
        for folder in (self.root / DONE_DIR).glob("????-??-??"):
            try:
                old = dt.date.fromisoformat(folder.name) < cutoff
            except ValueError:
                continue
            if old:
                shutil.rmtree(folder, ignore_errors=True)
                log.info("removed handed-off IRIS files of %s from %s", folder.name, self.root)
