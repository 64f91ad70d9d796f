"""The root ``bmrs`` click group and the error convention every command shares."""

from __future__ import annotations

import datetime as dt

import click

from worker.elexon import catalog
from worker.elexon.settlement import parse_day


class UserError(click.ClickException):
    """A problem with what the user asked: one clear line, exit status 2, no traceback."""

    exit_code = 2


class BmrsGroup(click.Group):
    """Turns configuration problems found while a command starts into one clear line."""

    def invoke(self, ctx: click.Context) -> object:
        from pydantic import ValidationError

        from worker.sinks.base import SinkConfigError
        from worker.sinks.local import FormatVersionError

        try:
            return super().invoke(ctx)
        except ValidationError as exc:
            problems = "; ".join(
                f"{_setting_name(err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise UserError(f"invalid settings: {problems}") from None
        except (SinkConfigError, FormatVersionError) as exc:
            raise UserError(str(exc)) from None


def _setting_name(location: tuple[object, ...]) -> str:
    name = str(location[0]) if location else "?"
    return name if name.isupper() else f"BMRS_{name.upper()}"


@click.group(
    cls=BmrsGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
def main() -> None:
    """Keep a complete, duplicate-free copy of Elexon BMRS data."""


def datasets_option(values: tuple[str, ...]) -> list[catalog.Dataset]:
    """Datasets from comma-separated and/or repeated arguments, as a user error if unknown."""
    try:
        return catalog.parse_codes(list(values))
    except catalog.UnknownDatasetError as exc:
        raise UserError(str(exc)) from None


def day_option(text: str, name: str) -> dt.date:
    """A date argument, as a user error naming the option if malformed."""
    try:
        return parse_day(text)
    except ValueError as exc:
        raise UserError(f"{name}: {exc}") from None


def date_range(date: str | None, start: str | None, end: str | None) -> tuple[dt.date, dt.date]:
    """``--date D`` or ``--start D --end D`` (inclusive), validated."""
    if date and (start or end):
        raise UserError("give either --date or --start/--end, not both")
    if date:
        day = day_option(date, "--date")
        return day, day
    if not start or not end:
        raise UserError("give --date D, or both --start D and --end D")
    first, last = day_option(start, "--start"), day_option(end, "--end")
    if last < first:
        raise UserError(f"--end {last} is before --start {first}")
    return first, last


def check_earliest(datasets: list[catalog.Dataset], first: dt.date) -> None:
    """Refuse ranges that start before a dataset's history does."""
    for dataset in datasets:
        if first < dataset.earliest:
            raise UserError(
                f"{dataset.code} starts on {dataset.earliest}; {first} is before the earliest "
                "date the API serves"
            )
