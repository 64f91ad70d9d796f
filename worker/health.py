"""The containers' healthchecks: ``python -m worker.health ROLE`` (also ``bmrs health ROLE``).

Why a module rather than shell or ``python -c`` one-liners in docker-compose.yml: an exec-form
healthcheck whose arguments hold no spaces runs the same on every engine (podman 4.3's Docker
API splits a quoted one-liner on spaces), needs no shell and no ``$HOSTNAME`` (which
``podman exec`` does not set), and the same command serves the Kubernetes probes.

Why ``python -m worker.health`` rather than ``bmrs health`` in the compose file and the probes:
``bmrs`` loads every command module (about 0.5 s of CPU), this loads only what its check needs
(about 0.2 s). Healthchecks run every few seconds in every container, and on a loaded machine a
slow check times out, which the engine counts as a failure.

Each check exits 0 when healthy, else 1 with one line on stderr saying what is wrong.
"""

from __future__ import annotations

import argparse
import datetime as dt
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

# The IRIS listener beats about once a second; this much silence means it is stuck or gone.
LISTENER_SILENCE_S = 90.0


class Unhealthy(Exception):
    """What is wrong, in one line."""


def check_worker(node: str | None = None, timeout_s: float = 10.0) -> None:
    """The Celery worker of this container answers a ping through the broker.

    ``node`` defaults to ``celery@<host name>``: socket.gethostname() is what Celery's %h, and so
    the name `bmrs worker` takes, expands to ($HOSTNAME may be unset).
    """
    from celery import Celery

    from worker.cluster.broker import broker_url
    from worker.settings import get_settings

    node = node or f"celery@{socket.gethostname()}"
    # A bare app on the same broker: the pidbox a ping goes through needs nothing of the
    # cluster's configuration, and importing that would cost more than the check itself.
    app = Celery("bmrs-health", broker=broker_url(get_settings()))
    app.conf.broker_transport_options = {
        "socket_connect_timeout": 5,
        "socket_timeout": timeout_s + 5,
    }
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1)
        replies = app.control.ping(destination=[node], timeout=timeout_s)
    except Exception as exc:  # broker unreachable, auth refused: all mean "not healthy"
        raise Unhealthy(f"cannot ping {node} through the broker: {exc}") from None
    if not any(node in reply for reply in replies):
        raise Unhealthy(f"worker {node} did not answer a ping within {timeout_s:g}s")


def _redis():  # -> redis.Redis, imported lazily
    """A client that fails at once: the cluster's own one retries through outages, a check
    must not (a slow check is a failed one anyway, after its timeout)."""
    import redis

    from worker.cluster.broker import broker_url
    from worker.settings import get_settings

    url = broker_url(get_settings())
    return redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)


def check_beat() -> None:
    """The beat of this container holds the cluster's schedule lease (so it is scheduling)."""
    from worker.cluster.broker import KEY_PREFIX

    key = KEY_PREFIX + "beat:lease"  # beat.scheduler.LEASE_KEY, without loading Celery's beat
    try:
        value = _redis().get(key)
    except Exception as exc:
        raise Unhealthy(f"cannot read the beat lease from Redis: {exc}") from None
    if value is None:
        raise Unhealthy("no beat holds the schedule lease")
    holder, host = value.decode(errors="replace"), socket.gethostname()
    if not holder.startswith(f"{host}:"):
        raise Unhealthy(f"the schedule lease is held by {holder}, not by a beat on {host}")


def check_listener(max_silence_s: float = LISTENER_SILENCE_S) -> None:
    """The IRIS listener's heartbeat in Redis is recent (it beats after every receive)."""
    from iris_listener.status import LISTENER_KEY

    try:
        seen = _redis().hget(LISTENER_KEY, "seen_utc")
    except Exception as exc:
        raise Unhealthy(f"cannot read the IRIS listener heartbeat from Redis: {exc}") from None
    if seen is None:
        raise Unhealthy("no IRIS listener heartbeat in Redis")
    last = dt.datetime.fromisoformat(seen.decode())
    age_s = (dt.datetime.now(dt.UTC) - last).total_seconds()
    if age_s > max_silence_s:
        raise Unhealthy(
            f"the IRIS listener last beat {age_s:.0f}s ago (more than {max_silence_s:g}s)"
        )


def check_url(url: str, timeout_s: float = 5.0) -> None:
    """GET URL answers 2xx (Flower's /healthcheck)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # a local URL
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        raise Unhealthy(f"GET {url}: {exc}") from None
    if not 200 <= status < 300:
        raise Unhealthy(f"GET {url} answered {status}")


def check_port(port: int, host: str = "127.0.0.1", timeout_s: float = 5.0) -> None:
    """Something accepts TCP connections on HOST:PORT (the simulator)."""
    try:
        socket.create_connection((host, port), timeout_s).close()
    except OSError as exc:
        raise Unhealthy(f"nothing accepts connections on {host}:{port}: {exc}") from None


def build_parser() -> argparse.ArgumentParser:
    """The command line: one sub-command per check (``bmrs health`` offers the same)."""
    parser = argparse.ArgumentParser(
        prog="python -m worker.health", description="Exit 0 if this container's role is healthy."
    )
    roles = parser.add_subparsers(dest="role", required=True)
    worker = roles.add_parser("worker", help="a Celery ping of this container's worker node")
    worker.add_argument("--node", default=None, help="default: celery@<this host's name>")
    worker.add_argument("--timeout", type=float, default=10.0)
    roles.add_parser("beat", help="this container's beat holds the schedule lease")
    listener = roles.add_parser("listener", help="the IRIS listener's heartbeat is recent")
    listener.add_argument("--max-silence", type=float, default=LISTENER_SILENCE_S)
    url = roles.add_parser("url", help="GET URL answers 2xx")
    url.add_argument("url")
    url.add_argument("--timeout", type=float, default=5.0)
    port = roles.add_parser("port", help="TCP connect to HOST:PORT")
    port.add_argument("port", type=int)
    port.add_argument("--host", default="127.0.0.1")
    port.add_argument("--timeout", type=float, default=5.0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.role == "worker":
            check_worker(args.node, args.timeout)
        elif args.role == "beat":
            check_beat()
        elif args.role == "listener":
            check_listener(args.max_silence)
        elif args.role == "url":
            check_url(args.url, args.timeout)
        else:
            check_port(args.port, args.host, args.timeout)
    except Unhealthy as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
