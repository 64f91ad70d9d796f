"""The simulator's HTTP face: the Insights API's paths, envelopes, errors and faults.

Paths are answered both at ``/`` and under ``/bmrs/api/v1`` (the real base path), matched
case-insensitively like the real API. Routes come from the catalog: each dataset's stream
endpoint returns a bare JSON array, its non-stream twin ``{"data": [...]}``, and a path-dated
endpoint (DISEBSP) ``{"metadata": {"datasets": [...]}, "data": [...]}``.

Error bodies follow the ASP.NET Core problem-details shape the Insights API (an ASP.NET
service, per its schema names) returns; the OpenAPI spec documents 400/429/500 without a body
schema. 429s carry the gateway's ``{"statusCode", "message"}`` body and ``Retry-After``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import http.server
import os
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import orjson

from worker.elexon import catalog, settlement
from worker.sim import generic, queries, reference, spec, window_limits
from worker.sim.calibrated import generators
from worker.sim.faults import (
    Draw,
    FaultInjector,
    FaultSpec,
    duplicate_rows,
    parse_faults,
    revise_rows,
    truncate_body,
)
from worker.sim.generators import Generator, dumps

BASE_PATH = "/bmrs/api/v1"
RETRY_AFTER_S = 1
_JSON = "application/json; charset=utf-8"
_PROBLEM = "application/problem+json; charset=utf-8"
_ALLOWED = "GET, HEAD"

Clock = Callable[[], dt.datetime]


@dataclasses.dataclass(frozen=True)
class Route:
    """What a path asks for: a dataset, how its window is given, how rows are wrapped."""

    dataset: catalog.Dataset
    # "stream" (bare array), "list" (``{"data"}``), "period" (PN/QPN list), "path" (DISEBSP)
    kind: str
    path_value: str | None = None


@dataclasses.dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    # Seconds to stall before answering (the "slow" fault).
    delay_s: float = 0.0


@dataclasses.dataclass(frozen=True)
class GenericRoute:
    """A spec path answered by the generic layer: its endpoint, the rows' source, and the
    values of its path parameters."""

    endpoint: spec.Endpoint
    source: Any
    path_values: dict[str, str]
    dataset: catalog.Dataset | None


def _takes_one_period(path: str) -> bool:
    """Whether a non-stream twin takes one settlement date and period, not a window (PN,
    QPN, B1610), as its parameters in the spec say."""
    for endpoint in spec.endpoints():
        if endpoint.path.lower() == path:
            param = endpoint.by_name.get("settlementPeriod")
            return param is not None and param.required and param.location == "query"
    return False


def _routes(
    codes: Collection[str],
) -> tuple[dict[str, Route], list[tuple[re.Pattern[str], catalog.Dataset]]]:
    """Exact paths and path templates of the catalog datasets with rows here, lower-cased."""
    exact: dict[str, Route] = {}
    templates: list[tuple[re.Pattern[str], catalog.Dataset]] = []
    for dataset in catalog.DATASETS:
        if dataset.code not in codes:
            continue  # no generator here: answered generically, if at all
        endpoint = dataset.endpoint.lower()
        if "{" in endpoint:
            before, _, after = endpoint.partition("{")
            pattern = re.escape(before) + r"([^/]+)" + re.escape(after.partition("}")[2])
            templates.append((re.compile(pattern), dataset))
        elif endpoint.endswith("/stream"):
            exact[endpoint] = Route(dataset, "stream")
            list_kind = "period" if _takes_one_period(endpoint.removesuffix("/stream")) else "list"
            exact[endpoint.removesuffix("/stream")] = Route(dataset, list_kind)
        else:
            exact[endpoint] = Route(dataset, "list")
    return exact, templates


# ``/balancing/physical/all?dataset=PN&settlementDate=D&settlementPeriod=N``: one period of
# PN, QPN, MILS or MELS (the spec's enum), the calibrated rows of ``/datasets/{dataset}``, in
# the ``{metadata, data}`` envelope. uk-energy, elexon-bmrs and elexonpy call it.
PHYSICAL_ALL = "/balancing/physical/all"
PHYSICAL_CODES = ("PN", "QPN", "MILS", "MELS")
# One BM unit's rows of a calibrated dataset over a from/to window (``bmUnit`` required), in
# the ``{metadata, data}`` envelope: elexonapi resolves "BOD" and "BOALF" to these.
UNIT_VIEWS = {"/balancing/bid-offer": "BOD", "/balancing/acceptances": "BOALF"}
_UNIT_VIEW_PATHS = {code: path for path, code in UNIT_VIEWS.items()}


@functools.cache
def view_fields(path: str) -> tuple[str, ...] | None:
    """The only row fields the spec allows in a view's answer (its row schema forbids
    others: MELS/MILS rows lose ``notificationTime``/``Sequence`` in ``physical/all``), or
    None when it allows more."""
    get = spec.load()["paths"][path]["get"]
    envelope = spec.resolve(get["responses"]["200"]["content"]["application/json"]["schema"])
    rows = spec.resolve(spec.resolve(envelope["properties"]["data"])["items"])
    if rows.get("additionalProperties", True) is not False:
        return None
    return tuple(rows["properties"])


_RFC_SECTIONS = {400: "6.5.1", 404: "6.5.4", 405: "6.5.5", 500: "6.6.1"}


def problem(status: int, title: str, errors: dict[str, list[str]] | None = None) -> Response:
    """An ASP.NET-style problem-details response."""
    body: dict[str, Any] = {
        "type": f"https://tools.ietf.org/html/rfc7231#section-{_RFC_SECTIONS.get(status, '6.5.1')}",
        "title": title,
        "status": status,
        "traceId": f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-00",
    }
    if errors:
        body["errors"] = errors
    return Response(status, orjson.dumps(body), {"Content-Type": _PROBLEM})


def bad_request(parameter: str, message: str) -> Response:
    return problem(400, "One or more validation errors occurred.", {parameter: [message]})


def _refusal(draw: Draw) -> Response | None:
    """The 429 or 500 a fault draw asks for, if any."""
    if draw.status == 429:
        return Response(
            429,
            orjson.dumps(
                {
                    "statusCode": 429,
                    "message": f"Rate limit is exceeded. Try again in {RETRY_AFTER_S} seconds.",
                }
            ),
            {"Content-Type": _JSON, "Retry-After": str(RETRY_AFTER_S)},
        )
    if draw.status == 500:
        return problem(500, "An error occurred while processing your request.")
    return None


def generic_canonical(endpoint: spec.Endpoint, params: dict[str, list[str]]) -> queries.Params:
    """Parameters under the endpoint's documented names, matched case-blind (ASP.NET binding)."""
    known = {param.name.lower(): param.name for param in endpoint.params}
    named: queries.Params = {}
    for name, values in params.items():
        named.setdefault(known.get(name.lower(), name), []).extend(values)
    return named


class GenericRouter:
    """Every served spec path (``spec.SERVED_PREFIXES``) not taken by a calibrated route,
    matched to the source of its rows: a reference snapshot, a calibrated generator (for a
    core dataset's other paths) or a :class:`generic.GenericDataset`. Sources are made on
    first use and shared by the paths of one dataset."""

    def __init__(self, seed: int, scale: float, calibrated: dict[str, Generator]) -> None:
        self.seed = seed
        self.scale = scale
        self.calibrated = calibrated
        endpoints = spec.endpoints()
        self._families: dict[str, list[spec.Endpoint]] = {}
        for endpoint in endpoints:
            self._families.setdefault(spec.dataset_key(endpoint.path), []).append(endpoint)
        # Templates after exact paths, so /reference/bmunits/all wins over a {param} twin.
        self._endpoints = sorted(endpoints, key=lambda e: (e.path.count("{"), e.path))
        self._by_key = {spec.dataset_key(d.endpoint): d for d in catalog.DATASETS}
        self._sources: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def route(self, lowered: str) -> GenericRoute | None:
        for endpoint in self._endpoints:
            match = endpoint.pattern.fullmatch(lowered)
            if match is None:
                continue
            path_values = dict(zip(endpoint.path_params, match.groups(), strict=True))
            key = spec.dataset_key(endpoint.path)
            dataset = self._by_key.get(key)
            return GenericRoute(endpoint, self.source(key, path_values), path_values, dataset)
        return None

    def replace(self, code: str, source: Any) -> None:
        """Serve every side of a catalog dataset's paths from ``source``."""
        dataset = catalog.get(code)
        key = spec.dataset_key(dataset.endpoint)
        with self._lock:
            for variant in ("", *catalog.SIDES):
                self._sources[(key, variant)] = source

    def source(self, key: str, path_values: dict[str, str]) -> Any:
        """The shared row source of a dataset family (one per ``bidOffer`` side)."""
        variant = path_values.get("bidOffer", "").lower()
        with self._lock:
            found = self._sources.get((key, variant))
            if found is None:
                dataset = self._by_key.get(key)
                if key in reference.SNAPSHOT_KEYS:
                    found = generic.ReferenceSource(key, self.seed, self.scale, dataset)
                elif dataset is not None and dataset.code in self.calibrated:
                    found = generic.CalibratedSource(self.calibrated[dataset.code])
                else:
                    found = generic.GenericDataset(
                        key, self._families[key], self.seed, self.scale, dataset, variant
                    )
                self._sources[(key, variant)] = found
            return found


class SimulatorApp:
    """Turns (method, request target) into a :class:`Response`; no sockets involved."""

    def __init__(
        self,
        seed: int = 0,
        faults: FaultSpec | str | None = None,
        scale: float = 1.0,
        clock: Clock | None = None,
        window_limit: window_limits.Limits | str | None = None,
    ) -> None:
        self.seed = seed
        self.scale = scale
        # Larger answers are refused as too wide a range (see window_limits.WORK_BUDGET).
        self.work_budget = window_limits.WORK_BUDGET
        # Hidden per-dataset window limits (``--window-limit``), beyond the spec's own.
        self.window_limits = (
            window_limit
            if isinstance(window_limit, dict)
            else window_limits.parse_window_limits(window_limit)
        )
        fault_spec = faults if isinstance(faults, FaultSpec) else parse_faults(faults)
        self.faults = FaultInjector(fault_spec, seed)
        # Calibrated generators where the shape matters; every other catalog dataset, and
        # every other served spec path, is answered by the generic layer.
        self.generators: dict[str, Generator] = generators(seed, scale)
        self._exact, self._templates = _routes(self.generators)
        self._generic = GenericRouter(seed, scale, self.generators)
        self._clock = clock or (lambda: dt.datetime.now(settlement.UTC))

    def route(self, path: str) -> Route | GenericRoute | None:
        lowered = path.lower().rstrip("/").removeprefix(BASE_PATH)
        if lowered in self._exact:
            return self._exact[lowered]
        if lowered == PHYSICAL_ALL:
            return Route(catalog.get(PHYSICAL_CODES[0]), "physical")
        if lowered in UNIT_VIEWS:
            return Route(catalog.get(UNIT_VIEWS[lowered]), "unit")
        for pattern, dataset in self._templates:
            match = pattern.fullmatch(lowered)
            if match:
                return Route(dataset, "path", match.group(1))
        return self._generic.route(lowered)

    def replace_rows(self, code: str, source: Any) -> None:
        """Serve a catalog dataset's generic paths from ``source`` (a replay of recorded
        rows, say) instead of generated rows."""
        self._generic.replace(code, source)

    def handle(self, method: str, target: str) -> Response:
        parts = urlsplit(target)
        route = self.route(parts.path)
        if route is None:
            return problem(404, "Not Found")
        if method not in ("GET", "HEAD"):
            response = problem(405, "Method Not Allowed")
            response.headers["Allow"] = _ALLOWED
            return response
        draw = self.faults.draw(f"{method} {target}")
        if isinstance(route, GenericRoute):
            named = generic_canonical(route.endpoint, parse_qs(parts.query, keep_blank_values=True))
            response = self._answer_generic(route, named, draw)
        else:
            params = queries.canonical(parse_qs(parts.query, keep_blank_values=True))
            response = self._answer(route, params, draw)
        if draw.slow:
            response.delay_s = self.faults.spec.slow_seconds
        return response

    def _answer(self, route: Route, params: queries.Params, draw: Draw) -> Response:
        refused = _refusal(draw)
        if refused is not None:
            return refused
        if route.kind == "physical":
            # ASP.NET binds names case-blind; "dataset" is not a name queries knows.
            code = next((v[0] for k, v in params.items() if k.lower() == "dataset" and v), None)
            if code is None:
                return bad_request("dataset", "The dataset field is required.")
            if code.upper() not in PHYSICAL_CODES:
                return bad_request(
                    "dataset",
                    f"The value '{code}' is not valid for dataset: one of PN, QPN, MILS, MELS.",
                )
            route = Route(catalog.get(code.upper()), "physical")
        if route.kind == "unit" and not any(params.get("bmUnit", ())):
            return bad_request("bmUnit", "The bmUnit field is required.")
        dataset, now = route.dataset, self._clock()
        try:
            if route.kind == "path":
                assert route.path_value is not None
                query = queries.path_date_query(dataset, route.path_value, now)
            elif route.kind in ("period", "physical"):
                query = queries.period_query(dataset, params, now)
            else:
                query = queries.window_query(dataset, params, now)
        except queries.BadRequest as exc:
            return bad_request(exc.parameter, exc.message)
        kind = {"physical": "period", "unit": "list"}.get(route.kind, route.kind)
        refused = window_limits.refusal(dataset, kind, params, self.window_limits)
        if refused:
            return problem(400, "One or more validation errors occurred.", {"": [refused]})
        poisoned = self.faults.poisoned(dataset.code, query.days)
        if poisoned:
            return bad_request(
                "settlementDate",
                f"{dataset.code} data for {poisoned} cannot be retrieved (simulated permanent failure).",
            )
        generator = self.generators[dataset.code]
        too_large = window_limits.oversized(query, generator, self.work_budget)
        if too_large:
            return problem(400, "One or more validation errors occurred.", {"": [too_large]})
        rows = query.select(generator)
        if draw.outside:
            rows = rows + query.outside_rows(generator, limit=max(1, len(rows) // 20))
        if draw.dup:
            rows = duplicate_rows(rows, draw.rng)
        if draw.revise:
            rows = revise_rows(rows, generator, draw.rng)
        view = {"physical": PHYSICAL_ALL, "unit": _UNIT_VIEW_PATHS.get(dataset.code)}.get(
            route.kind
        )
        fields = view_fields(view) if view else None
        if fields is not None:
            rows = [{name: row[name] for name in fields if name in row} for row in rows]
        body = dumps(self._envelope(route, rows))
        if draw.truncate:
            body = truncate_body(body, draw.rng)
        return Response(200, body, {"Content-Type": _JSON})

    def _answer_generic(self, route: GenericRoute, params: queries.Params, draw: Draw) -> Response:
        """A generic dataset's answer: rows from the spec-driven source, the spec's envelope."""
        refused = _refusal(draw)
        if refused is not None:
            return refused
        source, endpoint, dataset, now = route.source, route.endpoint, route.dataset, self._clock()
        # Only the limits the spec states (a catalog dataset's, else the path's own).
        max_window = dataset.spec_limit if dataset else generic.spec_limit(endpoint.path)
        try:
            selection = generic.build_selection(
                source, endpoint, route.path_values, params, now, max_window
            )
        except queries.BadRequest as exc:
            return bad_request(exc.parameter, exc.message)
        hidden = self._hidden_limit(route, params)
        if hidden:
            return problem(400, "One or more validation errors occurred.", {"": [hidden]})
        too_large = generic.oversized(source, selection, self.work_budget)
        if too_large:
            return problem(400, "One or more validation errors occurred.", {"": [too_large]})
        poisoned = None if selection.snapshot else self.faults.poisoned(source.code, selection.days)
        if poisoned:
            return bad_request(
                "settlementDate",
                f"{source.code} data for {poisoned} cannot be retrieved (simulated permanent failure).",
            )
        rows = generic.select(source, selection)
        if endpoint.envelope == "object":
            # One object per period; a period not reached yet (or before the first day) is
            # an empty object, which the spec's schema allows.
            return Response(200, orjson.dumps(rows[0] if rows else {}), {"Content-Type": _JSON})
        if draw.outside and selection.buckets and not selection.snapshot:
            before = source.rows(min(selection.buckets) - generic.HALF_HOUR)
            rows = rows + before[: max(1, len(rows) // 20)]
        if draw.dup and rows and isinstance(rows[0], dict):
            rows = duplicate_rows(rows, draw.rng)
        if draw.revise and isinstance(source, generic.CalibratedSource):
            rows = revise_rows(rows, source.generator, draw.rng)
        elif draw.revise and generic.revisable(source) and rows:
            # A catalog dataset answered generically: new values, a newer version.
            rows = revise_rows(rows, source, draw.rng)
        body: Any = rows
        if endpoint.envelope == "data":
            body = {"data": rows}
            if endpoint.metadata:
                body = {"metadata": {"datasets": [source.code]}, "data": rows}
        payload = dumps(body)
        if draw.truncate:
            payload = truncate_body(payload, draw.rng)
        return Response(200, payload, {"Content-Type": _JSON})

    def _hidden_limit(self, route: GenericRoute, params: queries.Params) -> str | None:
        """``--window-limit`` for a catalog dataset answered generically, as for the others."""
        dataset = route.dataset
        if dataset is None or dataset.code not in self.window_limits:
            return None
        values = route.path_values
        kind = "period" if "settlementPeriod" in values else "path" if values else "window"
        if kind == "window" and dataset.param_style not in catalog.WINDOW_PARAMS:
            return None  # no window to limit (a snapshot, or TUDM's period pairs)
        return window_limits.refusal(dataset, kind, params, self.window_limits)

    @staticmethod
    def _envelope(route: Route, rows: list[dict[str, Any]]) -> Any:
        if route.kind == "stream":
            return rows
        if route.kind in ("path", "physical", "unit"):
            return {"metadata": {"datasets": [route.dataset.code]}, "data": rows}
        return {"data": rows}


class AccessLog:
    """JSON lines, one per request, appended with one write each so several processes can
    share a file and tests can measure request rates across them."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, method: str, target: str, status: int, duration_s: float) -> None:
        parts = urlsplit(target)
        # Arrival time, not completion: rate budgets are about when requests reach the API,
        # and a slow response must not look like a burst when it finally completes.
        arrived = dt.datetime.now(settlement.UTC) - dt.timedelta(seconds=duration_s)
        line = {
            "time": arrived.strftime("%Y-%m-%dT%H:%M:%S.") + f"{arrived.microsecond // 1000:03d}Z",
            "method": method,
            "path": parts.path,
            "query": parts.query,
            "status": status,
            "duration_ms": round(duration_s * 1000, 3),
        }
        os.write(self._fd, orjson.dumps(line) + b"\n")

    def close(self) -> None:
        os.close(self._fd)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _SimulatorHTTPServer

    def _serve(self) -> None:
        started = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)  # drain a body we ignore, so keep-alive stays in sync
        try:
            response = self.server.app.handle(self.command, self.path)
        except Exception:  # noqa: BLE001 - a simulator bug must still answer, as a real 500 would
            traceback.print_exc()
            response = problem(500, "An error occurred while processing your request.")
        delay = response.delay_s + self.server.latency_s
        if delay:
            time.sleep(delay)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)
        if self.server.access_log:
            self.server.access_log.write(
                self.command, self.path, response.status, time.monotonic() - started
            )

    def __getattr__(self, name: str) -> Any:
        # Every method reaches the app (which answers 405), not http.server's HTML 501.
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the access log, when asked for, is the record of requests."""


class _SimulatorHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        app: SimulatorApp,
        latency_s: float,
        access_log: AccessLog | None,
    ) -> None:
        self.app = app
        self.latency_s = latency_s
        self.access_log = access_log
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up (timeouts on slow answers) are normal here, not errors."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class RunningSimulator:
    """A simulator serving in a background thread; ``url`` is its base URL."""

    def __init__(self, server: _SimulatorHTTPServer) -> None:
        self._server = server
        host, port = server.server_address[:2]
        self.host, self.port = str(host), int(port)
        self.url = f"http://{self.host}:{self.port}"
        # A short poll interval keeps shutdown() quick: tests start and stop many of these.
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="bmrs-sim",
            daemon=True,
        )
        self._thread.start()

    @property
    def app(self) -> SimulatorApp:
        return self._server.app

    def shutdown(self) -> None:
        """Stop serving, close the socket and the access log."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        if self._server.access_log:
            self._server.access_log.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()


def make_server(
    host: str = "127.0.0.1",
    port: int = 0,
    seed: int = 0,
    latency_ms: float = 0,
    faults: FaultSpec | str | None = None,
    scale: float = 1.0,
    access_log: str | Path | None = None,
    clock: Clock | None = None,
    window_limit: window_limits.Limits | str | None = None,
) -> _SimulatorHTTPServer:
    """A bound, not yet serving simulator (port 0 picks a free port)."""
    app = SimulatorApp(
        seed=seed, faults=faults, scale=scale, clock=clock, window_limit=window_limit
    )
    log = AccessLog(Path(access_log)) if access_log else None
    return _SimulatorHTTPServer((host, port), app, latency_ms / 1000, log)


def start_simulator(
    host: str = "127.0.0.1",
    port: int = 0,
    seed: int = 0,
    latency_ms: float = 0,
    faults: FaultSpec | str | None = None,
    scale: float = 1.0,
    access_log: str | Path | None = None,
    clock: Clock | None = None,
    window_limit: window_limits.Limits | str | None = None,
) -> RunningSimulator:
    """Serve the simulator in a background thread; call ``.shutdown()`` (or use ``with``).

    ``faults`` is a spec string or a :class:`FaultSpec`; ``clock`` replaces the wall clock
    (what "now" is, so tests can see a partial day); ``window_limit`` (``"BOD=1h"`` or a
    dict) refuses wider windows of those datasets with a 400; ``port=0`` picks a free port.
    """
    return RunningSimulator(
        make_server(host, port, seed, latency_ms, faults, scale, access_log, clock, window_limit)
    )
