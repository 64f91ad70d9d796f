"""Every setting the cluster reads, mapped from the environment in one place.

Nothing else in the code base reads ``os.environ`` for configuration: processes call
:func:`get_settings` and pass values down. Secrets may be given directly or as ``<NAME>_FILE``
pointing at a mounted file (Docker/Kubernetes secrets), and are masked by :func:`masked`.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_ELEXON_BASE_URL = "https://data.elexon.co.uk/bmrs/api/v1"

# Settings whose value is a secret: accepted as NAME or NAME_FILE, never printed.
SECRET_FIELDS = ("iris_client_secret", "iris_connection_string", "flower_basic_auth")


class Settings(BaseSettings):
    """Effective configuration of one process (env vars ``BMRS_*``, or a ``.env`` file)."""

    model_config = SettingsConfigDict(env_prefix="BMRS_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("./data"), description="Root of the local warehouse and inbox")
    broker_url: str | None = Field(None, description="Redis URL of the Celery broker")
    elexon_base_url: str = Field(DEFAULT_ELEXON_BASE_URL, description="Elexon Insights API root")
    sink: Literal["local", "bigquery"] = Field("local", description="Where chunks are loaded")
    bq_project: str | None = Field(None, description="Google Cloud project of the BigQuery sink")
    bq_dataset: str | None = Field(None, description="BigQuery dataset holding the tables and views")
    bq_location: str | None = Field(None, description="BigQuery location of that dataset, e.g. EU")
    bq_api_endpoint: str | None = Field(
        None, description="BigQuery API root of an emulator (anonymous credentials); unset: Google"
    )
    rate_per_s: float = Field(10.0, gt=0, description="Shared Elexon request budget (req/s)")
    rate_burst: int = Field(10, ge=1, description="Requests allowed in one burst")
    http_timeout_s: float = Field(60.0, gt=0, description="Timeout of one API request")
    http_retries: int = Field(6, ge=0, description="Retries of one request on 429/5xx/errors")
    iris_tenant_id: str | None = None
    iris_client_id: str | None = None
    iris_client_secret: SecretStr | None = None
    iris_connection_string: SecretStr | None = None
    iris_namespace: str = "elexon-insights-iris.servicebus.windows.net"
    iris_queue: str | None = None
    iris_dir: Path | None = Field(None, description="Folder source of IRIS messages")
    iris_batch_max: int = Field(100, ge=1, description="IRIS messages per hand-off batch")
    iris_batch_s: float = Field(2.0, gt=0, description="Longest an IRIS message waits in a batch")
    iris_retention_days: int = Field(7, ge=0, description="Days kept of IRIS rows the API has")
    sheets_id: str | None = Field(None, description="Key of the Google Sheets dashboard (unset: local workbook)")
    sheets_credentials: Path | None = Field(
        None,
        validation_alias=AliasChoices("BMRS_SHEETS_CREDENTIALS", "GOOGLE_APPLICATION_CREDENTIALS"),
        description="Service-account JSON file for Sheets (default GOOGLE_APPLICATION_CREDENTIALS)",
    )
    remit_backfill_days: int = Field(90, ge=1, description="REMIT history the outages table needs")
    alert_webhook: SecretStr | None = None
    sim_faults: str = ""
    sim_window_limits: str = Field(
        "", description="Simulator's hidden window limits, e.g. BOD=1h,MILS=6h (bmrs sim --window-limit)"
    )
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    # The Celery cluster (worker/cluster/celery_app.py, beat/): timings, retries and the schedule.
    datasets: str = Field(
        "all",
        description="Datasets kept fresh (polled, swept, checked): a comma list of catalog "
        "codes, or all (the default)",
    )
    visibility_timeout_s: float = Field(
        180.0, gt=0, description="Seconds before a task a lost worker held is redelivered"
    )
    restore_interval_s: float = Field(
        10.0, gt=0, description="How often workers look for such tasks to redeliver"
    )
    task_soft_time_limit_s: float = Field(
        120.0, gt=0, description="Seconds after which a task is asked to stop (and retried)"
    )
    task_time_limit_s: float = Field(
        150.0, gt=0, description="Seconds after which a task's process is killed"
    )
    max_tasks_per_child: int = Field(
        100, ge=1, description="Tasks a worker process runs before it is replaced"
    )
    worker_concurrency: int | None = Field(
        None, ge=1, description="Processes per worker (default: the CPU count)"
    )
    worker_soft_shutdown_s: float = Field(
        60.0, ge=0, description="On SIGTERM, seconds running chunks get to finish before requeue"
    )
    task_max_retries: int = Field(
        5, ge=0, description="Retries of a chunk after a transient error, then recorded failed"
    )
    retry_backoff_s: float = Field(10.0, gt=0, description="First retry delay of a chunk (doubles)")
    retry_backoff_max_s: float = Field(120.0, gt=0, description="Longest retry delay of a chunk")
    realtime_poll_s: float = Field(
        300.0, ge=0, description="Seconds between polls of each realtime dataset (0: off)"
    )
    sweep_cron: str = Field(
        "30 4 * * *", description="When the daily gap sweep runs (crontab, London time)"
    )
    sweep_lookback_days: int = Field(7, ge=1, description="Days the gap sweep looks back")
    freshness_check_s: float = Field(
        300.0, ge=0, description="Seconds between freshness checks (0: off)"
    )
    dashboard_refresh_s: float = Field(
        300.0, ge=0, description="Seconds between dashboard refreshes (0: off)"
    )
    beat_schedule_file: Path | None = Field(
        None, description="TOML file that changes, removes or adds beat schedule entries"
    )
    beat_lock_ttl_s: float = Field(
        30.0, gt=0, description="Lease of the one running beat, renewed every third of it"
    )
    flower_basic_auth: SecretStr | None = Field(
        None, validation_alias="FLOWER_BASIC_AUTH", description="user:password for Flower"
    )

    @field_validator("datasets")
    @classmethod
    def _known_datasets(cls, value: str) -> str:
        """BMRS_DATASETS names catalog codes (or ``all``): a typo fails at start-up, naming the
        code and the valid ones, not at the first poll."""
        if value.strip() and value.strip().lower() != "all":
            from worker.elexon import catalog

            catalog.parse_codes(value)
        return value

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, values: Any) -> Any:
        """Fill NAME from NAME_FILE (a mounted secret) when NAME itself is unset."""
        if not isinstance(values, dict):
            return values
        for field in SECRET_FIELDS:
            env_name = "FLOWER_BASIC_AUTH" if field == "flower_basic_auth" else f"BMRS_{field.upper()}"
            path = os.environ.get(f"{env_name}_FILE")
            if path and not values.get(field) and not os.environ.get(env_name):
                key = env_name if field == "flower_basic_auth" else field
                values[key] = Path(path).read_text().strip()
        return values

    @property
    def iris_inbox(self) -> Path:
        return self.iris_dir or self.data_dir / "iris_inbox"


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()


def masked(settings: Settings) -> dict[str, str]:
    """Effective settings as strings, secrets shown only as set/unset."""
    shown: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        env = "FLOWER_BASIC_AUTH" if name == "flower_basic_auth" else f"BMRS_{name.upper()}"
        if isinstance(getattr(settings, name), SecretStr):
            shown[env] = "****** (set)"
        elif name in SECRET_FIELDS or name == "alert_webhook":
            shown[env] = "(unset)"
        elif name == "broker_url" and value and "@" in str(value):
            scheme, rest = str(value).split("://", 1)
            shown[env] = f"{scheme}://****@{rest.rsplit('@', 1)[1]}"
        else:
            shown[env] = "(unset)" if value is None else str(value)
    return shown
