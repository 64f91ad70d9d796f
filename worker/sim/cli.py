"""``bmrs sim``: serve the Elexon simulator in the foreground."""

from __future__ import annotations

import signal

import click

from worker.cli.app import UserError, main
from worker.settings import get_settings
from worker.sim.faults import FaultSpecError, parse_faults
from worker.sim.server import make_server
from worker.sim.window_limits import WindowLimitError, format_limits, parse_window_limits


@main.command("sim")
@click.option("--port", type=int, required=True, help="Port to listen on (0 picks a free one).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of all generated data and faults."
)
@click.option(
    "--latency-ms", type=float, default=0, show_default=True, help="Delay added to every response."
)
@click.option(
    "--faults",
    default=None,
    help="Fault spec, e.g. 429=0.1,500=0.05,slow=0.05,truncate=0.02,dup=0.1,revise=0.05,"
    "outside=0.05,poison=BOD@2025-06-01 [default: $BMRS_SIM_FAULTS].",
)
@click.option(
    "--scale",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Size of the BM unit fleet (BOD, BOALF, PN, QPN, MELS, MILS) relative to the real one.",
)
@click.option(
    "--window-limit",
    "window_limit",
    multiple=True,
    metavar="CODE=DURATION",
    help="Refuse wider windows of this dataset with a 400, e.g. BOD=1h (repeatable; "
    "default $BMRS_SIM_WINDOW_LIMITS, a comma list). Without it only the spec's limits apply.",
)
@click.option(
    "--access-log",
    type=click.Path(dir_okay=False),
    default=None,
    help="Append one JSON line per request here.",
)
def sim(
    port: int,
    host: str,
    seed: int,
    latency_ms: float,
    faults: str | None,
    scale: float,
    window_limit: tuple[str, ...],
    access_log: str | None,
) -> None:
    """Serve a deterministic stand-in for the Elexon Insights API (offline development)."""
    spec_text = get_settings().sim_faults if faults is None else faults
    try:
        spec = parse_faults(spec_text)
    except FaultSpecError as exc:
        raise UserError(f"--faults: {exc}") from None
    try:
        limits = parse_window_limits(window_limit or get_settings().sim_window_limits)
    except WindowLimitError as exc:
        raise UserError(f"--window-limit: {exc}") from None
    server = make_server(
        host, port, seed, latency_ms, spec, scale, access_log, window_limit=limits
    )
    click.echo(
        f"Elexon simulator on http://{host}:{server.server_port} "
        f"(seed {seed}, scale {scale:g}, faults: {str(spec) or 'none'}, "
        f"window limits: {format_limits(limits) or 'the spec only'})"
    )
    # `docker stop` and the kubelet send SIGTERM: stop as cleanly as on Ctrl-C (exit 0, not 143).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
