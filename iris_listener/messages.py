"""One IRIS message, and the checks that tell a good message from a poison one.

IRIS bodies are a JSON array of rows shaped like the API's ``/stream`` rows, and are often
JSON-encoded twice (a JSON string holding the JSON). A message is *poison* when no amount of
redelivery can make it load: the body is not JSON (or not rows), the dataset is not in the
catalog, or the rows fail the catalog schema. Poison is dead-lettered with its reason so it
never blocks the messages behind it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import Any

import orjson

from worker.elexon import catalog
from worker.elexon.parse import SchemaError, parse_rows

# Reasons given to the dead-letter place; stable strings, shown to users.
NOT_JSON = "body-not-json"
NOT_ROWS = "body-not-rows"
UNKNOWN_DATASET = "unknown-dataset"
SCHEMA = "rows-fail-schema"


@dataclasses.dataclass(frozen=True)
class IrisMessage:
    """What the listener needs of a message, whichever source delivered it."""

    message_id: str
    subject: str  # the dataset code, as IRIS names it
    body: bytes
    enqueued_utc: dt.datetime | None = None
    delivery_count: int = 1

    @property
    def body_sha256(self) -> str:
        """Content address of the body: a redelivered message maps to the same stored body."""
        return hashlib.sha256(self.body).hexdigest()

    def describe(self) -> str:
        return f"IRIS message {self.message_id!r} ({self.subject or 'no subject'})"


class PoisonMessage(ValueError):
    """A message that can never load; ``reason`` is one of the constants above."""

    def __init__(self, reason: str, description: str) -> None:
        super().__init__(f"{reason}: {description}")
        self.reason = reason
        self.description = description


def decode_rows(body: bytes | str) -> list[dict[str, Any]]:
    """The rows of a body, unwrapping a JSON string that holds JSON (up to twice)."""
    value: Any = body
    for _ in range(3):
        if not isinstance(value, (bytes, str)):
            break
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise PoisonMessage(NOT_JSON, f"body is not valid JSON ({exc})") from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
        raise PoisonMessage(
            NOT_ROWS, f"body is JSON but not an array of row objects: {value!r:.80}"
        )
    return value


def dataset_of(message: IrisMessage) -> catalog.Dataset:
    """The catalog dataset a message belongs to, from its subject (or its message id)."""
    code = message.subject or message.message_id.split("_", 1)[0]
    try:
        return catalog.get(code)
    except catalog.UnknownDatasetError as exc:
        raise PoisonMessage(UNKNOWN_DATASET, str(exc)) from None


def check(message: IrisMessage) -> tuple[catalog.Dataset, int]:
    """The message's dataset and row count, or :class:`PoisonMessage` saying why not.

    Rows are parsed with the same catalog schema the workers use, so a message that passes
    here loads there; new fields are drift, kept and reported, not poison.
    """
    dataset = dataset_of(message)
    rows = decode_rows(message.body)
    try:
        parse_rows(dataset, rows, source="iris")
    except SchemaError as exc:
        raise PoisonMessage(SCHEMA, str(exc)) from None
    return dataset, len(rows)
