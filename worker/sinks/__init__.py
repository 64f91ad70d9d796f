"""Warehouses a chunk is loaded into: the embedded local lake, or BigQuery."""

from __future__ import annotations

from worker.settings import Settings
from worker.sinks.base import LoadResult, QueryError, Sink, SinkConfigError

__all__ = ["LoadResult", "QueryError", "Sink", "SinkConfigError", "open_sink"]


def open_sink(settings: Settings) -> Sink:
    """The sink the settings select (``BMRS_SINK``), checked before any work starts."""
    if settings.sink == "local":
        from worker.sinks.local import LocalWarehouse

        return LocalWarehouse(settings.data_dir)
    if settings.sink == "bigquery":
        # Imported here: google-cloud-bigquery is only loaded by processes that use it.
        from worker.sinks.bigquery import open_bigquery

        return open_bigquery(settings)
    raise SinkConfigError(f"BMRS_SINK={settings.sink!r} is not available in this build")
