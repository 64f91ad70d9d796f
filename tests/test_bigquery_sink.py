"""The BigQuery sink, driven through the real google-cloud-bigquery client against the fake
REST API in tests/support/fake_bigquery.py: what it sends, and what BigQuery would then hold."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import threading
import time
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.cloud import bigquery

from tests.support.fake_bigquery import DATASET, LOCATION, PROJECT, FakeBigQuery
from tests.support.redis import RedisServer
from worker.elexon import catalog
from worker.elexon.coverage import Coverage
from worker.elexon.parse import parse_rows
from worker.settings import get_settings
from worker.sinks import QueryError, SinkConfigError, open_sink
from worker.sinks.bigquery import (
    BigQueryLoadError,
    BigQueryWarehouse,
    Location,
    cluster_columns,
)

DAY = dt.date(2025, 1, 14)
NEXT_DAY = DAY + dt.timedelta(days=1)
FUELINST = catalog.get("FUELINST")
WHERE = Location(PROJECT, DATASET, LOCATION)


def make_sink(fake: FakeBigQuery, **options: Any) -> BigQueryWarehouse:
    options.setdefault("retry_initial_s", 0.05)
    sink = BigQueryWarehouse(fake.client(), WHERE, **options)
    sink.check_dataset()
    return sink


def fuelinst_rows(
    day: dt.date, *, publish_minute: int = 5, fuels: tuple[str, ...] = ("CCGT", "WIND"),
    count: int = 12, source: str = "api",
) -> pa.Table:
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    rows = [
        {
            "publishTime": (start + dt.timedelta(minutes=5 * i + publish_minute)).isoformat(),
            "startTime": (start + dt.timedelta(minutes=5 * i)).isoformat(),
            "settlementDate": day.isoformat(),
            "settlementPeriod": i // 6 + 1,
            "fuelType": fuel,
            "generation": 1000 + 10 * i + len(fuel),
        }
        for i in range(count)
        for fuel in fuels
    ]
    return parse_rows(FUELINST, rows, source=source).table


def load(sink: BigQueryWarehouse, dataset: catalog.Dataset, day: dt.date, table: pa.Table) -> pa.Table:
    with sink.chunk_lock(dataset, day):
        return sink.load_chunk(dataset, day, table).stored


def table_inserts(fake: FakeBigQuery) -> dict[str, dict[str, Any]]:
    return {
        r.json["tableReference"]["tableId"]: r.json
        for r in fake.requests_matching("POST", r"/datasets/bmrs/tables$")
    }


def test_chunk_load_is_one_truncating_load_of_the_day_partition(fake_bigquery: FakeBigQuery) -> None:
    sink = make_sink(fake_bigquery)
    stored = load(sink, FUELINST, DAY, fuelinst_rows(DAY))

    assert len(fake_bigquery.loads) == 1
    job = fake_bigquery.loads[0]
    assert job.destination == f"{PROJECT}.{DATASET}.fuelinst_api$20250114"
    assert job.write_disposition == "WRITE_TRUNCATE"
    assert job.configuration["sourceFormat"] == "PARQUET"
    assert job.configuration["createDisposition"] == "CREATE_NEVER"
    assert job.error is None
    # The upload is the chunk itself, as Parquet made in memory.
    uploaded = pq.read_table(io.BytesIO(job.parquet))
    assert uploaded.equals(stored)
    assert stored.num_rows == 24
    # One multipart upload, then the job is polled until done.
    uploads = fake_bigquery.requests_matching("POST", r"^/upload/bigquery/v2/projects/bmrs-test/jobs$")
    assert [u.query["uploadType"] for u in uploads] == ["multipart"]
    assert fake_bigquery.requests_matching("GET", rf"/jobs/{job.job_id}$")
    # No DML and no query was needed to load.
    assert fake_bigquery.queries == []
    assert fake_bigquery.rows("bmrs.fuelinst_api", "20250114").num_rows == 24


def test_tables_are_partitioned_by_day_clustered_on_the_key_and_described(
    fake_bigquery: FakeBigQuery,
) -> None:
    sink = make_sink(fake_bigquery)
    for dataset in catalog.DATASETS:
        sink.ensure(dataset)
    created = table_inserts(fake_bigquery)
    api = created["fuelinst_api"]
    assert api["timePartitioning"] == {"type": "DAY", "field": "_day"}
    assert api["clustering"] == {"fields": ["startTime", "fuelType"]}
    assert "generation outturn by fuel type" in api["description"].lower()  # the spec summary
    columns = {f["name"]: f for f in api["schema"]["fields"]}
    assert columns["_day"]["type"] == "DATE"
    assert columns["startTime"]["type"] == "TIMESTAMP"
    assert columns["generation"]["type"] == "INTEGER"
    assert "partition" in columns["_day"]["description"]
    assert columns["fuelType"]["description"] == "Natural key"
    assert all(f["mode"] == "NULLABLE" for f in columns.values())
    # BOD's key has five columns; settlementDate is the partition, so four remain to cluster on.
    assert created["bod_api"]["clustering"]["fields"] == [
        "nationalGridBmUnit", "settlementPeriod", "pairId", "timeFrom"
    ]
    for dataset in catalog.DATASETS:
        table = created[f"{dataset.table}_api"]
        assert table["timePartitioning"]["field"] == "_day", dataset.code
        assert table["clustering"]["fields"] == cluster_columns(dataset)
        assert 1 <= len(cluster_columns(dataset)) <= 4
        assert created[f"{dataset.table}_stream"]["timePartitioning"]["field"] == "_day"
        assert created[f"{dataset.table}_coverage"]["timePartitioning"] == {"type": "DAY", "field": "date"}
        for view in ("", "_latest", "_unified"):
            assert "view" in created[dataset.table + view], dataset.code + view
    # REMIT's outage profile is a repeated record.
    remit = {f["name"]: f for f in created["remit_api"]["schema"]["fields"]}
    assert remit["outageProfile"]["mode"] == "REPEATED"
    assert [f["name"] for f in remit["outageProfile"]["fields"]] == ["startTime", "endTime", "capacity"]


def test_view_ddl_is_qualified_googlesql_and_means_the_same(fake_bigquery: FakeBigQuery) -> None:
    sink = make_sink(fake_bigquery)
    load(sink, FUELINST, DAY, fuelinst_rows(DAY, publish_minute=5))
    load(sink, FUELINST, DAY, fuelinst_rows(DAY, publish_minute=7))  # a revision of every row
    views = {name: body["view"] for name, body in table_inserts(fake_bigquery).items() if "view" in body}
    assert views["fuelinst"] == {
        "query": "SELECT * REPLACE (_day AS `settlementDate`) FROM `bmrs-test.bmrs.fuelinst_api`",
        "useLegacySql": False,
    }
    assert views["fuelinst_latest"]["query"] == (
        "SELECT * FROM `bmrs-test.bmrs.fuelinst` WHERE TRUE QUALIFY row_number() OVER "
        "(PARTITION BY `_day`, `settlementDate`, `startTime`, `fuelType` ORDER BY `publishTime` DESC NULLS LAST, "
        "_ingested_utc DESC, _hash_key) = 1"
    )
    unified = views["fuelinst_unified"]["query"]
    assert unified.startswith("SELECT * EXCEPT (_from_stream) FROM (SELECT `publishTime`, ")
    assert "0 AS _from_stream FROM `bmrs-test.bmrs.fuelinst` UNION ALL SELECT `publishTime`" in unified
    assert (
        "1 AS _from_stream FROM `bmrs-test.bmrs.fuelinst_stream`) WHERE TRUE QUALIFY "
        "_from_stream = 0 OR (COUNTIF(_from_stream = 0) OVER (PARTITION BY `_day`, "
        "`settlementDate`, `startTime`, `fuelType`, `publishTime`) = 0"
    ) in unified
    assert all(not v["useLegacySql"] for v in views.values())
    # And they mean what the local views mean: both versions kept, the newest one latest.
    counts = sink.query(
        "SELECT (SELECT count(*) FROM fuelinst) AS all_rows, (SELECT count(*) FROM fuelinst_latest) "
        "AS latest, (SELECT count(*) FROM fuelinst_unified) AS unified"
    ).to_pylist()
    assert counts == [{"all_rows": 48, "latest": 24, "unified": 48}]
    latest = sink.query("SELECT startTime, publishTime FROM fuelinst_latest").to_pylist()
    assert {row["publishTime"] - row["startTime"] for row in latest} == {dt.timedelta(minutes=7)}


def test_read_day_reads_only_that_partition_without_a_query(fake_bigquery: FakeBigQuery) -> None:
    sink = make_sink(fake_bigquery)
    first = load(sink, FUELINST, DAY, fuelinst_rows(DAY))
    load(sink, FUELINST, NEXT_DAY, fuelinst_rows(NEXT_DAY))
    before = len(fake_bigquery.requests)
    again = sink.read_day(FUELINST, DAY)
    assert again is not None and again.equals(first)
    reads = fake_bigquery.requests[before:]
    assert [(r.method, r.path) for r in reads] == [
        ("GET", f"/bigquery/v2/projects/{PROJECT}/datasets/{DATASET}/tables/fuelinst_api$20250114/data")
    ]
    assert sink.read_day(FUELINST, DAY - dt.timedelta(days=30)) is None
    assert fake_bigquery.queries == []


def test_upload_answered_503_is_retried_then_succeeds(fake_bigquery: FakeBigQuery) -> None:
    sink = make_sink(fake_bigquery)
    fake_bigquery.fail_requests("POST", r"^/upload/", status=503, reason="backendError")
    stored = load(sink, FUELINST, DAY, fuelinst_rows(DAY))
    uploads = fake_bigquery.requests_matching("POST", r"^/upload/")
    assert [u.status for u in uploads] == [503, 200]
    assert len(fake_bigquery.loads) == 1
    assert fake_bigquery.rows("bmrs.fuelinst_api", "20250114").num_rows == stored.num_rows == 24


def test_job_poll_answered_503_is_retried(fake_bigquery: FakeBigQuery) -> None:
    sink = make_sink(fake_bigquery)
    fake_bigquery.fail_requests("GET", r"/jobs/", status=503)
    load(sink, FUELINST, DAY, fuelinst_rows(DAY))
    polls = fake_bigquery.requests_matching("GET", r"/jobs/")
    assert [p.status for p in polls][:2] == [503, 200]
    assert len(fake_bigquery.loads) == 1


def test_transient_job_failure_runs_a_new_job(fake_bigquery: FakeBigQuery) -> None:
    sink = make_sink(fake_bigquery)
    fake_bigquery.fail_jobs(r"fuelinst_api\$", reason="backendError", message="Backend error. Job aborted.")
    load(sink, FUELINST, DAY, fuelinst_rows(DAY))
    assert [bool(job.error) for job in fake_bigquery.loads] == [True, False]
    assert fake_bigquery.loads[0].job_id != fake_bigquery.loads[1].job_id
    assert fake_bigquery.rows("bmrs.fuelinst_api", "20250114").num_rows == 24


def test_job_error_is_raised_with_bigquerys_own_message(fake_bigquery: FakeBigQuery) -> None:
    sink = make_sink(fake_bigquery)
    message = (
        "Error while reading data, error message: Parquet column 'generation' has type INT64 "
        "which does not match the target cpp_type DOUBLE."
    )
    fake_bigquery.fail_jobs(r"fuelinst_api\$", reason="invalid", message=message)
    with pytest.raises(BigQueryLoadError) as raised:
        load(sink, FUELINST, DAY, fuelinst_rows(DAY))
    text = str(raised.value)
    assert message in text
    assert "FUELINST 2025-01-14" in text and "fuelinst_api$20250114" in text
    assert len(fake_bigquery.loads) == 1  # not retried: it would fail the same way


def test_schema_drift_adds_a_nullable_column_instead_of_failing(fake_bigquery: FakeBigQuery) -> None:
    """A table made before the catalog had a field gains it as NULLABLE, then loads."""
    disbsad = catalog.get("DISBSAD")
    client = fake_bigquery.client()
    client.create_dataset(bigquery.Dataset(f"{PROJECT}.{DATASET}"))
    old = BigQueryWarehouse(client, WHERE)
    [api_table] = [t for t in old.tables_of(disbsad) if t.table_id == "disbsad_api"]
    api_table.schema = [f for f in api_table.schema if f.name != "service"]
    client.create_table(api_table)
    stale_view = bigquery.Table(f"{PROJECT}.{DATASET}.disbsad_latest")
    stale_view.view_query = "SELECT 1 AS x"
    client.create_table(stale_view)

    sink = make_sink(fake_bigquery)
    rows = parse_rows(disbsad, [{
        "settlementDate": DAY.isoformat(), "settlementPeriod": 3, "id": 7, "cost": 12.5,
        "volume": 3.0, "soFlag": True, "storFlag": False, "partyId": "P1", "assetId": "A1",
        "isTendered": False, "service": "Energy",
    }]).table
    load(sink, disbsad, DAY, rows)

    patches = fake_bigquery.requests_matching("PATCH", r"/tables/disbsad_api$")
    assert len(patches) == 1
    added = [(f["name"], f["type"], f["mode"]) for f in patches[0].json["schema"]["fields"]
             if f["name"] == "service"]
    assert added == [("service", "STRING", "NULLABLE")]
    assert fake_bigquery.loads[-1].error is None
    assert fake_bigquery.rows("bmrs.disbsad_api", "20250114").column("service").to_pylist() == ["Energy"]
    view_patch = fake_bigquery.requests_matching("PATCH", r"/tables/disbsad_latest$")
    assert "QUALIFY" in view_patch[0].json["view"]["query"]


def test_unpatched_new_column_is_refused_like_bigquery_does(fake_bigquery: FakeBigQuery) -> None:
    """The fake is strict, so the drift test above can fail: loading the new column into the
    old table without the schema patch is refused with BigQuery's message."""
    client = fake_bigquery.client()
    client.create_dataset(bigquery.Dataset(f"{PROJECT}.{DATASET}"))
    table = bigquery.Table(f"{PROJECT}.{DATASET}.t", schema=[bigquery.SchemaField("a", "INTEGER")])
    client.create_table(table)
    payload = io.BytesIO()
    pq.write_table(pa.table({"a": [1], "b": ["x"]}), payload)
    config = bigquery.LoadJobConfig(source_format="PARQUET")
    job = client.load_table_from_file(payload, f"{PROJECT}.{DATASET}.t", rewind=True, job_config=config)
    with pytest.raises(Exception, match="Cannot add fields"):
        job.result()


def test_redelivered_stream_batch_is_refused_as_a_duplicate_job(fake_bigquery: FakeBigQuery) -> None:
    sink = make_sink(fake_bigquery)
    rows = fuelinst_rows(DAY, count=3, source="iris")
    assert sink.append_stream(FUELINST, DAY, rows, "batch-abc123") is True
    assert sink.append_stream(FUELINST, DAY, rows, "batch-abc123") is False
    stream_loads = [job for job in fake_bigquery.loads if "_stream$" in job.destination]
    assert len(stream_loads) == 1
    job = stream_loads[0]
    assert job.destination == f"{PROJECT}.{DATASET}.fuelinst_stream$20250114"
    assert job.write_disposition == "WRITE_APPEND"
    assert job.job_id == "bmrs_bmrs_fuelinst_stream_20250114_batch-abc123_0"
    assert fake_bigquery.rows("bmrs.fuelinst_stream").num_rows == 6
    assert sink.query("SELECT count(*) AS n FROM fuelinst_unified").to_pylist() == [{"n": 6}]


def test_stream_batch_whose_job_failed_lands_under_the_next_job_id(fake_bigquery: FakeBigQuery) -> None:
    sink = make_sink(fake_bigquery)
    rows = fuelinst_rows(DAY, count=2, source="iris")
    fake_bigquery.fail_jobs(r"_stream\$", reason="invalid", message="Invalid something")
    with pytest.raises(BigQueryLoadError, match="Invalid something"):
        sink.append_stream(FUELINST, DAY, rows, "b1")
    # Redelivered: the failed job stays failed, the batch lands under the next id, once.
    assert sink.append_stream(FUELINST, DAY, rows, "b1") is True
    assert sink.append_stream(FUELINST, DAY, rows, "b1") is False
    assert [job.job_id[-2:] for job in fake_bigquery.loads] == ["_0", "_1"]
    assert fake_bigquery.rows("bmrs.fuelinst_stream").num_rows == 4


def test_big_chunk_arrives_as_a_resumable_upload(fake_bigquery: FakeBigQuery) -> None:
    """Over 5 MB the client switches to a resumable POST + PUT; the partition is the same."""
    sink = make_sink(fake_bigquery)
    freq = catalog.get("FREQ")
    start = dt.datetime(2025, 1, 14, tzinfo=dt.UTC)
    n = 86_400  # one sample a second: random hashes keep the file over 5 MB
    chunk = pa.table(
        {
            "measurementTime": pa.array([start + dt.timedelta(seconds=i) for i in range(n)], pa.timestamp("us", tz="UTC")),
            "frequency": pa.array([50 + (i % 997) / 10_000 for i in range(n)], pa.float64()),
            "_day": pa.array([DAY] * n, pa.date32()),
            "_hash_key": pa.array([hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)]),
            "_ingested_utc": pa.array([start] * n, pa.timestamp("us", tz="UTC")),
            "_source": pa.array(["api"] * n),
            "_extra": pa.nulls(n, pa.string()),
        },
        schema=freq.storage_schema,
    )
    stored = load(sink, freq, DAY, chunk)
    job = fake_bigquery.loads[-1]
    assert len(job.parquet) > 5 * 1024 * 1024
    assert [u.query["uploadType"] for u in fake_bigquery.requests_matching("POST", r"^/upload/")] == ["resumable"]
    assert len(fake_bigquery.requests_matching("PUT", r"^/upload/")) == 1
    assert pq.read_table(io.BytesIO(job.parquet)).equals(stored)
    assert fake_bigquery.rows("bmrs.freq_api", "20250114").num_rows == n


def test_coverage_is_recorded_in_bigquery_and_read_back(fake_bigquery: FakeBigQuery) -> None:
    sink = make_sink(fake_bigquery)
    assert sink.read_coverage(FUELINST, [DAY]) == {}
    record = Coverage(
        dataset="FUELINST", date=DAY, status="partial", rows=24, duplicates_dropped=3,
        periods_present=2, periods_expected=48, digest="ab" * 32,
        fetched_utc=dt.datetime(2025, 1, 15, 1, 2, 3, 456789, tzinfo=dt.UTC),
        reason="46 of 48 periods absent: 3-48", requests=1, outside_window=0,
    )
    sink.write_coverage(record)
    load_job = fake_bigquery.loads[-1]
    assert load_job.destination.endswith("fuelinst_coverage$20250114")
    assert load_job.write_disposition == "WRITE_TRUNCATE"
    assert sink.read_coverage(FUELINST, [DAY, NEXT_DAY]) == {DAY: record}
    statuses = [c.status for c in sink.coverage_range(FUELINST, DAY, NEXT_DAY)]
    assert statuses == ["partial", "missing"]


def test_query_errors_carry_bigquerys_message(fake_bigquery: FakeBigQuery) -> None:
    sink = make_sink(fake_bigquery)
    with pytest.raises(QueryError, match="no_such_table"):
        sink.query("SELECT * FROM no_such_table")


def test_prune_drops_stream_partitions_of_complete_days_only(fake_bigquery: FakeBigQuery) -> None:
    sink = make_sink(fake_bigquery)
    for day in (DAY, NEXT_DAY):
        rows = fuelinst_rows(day, count=1, source="iris")
        sink.append_stream(FUELINST, day, rows, f"b-{day}")
    sink.write_coverage(Coverage(dataset="FUELINST", date=DAY, status="complete", rows=24))
    assert sink.prune_stream(FUELINST, before=NEXT_DAY + dt.timedelta(days=1)) == [DAY]
    assert fake_bigquery.requests_matching("DELETE", r"/tables/fuelinst_stream\$20250114$")
    assert fake_bigquery.rows("bmrs.fuelinst_stream").num_rows == 2


def test_chunk_lock_is_one_redis_lock_for_every_sink(
    fake_bigquery: FakeBigQuery, redis_server: RedisServer
) -> None:
    first = make_sink(fake_bigquery, redis_client=redis_server.client())
    second = make_sink(fake_bigquery, redis_client=redis_server.client())
    acquired = threading.Event()

    def contend() -> None:
        with second.chunk_lock(FUELINST, DAY):
            acquired.set()

    with first.chunk_lock(FUELINST, DAY):
        assert redis_server.client().keys("bmrs:sink-lock:*") == [
            b"bmrs:sink-lock:bmrs-test.bmrs.fuelinst:2025-01-14"
        ]
        thread = threading.Thread(target=contend)
        thread.start()
        time.sleep(0.5)
        assert not acquired.is_set()
    thread.join(10)
    assert acquired.is_set()


def test_missing_settings_are_one_error_naming_each(bmrs_env: pytest.MonkeyPatch) -> None:
    bmrs_env.setenv("BMRS_SINK", "bigquery")
    get_settings.cache_clear()
    with pytest.raises(SinkConfigError) as raised:
        open_sink(get_settings())
    for name in ("BMRS_BQ_PROJECT", "BMRS_BQ_DATASET", "BMRS_BQ_LOCATION"):
        assert name in str(raised.value)
    bmrs_env.setenv("BMRS_BQ_PROJECT", "My Project")
    bmrs_env.setenv("BMRS_BQ_DATASET", "bmrs-data")
    bmrs_env.setenv("BMRS_BQ_LOCATION", "EU")
    get_settings.cache_clear()
    with pytest.raises(SinkConfigError, match="BMRS_BQ_PROJECT='My Project' is not a project id.*BMRS_BQ_DATASET"):
        open_sink(get_settings())


def test_missing_credentials_name_google_application_credentials(
    bmrs_env: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name, value in (("BMRS_SINK", "bigquery"), ("BMRS_BQ_PROJECT", "bmrs-test"),
                        ("BMRS_BQ_DATASET", "bmrs"), ("BMRS_BQ_LOCATION", "EU")):
        bmrs_env.setenv(name, value)
    bmrs_env.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "absent.json"))
    get_settings.cache_clear()
    with pytest.raises(SinkConfigError, match="GOOGLE_APPLICATION_CREDENTIALS"):
        open_sink(get_settings())


def test_open_sink_creates_the_dataset_and_refuses_a_wrong_location(
    bmrs_env: pytest.MonkeyPatch, fake_bigquery: FakeBigQuery
) -> None:
    for name, value in (("BMRS_SINK", "bigquery"), ("BMRS_BQ_PROJECT", PROJECT),
                        ("BMRS_BQ_DATASET", DATASET), ("BMRS_BQ_LOCATION", "EU"),
                        ("BMRS_BQ_API_ENDPOINT", fake_bigquery.url)):
        bmrs_env.setenv(name, value)
    get_settings.cache_clear()
    sink = open_sink(get_settings())
    assert isinstance(sink, BigQueryWarehouse)
    assert fake_bigquery.datasets[(PROJECT, DATASET)]["location"] == "EU"
    bmrs_env.setenv("BMRS_BQ_LOCATION", "US")
    get_settings.cache_clear()
    with pytest.raises(SinkConfigError, match="is in EU, but BMRS_BQ_LOCATION=US; set BMRS_BQ_LOCATION=EU"):
        open_sink(get_settings())
