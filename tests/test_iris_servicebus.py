"""The Service Bus source: the real ``azure-servicebus`` SDK against a local AMQP broker.

The broker (tests/support/servicebus.py) answers the SDK's ``$cbs`` token request and
keeps a peek-lock queue; what it records is what IRIS would have seen: which messages
were completed, abandoned (and so redelivered) or dead-lettered with which reason.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

import orjson
import pytest

from iris_listener.handoff import CeleryHandOff
from iris_listener.listener import Listener
from iris_listener.servicebus import ServiceBusSource, client_factory
from tests.support.iris import IrisCluster, wait_for
from tests.support.redis import RedisServer
from tests.support.servicebus import ServiceBusTestBroker
from worker.settings import Settings, get_settings
from worker.sinks.local import LocalWarehouse


def freq_body(second: int, *, twice: bool = False) -> bytes:
    rows = [
        {"dataset": "FREQ", "measurementTime": f"2025-10-27T10:00:{second:02d}Z", "frequency": 50.0}
    ]
    body = orjson.dumps(rows)
    return orjson.dumps(body.decode()) if twice else body


def make_source(broker: ServiceBusTestBroker) -> ServiceBusSource:
    settings = Settings(
        iris_connection_string=broker.connection_string, iris_queue=broker.queue_name
    )
    make_client, queue = client_factory(settings)
    return ServiceBusSource(make_client, queue, prefetch=5)


def run_listener(listener: Listener, until, timeout: float = 20) -> None:
    """Run a listener in a thread until ``until()`` holds, then stop it cleanly."""
    stop = threading.Event()
    thread = threading.Thread(target=listener.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(until, timeout, "the listener")
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()


def test_sdk_receives_completes_abandons_and_abandoned_messages_are_redelivered(
    servicebus_broker: ServiceBusTestBroker,
) -> None:
    broker = servicebus_broker
    for second in range(3):
        broker.send(
            f"FREQ_20251027100{second}_{second}.json", "FREQ", freq_body(second, twice=second == 1)
        )
    source = make_source(broker)
    try:
        received = []
        deadline = time.monotonic() + 15
        while len(received) < 3 and time.monotonic() < deadline:
            received += source.receive(3, 1.0)
        assert [d.message.message_id for d in received] == [
            f"FREQ_20251027100{s}_{s}.json" for s in range(3)
        ]
        assert all(d.message.subject == "FREQ" and d.message.delivery_count == 1 for d in received)
        assert received[1].message.body == freq_body(1, twice=True)
        source.complete(received[0])
        source.abandon(received[1])
        source.dead_letter(
            received[2], "rows-fail-schema", "FREQ: field 'frequency' expects double"
        )
        again = source.receive(3, 5.0)
        assert [(d.message.message_id, d.message.delivery_count) for d in again] == [
            ("FREQ_202510271001_1.json", 2)
        ]
        source.complete(again[0])
    finally:
        source.close()
    assert [m.message_id for m in broker.completed] == [
        "FREQ_202510271000_0.json",
        "FREQ_202510271001_1.json",
    ]
    assert broker.abandoned == ["FREQ_202510271001_1.json"]
    ((dead, reason, description),) = broker.dead_lettered
    assert (dead.message_id, reason) == ("FREQ_202510271002_2.json", "rows-fail-schema")
    assert "frequency" in description
    assert broker.tokens, "the SDK never asked $cbs for a token"


@pytest.fixture
def broker_env(
    bmrs_env: pytest.MonkeyPatch, redis_server: RedisServer, servicebus_broker: ServiceBusTestBroker
) -> ServiceBusTestBroker:
    bmrs_env.setenv("BMRS_BROKER_URL", redis_server.url)
    bmrs_env.setenv("BMRS_IRIS_CONNECTION_STRING", servicebus_broker.connection_string)
    bmrs_env.setenv("BMRS_IRIS_QUEUE", servicebus_broker.queue_name)
    get_settings.cache_clear()
    return servicebus_broker


def celery_hand_off(redis_server: RedisServer) -> CeleryHandOff:
    from worker.cluster.celery_app import create_app

    return CeleryHandOff(redis_server.client(), create_app(get_settings()))


def test_listener_completes_only_after_hand_off_and_dead_letters_poison_with_its_reason(
    broker_env: ServiceBusTestBroker, redis_server: RedisServer
) -> None:
    broker = broker_env
    broker.send("FREQ_1.json", "FREQ", freq_body(1))
    broker.send("NOTADATASET_1.json", "NOTADATASET", b'[{"warningText": "x"}]')
    broker.send("FREQ_2.json", "FREQ", b'[{"measurementTime": "2025-10-27T10:00:02Z", ')
    broker.send("FREQ_3.json", "FREQ", freq_body(3, twice=True))
    hand_off = celery_hand_off(redis_server)
    seen_by_hand_off: list[dict[str, int]] = []

    def recording_hand_off(dataset, messages):
        seen_by_hand_off.append(broker.counts())  # what IRIS knew when the hand-off began
        return hand_off(dataset, messages)

    listener = Listener(make_source(broker), recording_hand_off, batch_max=10, batch_s=0.5)
    run_listener(
        listener,
        lambda: broker.counts()["completed"] == 2 and broker.counts()["dead_lettered"] == 2,
    )
    assert seen_by_hand_off and all(c["completed"] == 0 for c in seen_by_hand_off)
    assert sorted(m.message_id for m in broker.completed) == ["FREQ_1.json", "FREQ_3.json"]
    reasons = {m.message_id: reason for m, reason, _ in broker.dead_lettered}
    assert reasons == {"NOTADATASET_1.json": "unknown-dataset", "FREQ_2.json": "body-not-json"}
    assert redis_server.client().llen("iris") == 1  # one FREQ batch waits for a worker
    assert len(redis_server.client().keys("bmrs:iris:body:*")) == 2


def test_a_failed_hand_off_abandons_the_batch_and_it_is_redelivered(
    broker_env: ServiceBusTestBroker, redis_server: RedisServer
) -> None:
    broker = broker_env
    broker.send("FREQ_1.json", "FREQ", freq_body(1))
    hand_off = celery_hand_off(redis_server)
    attempts = []

    def flaky_hand_off(dataset, messages):
        attempts.append([m.delivery_count for m in messages])
        if len(attempts) == 1:
            raise ConnectionError("Redis went away")
        return hand_off(dataset, messages)

    listener = Listener(make_source(broker), flaky_hand_off, batch_s=0.2, handoff_backoff_s=0.1)
    run_listener(listener, lambda: broker.counts()["completed"] == 1)
    # abandoned, and any copy prefetched meanwhile given back when the listener paused
    assert set(broker.abandoned) == {"FREQ_1.json"}
    assert len(attempts) == 2 and attempts[0] == [1] and attempts[1][0] >= 2
    assert listener.totals["abandoned"] == 1 and listener.totals["handed_off"] == 1


def test_locks_are_renewed_while_a_slow_hand_off_runs(
    bmrs_env: pytest.MonkeyPatch, redis_server: RedisServer
) -> None:
    bmrs_env.setenv("BMRS_BROKER_URL", redis_server.url)
    get_settings.cache_clear()
    broker = ServiceBusTestBroker("iris.slow", lock_s=2.0)
    broker.start()
    try:
        broker.send("FREQ_1.json", "FREQ", freq_body(1))
        hand_off = celery_hand_off(redis_server)

        def slow_hand_off(dataset, messages):
            time.sleep(5)  # longer than the lock: only renewal keeps the message ours
            return hand_off(dataset, messages)

        listener = Listener(make_source(broker), slow_hand_off, batch_s=0.1)
        run_listener(listener, lambda: broker.counts()["completed"] == 1)
        assert "FREQ_1.json" in broker.renewals
        assert broker.abandoned == [] and listener.totals["received"] == 1
    finally:
        broker.stop()


def test_the_source_reconnects_after_the_connection_drops(broker_env: ServiceBusTestBroker) -> None:
    broker = broker_env
    source = make_source(broker)
    try:
        broker.send("FREQ_1.json", "FREQ", freq_body(1))
        first = []
        deadline = time.monotonic() + 10
        while not first and time.monotonic() < deadline:
            first = source.receive(1, 1.0)
        source.complete(first[0])
        broker.drop_connections()
        broker.send("FREQ_2.json", "FREQ", freq_body(2))
        again = []
        deadline = time.monotonic() + 30
        while not again and time.monotonic() < deadline:
            again = source.receive(1, 1.0)
        assert [d.message.message_id for d in again] == ["FREQ_2.json"]
        source.complete(again[0])
    finally:
        source.close()
    assert broker.connections >= 2
    assert [m.message_id for m in broker.completed] == ["FREQ_1.json", "FREQ_2.json"]


def test_bmrs_listen_over_service_bus_lands_rows_once_and_stops_cleanly_on_sigterm(
    broker_env: ServiceBusTestBroker, iris_cluster: IrisCluster
) -> None:
    broker = broker_env
    for second in range(6):
        broker.send(f"FREQ_{second}.json", "FREQ", freq_body(second, twice=second % 2 == 0))
    broker.send("FREQ_dup.json", "FREQ", freq_body(0))  # the same rows again under a new id
    iris_cluster.start_worker()
    listener = iris_cluster.start_listener()
    wait_for(
        lambda: broker.counts()["completed"] == 7, 30, "the messages to be completed", iris_cluster
    )
    wait_for(
        lambda: iris_cluster.queue_length() == 0, 30, "the worker to drain the queue", iris_cluster
    )

    def rows() -> list[dict]:
        return (
            LocalWarehouse(iris_cluster.data_dir)
            .query("SELECT measurementTime, _source FROM freq_unified ORDER BY measurementTime")
            .to_pylist()
        )

    wait_for(lambda: len(rows()) == 6, 20, "the rows to be queryable", iris_cluster)
    assert [r["measurementTime"].second for r in rows()] == list(range(6))
    assert {r["_source"] for r in rows()} == {"iris"}
    listener.signal(15)
    assert listener.wait(30) == 0
    assert "service bus queue iris.test" in listener.log()
    assert broker.counts()["locked"] == 0 and broker.counts()["ready"] == 0
    assert broker.counts()["abandoned"] == 0


def test_status_shows_last_message_time_rate_and_alerts_after_15_minutes_of_silence(
    broker_env: ServiceBusTestBroker, redis_server: RedisServer
) -> None:
    from iris_listener.status import iris_status, silence_alert

    broker = broker_env
    broker.send("FREQ_1.json", "FREQ", freq_body(1))
    broker.send("FREQ_2.json", "FREQ", freq_body(2))
    listener = Listener(
        make_source(broker),
        celery_hand_off(redis_server),
        status_client=redis_server.client(),
        batch_s=0.2,
    )
    run_listener(listener, lambda: broker.counts()["completed"] == 2)
    client = redis_server.client()
    now = dt.datetime.now(dt.UTC)
    status = iris_status(client, now)
    assert status["datasets"]["FREQ"]["messages_per_min"] == pytest.approx(2 / 15, abs=0.01)
    assert status["listener"]["handed_off"] == "2"
    assert status["alert"] is None
    later = now + dt.timedelta(minutes=16)
    alert = silence_alert(client, later)
    assert alert is not None and "IRIS silent for 16 minutes" in alert
