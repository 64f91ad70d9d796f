"""Log set-up for every process: one line per event, text or JSON (``BMRS_LOG_FORMAT``).

Context such as dataset, day and job id is passed as ``extra={...}`` and appears as fields.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys

import orjson

from worker.settings import Settings

CONTEXT_FIELDS = ("dataset", "day", "job_id", "task_id", "queue")


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        event = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            if hasattr(record, name):
                event[name] = str(getattr(record, name))
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(event).decode()


class TextFormatter(logging.Formatter):
    """Readable lines with the context fields appended as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(
            f"{name}={getattr(record, name)}" for name in CONTEXT_FIELDS if hasattr(record, name)
        )
        return f"{line} [{context}]" if context else line


def configure(settings: Settings, stream=sys.stderr) -> None:
    """Install the one root handler this process logs through."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for noisy in ("urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
