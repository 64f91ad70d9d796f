"""Learned request windows: widest first, narrowed when the API refuses, remembered everywhere."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner

from tests.support.local_http import QuietHandler, access_lines, serving
from tests.support.redis import RedisServer
from worker.cli import main
from worker.elexon import catalog
from worker.elexon.client import (
    WINDOW_FLOOR,
    ElexonClient,
    PermanentApiError,
    WindowTooLargeError,
    is_range_refusal,
    narrower_window,
    stated_limit,
)
from worker.elexon.pipeline import ingest_chunk
from worker.elexon.windows import FileWindowStore, MemoryWindowStore, RedisWindowStore
from worker.settings import get_settings
from worker.sim.server import BASE_PATH, SimulatorApp, start_simulator
from worker.sim.window_limits import WindowLimitError, parse_window_limits
from worker.sinks.local import LocalWarehouse

ORDINARY, AUTUMN = dt.date(2025, 11, 5), dt.date(2025, 10, 26)
HOUR = dt.timedelta(hours=1)
ROOT = Path(__file__).resolve().parents[1]


def fast_client(url: str, windows: object | None = None, **options: object) -> ElexonClient:
    options = {
        "retries": 4, "backoff_base_s": 0.01, "backoff_max_s": 0.1, "timeout_s": 10, **options
    }
    return ElexonClient(url, windows=windows, **options)  # type: ignore[arg-type]


def window_of(line: dict[str, object]) -> dt.timedelta:
    query = parse_qs(str(line["query"]))
    start = dt.datetime.fromisoformat(query["from"][0].replace("Z", "+00:00"))
    end = dt.datetime.fromisoformat(query["to"][0].replace("Z", "+00:00"))
    return end - start


# --- what a refusal means ---------------------------------------------------------------


def test_a_reversed_window_is_not_a_range_refusal_but_a_too_wide_one_is() -> None:
    # The API's known validation message (uk-energy's recorded fixture) is about order.
    assert not is_range_refusal(400, ": From field must not be later than To field.")
    assert not is_range_refusal(400, "settlementPeriod must be between 1 and 50, not 51.")
    assert is_range_refusal(400, "The requested date range must not be more than 1 hour")
    assert is_range_refusal(400, "This API endpoint provides a maximum data output range of 1 day.")
    assert not is_range_refusal(404, "The requested date range must not be more than 1 hour")


def test_a_stated_limit_is_used_and_otherwise_the_window_halves_to_one_period() -> None:
    assert stated_limit("range must not be more than 1 hour; 23.99 hours was requested") == HOUR
    assert stated_limit("maximum range of 7 days") == dt.timedelta(days=7)
    assert stated_limit("no number here") is None
    assert narrower_window(dt.timedelta(hours=24), HOUR) == HOUR
    widths, width = [], dt.timedelta(hours=25)
    while (width := narrower_window(width, None)) is not None:  # type: ignore[assignment]
        widths.append(width)
    assert widths == [dt.timedelta(hours=h) for h in (12.5, 6, 3, 1.5)] + [WINDOW_FLOOR]
    assert narrower_window(WINDOW_FLOOR, None) is None


def test_window_limit_specs_parse_and_bad_ones_say_why() -> None:
    assert parse_window_limits(["BOD=1h,mils=90min", "FREQ=30m"]) == {
        "BOD": HOUR, "MILS": dt.timedelta(minutes=90), "FREQ": dt.timedelta(minutes=30),
    }
    with pytest.raises(WindowLimitError, match="CODE=DURATION"):
        parse_window_limits("BOD")
    with pytest.raises(WindowLimitError, match="unknown dataset"):
        parse_window_limits("NOPE=1h")
    with pytest.raises(WindowLimitError, match="not understood"):
        parse_window_limits("BOD=an hour")


def test_the_simulator_refuses_a_wider_window_with_a_problem_body() -> None:
    app = SimulatorApp(scale=0.01, window_limit="BOD=1h")
    wide = app.handle("GET", "/datasets/BOD/stream?from=2025-11-05T00:00Z&to=2025-11-05T02:00Z")
    body = json.loads(wide.body)
    assert wide.status == 400
    assert wide.headers["Content-Type"].startswith("application/problem+json")
    assert body["status"] == 400 and body["title"] == "One or more validation errors occurred."
    assert "must not be more than 1 hour" in body["errors"][""][0]
    hour = app.handle("GET", "/datasets/BOD/stream?from=2025-11-05T00:00Z&to=2025-11-05T01:00Z")
    assert hour.status == 200
    other = app.handle("GET", "/datasets/BOALF/stream?from=2025-11-05T00:00Z&to=2025-11-05T20:00Z")
    assert other.status == 200


# --- the widest window first ------------------------------------------------------------


@pytest.mark.parametrize("day", [ORDINARY, AUTUMN], ids=str)
def test_a_bod_day_takes_at_most_two_requests_without_a_hidden_limit(
    simulator_factory: Callable, data_dir: Path, tmp_path: Path, day: dt.date
) -> None:
    log = tmp_path / "access.jsonl"
    running = simulator_factory(access_log=log)
    coverage = ingest_chunk(
        fast_client(running.url + BASE_PATH), LocalWarehouse(data_dir), catalog.get("BOD"), day
    )
    assert coverage.status == "complete" and coverage.rows > 0
    assert coverage.requests <= 2
    assert len(access_lines(log, coverage.requests)) == coverage.requests


# --- narrowed, learned, shared ----------------------------------------------------------


def test_a_hidden_limit_is_learned_and_later_chunks_start_at_it(
    simulator_factory: Callable, data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bod = catalog.get("BOD")
    free = simulator_factory()
    reference = ingest_chunk(
        fast_client(free.url + BASE_PATH), LocalWarehouse(tmp_path / "ref"), bod, ORDINARY
    )

    log = tmp_path / "access.jsonl"
    limited = simulator_factory(window_limit="BOD=1h", access_log=log)
    store = FileWindowStore(data_dir / "learned_windows.json")
    warehouse = LocalWarehouse(data_dir)
    with caplog.at_level("WARNING", logger="worker.elexon.client"):
        first = ingest_chunk(fast_client(limited.url + BASE_PATH, store), warehouse, bod, ORDINARY)
    # Every row of the day, as without the limit, after one refused request.
    assert first.status == "complete"
    assert (first.rows, first.digest) == (reference.rows, reference.digest)
    assert store.get("BOD") == HOUR
    lines = access_lines(log, first.requests)
    assert [line["status"] for line in lines].count(400) == 1 and lines[0]["status"] == 400
    assert first.requests == len(lines) == 1 + 24
    learned_logs = [r for r in caplog.records if "remembered for every later chunk" in r.message]
    assert len(learned_logs) == 1

    # A new client (another process, a restart) starts at the learned window: no refusal.
    log.write_text("")
    caplog.clear()
    with caplog.at_level("WARNING", logger="worker.elexon.client"):
        later = ingest_chunk(
            fast_client(limited.url + BASE_PATH, FileWindowStore(store.path)),
            warehouse,
            bod,
            AUTUMN,
        )
    assert later.status == "complete"
    lines = access_lines(log, later.requests)
    assert all(line["status"] == 200 for line in lines)
    assert len(lines) == later.requests == 25  # the autumn day's 25 hours, one hour each
    assert max(window_of(line) for line in lines) < HOUR
    assert not [r for r in caplog.records if "remembered" in r.message]  # logged once only


def test_a_refusal_at_one_settlement_period_is_a_real_error(
    simulator_factory: Callable, data_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "access.jsonl"
    running = simulator_factory(window_limit="BOD=10m", access_log=log)
    client = fast_client(running.url + BASE_PATH)
    warehouse = LocalWarehouse(data_dir)
    with pytest.raises(WindowTooLargeError, match="must not be more than 10 minutes"):
        ingest_chunk(client, warehouse, catalog.get("BOD"), ORDINARY)
    assert client.windows.get("BOD") == WINDOW_FLOOR
    assert window_of(access_lines(log, 2)[-1]) < WINDOW_FLOOR
    [coverage] = warehouse.coverage_range(catalog.get("BOD"), ORDINARY, ORDINARY)
    assert coverage.status == "failed" and "10 minutes" in (coverage.reason or "")


def test_a_400_not_about_the_range_is_not_split(
    simulator_factory: Callable, data_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "access.jsonl"
    running = simulator_factory(faults=f"poison=BOD@{ORDINARY}", access_log=log)
    client = fast_client(running.url + BASE_PATH)
    with pytest.raises(PermanentApiError) as raised:
        ingest_chunk(client, LocalWarehouse(data_dir), catalog.get("BOD"), ORDINARY)
    assert not isinstance(raised.value, WindowTooLargeError)
    assert len(access_lines(log)) == 1 and client.windows.get("BOD") is None


class _SlowWideWindows(http.server.ThreadingHTTPServer):
    """The simulator, except that a window wider than 6 hours never answers in time."""

    daemon_threads = True

    def __init__(self) -> None:
        self.app = SimulatorApp(scale=0.01)
        self.widths: list[dt.timedelta] = []
        self.narrow_starts: set[dt.datetime] = set()

        class Handler(QuietHandler):
            def do_GET(handler) -> None:
                query = parse_qs(urlsplit(handler.path).query)
                start = dt.datetime.fromisoformat(query["from"][0].replace("Z", "+00:00"))
                end = dt.datetime.fromisoformat(query["to"][0].replace("Z", "+00:00"))
                self.widths.append(end - start)
                if end - start > dt.timedelta(hours=6):
                    time.sleep(3.0)
                else:
                    self.narrow_starts.add(start)
                response = self.app.handle("GET", handler.path.removeprefix(BASE_PATH))
                try:
                    handler.reply(response.status, response.body)
                except OSError:
                    pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def slow_wide_windows() -> Iterator[_SlowWideWindows]:
    server = _SlowWideWindows()
    with serving(server):
        yield server


def test_a_window_that_keeps_timing_out_is_split_and_learned(
    slow_wide_windows: _SlowWideWindows, data_dir: Path
) -> None:
    server = slow_wide_windows
    url = f"http://127.0.0.1:{server.server_address[1]}"
    client = fast_client(url, timeout_s=1.0, retries=6)
    coverage = ingest_chunk(client, LocalWarehouse(data_dir), catalog.get("BOALF"), ORDINARY)
    assert coverage.status == "complete" and coverage.rows > 0
    assert client.windows.get("BOALF") == dt.timedelta(hours=6)
    # Three timeouts at 24 h, three at 12 h, then four 6-hour windows.
    assert server.widths.count(max(server.widths)) == 3
    assert len(server.narrow_starts) == 4


def test_a_timing_out_window_is_split_sooner_when_the_task_has_no_time_for_three(
    slow_wide_windows: _SlowWideWindows, data_dir: Path
) -> None:
    server = slow_wide_windows
    url = f"http://127.0.0.1:{server.server_address[1]}"
    # A budget of 1.5 s cannot hold a second 1-second timeout: split after the first.
    client = fast_client(url, timeout_s=1.0, retries=6, split_budget_s=1.5)
    coverage = ingest_chunk(client, LocalWarehouse(data_dir), catalog.get("BOALF"), ORDINARY)
    assert coverage.status == "complete"
    assert client.windows.get("BOALF") == dt.timedelta(hours=6)
    assert server.widths.count(max(server.widths)) == 1
    assert coverage.requests == 2 + 4  # one refused at 24 h, one at 12 h, four of 6 h


_LEARN = """
import datetime as dt, sys
from pathlib import Path
from worker.settings import get_settings
from worker.elexon.windows import FileWindowStore, RedisWindowStore
import redis
kind, where, minutes = sys.argv[1], sys.argv[2], int(sys.argv[3])
if kind == "file":
    store = FileWindowStore(Path(where))
else:
    store = RedisWindowStore(redis.Redis.from_url(where))
print(store.learn("BOD", dt.timedelta(minutes=minutes)))
"""


def _learn_in_processes(kind: str, where: str, minutes: list[int]) -> list[str]:
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _LEARN, kind, where, str(m)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        )
        for m in minutes
    ]
    return [child.communicate(timeout=60)[0].strip() for child in children]


def test_the_file_store_is_shared_by_processes_and_keeps_the_narrowest(tmp_path: Path) -> None:
    path = tmp_path / "learned_windows.json"
    printed = _learn_in_processes("file", str(path), [360, 60, 180, 120, 30, 240])
    assert FileWindowStore(path).get("BOD") == dt.timedelta(minutes=30)
    assert "True" in printed  # at least the narrowest changed it
    assert FileWindowStore(path).learn("BOD", HOUR) is False  # wider never replaces narrower
    assert FileWindowStore(path).forget("BOD") and FileWindowStore(path).get("BOD") is None


def test_the_redis_store_is_shared_by_processes_and_survives_a_restart(
    redis_server: RedisServer,
) -> None:
    printed = _learn_in_processes("redis", redis_server.url, [360, 60, 180, 120, 30, 240])
    store = RedisWindowStore(redis_server.client())
    assert store.get("BOD") == dt.timedelta(minutes=30)
    assert printed.count("True") >= 1
    assert redis_server.client().ttl("bmrs:learned_windows") == -1  # no expiry
    redis_server.restart()
    assert RedisWindowStore(redis_server.client()).all() == {"BOD": dt.timedelta(minutes=30)}


def test_memory_store_is_the_default_and_only_narrows() -> None:
    store = MemoryWindowStore()
    assert store.learn("MILS", HOUR) and not store.learn("MILS", 2 * HOUR)
    assert store.learn("MILS", WINDOW_FLOOR) and store.get("MILS") == WINDOW_FLOOR


# --- the commands -----------------------------------------------------------------------


@pytest.fixture
def limited_sim(simulator_factory: Callable) -> Iterator[str]:
    yield simulator_factory(window_limit="BOD=1h").url + BASE_PATH


def test_ingest_learns_into_the_data_dir_and_datasets_json_shows_it(
    bmrs_env: pytest.MonkeyPatch, limited_sim: str, data_dir: Path
) -> None:
    bmrs_env.setenv("BMRS_ELEXON_BASE_URL", limited_sim)
    runner = CliRunner()
    before = json.loads(runner.invoke(main, ["datasets", "--json"]).output)
    assert all(entry["learned_window"] is None for entry in before)
    result = runner.invoke(main, ["ingest", "BOD", "--date", str(ORDINARY)])
    assert result.exit_code == 0, result.output
    assert "BOD 2025-11-05: complete" in result.output
    assert json.loads((data_dir / "learned_windows.json").read_text()) == {"BOD": 3600}
    shown = json.loads(runner.invoke(main, ["datasets", "--json"]).output)
    after = {e["code"]: e["learned_window"] for e in shown}
    assert after["BOD"] == "PT1H" and after["BOALF"] is None
    forgot = runner.invoke(main, ["datasets", "--forget-window", "BOD"])
    assert "BOD: learned window forgotten" in forgot.output
    assert FileWindowStore(data_dir / "learned_windows.json").get("BOD") is None


def test_datasets_json_reads_the_clusters_redis_when_a_broker_is_set(
    bmrs_env: pytest.MonkeyPatch, redis_server: RedisServer
) -> None:
    bmrs_env.setenv("BMRS_BROKER_URL", redis_server.url)
    RedisWindowStore(redis_server.client()).learn("MILS", dt.timedelta(hours=6))
    shown = json.loads(CliRunner().invoke(main, ["datasets", "--json"]).output)
    assert {e["code"]: e["learned_window"] for e in shown}["MILS"] == "PT6H"


def test_sim_command_takes_window_limits_from_the_option_or_the_environment(
    bmrs_env: pytest.MonkeyPatch,
) -> None:
    bad = CliRunner().invoke(main, ["sim", "--port", "0", "--window-limit", "BOD=soon"])
    assert bad.exit_code == 2 and "--window-limit" in bad.output and "'soon'" in bad.output
    bmrs_env.setenv("BMRS_SIM_WINDOW_LIMITS", "BOD=1h,MILS=later")
    get_settings.cache_clear()
    from_env = CliRunner().invoke(main, ["sim", "--port", "0"])
    assert from_env.exit_code == 2 and "'later'" in from_env.output
    with start_simulator(window_limit="BOD=2h,MILS=1h") as running:
        assert running.app.window_limits == {"BOD": 2 * HOUR, "MILS": HOUR}


def test_the_simulator_answers_a_year_of_mid_but_refuses_a_decade_of_bod_as_too_wide() -> None:
    app = SimulatorApp(scale=1.0, clock=lambda: dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    year = app.handle("GET", "/datasets/MID/stream?from=2025-01-01T00:00Z&to=2025-12-31T23:30Z")
    assert year.status == 200 and len(json.loads(year.body)) == 2 * 17520
    started = time.monotonic()
    decade = app.handle("GET", "/datasets/BOD/stream?from=2016-01-01T00:00Z&to=2025-12-31T00:00Z")
    assert time.monotonic() - started < 2
    message = json.loads(decade.body)["errors"][""][0]
    assert decade.status == 400 and is_range_refusal(400, message)


def test_each_process_kind_gets_the_store_it_shares(
    bmrs_env: pytest.MonkeyPatch, redis_server: RedisServer, data_dir: Path
) -> None:
    from worker.cluster.dispatch import WorkerResources
    from worker.elexon.client import client_from_settings

    local = client_from_settings(get_settings())
    assert isinstance(local.windows, FileWindowStore)
    assert local.windows.path == data_dir / "learned_windows.json"
    assert local.split_budget_s == get_settings().task_soft_time_limit_s / 2
    bmrs_env.setenv("BMRS_BROKER_URL", redis_server.url)
    get_settings.cache_clear()
    assert isinstance(client_from_settings(get_settings()).windows, RedisWindowStore)
    worker = WorkerResources.from_settings(get_settings())
    assert isinstance(worker.client.windows, RedisWindowStore)
    worker.client.windows.learn("BOD", HOUR)
    assert RedisWindowStore(redis_server.client()).get("BOD") == HOUR


def test_a_broker_that_does_not_answer_falls_back_to_the_file(
    bmrs_env: pytest.MonkeyPatch, data_dir: Path
) -> None:
    from tests.support.env import free_port
    from worker.elexon.windows import store_from_settings

    bmrs_env.setenv("BMRS_BROKER_URL", f"redis://127.0.0.1:{free_port()}/0")
    get_settings.cache_clear()
    started = time.monotonic()
    store = store_from_settings(get_settings())
    assert isinstance(store, FileWindowStore) and store.path == data_dir / "learned_windows.json"
    assert time.monotonic() - started < 5
