"""The Elexon simulator on a free port, per test: ``simulator`` yields its API base URL.

``simulator_factory(**options)`` starts more (faults, a fixed clock, an access log...) with the
options of :func:`worker.sim.server.start_simulator`; all are shut down after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from worker.sim.server import BASE_PATH, RunningSimulator, start_simulator

# Small enough that a BOD day is a few thousand rows, big enough to have many units.
TEST_SCALE = 0.02


@pytest.fixture
def simulator_factory() -> Iterator[Callable[..., RunningSimulator]]:
    started: list[RunningSimulator] = []

    def start(**options: Any) -> RunningSimulator:
        options.setdefault("scale", TEST_SCALE)
        running = start_simulator(**options)
        started.append(running)
        return running

    yield start
    for running in started:
        running.shutdown()


@pytest.fixture
def simulator(simulator_factory: Callable[..., RunningSimulator]) -> str:
    """Base URL of a fault-free simulator, like ``https://data.elexon.co.uk/bmrs/api/v1``."""
    return simulator_factory().url + BASE_PATH
