"""Commands that run or drive the Celery cluster.

Roles: ``bmrs worker``, ``bmrs beat``, ``bmrs flower``, and ``bmrs up`` / ``bmrs demo`` for a
whole local cluster. Driving it: ``bmrs backfill``, ``bmrs job``, ``bmrs status``, ``bmrs config``
(and ``bmrs gaps --fill``, beside ``gaps`` in data_commands). The Celery app is imported only
inside the commands, so that ``bmrs --help`` and data commands never touch the broker.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from typing import TYPE_CHECKING, Any

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from worker.cli.app import UserError, check_earliest, datasets_option, date_range, main
from worker.elexon.settlement import current_settlement_day
from worker.settings import Settings, get_settings, masked

if TYPE_CHECKING:
    from celery import Celery

    from worker.cluster.jobs import JobProgress, JobStore

stderr = Console(stderr=True, soft_wrap=True)
DEMO_DATASETS = "FUELINST,FREQ,MID,BOALF,DISEBSP"
DEMO_FAULTS = "429=0.05,500=0.02,truncate=0.01,dup=0.1"


def _emit_json(value: Any) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def _app(settings: Settings) -> Celery:
    """A Celery app for these settings (sending and inspecting; tasks run in workers)."""
    from beat.schedule import ScheduleError
    from worker.cluster.celery_app import TimingError, create_app

    try:
        return create_app(settings)
    except (TimingError, ScheduleError) as exc:
        raise UserError(str(exc)) from None


def _store(settings: Settings) -> JobStore:
    """The job store, after checking the broker answers (a clear error instead of a long retry)."""
    from worker.cluster.broker import broker_problem, redis_client
    from worker.cluster.jobs import JobStore

    problem = broker_problem(settings)
    if problem:
        raise UserError(f"{problem}; start the cluster with `bmrs up`, or set BMRS_BROKER_URL")
    return JobStore(redis_client(settings))


# -- driving the cluster --------------------------------------------------------------------


@main.command("backfill")
@click.argument("datasets", nargs=-1, required=True)
@click.option("--start", required=True, help="First settlement day, YYYY-MM-DD.")
@click.option("--end", required=True, help="Last settlement day (inclusive).")
@click.option("--wait", is_flag=True, help="Show progress per dataset until done, then a summary.")
def backfill_command(datasets: tuple[str, ...], start: str, end: str, wait: bool) -> None:
    """Enqueue every dataset-day of a range on the cluster; prints the job id.

    DATASETS may be comma-separated or repeated, e.g. FUELINST,FREQ MID. Re-running the
    same range is safe: loads are idempotent and days already fetched are not refetched twice
    at once.
    """
    from worker.cluster.dispatch import submit_backfill

    settings = get_settings()
    chosen = datasets_option(datasets)
    first, last = date_range(None, start, end)
    check_earliest(chosen, first)
    today = current_settlement_day()
    if last > today:
        raise UserError(
            f"--end {last} is in the future (today is {today} in London); the API has nothing for it yet"
        )
    store = _store(settings)
    app = _app(settings)
    job_id = submit_backfill(app, store, chosen, first, last)
    chunks = store.progress(job_id).total("chunks")
    stderr.print(
        f"job {job_id}: {chunks} chunks ({', '.join(d.code for d in chosen)}, {first} to {last}) enqueued; "
        f"follow it with `bmrs job {job_id}`"
    )
    click.echo(job_id)
    if wait:
        _warn_if_no_workers(app)
        progress = watch_job(store, job_id)
        _print_summary(progress)
        if progress.failures:
            sys.exit(1)


def _warn_if_no_workers(app: Celery) -> None:
    try:
        alive = app.control.ping(timeout=1.0)
    except Exception:  # noqa: BLE001 - a warning only; the wait itself reports broker trouble
        return
    if not alive:
        stderr.print(
            "[yellow]no worker answers: chunks wait in the queue until one starts "
            "(`bmrs worker`, or `bmrs up`)[/yellow]"
        )


def watch_job(
    store: JobStore, job_id: str, *, poll_s: float = 0.5, console: Console = stderr
) -> JobProgress:
    """A live bar per dataset until the job has no pending chunk; returns its final progress.

    Ctrl-C stops watching, not the job.
    """
    progress = store.progress(job_id)
    columns = (
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]}"),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=console, transient=False) as bars:
            ids = {
                code: bars.add_task(code, total=p.chunks, completed=p.ended, failed="")
                for code, p in progress.datasets.items()
            }
            while True:
                progress = store.progress(job_id)
                for code, p in progress.datasets.items():
                    failed = f"[red]{p.failed} failed[/red]" if p.failed else ""
                    bars.update(ids[code], completed=p.ended, failed=failed)
                if progress.finished:
                    break
                time.sleep(poll_s)
    except KeyboardInterrupt:
        console.print(f"stopped watching; job {job_id} goes on in the cluster: `bmrs job {job_id}`")
        sys.exit(130)
    return store.progress(job_id, detail=True)


def _print_summary(progress: JobProgress, console: Console | None = None) -> None:
    console = console or Console(soft_wrap=True)
    table = Table(
        "dataset",
        "chunks",
        "done",
        "failed",
        "cancelled",
        "rows",
        "duplicates dropped",
        title=f"job {progress.job_id} ({progress.kind})"
        + (" - cancelled" if progress.cancelled else ""),
    )
    for code, p in progress.datasets.items():
        table.add_row(
            code,
            str(p.chunks),
            str(p.done),
            str(p.failed),
            str(p.cancelled),
            f"{p.rows:,}",
            f"{p.duplicates_dropped:,}",
        )
    table.add_row(
        "total",
        *(
            f"{progress.total(f):,}"
            for f in ("chunks", "done", "failed", "cancelled", "rows", "duplicates_dropped")
        ),
        style="bold",
    )
    console.print(table)
    if progress.statuses:
        console.print(
            "days loaded: " + ", ".join(f"{n} {s}" for s, n in sorted(progress.statuses.items()))
        )
    for failure in progress.failures[:20]:
        console.print(f"[red]FAILED[/red] {failure.dataset} {failure.date}: {failure.reason}")
    if len(progress.failures) > 20:
        console.print(
            f"... and {len(progress.failures) - 20} more failures (`bmrs job {progress.job_id} --json`)"
        )


@main.command("job")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable progress.")
@click.option("--cancel", is_flag=True, help="Skip the job's chunks not yet started.")
def job_command(job_id: str, as_json: bool, cancel: bool) -> None:
    """Progress of a job: chunks done, failed and pending per dataset, rows, failures."""
    from worker.cluster.jobs import UnknownJobError

    store = _store(get_settings())
    try:
        if cancel:
            moved = store.cancel(job_id)
            stderr.print(
                f"job {job_id} cancelled: {moved} pending chunks will not be fetched "
                "(chunks already running finish)"
            )
        progress = store.progress(job_id, detail=True)
    except UnknownJobError as exc:
        raise UserError(str(exc)) from None
    if as_json:
        _emit_json(progress.to_json())
        return
    _print_summary(progress)
    state = "finished" if progress.finished else f"{progress.total('pending')} chunks pending"
    Console().print(f"{state}; created {progress.created_utc}")


@main.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable status.")
def status_command(as_json: bool) -> None:
    """Workers alive, queue depths, the beat, per-dataset freshness and last error, recent jobs."""
    from worker.cluster.cluster_status import gather
    from worker.sinks import open_sink

    settings = get_settings()
    status = gather(settings, _app(settings), open_sink(settings))
    if as_json:
        _emit_json(status)
    else:
        _print_status(status)
    if not status["broker"]["reachable"]:
        sys.exit(1)


def _age(seconds: int | None) -> str:
    if seconds is None:
        return "no rows"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def _print_status(status: dict[str, Any]) -> None:
    console = Console(soft_wrap=True)
    broker = status["broker"]
    if broker["reachable"]:
        console.print(f"broker {broker['url']}: reachable")
    else:
        console.print(f"[red]{broker['error']}[/red]")
    if broker["reachable"]:
        console.print(
            f"workers: {len(status['workers'])}"
            + (
                ""
                if status["workers"]
                else " [yellow](none answering: start `bmrs worker` or `bmrs up`)[/yellow]"
            )
        )
        for worker in status["workers"]:
            console.print(
                f"  {worker['name']}: queues {','.join(worker['queues'])}, running {worker['active']}"
            )
        depths = ", ".join(f"{q} {n}" for q, n in status["queues"].items())
        console.print(f"queues waiting: {depths}; taken by workers: {status['unacked']}")
        console.print(f"beat: {status['beat'] or '[yellow]none holds the schedule[/yellow]'}")
    table = Table("dataset", "newest row (UTC)", "age", "threshold", "fresh", "last error")
    for entry in status["datasets"]:
        error = entry["last_error"]
        table.add_row(
            entry["dataset"],
            entry["newest_utc"] or "",
            _age(entry["age_s"]),
            _age(entry["threshold_s"]),
            "[red]stale[/red]" if entry["stale"] else "[green]yes[/green]",
            f"{error['date']}: {error['reason']}" if error else "",
        )
    console.print(table)
    _print_iris(console, status.get("iris"))
    for job in status["jobs"]:
        state = "finished" if job["finished"] else f"{job['pending']} pending"
        console.print(
            f"job {job['job_id']} ({job['kind']}, {job['created_utc']}): {job['done']} done, "
            f"{job['failed']} failed, {state}"
        )


def _print_iris(console: Console, iris: dict[str, Any] | None) -> None:
    """The IRIS listener and, per dataset, its last message time and rate."""
    if iris is None:
        return
    listener = iris["listener"]
    if not listener and not iris["datasets"]:
        console.print("IRIS: no listener has reported (start `bmrs listen`, or `bmrs up`)")
        return
    source = listener.get("source", "?") if listener else "not running"
    console.print(f"IRIS listener: {source}" + (f" [red]{iris['alert']}[/red]" if iris["alert"] else ""))
    table = Table("IRIS dataset", "last message (UTC)", "age", "messages/min")
    for code, entry in iris["datasets"].items():
        table.add_row(code, entry["last_message_utc"], _age(int(entry["age_s"])), f"{entry['messages_per_min']:g}")
    if iris["datasets"]:
        console.print(table)


@main.command("config")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable settings and schedule.")
def config_command(as_json: bool) -> None:
    """The effective settings (secrets masked) and the beat schedule they give."""
    from beat.schedule import ScheduleError, plain_entries

    settings = get_settings()
    shown = masked(settings)
    try:
        schedule = plain_entries(settings)
    except ScheduleError as exc:
        raise UserError(str(exc)) from None
    if as_json:
        _emit_json({"settings": shown, "schedule": schedule})
        return
    for name, value in shown.items():
        click.echo(f"{name}={value}")
    click.echo("\nbeat schedule:")
    for name, entry in schedule.items():
        when = f"cron {entry['cron']}" if "cron" in entry else f"every {entry['every']:g}s"
        args = f" {entry['kwargs']}" if entry.get("kwargs") else ""
        click.echo(f"  {name}: {entry['task']}{args} {when} -> {entry.get('queue', 'default')}")


# -- roles -------------------------------------------------------------------------------


@main.command("worker")
@click.option(
    "--queues",
    "-Q",
    default=None,
    help="Comma-separated queues to consume [default: realtime,backfill,iris,dashboard].",
)
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    default=None,
    help="Processes [default: $BMRS_WORKER_CONCURRENCY, else the CPU count].",
)
@click.option("--hostname", "-n", default=None, help="Node name, e.g. worker1@%h.")
def worker_command(queues: str | None, concurrency: int | None, hostname: str | None) -> None:
    """Run a Celery worker (the role that fetches and loads chunks)."""
    from worker.cluster.celery_app import QUEUES

    settings = get_settings()
    chosen = [q.strip() for q in (queues or ",".join(QUEUES)).split(",") if q.strip()]
    unknown = sorted(set(chosen) - set(QUEUES))
    if unknown:
        raise UserError(
            f"unknown queue(s) {', '.join(unknown)}; the queues are {', '.join(QUEUES)}"
        )
    app = _celery_app()
    # No gossip or mingle: workers need not watch each other (Flower reads their events), and
    # both only add broker traffic and reconnect noise.
    argv = [
        "worker",
        "--queues",
        ",".join(chosen),
        "--loglevel",
        settings.log_level.upper(),
        "--without-gossip",
        "--without-mingle",
    ]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    if hostname:
        argv += ["--hostname", hostname]
    app.worker_main(argv)


def _celery_app() -> Celery:
    """The process's own app, with its tasks registered (for the roles)."""
    from beat.schedule import ScheduleError
    from worker.cluster.celery_app import TimingError

    try:
        from worker.cluster.celery_app import app
    except (TimingError, ScheduleError) as exc:
        raise UserError(str(exc)) from None
    return app


@main.command("beat")
def beat_command() -> None:
    """Run the scheduler; a second beat waits until the first stops (one schedule, ever)."""
    settings = get_settings()
    _celery_app().start(["beat", "--loglevel", settings.log_level.upper()])


@main.command("flower")
@click.option("--address", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=int, default=5555, show_default=True)
def flower_command(address: str, port: int) -> None:
    """Run Flower, the web monitor, with basic auth from FLOWER_BASIC_AUTH (user:password)."""
    import os

    from worker.cli.health_commands import refuse_example_flower_password

    settings = get_settings()
    refuse_example_flower_password(settings, address)
    argv = ["flower", f"--address={address}", f"--port={port}"]
    if settings.flower_basic_auth:
        # Given on Flower's own command line inside this process, so it never shows in `ps`.
        argv.append(f"--basic-auth={settings.flower_basic_auth.get_secret_value()}")
    elif address not in ("127.0.0.1", "localhost", "::1"):
        raise UserError(
            f"refusing to serve Flower on {address} without FLOWER_BASIC_AUTH=user:password"
        )
    # Flower maps every FLOWER_* variable to an option and has no *_FILE one: it would fail.
    os.environ.pop("FLOWER_BASIC_AUTH_FILE", None)
    _celery_app().start(argv)


@main.command("up")
@click.option(
    "--workers", type=click.IntRange(min=1), default=2, show_default=True, help="Worker processes."
)
@click.option(
    "--simulate", is_flag=True, help="Also start the Elexon simulator and point the workers at it."
)
@click.option(
    "--redis-port",
    type=int,
    default=6379,
    show_default=True,
    help="Port of the redis-server started when BMRS_BROKER_URL is unset.",
)
@click.option("--flower-port", type=int, default=5555, show_default=True)
@click.option(
    "--faults", default=None, help="Simulator faults with --simulate [default: $BMRS_SIM_FAULTS]."
)
def up_command(
    workers: int, simulate: bool, redis_port: int, flower_port: int, faults: str | None
) -> None:
    """Run a whole local cluster until Ctrl-C: Redis, workers, beat, Flower (and the simulator)."""
    if faults is not None and not simulate:
        raise UserError("--faults applies to the simulator: add --simulate")
    cluster = _local_cluster(
        workers=workers,
        simulate=simulate,
        sim_faults=faults,
        redis_port=redis_port,
        flower_port=flower_port,
    )
    try:
        with cluster:
            _print_banner(cluster)
            cluster.run_until_interrupted()
    except KeyboardInterrupt:
        pass
    finally:
        stderr.print("cluster stopped")


def _local_cluster(**options: Any) -> Any:
    from worker.cluster.local_cluster import LocalCluster

    settings = get_settings()
    _app(settings)  # refuse bad timings or schedule before starting anything
    return LocalCluster(
        settings, listener="listen" in main.commands, say=lambda m: stderr.print(m), **options
    )


def _print_banner(cluster: Any) -> None:
    stderr.print(
        f"[bold]cluster running[/bold]: {cluster.workers} workers, beat, Flower"
        + (", simulator" if cluster.simulate else "")
        + (", IRIS listener" if cluster.listener else "")
    )
    user = cluster.flower_auth.partition(":")[0]
    login = (
        f"user {user}, password {cluster.flower_auth.partition(':')[2]} (generated; set FLOWER_BASIC_AUTH to choose)"
        if cluster.generated_flower_auth
        else f"user {user} (FLOWER_BASIC_AUTH)"
    )
    stderr.print(f"  Flower: {cluster.flower_url} ({login})")
    if cluster.sim_url:
        faults = (
            cluster.sim_faults if cluster.sim_faults is not None else cluster.settings.sim_faults
        )
        stderr.print(
            f"  simulator: {cluster.sim_url} (faults: {faults or 'none'}; "
            f"access log {cluster.sim_access_log})"
        )
    stderr.print(f"  logs: {cluster.log_dir}/")
    stderr.print(
        "  try: bmrs backfill FUELINST,FREQ --start 2025-10-20 --end 2025-10-26 --wait"
        + (
            ""
            if cluster.broker_url.endswith(":6379/0")
            else f"  (with BMRS_BROKER_URL={cluster.broker_url})"
        )
    )
    stderr.print("  Ctrl-C stops everything.")


@main.command("demo")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True)
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=7,
    show_default=True,
    help="Days to backfill, ending yesterday.",
)
@click.option("--datasets", "codes", default=DEMO_DATASETS, show_default=True)
@click.option(
    "--faults",
    default=None,
    help=f"Simulator faults [default: $BMRS_SIM_FAULTS, else {DEMO_FAULTS}].",
)
@click.option(
    "--keep-running", is_flag=True, help="Leave the cluster running after the summary until Ctrl-C."
)
@click.option("--redis-port", type=int, default=6379, show_default=True)
@click.option("--flower-port", type=int, default=5555, show_default=True)
def demo_command(
    workers: int,
    days: int,
    codes: str,
    faults: str | None,
    keep_running: bool,
    redis_port: int,
    flower_port: int,
) -> None:
    """Start a local cluster against the simulator, backfill a week, show what landed, stop.

    With --keep-running the cluster stays up for Flower and queries until Ctrl-C.
    """
    from worker.cluster.dispatch import submit_backfill
    from worker.sinks import open_sink

    settings = get_settings()
    chosen = datasets_option((codes,))
    end = current_settlement_day() - dt.timedelta(days=1)
    start = end - dt.timedelta(days=days - 1)
    faults = faults if faults is not None else (settings.sim_faults or DEMO_FAULTS)
    cluster = _local_cluster(
        workers=workers,
        simulate=True,
        sim_faults=faults,
        redis_port=redis_port,
        flower_port=flower_port,
    )
    try:
        with cluster:
            _print_banner(cluster)
            cluster_settings = settings.model_copy(update={"broker_url": cluster.broker_url})
            store = _store(cluster_settings)
            job_id = submit_backfill(_app(cluster_settings), store, chosen, start, end)
            stderr.print(
                f"backfilling {', '.join(d.code for d in chosen)} from {start} to {end} "
                f"(job {job_id}; simulator faults: {faults or 'none'})"
            )
            progress = watch_job(store, job_id)
            cluster.check_children()
            _print_summary(progress)
            sink = open_sink(settings)
            spans = {d: d.chunk_range(start, end) for d in chosen}
            gaps = [
                c
                for records in sink.coverage_spans(spans).values()
                for c in records
                if c.status != "complete"
            ]
            Console().print(
                f"gaps: {len(gaps)}"
                + "".join(f"\n  {c.dataset} {c.date}: {c.status} ({c.reason})" for c in gaps)
            )
            _print_where_to_look(cluster, chosen[0].table, start, end)
            if keep_running:
                stderr.print("the cluster keeps running; Ctrl-C stops it")
                cluster.run_until_interrupted()
    except KeyboardInterrupt:
        pass
    finally:
        stderr.print("cluster stopped")


def _print_where_to_look(cluster: Any, table: str, start: dt.date, end: dt.date) -> None:
    console = Console(soft_wrap=True)
    console.print(
        f"\nwhere to look:\n  Flower: {cluster.flower_url} (while the cluster runs: --keep-running)"
    )
    console.print(f"  warehouse: {cluster.data_dir}/lake (Parquet), queried with DuckDB:")
    console.print(
        f'    bmrs query "SELECT _day, count(*) AS rows FROM {table} GROUP BY 1 ORDER BY 1"'
    )
    console.print(
        '    bmrs query "SELECT settlementDate, settlementPeriod, systemSellPrice FROM disebsp_latest '
        'ORDER BY 1 DESC, 2 DESC LIMIT 5"'
    )
    console.print(f"    bmrs gaps --start {start} --end {end}")


def fill_gaps(datasets: list[Any], first: dt.date, last: dt.date) -> None:
    """``bmrs gaps --fill``: enqueue the range's missing, partial and failed days as one job."""
    from worker.cluster.dispatch import submit_chunks
    from worker.cluster.sweep import due_chunks
    from worker.sinks import open_sink

    settings = get_settings()
    due = due_chunks(open_sink(settings), datasets, first, last, include_stale=False)
    if not due:
        stderr.print(f"no gaps from {first} to {last}: nothing to fill")
        return
    store = _store(settings)
    job_id = submit_chunks(_app(settings), store, "fill", [(c.dataset.code, c.day) for c in due])
    kinds: dict[str, int] = {}
    for chunk in due:
        kinds[chunk.reason.split(":")[0]] = kinds.get(chunk.reason.split(":")[0], 0) + 1
    stderr.print(
        f"job {job_id}: {len(due)} chunks enqueued ("
        + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        + f"); follow it with `bmrs job {job_id}`"
    )
    click.echo(job_id)
