"""Warehouses a chunk is loaded into: the embedded local lake, or BigQuery."""

from __future__ import annotations

from worker.settings import Settings
from worker.sinks.base import LoadResult, Sink

__all__ = ["LoadResult", "Sink", "open_sink"]


def open_sink(settings: Settings) -> Sink:
    """The sink the settings select (``BMRS_SINK``), checked before any work starts."""
    if settings.sink == "local":
        from worker.sinks.local import LocalWarehouse

        return LocalWarehouse(settings.data_dir)
    raise ValueError(f"BMRS_SINK={settings.sink!r} is not available in this build")
