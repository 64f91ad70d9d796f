"""IRIS over Azure Service Bus, with the real ``azure-servicebus`` SDK.

Peek-lock with a small prefetch: a message is only locked, never removed, until the
listener settles it. An :class:`~azure.servicebus.AutoLockRenewer` keeps locks alive while a
batch waits for its hand-off (IRIS locks last about a minute). A dropped connection closes
the client; the next receive reconnects with exponential backoff. Messages held from a dead
link can no longer be settled: IRIS redelivers them and storage loads them once.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable

from azure.servicebus import (
    AutoLockRenewer,
    ServiceBusClient,
    ServiceBusReceivedMessage,
    ServiceBusReceiveMode,
    ServiceBusReceiver,
)
from azure.servicebus.amqp import AmqpMessageBodyType
from azure.servicebus.exceptions import ServiceBusError

from iris_listener.listener import Delivery
from iris_listener.messages import IrisMessage
from worker.settings import Settings

log = logging.getLogger(__name__)

PREFETCH = 10
# Longest a message's lock is renewed while its batch waits for the hand-off.
MAX_LOCK_RENEWAL_S = 600.0
BACKOFF_MAX_S = 60.0


class IrisConfigError(ValueError):
    """IRIS settings that cannot make a connection; says which settings to set."""


def client_factory(settings: Settings) -> tuple[Callable[[], ServiceBusClient], str]:
    """A function making Service Bus clients from the settings, and the queue name.

    A connection string (``BMRS_IRIS_CONNECTION_STRING``, e.g. a local emulator's) wins;
    otherwise Azure AD client credentials (tenant, client id, secret) against the namespace.
    """
    queue = settings.iris_queue
    if settings.iris_connection_string is not None:
        conn = settings.iris_connection_string.get_secret_value()
        if not queue:
            entity = [
                p.split("=", 1)[1] for p in conn.split(";") if p.lower().startswith("entitypath=")
            ]
            queue = entity[0] if entity else None
        if not queue:
            raise IrisConfigError("set BMRS_IRIS_QUEUE (or EntityPath in the connection string)")
        return (lambda: ServiceBusClient.from_connection_string(conn, retry_total=2)), queue
    needed = {
        "BMRS_IRIS_TENANT_ID": settings.iris_tenant_id,
        "BMRS_IRIS_CLIENT_ID": settings.iris_client_id,
        "BMRS_IRIS_CLIENT_SECRET": settings.iris_client_secret,
        "BMRS_IRIS_QUEUE": queue,
    }
    missing = [name for name, value in needed.items() if not value]
    if missing:
        raise IrisConfigError(
            f"IRIS over Service Bus needs {', '.join(missing)} (or _FILE) to be set"
        )
    from azure.identity import ClientSecretCredential

    credential = ClientSecretCredential(
        tenant_id=str(settings.iris_tenant_id),
        client_id=str(settings.iris_client_id),
        client_secret=settings.iris_client_secret.get_secret_value(),  # type: ignore[union-attr]
    )
    namespace = settings.iris_namespace
    return (lambda: ServiceBusClient(namespace, credential, retry_total=2)), str(queue)


def servicebus_configured(settings: Settings) -> bool:
    """Whether the settings ask for Service Bus (any IRIS credential or connection string)."""
    return any(
        value is not None
        for value in (
            settings.iris_connection_string,
            settings.iris_tenant_id,
            settings.iris_client_id,
            settings.iris_client_secret,
        )
    )


def body_bytes(message: ServiceBusReceivedMessage) -> bytes:
    """A message's body as bytes, whichever AMQP body type carried it."""
    body = message.body
    if message.body_type == AmqpMessageBodyType.DATA:
        return body if isinstance(body, bytes) else b"".join(body)
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    import orjson

    return orjson.dumps(body)


class ServiceBusSource:
    """Receives from one IRIS queue in peek-lock mode, reconnecting when the link drops."""

    def __init__(
        self,
        make_client: Callable[[], ServiceBusClient],
        queue: str,
        *,
        prefetch: int = PREFETCH,
        max_lock_renewal_s: float = MAX_LOCK_RENEWAL_S,
    ) -> None:
        self.make_client = make_client
        self.queue = queue
        self.name = f"service bus queue {queue}"
        self.prefetch = prefetch
        self.max_lock_renewal_s = max_lock_renewal_s
        self._stack: contextlib.ExitStack | None = None
        self._receiver: ServiceBusReceiver | None = None
        self._failures = 0

    def _connect(self) -> ServiceBusReceiver:
        """Open client, lock renewer and receiver (the SDK's own ``with`` protocol), once."""
        if self._receiver is None:
            stack = contextlib.ExitStack()
            try:
                client = stack.enter_context(self.make_client())
                renewer = stack.enter_context(
                    AutoLockRenewer(max_lock_renewal_duration=self.max_lock_renewal_s)
                )
                self._receiver = stack.enter_context(
                    client.get_queue_receiver(
                        self.queue,
                        receive_mode=ServiceBusReceiveMode.PEEK_LOCK,
                        prefetch_count=self.prefetch,
                        auto_lock_renewer=renewer,
                    )
                )
            except BaseException:
                stack.close()
                raise
            self._stack = stack
        return self._receiver

    def receive(self, max_count: int, max_wait_s: float) -> list[Delivery]:
        try:
            receiver = self._connect()
            received = receiver.receive_messages(
                max_message_count=max_count, max_wait_time=max(max_wait_s, 0.1)
            )
        except ServiceBusError as exc:
            self._failures += 1
            pause = min(BACKOFF_MAX_S, 2 ** min(self._failures, 6)) * random.uniform(0.5, 1.0)
            log.warning(
                "IRIS %s: connection failed (%s); reconnecting in %.1fs", self.queue, exc, pause
            )
            self.close()
            time.sleep(pause)
            return []
        self._failures = 0
        return [
            Delivery(
                message=IrisMessage(
                    message_id=str(m.message_id),
                    subject=m.subject or "",
                    body=body_bytes(m),
                    enqueued_utc=m.enqueued_time_utc,
                    delivery_count=(m.delivery_count or 0) + 1,
                ),
                handle=m,
            )
            for m in received
        ]

    def _held_receiver(self) -> ServiceBusReceiver:
        if self._receiver is None:
            raise ServiceBusError("the link this message came on is closed; it will be redelivered")
        return self._receiver

    def complete(self, delivery: Delivery) -> None:
        self._held_receiver().complete_message(delivery.handle)

    def abandon(self, delivery: Delivery) -> None:
        self._held_receiver().abandon_message(delivery.handle)

    def dead_letter(self, delivery: Delivery, reason: str, description: str) -> None:
        self._held_receiver().dead_letter_message(
            delivery.handle, reason=reason, error_description=description[:1024]
        )

    def close(self) -> None:
        stack, self._stack, self._receiver = self._stack, None, None
        if stack is not None:
            try:
                stack.close()
            except Exception as exc:  # closing a dead connection may fail; nothing to save
                log.debug("IRIS %s: close: %s", self.queue, exc)
