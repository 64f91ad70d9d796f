"""IRIS in `bmrs status` and the freshness check: last message, rate, silence alerted once."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import pytest
from click.testing import CliRunner

from iris_listener.status import heartbeat, record_received, silence_alert
from tests.support.redis import RedisServer
from worker.cli import main
from worker.cluster import freshness

UTC = dt.UTC


def test_silence_is_alerted_once_and_recovery_once(redis_server: RedisServer) -> None:
    client = redis_server.client()
    started = dt.datetime.now(UTC) - dt.timedelta(hours=1)
    heartbeat(client, "folder", {"received": 3}, started)
    record_received(client, Counter({"BOALF": 3}), started)
    now = dt.datetime.now(UTC)
    silence = silence_alert(client, now)
    assert silence is not None and "IRIS silent for 60 minutes" in silence
    assert freshness.record_iris_silence(client, silence) == [silence]
    assert freshness.record_iris_silence(client, silence_alert(client, now)) == []  # once only
    record_received(client, Counter({"BOALF": 1}), now)
    assert silence_alert(client, now) is None
    assert freshness.record_iris_silence(client, None) == ["IRIS messages are arriving again"]
    assert freshness.record_iris_silence(client, None) == []


def test_status_shows_iris_last_message_and_rate(
    redis_server: RedisServer, bmrs_env: pytest.MonkeyPatch
) -> None:
    bmrs_env.setenv("BMRS_BROKER_URL", redis_server.url)
    client = redis_server.client()
    now = dt.datetime.now(UTC)
    heartbeat(client, "folder", {"received": 30}, now - dt.timedelta(minutes=5))
    record_received(client, Counter({"FUELINST": 30, "BOALF": 15}), now)
    result = CliRunner().invoke(main, ["status", "--json"])
    assert result.exit_code == 0, result.output
    iris = json.loads(result.output)["iris"]
    assert iris["listener"]["source"] == "folder" and iris["alert"] is None
    assert iris["datasets"]["FUELINST"]["messages_per_min"] == 2.0  # 30 over 15 minutes
    assert iris["datasets"]["BOALF"]["last_message_utc"] == now.isoformat()
    text = CliRunner().invoke(main, ["status"])
    assert "IRIS listener: folder" in text.output and "FUELINST" in text.output
