"""The warehouse from Python (notebooks, scripts): the views the CLI and the dashboard read.

    from worker.warehouse import connect, query

    con = connect()                      # DuckDB, every view of the local lake
    con.sql("SELECT * FROM fuelinst_latest WHERE settlementDate = DATE '2025-06-01'").df()

    prices = query("SELECT * FROM disebsp_latest WHERE _day >= DATE '2025-06-01'")
    prices.to_pandas()                   # or polars.from_arrow(prices)

:func:`query` runs where the data is: the local lake, or BigQuery when ``BMRS_SINK=bigquery``;
``bmrs query`` is this function. Settings come from the environment (``BMRS_DATA_DIR``,
``BMRS_SINK``...) unless given. A filter on ``_day``, ``settlementDate`` or the dataset's
partition time field reads only those days, however many years are stored.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from worker.elexon.catalog import Dataset
from worker.settings import Settings, get_settings
from worker.sinks import open_sink
from worker.sinks.base import SinkConfigError

__all__ = ["connect", "query"]


def connect(
    settings: Settings | None = None, datasets: list[Dataset] | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the views (``<code>``, ``<code>_latest``,
    ``<code>_unified``) of every dataset of the local lake, or of ``datasets``.

    Each day is resolved to its current file when the connection is made: loads that finish
    later are seen by a new connection. Local lake only: on BigQuery use :func:`query`.
    """
    settings = settings or get_settings()
    if settings.sink != "local":
        raise SinkConfigError(
            f"connect() opens the local lake, but BMRS_SINK={settings.sink}; use "
            "worker.warehouse.query(sql), which runs on the configured sink"
        )
    from worker.sinks.local import LocalWarehouse

    return LocalWarehouse(settings.data_dir).connect(datasets)


def query(sql: str, settings: Settings | None = None) -> pa.Table:
    """Run one SQL statement over the views on the configured sink; the rows as Arrow.

    Raises ``duckdb.Error`` (local) or :class:`worker.sinks.QueryError` (BigQuery) with the
    engine's own message when the statement is refused.
    """
    return open_sink(settings or get_settings()).query(sql)
