"""The containers' commands and healthchecks, run for real on this machine (no Docker here).

Each test takes a command or healthcheck exactly as docker-compose.yml or the rendered
Kubernetes manifests give it, changes only what a container would have differently (a free port
instead of the fixed one, a temp dir instead of /data, 127.0.0.1 instead of 0.0.0.0), and runs
it against real processes: redis-server, a `bmrs worker`, `bmrs flower`, `bmrs sim`.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import requests

from tests.support.deploy import (
    by_kind,
    load_compose,
    pod_spec,
    render,
    role_process,
    wait_until,
)
from tests.support.env import free_port
from tests.support.redis import RedisServer

PASSWORD = "test-only-password"


def compose_shell(text: str) -> str:
    """A compose string as the container's shell sees it: compose turns ``$$`` into ``$``."""
    assert "${" not in text, f"interpolation left in a command: {text}"
    return text.replace("$$", "$")


def sh(script: str, env: dict[str, str], timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", script], check=False, env={**os.environ, **env}, capture_output=True, text=True,
        timeout=timeout_s,
    )


def healthy(exec_form: list[str], env: dict[str, str]) -> bool:
    """Run an exec-form healthcheck (``["CMD", ...]`` without the ``CMD``)."""
    return subprocess.run(exec_form, check=False, env={**os.environ, **env}, capture_output=True).returncode == 0


def python_on_path() -> dict[str, str]:
    """The image puts its virtualenv first on PATH; so do we, for `python` and `celery`."""
    return {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


# -- Redis ----------------------------------------------------------------------------------------


def redis_scripts() -> dict[str, str]:
    compose_script = compose_shell(load_compose()["services"]["redis"]["command"][-1])
    k8s_script = pod_spec(by_kind(render("overlays/prod"), "StatefulSet")["redis"])["containers"][0]["command"][-1]
    return {"compose": compose_script, "kubernetes": k8s_script}


def start_redis(script: str, tmp_path: Path, password: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    assert script.count(" <<EOF") == 1 and script.count(" --dir /data ") == 1
    local = script.replace(" --dir /data ", f" --dir {tmp_path} ").replace(
        " <<EOF", f" --port {port} --bind 127.0.0.1 <<EOF"
    )
    process = subprocess.Popen(
        ["sh", "-c", local], env={**os.environ, "REDIS_PASSWORD": password},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    return process, port


@pytest.mark.parametrize("where", ["compose", "kubernetes"])
def test_redis_command_sets_password_aof_and_noeviction_without_the_password_in_argv(where: str, tmp_path: Path) -> None:
    process, port = start_redis(redis_scripts()[where], tmp_path, PASSWORD)
    try:
        client = redis.Redis(port=port, password=PASSWORD)
        wait_until(lambda: _pings(client), 10, "redis-server to start")
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        assert PASSWORD.encode() not in cmdline
        client.set("survives", "restart")
        process.terminate()  # what `docker stop` does: Redis flushes the AOF and exits
        assert process.wait(10) == 0
        assert list((tmp_path / "appendonlydir").glob("*.aof")), "no append-only file written"
        restarted, port = start_redis(redis_scripts()[where], tmp_path, PASSWORD)
        try:
            client = redis.Redis(port=port, password=PASSWORD)
            wait_until(lambda: _pings(client), 10, "redis-server to restart")
            assert client.get("survives") == b"restart"
        finally:
            restarted.kill()
            restarted.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.AuthenticationError):
        return False


def test_redis_healthcheck_passes_only_with_the_right_password(tmp_path: Path) -> None:
    compose = load_compose()["services"]["redis"]
    process, port = start_redis(redis_scripts()["compose"], tmp_path, PASSWORD)
    try:
        wait_until(lambda: _pings(redis.Redis(port=port, password=PASSWORD)), 10, "redis-server to start")
        check = compose_shell(compose["healthcheck"]["test"][1]).replace("redis-cli", f"redis-cli -p {port}")
        assert sh(check, {"REDISCLI_AUTH": PASSWORD}).returncode == 0
        assert sh(check, {"REDISCLI_AUTH": "wrong"}).returncode != 0
    finally:
        process.kill()
        process.wait()


def test_kubernetes_redis_refuses_to_start_with_the_placeholder_password(tmp_path: Path) -> None:
    process, _ = start_redis(redis_scripts()["kubernetes"], tmp_path, "REPLACE_ME")
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 1
    assert b"set REDIS_PASSWORD in the Secret bmrs-secrets" in stderr


# -- workers --------------------------------------------------------------------------------------


@pytest.fixture
def broker(tmp_path: Path):
    server = RedisServer(tmp_path / "redis", password=PASSWORD)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def slow_simulator():
    from worker.sim.server import BASE_PATH, start_simulator

    running = start_simulator(latency_ms=3000, scale=0.02)
    try:
        yield running.url + BASE_PATH
    finally:
        running.shutdown()


def worker_env(bmrs_env: pytest.MonkeyPatch, broker: RedisServer, base_url: str, service: dict) -> dict[str, str]:
    bmrs_env.setenv("BMRS_BROKER_URL", broker.url)
    bmrs_env.setenv("BMRS_ELEXON_BASE_URL", base_url)
    bmrs_env.setenv("BMRS_WORKER_CONCURRENCY", "1")
    bmrs_env.setenv("BMRS_LOG_LEVEL", "INFO")
    env = {k: v for k, v in service["environment"].items() if "${" not in v and k != "BMRS_DATA_DIR"}
    # In a container HOSTNAME is the host name Celery names its node after; here too.
    return {**env, **python_on_path(), "HOSTNAME": socket.gethostname()}


def test_worker_healthcheck_pings_its_own_node_and_sigterm_never_strands_a_running_chunk(
    bmrs_env: pytest.MonkeyPatch, broker: RedisServer, slow_simulator: str, data_dir: Path, tmp_path: Path
) -> None:
    from celery import Celery

    from worker.elexon import catalog
    from worker.sinks.local import LocalWarehouse

    service = load_compose()["services"]["worker"]
    env = worker_env(bmrs_env, broker, slow_simulator, service)
    assert env["REMAP_SIGTERM"] == "SIGQUIT"
    compose_check = compose_shell(service["healthcheck"]["test"][1])
    k8s_worker = pod_spec(by_kind(render("overlays/prod"), "Deployment")["worker-backfill"])["containers"][0]
    k8s_check = k8s_worker["livenessProbe"]["exec"]["command"][-1]
    assert k8s_worker["args"] == service["command"]
    log_path = tmp_path / "worker.log"

    with role_process(service["command"], log_path, env) as worker:
        wait_until(lambda: " ready." in log_path.read_text(), 60, "the worker to be ready")
        wait_until(lambda: sh(compose_check, env).returncode == 0, 30, "the compose healthcheck to pass")
        assert sh(k8s_check, env).returncode == 0
        # A ping of another node must fail, or the check proves nothing (shorter wait for that).
        other = compose_check.replace("--timeout 10", "--timeout 2")
        assert sh(other, {**env, "HOSTNAME": "not-this-worker"}).returncode != 0

        Celery(broker=broker.url).send_task(
            "worker.cluster.tasks.ingest_chunk", kwargs={"dataset": "FUELINST", "day": "2025-01-01"},
            queue="backfill", routing_key="backfill",
        )
        client = broker.client()
        wait_until(lambda: client.hlen("unacked") == 1 and client.llen("backfill") == 0, 30,
                   "the chunk to be in flight, unacknowledged")
        # What `docker stop` and the kubelet do: SIGTERM to the container's main process,
        # while the chunk is still fetching (the simulator takes 3 s per request).
        started = dt.datetime.now()
        os.kill(worker.pid, signal.SIGTERM)
        worker.wait(60)
        stopped_in = (dt.datetime.now() - started).total_seconds()

    log = log_path.read_text()
    assert "Cold shutdown" in log, log[-3000:]
    assert stopped_in < 30, f"the worker took {stopped_in:.0f}s to stop"
    # Nothing is left unacknowledged to wait out the visibility timeout: the chunk is either
    # back in its queue for another worker, or (when it finished first) loaded.
    assert client.hlen("unacked") == 0
    coverage = LocalWarehouse(data_dir).read_coverage(catalog.get("FUELINST"), [dt.date(2025, 1, 1)])
    loaded = bool(coverage) and next(iter(coverage.values())).status == "complete"
    assert (client.llen("backfill") == 1) != loaded, (client.llen("backfill"), coverage, log[-3000:])


# -- Flower and the simulator ---------------------------------------------------------------------


def test_flower_healthcheck_answers_without_credentials_and_the_api_needs_them(
    bmrs_env: pytest.MonkeyPatch, broker: RedisServer, tmp_path: Path
) -> None:
    service = load_compose()["services"]["flower"]
    port = free_port()
    args = [a.replace("0.0.0.0", "127.0.0.1") for a in service["command"]]
    args[args.index("--port") + 1] = str(port)
    bmrs_env.setenv("BMRS_BROKER_URL", broker.url)
    bmrs_env.setenv("FLOWER_BASIC_AUTH", f"admin:{PASSWORD}")
    check = [part.replace("5555", str(port)) for part in service["healthcheck"]["test"][1:]]
    env = python_on_path()
    with role_process(args, tmp_path / "flower.log", env):
        wait_until(lambda: healthy(check, env), 60, "the Flower healthcheck to pass")
        base = f"http://127.0.0.1:{port}"
        assert requests.get(f"{base}/healthcheck", timeout=5).text == "OK"
        assert requests.get(f"{base}/api/workers", timeout=5).status_code == 401
        assert requests.get(f"{base}/api/workers", auth=("admin", PASSWORD), timeout=10).status_code == 200


def test_demo_simulator_serves_the_url_env_example_points_the_cluster_at(bmrs_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.support.deploy import env_example_entries
    from worker.elexon import catalog
    from worker.elexon.client import ElexonClient

    service = load_compose()["services"]["sim"]
    port = free_port()
    args = [a.replace("0.0.0.0", "127.0.0.1") for a in service["command"]]
    args[args.index("--port") + 1] = str(port)
    faults = re.fullmatch(r"\$\{BMRS_SIM_FAULTS:-(.*)\}", service["environment"]["BMRS_SIM_FAULTS"]).group(1)
    check = [part.replace("8000", str(port)) for part in service["healthcheck"]["test"][1:]]
    base_url = {name: value for name, value, active in env_example_entries() if active}["BMRS_ELEXON_BASE_URL"]
    local_url = base_url.replace("http://sim:8000", f"http://127.0.0.1:{port}")
    env = {**python_on_path(), "BMRS_SIM_FAULTS": faults}
    with role_process(args, tmp_path / "sim.log", env):
        wait_until(lambda: healthy(check, env), 30, "the simulator healthcheck to pass")
        client = ElexonClient(local_url, retries=10, backoff_max_s=1.0)
        windows = client.fetch_chunk(catalog.get("FUELINST"), dt.date(2025, 1, 1))
        rows = [row for window in windows for row in window.rows]
        assert rows and all(isinstance(row, dict) for row in rows)
    assert "faults: none" not in (tmp_path / "sim.log").read_text(), "the demo's faults were not applied"
