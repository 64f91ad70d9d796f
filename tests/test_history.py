"""``bmrs history``: the first settlement day with data, by binary search over the API."""

from __future__ import annotations

import dataclasses
import datetime as dt
import http.server
import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support.local_http import QuietHandler, access_lines, serving
from worker.cli import main
from worker.elexon import catalog
from worker.elexon.client import ElexonClient
from worker.elexon.history import SEARCH_FROM, first_day_with_data, has_data
from worker.sim.server import BASE_PATH

UNTIL = dt.date(2025, 11, 5)


def client(url: str) -> ElexonClient:
    return ElexonClient(url, retries=3, backoff_base_s=0.01, backoff_max_s=0.1, timeout_s=20)


def most_probes(first: dt.date = SEARCH_FROM, last: dt.date = UNTIL) -> int:
    """Two bounds plus a halving per bit of the range; each probe at most two requests here."""
    return 2 * (2 + math.ceil(math.log2((last - first).days)))


def test_history_remit_against_the_simulator_reports_june_2017(
    bmrs_env: pytest.MonkeyPatch, simulator: str
) -> None:
    bmrs_env.setenv("BMRS_ELEXON_BASE_URL", simulator)
    result = CliRunner().invoke(main, ["history", "REMIT", "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert list(found) == ["dataset", "catalog_earliest", "first_day_with_data", "requests"]
    assert found["dataset"] == "REMIT"
    assert found["catalog_earliest"] == found["first_day_with_data"] == "2017-06-01"
    assert 10 <= found["requests"] <= most_probes(last=dt.date.today())
    text = CliRunner().invoke(main, ["history", "remit"])
    assert text.exit_code == 0
    assert "REMIT: data from 2017-06-01, as the catalog says." in text.output


@pytest.mark.parametrize("code", ["BOD", "FUELINST", "DISEBSP", "INDGEN", "FREQ"])
def test_the_search_finds_where_the_simulator_starts_each_dataset(
    simulator_factory: Callable, tmp_path: Path, code: str
) -> None:
    log = tmp_path / "access.jsonl"
    running = simulator_factory(access_log=log)
    dataset = catalog.get(code)
    found = first_day_with_data(client(running.url + BASE_PATH), dataset, until=UNTIL)
    assert found.first_day_with_data == dataset.earliest
    assert found.requests == len(access_lines(log, found.requests)) <= most_probes()


def test_a_catalog_start_that_disagrees_with_the_api_is_reported_with_the_days_between(
    simulator: str,
) -> None:
    bod = catalog.get("BOD")
    too_early = dataclasses.replace(bod, earliest=dt.date(2001, 3, 27))
    found = first_day_with_data(client(simulator), too_early, until=UNTIL)
    assert found.first_day_with_data == bod.earliest
    assert found.catalog_earliest == too_early.earliest
    days = (bod.earliest - too_early.earliest).days
    assert f"{days} days after the catalog's 2001-03-27" in found.verdict()
    assert "come back empty" in found.verdict()
    too_late = dataclasses.replace(bod, earliest=dt.date(2020, 1, 1))
    verdict = first_day_with_data(client(simulator), too_late, until=UNTIL).verdict()
    assert "days before the catalog's 2020-01-01" in verdict


def test_no_data_up_to_the_end_gives_none(simulator_factory: Callable) -> None:
    # The simulator's clock stands in 2015: REMIT (from June 2017) has no data yet.
    running = simulator_factory(clock=lambda: dt.datetime(2015, 6, 1, tzinfo=dt.UTC))
    found = first_day_with_data(client(running.url + BASE_PATH), catalog.get("REMIT"), until=UNTIL)
    assert found.first_day_with_data is None and found.requests == 2
    assert found.to_json()["first_day_with_data"] is None
    assert "no data up to yesterday" in found.verdict()


def test_a_probe_of_a_big_dataset_asks_for_one_period_when_it_has_data(
    simulator_factory: Callable, tmp_path: Path
) -> None:
    log = tmp_path / "access.jsonl"
    running = simulator_factory(access_log=log)
    assert has_data(client(running.url + BASE_PATH), catalog.get("BOD"), UNTIL)
    [line] = access_lines(log, 1)
    assert "from=2025-11-05T12%3A00%3A00Z&to=2025-11-05T12%3A29%3A59Z" in line["query"]


class _StackFromDay(http.server.ThreadingHTTPServer):
    """A stand-in for the per-period settlement stack: rows from FIRST on, counting requests."""

    daemon_threads = True
    FIRST = dt.date(2020, 2, 1)

    def __init__(self) -> None:
        self.paths: list[str] = []

        class Handler(QuietHandler):
            def do_GET(handler) -> None:
                self.paths.append(handler.path)
                day = dt.date.fromisoformat(handler.path.split("/")[-2])
                rows = [{"settlementDate": day.isoformat()}] if day >= self.FIRST else []
                handler.reply(200, json.dumps({"data": rows}).encode())

        super().__init__(("127.0.0.1", 0), Handler)


def test_a_per_period_endpoint_is_probed_at_two_periods_a_side_not_fifty() -> None:
    server = _StackFromDay()
    with serving(server) as url:
        found = first_day_with_data(client(url), catalog.get("ISPSTACK"), until=UNTIL)
    assert found.first_day_with_data == _StackFromDay.FIRST
    # Two sides x two periods on a day without data, fewer where the first answers.
    assert found.requests == len(server.paths) <= 4 * (2 + math.ceil(math.log2(9000)))
    assert {p.rsplit("/", 1)[1] for p in server.paths} <= {"1", "25"}


def test_history_of_a_reference_snapshot_says_there_is_none(bmrs_env: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(main, ["history", "BMUNITS"])
    assert result.exit_code == 2 and "reference snapshot" in result.output
