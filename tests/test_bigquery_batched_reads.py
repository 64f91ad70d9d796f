"""Reads across the whole catalog cost a fixed number of BigQuery queries.

Freshness, ``bmrs status`` and the dashboard's health tab ask about every configured dataset.
Asked one dataset at a time that was ~190 queries (each billed at least 10 MB) per refresh
with a catalog of ~95 datasets; the sink's batched reads answer each question in one query.
Driven through the real client against the fake BigQuery, which runs the SQL it receives.
"""

from __future__ import annotations

import datetime as dt

import pytest

from sheets.queries import gather
from tests.support.fake_bigquery import DATASET, LOCATION, PROJECT, FakeBigQuery
from tests.test_dashboard_model import NOW, SETTLED, fill_known
from worker.cluster import freshness
from worker.cluster.cluster_status import last_errors
from worker.elexon import catalog
from worker.elexon.coverage import Coverage
from worker.sinks.base import Sink
from worker.sinks.bigquery import BigQueryWarehouse, Location

# Queries of one dashboard refresh: the tabs' own SQL (about a dozen) plus the batched
# freshness (newest days, day bounds, snapshot fetches), health coverage and REMIT coverage.
DASHBOARD_QUERY_LIMIT = 24


@pytest.fixture
def remote(fake_bigquery: FakeBigQuery) -> BigQueryWarehouse:
    sink = BigQueryWarehouse(fake_bigquery.client(), Location(PROJECT, DATASET, LOCATION),
                             retry_initial_s=0.05)
    sink.check_dataset()
    fill_known(sink)
    # A failed day, so that coverage read in one query is checked for more than 'complete'.
    freq = catalog.get("FREQ")
    with sink.chunk_lock(freq, SETTLED - dt.timedelta(days=2)):
        sink.write_coverage(Coverage(
            dataset="FREQ", date=SETTLED - dt.timedelta(days=2), status="failed", rows=0,
            duplicates_dropped=0, periods_present=0, periods_expected=48, digest="",
            fetched_utc=NOW, reason="HTTP 500 from /datasets/FREQ"))
    return sink


def _queries_during(fake: FakeBigQuery, build: object) -> tuple[int, int]:
    """(queries run, requests sent) while ``build()`` runs."""
    queries, requests = len(fake.queries), len(fake.requests)
    build()  # type: ignore[operator]
    return len(fake.queries) - queries, len(fake.requests) - requests


def test_dashboard_queries_do_not_grow_with_the_datasets_reported(
    remote: BigQueryWarehouse, fake_bigquery: FakeBigQuery
) -> None:
    """The health tab over 3 datasets or over the whole catalog: the same number of queries,
    and table requests stay few (views are ensured once a process, not per query)."""
    few = [catalog.get(code) for code in ("FUELINST", "FREQ", "MID")]
    small, _ = _queries_during(fake_bigquery, lambda: gather(remote, NOW, datasets=few))
    whole, requests = _queries_during(
        fake_bigquery, lambda: gather(remote, NOW, datasets=catalog.DATASETS))
    assert len(catalog.DATASETS) > 50
    assert whole == small
    assert whole <= DASHBOARD_QUERY_LIMIT
    # Each query is a request or two (jobs.query, maybe getQueryResults); plus one table
    # listing per batched read. Nothing per dataset.
    assert requests <= 3 * DASHBOARD_QUERY_LIMIT
    again, requests_again = _queries_during(
        fake_bigquery, lambda: gather(remote, NOW, datasets=catalog.DATASETS))
    assert (again, requests_again) == (whole, requests)


def _one_by_one(sink: Sink, datasets: list[catalog.Dataset], first: dt.date,
                last: dt.date) -> tuple[dict, dict, dict]:
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    newest = {d.code: sink.newest_day(d) for d in datasets}
    coverage = {d.code: sink.read_coverage(d, days) for d in datasets}
    rows = {d.code: freshness.newest_instant(d, table, newest[d.code])
            for d in datasets
            if newest[d.code] and (table := sink.read_day(d, newest[d.code])) is not None}
    return newest, coverage, rows


def test_batched_reads_answer_as_one_dataset_at_a_time(
    remote: BigQueryWarehouse, fake_bigquery: FakeBigQuery
) -> None:
    # Every dataset holding rows, and a few never loaded (asked one by one, the whole
    # catalog would take ~190 queries here).
    loaded = [d for d in catalog.DATASETS
              if (PROJECT, DATASET, f"{d.table}_coverage") in fake_bigquery.tables]
    never = [d for d in catalog.DATASETS if d not in loaded]
    datasets = loaded + never[:3] + [d for d in never if d.snapshot][:1]
    first, last = SETTLED - dt.timedelta(days=6), SETTLED + dt.timedelta(days=1)
    newest, coverage, rows = _one_by_one(remote, datasets, first, last)
    assert any(newest.values()) and any(coverage.values()) and rows

    before = len(fake_bigquery.queries)
    assert remote.newest_days(datasets) == newest
    assert remote.read_coverage_spans({d: (first, last) for d in datasets}) == coverage
    found = freshness.newest_rows(remote, datasets, last)
    assert len(fake_bigquery.queries) - before <= 5  # 1 + 1 + (newest days, bounds, snapshots)
    for code, instant in rows.items():
        assert found[code] == instant, code
    assert {code for code, instant in found.items() if instant} >= set(rows)
    assert coverage["FREQ"][SETTLED - dt.timedelta(days=2)].status == "failed"


def test_status_last_errors_in_one_query(
    remote: BigQueryWarehouse, fake_bigquery: FakeBigQuery
) -> None:
    before = len(fake_bigquery.queries)
    errors = last_errors(remote, list(catalog.DATASETS), SETTLED + dt.timedelta(days=1), 7)
    assert len(fake_bigquery.queries) - before == 1
    assert errors == {"FREQ": {"date": (SETTLED - dt.timedelta(days=2)).isoformat(),
                               "reason": "HTTP 500 from /datasets/FREQ", "failed_days": 1}}


def test_a_coverage_table_missing_a_newer_column_is_read_one_by_one(
    remote: BigQueryWarehouse, fake_bigquery: FakeBigQuery, caplog: pytest.LogCaptureFixture
) -> None:
    """A coverage table made before ``outside_window`` existed (and not written since)
    cannot join the one-query union: the read falls back to a query per dataset, same answer."""
    datasets = [catalog.get(code) for code in ("FUELINST", "FREQ", "MID")]
    first, last = SETTLED - dt.timedelta(days=6), SETTLED
    expected = remote.read_coverage_spans({d: (first, last) for d in datasets})
    state = fake_bigquery.tables[(PROJECT, DATASET, "freq_coverage")]
    fields = state.resource["schema"]["fields"]
    state.resource["schema"]["fields"] = [f for f in fields if f["name"] != "outside_window"]
    found = remote.read_coverage_spans({d: (first, last) for d in datasets})
    assert found == expected and found["FREQ"]
    assert "reading them one by one" in caplog.text


def test_the_sweep_reads_every_datasets_coverage_in_one_query(
    remote: BigQueryWarehouse, fake_bigquery: FakeBigQuery
) -> None:
    from worker.cluster.sweep import sweep

    before = len(fake_bigquery.queries)
    due = sweep(remote, list(catalog.DATASETS), SETTLED + dt.timedelta(days=1), 7)
    assert len(fake_bigquery.queries) - before == 1
    freq = [(c.day, c.reason) for c in due if c.dataset.code == "FREQ"]
    assert (SETTLED - dt.timedelta(days=2), "failed: HTTP 500 from /datasets/FREQ") in freq
    assert {c.dataset.code for c in due} > {"FREQ", "AGPT"}


def test_freshness_of_the_whole_catalog_costs_what_two_datasets_cost(
    remote: BigQueryWarehouse, fake_bigquery: FakeBigQuery
) -> None:
    """The beat's freshness check and ``bmrs status``: newest days, the newest days' bounds
    and the snapshots' last fetches, one query each, whatever the number of datasets."""
    two = [catalog.get("FUELINST"), catalog.get("BMUNITS")]
    few, _ = _queries_during(fake_bigquery, lambda: freshness.assess(remote, two, NOW))
    results: list[freshness.Freshness] = []
    every, _ = _queries_during(
        fake_bigquery, lambda: results.extend(freshness.assess(remote, list(catalog.DATASETS), NOW)))
    assert every == few <= 3
    fuel = next(r for r in results if r.dataset == "FUELINST")
    assert fuel.newest_utc is not None and not fuel.stale
    assert sum(r.newest_utc is None for r in results) > 50
