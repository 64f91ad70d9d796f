"""A small AMQP 1.0 broker that the real ``azure-servicebus`` SDK can talk to, for tests.

Built on ``python-qpid-proton``. It speaks the parts of Service Bus the listener uses, the
way the SDK's pure-Python AMQP transport expects them (``azure/servicebus/_pyamqp``):
- plain AMQP with SASL ANONYMOUS (the SDK's ``UseDevelopmentEmulator=true`` turns TLS off);
- the claims-based-security ``$cbs`` node: any ``put-token`` request is answered 200;
- one queue in peek-lock mode: each delivery carries a lock token (its delivery tag, a UUID)
  and ``x-opt-locked-until``; the receiver's disposition settles it: ``accepted`` completes,
  ``modified`` abandons (redelivered with ``delivery_count`` + 1), ``rejected`` with the
  ``com.microsoft:dead-letter`` condition dead-letters with the reason the SDK sends;
- locks expire after ``lock_s`` (the message comes back), and after ``max_delivery`` deliveries
  a message is dead-lettered as Service Bus does;
- the ``$management`` node's ``renew-lock`` operation, which AutoLockRenewer calls.
What it records (completed, abandoned, dead-lettered, renewals) is what the tests assert on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator

import pytest
from proton import Delivery, Endpoint, Message, symbol, timestamp
from proton.handlers import MessagingHandler
from proton.reactor import ApplicationEvent, Container, EventInjector

from tests.support.env import free_port

DEAD_LETTER = "com.microsoft:dead-letter"
RENEW_LOCK = "com.microsoft:renew-lock"


@dataclasses.dataclass
class QueuedMessage:
    """A message in the queue, and its life there."""

    message_id: str
    subject: str
    body: bytes
    sequence: int
    enqueued: dt.datetime
    delivery_count: int = 0  # deliveries so far (AMQP header: failed attempts before this one)


@dataclasses.dataclass
class _Lock:
    message: QueuedMessage
    delivery: Delivery
    until: float


class ServiceBusTestBroker(MessagingHandler):
    """Runs in its own thread; methods without a leading underscore are thread-safe."""

    def __init__(self, queue: str, *, lock_s: float = 30.0, max_delivery: int = 5) -> None:
        super().__init__(prefetch=10, auto_accept=True, auto_settle=False)
        self.queue_name = queue
        self.lock_s = lock_s
        self.max_delivery = max_delivery
        self.port = free_port()
        self._mutex = threading.Lock()
        self._ready: deque[QueuedMessage] = deque()
        self._locks: dict[str, _Lock] = {}
        self._senders: list = []  # links delivering the queue to receivers
        self._sequence = 0
        self.completed: list[QueuedMessage] = []
        self.abandoned: list[str] = []
        self.dead_lettered: list[tuple[QueuedMessage, str | None, str | None]] = []
        self.renewals: list[str] = []
        self.tokens: list[str] = []
        self.connections = 0
        self._injector = EventInjector()
        self._container = Container(self)
        self._container.selectable(self._injector)
        self._thread = threading.Thread(
            target=self._container.run, name="sb-test-broker", daemon=True
        )
        self._started = threading.Event()

    # ---------------------------------------------------------------- test-facing API

    @property
    def connection_string(self) -> str:
        return (
            f"Endpoint=sb://127.0.0.1:{self.port};SharedAccessKeyName=test;"
            "SharedAccessKey=not-a-secret;UseDevelopmentEmulator=true"
        )

    def start(self) -> None:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("test Service Bus broker did not start")

    def stop(self) -> None:
        self._injector.trigger(ApplicationEvent("broker_stop"))
        self._thread.join(10)

    def send(self, message_id: str, subject: str, body: bytes) -> None:
        """Enqueue a message, as Elexon's side of IRIS would."""
        with self._mutex:
            self._sequence += 1
            self._ready.append(
                QueuedMessage(
                    message_id, subject, body, self._sequence, dt.datetime.now(dt.UTC)
                )
            )
        self._injector.trigger(ApplicationEvent("broker_pump"))

    def drop_connections(self) -> None:
        """Close every client connection, as a network failure would (locks are lost).

        Returns once the broker has dropped them, so a message sent afterwards can only go
        to a connection made after the drop, never to one being closed.
        """
        dropped = threading.Event()
        self._injector.trigger(ApplicationEvent("broker_drop", subject=dropped))
        if not dropped.wait(10):
            raise RuntimeError("test Service Bus broker did not drop its connections")

    def counts(self) -> dict[str, int]:
        with self._mutex:
            return {
                "ready": len(self._ready),
                "locked": len(self._locks),
                "completed": len(self.completed),
                "abandoned": len(self.abandoned),
                "dead_lettered": len(self.dead_lettered),
            }

    # ---------------------------------------------------------------- proton events

    def on_start(self, event) -> None:
        event.container.listen(f"127.0.0.1:{self.port}")
        event.container.schedule(0.1, self)
        self._started.set()

    def on_timer_task(self, event) -> None:
        self._expire_locks()
        self._pump()
        event.container.schedule(0.1, self)

    def on_broker_pump(self, event) -> None:
        self._pump()

    def on_broker_stop(self, event) -> None:
        self._container.stop()

    def on_broker_drop(self, event) -> None:
        # Closing locally fires none of the closing/disconnected callbacks below, so the
        # links are forgotten (their locked messages requeued) here, before the close.
        connections = {link.connection for link in self._senders}
        for link in list(self._senders):
            self._forget_link(link)
        for connection in connections:
            connection.close()
        event.subject.set()

    def on_connection_opening(self, event) -> None:
        self.connections += 1

    def on_link_opening(self, event) -> None:
        link = event.link
        link.source.copy(link.remote_source)
        link.target.copy(link.remote_target)
        link.rcv_settle_mode = link.remote_rcv_settle_mode
        link.snd_settle_mode = link.remote_snd_settle_mode
        if link.is_sender:
            address = link.remote_source.address or ""
            if address.endswith(("$cbs", "$management")):
                pass  # replies to requests go out on this link (see _reply_link)
            elif address.rstrip("/").rsplit("/", 1)[-1] == self.queue_name:
                self._senders.append(link)
            else:
                link.close()  # an entity this broker does not have

    def on_link_closing(self, event) -> None:
        self._forget_link(event.link)

    def on_connection_closing(self, event) -> None:
        for link in list(self._senders):
            if link.connection is event.connection:
                self._forget_link(link)

    def on_connection_closed(self, event) -> None:
        for link in list(self._senders):
            if link.connection is event.connection:
                self._forget_link(link)

    def on_link_closed(self, event) -> None:
        self._forget_link(event.link)

    def on_disconnected(self, event) -> None:
        for link in list(self._senders):
            if link.connection is event.connection:
                self._forget_link(link)

    def on_sendable(self, event) -> None:
        self._pump()

    def on_message(self, event) -> None:
        """Requests to ``$cbs`` (put-token) and ``$management`` (renew-lock)."""
        request = event.message
        props = request.properties or {}
        operation = props.get("operation")
        # answered on the sender link of the node the request was sent to ($cbs, $management)
        reply = _reply_link(event.connection, event.link.remote_target.address)
        body: object = None
        if operation == "put-token":
            self.tokens.append(str(props.get("name")))
        elif operation == RENEW_LOCK:
            tokens = (
                request.body[symbol("lock-tokens")]
                if symbol("lock-tokens") in request.body
                else request.body["lock-tokens"]
            )
            expirations = []
            with self._mutex:
                for token in tokens:
                    lock = self._locks.get(token.bytes_le.decode())
                    if lock is not None:
                        lock.until = time.monotonic() + self.lock_s
                        self.renewals.append(lock.message.message_id)
                    expirations.append(timestamp(int((time.time() + self.lock_s) * 1000)))
            body = {"expirations": expirations}
        response = Message(
            correlation_id=request.id,
            properties={
                "status-code": 200,
                "statusCode": 200,
                "status-description": "OK",
                "statusDescription": "OK",
            },
            body=body,
        )
        if reply is not None:
            reply.send(response)

    def on_delivery(self, event) -> None:
        delivery = event.delivery
        if not delivery.link.is_sender or not delivery.updated:
            return
        with self._mutex:
            lock = self._locks.pop(delivery.tag, None)
            if lock is None:
                delivery.settle()  # lock already expired: the message was requeued
                return
            state = delivery.remote_state
            if state == Delivery.ACCEPTED:
                self.completed.append(lock.message)
            elif state == Delivery.REJECTED:
                condition = delivery.remote.condition
                info = dict(condition.info or {}) if condition else {}
                self.dead_lettered.append(
                    (
                        lock.message,
                        _text(info.get("DeadLetterReason")),
                        _text(info.get("DeadLetterErrorDescription")),
                    )
                )
            else:  # modified / released: abandon, deliver again
                self.abandoned.append(lock.message.message_id)
                self._requeue(lock.message)
            delivery.update(state)
            delivery.settle()
        self._pump()

    # ---------------------------------------------------------------- internals

    def _forget_link(self, link) -> None:
        if link in self._senders:
            self._senders.remove(link)
            with self._mutex:  # a closed link's locks are lost: redeliver its messages
                for tag, lock in list(self._locks.items()):
                    if lock.delivery.link is link:
                        del self._locks[tag]
                        self._requeue(lock.message)

    def _requeue(self, message: QueuedMessage) -> None:
        """Back to the head of the queue, or to the dead-letter queue after max deliveries."""
        if message.delivery_count >= self.max_delivery:
            self.dead_lettered.append((message, "MaxDeliveryCountExceeded", "delivered too often"))
        else:
            self._ready.appendleft(message)

    def _expire_locks(self) -> None:
        now = time.monotonic()
        with self._mutex:
            for tag, lock in list(self._locks.items()):
                if lock.until <= now:
                    del self._locks[tag]
                    self._requeue(lock.message)

    def _pump(self) -> None:
        with self._mutex:
            for link in self._senders:
                if not link.connection.state & Endpoint.LOCAL_ACTIVE:
                    continue  # a connection being closed: its deliveries would be lost
                while self._ready and link.credit > 0 and link.state & Endpoint.LOCAL_ACTIVE:
                    message = self._ready.popleft()
                    # The SDK reads the 16-byte tag as the lock token, UUID(bytes_le=tag);
                    # proton handles tags as text, so the 16 bytes are ASCII hex digits.
                    tag = uuid.uuid4().hex[:16]
                    until = time.time() + self.lock_s
                    amqp = Message(
                        id=message.message_id,
                        subject=message.subject,
                        body=message.body,
                        inferred=True,  # a data section, as IRIS sends bodies
                        delivery_count=message.delivery_count,
                        annotations={
                            symbol("x-opt-sequence-number"): message.sequence,
                            symbol("x-opt-enqueued-time"): timestamp(
                                int(message.enqueued.timestamp() * 1000)
                            ),
                            symbol("x-opt-locked-until"): timestamp(int(until * 1000)),
                        },
                    )
                    message.delivery_count += 1
                    delivery = link.send(amqp, tag=tag)
                    self._locks[tag] = _Lock(message, delivery, time.monotonic() + self.lock_s)


def _reply_link(connection, node: str):
    """The sender link of ``connection`` whose source is ``node`` ($cbs or $management)."""
    link = connection.link_head(Endpoint.LOCAL_ACTIVE)
    while link is not None:
        if link.is_sender and link.source.address == node:
            return link
        link = link.next(Endpoint.LOCAL_ACTIVE)
    return None


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


@pytest.fixture
def servicebus_broker() -> Iterator[ServiceBusTestBroker]:
    """A fresh broker with one queue named ``iris.test``, stopped after the test."""
    broker = ServiceBusTestBroker("iris.test")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
