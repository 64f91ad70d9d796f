"""Commands that work on data in-process, with no broker: datasets, ingest, inspect, query, gaps."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
import duckdb
import orjson
import pyarrow as pa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from worker import warehouse
from worker.cli.app import (
    UserError,
    check_earliest,
    datasets_option,
    date_range,
    main,
)
from worker.cli.output import (
    coverage_ranges,
    plain,
    query_error_text,
    range_line,
    resolve_zone,
    time_zone_options,
)
from worker.cluster.sweep import configured_datasets
from worker.elexon import catalog
from worker.elexon.client import ApiError, client_from_settings
from worker.elexon.coverage import Coverage
from worker.elexon.parse import SchemaError
from worker.elexon.pipeline import ingest_chunk
from worker.elexon.response_report import inspect_response
from worker.elexon.settlement import days_between
from worker.elexon.windows import iso_duration, store_from_settings
from worker.logs import configure as configure_logs
from worker.settings import get_settings
from worker.sinks import QueryError, open_sink

stderr = Console(stderr=True)


def _emit_json(value: Any) -> None:
    click.echo(orjson.dumps(value, default=_json_default, option=orjson.OPT_INDENT_2).decode())


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    raise TypeError(f"cannot show {type(value).__name__} as JSON")


@main.command("datasets")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable catalog.")
@click.option(
    "--forget-window",
    "forget",
    multiple=True,
    metavar="CODE",
    help="Forget a learned request window: chunks start from the widest window again.",
)
def datasets_command(as_json: bool, forget: tuple[str, ...]) -> None:
    """List the datasets the cluster ingests and how each is fetched.

    ``learned_window`` is the narrower window the live API forced on a dataset (see
    worker/elexon/windows.py), null when none was learned.
    """
    store = store_from_settings(get_settings())
    for dataset in datasets_option(forget) if forget else []:
        done = store.forget(dataset.code)
        click.echo(
            f"{dataset.code}: learned window {'forgotten' if done else 'was not set'} "
            f"({store.describe()})"
        )
    if forget:
        return
    learned = store.all()
    if as_json:
        _emit_json(
            [
                {
                    **d.describe(),
                    "learned_window": iso_duration(learned[d.code]) if d.code in learned else None,
                }
                for d in catalog.DATASETS
            ]
        )
        return
    table = Table(
        "code", "group", "endpoint", "window", "learned", "partition", "natural key", "version",
        "dense",
    )
    for d in catalog.DATASETS:
        table.add_row(
            d.code, d.group, d.endpoint, d.describe()["max_window"],
            iso_duration(learned[d.code]) if d.code in learned else "",
            d.partition_date_rule, ", ".join(d.natural_key), d.version_field or "(ingest time)",
            "yes" if d.dense else "",
        )
    Console().print(table)


@main.command("ingest")
@click.argument("datasets", nargs=-1, required=True)
@click.option("--date", "date_", help="One settlement day, YYYY-MM-DD.")
@click.option("--start", help="First day of a range, YYYY-MM-DD.")
@click.option("--end", help="Last day of a range (inclusive).")
@click.option("--replace", is_flag=True, help="Rebuild each day from this fetch alone.")
def ingest_command(
    datasets: tuple[str, ...], date_: str | None, start: str | None, end: str | None, replace: bool
) -> None:
    """Fetch and load dataset-days in this process (no broker needed).

    DATASETS may be comma-separated or repeated, e.g. FUELINST,FREQ MID.
    """
    settings = get_settings()
    configure_logs(settings)
    chosen = datasets_option(datasets)
    first, last = date_range(date_, start, end)
    check_earliest(chosen, first)
    sink = open_sink(settings)
    client = client_from_settings(settings)
    chunks = [(d, day) for day in days_between(first, last) for d in chosen if not d.snapshot]
    # A snapshot (reference) dataset is one fetch of the current list, whatever the days.
    chunks += [(d, d.chunk_day(first)) for d in chosen if d.snapshot]
    results: list[Coverage] = []
    failures: list[str] = []
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=stderr, disable=len(chunks) < 2,
    ) as progress:
        bar = progress.add_task("ingesting", total=len(chunks))
        for dataset, day in chunks:
            progress.update(bar, description=f"{dataset.code} {day}")
            try:
                results.append(ingest_chunk(client, sink, dataset, day, replace=replace))
            except (ApiError, SchemaError) as exc:
                failures.append(f"{dataset.code} {day}: {exc}")
            progress.advance(bar)
    for coverage in results:
        periods = (
            f", periods {coverage.periods_present}/{coverage.periods_expected}"
            if coverage.periods_expected is not None
            else ""
        )
        click.echo(
            f"{coverage.dataset} {coverage.date}: {coverage.status}, {coverage.rows} rows"
            f"{periods}, {coverage.duplicates_dropped} duplicates dropped"
            + (f" ({coverage.reason})" if coverage.reason and coverage.status != "complete" else "")
        )
    for failure in failures:
        click.echo(f"FAILED {failure}", err=True)
    if failures:
        sys.exit(1)


def _instant(text: str | None, name: str) -> dt.datetime | None:
    if text is None:
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"{name}: invalid time {text!r}; expected e.g. 2025-10-25T23:00:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@main.command("inspect")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dataset", "code", required=True, help="Catalog code of the response's dataset.")
@click.option("--window-start", help="Start of the asked window (UTC, inclusive).")
@click.option("--window-end", help="End of the asked window (UTC, inclusive).")
@click.option("--json", "as_json", is_flag=True)
def inspect_command(
    file: Path, code: str, window_start: str | None, window_end: str | None, as_json: bool
) -> None:
    """Parse a saved API response and report rows, duplicates, keys and periods."""
    dataset = datasets_option((code,))[0]
    try:
        body = file.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {file}: {exc.strerror}") from None
    try:
        report = inspect_response(
            dataset,
            body,
            window_start=_instant(window_start, "--window-start"),
            window_end=_instant(window_end, "--window-end"),
            source=str(file),
        )
    except (ApiError, SchemaError) as exc:
        raise UserError(f"{file}: {exc}") from None
    if as_json:
        _emit_json(report)
        return
    for key, value in report.items():
        click.echo(f"{key}: {value}")


@main.command("query")
@click.argument("sql")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True
)
@time_zone_options
def query_command(sql: str, fmt: str, tz_name: str | None, local: bool) -> None:
    """Run SQL over the warehouse views (<code>, <code>_latest), e.g. SELECT count(*) FROM fuelinst.

    Instants print in UTC with Z (or in --tz / --local time with their offset); times without
    a time zone (e.g. AT TIME ZONE results) print as they are, without Z.
    """
    zone = resolve_zone(tz_name, local)
    try:
        result = warehouse.query(sql)
    except (duckdb.Error, QueryError) as exc:
        raise UserError(f"query failed: {query_error_text(exc)}") from None
    rows = rows_as_json(result, zone)
    if fmt == "json":
        _emit_json(rows)
    elif fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=result.column_names, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
        click.echo(out.getvalue(), nl=False)
    else:
        table = Table(*(Column(name, overflow="fold") for name in result.column_names))
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row.values()))
        Console().print(table)


def rows_as_json(table: pa.Table, zone: ZoneInfo | None = None) -> list[dict[str, Any]]:
    """Rows as plain objects: instants ISO-8601 UTC with ``Z`` (or in ``zone``), naive times
    without ``Z``, dates ISO, nulls as None (see :mod:`worker.cli.output`)."""
    return [{k: plain(v, zone) for k, v in row.items()} for row in table.to_pylist()]


@main.command("gaps")
@click.option("--start", required=True, help="First day, YYYY-MM-DD.")
@click.option("--end", required=True, help="Last day (inclusive).")
@click.option("--dataset", "codes", multiple=True, help="Dataset(s); default all.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--fill", is_flag=True, help="Enqueue the missing, partial and failed days on the cluster.")
def gaps_command(start: str, end: str, codes: tuple[str, ...], as_json: bool, fill: bool) -> None:
    """Coverage of every dataset-day in a range, never-attempted days included."""
    first, last = date_range(None, start, end)
    settings = get_settings()
    # Default: the datasets this cluster keeps (BMRS_DATASETS, all unless narrowed).
    chosen = datasets_option(codes) if codes else configured_datasets(settings)
    if fill:
        from worker.cli.cluster_commands import fill_gaps

        fill_gaps(chosen, first, last)
        return
    sink = open_sink(settings)
    spans = {d: d.chunk_range(first, last) for d in chosen}
    entries = [cov for records in sink.coverage_spans(spans).values() for cov in records]
    if as_json:
        _emit_json([cov.to_json() for cov in entries])
        return
    console = Console()
    summary = Table("dataset", "complete", "partial", "empty", "failed", "missing", "rows")
    for d in chosen:
        mine = [c for c in entries if c.dataset == d.code]
        counts = {s: sum(1 for c in mine if c.status == s) for s in ("complete", "partial", "empty", "failed", "missing")}
        summary.add_row(d.code, *(str(v) for v in counts.values()), str(sum(c.rows for c in mine)))
    console.print(summary)
    # One line per run of days with the same status: a never-fetched year is one line.
    problems = coverage_ranges(c for c in entries if c.status != "complete")
    for span in problems[:200]:
        console.print(range_line(*span), highlight=False)
    if len(problems) > 200:
        console.print(f"... and {len(problems) - 200} more ranges (use --json for every day)")
