"""Raw IRIS bodies parked in Redis, where every worker can reach them.

Bodies can be several MB, too big for task arguments, so the listener stores each one under
its content hash and the task carries only the key. Content addressing makes a redelivered
message reuse its key. Bodies live as long as IRIS keeps a message (3 days) until a worker
has stored their rows; then only for a grace hour, so a redelivered task still finds them.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

BODY_PREFIX = "bmrs:iris:body:"
BODY_TTL_S = 3 * 24 * 3600
STORED_GRACE_S = 3600


class MissingBodyError(RuntimeError):
    """A task's body is gone from Redis (expired, or Redis lost its data)."""


def body_key(sha256: str) -> str:
    return BODY_PREFIX + sha256


def put_bodies(client: redis.Redis, bodies: dict[str, bytes]) -> None:
    """Store bodies by key in one round trip."""
    pipe = client.pipeline(transaction=False)
    for key, body in bodies.items():
        pipe.set(key, body, ex=BODY_TTL_S)
    pipe.execute()


def get_bodies(client: redis.Redis, keys: Sequence[str], *, context: str) -> list[bytes]:
    """The bodies of ``keys`` in order; an error naming each missing one and what to do."""
    values = client.mget(list(keys)) if keys else []
    missing = [key for key, value in zip(keys, values) if value is None]
    if missing:
        raise MissingBodyError(
            f"{context}: {len(missing)} IRIS bodies are no longer in Redis ({missing[0]}...); "
            "they expired or Redis lost its data. Re-send the messages (IRIS keeps them 3 days, "
            "the folder source's files are in _done/) to load them."
        )
    return list(values)


def release_bodies(client: redis.Redis, keys: Sequence[str]) -> None:
    """Shorten the life of bodies whose rows are stored (a redelivered task may still read them)."""
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.expire(key, STORED_GRACE_S)
    pipe.execute()
