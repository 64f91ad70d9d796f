"""The listener loop: receive, check, batch per dataset, hand off, and only then settle.

Whatever the source (Service Bus or a folder), a message is settled exactly one way:
- completed once its batch is handed off to the cluster (bodies and task durably in Redis);
- abandoned if the hand-off fails, so it comes back (nothing is lost, nothing blocks);
- dead-lettered with its reason if it is poison (see :mod:`iris_listener.messages`).
On stop (SIGTERM) the batches held are handed off and completed, or abandoned; never dropped.
A crash settles nothing: the source redelivers, and idempotent storage makes that harmless.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

import redis

from iris_listener import status
from iris_listener.messages import IrisMessage, PoisonMessage, check
from worker.elexon.catalog import Dataset

log = logging.getLogger(__name__)

HandOff = Callable[[Dataset, list[IrisMessage]], str]
PAUSE_MAX_S = 30.0


@dataclasses.dataclass
class Delivery:
    """A received message and the source's handle to settle it."""

    message: IrisMessage
    handle: Any


class Source(Protocol):
    """Where messages come from; every method may raise on a broken connection."""

    name: str

    def receive(self, max_count: int, max_wait_s: float) -> list[Delivery]: ...

    def complete(self, delivery: Delivery) -> None: ...

    def abandon(self, delivery: Delivery) -> None: ...

    def dead_letter(self, delivery: Delivery, reason: str, description: str) -> None: ...

    def close(self) -> None: ...


@dataclasses.dataclass
class _Batch:
    dataset: Dataset
    opened: float
    deliveries: list[Delivery] = dataclasses.field(default_factory=list)


class Listener:
    """Runs one source until stopped. Counts are kept in ``totals`` and logged periodically."""

    def __init__(
        self,
        source: Source,
        hand_off: HandOff,
        *,
        status_client: redis.Redis | None = None,
        batch_max: int = 100,
        batch_s: float = 2.0,
        log_every_s: float = 60.0,
        handoff_backoff_s: float = 1.0,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        self.source = source
        self.hand_off = hand_off
        self.status_client = status_client
        self.batch_max = batch_max
        self.batch_s = batch_s
        self.log_every_s = log_every_s
        self.handoff_backoff_s = handoff_backoff_s
        self.ready = ready  # probe of the hand-off target, asked before receiving again
        self.totals: Counter[str] = Counter()
        self._batches: dict[str, _Batch] = {}
        self._started = dt.datetime.now(dt.UTC)
        self._last_log = time.monotonic()
        self._logged_totals: Counter[str] = Counter()
        self._receive_failures = 0
        self._stop = threading.Event()
        self._paused_until: float | None = None
        self._pause_s = handoff_backoff_s

    @property
    def held(self) -> int:
        return sum(len(b.deliveries) for b in self._batches.values())

    def run(self, stop: threading.Event) -> None:
        """Receive until ``stop`` is set, then settle what is held and close the source."""
        self._stop = stop
        log.info("IRIS listener started on %s", self.source.name)
        try:
            while not stop.is_set():
                self.poll_once()
        finally:
            self.flush(everything=True)
            self._log_counts(force=True)
            self.source.close()
            log.info("IRIS listener stopped; every message held was settled")

    def poll_once(self) -> None:
        """One receive (waiting at most until the oldest batch is due), then due flushes."""
        if self._wait_while_paused():
            return
        room = max(1, self.batch_max - self.held)
        wait = min(1.0, self._time_to_next_flush())
        try:
            deliveries = self.source.receive(room, wait)
        except Exception as exc:  # the source reconnects on its next receive
            self._receive_failures += 1
            pause = min(60.0, 0.5 * 2 ** min(self._receive_failures, 7))
            log.warning(
                "IRIS receive from %s failed (%s); retrying in %.1fs", self.source.name, exc, pause
            )
            self._stop.wait(pause)
            deliveries = []
        else:
            self._receive_failures = 0
        received: Counter[str] = Counter()
        for delivery in deliveries:
            self.accept(delivery, received)
        self.flush()
        self._heartbeat(received)
        self._log_counts()

    def accept(self, delivery: Delivery, received: Counter[str]) -> None:
        """Check one message; poison is dead-lettered at once, the rest joins its batch."""
        message = delivery.message
        self.totals["received"] += 1
        try:
            dataset, _ = check(message)
        except PoisonMessage as poison:
            received[message.subject or "?"] += 1
            self._dead_letter(delivery, poison)
            return
        received[dataset.code] += 1
        batch = self._batches.get(dataset.code)
        if batch is None:
            batch = self._batches[dataset.code] = _Batch(dataset, time.monotonic())
        batch.deliveries.append(delivery)

    def flush(self, *, everything: bool = False) -> None:
        """Hand off every batch that is full or old enough (or all of them)."""
        now = time.monotonic()
        for code in list(self._batches):
            batch = self._batches.get(code)
            if batch is None:  # given back by a pause while flushing another batch
                continue
            full = len(batch.deliveries) >= self.batch_max
            due = now - batch.opened >= self.batch_s
            if everything or full or due or self.held >= self.batch_max:
                del self._batches[code]
                self._hand_off(batch)

    def _hand_off(self, batch: _Batch) -> None:
        messages = [d.message for d in batch.deliveries]
        try:
            task_id = self.hand_off(batch.dataset, messages)
        except Exception as exc:  # any failure: give the messages back, never drop them
            log.error(
                "%s: hand-off of %d IRIS messages failed, abandoning them for redelivery: %s",
                batch.dataset.code,
                len(messages),
                exc,
                extra={"dataset": batch.dataset.code},
            )
            self._abandon(batch)
            self._pause()
            return
        for delivery in batch.deliveries:
            self._settle(self.source.complete, delivery, "complete")
        self.totals["handed_off"] += len(messages)
        log.debug(
            "%s: handed off %d messages as task %s", batch.dataset.code, len(messages), task_id
        )

    def _abandon(self, batch: _Batch) -> None:
        for delivery in batch.deliveries:
            self._settle(self.source.abandon, delivery, "abandon")
        self.totals["abandoned"] += len(batch.deliveries)

    def _pause(self) -> None:
        """Stop taking messages the cluster cannot hold: give back everything held and
        close the source (Service Bus releases what it prefetched), so an outage costs each
        message one delivery, not one per retry (IRIS dead-letters after five)."""
        for code in list(self._batches):
            self._abandon(self._batches.pop(code))
        self.source.close()
        self._paused_until = time.monotonic() + self._pause_s
        self._pause_s = min(PAUSE_MAX_S, self._pause_s * 2)

    def _wait_while_paused(self) -> bool:
        """True while the cluster is still unreachable (after waiting a little)."""
        if self._paused_until is None:
            return False
        self._stop.wait(max(0.0, self._paused_until - time.monotonic()))
        if self._stop.is_set():
            return True
        if self.ready is not None and not self._ready():
            log.warning("IRIS hand-off target still unreachable; next try in %.0fs", self._pause_s)
            self._paused_until = time.monotonic() + self._pause_s
            self._pause_s = min(PAUSE_MAX_S, self._pause_s * 2)
            return True
        log.info("IRIS hand-off target reachable again; receiving")
        self._paused_until = None
        self._pause_s = self.handoff_backoff_s
        return False

    def _ready(self) -> bool:
        try:
            return bool(self.ready and self.ready())
        except Exception:  # a failing probe means "not ready", whatever it raised
            return False

    def _dead_letter(self, delivery: Delivery, poison: PoisonMessage) -> None:
        log.warning(
            "%s dead-lettered: %s",
            delivery.message.describe(),
            poison,
            extra={"dataset": delivery.message.subject},
        )
        self._settle(
            lambda d: self.source.dead_letter(d, poison.reason, poison.description),
            delivery,
            "dead-letter",
        )
        self.totals["dead_lettered"] += 1

    def _settle(self, action: Callable[[Delivery], None], delivery: Delivery, what: str) -> None:
        """Settle one message; a failure (lost lock, dropped link) means IRIS redelivers it."""
        try:
            action(delivery)
        except Exception as exc:
            self.totals["settle_failed"] += 1
            log.warning(
                "could not %s %s (it will be redelivered, and loads once): %s",
                what,
                delivery.message.describe(),
                exc,
            )

    def _time_to_next_flush(self) -> float:
        if not self._batches:
            return self.batch_s
        oldest = min(b.opened for b in self._batches.values())
        return max(0.0, oldest + self.batch_s - time.monotonic())

    def _heartbeat(self, received: Counter[str]) -> None:
        if self.status_client is None:
            return
        try:
            status.record_received(self.status_client, received, dt.datetime.now(dt.UTC))
            status.heartbeat(self.status_client, self.source.name, dict(self.totals), self._started)
        except redis.RedisError as exc:  # status is advisory; the hand-off reports real trouble
            log.debug("IRIS status not recorded: %s", exc)

    def _log_counts(self, *, force: bool = False) -> None:
        if not force and time.monotonic() - self._last_log < self.log_every_s:
            return
        delta = self.totals - self._logged_totals
        log.info(
            "IRIS counts: received %d, handed off %d, dead-lettered %d, abandoned %d "
            "(totals %d/%d/%d/%d), holding %d",
            delta["received"],
            delta["handed_off"],
            delta["dead_lettered"],
            delta["abandoned"],
            self.totals["received"],
            self.totals["handed_off"],
            self.totals["dead_lettered"],
            self.totals["abandoned"],
            self.held,
        )
        self._logged_totals = Counter(self.totals)
        self._last_log = time.monotonic()
