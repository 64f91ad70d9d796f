"""A small local stand-in for the BigQuery REST API, for tests that drive the real client.

BigQuery is unreachable from here, so tests point the real ``google-cloud-bigquery`` client
(``AnonymousCredentials``, ``client_options={"api_endpoint": fake.url}``) at this server. It
records every request and answers the way the REST API does for what the sink uses:

- datasets get/insert; tables get/insert/patch/delete/list (partition decorators included);
- load jobs uploaded as one multipart POST or a resumable POST + PUT, run against the stored
  table the way BigQuery checks them (partition decorator, write disposition, schema: a new
  column is refused unless the table was patched or ``ALLOW_FIELD_ADDITION`` is set), then
  polled with ``jobs.get``; a job id used twice is refused with 409 ``duplicate``;
- ``tabledata.list`` of a table or one partition, with ``selectedFields`` and paging;
- ``jobs.query`` / ``jobs.insert`` + ``getQueryResults``: the GoogleSQL is transpiled with
  sqlglot and run by DuckDB over the stored rows, views included, so the views and queries
  the sink sends are exercised, not just recorded. Each day partition is read as a file of
  its own that only a query whose filters reach it opens, and
  :attr:`FakeBigQuery.partitions_read` records, per query, which partitions of which tables
  it read: what BigQuery's partition pruning (and its bill) would be.

Loaded partitions are stored (as Arrow), so reading a partition back works as on BigQuery.
Faults: :meth:`FakeBigQuery.fail_requests` (HTTP errors such as 503) and
:meth:`FakeBigQuery.fail_jobs` (a job that ends with an ``errorResult``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import http.server
import io
import itertools
import json
import re
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import sqlglot
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from tests.support.env import free_port

PROJECT = "bmrs-test"
DATASET = "bmrs"
LOCATION = "EU"
PAGE_ROWS = 20_000


class ApiError(Exception):
    """An error answer of the REST API: status, reason and message as BigQuery words them."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message

    def body(self) -> dict[str, Any]:
        statuses = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                    409: "ALREADY_EXISTS", 412: "FAILED_PRECONDITION", 500: "INTERNAL",
                    503: "UNAVAILABLE"}
        return {"error": {
            "code": self.status,
            "message": self.message,
            "errors": [{"message": self.message, "domain": "global", "reason": self.reason}],
            "status": statuses.get(self.status, "UNKNOWN"),
        }}


@dataclasses.dataclass
class Recorded:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes
    status: int = 0

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclasses.dataclass
class Load:
    """A load job the server ran: its destination, disposition and the uploaded file."""

    job_id: str
    destination: str  # project.dataset.table[$partition]
    write_disposition: str
    configuration: dict[str, Any]
    parquet: bytes
    error: str | None = None


@dataclasses.dataclass
class TableState:
    resource: dict[str, Any]
    partitions: dict[str, pa.Table] = dataclasses.field(default_factory=dict)

    @property
    def is_view(self) -> bool:
        return "view" in self.resource


@dataclasses.dataclass
class HttpFault:
    method: str
    path_pattern: str
    status: int
    reason: str
    times: int


@dataclasses.dataclass
class JobFault:
    destination_pattern: str
    reason: str
    message: str
    times: int


# -- types ---------------------------------------------------------------------------------

def arrow_type(field: dict[str, Any]) -> pa.DataType:
    kind = field["type"].upper()
    if kind in ("RECORD", "STRUCT"):
        base: pa.DataType = pa.struct([pa.field(f["name"], arrow_type(f)) for f in field["fields"]])
    else:
        base = {
            "STRING": pa.string(), "INTEGER": pa.int64(), "INT64": pa.int64(),
            "FLOAT": pa.float64(), "FLOAT64": pa.float64(), "BOOLEAN": pa.bool_(),
            "BOOL": pa.bool_(), "DATE": pa.date32(), "TIMESTAMP": pa.timestamp("us", tz="UTC"),
            "DATETIME": pa.timestamp("us"), "NUMERIC": pa.decimal128(38, 9),
        }[kind]
    return pa.list_(base) if field.get("mode") == "REPEATED" else base


def arrow_schema(fields: list[dict[str, Any]]) -> pa.Schema:
    return pa.schema([pa.field(f["name"], arrow_type(f)) for f in fields])


def bq_fields(schema: pa.Schema) -> list[dict[str, Any]]:
    return [bq_field(f.name, f.type) for f in schema]


def bq_field(name: str, arrow: pa.DataType) -> dict[str, Any]:
    mode = "NULLABLE"
    if pa.types.is_list(arrow) or pa.types.is_large_list(arrow):
        mode, arrow = "REPEATED", arrow.value_type
    if pa.types.is_struct(arrow):
        return {"name": name, "type": "RECORD", "mode": mode,
                "fields": [bq_field(f.name, f.type) for f in arrow]}
    if pa.types.is_timestamp(arrow):
        kind = "TIMESTAMP" if arrow.tz else "DATETIME"
    elif pa.types.is_date(arrow):
        kind = "DATE"
    elif pa.types.is_integer(arrow):
        kind = "INTEGER"
    elif pa.types.is_floating(arrow):
        kind = "FLOAT"
    elif pa.types.is_boolean(arrow):
        kind = "BOOLEAN"
    elif pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
        kind = "STRING"
    elif pa.types.is_decimal(arrow):
        kind = "NUMERIC" if arrow.precision <= 38 and arrow.scale <= 9 else "BIGNUMERIC"
    elif pa.types.is_null(arrow):
        kind = "STRING"
    else:
        raise ApiError(400, "invalidQuery", f"the fake cannot return values of type {arrow}")
    return {"name": name, "type": kind, "mode": mode}


def encode_value(value: Any, field: dict[str, Any], int64_timestamps: bool) -> Any:
    """One cell the way the REST API writes it (strings; records as {"f": [...]})."""
    if value is None:
        return None
    if field.get("mode") == "REPEATED":
        inner = {**field, "mode": "NULLABLE"}
        return [{"v": encode_value(v, inner, int64_timestamps)} for v in value]
    kind = field["type"].upper()
    if kind in ("RECORD", "STRUCT"):
        return {"f": [{"v": encode_value(value.get(f["name"]), f, int64_timestamps)}
                      for f in field["fields"]]}
    if kind == "TIMESTAMP":
        micros = (value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
        return str(micros) if int64_timestamps else f"{micros / 1e6:.6f}"
    if kind == "DATETIME":
        return value.isoformat()
    if kind == "DATE":
        return value.isoformat()
    if kind in ("BOOLEAN", "BOOL"):
        return "true" if value else "false"
    if kind in ("FLOAT", "FLOAT64"):
        return repr(float(value))
    return str(value)


def encode_rows(table: pa.Table, fields: list[dict[str, Any]], int64_timestamps: bool) -> list[dict[str, Any]]:
    columns = [table.column(f["name"]).to_pylist() for f in fields]
    return [
        {"f": [{"v": encode_value(v, f, int64_timestamps)} for v, f in zip(values, fields)]}
        for values in zip(*columns)
    ] if fields else []


def split_table_id(table_id: str) -> tuple[str, str | None]:
    name, _, decorator = table_id.partition("$")
    return name, decorator or None


# -- the service ---------------------------------------------------------------------------

class FakeBigQuery:
    """State and behaviour of the fake API; :meth:`start` serves it on a free local port."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.requests: list[Recorded] = []
        self.loads: list[Load] = []
        self.queries: list[str] = []
        # Per query: table name -> the partition ids (YYYYMMDD) the query read.
        self.partitions_read: list[dict[str, list[str]]] = []
        self.datasets: dict[tuple[str, str], dict[str, Any]] = {}
        self.tables: dict[tuple[str, str, str], TableState] = {}
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.job_polls: dict[tuple[str, str], int] = {}
        self.query_results: dict[tuple[str, str], tuple[list[dict[str, Any]], list[Any]]] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.upload_bytes: dict[str, bytearray] = {}
        self.http_faults: list[HttpFault] = []
        self.job_faults: list[JobFault] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: http.server.ThreadingHTTPServer | None = None
        self._etags = itertools.count(1)

    # -- test controls --------------------------------------------------------------------

    def fail_requests(self, method: str, path_pattern: str, *, status: int = 503,
                      reason: str = "backendError", times: int = 1) -> None:
        """Answer the next ``times`` matching requests with an HTTP error."""
        with self.lock:
            self.http_faults.append(HttpFault(method, path_pattern, status, reason, times))

    def fail_jobs(self, destination_pattern: str, *, reason: str, message: str, times: int = 1) -> None:
        """Let the next ``times`` load jobs into a matching destination end in this error."""
        with self.lock:
            self.job_faults.append(JobFault(destination_pattern, reason, message, times))

    def client(self) -> bigquery.Client:
        """A real BigQuery client talking to this server."""
        return bigquery.Client(
            project=PROJECT,
            location=LOCATION,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options=ClientOptions(api_endpoint=self.url),
        )

    def rows(self, table: str, partition: str | None = None) -> pa.Table:
        """Stored rows of ``dataset.table`` (or one partition ``YYYYMMDD``)."""
        dataset, name = table.split(".")
        with self.lock:
            state = self.tables[(PROJECT, dataset, name)]
            return self._table_rows(state, partition)

    def requests_matching(self, method: str, pattern: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and re.search(pattern, r.path)]

    # -- server ---------------------------------------------------------------------------

    def start(self) -> None:
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body in separate writes

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, payload = fake.dispatch(self.command, self.path, self.headers, body)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def dispatch(self, method: str, raw_path: str, headers: Any, body: bytes) -> tuple[int, dict[str, str], bytes]:
        parsed = urllib.parse.urlsplit(raw_path)
        path = urllib.parse.unquote(parsed.path)
        query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        record = Recorded(method, path, query, body)
        with self.lock:
            self.requests.append(record)
            extra_headers: dict[str, str] = {}
            try:
                self._maybe_fault(method, path)
                status, answer = self._route(method, path, query, headers, body, extra_headers)
            except ApiError as exc:
                status, answer = exc.status, exc.body()
            record.status = status
        payload = b"" if answer is None else json.dumps(answer).encode()
        return status, {"Content-Type": "application/json; charset=UTF-8", **extra_headers}, payload

    def _maybe_fault(self, method: str, path: str) -> None:
        for fault in self.http_faults:
            if fault.times > 0 and fault.method == method and re.search(fault.path_pattern, path):
                fault.times -= 1
                raise ApiError(fault.status, fault.reason, f"Injected {fault.status} ({fault.reason})")

    def _route(self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes,
               extra_headers: dict[str, str]) -> tuple[int, Any]:
        m = re.fullmatch(r"/upload/bigquery/v2/projects/([^/]+)/jobs", path)
        if m:
            return self._upload(method, m.group(1), query, headers, body, extra_headers)
        m = re.fullmatch(r"/bigquery/v2/projects/([^/]+)(/.*)", path)
        if not m:
            raise ApiError(404, "notFound", f"Not found: URL {path}")
        project, rest = m.group(1), m.group(2)
        request = json.loads(body) if body else {}
        routes: list[tuple[str, str, Callable[..., tuple[int, Any]]]] = [
            ("POST", r"/datasets", self._dataset_insert),
            ("GET", r"/datasets/([^/]+)", self._dataset_get),
            ("GET", r"/datasets/([^/]+)/tables", self._table_list),
            ("POST", r"/datasets/([^/]+)/tables", self._table_insert),
            ("GET", r"/datasets/([^/]+)/tables/([^/]+)", self._table_get),
            ("PATCH", r"/datasets/([^/]+)/tables/([^/]+)", self._table_patch),
            ("PUT", r"/datasets/([^/]+)/tables/([^/]+)", self._table_patch),
            ("DELETE", r"/datasets/([^/]+)/tables/([^/]+)", self._table_delete),
            ("GET", r"/datasets/([^/]+)/tables/([^/]+)/data", self._tabledata_list),
            ("POST", r"/jobs", self._job_insert),
            ("GET", r"/jobs/([^/]+)", self._job_get),
            ("POST", r"/queries", self._query),
            ("GET", r"/queries/([^/]+)", self._query_results),
        ]
        for verb, pattern, handler in routes:
            hit = re.fullmatch(pattern, rest)
            if verb == method and hit:
                return handler(project, *hit.groups(), query=query, request=request)
        raise ApiError(404, "notFound", f"Not found: {method} {path}")

    # -- datasets and tables --------------------------------------------------------------

    def _dataset_insert(self, project: str, *, query: dict[str, str], request: dict[str, Any]) -> tuple[int, Any]:
        ref = request["datasetReference"]
        key = (project, ref["datasetId"])
        if key in self.datasets:
            raise ApiError(409, "duplicate", f"Already Exists: Dataset {project}:{ref['datasetId']}")
        resource = {**request, "kind": "bigquery#dataset", "id": f"{project}:{ref['datasetId']}",
                    "location": request.get("location", "US"), "etag": str(next(self._etags))}
        self.datasets[key] = resource
        return 200, resource

    def _dataset_get(self, project: str, dataset: str, **_: Any) -> tuple[int, Any]:
        if (project, dataset) not in self.datasets:
            raise ApiError(404, "notFound", f"Not found: Dataset {project}:{dataset}")
        return 200, self.datasets[(project, dataset)]

    def _need_dataset(self, project: str, dataset: str) -> None:
        if (project, dataset) not in self.datasets:
            raise ApiError(404, "notFound", f"Not found: Dataset {project}:{dataset}")

    def _need_table(self, project: str, dataset: str, table: str) -> TableState:
        self._need_dataset(project, dataset)
        state = self.tables.get((project, dataset, table))
        if state is None:
            raise ApiError(404, "notFound", f"Not found: Table {project}:{dataset}.{table}")
        return state

    def _table_list(self, project: str, dataset: str, **_: Any) -> tuple[int, Any]:
        self._need_dataset(project, dataset)
        items = [
            {"kind": "bigquery#table", "id": f"{p}:{d}.{t}", "tableReference": s.resource["tableReference"],
             "type": s.resource["type"]}
            for (p, d, t), s in self.tables.items() if (p, d) == (project, dataset)
        ]
        return 200, {"kind": "bigquery#tableList", "tables": items, "totalItems": len(items)}

    def _table_insert(self, project: str, dataset: str, *, request: dict[str, Any], **_: Any) -> tuple[int, Any]:
        self._need_dataset(project, dataset)
        name = request["tableReference"]["tableId"]
        key = (project, dataset, name)
        if key in self.tables:
            raise ApiError(409, "duplicate", f"Already Exists: Table {project}:{dataset}.{name}")
        resource = dict(request)
        resource.update({
            "kind": "bigquery#table", "id": f"{project}:{dataset}.{name}",
            "type": "VIEW" if "view" in request else "TABLE",
            "location": self.datasets[(project, dataset)]["location"],
            "creationTime": str(int(dt.datetime.now().timestamp() * 1000)),
            "etag": str(next(self._etags)),
        })
        if "view" in request:
            self._check_sql(request["view"]["query"])
        self.tables[key] = TableState(resource)
        return 200, self._table_resource(self.tables[key])

    def _table_resource(self, state: TableState, partition: str | None = None) -> dict[str, Any]:
        resource = dict(state.resource)
        if not state.is_view:
            rows = self._table_rows(state, partition)
            resource["numRows"] = str(rows.num_rows)
        return resource

    def _table_get(self, project: str, dataset: str, table: str, **_: Any) -> tuple[int, Any]:
        name, partition = split_table_id(table)
        return 200, self._table_resource(self._need_table(project, dataset, name), partition)

    def _table_patch(self, project: str, dataset: str, table: str, *, request: dict[str, Any], **_: Any) -> tuple[int, Any]:
        state = self._need_table(project, dataset, table)
        if "schema" in request:
            old = {f["name"].lower(): f for f in state.resource.get("schema", {}).get("fields", [])}
            new = {f["name"].lower(): f for f in request["schema"]["fields"]}
            dropped = sorted(set(old) - set(new))
            if dropped:
                raise ApiError(400, "invalid", f"Provided Schema does not match Table {project}:{dataset}.{table}. "
                                               f"Cannot drop fields (field: {dropped[0]})")
            for name_, field in new.items():
                if name_ not in old and field.get("mode") == "REQUIRED":
                    raise ApiError(400, "invalid", f"Provided Schema does not match Table {project}:{dataset}.{table}. "
                                                   f"Cannot add required fields to an existing schema. (field: {field['name']})")
                if name_ in old and old[name_]["type"] != field["type"]:
                    raise ApiError(400, "invalid", f"Provided Schema does not match Table {project}:{dataset}.{table}. "
                                                   f"Field {field['name']} has changed type from {old[name_]['type']} to {field['type']}")
        if "view" in request:
            self._check_sql(request["view"]["query"])
        for key in ("schema", "view", "description", "labels", "clustering", "friendlyName"):
            if key in request:
                state.resource[key] = request[key]
        state.resource["etag"] = str(next(self._etags))
        return 200, self._table_resource(state)

    def _table_delete(self, project: str, dataset: str, table: str, **_: Any) -> tuple[int, Any]:
        name, partition = split_table_id(table)
        state = self._need_table(project, dataset, name)
        if partition is None:
            del self.tables[(project, dataset, name)]
        else:
            state.partitions.pop(partition, None)
        return 204, None

    def _table_rows(self, state: TableState, partition: str | None = None) -> pa.Table:
        schema = arrow_schema(state.resource.get("schema", {}).get("fields", []))
        parts = (
            [state.partitions[partition]] if partition in state.partitions
            else [] if partition is not None
            else list(state.partitions.values())
        )
        parts = [self._conform(p, schema) for p in parts]
        return pa.concat_tables(parts) if parts else schema.empty_table()

    @staticmethod
    def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
        columns = [
            table.column(f.name).cast(f.type) if f.name in table.column_names
            else pa.nulls(table.num_rows, f.type)
            for f in schema
        ]
        return pa.Table.from_arrays(columns, schema=schema)

    def _tabledata_list(self, project: str, dataset: str, table: str, *, query: dict[str, str], **_: Any) -> tuple[int, Any]:
        name, partition = split_table_id(table)
        state = self._need_table(project, dataset, name)
        if state.is_view:
            raise ApiError(400, "invalid", f"Cannot list a table of type VIEW: {project}:{dataset}.{name}")
        rows = self._table_rows(state, partition)
        fields = state.resource["schema"]["fields"]
        if query.get("selectedFields"):
            by_name = {f["name"]: f for f in fields}
            wanted = query["selectedFields"].split(",")
            missing = [w for w in wanted if w not in by_name]
            if missing:
                raise ApiError(400, "invalid", f"Field {missing[0]} not found in table {name}")
            fields = [by_name[w] for w in wanted]
        start = int(query.get("pageToken") or 0)
        size = min(int(query.get("maxResults") or PAGE_ROWS), PAGE_ROWS)
        page = rows.slice(start, size)
        answer: dict[str, Any] = {
            "kind": "bigquery#tableDataList", "totalRows": str(rows.num_rows),
            "rows": encode_rows(page, fields, str(query.get("formatOptions.useInt64Timestamp")).lower() == "true"),
            "etag": state.resource["etag"],
        }
        if start + size < rows.num_rows:
            answer["pageToken"] = str(start + size)
        return 200, answer

    # -- uploads and load jobs ------------------------------------------------------------

    def _upload(self, method: str, project: str, query: dict[str, str], headers: Any, body: bytes,
                extra_headers: dict[str, str]) -> tuple[int, Any]:
        kind = query.get("uploadType")
        if method == "POST" and kind == "multipart":
            boundary = re.search(r'boundary="?([^";]+)"?', headers.get("Content-Type", "")).group(1)
            parts = body.split(b"--" + boundary.encode())
            metadata = json.loads(parts[1].split(b"\r\n\r\n", 1)[1].rstrip(b"\r\n"))
            data = parts[2].split(b"\r\n\r\n", 1)[1][: -len(b"\r\n")]
            return 200, self._create_load_job(project, metadata, data)
        if method == "POST" and kind == "resumable":
            upload_id = uuid.uuid4().hex
            self.uploads[upload_id] = json.loads(body)
            self.upload_bytes[upload_id] = bytearray()
            extra_headers["Location"] = (
                f"{self.url}/upload/bigquery/v2/projects/{project}/jobs?uploadType=resumable&upload_id={upload_id}"
            )
            return 200, None
        if method == "PUT" and query.get("upload_id") in self.uploads:
            upload_id = query["upload_id"]
            self.upload_bytes[upload_id] += body
            content_range = headers.get("Content-Range", "")
            total = content_range.rsplit("/", 1)[-1]
            if total != "*" and int(total) == len(self.upload_bytes[upload_id]):
                metadata = self.uploads.pop(upload_id)
                return 200, self._create_load_job(project, metadata, bytes(self.upload_bytes.pop(upload_id)))
            extra_headers["Range"] = f"bytes=0-{len(self.upload_bytes[upload_id]) - 1}"
            return 308, None
        raise ApiError(400, "invalid", f"unsupported upload request {method} {query}")

    def _new_job(self, project: str, request: dict[str, Any]) -> tuple[tuple[str, str], dict[str, Any]]:
        reference = dict(request.get("jobReference") or {})
        job_id = reference.get("jobId") or uuid.uuid4().hex
        location = reference.get("location") or LOCATION
        key = (project, job_id)
        if key in self.jobs:
            raise ApiError(409, "duplicate", f"Already Exists: Job {project}:{location}.{job_id}")
        job = {
            "kind": "bigquery#job", "id": f"{project}:{location}.{job_id}",
            "jobReference": {"projectId": project, "jobId": job_id, "location": location},
            "configuration": request["configuration"],
            "status": {"state": "RUNNING"},
            "statistics": {"creationTime": str(int(dt.datetime.now().timestamp() * 1000))},
        }
        self.jobs[key] = job
        self.job_polls[key] = 0
        return key, job

    def _create_load_job(self, project: str, metadata: dict[str, Any], data: bytes) -> dict[str, Any]:
        key, job = self._new_job(project, metadata)
        config = metadata["configuration"]["load"]
        dest = config["destinationTable"]
        destination = f"{dest['projectId']}.{dest['datasetId']}.{dest['tableId']}"
        load = Load(key[1], destination, config.get("writeDisposition", "WRITE_APPEND"), config, data)
        self.loads.append(load)
        try:
            self._run_load(config, data)
            output = "done"
        except ApiError as exc:
            load.error = exc.message
            job["status"]["errorResult"] = {"reason": exc.reason, "message": exc.message}
            job["status"]["errors"] = [{"reason": exc.reason, "message": exc.message}]
            output = None
        job["_final_state"] = "DONE"
        if output:
            job["statistics"]["load"] = {"outputRows": str(self._last_output_rows)}
        return self._job_view(key)

    def _job_view(self, key: tuple[str, str]) -> dict[str, Any]:
        job = self.jobs[key]
        view = {k: v for k, v in job.items() if not k.startswith("_")}
        if job["status"].get("state") == "DONE":
            return view
        # The first answer says RUNNING, so the client polls with jobs.get like against BigQuery.
        status = {"state": "RUNNING"}
        return {**view, "status": status}

    def _run_load(self, config: dict[str, Any], data: bytes) -> None:
        dest = config["destinationTable"]
        project, dataset = dest["projectId"], dest["datasetId"]
        name, partition = split_table_id(dest["tableId"])
        full = f"{project}:{dataset}.{name}"
        for fault in self.job_faults:
            if fault.times > 0 and re.search(fault.destination_pattern, f"{project}.{dataset}.{dest['tableId']}"):
                fault.times -= 1
                raise ApiError(500 if fault.reason in ("backendError", "internalError") else 400,
                               fault.reason, fault.message)
        if config.get("sourceFormat") != "PARQUET":
            raise ApiError(400, "invalid", f"the fake loads PARQUET only, got {config.get('sourceFormat')}")
        try:
            incoming = pq.read_table(io.BytesIO(data))
        except Exception as exc:  # noqa: BLE001 - BigQuery's words for an unreadable file
            raise ApiError(400, "invalid", f"Error while reading data, error message: {exc}") from None
        self._need_dataset(project, dataset)
        state = self.tables.get((project, dataset, name))
        if state is None:
            if config.get("createDisposition") == "CREATE_NEVER":
                raise ApiError(404, "notFound", f"Not found: Table {full}")
            raise ApiError(400, "invalid", "the fake creates tables only with tables.insert")
        fields = state.resource["schema"]["fields"]
        have = {f["name"].lower(): f for f in fields}
        allow_add = "ALLOW_FIELD_ADDITION" in config.get("schemaUpdateOptions", [])
        for column in incoming.schema:
            known = have.get(column.name.lower())
            if known is None:
                if not allow_add:
                    raise ApiError(400, "invalid", f"Provided Schema does not match Table {full}. "
                                                   f"Cannot add fields (field: {column.name})")
                fields.append(bq_field(column.name, column.type))
                continue
            expected = bq_field(column.name, column.type)
            if (expected["type"], expected["mode"]) != (known["type"], known.get("mode", "NULLABLE")):
                raise ApiError(400, "invalid", f"Provided Schema does not match Table {full}. Field "
                                               f"{column.name} has changed type from {known['type']} to {expected['type']}")
        schema = arrow_schema(fields)
        rows = self._conform(incoming, schema)
        partition_field = (state.resource.get("timePartitioning") or {}).get("field")
        if partition is not None:
            if partition_field is None:
                raise ApiError(400, "invalid", f"Cannot use partition decorator on non-partitioned table {full}")
            days = set(rows.column(partition_field).cast(pa.date32()).to_pylist()) if rows.num_rows else set()
            if days - {dt.datetime.strptime(partition, "%Y%m%d").date()}:
                raise ApiError(400, "invalid", "Some rows belong to different partitions rather than "
                                               f"destination partition {partition}")
            groups = {partition: rows}
        else:
            groups = self._group_by_partition(rows, partition_field)
        disposition = config.get("writeDisposition", "WRITE_APPEND")
        if disposition == "WRITE_TRUNCATE":
            if partition is None:
                state.partitions.clear()
            for pid, group in groups.items():
                state.partitions[pid] = group
        elif disposition == "WRITE_APPEND":
            for pid, group in groups.items():
                old = state.partitions.get(pid)
                state.partitions[pid] = group if old is None else pa.concat_tables([self._conform(old, schema), group])
        elif disposition == "WRITE_EMPTY":
            if any(state.partitions.get(pid) is not None and state.partitions[pid].num_rows for pid in groups):
                raise ApiError(400, "duplicate", f"Already Exists: Table {full}")
            state.partitions.update(groups)
        state.resource["lastModifiedTime"] = str(int(dt.datetime.now().timestamp() * 1000))
        self._last_output_rows = rows.num_rows

    @staticmethod
    def _group_by_partition(rows: pa.Table, field: str | None) -> dict[str, pa.Table]:
        if field is None:
            return {"__UNPARTITIONED__": rows}
        days = rows.column(field).cast(pa.date32())
        groups = {}
        for day in pc.unique(days).to_pylist():
            key = "__NULL__" if day is None else day.strftime("%Y%m%d")
            mask = pc.is_null(days) if day is None else pc.equal(days, pa.scalar(day, pa.date32()))
            groups[key] = rows.filter(mask)
        return groups

    def _job_insert(self, project: str, *, request: dict[str, Any], **_: Any) -> tuple[int, Any]:
        config = request.get("configuration", {})
        if "query" not in config:
            raise ApiError(400, "invalid", "the fake runs query jobs and uploaded load jobs only")
        key, job = self._new_job(project, request)
        query = config["query"]
        try:
            result = self._execute(query["query"], query.get("defaultDataset"))
            self.query_results[key] = result
            job["statistics"]["query"] = {"totalBytesProcessed": "0"}
        except ApiError as exc:
            job["status"]["errorResult"] = {"reason": exc.reason, "message": exc.message}
            job["status"]["errors"] = [{"reason": exc.reason, "message": exc.message}]
        job["_final_state"] = "DONE"
        return 200, self._job_view(key)

    def _job_get(self, project: str, job_id: str, **_: Any) -> tuple[int, Any]:
        key = (project, job_id)
        if key not in self.jobs:
            raise ApiError(404, "notFound", f"Not found: Job {project}:{job_id}")
        job = self.jobs[key]
        self.job_polls[key] += 1
        job["status"]["state"] = job.get("_final_state", "RUNNING")
        return 200, self._job_view(key)

    # -- queries --------------------------------------------------------------------------

    def _query(self, project: str, *, request: dict[str, Any], **_: Any) -> tuple[int, Any]:
        fields, rows = self._execute(request["query"], request.get("defaultDataset"),
                                     int64_timestamps=(request.get("formatOptions") or {}).get("useInt64Timestamp", False))
        job_id = uuid.uuid4().hex
        answer = {
            "kind": "bigquery#queryResponse", "schema": {"fields": fields},
            "jobReference": {"projectId": project, "jobId": job_id, "location": LOCATION},
            "totalRows": str(len(rows)), "jobComplete": True, "cacheHit": False,
            "totalBytesProcessed": "0",
        }
        if rows:
            answer["rows"] = rows
        return 200, answer

    def _query_results(self, project: str, job_id: str, *, query: dict[str, str], **_: Any) -> tuple[int, Any]:
        key = (project, job_id)
        if key not in self.jobs:
            raise ApiError(404, "notFound", f"Not found: Job {project}:{job_id}")
        job = self.jobs[key]
        job["status"]["state"] = "DONE"
        if "errorResult" in job["status"]:
            error = job["status"]["errorResult"]
            raise ApiError(400, error["reason"], error["message"])
        fields, rows = self.query_results[key]
        start = int(query.get("pageToken") or 0)
        size = int(query["maxResults"]) if query.get("maxResults") else len(rows)
        answer = {
            "kind": "bigquery#getQueryResultsResponse", "schema": {"fields": fields},
            "jobReference": job["jobReference"], "totalRows": str(len(rows)), "jobComplete": True,
            "rows": rows[start:start + size],
        }
        if start + size < len(rows):
            answer["pageToken"] = str(start + size)
        return 200, answer

    def _check_sql(self, sql: str) -> None:
        try:
            sqlglot.transpile(sql, read="bigquery", write="duckdb")
        except sqlglot.errors.ParseError as exc:
            raise ApiError(400, "invalidQuery", f"Syntax error: {exc}") from None

    def _execute(self, sql: str, default_dataset: dict[str, str] | None, *,
                 int64_timestamps: bool = True) -> tuple[list[dict[str, Any]], list[Any]]:
        """Run GoogleSQL over the stored tables and views in DuckDB; BigQuery-shaped result."""
        self.queries.append(sql)
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")
            for project, dataset in self.datasets:
                if project not in {r[0] for r in con.execute("SELECT database_name FROM duckdb_databases()").fetchall()}:
                    con.execute(f"ATTACH ':memory:' AS {_q(project)}")
                con.execute(f"CREATE SCHEMA {_q(project)}.{_q(dataset)}")
            pending = []
            files = _RecordingFiles()
            partitioned: dict[str, str] = {}
            for (project, dataset, name), state in self.tables.items():
                target = f"{_q(project)}.{_q(dataset)}.{_q(name)}"
                if state.is_view:
                    pending.append((target, state.resource["view"]["query"]))
                    continue
                field = (state.resource.get("timePartitioning") or {}).get("field")
                schema = arrow_schema(state.resource.get("schema", {}).get("fields", []))
                if field and pa.types.is_date(schema.field(field).type):
                    source = f"_partitions_{len(partitioned)}"
                    partitioned[source] = name
                    con.register(source, files.dataset(source, schema, field, {
                        pid: self._conform(rows, schema) for pid, rows in state.partitions.items()
                    }))
                    con.execute(f"CREATE VIEW {target} AS SELECT * FROM {source}")
                    continue
                con.register("_incoming", self._table_rows(state))
                con.execute(f"CREATE TABLE {target} AS SELECT * FROM _incoming")
                con.unregister("_incoming")
            while pending:  # views may read views: create them in an order that binds
                failed = []
                for target, view_sql in pending:
                    try:
                        con.execute(f"CREATE VIEW {target} AS {_duckdb_sql(view_sql)}")
                    except duckdb.Error:
                        failed.append((target, view_sql))
                if len(failed) == len(pending):
                    target, view_sql = failed[0]
                    try:
                        con.execute(f"CREATE VIEW {target} AS {_duckdb_sql(view_sql)}")
                    except duckdb.Error as exc:
                        raise ApiError(400, "invalidQuery", f"view {target} is invalid: {exc}") from None
                pending = failed
            if default_dataset:
                con.execute(f"USE {_q(default_dataset['projectId'])}.{_q(default_dataset['datasetId'])}")
            try:
                result = con.sql(_duckdb_sql(sql))
                table = result.to_arrow_table() if result is not None else pa.table({})
            except duckdb.Error as exc:
                raise ApiError(400, "invalidQuery", str(exc).splitlines()[0]) from None
            read: dict[str, list[str]] = {}
            for path in files.handler.opened:
                source, _, pid = path.removesuffix(".parquet").partition("/")
                read.setdefault(partitioned[source], [])
                if pid not in read[partitioned[source]]:
                    read[partitioned[source]].append(pid)
            self.partitions_read.append({k: sorted(v) for k, v in read.items()})
        finally:
            con.close()
        fields = bq_fields(table.schema)
        return fields, encode_rows(table, fields, int64_timestamps)


class _RecordingHandler(pafs.FileSystemHandler):
    """An in-memory file system that remembers which files were opened for reading."""

    def __init__(self) -> None:
        self.inner = pafs._MockFileSystem()
        self.opened: list[str] = []

    def get_type_name(self) -> str:
        return "recording"

    def normalize_path(self, path: str) -> str:
        return path

    def equals(self, other: Any) -> bool:
        return other is self

    def get_file_info(self, paths: Any) -> Any:
        return self.inner.get_file_info(paths)

    def get_file_info_selector(self, selector: Any) -> Any:
        return self.inner.get_file_info(selector)

    def create_dir(self, path: str, recursive: bool) -> None:
        self.inner.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        self.inner.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self.inner.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        self.inner.delete_dir_contents("", accept_root_dir=True)

    def delete_file(self, path: str) -> None:
        self.inner.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self.inner.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        self.inner.copy_file(src, dest)

    def open_input_stream(self, path: str) -> Any:
        self.opened.append(path)
        return self.inner.open_input_stream(path)

    def open_input_file(self, path: str) -> Any:
        self.opened.append(path)
        return self.inner.open_input_file(path)

    def open_output_stream(self, path: str, metadata: Any) -> Any:
        return self.inner.open_output_stream(path, metadata=metadata)

    def open_append_stream(self, path: str, metadata: Any) -> Any:
        return self.inner.open_append_stream(path, metadata=metadata)


class _RecordingFiles:
    """Partitions as one Parquet file each, in a recording file system: an Arrow dataset whose
    files are guaranteed to hold one day each, so only the partitions a query's filters reach
    are opened, as BigQuery prunes them."""

    def __init__(self) -> None:
        self.handler = _RecordingHandler()
        self.fs = pafs.PyFileSystem(self.handler)

    def dataset(self, source: str, schema: pa.Schema, field: str, parts: dict[str, pa.Table]) -> Any:
        if not parts:
            return schema.empty_table()
        self.fs.create_dir(source)
        paths, guarantees = [], []
        for pid, rows in sorted(parts.items()):
            path = f"{source}/{pid}.parquet"
            pq.write_table(rows, path, filesystem=self.fs)
            paths.append(path)
            if pid == "__NULL__":
                guarantees.append(pc.field(field).is_null())
            else:
                day = dt.datetime.strptime(pid, "%Y%m%d").date()
                guarantees.append(pc.field(field) == pa.scalar(day, pa.date32()))
        return pads.FileSystemDataset.from_paths(
            paths, schema=schema, format=pads.ParquetFileFormat(), filesystem=self.fs,
            partitions=guarantees,
        )


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@functools.lru_cache(maxsize=4096)
def _duckdb_sql(sql: str) -> str:
    try:
        return sqlglot.transpile(sql, read="bigquery", write="duckdb")[0]
    except sqlglot.errors.ParseError as exc:
        raise ApiError(400, "invalidQuery", f"Syntax error: {exc}") from None


@pytest.fixture
def fake_bigquery() -> Iterator[FakeBigQuery]:
    """A fake BigQuery REST API on a free local port, stopped after the test."""
    fake = FakeBigQuery()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


__all__ = ["DATASET", "LOCATION", "PROJECT", "FakeBigQuery", "Load", "Recorded", "fake_bigquery"]
