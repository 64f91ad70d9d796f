"""``bmrs health ROLE``: the containers' healthchecks (:mod:`worker.health`) as bmrs commands.

The compose file and the Kubernetes probes run the same checks as ``python -m worker.health
ROLE``, which loads less (see there why). Also here: the guard that keeps Flower from serving
the cluster behind the example password of ``.env.example`` anywhere but the offline demo.
"""

from __future__ import annotations

import socket
import sys
import urllib.parse
from collections.abc import Callable

import click

from worker import health as checks
from worker.cli.app import UserError, main
from worker.settings import DEFAULT_ELEXON_BASE_URL, Settings

# The placeholder secrets of .env.example all contain "change-me" (tests/test_deploy_env.py
# checks it); those of the Kubernetes prod Secret "REPLACE_ME".
EXAMPLE_SECRET_MARKS = ("change-me", "REPLACE_ME")


def _run(check: Callable[[], None]) -> None:
    try:
        check()
    except checks.Unhealthy as exc:
        click.echo(f"unhealthy: {exc}", err=True)
        sys.exit(1)


@main.group("health")
def health() -> None:
    """Exit 0 if this container's role is healthy, else 1 (= python -m worker.health ROLE)."""


@health.command("worker")
@click.option(
    "--node",
    default=None,
    help="Celery node to ping [default: celery@<this host's name>, the name `bmrs worker` takes].",
)
@click.option("--timeout", "timeout_s", type=float, default=10.0, show_default=True)
def health_worker(node: str | None, timeout_s: float) -> None:
    """The Celery worker of this container answers a ping through the broker."""
    _run(lambda: checks.check_worker(node, timeout_s))


@health.command("beat")
def health_beat() -> None:
    """The beat of this container holds the cluster's schedule lease (so it is scheduling)."""
    _run(checks.check_beat)


@health.command("listener")
@click.option(
    "--max-silence",
    "max_silence_s",
    type=float,
    default=checks.LISTENER_SILENCE_S,
    show_default=True,
    help="Seconds since the listener's last heartbeat.",
)
def health_listener(max_silence_s: float) -> None:
    """The IRIS listener's heartbeat in Redis is recent (it beats after every receive)."""
    _run(lambda: checks.check_listener(max_silence_s))


@health.command("url")
@click.argument("url")
@click.option("--timeout", "timeout_s", type=float, default=5.0, show_default=True)
def health_url(url: str, timeout_s: float) -> None:
    """GET URL answers 2xx (Flower's /healthcheck)."""
    _run(lambda: checks.check_url(url, timeout_s))


@health.command("port")
@click.argument("port", type=click.IntRange(1, 65535))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--timeout", "timeout_s", type=float, default=5.0, show_default=True)
def health_port(port: int, host: str, timeout_s: float) -> None:
    """Something accepts TCP connections on HOST:PORT (the simulator)."""
    _run(lambda: checks.check_port(port, host, timeout_s))


# -- Flower's example password ---------------------------------------------------------------


def refuse_example_flower_password(settings: Settings, address: str) -> None:
    """Refuse to serve Flower beyond loopback behind a placeholder password (.env.example's,
    or the Kubernetes prod Secret's REPLACE_ME).

    Why: `cp .env.example .env` is the quick start, so the placeholder is public; it is
    accepted only for the offline demo, recognised by what it runs on: the cluster fetches from
    a stand-in for Elexon (not the real API) that answers on the network, as the demo profile's
    simulator does. Without the demo profile the simulator's host does not exist; pointed at the
    real API, the cluster holds real data. Either way Flower stops here with one clear line.
    """
    auth = settings.flower_basic_auth
    if auth is None or address in ("127.0.0.1", "localhost", "::1"):
        return
    password = auth.get_secret_value().partition(":")[2]
    if not any(mark in password for mark in EXAMPLE_SECRET_MARKS):
        return
    if _is_demo_simulator(settings.elexon_base_url):
        return
    raise UserError(
        "refusing to serve Flower with the example password (a placeholder of .env.example or "
        "of the Kubernetes Secret): set your own FLOWER_BASIC_AUTH=user:password; a placeholder "
        "is accepted only by the offline demo, whose simulator answers at BMRS_ELEXON_BASE_URL "
        f"(now {settings.elexon_base_url}, which does not)"
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
