"""IRIS bodies: decoding, poison reasons, and the worker's batch into stream storage."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute  # makes pa.compute available
import pytest

from iris_listener.bodies import MissingBodyError, body_key, put_bodies
from iris_listener.messages import (
    NOT_JSON,
    NOT_ROWS,
    SCHEMA,
    UNKNOWN_DATASET,
    IrisMessage,
    PoisonMessage,
    check,
    decode_rows,
)
from iris_listener.stream import store_batch
from tests.support.redis import RedisServer
from worker.elexon import catalog
from worker.elexon.parse import parse_rows
from worker.sim.iris import IrisFeed
from worker.sinks.local import LocalWarehouse

FUELINST = catalog.get("FUELINST")
ROW = {
    "dataset": "FUELINST",
    "publishTime": "2025-10-27T23:55:00Z",
    "startTime": "2025-10-27T23:55:00Z",
    "settlementDate": "2025-10-27",
    "settlementPeriod": 48,
    "fuelType": "WIND",
    "generation": 9000,
}


@pytest.mark.parametrize(
    "encode",
    [
        lambda rows: orjson.dumps(rows),
        lambda rows: orjson.dumps(orjson.dumps(rows).decode()),  # JSON-encoded twice, as IRIS does
        lambda rows: json.dumps(json.dumps(rows)).encode(),
    ],
)
def test_bodies_decode_to_rows_whether_encoded_once_or_twice(encode) -> None:
    assert decode_rows(encode([ROW])) == [ROW]


@pytest.mark.parametrize(
    ("subject", "body", "reason"),
    [
        ("FUELINST", b'[{"dataset": "FUELINST", ', NOT_JSON),
        ("FUELINST", b'"not json inside a string"', NOT_JSON),
        ("FUELINST", b"[1, 2, 3]", NOT_ROWS),
        ("NOTADATASET", orjson.dumps([{"warning": "x"}]), UNKNOWN_DATASET),
        ("FUELINST", orjson.dumps([dict(ROW, generation="lots")]), SCHEMA),
        ("FUELINST", orjson.dumps([dict(ROW, startTime=None)]), SCHEMA),
    ],
)
def test_poison_messages_name_their_reason(subject: str, body: bytes, reason: str) -> None:
    with pytest.raises(PoisonMessage) as caught:
        check(IrisMessage(message_id=f"{subject}_1.json", subject=subject, body=body))
    assert caught.value.reason == reason


def test_a_new_field_is_drift_not_poison() -> None:
    dataset, rows = check(
        IrisMessage("FUELINST_1.json", "FUELINST", orjson.dumps([dict(ROW, newField=1)]))
    )
    assert (dataset.code, rows) == ("FUELINST", 1)


def test_a_message_without_subject_takes_its_dataset_from_the_message_id() -> None:
    dataset, _ = check(IrisMessage("FUELINST_202510272355_7.json", "", orjson.dumps([ROW])))
    assert dataset is FUELINST


def test_a_batch_lands_per_day_once_with_drift_kept_and_bodies_released(
    redis_server: RedisServer, data_dir: Path
) -> None:
    client = redis_server.client()
    sink = LocalWarehouse(data_dir)
    next_day = dict(
        ROW,
        startTime="2025-10-27T23:00:00Z",
        publishTime="2025-10-28T00:05:00Z",
        settlementDate="2025-10-28",
        settlementPeriod=2,
    )
    bodies = [
        orjson.dumps([ROW]),
        orjson.dumps(orjson.dumps([ROW, dict(next_day, windFarmCount=12)]).decode()),
    ]
    keys = [body_key(IrisMessage("m", "FUELINST", b).body_sha256) for b in bodies]
    put_bodies(client, dict(zip(keys, bodies)))
    first = store_batch(sink, client, FUELINST, keys)
    assert first.rows == 2 and first.days == {"2025-10-27": True, "2025-10-28": True}
    assert first.schema_drift == ("windFarmCount",)
    again = store_batch(sink, client, FUELINST, keys)  # a redelivered task
    assert again.days == {"2025-10-27": False, "2025-10-28": False}
    rows = sink.query(
        "SELECT settlementDate, _source, _extra FROM fuelinst_unified ORDER BY 1"
    ).to_pylist()
    assert [(str(r["settlementDate"]), r["_source"]) for r in rows] == [
        ("2025-10-27", "iris"),
        ("2025-10-28", "iris"),
    ]
    assert orjson.loads(rows[1]["_extra"]) == {"windFarmCount": 12}
    assert 0 < client.ttl(keys[0]) <= 3600  # kept an hour for redelivered tasks, then gone


def test_a_missing_body_fails_loudly_saying_what_to_do(
    redis_server: RedisServer, data_dir: Path
) -> None:
    with pytest.raises(MissingBodyError, match="Re-send the messages"):
        store_batch(LocalWarehouse(data_dir), redis_server.client(), FUELINST, [body_key("0" * 64)])


def test_sim_iris_writes_the_official_layout_deterministically(tmp_path: Path) -> None:
    start = dt.datetime(2025, 10, 27, 10, tzinfo=dt.UTC)
    feeds = [
        IrisFeed(tmp_path / name, seed=5, start=start, poison=0.2, dup=0.3) for name in ("a", "b")
    ]
    for feed in feeds:
        for _ in range(40):
            feed.next_message()
    names = [sorted(p.relative_to(f.out).as_posix() for p in f.out.glob("*/*")) for f in feeds]
    assert names[0] == names[1] and len(names[0]) > 30
    kinds = {m.kind for m in feeds[0].sent}
    assert {"message", "redelivery", "duplicate"} <= kinds and kinds & {
        "not-json",
        "schema",
        "unknown-dataset",
    }
    for message in feeds[0].sent:
        assert message.path.parent.name == message.dataset
        assert message.message_id.startswith(f"{message.dataset}_2")


def test_bmrs_sim_iris_command_emits_for_its_duration(tmp_path: Path) -> None:
    bmrs = Path(sys.executable).parent / "bmrs"
    done = subprocess.run(
        [
            str(bmrs),
            "sim-iris",
            "--out",
            str(tmp_path),
            "--rate",
            "600",
            "--duration",
            "1",
            "--seed",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert 5 <= summary["files"] <= 12
    assert len(list(tmp_path.glob("*/*.json"))) >= 5


@pytest.mark.parametrize("code", [d.code for d in catalog.DATASETS if d.endpoint.startswith("/datasets/")])
def test_every_dataset_iris_sends_is_accepted(code: str) -> None:
    """IRIS names a message by its /datasets code; none is dead-lettered as unknown."""
    from iris_listener.messages import dataset_of

    assert dataset_of(IrisMessage(message_id=f"{code}_202510261200.json", subject=code, body=b"[]")).code == code


@pytest.mark.parametrize(
    "sample",
    ["INDO__gridskew-indo.json", "ITSDO__gridskew-itsdo.json", "NDF__gridskew-ndf_truncated.json",
     "B1610__gridskew-b1610_stream.json"],
)
def test_a_dataset_new_to_the_catalog_from_iris_appears_in_its_unified_view(
    sample: str, data_dir: Path
) -> None:
    """Real rows of datasets the catalog gained, sent as IRIS sends them (a bare array), are
    accepted and stored as stream rows, and every one shows in ``<code>_unified``."""
    from worker.elexon.coverage import digest
    from worker.elexon.dedup import conform

    body = json.loads((Path(__file__).resolve().parents[2] / "shared/elexon/samples" / sample).read_text())
    rows = body if isinstance(body, list) else body["data"]
    code = sample.split("__")[0]
    dataset, count = check(IrisMessage(f"{code}_1.json", code, orjson.dumps(rows)))
    assert (dataset.code, count) == (code, len(rows))
    sink = LocalWarehouse(data_dir)
    table = conform(dataset, parse_rows(dataset, rows, source="iris").table)
    for day in sorted(set(table.column("_day").to_pylist())):
        mine = table.filter(pa.compute.equal(table.column("_day"), pa.scalar(day, pa.date32())))
        sink.append_stream(dataset, day, mine, digest(mine))
    unified = sink.query(f"SELECT _hash_key FROM {dataset.table}_unified").column("_hash_key")
    assert sorted(unified.to_pylist()) == sorted(table.column("_hash_key").to_pylist())
