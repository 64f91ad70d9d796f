"""An IRIS test cluster: real redis-server, real Celery worker and listener processes.

Each process runs from the test's own environment (``bmrs_env`` plus the broker URL), with
short batch, retry and redelivery timings so a test takes seconds. Processes are stopped,
by their own pid, when the test ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.redis import RedisServer
from worker.settings import get_settings

BIN = Path(sys.executable).parent


class ClusterProcess:
    """One child process with its log file."""

    def __init__(self, name: str, args: list[str], log_path: Path) -> None:
        self.name = name
        self.args = args
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        handle = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.args, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        handle.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.running:
            assert self.process is not None
            os.killpg(self.process.pid, signum)  # the group: a Celery worker's pool children too

    def wait(self, timeout: float = 30) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self, timeout: float = 20) -> None:
        if not self.running:
            return
        self.signal(signal.SIGTERM)
        try:
            self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.wait(10)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class IrisCluster:
    """The pieces of the IRIS path a test starts and stops at will."""

    def __init__(self, redis_server: RedisServer, data_dir: Path, logs: Path) -> None:
        self.redis_server = redis_server
        self.data_dir = data_dir
        self.inbox = get_settings().iris_inbox
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.logs = logs
        self.processes: list[ClusterProcess] = []

    def _spawn(self, name: str, args: list[str]) -> ClusterProcess:
        process = ClusterProcess(name, args, self.logs / f"{name}-{len(self.processes)}.log")
        process.start()
        self.processes.append(process)
        return process

    def start_worker(self) -> ClusterProcess:
        return self._spawn(
            "worker",
            [
                str(BIN / "bmrs"),
                "worker",
                "-Q",
                "iris",
                "-c",
                "1",
                "-n",
                f"iris{len(self.processes)}@%h",
            ],
        )

    def start_listener(self) -> ClusterProcess:
        return self._spawn("listener", [str(BIN / "bmrs"), "listen", "--log-every", "1"])

    def redis(self):
        return self.redis_server.client()

    def queue_length(self) -> int:
        return int(self.redis().llen("iris"))

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def logs_text(self) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.log()[-4000:]}" for p in self.processes)


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, cluster: IrisCluster | None = None
) -> None:
    """Poll until ``predicate`` holds; fail naming ``what`` (with the processes' logs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    logs = cluster.logs_text() if cluster else ""
    pytest.fail(f"timed out after {timeout}s waiting for {what}\n{logs}")


@pytest.fixture
def iris_cluster(
    bmrs_env: pytest.MonkeyPatch, redis_server: RedisServer, data_dir: Path, tmp_path: Path
) -> Iterator[IrisCluster]:
    """Settings for a fast IRIS path on this test's Redis; processes are started by the test."""
    bmrs_env.setenv("BMRS_BROKER_URL", redis_server.url)
    bmrs_env.setenv("BMRS_IRIS_BATCH_S", "0.3")
    bmrs_env.setenv("BMRS_IRIS_BATCH_MAX", "10")
    bmrs_env.setenv("BMRS_TASK_SOFT_TIME_LIMIT_S", "20")
    bmrs_env.setenv("BMRS_TASK_TIME_LIMIT_S", "30")
    bmrs_env.setenv("BMRS_VISIBILITY_TIMEOUT_S", "40")
    bmrs_env.setenv("BMRS_RESTORE_INTERVAL_S", "1")
    bmrs_env.setenv("BMRS_RETRY_BACKOFF_S", "0.5")
    bmrs_env.setenv("BMRS_RETRY_BACKOFF_MAX_S", "5")
    get_settings.cache_clear()
    logs = tmp_path / "logs"
    logs.mkdir()
    cluster = IrisCluster(redis_server, data_dir, logs)
    try:
        yield cluster
    finally:
        cluster.stop_all()
