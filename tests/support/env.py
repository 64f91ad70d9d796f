"""Fixtures for an isolated environment: free ports, a data dir, fresh settings."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.settings import get_settings


def free_port() -> int:
    """A TCP port nothing listens on right now (loopback)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def bmrs_env(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> Iterator[pytest.MonkeyPatch]:
    """BMRS_* settings isolated to this test (data dir in tmp); set more with .setenv."""
    for name in list(__import__("os").environ):
        if name.startswith("BMRS_") or name == "FLOWER_BASIC_AUTH":
            monkeypatch.delenv(name)
    monkeypatch.setenv("BMRS_DATA_DIR", str(data_dir))
    monkeypatch.setenv("BMRS_HTTP_RETRIES", "8")
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()
