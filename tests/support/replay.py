"""A local endpoint that replays recorded Elexon responses as the API would serve them.

Real samples (``../shared/elexon/samples``) are served through the simulator's HTTP face:
the same paths (stream, list and path-dated forms, both base paths), the same parameter
validation and window semantics, the same envelopes. Only the rows differ: each request gets
the recorded rows that fall in its window, in the recording's own order, instead of generated
ones. So ``bmrs ingest`` runs through the real client against what the live API sent.
"""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest

from worker.elexon import catalog, settlement
from worker.sim.generators import Row, bucket_floor
from worker.sim.server import RunningSimulator, SimulatorApp, _routes, _SimulatorHTTPServer

# A "now" after every recorded day, so no recorded row is withheld as being in the future.
REPLAY_NOW = dt.datetime(2027, 6, 1, tzinfo=settlement.UTC)


def _instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(settlement.UTC)


class RecordedRows:
    """Recorded rows of one dataset, looked up by half-hour bucket like a generator.

    Stands in for a :class:`worker.sim.generators.Generator` in the simulator's query code:
    it has the ``dataset``, ``descending`` and ``rows(bucket_start)`` that code reads.
    """

    value_fields: tuple[str, ...] = ()

    def __init__(self, dataset: catalog.Dataset, rows: Sequence[Row]) -> None:
        self.dataset = dataset
        self.code = dataset.code
        self._buckets: dict[dt.datetime, list[Row]] = collections.defaultdict(list)
        for row in rows:
            self._buckets[self._bucket(row)].append(row)
        starts = [self._bucket(row) for row in rows]
        # Buckets are served in the recording's direction (most real answers: newest first).
        self.descending = len(starts) > 1 and starts[0] > starts[-1]

    def _bucket(self, row: Row) -> dt.datetime:
        if self.dataset.time_field is not None:
            return bucket_floor(_instant(row[self.dataset.time_field]))
        day = dt.date.fromisoformat(row["settlementDate"])
        period = int(row[self.dataset.period_field or "settlementPeriod"])
        return settlement.period_start(day, period)

    def rows(self, start: dt.datetime) -> list[Row]:
        return self._buckets.get(start, [])


class RecordedSnapshot:
    """A recorded reference list, served whole whatever the day (the generic layer's
    snapshot source interface: ``code``, ``anchor``, ``earliest``, ``rows``)."""

    anchor = None
    descending = False
    earliest = dt.date(2000, 1, 1)

    def __init__(self, dataset: catalog.Dataset, rows: Sequence[Row]) -> None:
        self.code = dataset.code
        self._rows = list(rows)

    def rows(self, start: dt.datetime) -> list[Row]:
        return self._rows


def replay_app(
    recordings: Mapping[str, Sequence[Row]], now: dt.datetime = REPLAY_NOW
) -> SimulatorApp:
    """The simulator's app with the given datasets' rows replaced by recorded ones; datasets
    not given answer with no rows (a recording is all the replay knows)."""
    app = SimulatorApp(seed=0, scale=0.0001, clock=lambda: now)
    for dataset in catalog.DATASETS:
        if dataset.snapshot:
            # A reference list has no time to look rows up by: the whole recording, always.
            app.replace_rows(
                dataset.code, RecordedSnapshot(dataset, recordings.get(dataset.code, ()))
            )
            continue
        app.generators[dataset.code] = RecordedRows(  # type: ignore[assignment]
            dataset, recordings.get(dataset.code, ())
        )
    app._exact, app._templates = _routes(app.generators)  # every recorded dataset is served
    return app


def start_replay(
    recordings: Mapping[str, Sequence[Row]], now: dt.datetime = REPLAY_NOW
) -> RunningSimulator:
    """Serve recorded rows on a free local port; ``.url`` is the base, as for the simulator."""
    server = _SimulatorHTTPServer(("127.0.0.1", 0), replay_app(recordings, now), 0.0, None)
    return RunningSimulator(server)


@pytest.fixture
def replay_factory() -> Iterator[Callable[..., RunningSimulator]]:
    """``replay_factory({"MILS": rows})`` starts a replay endpoint, stopped after the test."""
    started: list[RunningSimulator] = []

    def start(recordings: Mapping[str, Sequence[Row]], **options: Any) -> RunningSimulator:
        running = start_replay(recordings, **options)
        started.append(running)
        return running

    yield start
    for running in started:
        running.shutdown()
