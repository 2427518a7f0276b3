"""The confirming publisher the outbox relay uses."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pika
import pika.exceptions
from pika.adapters.select_connection import IOLoop

from shared.events import CONTENT_TYPE, Event
from shared.messaging.failures import BrokerUnavailable
from shared.messaging.metrics import EVENTS_PUBLISHED
from shared.messaging.producers import broker_user
from shared.messaging.topology import EXCHANGE, PERSISTENT, connection_parameters


class PublishResult(list[bool]):
    """One batch's outcome: result[i] is True when event i was routed and confirmed.

    A list, so `all(result)` and `result == [True, ...]` read as before; `failures` says why
    each other event was not published, by event id (the outbox stores it as last_error).
    """

    def __init__(
        self, confirmed: Iterable[bool] = (), failures: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(confirmed)
        self.failures: dict[str, str] = dict(failures or {})


def event_properties(event: Event, *, user_id: str | None = None) -> pika.BasicProperties:
    """AMQP properties of a published event: persistent, id, type, correlation headers and
    the publishing connection's user (`user_id`, which the broker validates)."""
    headers: dict[str, Any] = {}
    if event.requestid:
        headers["requestid"] = event.requestid
    if event.traceparent:
        headers["traceparent"] = event.traceparent
    return pika.BasicProperties(
        content_type=CONTENT_TYPE,
        delivery_mode=PERSISTENT,
        message_id=event.id,
        type=event.type,
        timestamp=int(event.time.timestamp()),
        user_id=user_id or None,
        headers=headers,
    )


class Publisher:
    """Publishes events to `events` with `mandatory` and asynchronous publisher confirms.

    Why a SelectConnection driven by hand: BlockingConnection's confirm_delivery waits for
    each confirm before the next publish (one round trip per message, about 1.4k msgs/s
    here). With SelectConnection the whole batch goes on the wire at once and the broker
    acks many delivery tags per frame (multiple=True). Its ioloop normally owns the thread,
    but the relay is a plain loop, so we run the ioloop only while waiting for something
    (connection open, the batch's confirms, an idle pause that must keep heartbeats going)
    and stop it as soon as that happened. One Publisher per thread.
    """

    def __init__(
        self, amqp_url: str, *, confirm_timeout: float = 30.0, connect_timeout: float = 15.0
    ) -> None:
        # One attempt per connect: the caller (the relay) owns the backoff between attempts.
        self._parameters = connection_parameters(
            amqp_url, connection_attempts=1, connection_name="outbox-relay"
        )
        # Stamped on every event: consumers check it against the event's producer.
        self._user_id = broker_user(amqp_url)
        self._confirm_timeout = confirm_timeout
        self._connect_timeout = connect_timeout
        self._ioloop: Any = None
        self._connection: Any = None
        self._channel: Any = None
        self._ready = False
        self._lost: BaseException | None = None
        self._next_tag = 0
        self._pending: dict[int, int] = {}  # delivery tag -> index in the current batch
        self._lowest_pending = 1
        self._tag_ids: dict[int, str] = {}
        self._results: list[bool] = []
        self._failures: dict[str, str] = {}
        self._returned: set[str] = set()
        self._waiting_for: Callable[[], bool] | None = None

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- public API ---------------------------------------------------------------------

    def publish(self, event: Event) -> bool:
        """Publish one event; True when it was routed to a queue and confirmed."""
        return self.publish_batch([event])[0]

    def publish_batch(self, events: Sequence[Event]) -> PublishResult:
        """Publish events in order; result[i] is True when event i was routed and confirmed."""
        if not events:
            return PublishResult()
        self._ensure_connected()
        self._results = [False] * len(events)
        self._pending = {}
        self._tag_ids = {}
        self._returned = set()
        self._failures = {}
        self._lowest_pending = self._next_tag + 1
        try:
            for index, event in enumerate(events):
                self._channel.basic_publish(
                    exchange=EXCHANGE,
                    routing_key=event.type,
                    body=event.to_json(),
                    properties=event_properties(event, user_id=self._user_id),
                    mandatory=True,
                )
                self._next_tag += 1
                self._pending[self._next_tag] = index
                self._tag_ids[self._next_tag] = event.id
        except (pika.exceptions.AMQPError, OSError) as exc:
            self._lost = exc
        if self._lost is None:
            self._run_until(
                lambda: not self._pending or self._lost is not None, self._confirm_timeout
            )
        if self._pending:
            reason = (
                f"connection lost: {self._lost}"
                if self._lost is not None
                else f"not confirmed within {self._confirm_timeout}s"
            )
            for tag in self._pending:
                self._failures[self._tag_ids[tag]] = reason
            # Late confirms could not be matched to this batch any more: start afresh.
            self._disconnect()
        published = sum(self._results)
        EVENTS_PUBLISHED.inc(published)
        return PublishResult(self._results, self._failures)

    def wait(self, seconds: float) -> None:
        """Idle for `seconds` while servicing heartbeats of an open connection."""
        if self._connection is None or not self._ready:
            time.sleep(seconds)
            return
        self._run_until(lambda: self._lost is not None, seconds)

    def close(self) -> None:
        """Close the connection (if any) and the ioloop; a later publish connects afresh."""
        self._disconnect()
        if self._ioloop is not None:
            self._ioloop.close()
            self._ioloop = None

    # -- connection lifecycle -------------------------------------------------------------

    def _ensure_connected(self) -> None:
        if self._connection is not None and self._ready and self._lost is None:
            return
        self._disconnect()
        if self._ioloop is None:
            self._ioloop = IOLoop()
        self._ready = False
        self._lost = None
        self._next_tag = 0
        self._connection = pika.SelectConnection(
            self._parameters,
            on_open_callback=self._on_connection_open,
            on_open_error_callback=self._on_connection_error,
            on_close_callback=self._on_connection_closed,
            custom_ioloop=self._ioloop,
        )
        self._run_until(lambda: self._ready or self._lost is not None, self._connect_timeout)
        if not self._ready:
            reason = self._lost or f"no connection within {self._connect_timeout}s"
            self._disconnect()
            raise BrokerUnavailable(f"cannot connect to RabbitMQ: {reason}")

    def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        self._channel = None
        self._ready = False
        if connection is None:
            return
        if not connection.is_closed:
            if not connection.is_closing:
                try:
                    connection.close()
                except pika.exceptions.AMQPError:
                    pass  # already closing or never opened; the loop below finishes it
            self._run_until(lambda: bool(connection.is_closed), 5.0)

    def _run_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Run the ioloop until done() is true or timeout passes; return done()."""
        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._waiting_for = done
            timer = self._ioloop.call_later(remaining, self._ioloop.stop)
            try:
                self._ioloop.start()
            finally:
                self._ioloop.remove_timeout(timer)
        return True

    def _wake(self) -> None:
        """Stop the ioloop once what _run_until waits for has happened."""
        done = self._waiting_for
        if done is not None and done() and self._ioloop is not None:
            self._ioloop.stop()

    def _on_connection_open(self, connection: Any) -> None:
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_connection_error(self, _connection: Any, error: BaseException) -> None:
        self._lost = error
        self._wake()

    def _on_connection_closed(self, _connection: Any, reason: BaseException) -> None:
        self._ready = False
        self._lost = reason
        self._wake()

    def _on_channel_open(self, channel: Any) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        # Declared here too, so publishing before any consumer has run is not a 404.
        channel.exchange_declare(
            exchange=EXCHANGE,
            exchange_type="topic",
            durable=True,
            callback=lambda _frame: channel.confirm_delivery(
                ack_nack_callback=self._on_confirm, callback=self._on_confirm_mode
            ),
        )

    def _on_confirm_mode(self, _frame: Any) -> None:
        self._ready = True
        self._wake()

    def _on_channel_closed(self, _channel: Any, reason: BaseException) -> None:
        # A channel error (say a 404) leaves the connection open but useless to us.
        self._ready = False
        self._lost = reason
        connection = self._connection
        if connection is not None and connection.is_open:
            connection.close()
        self._wake()

    def _on_return(self, _channel: Any, _method: Any, properties: Any, _body: bytes) -> None:
        # The broker sends basic.return before the basic.ack of the same message.
        if properties.message_id:
            self._returned.add(properties.message_id)

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        acked = isinstance(method, pika.spec.Basic.Ack)
        last = method.delivery_tag
        first = self._lowest_pending if method.multiple else last
        for tag in range(first, last + 1):
            index = self._pending.pop(tag, None)
            if index is None:
                continue
            event_id = self._tag_ids[tag]
            if not acked:
                self._failures[event_id] = "nacked by the broker"
            elif event_id in self._returned:
                self._failures[event_id] = "unroutable: no queue is bound for this type"
            else:
                self._results[index] = True
        if method.multiple:
            self._lowest_pending = max(self._lowest_pending, last + 1)
        self._wake()
