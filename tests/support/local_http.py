"""Small local HTTP stand-ins for Elexon that a test defines itself, run on a thread."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """Base of a stand-in's request handler: one way to answer, no access lines on stderr."""

    def reply(self, status: int, body: bytes = b"", content_type: str | None = None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def serving(server: http.server.HTTPServer) -> Iterator[str]:
    """Serve on a daemon thread for the block; yields the base URL, then shuts it down."""
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def access_lines(path: Path, at_least: int = 1) -> list[dict[str, object]]:
    """The simulator's access log, once it has ``at_least`` lines (each is written after its
    answer is sent, so the client can read the log first)."""
    deadline = time.monotonic() + 5
    while True:
        lines = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
        if len(lines) >= at_least or time.monotonic() > deadline:
            return lines
        time.sleep(0.02)
