"""The Elexon simulator in a process of its own, so serving does not share the benchmark's GIL.

Benchmarks measure the client side; a simulator thread inside the measured process would
steal its interpreter time and blur every figure. The child binds 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import multiprocessing
import multiprocessing.queues
import signal
from collections.abc import Iterator
from pathlib import Path

from worker.sim.server import BASE_PATH

START_TIMEOUT_S = 60.0


@dataclasses.dataclass(frozen=True)
class SimulatorProcess:
    url: str  # the API base, like https://data.elexon.co.uk/bmrs/api/v1
    pid: int


def _serve(port_queue: multiprocessing.queues.Queue, options: dict) -> None:
    from worker.sim.server import make_server

    # Stop with the benchmark even if it is killed outright (Linux: PR_SET_PDEATHSIG).
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)

    server = make_server("127.0.0.1", 0, **options)
    port_queue.put(server.server_address[1])
    server.serve_forever()


@contextlib.contextmanager
def simulator_process(
    *,
    latency_ms: float = 0,
    scale: float = 1.0,
    seed: int = 0,
    faults: str | None = None,
    access_log: Path | None = None,
) -> Iterator[SimulatorProcess]:
    """A simulator child process (its API base URL and pid); stopped on exit."""
    context = multiprocessing.get_context("spawn")
    port_queue = context.Queue()
    options = {
        "seed": seed,
        "latency_ms": latency_ms,
        "faults": faults,
        "scale": scale,
        "access_log": str(access_log) if access_log else None,
    }
    process = context.Process(target=_serve, args=(port_queue, options), name="bmrs-sim", daemon=True)
    process.start()
    try:
        port = port_queue.get(timeout=START_TIMEOUT_S)
        yield SimulatorProcess(f"http://127.0.0.1:{port}{BASE_PATH}", process.pid)
    finally:
        process.terminate()
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join()
