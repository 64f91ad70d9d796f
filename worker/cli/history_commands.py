"""``bmrs history DATASET``: where the API's data for a dataset starts, against the catalog."""

from __future__ import annotations

import click
import orjson

from worker.cli.app import UserError, datasets_option, main
from worker.elexon.client import ApiError, client_from_settings
from worker.elexon.history import first_day_with_data
from worker.logs import configure as configure_logs
from worker.settings import get_settings


@main.command("history")
@click.argument("dataset")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable result.")
def history_command(dataset: str, as_json: bool) -> None:
    """Find the first settlement day the API has data for DATASET (a binary search of a few
    dozen requests) and compare it with the catalog's history start."""
    settings = get_settings()
    configure_logs(settings)
    [chosen] = datasets_option((dataset,))[:1]
    client = client_from_settings(settings)
    try:
        found = first_day_with_data(client, chosen)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    except ApiError as exc:
        raise UserError(f"{chosen.code}: history search stopped: {exc}") from None
    if as_json:
        click.echo(orjson.dumps(found.to_json(), option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(found.verdict())
    click.echo(
        f"catalog earliest {found.catalog_earliest}; first day with data "
        f"{found.first_day_with_data or 'none'}; {found.requests} requests to "
        f"{settings.elexon_base_url}"
    )
