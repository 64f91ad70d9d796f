"""The containers' commands and healthchecks, run for real on this machine (no Docker here).

Each test takes a command or healthcheck exactly as docker-compose.yml or the rendered
Kubernetes manifests give it, changes only what a container would have differently (a free port
instead of the fixed one, a temp dir instead of /data, 127.0.0.1 instead of 0.0.0.0), and runs
it against real processes: redis-server, a `bmrs worker`, `bmrs flower`, `bmrs sim`.
"""

from __future__ import annotations

import datetime as dt
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
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
    assert not re.search(r"(?<!\$)\$\{", text), f"interpolation left in a command: {text}"
    return text.replace("$$", "$")


def sh(script: str, env: dict[str, str], timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", script], check=False, env={**os.environ, **env}, capture_output=True, text=True,
        timeout=timeout_s,
    )


def run_healthcheck(test: list[str], env: dict[str, str], replace: tuple[str, str] = ("", "")) -> subprocess.CompletedProcess[str]:
    """Run a compose healthcheck as the engine would: CMD-SHELL through sh, CMD exec form.

    ``replace`` swaps a fixed port for the free one the test uses.
    """
    old, new = replace
    if test[0] == "CMD-SHELL":
        return sh(compose_shell(test[1]).replace(old, new) if old else compose_shell(test[1]), env)
    assert test[0] == "CMD", test
    argv = [part.replace(old, new) if old else part for part in test[1:]]
    if argv[0] == "bmrs":
        argv[0] = str(Path(sys.executable).parent / "bmrs")
    elif argv[0] == "python":  # the image's python is its virtualenv's
        argv[0] = sys.executable
    return subprocess.run(argv, check=False, env={**os.environ, **env}, capture_output=True, text=True, timeout=60)


def python_on_path() -> dict[str, str]:
    """The image puts its virtualenv first on PATH; so do we, for `python` and `celery`."""
    return {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


# -- Redis ----------------------------------------------------------------------------------------


def redis_scripts() -> dict[str, str]:
    compose_script = compose_shell(load_compose()["services"]["redis"]["command"][-1])
    k8s_script = pod_spec(by_kind(render("overlays/prod"), "StatefulSet")["redis"])["containers"][0]["command"][-1]
    return {"compose": compose_script, "kubernetes": k8s_script}


@pytest.fixture
def redis_dir():
    """Redis's /data: a folder under /tmp itself, so that the redis user the compose script
    drops to (when the tests run as root) can reach it; pytest's tmp_path is root's alone."""
    path = Path(tempfile.mkdtemp(prefix="bmrs-redis-data-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def start_redis(script: str, tmp_path: Path, password: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    assert script.count(" <<EOF") == 1 and script.count(" --dir /data ") == 1
    local = script.replace("/data", str(tmp_path)).replace(
        " <<EOF", f" --port {port} --bind 127.0.0.1 <<EOF"
    )
    process = subprocess.Popen(
        ["sh", "-c", local], env={**os.environ, "REDIS_PASSWORD": password},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    return process, port


@pytest.mark.parametrize("where", ["compose", "kubernetes"])
def test_redis_command_sets_password_aof_and_noeviction_without_the_password_in_argv(where: str, redis_dir: Path) -> None:
    tmp_path = redis_dir
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
        assert b"redis-server" in cmdline, "sh must exec redis-server (it gets SIGTERM itself)"
        # Started as root (as the container's sh is), it runs as the redis user.
        if os.getuid() == 0:
            uid = int(re.search(r"^Uid:\s+(\d+)", Path(f"/proc/{process.pid}/status").read_text(), re.MULTILINE).group(1))
            assert uid == pwd.getpwnam("redis").pw_uid if where == "compose" else uid == 0, uid
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


def test_redis_healthcheck_passes_only_with_the_right_password(redis_dir: Path) -> None:
    tmp_path = redis_dir
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


def test_kubernetes_redis_refuses_to_start_with_the_placeholder_password(redis_dir: Path) -> None:
    tmp_path = redis_dir
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
    env = {k: v for k, v in service["environment"].items() if v is not None and "${" not in v and k != "BMRS_DATA_DIR"}
    # No HOSTNAME: `podman exec` does not set it, and the healthcheck must not need it.
    return {**{k: v for k, v in env.items() if k != "HOSTNAME"}, **python_on_path()}


def test_worker_healthcheck_pings_its_own_node_and_a_stop_lets_the_running_chunk_finish(
    bmrs_env: pytest.MonkeyPatch, broker: RedisServer, slow_simulator: str, data_dir: Path, tmp_path: Path
) -> None:
    service = load_compose()["services"]["worker"]
    env = worker_env(bmrs_env, broker, slow_simulator, service)
    compose_check = service["healthcheck"]["test"]
    k8s_worker = pod_spec(by_kind(render("overlays/prod"), "Deployment")["worker-backfill"])["containers"][0]
    k8s_check = ["CMD", *k8s_worker["livenessProbe"]["exec"]["command"]]
    assert k8s_worker["args"] == service["command"]
    log_path = tmp_path / "worker.log"

    with role_process(service["command"], log_path, env) as worker:
        wait_until(lambda: " ready." in log_path.read_text(), 60, "the worker to be ready")
        wait_until(lambda: run_healthcheck(compose_check, env).returncode == 0, 30, "the compose healthcheck to pass")
        assert run_healthcheck(k8s_check, env).returncode == 0
        # A ping of another node must fail, or the check proves nothing (shorter wait for that).
        other = run_healthcheck([*compose_check, "--node", "celery@not-this-worker", "--timeout", "2"], env)
        assert other.returncode == 1 and "did not answer" in other.stderr, other.stderr
        stopped_in = _stop_while_fetching(worker, broker)

    # The default bound (60 s) is far longer than the chunk (one 3 s request): the worker
    # exits as soon as the chunk is loaded and acknowledged, not after the whole bound.
    log = log_path.read_text()
    assert stopped_in < 30, f"the worker took {stopped_in:.0f}s to stop: {log[-3000:]}"
    assert "get 60s to finish" in log, log[-3000:]
    assert _outcome(broker, data_dir) == "loaded", log[-3000:]


def test_a_stopped_worker_requeues_a_chunk_still_running_after_the_bound(
    bmrs_env: pytest.MonkeyPatch, broker: RedisServer, slow_simulator: str, data_dir: Path, tmp_path: Path
) -> None:
    service = load_compose()["services"]["worker"]
    env = {**worker_env(bmrs_env, broker, slow_simulator, service), "BMRS_WORKER_SOFT_SHUTDOWN_S": "0.5"}
    log_path = tmp_path / "worker.log"
    with role_process(service["command"], log_path, env) as worker:
        wait_until(lambda: " ready." in log_path.read_text(), 60, "the worker to be ready")
        stopped_in = _stop_while_fetching(worker, broker)

    log = log_path.read_text()
    assert "requeueing them" in log, log[-3000:]
    assert stopped_in < 30, f"the worker took {stopped_in:.0f}s to stop: {log[-3000:]}"
    assert _outcome(broker, data_dir) == "requeued", log[-3000:]


def _stop_while_fetching(worker: subprocess.Popen[bytes], broker: RedisServer) -> float:
    """Send one FUELINST chunk, then SIGTERM the worker (what `docker stop` and the kubelet
    do) once the chunk holds its fetch lock, i.e. is running; seconds until the worker exited."""
    from celery import Celery

    from worker.cluster.fetch_lock import lock_key

    Celery(broker=broker.url).send_task(
        "worker.cluster.tasks.ingest_chunk", kwargs={"dataset": "FUELINST", "day": "2025-01-01"},
        queue="backfill", routing_key="backfill",
    )
    client = broker.client()
    wait_until(lambda: client.exists(lock_key("FUELINST", dt.date(2025, 1, 1))), 30, "the chunk to be fetching")
    started = time.monotonic()
    os.kill(worker.pid, signal.SIGTERM)
    worker.wait(60)
    return time.monotonic() - started


def _outcome(broker: RedisServer, data_dir: Path) -> str:
    """Where the chunk ended: exactly one of loaded and requeued, and never left unacknowledged
    to wait out the visibility timeout."""
    from worker.elexon import catalog
    from worker.sinks.local import LocalWarehouse

    client = broker.client()
    assert client.hlen("unacked") == 0
    coverage = LocalWarehouse(data_dir).read_coverage(catalog.get("FUELINST"), [dt.date(2025, 1, 1)])
    loaded = bool(coverage) and next(iter(coverage.values())).status == "complete"
    requeued = client.llen("backfill") == 1
    assert loaded != requeued, (loaded, requeued)
    return "loaded" if loaded else "requeued"


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
    test = service["healthcheck"]["test"]
    env = python_on_path()
    with role_process(args, tmp_path / "flower.log", env):
        wait_until(lambda: run_healthcheck(test, env, ("5555", str(port))).returncode == 0, 60,
                   "the Flower healthcheck to pass")
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
    test = service["healthcheck"]["test"]
    base_url = {name: value for name, value, active in env_example_entries() if active}["BMRS_ELEXON_BASE_URL"]
    local_url = base_url.replace("http://sim:8000", f"http://127.0.0.1:{port}")
    env = {**python_on_path(), "BMRS_SIM_FAULTS": faults}
    with role_process(args, tmp_path / "sim.log", env) as sim:
        wait_until(lambda: run_healthcheck(test, env, ("8000", str(port))).returncode == 0, 30,
                   "the simulator healthcheck to pass")
        client = ElexonClient(local_url, retries=10, backoff_max_s=1.0)
        windows = client.fetch_chunk(catalog.get("FUELINST"), dt.date(2025, 1, 1))
        rows = [row for window in windows for row in window.rows]
        assert rows and all(isinstance(row, dict) for row in rows)
        # `docker stop`: SIGTERM, and a clean exit (not 143, "killed by SIGTERM").
        os.kill(sim.pid, signal.SIGTERM)
        assert sim.wait(10) == 0
        assert run_healthcheck(test, env, ("8000", str(port))).returncode != 0
    assert "faults: none" not in (tmp_path / "sim.log").read_text(), "the demo's faults were not applied"


# -- beat, the IRIS listener, Flower's example password --------------------------------------------


def role_env(bmrs_env: pytest.MonkeyPatch, broker: RedisServer, service: dict) -> dict[str, str]:
    bmrs_env.setenv("BMRS_BROKER_URL", broker.url)
    env = {k: v for k, v in service["environment"].items() if v is not None and "${" not in v and k != "BMRS_DATA_DIR"}
    return {**env, **python_on_path()}


def test_beat_healthcheck_passes_only_while_this_beat_holds_the_schedule_lease(
    bmrs_env: pytest.MonkeyPatch, broker: RedisServer, tmp_path: Path
) -> None:
    service = load_compose()["services"]["beat"]
    env = role_env(bmrs_env, broker, service)
    test = service["healthcheck"]["test"]
    before = run_healthcheck(test, env)
    assert before.returncode == 1 and "no beat holds" in before.stderr, before.stderr
    log_path = tmp_path / "beat.log"
    with role_process(service["command"], log_path, env) as beat:
        wait_until(lambda: run_healthcheck(test, env).returncode == 0, 60, "the beat healthcheck to pass")
        # Another host's lease (a beat elsewhere) is not this container's.
        from beat.scheduler import LEASE_KEY

        client = broker.client()
        token = client.get(LEASE_KEY)
        client.set(LEASE_KEY, b"elsewhere:1:abc", keepttl=True)
        other = run_healthcheck(test, env)
        assert other.returncode == 1 and "elsewhere:1:abc" in other.stderr, other.stderr
        client.set(LEASE_KEY, token, keepttl=True)
        os.kill(beat.pid, signal.SIGTERM)
        beat.wait(30)
    # A stopped beat gives its lease back: unhealthy again.
    assert run_healthcheck(test, env).returncode == 1, log_path.read_text()[-2000:]


def test_listener_healthcheck_follows_its_heartbeat(
    bmrs_env: pytest.MonkeyPatch, broker: RedisServer, data_dir: Path, tmp_path: Path
) -> None:
    service = load_compose()["services"]["iris-listener"]
    env = role_env(bmrs_env, broker, service)
    test = service["healthcheck"]["test"]
    assert run_healthcheck(test, env).returncode == 1
    with role_process(service["command"], tmp_path / "listen.log", env) as listener:
        wait_until(lambda: run_healthcheck(test, env).returncode == 0, 60, "the listener healthcheck to pass")
        os.kill(listener.pid, signal.SIGTERM)
        listener.wait(30)
    time.sleep(1.5)
    stale = run_healthcheck([*test, "--max-silence", "1"], env)
    assert stale.returncode == 1 and "last beat" in stale.stderr, stale.stderr


def test_flower_refuses_the_example_password_unless_the_cluster_is_fed_by_the_simulator(
    bmrs_env: pytest.MonkeyPatch, broker: RedisServer, tmp_path: Path
) -> None:
    from tests.support.deploy import env_example_entries
    from worker.cli.health_commands import refuse_example_flower_password
    from worker.settings import Settings
    from worker.sim.server import BASE_PATH, start_simulator

    example = {name: value for name, value, active in env_example_entries() if active}["FLOWER_BASIC_AUTH"]
    service = load_compose()["services"]["flower"]
    bmrs_env.setenv("FLOWER_BASIC_AUTH", example)
    env = role_env(bmrs_env, broker, service)
    # Without the demo profile the simulator's host does not resolve: Flower stops at once.
    bmrs_env.setenv("BMRS_ELEXON_BASE_URL", "http://sim.invalid:8000" + BASE_PATH)
    port = free_port()
    refused = subprocess.run(
        [str(Path(sys.executable).parent / "bmrs"), "flower", "--address", "0.0.0.0", "--port", str(port)],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
    )
    assert refused.returncode == 2, refused.stderr
    assert "example password" in refused.stderr and "change-me" not in refused.stderr, refused.stderr
    # Against the real API too.
    with pytest.raises(click.ClickException):
        refuse_example_flower_password(Settings(elexon_base_url="https://data.elexon.co.uk/bmrs/api/v1"), "0.0.0.0")
    # With a simulator answering at the base URL (the demo), or on loopback only, it is accepted.
    running = start_simulator()
    try:
        refuse_example_flower_password(Settings(elexon_base_url=running.url + BASE_PATH), "0.0.0.0")
    finally:
        running.shutdown()
    refuse_example_flower_password(Settings(elexon_base_url="https://data.elexon.co.uk/bmrs/api/v1"), "127.0.0.1")
    # The Kubernetes prod Secret's placeholder is refused the same way.
    bmrs_env.setenv("FLOWER_BASIC_AUTH", "admin:REPLACE_ME")
    with pytest.raises(click.ClickException):
        refuse_example_flower_password(Settings(elexon_base_url="https://data.elexon.co.uk/bmrs/api/v1"), "0.0.0.0")
    # Any other password is accepted anywhere.
    bmrs_env.setenv("FLOWER_BASIC_AUTH", "admin:" + "x" * 24)
    refuse_example_flower_password(Settings(elexon_base_url="https://data.elexon.co.uk/bmrs/api/v1"), "0.0.0.0")
