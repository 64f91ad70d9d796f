"""`bmrs up` and `bmrs demo`: a whole local cluster, and nothing left running after it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import orjson
import pytest

from tests.support.env import free_port
from tests.support.iris import BIN, wait_for


def _processes_using(data_dir: Path) -> list[str]:
    """Command lines of live processes whose environment points at this data dir."""
    marker = f"BMRS_DATA_DIR={data_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


def _cluster_env(bmrs_env: pytest.MonkeyPatch) -> dict[str, str]:
    bmrs_env.setenv("FLOWER_BASIC_AUTH", "ops:up-test")
    bmrs_env.setenv("BMRS_TASK_SOFT_TIME_LIMIT_S", "20")
    bmrs_env.setenv("BMRS_TASK_TIME_LIMIT_S", "25")
    bmrs_env.setenv("BMRS_VISIBILITY_TIMEOUT_S", "30")
    bmrs_env.setenv("BMRS_RETRY_BACKOFF_S", "0.5")
    bmrs_env.setenv("BMRS_RETRY_BACKOFF_MAX_S", "3")
    return dict(os.environ)


def test_up_runs_redis_workers_beat_flower_and_the_simulator_then_stops_them_all(
    bmrs_env: pytest.MonkeyPatch, data_dir: Path, tmp_path: Path
) -> None:
    env = _cluster_env(bmrs_env)
    redis_port, flower_port = free_port(), free_port()
    out = tmp_path / "up.log"
    with out.open("wb") as handle:
        up = subprocess.Popen(
            [
                str(BIN / "bmrs"),
                "up",
                "--simulate",
                "--workers",
                "2",
                "--redis-port",
                str(redis_port),
                "--flower-port",
                str(flower_port),
            ],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            lambda: "cluster running" in out.read_text() or up.poll() is not None, 90, "bmrs up"
        )
        assert up.poll() is None, out.read_text()
        client_env = {**env, "BMRS_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0"}
        backfill = subprocess.run(
            [
                str(BIN / "bmrs"),
                "backfill",
                "FUELINST,MID",
                "--start",
                "2025-10-25",
                "--end",
                "2025-10-26",
                "--wait",
            ],
            env=client_env,
            check=False,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert backfill.returncode == 0, backfill.stderr
        assert "4 complete" in backfill.stdout
        status = subprocess.run(
            [str(BIN / "bmrs"), "status", "--json"],
            env=client_env,
            check=False,
            capture_output=True,
            timeout=60,
        )
        report = orjson.loads(status.stdout)
        assert len(report["workers"]) == 2 and report["beat"], report
        assert set(report["workers"][0]["queues"]) == {"realtime", "backfill", "iris", "dashboard"}
        assert len(_processes_using(data_dir)) >= 7  # redis, sim, 2 workers (+pool), beat, flower

        up.send_signal(signal.SIGINT)
        assert up.wait(60) == 0
        time.sleep(0.5)
        assert _processes_using(data_dir) == []
        log = out.read_text()
        assert (
            "ops:up-test" not in log and "up-test" not in log
        )  # the Flower password is not echoed
    finally:
        if up.poll() is None:
            up.kill()


def test_demo_backfills_a_week_against_the_simulator_shows_no_gaps_and_exits(
    bmrs_env: pytest.MonkeyPatch, data_dir: Path
) -> None:
    env = _cluster_env(bmrs_env)
    demo = subprocess.run(
        [
            str(BIN / "bmrs"),
            "demo",
            "--days",
            "3",
            "--datasets",
            "FUELINST,MID,DISEBSP",
            "--workers",
            "1",
            "--redis-port",
            str(free_port()),
            "--flower-port",
            str(free_port()),
        ],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=150,
    )

    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "gaps: 0" in demo.stdout
    assert "bmrs query" in demo.stdout and "Flower: http://127.0.0.1:" in demo.stdout
    total = next(line for line in demo.stdout.splitlines() if "total" in line)
    assert "9" in total.split("│")[2]  # 9 chunks done
    assert "cluster stopped" in demo.stderr
    assert _processes_using(data_dir) == []
