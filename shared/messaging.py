"""RabbitMQ plumbing: topology, a fast confirming publisher and a retrying consumer.

Topology per consuming service `<c>` (its `consumer` name):

    exchange "events" (topic) --routing key = event type--> <c>.events (quorum)
    <c>.events --handler raised--> <c>.events.retry.<n> (TTL) --> back to <c>.events
    <c>.events --retries used up, or malformed--> <c>.events.dlq
    <c>.events --x-delivery-limit (crash loop)--> exchange "events.dlx" --> <c>.events.dlq

A handler failing because a dependency is down (TransientError, a lost database or Redis)
takes none of these paths: the consumer holds the message and retries it in place.

pika is not thread-safe: every Publisher and Consumer opens its own connection lazily, in
the thread that uses it, and nothing here connects at import time.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pika
import pika.exceptions
import sqlalchemy.exc
from pika.adapters.select_connection import IOLoop
from prometheus_client import Counter, Histogram

from shared.context import correlation
from shared.events import CONTENT_TYPE, Event, InvalidEvent, parse_event

log = logging.getLogger(__name__)

EXCHANGE = "events"
DEAD_LETTER_EXCHANGE = "events.dlx"
PERSISTENT = 2

# Headers this module writes on messages it moves between queues.
RETRIES_HEADER = "x-retries"
REASON_HEADER = "x-dlq-reason"
ERROR_HEADER = "x-error"
FAILED_AT_HEADER = "x-failed-at"
CONSUMER_HEADER = "x-consumer"
MAX_ERROR_CHARS = 1000

EVENTS_PROCESSED = Counter("events_processed", "Events handled successfully.", ["consumer", "type"])
EVENTS_FAILED = Counter(
    "events_failed", "Handler failures (each retry counts).", ["consumer", "type"]
)
EVENTS_REDELIVERED = Counter(
    "events_redelivered", "Deliveries the broker flagged as redelivered.", ["consumer"]
)
EVENTS_DEAD_LETTERED = Counter(
    "events_dead_lettered", "Messages a consumer moved to its DLQ.", ["consumer", "reason"]
)
DLQ_REASONS = ("malformed", "invalid-data", "handler-failed")
EVENTS_TRANSIENT_FAILURES = Counter(
    "events_transient_failures",
    "Handler attempts that failed on an unavailable dependency (retried in place).",
    ["consumer"],
)
EVENTS_REQUEUED = Counter(
    "events_requeued",
    "Held messages a consumer put back at the end of its queue as fresh copies.",
    ["consumer"],
)
# From the event's time (its producer's commit) to its handler's commit: for order.created
# in notifications, the end-to-end latency from an order to its notification.
EVENT_HANDLING_LAG = Histogram(
    "event_handling_lag_seconds",
    "Time from an event's creation to its successful handling.",
    ["consumer", "type"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)
EVENTS_PUBLISHED = Counter("events_published", "Events routed and confirmed by the broker.")
OUTBOX_PUBLISH_FAILURES = Counter(
    "outbox_publish_failures", "Outbox events the broker did not route or confirm."
)


def republished_properties(
    properties: pika.BasicProperties, headers: dict[str, Any]
) -> pika.BasicProperties:
    """Properties for a copy of a message moved between queues: same identity, new headers."""
    return pika.BasicProperties(
        content_type=properties.content_type,
        delivery_mode=PERSISTENT,
        message_id=properties.message_id,
        type=properties.type,
        timestamp=properties.timestamp,
        headers=headers,
    )


class BrokerUnavailable(ConnectionError):
    """The broker cannot be reached right now; back off and try again."""


class TopologyError(RuntimeError):
    """The broker refused our exchanges/queues (permissions or changed arguments)."""


def queue_name(consumer: str) -> str:
    """The consumer's main (quorum) queue."""
    return f"{consumer}.events"


def dlq_name(consumer: str) -> str:
    """The consumer's dead-letter queue."""
    return f"{consumer}.events.dlq"


def retry_queue_name(consumer: str, tier: int) -> str:
    """The delay queue of retry tier `tier` (1-based)."""
    return f"{consumer}.events.retry.{tier}"


def connection_parameters(
    amqp_url: str,
    *,
    heartbeat: int = 30,
    blocked_connection_timeout: float = 60,
    connection_attempts: int = 3,
    retry_delay: float = 1.0,
    socket_timeout: float = 5.0,
    connection_name: str | None = None,
) -> pika.URLParameters:
    """URLParameters with heartbeats, a blocked-connection timeout and bounded connect retries.

    Settings given in the URL's query string (`?heartbeat=60`) win over these defaults, so
    operators can tune a deployment through AMQP_URL alone.
    """
    params = pika.URLParameters(amqp_url)
    given = set(parse_qs(urlsplit(amqp_url).query))
    defaults: dict[str, Any] = {
        "heartbeat": heartbeat,
        # Without it a publisher blocked by a memory/disk alarm waits forever.
        "blocked_connection_timeout": blocked_connection_timeout,
        "connection_attempts": connection_attempts,
        "retry_delay": retry_delay,
        "socket_timeout": socket_timeout,
    }
    for name, value in defaults.items():
        if name not in given:
            setattr(params, name, value)
    if connection_name:
        params.client_properties = {"connection_name": connection_name}
    return params


def declare_exchange(channel: Any) -> None:
    """Declare the durable topic exchange every event is published to."""
    channel.exchange_declare(exchange=EXCHANGE, exchange_type="topic", durable=True)


def declare_topology(
    channel: Any,
    consumer: str,
    routing_keys: Sequence[str],
    *,
    delivery_limit: int,
    retry_delays: Sequence[float],
) -> None:
    """Declare (idempotently) the exchanges and queues one consuming service needs.

    Queue arguments are fixed at creation: changing delivery_limit or a retry delay for an
    existing queue makes RabbitMQ refuse the declaration (PRECONDITION_FAILED) rather than
    silently keep the old value.
    """
    main, dlq = queue_name(consumer), dlq_name(consumer)
    declare_exchange(channel)
    # One direct DLX for all services; the routing key picks the service's DLQ.
    channel.exchange_declare(exchange=DEAD_LETTER_EXCHANGE, exchange_type="direct", durable=True)
    # A classic DLQ: operators browse it with get + requeue, which a quorum queue would count
    # as deliveries (and from 4.0 on, drop after its default delivery limit).
    channel.queue_declare(queue=dlq, durable=True, arguments={"x-queue-type": "classic"})
    channel.queue_bind(queue=dlq, exchange=DEAD_LETTER_EXCHANGE, routing_key=dlq)
    channel.queue_declare(
        queue=main,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            # A consumer that crashes mid-handler never acks; the broker counts the
            # redeliveries and dead-letters the message instead of looping forever.
            "x-delivery-limit": delivery_limit,
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
            "x-dead-letter-routing-key": dlq,
            # at-least-once keeps a dead letter in this queue until the DLQ confirms it;
            # RabbitMQ only honours it together with reject-publish overflow.
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
    )
    for key in routing_keys:
        channel.queue_bind(queue=main, exchange=EXCHANGE, routing_key=key)
    for tier, delay in enumerate(retry_delays, start=1):
        # Nothing consumes a retry queue: messages wait out the TTL, then the default
        # exchange dead-letters them straight back into the main queue.
        channel.queue_declare(
            queue=retry_queue_name(consumer, tier),
            durable=True,
            arguments={
                "x-queue-type": "classic",
                "x-message-ttl": max(1, round(delay * 1000)),
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": main,
            },
        )


def event_properties(event: Event) -> pika.BasicProperties:
    """AMQP properties of a published event: persistent, id, type and correlation headers."""
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
        self._returned: set[str] = set()
        self._waiting_for: Callable[[], bool] | None = None
        # Why each event of the last batch was not published, by event id (for last_error).
        self.last_failures: dict[str, str] = {}

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- public API ---------------------------------------------------------------------

    def publish(self, event: Event) -> bool:
        """Publish one event; True when it was routed to a queue and confirmed."""
        return self.publish_batch([event])[0]

    def publish_batch(self, events: Sequence[Event]) -> list[bool]:
        """Publish events in order; result[i] is True when event i was routed and confirmed."""
        if not events:
            return []
        self._ensure_connected()
        self._results = [False] * len(events)
        self._pending = {}
        self._tag_ids = {}
        self._returned = set()
        self.last_failures = {}
        self._lowest_pending = self._next_tag + 1
        try:
            for index, event in enumerate(events):
                self._channel.basic_publish(
                    exchange=EXCHANGE,
                    routing_key=event.type,
                    body=event.to_json(),
                    properties=event_properties(event),
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
                self.last_failures[self._tag_ids[tag]] = reason
            # Late confirms could not be matched to this batch any more: start afresh.
            self._disconnect()
        published = sum(self._results)
        EVENTS_PUBLISHED.inc(published)
        return list(self._results)

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
                self.last_failures[event_id] = "nacked by the broker"
            elif event_id in self._returned:
                self.last_failures[event_id] = "unroutable: no queue is bound for this type"
            else:
                self._results[index] = True
        if method.multiple:
            self._lowest_pending = max(self._lowest_pending, last + 1)
        self._wake()


def _header_int(headers: Mapping[str, Any], name: str) -> int:
    value = headers.get(name)
    try:
        return int(value) if value is not None else 0
    except (TypeError, ValueError):
        return 0


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]


class TransientError(Exception):
    """A handler's dependency is unavailable right now: retried in place, never dead-lettered."""


# What fails because infrastructure is down rather than because of the event: SQLAlchemy's
# connection-level errors (it wraps the driver's; OperationalError also covers a lock or
# serialization timeout, and SQLite's "database is locked"), and sockets that could not
# connect or timed out. A handler raises TransientError for anything else of that kind.
DEFAULT_TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TransientError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    ConnectionError,
    TimeoutError,
)


def transient_errors(*extra: type[BaseException]) -> Callable[[BaseException], bool]:
    """A predicate for `Consumer(is_transient=...)`: the default errors plus `extra` types."""
    kinds = DEFAULT_TRANSIENT_ERRORS + extra

    def is_transient(exc: BaseException) -> bool:
        current: BaseException | None = exc
        while current is not None:
            if isinstance(current, InvalidEvent):
                return False
            if isinstance(current, kinds):
                return True
            if isinstance(current, sqlalchemy.exc.DBAPIError) and current.connection_invalidated:
                return True
            # `raise ServiceError(...) from db_error` is still the database being down.
            current = current.__cause__
        return False

    return is_transient


is_transient_error = transient_errors()


@dataclass
class _Delivery:
    """A message the broker handed us and we have not settled yet."""

    method: Any
    properties: Any
    body: bytes
    received_at: float  # time.monotonic()


class Consumer:
    """Consumes a service's queue: handler per event, retries with backoff, then the DLQ.

    pika's delivery callback only appends the message to a local buffer; the loop of
    `_consume_once` handles it from there, outside every pika callback. That is what lets
    the consumer wait for a dependency while holding a message: it waits in
    process_data_events, which answers heartbeats and buffers new deliveries. The same wait
    inside the callback would be a nested process_data_events, where BlockingConnection
    dispatches nothing, so deliveries would pile up inside pika and the stop logic could
    not see them.

    What happens to an event:

    * handled: acked after the handler (and its commit) returned;
    * malformed, or the handler raised InvalidEvent: straight to the DLQ;
    * the handler failed on a dependency (`is_transient`: the database, Redis... is down):
      the message stays unacked and is retried in place with capped, jittered backoff until
      the dependency is back; the prefetched messages wait in the buffer. Nothing goes back
      to the broker, so neither the retry tiers nor the quorum queue's x-delivery-limit
      (which counts every return) are used up by an outage;
    * any other failure: the retry tiers, then the DLQ.

    A message held for `max_hold` seconds (and everything buffered behind it) is moved to
    the back of the queue as a fresh copy: RabbitMQ closes a channel that keeps a delivery
    unacked past its consumer_timeout (30 min by default), which would return them all.

    stop(): the consumer finishes the messages already delivered (within `drain_timeout`;
    what is left then goes to the back of the queue as copies), cancels itself at the broker
    (see "stopping" below for the order of things), acks, and closes. A rolling restart returns
    nothing to the queue, so it counts towards no message's delivery limit.
    """

    def __init__(
        self,
        amqp_url: str,
        consumer: str,
        routing_keys: Sequence[str],
        handler: Callable[[Event], None],
        *,
        prefetch: int = 20,
        delivery_limit: int = 5,
        retry_delays: Sequence[float] = (1, 5, 30),
        max_reconnect_delay: float = 5.0,
        is_transient: Callable[[BaseException], bool] = is_transient_error,
        max_transient_delay: float = 10.0,
        max_hold: float = 600.0,
        drain_timeout: float = 20.0,
        stop_settle_seconds: float = 0.5,
    ) -> None:
        self.amqp_url = amqp_url
        self.consumer = consumer
        self.routing_keys = list(routing_keys)
        self.handler = handler
        self.prefetch = prefetch
        self.delivery_limit = delivery_limit
        self.retry_delays = [float(d) for d in retry_delays]
        self.max_reconnect_delay = max_reconnect_delay
        self.is_transient = is_transient
        self.max_transient_delay = max_transient_delay
        self.max_hold = max_hold
        self.drain_timeout = drain_timeout
        self.stop_settle_seconds = stop_settle_seconds
        self.queue = queue_name(consumer)
        # A plain bool, not threading.Event: stop() runs in signal handlers, where taking
        # a lock the interrupted code may hold would deadlock.
        self._stop_requested = False
        # State of the current connection (see _consume_once).
        self._connection: Any = None
        self._channel: Any = None
        self._consumer_tag: str | None = None
        self._deliveries: deque[_Delivery] = deque()
        self._deferred_acks: list[int] = []
        self._cancelled = False
        self._drain_deadline = math.inf
        self._last_arrival = 0.0
        self._init_metrics()

    def _init_metrics(self) -> None:
        # Series exist (at 0) from the start, so rate() and alerts see them before the
        # first failure rather than an absent series.
        for key in self.routing_keys:
            if "*" not in key and "#" not in key:
                EVENTS_PROCESSED.labels(self.consumer, key)
                EVENTS_FAILED.labels(self.consumer, key)
        EVENTS_REDELIVERED.labels(self.consumer)
        EVENTS_TRANSIENT_FAILURES.labels(self.consumer)
        EVENTS_REQUEUED.labels(self.consumer)
        for reason in DLQ_REASONS:
            EVENTS_DEAD_LETTERED.labels(self.consumer, reason)

    def stop(self) -> None:
        """Make run() return once the delivered messages are settled; signal-safe; final."""
        self._stop_requested = True

    def run(self) -> None:
        """Consume until stop(); reconnect with jittered exponential backoff on failures."""
        failures = 0
        while not self._stop_requested:
            try:
                self._consume_once()
                failures = 0
            except (pika.exceptions.AMQPError, OSError) as exc:
                failures += 1
                self._back_off(failures, exc)

    def declare(self, channel: Any) -> None:
        """Declare this consumer's exchanges and queues on `channel` (idempotent)."""
        try:
            declare_topology(
                channel,
                self.consumer,
                self.routing_keys,
                delivery_limit=self.delivery_limit,
                retry_delays=self.retry_delays,
            )
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code in (403, 406):
                # Missing permissions, or queue arguments that differ from the existing
                # queue's: reconnecting cannot fix configuration, so fail loudly.
                raise TopologyError(f"{self.consumer}: {exc}") from exc
            raise

    def setup(self, timeout: float = 60.0) -> None:
        """Declare the topology without consuming, waiting up to `timeout` s for the broker.

        Run before anything publishes: the broker routes an event only to queues that exist,
        so a service whose queue is not declared yet would never see it.
        """
        deadline = time.monotonic() + timeout
        failures = 0
        while True:
            try:
                connection = pika.BlockingConnection(
                    connection_parameters(self.amqp_url, connection_name=f"{self.consumer}-setup")
                )
                try:
                    self.declare(connection.channel())
                finally:
                    _close_quietly(connection)
                return
            except (pika.exceptions.AMQPError, OSError) as exc:
                failures += 1
                if time.monotonic() >= deadline:
                    raise BrokerUnavailable(
                        f"cannot declare the queues of {self.consumer} within {timeout}s: {exc}"
                    ) from exc
                self._back_off(failures, exc)

    def _back_off(self, failures: int, exc: BaseException) -> None:
        delay = min(self.max_reconnect_delay, 0.5 * 2 ** (failures - 1))
        delay = random.uniform(delay / 2, delay)  # jitter: workers do not reconnect in step
        log.warning(
            "consumer lost the broker; reconnecting",
            extra={"consumer": self.consumer, "error": str(exc), "retry_in": round(delay, 2)},
        )
        deadline = time.monotonic() + delay
        while not self._stop_requested and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    # -- one connection -------------------------------------------------------------------

    def _consume_once(self) -> None:
        connection = pika.BlockingConnection(
            connection_parameters(self.amqp_url, connection_name=f"{self.consumer}-consumer")
        )
        self._connection = connection
        self._deliveries.clear()
        self._deferred_acks.clear()
        self._cancelled = False
        self._drain_deadline = math.inf
        try:
            channel = self._channel = connection.channel()
            self.declare(channel)
            # Confirms for the retry/DLQ republish: we ack the original only once the copy
            # is safe. Blocking confirms are fine here: that is the failure path.
            channel.confirm_delivery()
            channel.basic_qos(prefetch_count=self.prefetch)
            self._consumer_tag = channel.basic_consume(
                self.queue, self._on_delivery, auto_ack=False
            )
            log.info("consumer started", extra={"consumer": self.consumer, "queue": self.queue})
            while True:
                self._note_stop()
                if self._deliveries and time.monotonic() >= self._drain_deadline:
                    self._cancel()
                    left = list(self._deliveries)
                    self._deliveries.clear()
                    self._requeue(left, "not handled within the stop deadline")
                    break
                if self._deliveries:
                    self._process(self._deliveries.popleft())
                elif self._cancelled:
                    break
                elif self._drain_deadline < math.inf:
                    if self._stop_settled():
                        self._cancel()
                    else:
                        connection.process_data_events(time_limit=0.05)
                else:
                    connection.process_data_events(time_limit=0.25)
            log.info("consumer stopped", extra={"consumer": self.consumer})
        finally:
            # Messages still unacked here (a lost connection, or a requeue that failed) go
            # back to the queue when the connection closes.
            self._deliveries.clear()
            self._deferred_acks.clear()
            self._connection = self._channel = self._consumer_tag = None
            _close_quietly(connection)

    def _on_delivery(self, _channel: Any, method: Any, properties: Any, body: bytes) -> None:
        self._last_arrival = time.monotonic()
        self._deliveries.append(_Delivery(method, properties, body, self._last_arrival))

    # -- stopping -------------------------------------------------------------------------
    #
    # Closing a channel, or cancelling the consumer, hands back what the broker sent us
    # and we have not acked, and a quorum queue counts every such return towards the
    # message's x-delivery-limit. So on stop we settle everything delivered first:
    #
    # 1. From the stop on, acks are deferred. Each ack frees a place in the prefetch window
    #    and the broker fills it (a quorum queue a few milliseconds later), so acking would
    #    keep deliveries in flight. Without acks, at most `prefetch` messages can be ours.
    #    (A crash meanwhile redelivers the handled ones; the inbox makes that harmless.)
    # 2. Every message delivered, before or after the stop, is handled.
    # 3. Once the window is full, or nothing arrived for `stop_settle_seconds`, no delivery
    #    is on its way: basic.cancel (`_cancel`), then the deferred acks, then close.
    #
    # What the broker still sends between basic.cancel and its cancel-ok is rejected with
    # requeue by pika's BlockingChannel, and no public API keeps it: that takes a new
    # message published within that one round trip while the window has room (or a broker
    # slower than `stop_settle_seconds` to refill it), and costs each such message one
    # delivery count, at most `prefetch` of them per stop. `drain_timeout` bounds the
    # whole stop: what is not handled by then goes to the back of the queue as a copy
    # (`_requeue`), which counts nothing.

    def _note_stop(self) -> None:
        if self._stop_requested and self._drain_deadline == math.inf:
            now = time.monotonic()
            self._drain_deadline = now + self.drain_timeout
            self._last_arrival = now
            log.info(
                "consumer stopping; finishing the messages already delivered",
                extra={"consumer": self.consumer, "buffered": len(self._deliveries)},
            )

    def _stop_settled(self) -> bool:
        """True once no delivery can be on its way to us (buffer empty, acks deferred)."""
        window_full = len(self._deferred_acks) >= self.prefetch
        quiet = time.monotonic() - self._last_arrival >= self.stop_settle_seconds
        return window_full or quiet or time.monotonic() >= self._drain_deadline

    def _settle(self, delivery_tag: int) -> None:
        """Ack a message, or (while stopping, before the cancel) remember to ack it then."""
        self._note_stop()
        if self._stop_requested and not self._cancelled:
            self._deferred_acks.append(delivery_tag)
        else:
            self._channel.basic_ack(delivery_tag)

    def _cancel(self) -> None:
        """basic.cancel, then the deferred acks; deliveries pika already read are kept.

        basic_cancel makes pika reject (with requeue) whatever it read but did not dispatch
        yet, so process_data_events first moves that into our buffer; the caller handles it.
        """
        if self._cancelled:
            return
        self._connection.process_data_events(time_limit=0)
        if self._consumer_tag is not None:
            self._channel.basic_cancel(self._consumer_tag)
        self._cancelled = True
        for tag in self._deferred_acks:
            self._channel.basic_ack(tag)
        self._deferred_acks.clear()

    # -- one message ----------------------------------------------------------------------

    def _process(self, delivery: _Delivery) -> None:
        headers: dict[str, Any] = dict(delivery.properties.headers or {})
        if delivery.method.redelivered:
            EVENTS_REDELIVERED.labels(self.consumer).inc()
        try:
            event = parse_event(delivery.body)
        except InvalidEvent as exc:
            log.warning(
                "malformed event dead-lettered",
                extra={
                    "consumer": self.consumer,
                    "message_id": delivery.properties.message_id,
                    "error": str(exc),
                },
            )
            self._move(delivery, headers, dlq_reason="malformed", error=str(exc))
            return
        with correlation(event.requestid, event.traceparent):
            self._handle(delivery, headers, event)

    def _handle(self, delivery: _Delivery, headers: dict[str, Any], event: Event) -> None:
        extra = {
            "consumer": self.consumer,
            "event_id": event.id,
            "event_type": event.type,
            "request_id": event.requestid,
            "delivery_count": headers.get("x-delivery-count"),
        }
        attempts = 0
        while True:
            attempts += 1
            try:
                self.handler(event)
                break
            except Exception as exc:
                error = exc
            if not self.is_transient(error):
                self._failed(delivery, headers, event, error, extra)
                return
            EVENTS_TRANSIENT_FAILURES.labels(self.consumer).inc()
            if not self._hold(delivery, attempts, error, extra):
                return
        if attempts > 1:
            log.info("dependency is back; event handled", extra={**extra, "attempts": attempts})
        self._settle(delivery.method.delivery_tag)
        EVENTS_PROCESSED.labels(self.consumer, event.type).inc()
        EVENT_HANDLING_LAG.labels(self.consumer, event.type).observe(
            max(0.0, (datetime.now(UTC) - event.time).total_seconds())
        )
        # One line per event, as web processes write one per request: with the event's
        # trace id on it, an order can be followed into every consumer.
        log.info("event handled", extra=extra)

    def _hold(
        self, delivery: _Delivery, attempts: int, error: Exception, extra: dict[str, Any]
    ) -> bool:
        """Wait before the next attempt; False when the messages were requeued instead."""
        now = time.monotonic()
        stopping = now >= self._drain_deadline
        if stopping or now - delivery.received_at >= self.max_hold:
            if stopping:
                self._cancel()
            held = [delivery, *self._deliveries]
            self._deliveries.clear()
            why = "stopping" if stopping else f"held for {self.max_hold:.0f}s"
            self._requeue(held, f"dependency still unavailable ({why})")
            return False
        delay = min(self.max_transient_delay, 0.5 * 2 ** min(attempts - 1, 20))
        delay = random.uniform(delay / 2, delay)
        log.warning(
            "dependency unavailable; holding the event and retrying",
            exc_info=error if attempts == 1 else None,  # the traceback once, not each time
            extra={
                **extra,
                "attempt": attempts,
                "retry_in": round(delay, 2),
                "error": _error_text(error),
            },
        )
        self._wait(delay)
        return True

    def _wait(self, seconds: float) -> None:
        """Pause while answering heartbeats and buffering deliveries; cut short by the stop
        deadline."""
        deadline = time.monotonic() + seconds
        while True:
            self._note_stop()
            deadline = min(deadline, self._drain_deadline)
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._connection.process_data_events(time_limit=min(0.25, left))

    def _failed(
        self,
        delivery: _Delivery,
        headers: dict[str, Any],
        event: Event,
        exc: Exception,
        extra: dict[str, Any],
    ) -> None:
        EVENTS_FAILED.labels(self.consumer, event.type).inc()
        retries = _header_int(headers, RETRIES_HEADER)
        error = _error_text(exc)
        if isinstance(exc, InvalidEvent):
            # The handler found the data unusable: no retry can fix that.
            log.error("event data rejected; dead-lettered", exc_info=exc, extra=extra)
            self._move(delivery, headers, dlq_reason="invalid-data", error=error)
        elif retries < len(self.retry_delays):
            log.warning(
                "event handler failed; will retry",
                exc_info=exc,
                extra={**extra, "retry": retries + 1},
            )
            self._move(delivery, headers, retry=retries + 1, error=error)
        else:
            log.error("event handler failed; dead-lettered", exc_info=exc, extra=extra)
            self._move(delivery, headers, dlq_reason="handler-failed", error=error)

    def _move(
        self,
        delivery: _Delivery,
        headers: dict[str, Any],
        *,
        error: str,
        retry: int | None = None,
        dlq_reason: str | None = None,
    ) -> None:
        """Republish a copy to a retry queue or the DLQ (confirmed), then ack the original."""
        new_headers = {**headers, ERROR_HEADER: error, CONSUMER_HEADER: self.consumer}
        new_headers.pop("x-delivery-count", None)  # the quorum queue's count, not the copy's
        new_headers.setdefault("x-original-routing-key", delivery.method.routing_key)
        if retry is not None:
            target = retry_queue_name(self.consumer, retry)
            new_headers[RETRIES_HEADER] = retry
        else:
            target = dlq_name(self.consumer)
            new_headers[REASON_HEADER] = dlq_reason
            new_headers[FAILED_AT_HEADER] = datetime.now(UTC).isoformat()
        copy = republished_properties(delivery.properties, new_headers)
        try:
            self._channel.basic_publish("", target, delivery.body, properties=copy, mandatory=True)
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
            # Could not park the copy: requeue the original; the delivery limit bounds this.
            log.error(
                "could not move message; requeued",
                extra={"consumer": self.consumer, "target": target, "error": str(exc)},
            )
            self._channel.basic_nack(delivery.method.delivery_tag, requeue=True)
            return
        self._settle(delivery.method.delivery_tag)
        if dlq_reason is not None:
            EVENTS_DEAD_LETTERED.labels(self.consumer, dlq_reason).inc()

    def _requeue(self, deliveries: Sequence[_Delivery], reason: str) -> None:
        """Put unfinished messages at the back of our queue as fresh copies, acking each
        original once its copy is confirmed.

        Returning them (nack, or closing the channel) would count towards x-delivery-limit;
        a copy starts at zero. A crash between publish and ack leaves both, and the inbox
        applies the event once.
        """
        moved = 0
        for delivery in deliveries:
            headers = dict(delivery.properties.headers or {})
            headers.pop("x-delivery-count", None)
            headers.setdefault("x-original-routing-key", delivery.method.routing_key)
            copy = republished_properties(delivery.properties, headers)
            try:
                self._channel.basic_publish(
                    "", self.queue, delivery.body, properties=copy, mandatory=True
                )
            except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
                # The queue refuses more (reject-publish overflow): keep the originals.
                log.error(
                    "could not requeue held messages",
                    extra={"consumer": self.consumer, "error": str(exc)},
                )
                break
            self._settle(delivery.method.delivery_tag)
            moved += 1
        EVENTS_REQUEUED.labels(self.consumer).inc(moved)
        log.warning(
            "unfinished messages moved to the back of the queue",
            extra={"consumer": self.consumer, "count": moved, "reason": reason},
        )
        kept = list(deliveries[moved:])
        if kept and not self._stop_requested:
            # Still ours: hold them again and try the requeue another max_hold later. When
            # stopping, closing the connection returns them instead.
            for delivery in kept:
                delivery.received_at = time.monotonic()
            self._deliveries.extendleft(reversed(kept))


def _close_quietly(connection: Any) -> None:
    if connection.is_open:
        try:
            connection.close()
        except pika.exceptions.AMQPError:
            pass
