"""What every benchmark records beside its figures: the machine, the versions, the time.

A figure without its machine is not reproducible, so each result file carries both, and
ratios are always taken between runs of the same invocation on the same machine.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_load_at_start: float | None = None
LIBRARIES = ("pyarrow", "duckdb", "orjson", "requests", "urllib3", "dlt", "celery", "redis", "psutil")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _redis_server_version() -> str | None:
    binary = shutil.which("redis-server")
    if not binary:
        return None
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout
    return next((part.removeprefix("v=") for part in out.split() if part.startswith("v=")), out.strip())


def machine() -> dict[str, Any]:
    """Cores, memory, OS, Python and library versions of this run."""
    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "libraries": {name: _version(name) for name in LIBRARIES},
        "redis_server": _redis_server_version(),
        # Other work on the machine skews every figure: the 1-minute load average now.
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def save(name: str, figures: dict[str, Any]) -> Path:
    """Write ``results/<name>.json`` with the machine and the run's time, and say where."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": name,
        "run_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(["python", "-m", _main_module(name), *sys.argv[1:]]),
        "machine": {**machine(), "load_average_1m_at_start": _load_at_start},
        **figures,
    }
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(f"results: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return path


def _main_module(name: str) -> str:
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec.name if spec is not None else f"bench.{name}"


def print_machine() -> None:
    """Say where the figures come from (call at the start: it notes the load then)."""
    global _load_at_start
    info = machine()
    _load_at_start = info["load_average_1m"]
    libs = ", ".join(f"{k} {v}" for k, v in info["libraries"].items() if v)
    print(
        f"machine: {info['cpu_affinity']} cores ({info['cpu_model']}), {info['memory_gib']} GiB, "
        f"Python {info['python']}; {libs}; redis-server {info['redis_server']}; "
        f"load average {info['load_average_1m']}"
    )


def load(name: str) -> dict[str, Any] | None:
    """A saved result, or None if that benchmark has not been run here."""
    path = RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None
