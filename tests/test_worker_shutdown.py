"""The bound on a worker's warm stop (worker.cluster.shutdown), in process; the stop of a real
worker, chunk finished or requeued, is in tests/test_deploy_runtime.py."""

from __future__ import annotations

import pytest

from worker.cluster import shutdown


@pytest.fixture
def unarmed(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(shutdown, "_armed", None)
    yield
    if shutdown._armed is not None:
        shutdown._armed.cancel()  # never let it SIGQUIT the test process


def test_a_warm_stop_arms_one_switch_however_many_sigterms_arrive(unarmed: None) -> None:
    first = shutdown.bound_warm_shutdown(3600, "Warm")
    assert first is not None and first.is_alive() and first.daemon
    assert first.interval == 3600
    assert shutdown.bound_warm_shutdown(3600, "Warm") is first


def test_a_cold_stop_arms_nothing(unarmed: None) -> None:
    assert shutdown.bound_warm_shutdown(3600, "Cold") is None
    assert shutdown._armed is None
