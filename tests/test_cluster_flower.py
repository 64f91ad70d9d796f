"""Flower, the cluster's web monitor: basic auth from the environment, workers listed."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.support.cluster import ChunkCluster
from tests.support.env import free_port
from tests.support.iris import BIN, ClusterProcess, wait_for


def _start_flower(cluster: ChunkCluster) -> tuple[ClusterProcess, str]:
    port = free_port()
    flower = cluster.spawn("flower", [str(BIN / "bmrs"), "flower", "--port", str(port)])
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return requests.get(f"{url}/healthcheck", timeout=1).ok
        except requests.RequestException:
            return False

    wait_for(answers, 30, "Flower", cluster)  # type: ignore[arg-type]
    return flower, url


def test_flower_lists_the_workers_on_api_workers_behind_basic_auth(
    chunk_cluster: Callable[..., ChunkCluster], bmrs_env: pytest.MonkeyPatch
) -> None:
    bmrs_env.setenv("FLOWER_BASIC_AUTH", "analyst:s3cret-pass")
    cluster = chunk_cluster()
    cluster.start_worker("w1")
    cluster.start_worker("w2")
    cluster.wait_workers(2)
    flower, url = _start_flower(cluster)
    host = socket.gethostname()
    listed: dict = {}

    def lists_both() -> bool:
        response = requests.get(
            f"{url}/api/workers", params={"refresh": 1}, auth=("analyst", "s3cret-pass"), timeout=10
        )
        listed.update(response.json() if response.ok else {})
        return {f"w1@{host}", f"w2@{host}"} <= set(listed)

    wait_for(lists_both, 30, "Flower to list both workers", cluster)  # type: ignore[arg-type]
    queues = {q["name"] for q in listed[f"w1@{host}"]["active_queues"]}
    assert queues == {"realtime", "backfill"}
    assert requests.get(f"{url}/api/workers", timeout=5).status_code == 401
    assert (
        requests.get(f"{url}/api/workers", auth=("analyst", "wrong"), timeout=5).status_code == 401
    )
    # The password is handed to Flower inside the process, never on a visible command line.
    assert flower.process is not None
    assert b"s3cret-pass" not in Path(f"/proc/{flower.process.pid}/cmdline").read_bytes()


def test_flower_takes_its_password_from_a_mounted_secret_file(
    chunk_cluster: Callable[..., ChunkCluster], bmrs_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "flower_auth"
    secret.write_text("ops:from-a-file\n")
    bmrs_env.setenv("FLOWER_BASIC_AUTH_FILE", str(secret))
    cluster = chunk_cluster()
    _, url = _start_flower(cluster)

    assert (
        requests.get(f"{url}/api/workers", auth=("ops", "from-a-file"), timeout=10).status_code
        == 200
    )
    assert requests.get(f"{url}/api/workers", timeout=5).status_code == 401
