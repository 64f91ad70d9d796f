"""A whole cluster on one machine without Docker (``bmrs up``, ``bmrs demo``).

Starts, in order: a Redis server (from the ``redis-server`` on PATH, when no
``BMRS_BROKER_URL`` is set), the simulator (``--simulate``), N workers, one beat, Flower and,
once that command exists, the IRIS listener; each a ``bmrs`` subprocess logging to
``<data dir>/logs/<name>.log``. A worker, beat, Flower or listener that dies is restarted; if
Redis or the simulator dies the whole cluster stops. Stopping (Ctrl-C or SIGTERM) goes in
reverse: listener, Flower, beat, workers (warm shutdown: running chunks finish, or are
redelivered later if they do not in time), simulator, Redis. Every child is its own process
group and is told by the kernel to exit if this supervisor dies (``PR_SET_PDEATHSIG``), so
nothing is left running.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Self

import redis
import requests
from redis.backoff import NoBackoff
from redis.retry import Retry

from worker.cluster.broker import masked_url
from worker.settings import Settings

DEFAULT_REDIS_PORT = 6379
DEFAULT_FLOWER_PORT = 5555
# A worker's stop: its bound (BMRS_WORKER_SOFT_SHUTDOWN_S, then it requeues) plus this margin.
WORKER_STOP_MARGIN_S = 15.0
OTHER_STOP_S = 10.0
READY_TIMEOUT_S = 90.0
MAX_RESTARTS = 5  # per child, within RESTART_WINDOW_S
RESTART_WINDOW_S = 60.0

Say = Callable[[str], None]


class ClusterError(RuntimeError):
    """The local cluster could not start or keep running; says which part and why."""


def bmrs_argv() -> list[str]:
    """How to run a ``bmrs`` subcommand with this same installation."""
    beside = Path(sys.executable).with_name("bmrs")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("bmrs")
    return [found] if found else [sys.executable, "-c", "from worker.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the supervisor dies (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclasses.dataclass
class Child:
    """One supervised process."""

    name: str
    argv: list[str]
    log_path: Path
    essential: bool  # if it dies, the cluster stops; otherwise it is restarted
    stop_timeout_s: float = OTHER_STOP_S
    process: subprocess.Popen[bytes] | None = None
    restarts: list[float] = dataclasses.field(default_factory=list)
    _log: IO[bytes] | None = None

    def start(self, env: dict[str, str]) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the child
        self.process = subprocess.Popen(
            self.argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Only the supervisor's main thread starts children, so preexec_fn is safe here.
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509
        )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal_group(self, signum: int) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signum)

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM: a worker finishes its running chunks first)."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]

    def finish(self, deadline: float) -> None:
        """Wait for it until the deadline, then SIGKILL the whole process group."""
        if self.process is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(max(0.0, deadline - time.monotonic()))
        # Pool processes of a worker live in its group; none may outlive it.
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        if self._log:
            self._log.close()

    def stop(self) -> None:
        self.terminate()
        self.finish(time.monotonic() + self.stop_timeout_s)


class LocalCluster:
    """Start, watch and stop the processes of a local cluster."""

    def __init__(
        self,
        settings: Settings,
        *,
        workers: int = 2,
        simulate: bool = False,
        sim_faults: str | None = None,
        sim_scale: float = 1.0,
        redis_port: int = DEFAULT_REDIS_PORT,
        flower_port: int = DEFAULT_FLOWER_PORT,
        listener: bool = False,
        say: Say = print,
    ) -> None:
        self.settings = settings
        self.workers = workers
        self.simulate = simulate
        self.sim_faults = sim_faults
        self.sim_scale = sim_scale
        self.redis_port = redis_port
        self.flower_port = flower_port
        self.listener = listener
        self.say = say
        self.data_dir = settings.data_dir.resolve()
        self.log_dir = self.data_dir / "logs"
        self.children: list[Child] = []
        self.env: dict[str, str] = {}
        self.broker_url = settings.broker_url or f"redis://127.0.0.1:{redis_port}/0"
        self.sim_url: str | None = None
        self.sim_access_log = self.log_dir / "sim-access.jsonl"
        self.flower_url = f"http://127.0.0.1:{flower_port}"
        self.flower_auth = (
            settings.flower_basic_auth.get_secret_value() if settings.flower_basic_auth else None
        )
        self.generated_flower_auth = False

    # -- starting -------------------------------------------------------------------------

    def _child_env(self) -> dict[str, str]:
        # Children inherit this process's environment (that is how settings reach them),
        # with the cluster's own addresses on top.
        env = dict(os.environ)
        env["BMRS_BROKER_URL"] = self.broker_url
        env["BMRS_DATA_DIR"] = str(self.data_dir)
        if self.sim_url:
            env["BMRS_ELEXON_BASE_URL"] = self.sim_url
        if self.flower_auth:
            env["FLOWER_BASIC_AUTH"] = self.flower_auth
            env.pop("FLOWER_BASIC_AUTH_FILE", None)
        return env

    def _add(
        self,
        name: str,
        argv: list[str],
        *,
        essential: bool = False,
        stop_timeout_s: float = OTHER_STOP_S,
    ) -> Child:
        child = Child(name, argv, self.log_dir / f"{name}.log", essential, stop_timeout_s)
        child.start(self.env)
        self.children.append(child)
        return child

    def start(self) -> None:
        """Start every process and wait until the workers and Flower answer."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if not self.flower_auth:
            self.flower_auth = f"admin:{secrets.token_urlsafe(12)}"
            self.generated_flower_auth = True
        if port_open(self.flower_port):
            raise ClusterError(
                f"port {self.flower_port} is in use; choose another with --flower-port"
            )
        self.env = self._child_env()
        self._start_redis()
        bmrs = bmrs_argv()
        if self.simulate:
            port = free_port()
            argv = [
                *bmrs,
                "sim",
                "--port",
                str(port),
                "--scale",
                str(self.sim_scale),
                "--access-log",
                str(self.sim_access_log),
            ]
            if self.sim_faults is not None:
                argv += ["--faults", self.sim_faults]
            sim = self._add("sim", argv, essential=True)
            self._wait_for(lambda: port_open(port), "the simulator", sim)
            self.sim_url = f"http://127.0.0.1:{port}/bmrs/api/v1"
            self.env = self._child_env()
        for i in range(1, self.workers + 1):
            self._add(
                f"worker{i}",
                [*bmrs, "worker", "--hostname", f"worker{i}@%h"],
                stop_timeout_s=self.settings.worker_soft_shutdown_s + WORKER_STOP_MARGIN_S,
            )
        self._add("beat", [*bmrs, "beat"])
        self._add(
            "flower", [*bmrs, "flower", "--address", "127.0.0.1", "--port", str(self.flower_port)]
        )
        if self.listener:
            self._add("listener", [*bmrs, "listen"])
        self._wait_ready()

    def _start_redis(self) -> None:
        if self.settings.broker_url:
            self.say(f"broker: {masked_url(self.broker_url)} (BMRS_BROKER_URL)")
            return
        if _answers_ping(self.broker_url):
            self.say(f"broker: the Redis already running at {self.broker_url}")
            return
        binary = shutil.which("redis-server")
        if binary is None:
            raise ClusterError(
                "redis-server not found on PATH: install it (apt-get install redis-server) "
                "or point BMRS_BROKER_URL at a running Redis"
            )
        if port_open(self.redis_port):
            raise ClusterError(
                f"port {self.redis_port} is in use by something that is not Redis; use --redis-port"
            )
        workdir = self.data_dir / "redis"
        workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            "--port",
            str(self.redis_port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(workdir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--maxmemory-policy",
            "noeviction",
        ]
        child = self._add("redis", argv, essential=True)
        self._wait_for(lambda: _answers_ping(self.broker_url), "redis-server", child)
        self.say(f"broker: redis-server on {self.broker_url} (append-only file in {workdir})")

    def _wait_for(
        self,
        check: Callable[[], bool],
        what: str,
        child: Child | None = None,
        timeout_s: float = 20.0,
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            if child is not None and not child.running:
                raise ClusterError(f"{what} exited at start; see {child.log_path}")
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"{what} did not come up in {timeout_s:.0f}s; see its log in {self.log_dir}"
                )
            time.sleep(0.2)

    def _wait_ready(self) -> None:
        from worker.cluster.celery_app import create_app

        app = create_app(self.settings.model_copy(update={"broker_url": self.broker_url}))
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            self.check_children()
            with contextlib.suppress(Exception):
                if len(app.control.ping(timeout=1.0)) >= self.workers and self._flower_ok():
                    return
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"workers or Flower not ready after {READY_TIMEOUT_S:.0f}s; see {self.log_dir}"
                )
            time.sleep(0.5)

    def _flower_ok(self) -> bool:
        user, _, password = (self.flower_auth or ":").partition(":")
        try:
            return requests.get(
                f"{self.flower_url}/api/workers", auth=(user, password), timeout=2
            ).ok
        except requests.RequestException:
            return False

    # -- running --------------------------------------------------------------------------

    def check_children(self) -> None:
        """Restart a crashed worker, beat, Flower or listener; fail if an essential one died."""
        now = time.monotonic()
        for child in self.children:
            if child.running or child.process is None:
                continue
            code = child.process.returncode
            if child.essential:
                raise ClusterError(f"{child.name} exited (code {code}); see {child.log_path}")
            child.restarts = [t for t in child.restarts if now - t < RESTART_WINDOW_S] + [now]
            if len(child.restarts) > MAX_RESTARTS:
                raise ClusterError(
                    f"{child.name} exited {MAX_RESTARTS} times within a minute (code {code}); "
                    f"see {child.log_path}"
                )
            self.say(f"{child.name} exited (code {code}); restarting it")
            child.stop()
            child.start(self.env)

    def run_until_interrupted(self) -> None:
        """Watch the children until Ctrl-C or SIGTERM."""
        while True:
            self.check_children()
            time.sleep(1.0)

    # -- stopping -------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every child, most dependent first (workers together); a second Ctrl-C kills."""
        workers = [c for c in self.children if c.name.startswith("worker")]
        others = [c for c in self.children if c not in workers]
        # Listener, Flower, beat; then every worker at once; then the simulator and Redis.
        stages = [[c] for c in reversed(others) if not c.essential] + [workers]
        stages += [[c] for c in reversed(others) if c.essential]
        try:
            for stage in stages:
                for child in stage:
                    if child.running:
                        self.say(f"stopping {child.name}")
                    child.terminate()
                deadline = time.monotonic() + max((c.stop_timeout_s for c in stage), default=0)
                for child in stage:
                    child.finish(deadline)
        except KeyboardInterrupt:
            for child in self.children:
                child.signal_group(signal.SIGKILL)
        self.children.clear()

    def __enter__(self) -> Self:
        # SIGTERM stops the cluster the way Ctrl-C does; SIGINT is set explicitly because a
        # shell starting us in the background would have left it ignored.
        signal.signal(signal.SIGTERM, _raise_interrupt)
        signal.signal(signal.SIGINT, _raise_interrupt)
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def pids(self) -> dict[str, int]:
        return {c.name: c.process.pid for c in self.children if c.process is not None}


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _answers_ping(url: str) -> bool:
    client = redis.Redis.from_url(
        url, socket_connect_timeout=0.5, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()
