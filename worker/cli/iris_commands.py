"""IRIS commands: ``bmrs listen`` (the listener process) and ``bmrs sim-iris`` (its feed)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click
import orjson

from worker.cli.app import UserError, datasets_option, main
from worker.logs import configure as configure_logs
from worker.settings import get_settings


@main.command("listen")
@click.option(
    "--source",
    type=click.Choice(["auto", "servicebus", "folder"]),
    default="auto",
    show_default=True,
    help="auto: Service Bus when IRIS credentials are set, else the folder BMRS_IRIS_DIR.",
)
@click.option(
    "--log-every", type=float, default=60.0, show_default=True, help="Seconds between count logs."
)
def listen_command(source: str, log_every: float) -> None:
    """Receive IRIS messages and hand them to the workers' iris queue (runs until SIGTERM)."""
    from iris_listener.run import listener_from_settings, run_until_signalled, source_from_settings
    from iris_listener.servicebus import IrisConfigError, servicebus_configured

    settings = get_settings()
    configure_logs(settings)
    if source == "servicebus" and not servicebus_configured(settings):
        raise UserError(
            "--source servicebus needs BMRS_IRIS_CONNECTION_STRING, or BMRS_IRIS_TENANT_ID, "
            "BMRS_IRIS_CLIENT_ID, BMRS_IRIS_CLIENT_SECRET and BMRS_IRIS_QUEUE"
        )
    try:
        chosen = source_from_settings(settings, folder=source == "folder")
    except IrisConfigError as exc:
        raise UserError(str(exc)) from None
    run_until_signalled(listener_from_settings(settings, chosen, log_every_s=log_every))


@main.command("sim-iris")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder to write <DATASET>/<message_id> files into (the listener's BMRS_IRIS_DIR).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    required=True,
    help="Messages per minute (the real feed peaks near 200).",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same feed.")
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=None,
    help="Stop after this many seconds (default: until Ctrl-C).",
)
@click.option(
    "--poison",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Probability a message is poison (not JSON, unknown dataset, bad rows).",
)
@click.option(
    "--dup",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Probability a message is sent again (as a redelivery or a duplicate).",
)
@click.option(
    "--datasets",
    default=None,
    help="Comma-separated datasets the feed carries [default: FUELINST,FREQ,BOALF,PN,MELS,MID].",
)
def sim_iris_command(
    out: Path,
    rate: float,
    seed: int,
    duration: float | None,
    poison: float,
    dup: float,
    datasets: str | None,
) -> None:
    """Emit simulated IRIS messages into a folder, in the official client's layout."""
    from worker.sim.iris import DEFAULT_DATASETS, IrisFeed, run_feed

    codes = tuple(d.code for d in datasets_option((datasets,))) if datasets else DEFAULT_DATASETS
    feed = IrisFeed(out, seed=seed, datasets=codes, poison=poison, dup=dup)
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    click.echo(f"IRIS feed: {rate:g} messages/min into {out}", err=True)
    summary = run_feed(feed, rate_per_min=rate, duration_s=duration, should_stop=stop.is_set)
    click.echo(orjson.dumps(summary).decode())
