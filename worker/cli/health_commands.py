"""``bmrs health ROLE``: the containers' healthchecks, one small command per role.

Why a command rather than shell or ``python -c`` one-liners in docker-compose.yml: an
exec-form healthcheck whose arguments hold no spaces runs the same on every engine (podman
4.3's Docker API splits a quoted one-liner on spaces), needs no shell and no ``$HOSTNAME``
(which ``podman exec`` does not set), and the same command serves the Kubernetes probes.
Each check exits 0 when healthy, else 1 with one line on stderr saying what is wrong.

Also here: the guard that keeps Flower from serving the cluster behind the example password of
``.env.example`` anywhere but the offline demo.
"""

from __future__ import annotations

import datetime as dt
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request

import click

from worker.cli.app import UserError, main
from worker.settings import DEFAULT_ELEXON_BASE_URL, Settings, get_settings

# The placeholder secrets of .env.example all contain this (tests/test_deploy_env.py checks it).
EXAMPLE_SECRET_MARK = "change-me"
# The IRIS listener beats about once a second; this much silence means it is stuck or gone.
LISTENER_SILENCE_S = 90.0


def _unhealthy(message: str) -> None:
    click.echo(f"unhealthy: {message}", err=True)
    sys.exit(1)


@main.group("health")
def health() -> None:
    """Exit 0 if this container's role is healthy, else 1 (compose healthchecks, k8s probes)."""


@health.command("worker")
@click.option(
    "--node",
    default=None,
    help="Celery node to ping [default: celery@<this host's name>, the name `bmrs worker` takes].",
)
@click.option("--timeout", "timeout_s", type=float, default=10.0, show_default=True)
def health_worker(node: str | None, timeout_s: float) -> None:
    """The Celery worker of this container answers a ping through the broker."""
    from worker.cluster.celery_app import app

    # socket.gethostname() is what Celery's %h expands to; $HOSTNAME may be unset (podman exec).
    node = node or f"celery@{socket.gethostname()}"
    try:
        replies = app.control.ping(destination=[node], timeout=timeout_s)
    except Exception as exc:  # broker unreachable, auth refused: all mean "not healthy"
        _unhealthy(f"cannot ping {node} through the broker: {exc}")
    if not any(node in reply for reply in replies):
        _unhealthy(f"worker {node} did not answer a ping within {timeout_s:g}s")


@health.command("beat")
def health_beat() -> None:
    """The beat of this container holds the cluster's schedule lease (so it is scheduling)."""
    from beat.scheduler import current_holder
    from worker.cluster.broker import redis_client

    try:
        holder = current_holder(redis_client(get_settings()))
    except Exception as exc:
        _unhealthy(f"cannot read the beat lease from Redis: {exc}")
    host = socket.gethostname()
    if holder is None:
        _unhealthy("no beat holds the schedule lease")
    if not holder.startswith(f"{host}:"):
        _unhealthy(f"the schedule lease is held by {holder}, not by a beat on {host}")


@health.command("listener")
@click.option(
    "--max-silence",
    "max_silence_s",
    type=float,
    default=LISTENER_SILENCE_S,
    show_default=True,
    help="Seconds since the listener's last heartbeat.",
)
def health_listener(max_silence_s: float) -> None:
    """The IRIS listener's heartbeat in Redis is recent (it beats after every receive)."""
    from iris_listener.status import LISTENER_KEY
    from worker.cluster.broker import redis_client

    try:
        seen = redis_client(get_settings()).hget(LISTENER_KEY, "seen_utc")
    except Exception as exc:
        _unhealthy(f"cannot read the IRIS listener heartbeat from Redis: {exc}")
    if seen is None:
        _unhealthy("no IRIS listener heartbeat in Redis")
    age_s = (dt.datetime.now(dt.timezone.utc) - dt.datetime.fromisoformat(seen.decode())).total_seconds()
    if age_s > max_silence_s:
        _unhealthy(f"the IRIS listener last beat {age_s:.0f}s ago (more than {max_silence_s:g}s)")


@health.command("url")
@click.argument("url")
@click.option("--timeout", "timeout_s", type=float, default=5.0, show_default=True)
def health_url(url: str, timeout_s: float) -> None:
    """GET URL answers 2xx (Flower's /healthcheck)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (a local URL)
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        _unhealthy(f"GET {url}: {exc}")
    if not 200 <= status < 300:
        _unhealthy(f"GET {url} answered {status}")


@health.command("port")
@click.argument("port", type=click.IntRange(1, 65535))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--timeout", "timeout_s", type=float, default=5.0, show_default=True)
def health_port(port: int, host: str, timeout_s: float) -> None:
    """Something accepts TCP connections on HOST:PORT (the simulator)."""
    try:
        socket.create_connection((host, port), timeout_s).close()
    except OSError as exc:
        _unhealthy(f"nothing accepts connections on {host}:{port}: {exc}")


# -- Flower's example password ---------------------------------------------------------------


def refuse_example_flower_password(settings: Settings, address: str) -> None:
    """Refuse to serve Flower beyond loopback behind .env.example's placeholder password.

    Why: `cp .env.example .env` is the quick start, so the placeholder is public; it is
    accepted only for the offline demo, recognised by what it runs on: the cluster fetches from
    a stand-in for Elexon (not the real API) that answers on the network, as the demo profile's
    simulator does. Without the demo profile the simulator's host does not exist; pointed at the
    real API, the cluster holds real data. Either way Flower stops here with one clear line.
    """
    auth = settings.flower_basic_auth
    if auth is None or address in ("127.0.0.1", "localhost", "::1"):
        return
    if EXAMPLE_SECRET_MARK not in auth.get_secret_value().partition(":")[2]:
        return
    if _is_demo_simulator(settings.elexon_base_url):
        return
    raise UserError(
        "refusing to serve Flower with the example password of .env.example: set your own "
        "FLOWER_BASIC_AUTH=user:password in .env (the example one is accepted only by the demo "
        f"profile, whose simulator serves {settings.elexon_base_url})"
    )


def _is_demo_simulator(base_url: str) -> bool:
    """The cluster fetches from a reachable stand-in for Elexon rather than the real API."""
    real = urllib.parse.urlsplit(DEFAULT_ELEXON_BASE_URL).hostname
    parts = urllib.parse.urlsplit(base_url)
    if not parts.hostname or parts.hostname == real or parts.hostname.endswith(".elexon.co.uk"):
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), 5).close()
    except OSError:
        return False
    return True
